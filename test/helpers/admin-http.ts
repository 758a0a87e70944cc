/**
 * HTTP helpers for the admin API tests: plain fetch calls, raw node:http requests (for paths that
 * fetch would normalize, and chunked bodies), problem-body assertions, admin token minting with
 * jose, and a work_dir snapshot to prove that a refused request wrote nothing.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { ExecutionContext } from 'ava';
import { SignJWT, type JWTPayload } from 'jose';
import { startKbs } from '../../server/start.js';
import { testServerSetup } from './kbs-server.js';

export const ERR = 'https://github.com/confidential-containers/kbs/errors/';

export interface Reply {
  status: number;
  contentType: string | null;
  body: Buffer;
  text: string;
}

export interface CallOptions {
  token?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

/** One request with fetch; `token` becomes `Authorization: Bearer <token>`. */
export async function call(base: string, method: string, path: string, o: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...(o.token !== undefined ? { Authorization: `Bearer ${o.token}` } : {}), ...(o.headers ?? {}) };
  const res = await fetch(base + path, { method, headers, ...(o.body !== undefined ? { body: o.body } : {}) });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, contentType: res.headers.get('content-type'), body, text: body.toString('utf8') };
}

/**
 * A request sent byte-for-byte as given (no URL normalization: `..` and `%2e` reach the server).
 * `chunks` are written one by one with chunked transfer encoding when no content-length is given.
 */
export function rawCall(
  base: string,
  method: string,
  path: string,
  o: { headers?: Record<string, string>; body?: Buffer | string; chunks?: Buffer[] } = {},
): Promise<Reply> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method, path, headers: o.headers ?? {} },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const body = Buffer.concat(parts);
          resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'] ?? null, body, text: body.toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (o.chunks) {
      for (const c of o.chunks) req.write(c);
      req.end();
    } else {
      req.end(o.body);
    }
  });
}

export interface ProblemExpectation {
  /** exact detail */
  detail?: string;
  prefix?: string;
  includes?: string;
  matches?: RegExp;
}

/** Asserts status, problem `type` (exact variant) and the detail. Returns the detail. */
export function assertProblem(t: ExecutionContext, r: Reply, status: number, variant: string, e: ProblemExpectation = {}): string {
  t.is(r.status, status, `status (body ${r.text.slice(0, 300)})`);
  t.regex(r.contentType ?? '', /^application\/json/);
  let body: { type?: unknown; detail?: unknown };
  try {
    body = JSON.parse(r.text) as { type?: unknown; detail?: unknown };
  } catch {
    t.fail(`not a JSON problem body: ${r.text.slice(0, 300)}`);
    return '';
  }
  t.deepEqual(Object.keys(body).sort(), ['detail', 'type']);
  t.is(body.type, ERR + variant);
  const detail = typeof body.detail === 'string' ? body.detail : '';
  t.is(typeof body.detail, 'string');
  if (e.detail !== undefined) t.is(detail, e.detail);
  if (e.prefix !== undefined) t.true(detail.startsWith(e.prefix), `detail ${JSON.stringify(detail)} should start with ${JSON.stringify(e.prefix)}`);
  if (e.includes !== undefined) t.true(detail.includes(e.includes), `detail ${JSON.stringify(detail)} should contain ${JSON.stringify(e.includes)}`);
  if (e.matches !== undefined) t.regex(detail, e.matches);
  return detail;
}

/** Asserts a 200 with an empty body (admin write / delete / policy set). */
export function assertEmptyOk(t: ExecutionContext, r: Reply): void {
  t.is(r.status, 200, r.text.slice(0, 300));
  t.is(r.body.length, 0);
}

export interface MintOptions {
  alg: string;
  kid?: string;
  /** seconds since the epoch; null: no `exp` claim; default now + 10 min */
  exp?: number | null;
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** Signs an admin JWT with jose. */
export async function mint(key: KeyObject | Uint8Array, claims: JWTPayload, o: MintOptions): Promise<string> {
  const now = nowSeconds();
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: o.alg, typ: 'JWT', ...(o.kid !== undefined ? { kid: o.kid } : {}) }).setIssuedAt(now);
  if (o.exp !== null) jwt = jwt.setExpirationTime(o.exp ?? now + 600);
  return jwt.sign(key);
}

/** An unsecured JWT (`alg: none`, empty signature). */
export function unsecuredJwt(claims: JWTPayload): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
}

/** Every regular file under `dir` (relative path → sha256 of its content). */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

export function sha384Hex(text: string): string {
  return createHash('sha384').update(text, 'utf8').digest('hex');
}

/**
 * A KBS started directly (not through startTestKbs) so that start options such as the shutdown
 * grace period can be set. Plain HTTP on an ephemeral loopback port, embedded-default admin.
 */
export async function startDirect(o: { workDir?: string; toml?: string; shutdownGraceMs?: number } = {}): Promise<{
  url: string;
  workDir: string;
  adminToken: string;
  logs(): string;
  close(): Promise<void>;
}> {
  const workDir = o.workDir ?? mkdtempSync(join(tmpdir(), 'kbs-direct-'));
  const base = `work_dir = ${JSON.stringify(workDir)}\n${o.toml ?? ''}\n`;
  const { config, log, logs } = testServerSetup(base, workDir);
  const running = await startKbs(config, {
    log,
    ...(o.shutdownGraceMs !== undefined ? { shutdownGraceMs: o.shutdownGraceMs } : {}),
  });
  return {
    url: running.urls[0] as string,
    workDir,
    adminToken: readFileSync(join(workDir, 'admin-token'), 'utf8').trim(),
    logs,
    close: () => running.close(),
  };
}
