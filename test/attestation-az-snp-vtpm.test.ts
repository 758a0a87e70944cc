/**
 * The az-snp-vtpm verifier end to end on the real vectors (shared/vectors/az-snp-vtpm): every
 * stated outcome, the upstream claims, injected time against the VCEK dates, negative cases, and a
 * property: flipping any byte of the v1/v2 evidences' binary parts is rejected unless that byte is
 * provably not covered by any signature or binding (then it must still verify).
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';
import { AttestationFailure, type Claims } from '../attestation/types.js';
import { AzSnpVtpmVerifier } from '../attestation/az-snp-vtpm/verifier.js';
import { parseHclReport, VAR_DATA_OFFSET } from '../attestation/az-vtpm/hcl.js';
import { parseSnpReport, verifySnpReportWithCert } from '../attestation/snp/index.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const dir = join(VECTORS, 'az-snp-vtpm');
const read = (name: string): Buffer => readFileSync(join(dir, name));
const readJson = (name: string): Record<string, unknown> => JSON.parse(read(name).toString('utf8')) as Record<string, unknown>;

const NOW = new Date('2026-01-01T00:00:00Z');
const CHALLENGE = Buffer.from('challenge');
const V2_REPORT_DATA = Buffer.from(
  '982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef',
  'hex',
);
const GENOA_REPORT_DATA = Buffer.from(
  '0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938ca05475f8b46094de6b64270ea35d950f',
  'hex',
);

const v0 = readJson('evidence-v0.json');
const v1 = readJson('evidence-v1.json');
const v2 = readJson('evidence-v2.json');
const genoa = readJson('evidence-genoa.json');
const expectedV2Claims = readJson('evidence-v2-expected-claims.json');

const verifier = new AzSnpVtpmVerifier();

async function rejectsAt(t: ExecutionContext, p: Promise<unknown>, step: string): Promise<AttestationFailure | undefined> {
  const e = await t.throwsAsync(p, { instanceOf: AttestationFailure });
  t.is(e?.step, step, e?.message);
  return e;
}

type Quote = { signature: string; message: string; pcrs: string[] };
const quoteOf = (ev: Record<string, unknown>): Quote => ev['tpm_quote'] as Quote;
const b64u = (b: Buffer): string => b.toString('base64url');
const unb64u = (s: unknown): Buffer => Buffer.from(s as string, 'base64url');

function flipHex(hex: string, byte: number, mask = 1): string {
  const b = Buffer.from(hex, 'hex');
  b[byte] = (b[byte] as number) ^ mask;
  return b.toString('hex');
}

test('v0 and v1 verify with report data "challenge" (upstream test_evaluate)', async (t) => {
  for (const ev of [v0, v1]) {
    const claims = await verifier.verify(ev, CHALLENGE, undefined, NOW);
    t.is(claims['report_data'], '6368616c6c656e6765');
    t.is((claims['tpm'] as Claims)['pcr00'], 'e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced');
    t.is(claims['init_data'], (claims['tpm'] as Claims)['pcr08']);
  }
});

test('v2 verifies and its claims equal evidence-v2-expected-claims.json, member order included', async (t) => {
  const claims = await verifier.verify(v2, V2_REPORT_DATA, undefined, NOW);
  t.deepEqual(claims, expectedV2Claims);
  t.is(JSON.stringify(claims), JSON.stringify(expectedV2Claims));
});

test('the Genoa evidence verifies (upstream test_evaluate_genoa)', async (t) => {
  const claims = await verifier.verify(genoa, GENOA_REPORT_DATA, undefined, NOW);
  t.is((claims['tpm'] as Claims)['pcr00'], 'afd689d0bb1c5f36f023fbaf574135f555a28a10c1f6b938d2a25e70c7783338');
});

test('report data: v2 with 123abc is rejected; missing report data is rejected', async (t) => {
  await rejectsAt(t, verifier.verify(v2, Buffer.from('123abc', 'hex'), undefined, NOW), 'tpm-nonce');
  await rejectsAt(t, verifier.verify(v1, Buffer.from('challengf'), undefined, NOW), 'tpm-nonce');
  const e = await rejectsAt(t, verifier.evaluate(v1, { now: NOW }), 'report-data');
  t.regex(e?.message ?? '', /needs the expected report data/);
});

test('hcl-report.bin: components verify, full evaluate rejects (SNP report v2 has no CPUID)', async (t) => {
  const quote = JSON.parse(read('tpm-quote-v1.json').toString('utf8')) as Quote;
  const pem = read('vcek.pem').toString('utf8');
  const vcekDer = Buffer.from((/-----BEGIN CERTIFICATE-----([^-]+)-----END/.exec(pem) as RegExpExecArray)[1] as string, 'base64');
  const evidence = { version: 1, tpm_quote: quote, hcl_report: b64u(read('hcl-report.bin')), vcek: b64u(vcekDer) };
  await rejectsAt(t, verifier.verify(evidence, CHALLENGE, undefined, NOW), 'snp-report-version');
  // The v0 form (PEM with ASK and ARK appended; the first certificate is the VCEK) fails the same way.
  const legacy = { quote: { signature: [...Buffer.from(quote.signature, 'hex')], message: [...Buffer.from(quote.message, 'hex')], pcrs: quote.pcrs.map((p) => [...Buffer.from(p, 'hex')]) }, report: [...read('hcl-report.bin')], vcek: pem };
  await rejectsAt(t, verifier.verify(legacy, CHALLENGE, undefined, NOW), 'snp-report-version');
  // Component: with the generation given, the v2 report's signature, chain and TCB verify.
  const report = parseSnpReport(parseHclReport(read('hcl-report.bin')).hwReport);
  t.is(report.version, 2);
  t.notThrows(() => verifySnpReportWithCert(report, vcekDer, { now: NOW, generation: 'Milan', vekType: 'VCEK', checkVersion: false, checkFmc: false }));
});

test('injected time: the VCEK validity period is enforced (2025-01-28 .. 2032-01-28 for v1)', async (t) => {
  await t.notThrowsAsync(verifier.verify(v1, CHALLENGE, undefined, new Date('2032-01-28T00:00:00Z')));
  await t.notThrowsAsync(verifier.verify(v1, CHALLENGE, undefined, new Date('2025-01-29T00:00:00Z')));
  await rejectsAt(t, verifier.verify(v1, CHALLENGE, undefined, new Date('2032-01-29T00:00:00Z')), 'snp-certificate-validity');
  await rejectsAt(t, verifier.verify(v1, CHALLENGE, undefined, new Date('2025-01-27T00:00:00Z')), 'snp-certificate-validity');
});

test('negative: signature, PCR, nonce, var_data, SNP report and VCEK tampering', async (t) => {
  const q = quoteOf(v2);
  const hcl = unb64u(v2['hcl_report']);
  const tamperedHcl = (at: number): string => {
    const b = Buffer.from(hcl);
    b[at] = (b[at] as number) ^ 1;
    return b64u(b);
  };
  // A JSON-preserving change inside var_data (a digit of vmUniqueId): the AK still parses.
  const vmId = hcl.indexOf('"vmUniqueId":"') + 14;
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['flipped signature byte', { ...v2, tpm_quote: { ...q, signature: flipHex(q.signature, 7) } }, 'tpm-signature'],
    ['flipped PCR', { ...v2, tpm_quote: { ...q, pcrs: q.pcrs.map((p, i) => (i === 8 ? flipHex(p, 0) : p)) } }, 'pcr-digest'],
    ['PCR missing', { ...v2, tpm_quote: { ...q, pcrs: q.pcrs.slice(1) } }, 'pcr-digest'],
    ['tampered var_data (vm-configuration)', { ...v2, hcl_report: tamperedHcl(vmId) }, 'hcl-binding'],
    ['tampered SNP measurement', { ...v2, hcl_report: tamperedHcl(0x20 + 0x90) }, 'snp-signature'],
    ['tampered SNP reported TCB (signed, so the signature fails first)', { ...v2, hcl_report: tamperedHcl(0x20 + 0x180) }, 'snp-signature'],
    ['HCL with a TDX report', { ...v2, hcl_report: b64u(readFileSync(join(VECTORS, 'az-tdx-vtpm', 'hcl-report.bin'))) }, 'evidence-format'],
    ['Genoa VCEK for a Milan report', { ...v2, vcek: b64u(Buffer.from(((genoa['vcek'] as string).split('-----')[2] as string).replace(/\s/g, ''), 'base64')) }, 'snp-certificate-chain'],
    ['not evidence', { version: 2 }, 'evidence-format'],
  ];
  for (const [name, ev, step] of cases) {
    const e = await t.throwsAsync(verifier.verify(ev, V2_REPORT_DATA, undefined, NOW), { instanceOf: AttestationFailure }, name);
    t.is(e?.step, step, `${name}: ${e?.message}`);
  }
  // The nonce is in the signed message: a different expected value is a nonce failure.
  await rejectsAt(t, verifier.verify(v2, Buffer.concat([V2_REPORT_DATA, Buffer.alloc(1)]), undefined, NOW), 'tpm-nonce');
});

test('init-data: PCR8 must be one extend of the digest from zero; non-sha256 digests are refused', async (t) => {
  await rejectsAt(t, verifier.verify(v2, V2_REPORT_DATA, Buffer.alloc(32, 1), NOW), 'init-data');
  const e = await rejectsAt(t, verifier.verify(v2, V2_REPORT_DATA, Buffer.alloc(48, 1), NOW), 'init-data');
  t.regex(e?.message ?? '', /32-byte \(sha256\)/);
});

/**
 * Bytes of the HCL report no check depends on: the header after "HCLA" (version, size, request
 * type, status, reserved), the IGVM data_size and version, and the padding after var_data. The SNP
 * report is signed up to 0x2A0, its signature is checked, and its reserved tail must be zero.
 */
