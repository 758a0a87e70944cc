/**
 * Load benchmark of the KBS server:
 *   npm run bench
 * Starts the KBS (`kbs serve`, the embedded default with plain HTTP on a free loopback port, admin
 * InsecureAllowAll, log level warn, max_sessions 200000, rate limits off, state in a temporary work_dir) as a child
 * process, and the two baselines as child processes of their own, then measures from this process:
 *
 *   (a) a bare node:http server answering a constant                       (bench/bare-constant.ts)
 *   (b) a bare node:http server doing only the JWE of the resource for a fixed P-256 key
 *                                                                           (bench/bare-jwe.ts)
 *   (c) GET /kbs/v0/resource/… with the cookie of an attested session      (autocannon)
 *   (d) GET /kbs/v0/resource/… with `Authorization: Bearer <token>`        (autocannon)
 *   (e) complete RCAR flows (auth, attest with sample evidence, GET, decrypt) with 64 concurrent
 *       clients (cli/client KbsClient and TeeKeyPair, each client on its own keep-alive connection
 *       written straight to a socket, as autocannon does): flows/s, p50/p99 flow latency
 *   (f) the KBS's RSS (VmRSS) with 100,000 live sessions (POST /kbs/v0/auth), on a fresh server
 *
 * and prints every figure, the ratios c/b and d/b, and each target with ok / UNDER TARGET. Next to
 * each figure: the CPU time the server process (all its threads) spent per request or per flow, and
 * for (e) the CPU time of the clients, read from /proc: on a 2-core machine the load generator and
 * the server share the CPUs, and these figures do not depend on how the two are scheduled.
 * Targets (2-core machine): c/b ≥ 0.6, d/b ≥ 0.6, ≥ 800 flows/s with p99 < 100 ms, RSS < 300 MB.
 *
 * Everything runs on 127.0.0.1, every phase is bounded (about 1–2 minutes in all) and every child
 * process is stopped at the end. BENCH_ONLY=<letters> runs a subset (e.g. BENCH_ONLY=bc; the ratios
 * need b). BENCH_CPU_PROF=<dir> runs the KBS children with `--cpu-prof` (profiles are written to
 * <dir> when they stop). BENCH_KBS_NODE_ARGS="<flags>" passes node flags to the KBS children (e.g.
 * `--trace-gc`) and BENCH_CHILD_OUTPUT=<file> appends every child's output to a file.
 *
 * The KBS runs with its defaults, so resource JWEs get their ECDH key agreement from the crypto worker
 * thread ([http_server] crypto_threads = 1 on this machine), while (b) does it on its one thread:
 * (c0) repeats (c) on a KBS with crypto_threads = 0, for the ratio on equal terms.
 */
import autocannon, { type Result } from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { KbsClient } from '../cli/client/kbs-client.js';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { packageRoot, samplePolicyText } from '../policy/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const KBS_CLI = join(packageRoot(), 'dist', 'cli', 'kbs.js');

/** autocannon runs (a)–(d): connections, warm-up and measured seconds. */
const HTTP_CONNECTIONS = 32;
const WARMUP_SECONDS = 2;
const MEASURE_SECONDS = 7;
/** Extra warm-up of the KBS GET path before (c), per credential kind. */
const KBS_WARMUP_SECONDS = 2;
/** (e): concurrent clients, warm-up and measured seconds. */
const FLOW_CLIENTS = 64;
const FLOW_WARMUP_MS = 1500;
const FLOW_MEASURE_MS = 10_000;
/** (f) */
const SESSIONS = 100_000;
const SESSION_CONNECTIONS = 32;

const TARGET_RATIO = 0.6;
const TARGET_FLOWS_PER_SEC = 800;
const TARGET_FLOW_P99_MS = 100;
const TARGET_RSS_MB = 300;

