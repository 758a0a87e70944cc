/**
 * Test helper: Node.js child processes for what the test process itself cannot do: run as another
 * user (EACCES; tests usually run as root, where chmod does not stop writes) or inside a private
 * mount namespace (`unshare -m`) with a read-only bind mount (EROFS) or a tiny tmpfs (ENOSPC) that
 * exist only in the child's namespace. What this machine allows is probed once, synchronously, when
 * first asked (test files ask at load, to pick `test` or `test.skip`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const isRoot = process.getuid?.() === 0;
/** uid and gid of `nobody`. */
export const NOBODY = 65534;

let dropProbe: boolean | undefined;
let unshareProbe: boolean | undefined;

/** Probed on first use: whether a child process may run as `nobody`. */
export function canDropPrivileges(): boolean {
  dropProbe ??= isRoot && spawnSync(process.execPath, ['-e', ''], { uid: NOBODY, gid: NOBODY, stdio: 'ignore' }).status === 0;
  return dropProbe;
}

/** Probed on first use: whether a child process may mount a tmpfs in a private mount namespace. */
export function canUnshareMount(): boolean {
  unshareProbe ??= ((): boolean => {
    if (!isRoot) return false;
    const probe = mkdtempSync(path.join(os.tmpdir(), 'kbs-unshare-probe-'));
    try {
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=16k kbs-probe "$0"', probe], {
        stdio: 'ignore',
      });
      return r.status === 0;
    } catch {
      return false;
    } finally {
      rmSync(probe, { recursive: true, force: true });
    }
  })();
  return unshareProbe;
}

/** A path quoted for the mount setup shell command. */
export function shq(p: string): string {
  if (p.includes("'")) throw new Error(`unexpected quote in ${p}`);
  return `'${p}'`;
}

/** Mount setup: `source` bind-mounted read-only on `target` (an existing directory). */
export function readOnlyBindMount(source: string, target: string): string {
  return `mount --bind ${shq(source)} ${shq(target)}; mount -o remount,bind,ro ${shq(target)}`;
}

/** Mount setup: a tmpfs of `size` (e.g. "256k"), mode 0700, on `dir`. */
export function tmpfsMount(dir: string, size: string, name = 'kbs-test'): string {
  return `mount -t tmpfs -o size=${size},mode=0700 ${name} ${shq(dir)}`;
}

export interface ChildOptions {
  /** Run as this uid (and the same gid). */
  uid?: number;
  /** Shell commands run inside a private mount namespace (`unshare -m`) before node starts. */
  mountSetup?: string;
  /** Added to the child's environment. */
  env?: Record<string, string>;
  /** How errors name the child (default "child"). */
  name?: string;
}

/**
 * Runs `node ...nodeArgs`, writes `input` to its stdin as JSON (values can be larger than an
 * environment variable may be) and resolves with its stdout parsed as JSON. A non-zero exit
 * rejects with its stderr.
 */
export async function runNodeChild(nodeArgs: readonly string[], input: unknown, how: ChildOptions = {}): Promise<unknown> {
  const [cmd, args] =
    how.mountSetup === undefined
      ? [process.execPath, [...nodeArgs]]
      : ['unshare', ['-m', '--propagation', 'private', 'sh', '-c', `set -e; ${how.mountSetup}; exec "$@"`, 'sh', process.execPath, ...nodeArgs]];
  const child = spawn(cmd, args, {
    env: { ...process.env, ...how.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(how.uid === undefined ? {} : { uid: how.uid, gid: how.uid }),
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => stdout.push(c));
  child.stderr.on('data', (c: Buffer) => stderr.push(c));
  child.stdin.end(JSON.stringify(input));
  const [status] = (await once(child, 'close')) as [number | null];
  if (status !== 0) throw new Error(`${how.name ?? 'child'} exited with ${status}: ${Buffer.concat(stderr).toString()}`);
  return JSON.parse(Buffer.concat(stdout).toString()) as unknown;
}
