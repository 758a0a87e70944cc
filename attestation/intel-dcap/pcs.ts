/**
 * Intel PCS v4 (or a PCCS) client: TCB info, QE identity, PCK CRL and Root CA CRL, with issuer
 * chains from the URL-encoded PEM response headers. Strict timeout; 404/410, network errors and
 * timeouts all mean "not available" (undefined). One request per item is in flight at a time.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { IntelTee, PckCa, UpdateType } from './offline-store.js';
import type { SignedItem } from './signed-collateral.js';

export interface PcsOptions {
  /** PCS or PCCS URL; only its origin is used (as upstream, the path is replaced). */
  baseUrl: string;
  timeoutMs: number;
  updateType: UpdateType;
}

export const DEFAULT_PCS_URL = 'https://api.trustedservices.intel.com/sgx/certification/v4/';
export const DEFAULT_PCS_TIMEOUT_MS = 5000;
const MAX_BODY = 4 * 1024 * 1024;
const INTEL_PCS_HOST = 'api.trustedservices.intel.com';
export const INTEL_ROOT_CA_CRL_URL = 'https://certificates.trustedservices.intel.com/IntelSGXRootCA.der';

interface HttpResult {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** GET with a hard deadline covering connect, headers and body. Undefined on any transport failure. */
export function httpGet(url: URL, timeoutMs: number): Promise<HttpResult | undefined> {
  return new Promise((resolve) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: 'GET', headers: { accept: '*/*' } });
    const timer = setTimeout(() => {
      req.destroy(new Error('timeout'));
      resolve(undefined);
    }, timeoutMs);
    const done = (r: HttpResult | undefined): void => {
      clearTimeout(timer);
      resolve(r);
    };
    req.on('error', () => done(undefined));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          req.destroy(new Error('too large'));
          done(undefined);
        } else chunks.push(c);
      });
      res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', () => done(undefined));
    });
    req.end();
  });
}

function header(r: HttpResult, name: string): string | undefined {
  const v = r.headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return undefined;
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

export class PcsClient {
  readonly options: PcsOptions;
  private readonly origin: URL;
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(options: PcsOptions) {
    this.options = options;
    const u = new URL(options.baseUrl);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('PCS base URL must be http(s)');
    this.origin = new URL(u.origin + '/');
  }

  /** Deduplicates concurrent requests for the same item. */
  private once<T>(key: string, run: () => Promise<T>): Promise<T> {
    const hit = this.inFlight.get(key);
    if (hit !== undefined) return hit as Promise<T>;
    const p = run().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private async get(path: string, query: Record<string, string>): Promise<HttpResult | undefined> {
    const url = new URL(path, this.origin);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const r = await httpGet(url, this.options.timeoutMs);
    if (r === undefined || r.status !== 200) return undefined; // 404/410 and every other status: not available
    return r;
  }

  tcbInfo(tee: IntelTee, fmspc: string): Promise<SignedItem | undefined> {
    return this.once(`tcb/${tee}/${fmspc}`, async () => {
      const r = await this.get(`${tee}/certification/v4/tcb`, { fmspc: fmspc.toUpperCase(), update: this.options.updateType });
      const chain = r === undefined ? undefined : header(r, 'tcb-info-issuer-chain');
      return r === undefined || chain === undefined ? undefined : { text: r.body.toString('utf8'), issuerChainPem: chain };
    });
  }

  qeIdentity(tee: IntelTee): Promise<SignedItem | undefined> {
    return this.once(`qe/${tee}`, async () => {
      const r = await this.get(`${tee}/certification/v4/qe/identity`, { update: this.options.updateType });
      const chain = r === undefined ? undefined : header(r, 'sgx-enclave-identity-issuer-chain');
      return r === undefined || chain === undefined ? undefined : { text: r.body.toString('utf8'), issuerChainPem: chain };
    });
  }

  pckCrl(ca: PckCa): Promise<{ der: Buffer; chain: string | undefined } | undefined> {
    return this.once(`pckcrl/${ca}`, async () => {
      const r = await this.get('sgx/certification/v4/pckcrl', { ca, encoding: 'der' });
      return r === undefined ? undefined : { der: r.body, chain: header(r, 'sgx-pck-crl-issuer-chain') };
    });
  }

  rootCaCrl(): Promise<Buffer | undefined> {
    return this.once('rootcacrl', async () => {
      const isPcs = this.origin.hostname === INTEL_PCS_HOST;
      const r = isPcs
        ? await httpGet(new URL(INTEL_ROOT_CA_CRL_URL), this.options.timeoutMs)
        : await this.get('sgx/certification/v4/rootcacrl', {});
      if (r === undefined || r.status !== 200) return undefined;
      const text = r.body.toString('latin1').trim();
      // A PCCS serves the CRL hex-encoded; Intel serves DER.
      return /^([0-9a-fA-F]{2})+$/.test(text) ? Buffer.from(text, 'hex') : r.body;
    });
  }
}
