/**
 * Child process for tests: a Pkcs11Backend in its own process (its own SOFTHSM2_CONF, possibly in
 * a private mount namespace). Reads { module, pin, soPin, ops } as JSON on stdin, writes one result
 * per op as JSON on stdout. See softhsm.ts (`runBackendChild`).
 */
import { spawnSync } from 'node:child_process';
import { Pkcs11Backend, resourcePathFromString, type Pkcs11Options } from '../../backends/index.js';
import type { BackendChildOp, BackendChildResult } from './softhsm.js';

interface Input {
  module: string;
  pin: string;
  soPin: string;
  ops: BackendChildOp[];
}

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const input = JSON.parse(Buffer.concat(chunks).toString()) as Input;
const logs: string[] = [];
const logger = { info: (m: string) => logs.push(`info ${m}`), warn: (m: string) => logs.push(`warn ${m}`) };
let backend: Pkcs11Backend | null = null;
const need = (): Pkcs11Backend => {
  if (backend === null) throw new Error('no backend open');
  return backend;
};

async function run(op: BackendChildOp): Promise<BackendChildResult> {
  switch (op.op) {
    case 'init-token': {
      const r = spawnSync('softhsm2-util', ['--init-token', '--free', '--label', op.label, '--so-pin', input.soPin, '--pin', input.pin], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`softhsm2-util failed with ${r.status}`);
      return { ok: true };
    }
    case 'open': {
      const options: Pkcs11Options = { module: input.module, pin: input.pin, logger };
      if (op.slotIndex !== undefined) options.slotIndex = op.slotIndex;
      if (op.tokenLabel !== undefined) options.tokenLabel = op.tokenLabel;
      if (op.maxValueBytes !== undefined) options.maxValueBytes = op.maxValueBytes;
      backend = await Pkcs11Backend.open(options);
      return { ok: true, tokenLabel: backend.tokenLabel };
    }
    case 'put':
      await need().put(resourcePathFromString(op.path), Buffer.from(op.valueB64, 'base64'));
      return { ok: true };
    case 'get':
      return { ok: true, valueB64: Buffer.from(await need().get(resourcePathFromString(op.path))).toString('base64') };
    case 'delete':
      await need().delete(resourcePathFromString(op.path));
      return { ok: true };
    case 'list':
      return { ok: true, list: (await need().list()).map((i) => [i.path, i.size]) };
    case 'stats':
      return { ok: true, stats: { ...(await need().stats()) } };
    case 'close':
      await need().close();
      backend = null;
      return { ok: true };
  }
}

const out: BackendChildResult[] = [];
for (const op of input.ops) {
  try {
    out.push(await run(op));
  } catch (e) {
    const err = e as { code?: unknown; message?: unknown };
    out.push({ ok: false, code: typeof err.code === 'string' ? err.code : 'none', message: String(err.message) });
  }
}
const last = backend as Pkcs11Backend | null;
if (last !== null) await last.close();
out.push({ ok: true, logs });
process.stdout.write(JSON.stringify(out));
