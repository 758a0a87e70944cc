/**
 * AMD Key Distribution Service (KDS) client: the VCEK and CRL URLs upstream uses (verifiers.md
 * §3.5), a strict-timeout GET with a response-size cap, one request in flight per URL and an
 * in-memory LRU of successful responses. Whatever it returns is verified by the caller.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { SnpGeneration } from './generation.js';
import { Lru } from './lru.js';
import type { SnpReport } from './report.js';

export const DEFAULT_KDS_BASE_URL = 'https://kdsintf.amd.com';
export const DEFAULT_KDS_TIMEOUT_MS = 5000;
/** VCEKs are about 1.4 KB and AMD CRLs a few KB; anything much larger is refused. */
export const KDS_MAX_RESPONSE_BYTES = 1024 * 1024;

export interface KdsOptions {
  baseUrl: string;
  timeoutMs: number;
}

const pad2 = (n: number): string => n.toString().padStart(2, '0');

/** The hwid path segment: lower-case hex chip_id (Turin: its first 8 bytes). */
export function hwIdOf(report: SnpReport, generation: SnpGeneration): string {
  return (generation === 'Turin' ? report.chipId.subarray(0, 8) : report.chipId).toString('hex');
}

/** upstream `format_tcb_prefix`: `bl%02d_tee%02d_snp%02d_ucode%02d[_fmc%02d]`. */
export function tcbPrefix(report: SnpReport): string {
  const t = report.reportedTcb;
  const base = `bl${pad2(t.bootloader)}_tee${pad2(t.tee)}_snp${pad2(t.snp)}_ucode${pad2(t.microcode)}`;
  return t.fmc === null ? base : `${base}_fmc${pad2(t.fmc)}`;
}

function trimBase(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '');
}

/** `GET {base}/vcek/v1/{gen}/{hwid}?[fmcSPL=..&]blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..` */
export function vcekUrl(baseUrl: string, generation: SnpGeneration, report: SnpReport): string {
  const t = report.reportedTcb;
  let query = `blSPL=${pad2(t.bootloader)}&teeSPL=${pad2(t.tee)}&snpSPL=${pad2(t.snp)}&ucodeSPL=${pad2(t.microcode)}`;
  if (generation === 'Turin') {
    if (t.fmc === null) throw new Error('a Turin report must have an fmc value');
    query = `fmcSPL=${pad2(t.fmc)}&${query}`;
  }
  return `${trimBase(baseUrl)}/vcek/v1/${generation}/${hwIdOf(report, generation)}?${query}`;
}

/** `GET {base}/vcek/v1/{gen}/crl` */
export function crlUrl(baseUrl: string, generation: SnpGeneration): string {
  return `${trimBase(baseUrl)}/vcek/v1/${generation}/crl`;
}

/** A KDS request that did not produce a 200 response body. */
export class KdsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KdsError';
  }
}

/** One GET with an overall deadline of `timeoutMs` (connect, headers and body together). */
export function kdsGet(url: string, timeoutMs: number, maxBytes = KDS_MAX_RESPONSE_BYTES): Promise<Buffer> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (e) {
    return Promise.reject(new KdsError('invalid KDS URL', { cause: e }));
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    return Promise.reject(new KdsError('KDS URL must be http(s)'));
  }
  const request = parsed.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<Buffer>((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, body?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err !== undefined) {
        req.destroy();
        reject(err);
      } else resolve(body as Buffer);
    };
    const timer = setTimeout(() => finish(new KdsError(`KDS request timed out after ${timeoutMs} ms: ${url}`)), timeoutMs);
    const req = request(parsed, { method: 'GET', headers: { accept: 'application/octet-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        finish(new KdsError(`KDS returned HTTP ${res.statusCode ?? '?'} for ${url}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) finish(new KdsError(`KDS response larger than ${maxBytes} bytes: ${url}`));
        else chunks.push(c);
      });
      res.on('end', () => finish(undefined, Buffer.concat(chunks)));
      res.on('error', (e) => finish(new KdsError(`KDS response failed: ${url}`, { cause: e })));
    });
    req.on('error', (e) => finish(new KdsError(`KDS request failed: ${url}`, { cause: e })));
    req.end();
  });
}

/** KDS GETs with request coalescing per URL and an LRU of successful bodies (never of failures). */
export class KdsClient {
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private readonly cache: Lru<string, Buffer>;

  constructor(
    readonly options: KdsOptions,
    capacity = 1024,
  ) {
    if (!Number.isSafeInteger(options.timeoutMs) || options.timeoutMs <= 0) throw new RangeError('KDS timeoutMs must be a positive integer');
    this.cache = new Lru(capacity);
  }

  async get(url: string): Promise<Buffer> {
    const hit = this.cache.get(url);
    if (hit !== undefined) return hit;
    const pending = this.inflight.get(url);
    if (pending !== undefined) return pending;
    const p = kdsGet(url, this.options.timeoutMs)
      .then((body) => {
        this.cache.set(url, body);
        return body;
      })
      .finally(() => this.inflight.delete(url));
    this.inflight.set(url, p);
    return p;
  }

  /** A GET coalesced with concurrent ones for the same URL but never served from or kept in the LRU. */
  async getFresh(url: string): Promise<Buffer> {
    const key = `fresh:${url}`;
    const pending = this.inflight.get(key);
    if (pending !== undefined) return pending;
    const p = kdsGet(url, this.options.timeoutMs).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  /** Drops a cached body (e.g. one that failed verification). */
  forget(url: string): void {
    this.cache.delete(url);
  }
}
