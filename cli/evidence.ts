/**
 * `kbs evidence verify`: the operator's tool for "why was this evidence refused?". It runs the same
 * verifier the KBS runs on one evidence file, offline (collateral from `--collateral` only, no
 * network), at a chosen time, and prints the claims (exit 0) or the failed step (exit 1).
 */
import { readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AzSnpVtpmVerifier } from '../attestation/az-snp-vtpm/verifier.js';
import { AzTdxVtpmVerifier } from '../attestation/az-tdx-vtpm/verifier.js';
import { parseQuote } from '../attestation/intel-dcap/index.js';
import { defaultVerifiers, hardwareVerifiers } from '../attestation/registry.js';
import { decodeStdBase64 } from '../attestation/sample/verifier.js';
import { SnpVerifier } from '../attestation/snp/index.js';
import { TpmVerifier } from '../attestation/tpm/verifier.js';
import { AttestationFailure, isTee, type Claims, type Tee, type Verifier } from '../attestation/types.js';
import type { Io } from './policy.js';

const MAX_FILE_BYTES = 16 * 1024 * 1024;

const USAGE = `usage:
  kbs evidence verify --tee <tee> --evidence <file.json> [--report-data <hex>]
                      [--init-data-digest <hex>] [--at <RFC 3339 time>] [--collateral <dir>]

  Verifies the evidence as the KBS would (offline: collateral only from --collateral) and prints
  its claims as JSON. Exit 0: verified; 1: rejected ("step: <step>: <message>" on stderr); 2: usage.
  Without --report-data the report-data binding is skipped for snp, tdx, sgx and tpm; az-snp-vtpm,
  az-tdx-vtpm, sample and sampledevice cannot be verified without it.`;

class UsageError extends Error {}

/** TEEs whose verifier cannot run without expected report data (upstream bails on NotProvided). */
const REPORT_DATA_REQUIRED: ReadonlySet<Tee> = new Set<Tee>(['az-snp-vtpm', 'az-tdx-vtpm', 'sample', 'sampledevice']);

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

function hexOption(value: string | undefined, name: string): Buffer | undefined {
  if (value === undefined) return undefined;
  const text = value.startsWith('0x') ? value.slice(2) : value;
  if (!HEX.test(text)) throw new UsageError(`--${name} must be hex with an even number of digits`);
  return Buffer.from(text, 'hex');
}

function timeOption(value: string | undefined): Date {
  if (value === undefined) return new Date();
  const ms = RFC3339.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw new UsageError(`--at must be an RFC 3339 time such as 2026-01-01T00:00:00Z, got "${value}"`);
  return new Date(ms);
}

function readEvidence(path: string): unknown {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new UsageError(`cannot read evidence file ${path}`);
  }
  if (size > MAX_FILE_BYTES) throw new UsageError(`evidence file ${path} is larger than ${MAX_FILE_BYTES} bytes`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (e) {
    throw new UsageError(`evidence file ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * The quote's own REPORT_DATA, for tdx/sgx without --report-data: comparing the quote with itself
 * is how "not provided" is expressed through the Verifier contract. Undefined when the quote cannot
 * be read; the verifier then reports why.
 */
function quoteReportData(evidence: unknown): Buffer | undefined {
  if (typeof evidence !== 'object' || evidence === null) return undefined;
  const text = (evidence as Record<string, unknown>)['quote'];
  const bytes = typeof text === 'string' ? decodeStdBase64(text) : undefined;
  if (bytes === undefined) return undefined;
  try {
    return parseQuote(bytes).body.reportData;
  } catch {
    return undefined;
  }
}

interface Expected {
  reportData: Buffer | undefined;
  initDataHash: Buffer | undefined;
  now: Date;
}

async function runVerifier(verifier: Verifier, evidence: unknown, x: Expected): Promise<Claims> {
  if (verifier instanceof SnpVerifier) return (await verifier.evaluate(evidence, x)).claims;
  if (verifier instanceof TpmVerifier) return verifier.evaluate(evidence, x);
  if (verifier instanceof AzSnpVtpmVerifier || verifier instanceof AzTdxVtpmVerifier) return verifier.evaluate(evidence, x);
  const reportData = x.reportData ?? quoteReportData(evidence) ?? Buffer.alloc(0);
  return verifier.verify(evidence, reportData, x.initDataHash, x.now);
}

async function verifyCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tee: { type: 'string' },
      evidence: { type: 'string' },
      'report-data': { type: 'string' },
      'init-data-digest': { type: 'string' },
      at: { type: 'string' },
      collateral: { type: 'string' },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  if (values.tee === undefined) throw new UsageError('--tee is required');
  if (values.evidence === undefined) throw new UsageError('--evidence is required');
  const tee = values.tee;
  if (!isTee(tee)) throw new UsageError(`unknown TEE "${tee}"`);
  const registry = hardwareVerifiers(
    values.collateral !== undefined ? { collateralDir: values.collateral } : {},
    defaultVerifiers(),
  );
  const verifier = registry.get(tee);
  if (verifier === undefined) throw new UsageError(`no verifier for TEE "${tee}" (supported: ${registry.tees().join(', ')})`);
  const expected: Expected = {
    reportData: hexOption(values['report-data'], 'report-data'),
    initDataHash: hexOption(values['init-data-digest'], 'init-data-digest'),
    now: timeOption(values.at),
  };
  if (expected.reportData === undefined && REPORT_DATA_REQUIRED.has(tee)) {
    throw new UsageError(
      `--report-data is required for ${tee}: its evidence is only meaningful bound to the expected report data ` +
        '(the KBS runtime-data digest, hex), which the verifier must compare (upstream rejects evidence without it)',
    );
  }
  const evidence = readEvidence(values.evidence);
  let claims: Claims;
  try {
    claims = await runVerifier(verifier, evidence, expected);
  } catch (e) {
    if (e instanceof AttestationFailure) {
      io.err(`step: ${e.step}: ${e.message}`);
      return 1;
    }
    io.err(`step: verifier: ${tee} verification failed: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  io.out(JSON.stringify(claims, null, 2));
  return 0;
}

/** Runs `kbs evidence …`; returns the exit code (0 verified, 1 rejected, 2 usage error). */
export async function evidenceCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  try {
    if (sub === 'verify') return await verifyCommand(rest, io);
    throw new UsageError(sub ? `unknown evidence command "${sub}"` : 'missing evidence command');
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      io.err(`kbs evidence: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}
