/**
 * Signed PCS collateral (`{"tcbInfo":…,"signature":…}` and `{"enclaveIdentity":…,"signature":…}`):
 * the ECDSA P-256 signature (hex r‖s) over the raw text of the value, by "Intel SGX TCB Signing",
 * which must chain to the pinned root. Verified items are cached by their bytes.
 */
import { createHash, verify } from 'node:crypto';
import type { z } from 'zod';
import { AttestationFailure } from '../types.js';
import { commonName, verifyChain, type VerifiedChain } from './certs.js';
import { EnclaveIdentitySchema, TcbInfoSchema, type EnclaveIdentity, type TcbInfo } from './collateral-schema.js';
import { JsonScanError, member, minifyJson, rawText, scanJson } from './json-raw.js';
import { parsePemChain } from './pem.js';
import { INTEL_ROOT_CA_PEM } from './root.js';

const TCB_SIGNING_CN = 'Intel SGX TCB Signing';
const MAX_TEXT = 1024 * 1024;

/** A collateral item as stored or served: the response text and its issuer chain (PEM). */
export interface SignedItem {
  readonly text: string;
  readonly issuerChainPem: string;
}

export interface Verified<T> {
  readonly value: T;
  readonly chain: VerifiedChain;
}

const cache = new Map<string, Verified<unknown>>();
const MAX_CACHE = 128;

/** Parses an issuer chain; appends the pinned root when the chain stops below it. */
export function issuerChain(pem: string, step: string): VerifiedChain {
  const ders = parsePemChain(pem, step);
  if (ders.length === 0) throw new AttestationFailure(step, 'issuer chain is empty');
  const rootDer = parsePemChain(INTEL_ROOT_CA_PEM, step)[0] as Buffer;
  if (!(ders[ders.length - 1] as Buffer).equals(rootDer)) ders.push(rootDer);
  return verifyChain(ders, step);
}

function verifyItem<T>(item: SignedItem, key: 'tcbInfo' | 'enclaveIdentity', schema: z.ZodType<T>): Verified<T> {
  const step = key === 'tcbInfo' ? 'tcb-info' : 'qe-identity';
  const cacheKey = createHash('sha256').update(key).update('\0').update(item.text).update('\0').update(item.issuerChainPem).digest('hex');
  const hit = cache.get(cacheKey);
  if (hit !== undefined) return hit as Verified<T>;
  if (item.text.length > MAX_TEXT) throw new AttestationFailure(step, `${key} collateral is too large`);
  let root;
  try {
    JSON.parse(item.text);
    root = scanJson(item.text);
  } catch (e) {
    if (e instanceof SyntaxError || e instanceof JsonScanError) throw new AttestationFailure(step, `${key} collateral is not valid JSON`);
    throw e;
  }
  const valueNode = member(root, key);
  const sigNode = member(root, 'signature');
  if (valueNode?.members === undefined || sigNode === undefined) {
    throw new AttestationFailure(step, `${key} collateral lacks "${key}" or "signature"`);
  }
  const sigHex = JSON.parse(rawText(item.text, sigNode)) as unknown;
  if (typeof sigHex !== 'string' || !/^[0-9a-fA-F]{128}$/.test(sigHex)) {
    throw new AttestationFailure(step, `${key} signature must be 64 bytes of hex`);
  }
  const chain = issuerChain(item.issuerChainPem, step);
  if (commonName(chain.certs[0]!) !== TCB_SIGNING_CN) throw new AttestationFailure(step, `${key} is not signed by Intel SGX TCB Signing`);
  const raw = rawText(item.text, valueNode);
  const signature = Buffer.from(sigHex, 'hex');
  const ok = (text: string): boolean =>
    verify('sha256', Buffer.from(text, 'utf8'), { key: chain.keys[0]!, dsaEncoding: 'ieee-p1363' }, signature);
  if (!ok(raw)) {
    const compact = minifyJson(raw);
    if (compact === raw || !ok(compact)) throw new AttestationFailure(step, `${key} signature does not verify`);
  }
  const parsed = schema.safeParse(JSON.parse(raw));
  if (!parsed.success) throw new AttestationFailure(step, `${key} collateral does not match its schema`);
  const result: Verified<T> = { value: parsed.data, chain };
  if (cache.size >= MAX_CACHE) cache.delete(cache.keys().next().value as string);
  cache.set(cacheKey, result);
  return result;
}

export function verifyTcbInfo(item: SignedItem): Verified<TcbInfo> {
  return verifyItem(item, 'tcbInfo', TcbInfoSchema);
}

export function verifyQeIdentity(item: SignedItem): Verified<EnclaveIdentity> {
  return verifyItem(item, 'enclaveIdentity', EnclaveIdentitySchema);
}
