/**
 * `kbs config gen-cert --host <name|ip>... --out-cert F --out-key F [--days N] [--force]`: writes a
 * self-signed EC P-256 server certificate with a subjectAltName per host, and its private key
 * (mode 0600). Existing files are never overwritten without --force; with --force each file is
 * replaced atomically (written beside it, then renamed). No openssl binary is needed.
 */
import { randomBytes } from 'node:crypto';
import { chmod, rename, rm, stat, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { hostProblem, selfSignedCertificate } from './cert/self-signed.js';
import type { Io } from './policy.js';

const USAGE = 'usage: kbs config gen-cert --host <name|ip> [--host …] --out-cert FILE --out-key FILE [--days N] [--force]';

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** Writes a new file with `mode`; with `force`, replaces an existing one atomically. */
async function writeNew(path: string, data: string, mode: number, force: boolean): Promise<void> {
  if (!force) return writeFile(path, data, { flag: 'wx', mode });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { flag: 'wx', mode });
    await chmod(tmp, mode); // the umask may have narrowed or the mode widened nothing: be exact
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

export async function genCertCommand(args: string[], io: Io): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        host: { type: 'string', multiple: true },
        'out-cert': { type: 'string' },
        'out-key': { type: 'string' },
        days: { type: 'string', default: '365' },
        force: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    io.err(`kbs config gen-cert: ${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
    return 2;
  }
  const hosts = values.host ?? [];
  const certFile = values['out-cert'];
  const keyFile = values['out-key'];
  const problems: string[] = [];
  if (hosts.length === 0) problems.push('at least one --host is required');
  for (const h of hosts) {
    const p = hostProblem(h);
    if (p) problems.push(`--host ${p}`);
  }
  if (!certFile) problems.push('--out-cert is required');
  if (!keyFile) problems.push('--out-key is required');
  if (certFile && keyFile && certFile === keyFile) problems.push('--out-cert and --out-key must be different files');
  const days = /^[0-9]{1,4}$/.test(values.days) ? Number(values.days) : NaN;
  if (!(days >= 1 && days <= 3650)) problems.push('--days must be an integer from 1 to 3650');
  if (problems.length > 0 || !certFile || !keyFile) {
    io.err(`kbs config gen-cert: ${problems.join('; ')}\n${USAGE}`);
    return 2;
  }
  if (!values.force) {
    const present = [];
    for (const f of [certFile, keyFile]) if (await exists(f)) present.push(f);
    if (present.length > 0) {
      io.err(`kbs config gen-cert: ${present.join(' and ')} already exist${present.length === 1 ? 's' : ''}; use --force to replace`);
      return 1;
    }
  }
  const { certPem, keyPem } = selfSignedCertificate({ hosts, days });
  try {
    await writeNew(keyFile, keyPem, 0o600, values.force);
    try {
      await writeNew(certFile, certPem, 0o644, values.force);
    } catch (e) {
      if (!values.force) await rm(keyFile, { force: true }); // no half-written pair
      throw e;
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    io.err(`kbs config gen-cert: cannot write the files (${code ?? (e instanceof Error ? e.message : String(e))})`);
    return 1;
  }
  io.out(`wrote ${certFile} (self-signed, EC P-256, ${days} days, subjectAltName: ${hosts.join(', ')}) and ${keyFile} (mode 0600)`);
  return 0;
}
