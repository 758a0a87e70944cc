/**
 * The AMD collateral directory: upstream's offline VCEK store layout plus CRLs.
 *   <dir>/vcek/<hwid>/<tcb prefix>_vcek.der, then <dir>/vcek/<hwid>/vcek.der
 *   <dir>/crl/<Milan|Genoa|Turin>.crl
 * Writes are atomic (temporary file, then rename), so a reader never sees a partial file.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { SnpGeneration } from './generation.js';
import { hwIdOf, tcbPrefix } from './kds.js';
import type { SnpReport } from './report.js';

/** Largest file read from the store. */
const MAX_FILE_BYTES = 1024 * 1024;

export function vcekPaths(dir: string, report: SnpReport, generation: SnpGeneration): { tcb: string; fallback: string } {
  const base = join(dir, 'vcek', hwIdOf(report, generation));
  return { tcb: join(base, `${tcbPrefix(report)}_vcek.der`), fallback: join(base, 'vcek.der') };
}

export function crlPath(dir: string, generation: SnpGeneration): string {
  return join(dir, 'crl', `${generation}.crl`);
}

function isNotFound(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'ENOENT';
}

/** Reads a regular file, or undefined when it does not exist; other errors are thrown. */
export async function readIfExists(path: string): Promise<Buffer | undefined> {
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new Error(`${path} is not a regular file`);
    size = s.size;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
  if (size > MAX_FILE_BYTES) throw new Error(`${path} is larger than ${MAX_FILE_BYTES} bytes`);
  return readFile(path);
}

/**
 * upstream `fetch_vcek_from_offline_store`: the TCB-specific file if it exists, else `vcek.der`.
 * Returns the bytes and the path used, or undefined when neither exists.
 */
export async function readOfflineVcek(
  dir: string,
  report: SnpReport,
  generation: SnpGeneration,
): Promise<{ der: Buffer; path: string } | undefined> {
  const { tcb, fallback } = vcekPaths(dir, report, generation);
  for (const path of [tcb, fallback]) {
    const der = await readIfExists(path);
    if (der !== undefined) return { der, path };
  }
  return undefined;
}

/** Collateral is written like the KBS's other state: staged, fsynced, renamed (never a partial file). */
export { writeAtomic } from '../../policy/store.js';