const RESOURCE_PATH = 'bench/key/one';
const RESOURCE = randomBytes(64);
/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on Linux). */
const CLOCK_TICKS = 100;
const CPU_PROF_DIR = process.env['BENCH_CPU_PROF'] ? resolve(process.env['BENCH_CPU_PROF']) : undefined;
/** BENCH_KBS_NODE_ARGS: extra node flags for the KBS children (e.g. `--trace-gc`), space-separated. */
/** BENCH_CHILD_OUTPUT=<file>: every child's stdout and stderr are appended to this file. */
const CHILD_OUTPUT = process.env['BENCH_CHILD_OUTPUT'] ? resolve(process.env['BENCH_CHILD_OUTPUT']) : undefined;
const KBS_NODE_ARGS = (process.env['BENCH_KBS_NODE_ARGS'] ?? '').split(' ').filter(Boolean);

// ---------------------------------------------------------------------------------------------
// child processes

interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** Last lines of its stdout/stderr, shown when something goes wrong. */
  output: string[];
  exited: Promise<number | null>;
}

const children = new Set<Child>();
process.once('exit', () => {
  for (const c of children) c.proc.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const c of children) c.proc.kill('SIGKILL');
    process.exit(130);
  });
}

function startChild(name: string, args: string[], cwd?: string): Child {
  const proc = spawn(process.execPath, args, { cwd: cwd ?? process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
  if (proc.pid === undefined) throw new Error(`${name}: could not start`);
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    if (CHILD_OUTPUT !== undefined) appendFileSync(CHILD_OUTPUT, chunk);
    output.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (output.length > 50) output.splice(0, output.length - 50);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  const child: Child = { name, proc, pid: proc.pid, output, exited };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

async function stopChild(c: Child): Promise<void> {
  if (!children.has(c)) return;
  c.proc.kill('SIGTERM');
  const code = await Promise.race([c.exited, sleep(10_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    c.proc.kill('SIGKILL');
    await c.exited;
  }
}

function childFailed(c: Child, what: string): Error {
  return new Error(`${c.name}: ${what}\n  ${c.output.join('\n  ')}`);
}

/** A baseline server: waits for its `{"port": N}` line. */
async function startBare(name: string, module: string, args: string[] = []): Promise<{ child: Child; url: string }> {
  const child = startChild(name, [join(HERE, module), ...args]);
  const port = await new Promise<number>((res, rej) => {
    const timer = setTimeout(() => rej(childFailed(child, 'did not report its port within 10 s')), 10_000);
    child.proc.stdout?.on('data', (chunk: Buffer) => {
      const m = /"port":(\d+)/.exec(chunk.toString('utf8'));
      if (m) {
        clearTimeout(timer);
        res(Number(m[1]));
      }
    });
    void child.exited.then(() => rej(childFailed(child, 'exited before listening')));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

/** `kbs serve -c <config>` in its own work_dir; resolves when /healthz answers. */
async function startKbsChild(name: string, dir: string, httpServerKeys: string[] = []): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const configFile = join(dir, 'kbs-config.toml');
  writeFileSync(
    configFile,
    [
      `work_dir = ${JSON.stringify(dir)}`,
      '[http_server]',
      `sockets = ["127.0.0.1:${port}"]`,
      'insecure_http = true',
      ...httpServerKeys,
      '[attestation_service]',
      'max_sessions = 200000',
      '[admin]',
      'authorization_mode = "InsecureAllowAll"',
      '[rate_limit]', // 64 clients from 127.0.0.1: the per-client limits would measure themselves
      'enabled = false',
      '[logging]',
      'level = "warn"',
      '',
    ].join('\n'),
  );
  const prof = CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
  const child = startChild(name, [...prof, ...KBS_NODE_ARGS, KBS_CLI, 'serve', '-c', configFile], dir);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  let exited = false;
  void child.exited.then(() => (exited = true));
  for (;;) {
    if (exited) throw childFailed(child, 'exited during start-up');
    try {
      const res = await fetch(`${url}/healthz`);
      await res.arrayBuffer();
      if (res.status === 200) return { child, url };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw childFailed(child, 'not answering /healthz after 20 s');
    await sleep(50);
  }
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** CPU time (user + system, all threads) a process has used so far, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** CPU time this (load generator) process has used so far, in ms. */
function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

// ---------------------------------------------------------------------------------------------
// measurements

interface HttpFigure {
  reqPerSec: number;
  p50: number;
  p99: number;
  /** CPU time of the server process per request, in ms. */
  cpuPerReq: number;
}

async function load(name: string, url: string, pid: number, headers: Record<string, string> = {}): Promise<HttpFigure> {
  const opts = { url, connections: HTTP_CONNECTIONS, headers };
  await autocannon({ ...opts, duration: WARMUP_SECONDS });
  const cpu0 = cpuMs(pid);
  const r = await autocannon({ ...opts, duration: MEASURE_SECONDS });
  const cpu = cpuMs(pid) - cpu0;
  checkAllOk(name, r, r.requests.total);
  return { reqPerSec: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, cpuPerReq: cpu / r.requests.total };
}

function checkAllOk(name: string, r: Result, expected: number): void {
  const ok = r['2xx'];
  if (r.errors > 0 || r.timeouts > 0 || r.non2xx > 0 || ok < expected) {
    throw new Error(`${name}: ${ok} of ${expected} answered 2xx (${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts)`);
  }
}

/** Captures the session cookie the KBS sets, for the cookie run (c). */
function cookieCapturingFetch(sink: { cookie?: string }): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    const m = /kbs-session-id=([0-9a-f]{32})/.exec(res.headers.get('set-cookie') ?? '');
    if (m) sink.cookie = `kbs-session-id=${m[1]}`;
    return res;
  };
}

/**
 * A `fetch` for one client of (e) over its own keep-alive connection, written straight to a socket:
 * HTTP/1.1 requests with Content-Length bodies, responses with Content-Length (all the KBS sends).
 * A guest holds one connection to its KBS; this is the load generator's side of it with nothing
 * else (the way autocannon drives (a)–(d)), so that the CPU it takes from the 2 shared cores is
 * spent on the flow itself (evidence, JSON, decryption) rather than on an HTTP client library.
 */
function connectionFetch(origin: string): typeof fetch {
  const { hostname, port, host } = new URL(origin);
  let socket: Socket | undefined;
  let received: Buffer = Buffer.alloc(0);
  let pending: { resolve: (r: Response) => void; reject: (e: Error) => void } | undefined;

  const fail = (e: Error) => {
    socket?.destroy();
    socket = undefined;
    received = Buffer.alloc(0);
    const p = pending;
    pending = undefined;
    p?.reject(e);
  };
  const onData = (chunk: Buffer) => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const end = received.indexOf('\r\n\r\n');
    if (end < 0 || pending === undefined) return;
    const lines = received.toString('latin1', 0, end).split('\r\n');
    const status = Number((lines[0] ?? '').split(' ')[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name) as string}, ${value}` : value);
    }
    const length = Number(headers.get('content-length'));
    if (!Number.isSafeInteger(length)) return fail(new Error('response without Content-Length'));
    if (received.length < end + 4 + length) return;
    const body = received.toString('utf8', end + 4, end + 4 + length);
    received = received.subarray(end + 4 + length);
    const p = pending;
    pending = undefined;
    const response = { status, headers: { get: (n: string) => headers.get(n.toLowerCase()) ?? null }, text: async () => body, json: async () => JSON.parse(body) as unknown };
    p.resolve(response as unknown as Response);
  };

  const request = (input: string | URL | Request, init?: RequestInit): Promise<Response> =>
    new Promise((resolve, reject) => {
      if (pending !== undefined) return reject(new Error('one request at a time per connection'));
      if (socket === undefined) {
        socket = connect({ host: hostname, port: Number(port), noDelay: true });
        socket.on('data', onData);
        socket.on('error', fail);
        socket.on('close', () => fail(new Error('connection closed')));
      }
      pending = { resolve, reject };
      const url = String(input);
      const path = url.slice(url.indexOf('/', url.indexOf('//') + 2));
      const body = init?.body === undefined || init.body === null ? undefined : Buffer.from(init.body as string | Uint8Array);
      let head = `${init?.method ?? 'GET'} ${path} HTTP/1.1\r\nHost: ${host}\r\n`;
      for (const [k, v] of Object.entries((init?.headers ?? {}) as Record<string, string>)) head += `${k}: ${v}\r\n`;
      if (body !== undefined) head += `Content-Length: ${body.length}\r\n`;
      head += '\r\n';
      socket.write(body === undefined ? head : Buffer.concat([Buffer.from(head, 'latin1'), body]));
    });
  return request as typeof fetch;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

interface FlowFigure {
  flows: number;
  flowsPerSec: number;
  p50: number;
  p99: number;
  /** CPU time per flow of the server process and of this (client) process, in ms. */
  serverCpu: number;
  clientCpu: number;
  /** Flows that failed (not counted in flows/s), and the first failure. */
  errors: number;
  firstError: string | undefined;
}

/**
 * `clients` concurrent loops of complete RCAR flows for `ms` milliseconds: a new KbsClient (no
 * cookie) per flow, /auth, /attest with sample evidence bound to the loop's TEE key, GET of the
 * resource with the session cookie, decryption and comparison.
 */
async function flows(url: string, pid: number, clients: number, ms: number): Promise<FlowFigure> {
  const keys = Array.from({ length: clients }, () => TeeKeyPair.generate());
  const latencies: number[] = [];
  const cpu0 = cpuMs(pid);
  const own0 = ownCpuMs();
  const t0 = performance.now();
  const deadline = t0 + ms;
  let errors = 0;
  let firstError: string | undefined;
  await Promise.all(
    keys.map(async (key) => {
      const fetchImpl = connectionFetch(url);
      while (performance.now() < deadline) {
        const start = performance.now();
        try {
          const client = new KbsClient({ url, fetch: fetchImpl });
          await client.attest(key);
          const value = await client.getResource(RESOURCE_PATH, key);
          if (!RESOURCE.equals(value)) throw new Error('the decrypted resource differs from the stored one');
          latencies.push(performance.now() - start);
        } catch (e) {
          errors++;
          firstError ??= e instanceof Error ? e.message : String(e);
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const n = latencies.length;
  const serverCpu = (cpuMs(pid) - cpu0) / n;
  const clientCpu = (ownCpuMs() - own0) / n;
  latencies.sort((x, y) => x - y);
  return { flows: n, flowsPerSec: n / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), serverCpu, clientCpu, errors, firstError };
}

// ---------------------------------------------------------------------------------------------
// output

const rows: string[][] = [];
function row(figure: string, value: string, target = '', ok?: boolean): void {
  rows.push([figure, value, target, ok === undefined ? '' : ok ? 'ok' : 'UNDER TARGET']);
  console.log(`  measured: ${figure}: ${value}`);
}

function printTable(): void {
  const head = ['figure', 'value', 'target', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  console.log('');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const http = (f: HttpFigure) => `${fmt(f.reqPerSec)} req/s  (p50 ${f.p50} ms, p99 ${f.p99} ms; server CPU ${fmt(f.cpuPerReq, 3)} ms/req)`;

/**
 * A KBS holding the resource under a permissive policy (the default one denies sample evidence),
 * and one attested session for `key`: its cookie and its token (Bearer), both checked once by
 * decryption.
 */
async function startAttestedKbs(
  name: string,
  key: TeeKeyPair,
  httpServerKeys: string[] = [],
): Promise<{ kbs: { child: Child; url: string }; cookie: string; token: string; resourceUrl: string }> {
  const kbs = await startKbsChild(name, mkdtempSync(join(dir, 'kbs-')), httpServerKeys);
  const admin = new KbsClient({ url: kbs.url });
  await admin.setResource(RESOURCE_PATH, RESOURCE);
  await admin.setResourcePolicy(samplePolicyText('allow_all'));
  const jar: { cookie?: string } = {};
  const guest = new KbsClient({ url: kbs.url, fetch: cookieCapturingFetch(jar) });
  const token = await guest.attest(key);
  if (!RESOURCE.equals(await guest.getResource(RESOURCE_PATH, key))) throw new Error(`${name}: cookie GET: wrong resource`);
  if (!RESOURCE.equals(await new KbsClient({ url: kbs.url }).getResource(RESOURCE_PATH, key, token))) {
    throw new Error(`${name}: Bearer GET: wrong resource`);
  }
  if (!jar.cookie) throw new Error(`${name}: no session cookie`);
  return { kbs, cookie: jar.cookie, token, resourceUrl: `${kbs.url}/kbs/v0/resource/${RESOURCE_PATH}` };
}

// ---------------------------------------------------------------------------------------------
// main

/** BENCH_ONLY=<letters> runs a subset of the figures (e.g. BENCH_ONLY=bc when profiling). */
const only = process.env['BENCH_ONLY']?.toLowerCase();
const run = (figure: string) => only === undefined || only.includes(figure);

console.log(
  `KBS load benchmark (node ${process.version}, ${process.arch}; (a)-(d): ${HTTP_CONNECTIONS} connections, ` +
    `${MEASURE_SECONDS} s each after ${WARMUP_SECONDS} s warm-up; (e): ${FLOW_CLIENTS} clients, ${FLOW_MEASURE_MS / 1000} s)`,
);
const dir = mkdtempSync(join(tmpdir(), 'kbs-bench-server-'));
let failed = false;
try {
  const key = TeeKeyPair.generate();
  const { kbs, cookie, token, resourceUrl } = await startAttestedKbs('kbs', key);

  // (a), (b): the baselines, one at a time, each alone with the load generator
  let b: HttpFigure | undefined;
  if (run('a')) {
    const constant = await startBare('bare-constant', 'bare-constant.js');
    const a = await load('(a)', `${constant.url}/`, constant.child.pid);
    await stopChild(constant.child);
    row('(a) bare node:http, constant', http(a));
  }
  if (run('b')) {
    const jwe = await startBare('bare-jwe', 'bare-jwe.js', [JSON.stringify(key.publicJwk()), RESOURCE.toString('base64')]);
    b = await load('(b)', `${jwe.url}/`, jwe.child.pid);
    await stopChild(jwe.child);
    row('(b) bare node:http, JWE only', http(b));
  }

  // (c), (d), after a longer warm-up of the KBS's GET path (both credentials): its first phase
  // would otherwise also pay for JIT tier-up and heap growth
  if (run('c') || run('d')) {
    const credentials: Record<string, string>[] = [{ Cookie: cookie }, { Authorization: `Bearer ${token}` }];
    for (const headers of credentials) {
      await autocannon({ url: resourceUrl, connections: HTTP_CONNECTIONS, headers, duration: KBS_WARMUP_SECONDS });
    }
  }
  const ratio = (name: string, x: HttpFigure) => {
    if (b === undefined) return;
    const r = x.reqPerSec / b.reqPerSec;
    row(name, fmt(r, 2), `>= ${TARGET_RATIO}`, r >= TARGET_RATIO);
  };
  if (run('c')) {
    const c = await load('(c)', resourceUrl, kbs.child.pid, { Cookie: cookie });
    row('(c) resource GET, attested cookie', http(c));
    ratio('c/b', c);
  }
  if (run('c') && run('b')) {
    // (c0): (c) with the ECDH on the event loop, like (b)
    const single = await startAttestedKbs('kbs-no-crypto-thread', key, ['crypto_threads = 0']);
    const headers = { Cookie: single.cookie };
    await autocannon({ url: single.resourceUrl, connections: HTTP_CONNECTIONS, headers, duration: KBS_WARMUP_SECONDS });
    const c0 = await load('(c0)', single.resourceUrl, single.kbs.child.pid, headers);
    await stopChild(single.kbs.child);
    row('(c0) (c) with crypto_threads = 0', http(c0));
    ratio('c0/b', c0);
  }
  if (run('d')) {
    const d = await load('(d)', resourceUrl, kbs.child.pid, { Authorization: `Bearer ${token}` });
    row('(d) resource GET, Bearer token', http(d));
    ratio('d/b', d);
  }

  // (e)
  if (run('e')) {
    await flows(kbs.url, kbs.child.pid, FLOW_CLIENTS, FLOW_WARMUP_MS);
    const e = await flows(kbs.url, kbs.child.pid, FLOW_CLIENTS, FLOW_MEASURE_MS);
    if (e.errors > 0) {
      failed = true;
      console.error(`(e): ${e.errors} flows failed; the first: ${e.firstError}`);
    }
    row(
      `(e) RCAR flows/s, ${FLOW_CLIENTS} clients`,
      `${fmt(e.flowsPerSec)} flows/s  (${fmt(e.flows)} flows in ${FLOW_MEASURE_MS / 1000} s; CPU ms/flow: server ${fmt(e.serverCpu, 2)}, clients ${fmt(e.clientCpu, 2)})`,
      `>= ${TARGET_FLOWS_PER_SEC}`,
      e.flowsPerSec >= TARGET_FLOWS_PER_SEC,
    );
    row('(e) RCAR flow latency', `p50 ${fmt(e.p50, 1)} ms, p99 ${fmt(e.p99, 1)} ms`, `p99 < ${TARGET_FLOW_P99_MS} ms`, e.p99 < TARGET_FLOW_P99_MS);
  }
  row('    KBS RSS after the runs above', `${fmt(rssMb(kbs.child.pid), 1)} MB`);
  await stopChild(kbs.child);

  // (f): a fresh KBS, 100,000 sessions
  if (run('f')) {
    const fresh = await startKbsChild('kbs-sessions', mkdtempSync(join(dir, 'kbs-')));
    const rss0 = rssMb(fresh.child.pid);
    const t0 = performance.now();
    const f = await autocannon({
      url: `${fresh.url}/kbs/v0/auth`,
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ version: '0.4.0', tee: 'sample', 'extra-params': '' }),
      connections: SESSION_CONNECTIONS,
      amount: SESSIONS,
    });
    const authSeconds = (performance.now() - t0) / 1000;
    checkAllOk('(f)', f, SESSIONS);
    await sleep(500);
    const rss = rssMb(fresh.child.pid);
    row(
      '(f) KBS RSS, 100,000 live sessions',
      `${fmt(rss, 1)} MB  (${fmt(rss0, 1)} MB at start, ${fmt(((rss - rss0) * 1024 * 1024) / SESSIONS)} B/session)`,
      `< ${TARGET_RSS_MB} MB`,
      rss < TARGET_RSS_MB,
    );
    row('    POST /auth while filling', `${fmt(SESSIONS / authSeconds)} req/s  (p50 ${f.latency.p50} ms, p99 ${f.latency.p99} ms)`);
    await stopChild(fresh.child);
  }
} catch (e) {
  failed = true;
  console.error(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  await Promise.all([...children].map((c) => stopChild(c)));
  rmSync(dir, { recursive: true, force: true });
}
printTable();
if (CPU_PROF_DIR) console.log(`\nCPU profiles of the KBS children: ${CPU_PROF_DIR}`);
process.exitCode = failed ? 1 : 0;
