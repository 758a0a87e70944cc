/**
 * Storage backend throughput:
 *   npm run bench:backends
 * Prints reads/s and writes/s for small values (64 bytes) for LocalFs, SQLite and PKCS#11 (a real
 * SoftHSM2 token in a temporary directory), and the event-loop delay while PKCS#11 writes run.
 * Targets on this machine: SQLite ≥ 20,000 reads/s; PKCS#11 cached reads ≥ 5,000/s; event-loop
 * delay under 20 ms during HSM writes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { LocalFsBackend, Pkcs11Backend, SqliteBackend, type StorageBackend } from '../backends/index.js';
import type { ResourcePath } from '../backends/types.js';
import { setupSoftHsm } from '../test/helpers/softhsm.js';

const KEYS = 200;
const VALUE = randomBytes(64);
const paths: ResourcePath[] = Array.from({ length: KEYS }, (_, i) => ({ repo: 'bench', type: 'small', tag: `k${i}` }));

async function timed(n: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await op(next++);
    }),
  );
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

function row(name: string, what: string, perSec: number, target?: number): void {
  const verdict = target === undefined ? '' : `  (target ≥ ${target}/s: ${perSec >= target ? 'ok' : 'UNDER TARGET'})`;
  console.log(`${name.padEnd(10)} ${what.padEnd(28)} ${Math.round(perSec).toString().padStart(8)} /s${verdict}`);
}

async function measure(name: string, backend: StorageBackend, opts: { writes: number; reads: number; readTarget?: number }): Promise<void> {
  const writes = await timed(opts.writes, 4, (i) => backend.put(paths[i % KEYS] as ResourcePath, VALUE));
  row(name, 'writes (64 B, 4 in flight)', writes);
  const reads = await timed(opts.reads, 8, (i) => backend.get(paths[i % KEYS] as ResourcePath));
  row(name, 'reads (64 B, 8 in flight)', reads, opts.readTarget);
}

console.log(`storage backend benchmark (node ${process.version}, ${process.arch})`);
const dir = mkdtempSync(join(tmpdir(), 'kbs-bench-backends-'));
try {
  const fsBackend = await LocalFsBackend.open({ dirPath: join(dir, 'repository') });
  await measure('LocalFs', fsBackend, { writes: 2000, reads: 20000 });
  await fsBackend.close();

  const sqlite = await SqliteBackend.open({ dbPath: join(dir, 'resources.db') });
  await measure('Sqlite', sqlite, { writes: 2000, reads: 50000, readTarget: 20000 });
  await sqlite.close();

  const hsm = setupSoftHsm({ tokens: ['bench'] });
  try {
    const pkcs11 = await Pkcs11Backend.open({ module: hsm.module, tokenLabel: hsm.tokenLabel, pin: hsm.pin });
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    await measure('Pkcs11', pkcs11, { writes: 400, reads: 20000, readTarget: 5000 });
    delay.disable();
    const maxMs = delay.max / 1e6;
    console.log(
      `${'Pkcs11'.padEnd(10)} ${'event-loop delay, max'.padEnd(28)} ${maxMs.toFixed(1).padStart(8)} ms (p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms; target < 20 ms: ${maxMs < 20 ? 'ok' : 'OVER TARGET'})`,
    );
    await pkcs11.close();
  } finally {
    await hsm.cleanup();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