function unsignedHclByte(hcl: Buffer, i: number): boolean {
  const varEnd = VAR_DATA_OFFSET + hcl.readUInt32LE(VAR_DATA_OFFSET - 4);
  return (i >= 4 && i < 0x20) || (i >= VAR_DATA_OFFSET - 20 && i < VAR_DATA_OFFSET - 12) || i >= varEnd;
}

type Part = 'hcl_report' | 'vcek' | 'signature' | 'message' | 'pcr';

function mutate(ev: Record<string, unknown>, part: Part, pos: number, mask: number, pcr: number): { ev: Record<string, unknown>; unsigned: boolean } {
  const q = quoteOf(ev);
  if (part === 'hcl_report' || part === 'vcek') {
    const b = Buffer.from(unb64u(ev[part]));
    const i = pos % b.length;
    b[i] = (b[i] as number) ^ mask;
    return { ev: { ...ev, [part]: b64u(b) }, unsigned: part === 'hcl_report' && unsignedHclByte(b, i) };
  }
  if (part === 'pcr') {
    const pcrs = q.pcrs.map((p, i) => (i === pcr ? flipHex(p, pos % 32, mask) : p));
    return { ev: { ...ev, tpm_quote: { ...q, pcrs } }, unsigned: false };
  }
  const len = q[part].length / 2;
  return { ev: { ...ev, tpm_quote: { ...q, [part]: flipHex(q[part], pos % len, mask) } }, unsigned: false };
}

