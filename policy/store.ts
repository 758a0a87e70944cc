/**
 * The resource-policy store: the policy in force, compiled, persisted as a file so that it survives
 * restarts. Setting a policy compiles it first; an invalid policy is refused and the old one stays
 * in force. Writes are atomic (temp file, fsync, rename, fsync of the directory).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { compile, type CompileOptions, type Policy } from './policy.js';
import { samplePolicyText } from './samples.js';

export class ResourcePolicyStore {
  private constructor(
    private readonly path: string,
    private policy: Policy,
    private readonly options: CompileOptions,
  ) {}

  /**
   * Loads the stored policy, or stores Trustee's default policy when there is none (as upstream does
   * at start-up, without overwriting). A stored policy that does not compile stops the start.
   */
  static async open(path: string, options: CompileOptions = {}): Promise<ResourcePolicyStore> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      text = samplePolicyText('default');
      await writeAtomic(path, text);
    }
    let policy: Policy;
    try {
      policy = compile(text, options);
    } catch (e) {
      throw new Error(`the stored resource policy ${path} does not compile: ${e instanceof Error ? e.message : String(e)}`);
    }
    return new ResourcePolicyStore(path, policy, options);
  }

  current(): Policy {
    return this.policy;
  }

  /** Compiles and persists a new policy; throws PolicyError (and changes nothing) when it does not compile. */
  async set(text: string): Promise<Policy> {
    const policy = compile(text, this.options);
    await writeAtomic(this.path, text);
    this.policy = policy;
    return policy;
  }
}

/**
 * Writes `text` to a new temporary file `<dir>/<prefix><random>.tmp` (mode 0600) and fsyncs it;
 * returns its path. On failure nothing is left behind. The caller renames it into place.
 */
export async function stageFile(dir: string, text: string | Uint8Array, prefix = '.'): Promise<string> {
  const tmp = join(dir, `${prefix}${randomBytes(8).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  return tmp;
}

/** Replaces `path` with `text` atomically and durably (staged file, fsync, rename, directory fsync). */
export async function writeAtomic(path: string, text: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = await stageFile(dir, text);
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
