/**
 * `kbs collateral fetch`: fills the offline collateral directory the hardware verifiers read first
 * (`[attestation_service.verifier_config] collateral_dir`), on a machine that can reach AMD KDS and
 * Intel PCS, so that the KBS itself can run with `offline = true`. Everything downloaded is verified
 * (signatures, chains to the pinned AMD and Intel roots) before it is written, atomically.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_FETCH_TIMEOUT_SECONDS, DEFAULT_KDS_URL, DEFAULT_PCS_URL } from '../config/verifier-config.js';
import type { Io } from './policy.js';

const USAGE = `usage:
  kbs collateral fetch --dir <collateral-dir>
      [--amd] [--snp-evidence <file>]... [--amd-product Milan|Genoa|Turin]... [--kds-url URL]
      [--intel] [--fmspc <12 hex>]... [--quote <file>]... [--pcs-url URL] [--update early|standard]
      [--timeout-seconds N]

  --amd fetches the AMD CRLs (all products unless --amd-product) and, with --snp-evidence, the VCEK
  of each evidence's chip and TCB. --intel fetches TCB info, QE identity and CRLs for each --fmspc
  or the FMSPC of each --quote (a raw SGX/TDX quote). Prints each file written.`;

class UsageError extends Error {}

export async function collateralCommand(argv: string[], io: Io): Promise<number> {
  let parsed;
  try {
    if (argv[0] !== 'fetch') throw new UsageError(argv[0] === undefined ? 'missing subcommand' : `unknown subcommand "${argv[0]}"`);
    parsed = parseArgs({
      args: argv.slice(1),
      strict: true,
      allowPositionals: false,
      options: {
        dir: { type: 'string' },
        amd: { type: 'boolean' },
        'snp-evidence': { type: 'string', multiple: true },
        'amd-product': { type: 'string', multiple: true },
        'kds-url': { type: 'string' },
        intel: { type: 'boolean' },
        fmspc: { type: 'string', multiple: true },
        quote: { type: 'string', multiple: true },
        'pcs-url': { type: 'string' },
        update: { type: 'string' },
        'timeout-seconds': { type: 'string' },
      },
    }).values;
    if (parsed.dir === undefined) throw new UsageError('--dir is required');
    if (parsed.update !== undefined && parsed.update !== 'early' && parsed.update !== 'standard') {
      throw new UsageError('--update must be early or standard');
    }
  } catch (e) {
    io.err(`kbs collateral: ${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
    return 2;
  }
  const timeoutSeconds = parsed['timeout-seconds'] === undefined ? DEFAULT_FETCH_TIMEOUT_SECONDS : Number(parsed['timeout-seconds']);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0 || timeoutSeconds > 300) {
    io.err(`kbs collateral: --timeout-seconds must be a number in (0, 300]\n${USAGE}`);
    return 2;
  }
  const amd = parsed.amd === true || parsed['snp-evidence'] !== undefined || parsed['amd-product'] !== undefined;
  const intel = parsed.intel === true || parsed.fmspc !== undefined || parsed.quote !== undefined;
  if (!amd && !intel) {
    io.err(`kbs collateral: say what to fetch (--amd and/or --intel)\n${USAGE}`);
    return 2;
  }
  const timeoutMs = Math.round(timeoutSeconds * 1000);
  try {
    if (amd) {
      const { fetchAmdCollateral } = await import('./collateral-amd.js');
      const written = await fetchAmdCollateral({
        dir: parsed.dir,
        kdsBaseUrl: parsed['kds-url'] ?? DEFAULT_KDS_URL,
        timeoutMs,
        ...(parsed['snp-evidence'] !== undefined ? { evidenceFiles: parsed['snp-evidence'] } : {}),
        ...(parsed['amd-product'] !== undefined ? { products: parsed['amd-product'] } : {}),
      });
      for (const f of written) io.out(f);
    }
    if (intel) {
      const { fetchIntelCollateral } = await import('./collateral-intel.js');
      const written = await fetchIntelCollateral({
        dir: parsed.dir,
        pcsBaseUrl: parsed['pcs-url'] ?? DEFAULT_PCS_URL,
        timeoutMs,
        updateType: (parsed.update as 'early' | 'standard' | undefined) ?? 'early',
        ...(parsed.fmspc !== undefined ? { fmspcs: parsed.fmspc } : {}),
        ...(parsed.quote !== undefined ? { quoteFiles: parsed.quote } : {}),
      });
      for (const f of written) io.out(f);
    }
  } catch (e) {
    io.err(`kbs collateral: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  return 0;
}
