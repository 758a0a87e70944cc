/**
 * A KBS client speaking the protocol as guest-components' kbs_protocol and trustee's kbs-client do:
 * the RCAR handshake with the sample attester, resource retrieval (cookie or Bearer token) and the
 * admin calls. Used by the `kbs` CLI and by the tests.
 */
import { runtimeDataDigest } from '../../attestation/runtime-data.js';
import type { TeePubKey } from '../../server/tee-pubkey.js';
import { TeeKeyPair } from './tee-keypair.js';

export class KbsClientError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly body?: string,
  ) {
    super(message);
    this.name = 'KbsClientError';
  }
}

export interface KbsClientOptions {
  url: string;
  adminToken?: string;
  /** Extra fetch options (e.g. a TLS dispatcher); tests use plain HTTP. */
  fetch?: typeof fetch;
}

const PREFIX = '/kbs/v0';

export class KbsClient {
  private cookie: string | undefined;
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: KbsClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    this.fetchImpl = options.fetch ?? fetch;
  }

  private async call(method: string, path: string, init: { body?: Uint8Array | string; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { 'User-Agent': 'kbs-client/ts', ...(init.headers ?? {}) };
    if (this.cookie) headers['Cookie'] = this.cookie;
    const res = await this.fetchImpl(this.base + PREFIX + path, {
      method,
      headers,
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    const setCookie = res.headers.get('set-cookie');
    const m = setCookie ? /kbs-session-id=([0-9a-f]{32})/.exec(setCookie) : null;
    if (m) this.cookie = `kbs-session-id=${m[1]}`;
    return res;
  }

  private async expectOk(res: Response, what: string): Promise<Response> {
    if (res.status === 200) return res;
    const body = await res.text();
    throw new KbsClientError(`${what} failed: HTTP ${res.status} ${body}`, res.status, body);
  }

  private adminHeaders(extra: Record<string, string> = {}): Record<string, string> {
    return this.options.adminToken ? { Authorization: `Bearer ${this.options.adminToken}`, ...extra } : extra;
  }

  /** RCAR with the sample attester; returns the attestation token. */
  async attest(key: TeeKeyPair, initData?: string): Promise<string> {
    const auth = await this.expectOk(
      await this.call('POST', '/auth', {
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ version: '0.4.0', tee: 'sample', 'extra-params': { 'supported-hash-algorithms': ['sha256', 'sha384', 'sha512', 'sm3'] } }),
      }),
      'auth',
    );
    const challenge = (await auth.json()) as { nonce?: unknown };
    if (typeof challenge.nonce !== 'string') throw new KbsClientError('auth: the challenge has no nonce');
    const body = sampleAttestation(challenge.nonce, key.publicJwk(), initData);
    const res = await this.expectOk(
      await this.call('POST', '/attest', { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) }),
      'attest',
    );
    const { token } = (await res.json()) as { token?: unknown };
    if (typeof token !== 'string') throw new KbsClientError('attest: no token in the response');
    return token;
  }

  /** GET a resource with the session cookie, or with a Bearer token when given; decrypts the JWE. */
  async getResource(path: string, key: TeeKeyPair, token?: string): Promise<Uint8Array> {
    const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
    const res = await this.expectOk(await this.call('GET', `/resource/${path}`, { headers }), `get-resource ${path}`);
    return key.decrypt(await res.json());
  }

  async setResource(path: string, value: Uint8Array): Promise<void> {
    await this.expectOk(
      await this.call('POST', `/resource/${path}`, { headers: this.adminHeaders({ 'Content-Type': 'application/octet-stream' }), body: value }),
      `set-resource ${path}`,
    );
  }

  async deleteResource(path: string): Promise<void> {
    await this.expectOk(await this.call('DELETE', `/resource/${path}`, { headers: this.adminHeaders() }), `delete-resource ${path}`);
  }

  async listResources(): Promise<Array<{ path: string; size: number; updated: string }>> {
    const res = await this.expectOk(await this.call('GET', '/resources', { headers: this.adminHeaders() }), 'list-resources');
    return (await res.json()) as Array<{ path: string; size: number; updated: string }>;
  }

  async setResourcePolicy(rego: string): Promise<void> {
    const body = JSON.stringify({ policy: Buffer.from(rego, 'utf8').toString('base64url') });
    await this.expectOk(
      await this.call('POST', '/resource-policy', { headers: this.adminHeaders({ 'Content-Type': 'application/json' }), body }),
      'set-resource-policy',
    );
  }

  /** kbs-client `set-attestation-policy`: `{"type", "policy_id", "policy": b64url_nopad(rego)}`. */
  async setAttestationPolicy(rego: string | Uint8Array, options: { type?: string; id?: string } = {}): Promise<void> {
    const body = JSON.stringify({
      type: options.type ?? 'rego',
      policy_id: options.id ?? 'default_cpu',
      policy: Buffer.from(rego).toString('base64url'),
    });
    await this.expectOk(
      await this.call('POST', '/attestation-policy', { headers: this.adminHeaders({ 'Content-Type': 'application/json' }), body }),
      'set-attestation-policy',
    );
  }

  /** kbs-client `set-sample-reference-value`: an RVPS `sample` message for `{name: value}`. */
  async setSampleReferenceValue(name: string, value: unknown): Promise<void> {
    const payload = Buffer.from(JSON.stringify({ [name]: value }), 'utf8').toString('base64');
    const body = JSON.stringify({ version: '0.1.0', type: 'sample', payload });
    await this.expectOk(
      await this.call('POST', '/reference-value', { headers: this.adminHeaders({ 'Content-Type': 'application/json' }), body }),
      'set-sample-reference-value',
    );
  }

  /** kbs-client `get-reference-value`: the stored value's JSON text. */
  async getReferenceValue(id: string): Promise<string> {
    const res = await this.expectOk(
      await this.call('GET', `/reference-value/${id}`, { headers: this.adminHeaders({ 'Content-Type': 'application/json' }) }),
      `get-reference-value ${id}`,
    );
    return res.text();
  }

  async getResourcePolicy(): Promise<string> {
    const res = await this.expectOk(await this.call('GET', '/resource-policy', { headers: this.adminHeaders() }), 'get-resource-policy');
    const body = (await res.json()) as { policy?: unknown };
    if (typeof body.policy !== 'string') throw new KbsClientError('get-resource-policy: unexpected response');
    return body.policy;
  }
}

/** The /attest body the guest's sample attester sends for this challenge nonce. */
export function sampleAttestation(nonce: string, teePubKey: TeePubKey, initData?: string): Record<string, unknown> {
  const digest = runtimeDataDigest(nonce, teePubKey, '');
  return {
    ...(initData !== undefined ? { 'init-data': { format: 'toml', body: initData } } : {}),
    'runtime-data': { nonce, 'tee-pubkey': teePubKey },
    'tee-evidence': { primary_evidence: { svn: '1', report_data: digest.toString('base64') }, additional_evidence: '' },
  };
}