for (const [name, ev, rd] of [
  ['v1', v1, CHALLENGE],
  ['v2', v2, V2_REPORT_DATA],
] as const) {
  test(`property (${name}): every flipped byte of a binary part is rejected unless provably unsigned`, async (t) => {
    const arb = fc.record({
      part: fc.constantFrom<Part>('hcl_report', 'hcl_report', 'vcek', 'signature', 'message', 'pcr'),
      pos: fc.nat(),
      mask: fc.integer({ min: 1, max: 255 }),
      pcr: fc.integer({ min: 0, max: 23 }),
    });
    let unsignedSeen = 0;
    await fc.assert(
      fc.asyncProperty(arb, async ({ part, pos, mask, pcr }) => {
        const m = mutate(ev, part, pos, mask, pcr);
        if (m.unsigned) {
          unsignedSeen++;
          await verifier.verify(m.ev, rd, undefined, NOW);
          return true;
        }
        try {
          await verifier.verify(m.ev, rd, undefined, NOW);
        } catch (e) {
          return e instanceof AttestationFailure;
        }
        return false;
      }),
      { numRuns: 400 },
    );
    // The unsigned regions are real: flip one byte of each and the evidence still verifies.
    const hcl = unb64u(ev['hcl_report']);
    for (const i of [4, 0x1f, VAR_DATA_OFFSET - 20, VAR_DATA_OFFSET - 13, hcl.length - 1]) {
      t.true(unsignedHclByte(hcl, i));
      await t.notThrowsAsync(verifier.verify(mutate(ev, 'hcl_report', i, 0x40, 0).ev, rd, undefined, NOW));
    }
    t.pass(`${unsignedSeen} unsigned mutants verified`);
  });
}
