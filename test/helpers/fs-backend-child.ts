/**
 * Test helper: a LocalFs or Sqlite backend, compiled, driven in a child process by a list of
 * operations (one result each), for the cases that need another user or a private mount namespace
 * (namespaces.ts). `open` with `dir` opens LocalFs, with `db` Sqlite.
 */
import { runNodeChild } from './namespaces.js';

export type ChildOp =
  | { op: 'open'; dir: string }
  | { op: 'open'; db: string; requireWritable?: boolean }
  | { op: 'get' | 'delete'; path: string }
  | { op: 'put'; path: string; value: string /* base64 */ }
  | { op: 'list' }
  | { op: 'close' }
  | { op: 'readdir'; dir: string };

export interface ChildResult {
  ok: boolean;
  code?: string;
  name?: string;
  message?: string;
  readOnly?: boolean;
  value?: string;
  list?: Array<[string, number]>;
  entries?: string[];
}

const BACKENDS_URL = new URL('../../backends/index.js', import.meta.url).href;

const CHILD_SCRIPT = `
import { readdir } from 'node:fs/promises';
const { LocalFsBackend, SqliteBackend, resourcePathFromString } = await import(process.env.KBS_BACKENDS_URL);
const open = (op) =>
  op.db === undefined ? LocalFsBackend.open({ dirPath: op.dir }) : SqliteBackend.open({ dbPath: op.db, requireWritable: op.requireWritable ?? true });
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const ops = JSON.parse(Buffer.concat(chunks).toString());
const out = [];
let backend;
for (const op of ops) {
  try {
    switch (op.op) {
      case 'open': backend = await open(op); out.push({ ok: true, readOnly: backend.readOnly }); break;
      case 'get': out.push({ ok: true, value: Buffer.from(await backend.get(resourcePathFromString(op.path))).toString('base64') }); break;
      case 'put': await backend.put(resourcePathFromString(op.path), Buffer.from(op.value, 'base64')); out.push({ ok: true }); break;
      case 'delete': await backend.delete(resourcePathFromString(op.path)); out.push({ ok: true }); break;
      case 'list': out.push({ ok: true, list: (await backend.list()).map((i) => [i.path, i.size]) }); break;
      case 'close': await backend.close(); backend = undefined; out.push({ ok: true }); break;
      case 'readdir': out.push({ ok: true, entries: (await readdir(op.dir)).sort() }); break;
      default: throw new Error('unknown op ' + op.op);
    }
  } catch (e) {
    out.push({ ok: false, code: e.code, name: e.name, message: e.message });
  }
}
if (backend) await backend.close();
process.stdout.write(JSON.stringify(out));
`;

/** Runs `ops` in a child process, as `uid` or inside a private mount namespace after `mountSetup`. */
export async function runChild(ops: ChildOp[], how: { uid?: number; mountSetup?: string } = {}): Promise<ChildResult[]> {
  const nodeArgs = ['--input-type=module', '-e', CHILD_SCRIPT];
  return (await runNodeChild(nodeArgs, ops, { ...how, env: { KBS_BACKENDS_URL: BACKENDS_URL } })) as ChildResult[];
}
