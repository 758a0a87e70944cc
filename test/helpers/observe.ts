/**
 * Helpers for the observability tests: a strict reader of the Prometheus text format, and RCAR done
 * by hand (so the test holds the session cookie and the token, to look for them in logs).
 */
import { KbsClient, sampleAttestation } from '../../cli/client/kbs-client.js';
import { TeeKeyPair } from '../../cli/client/tee-keypair.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Every sample line of an exposition; throws on a line that is neither a sample nor a comment. */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples of `name` whose labels include `labels` (0 when there is none). */
export function metricValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

export async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseExposition(await res.text());
}

export interface Rcar {
  cookie: string;
  token: string;
  key: TeeKeyPair;
}

function cookieOf(res: Response): string {
  const m = /kbs-session-id=([0-9a-f]+)/.exec(res.headers.get('set-cookie') ?? '');
  if (!m) throw new Error('no session cookie');
  return `kbs-session-id=${m[1]}`;
}

async function auth(url: string): Promise<{ cookie: string; nonce: string }> {
  const res = await fetch(`${url}/kbs/v0/auth`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ version: '0.4.0', tee: 'sample', 'extra-params': '' }),
  });
  if (res.status !== 200) throw new Error(`auth: ${res.status}`);
  const { nonce } = (await res.json()) as { nonce: string };
  return { cookie: cookieOf(res), nonce };
}

/** Auth + attest with the sample attester; returns the cookie, the token and the TEE key. */
export async function rcar(url: string): Promise<Rcar> {
  const key = TeeKeyPair.generate();
  const { cookie, nonce } = await auth(url);
  const res = await fetch(`${url}/kbs/v0/attest`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Cookie: cookie },
    body: JSON.stringify(sampleAttestation(nonce, key.publicJwk())),
  });
  if (res.status !== 200) throw new Error(`attest: ${res.status} ${await res.text()}`);
  const { token } = (await res.json()) as { token: string };
  return { cookie, token, key };
}

/** Auth, then evidence for another nonce: the verification fails (step `nonce`). */
export async function failedAttestation(url: string): Promise<{ status: number; cookie: string }> {
  const key = TeeKeyPair.generate();
  const { cookie } = await auth(url);
  const res = await fetch(`${url}/kbs/v0/attest`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Cookie: cookie },
    body: JSON.stringify(sampleAttestation('bm90LXRoZS1ub25jZQ==', key.publicJwk())),
  });
  await res.arrayBuffer();
  return { status: res.status, cookie };
}

/** GET a resource with the session cookie; returns status and (when 200) the decrypted value. */
export async function getResource(url: string, r: Rcar, path: string): Promise<{ status: number; value?: Buffer; requestId: string | null }> {
  const res = await fetch(`${url}/kbs/v0/resource/${path}`, { headers: { Cookie: r.cookie } });
  const requestId = res.headers.get('x-request-id');
  if (res.status !== 200) {
    await res.arrayBuffer();
    return { status: res.status, requestId };
  }
  return { status: 200, value: Buffer.from(r.key.decrypt(await res.json())), requestId };
}

export function adminClient(url: string, adminToken: string | undefined): KbsClient {
  return new KbsClient({ url, ...(adminToken !== undefined ? { adminToken } : {}) });
}
