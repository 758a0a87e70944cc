/**
 * The guest side of the KBS JWE exchange: the TEE key pair whose public half is sent as
 * `tee-pubkey` during attestation, and the decryption of resource responses.
 *
 * It behaves like guest-components' `TeeKeyPair` (`attestation-agent/kbs_protocol/src/keypair.rs`):
 *   - key types `ECDH-ES+A256KW-P256` (default), `ECDH-ES+A256KW-P521`, `RSA-OAEP-256` (2048 bits);
 *   - `publicJwk()` is `export_pubkey`: EC `{kty, crv, alg: "ECDH-ES+A256KW", x, y}` with
 *     fixed-length coordinates, RSA `{kty, alg: "RSA-OAEP-256", n, e}` (minimal big-endian);
 *   - `decrypt()` is `decrypt_response`: every binary field is base64url without padding (padding
 *     and non-canonical encodings rejected), the CEK is unwrapped according to the header's `alg`
 *     (`RSA1_5` | `RSA-OAEP-256` | `ECDH-ES+A256KW` with `epk.crv` equal to the key's curve), and the
 *     AES-256-GCM AAD is computed from the RE-SERIALIZED protected header (kbs-types
 *     `ProtectedHeader::generate_aad`), not from the received string. The re-serialization is
 *     serde_json's: compact, `alg`, `enc`, then the other members in `serde_json::Map` order
 *     (sorted by key, the default build without `preserve_order`), recursively.
 *
 * Only Node's `crypto` is used. This module is independent of the server's JWE code on purpose, so
 * that tests exercise the server against a separate implementation of the client's algorithm.
 */
import {
  constants,
  createDecipheriv,
  createECDH,
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  privateDecrypt,
  type ECDH,
  type KeyObject,
} from 'node:crypto';
import type { TeePubKey } from '../../server/tee-pubkey.js';

export type TeeKeyAlgorithm = 'ECDH-ES+A256KW-P256' | 'ECDH-ES+A256KW-P521' | 'RSA-OAEP-256';

export type TeeKeyPairErrorCode =
  | 'KEY_INVALID'
  | 'UNSUPPORTED_ALGORITHM'
  | 'RESPONSE_MALFORMED'
  | 'KEY_MISMATCH'
  | 'DECRYPT_FAILED';

export class TeeKeyPairError extends Error {
  readonly code: TeeKeyPairErrorCode;

  constructor(code: TeeKeyPairErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TeeKeyPairError';
    this.code = code;
  }
}

const ALG_RSA1_5 = 'RSA1_5';
const ALG_RSA_OAEP_256 = 'RSA-OAEP-256';
const ALG_ECDH_ES_A256KW = 'ECDH-ES+A256KW';
const RSA_BITS = 2048;
const AES_KW_DEFAULT_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

type EcCurveName = 'P-256' | 'P-521';

interface EcCurve {
  readonly name: EcCurveName;
  readonly openssl: string;
  readonly coordBytes: number;
}

const EC_CURVES: Readonly<Record<EcCurveName, EcCurve>> = {
  'P-256': { name: 'P-256', openssl: 'prime256v1', coordBytes: 32 },
  'P-521': { name: 'P-521', openssl: 'secp521r1', coordBytes: 66 },
};

/** Node's `namedCurve` → JOSE curve name. */
const CURVE_BY_OPENSSL: Readonly<Record<string, EcCurveName>> = {
  prime256v1: 'P-256',
  secp521r1: 'P-521',
};

type KeyState =
  | { readonly kind: 'ec'; readonly curve: EcCurve; readonly privateKey: KeyObject; readonly ecdh: ECDH }
  | { readonly kind: 'rsa'; readonly privateKey: KeyObject };

// ---------------------------------------------------------------------------------------------
// base64url (Rust `URL_SAFE_NO_PAD`: no padding, no whitespace, no non-zero trailing bits)

const B64URL_RE = /^[A-Za-z0-9_-]*$/;

function decodeB64u(s: string, field: string): Buffer {
  if (B64URL_RE.test(s) && s.length % 4 !== 1) {
    const bytes = Buffer.from(s, 'base64url');
    if (bytes.toString('base64url') === s) return bytes;
  }
  throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE \`${field}\` is not base64url without padding`);
}

// ---------------------------------------------------------------------------------------------
// A JSON reader/writer with serde_json's semantics, for the protected header.
//
// JSON.parse/JSON.stringify are not enough: serde_json keeps integers and floats apart (`1.0` is
// written back as `1.0`), writes floats the way the `ryu` crate does, rejects lone surrogates,
// numbers out of f64 range and nesting deeper than 127, and the typed `alg`/`enc` fields refuse
// duplicates. Objects are kept as entry lists so duplicates can be seen.

type JsonValue =
  | { readonly t: 'null' }
  | { readonly t: 'bool'; readonly v: boolean }
  | { readonly t: 'num'; readonly text: string }
  | { readonly t: 'str'; readonly v: string }
  | { readonly t: 'arr'; readonly items: readonly JsonValue[] }
  | { readonly t: 'obj'; readonly entries: ReadonlyArray<readonly [string, JsonValue]> };

/** serde_json's default recursion limit: the 128th nested array/object is refused. */
const MAX_JSON_DEPTH = 127;

class JsonSyntaxError extends Error {}

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class JsonReader {
  private pos = 0;
  private depth = 0;

  constructor(private readonly src: string) {}

  static parse(src: string): JsonValue {
    const r = new JsonReader(src);
    r.ws();
    const v = r.value();
    r.ws();
    if (r.pos !== src.length) r.fail('trailing characters');
    return v;
  }

  private fail(what: string): never {
    throw new JsonSyntaxError(`${what} at offset ${this.pos}`);
  }

  private ws(): void {
    while (this.pos < this.src.length) {
      const c = this.src.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.pos++;
    }
  }

  private literal(word: string): void {
    if (this.src.startsWith(word, this.pos)) this.pos += word.length;
    else this.fail('invalid literal');
  }

  private value(): JsonValue {
    const c = this.src[this.pos];
    switch (c) {
      case '{':
        return this.object();
      case '[':
        return this.array();
      case '"':
        return { t: 'str', v: this.string() };
      case 't':
        this.literal('true');
        return { t: 'bool', v: true };
      case 'f':
        this.literal('false');
        return { t: 'bool', v: false };
      case 'n':
        this.literal('null');
        return { t: 'null' };
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.fail('expected value');
    }
  }

  private enter(): void {
    if (++this.depth > MAX_JSON_DEPTH) this.fail('recursion limit exceeded');
    this.pos++;
    this.ws();
  }

  private object(): JsonValue {
    this.enter();
    const entries: Array<readonly [string, JsonValue]> = [];
    if (this.src[this.pos] === '}') {
      this.pos++;
    } else {
      for (;;) {
        if (this.src[this.pos] !== '"') this.fail('expected object key');
        const k = this.string();
        this.ws();
        if (this.src[this.pos] !== ':') this.fail("expected ':'");
        this.pos++;
        this.ws();
        entries.push([k, this.value()]);
        this.ws();
        const d = this.src[this.pos++];
        if (d === '}') break;
        if (d !== ',') this.fail("expected ',' or '}'");
        this.ws();
      }
    }
    this.depth--;
    return { t: 'obj', entries };
  }

  private array(): JsonValue {
    this.enter();
    const items: JsonValue[] = [];
    if (this.src[this.pos] === ']') {
      this.pos++;
    } else {
      for (;;) {
        items.push(this.value());
        this.ws();
        const d = this.src[this.pos++];
        if (d === ']') break;
        if (d !== ',') this.fail("expected ',' or ']'");
        this.ws();
      }
    }
    this.depth--;
    return { t: 'arr', items };
  }

  private hex4(): number {
    const h = this.src.slice(this.pos, this.pos + 4);
    if (!/^[0-9A-Fa-f]{4}$/.test(h)) this.fail('invalid \\u escape');
    this.pos += 4;
    return parseInt(h, 16);
  }

  private string(): string {
    this.pos++; // opening quote
    let out = '';
    for (;;) {
      if (this.pos >= this.src.length) this.fail('unterminated string');
      const c = this.src.charCodeAt(this.pos);
      if (c === 0x22) {
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail('control character in string');
      if (c !== 0x5c) {
        out += this.src[this.pos++];
        continue;
      }
      const e = this.src[this.pos + 1];
      this.pos += 2;
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const u = this.hex4();
          if (u >= 0xdc00 && u <= 0xdfff) this.fail('lone trailing surrogate');
          if (u >= 0xd800 && u <= 0xdbff) {
            if (this.src[this.pos] !== '\\' || this.src[this.pos + 1] !== 'u') this.fail('lone leading surrogate');
            this.pos += 2;
            const lo = this.hex4();
            if (lo < 0xdc00 || lo > 0xdfff) this.fail('lone leading surrogate');
            out += String.fromCharCode(u, lo);
          } else {
            out += String.fromCharCode(u);
          }
          break;
        }
        default:
          this.fail('invalid escape');
      }
    }
  }

  private number(): JsonValue {
    NUMBER_RE.lastIndex = this.pos;
    const m = NUMBER_RE.exec(this.src);
    if (m === null) return this.fail('invalid number');
    const text = m[0];
    this.pos += text.length;
    // Checked here (not only when writing) so out-of-range numbers fail like serde_json's parser.
    formatNumber(text);
    return { t: 'num', text };
  }
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

/** `ryu` crate's `format64` (serde_json's float output) for a finite f64. */
function formatF64(v: number): string {
  if (v === 0) return Object.is(v, -0) ? '-0.0' : '0.0';
  const sign = v < 0 ? '-' : '';
  // toExponential() yields the shortest round-tripping digits, as ryu does.
  const [mant, expPart] = Math.abs(v).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const length = digits.length;
  const kk = Number(expPart) + 1; // 10^(kk-1) <= |v| < 10^kk
  const k = kk - length;
  let body: string;
  if (k >= 0 && kk <= 16) body = `${digits}${'0'.repeat(k)}.0`;
  else if (kk > 0 && kk <= 16) body = `${digits.slice(0, kk)}.${digits.slice(kk)}`;
  else if (kk > -5 && kk <= 0) body = `0.${'0'.repeat(-kk)}${digits}`;
  else if (length === 1) body = `${digits}e${kk - 1}`;
  else body = `${digits[0]}.${digits.slice(1)}e${kk - 1}`;
  return sign + body;
}

/**
 * serde_json: integer literals within u64 / i64 are kept exact; everything else (fractions,
 * exponents, `-0`, integers beyond 64 bits) becomes an f64, and f64 overflow is an error.
 */
function formatNumber(text: string): string {
  if (text.length <= 21 && /^-?[0-9]+$/.test(text)) {
    const n = BigInt(text);
    const negative = text.startsWith('-');
    if (!negative && n <= U64_MAX) return n.toString();
    if (negative && n !== 0n && n >= I64_MIN) return n.toString();
  }
  const f = Number(text);
  if (!Number.isFinite(f)) throw new JsonSyntaxError('number out of range');
  return formatF64(f);
}

/** serde_json string escaping: `"`, `\` and C0 controls only (short forms where JSON has them). */
function writeString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c >= 0x20) out += s[i];
    else if (c === 0x08) out += '\\b';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0d) out += '\\r';
    else out += `\\u00${c.toString(16).padStart(2, '0')}`;
  }
  return `${out}"`;
}

/** Byte-wise UTF-8 order, as Rust's `String: Ord` (BTreeMap keys). */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Later duplicates replace earlier ones (`Map::insert`); keys sorted. */
function mapEntries(entries: ReadonlyArray<readonly [string, JsonValue]>): Array<[string, JsonValue]> {
  const m = new Map<string, JsonValue>();
  for (const [k, v] of entries) m.set(k, v);
  return [...m.entries()].sort((a, b) => compareUtf8(a[0], b[0]));
}

function writeValue(v: JsonValue): string {
  switch (v.t) {
    case 'null':
      return 'null';
    case 'bool':
      return v.v ? 'true' : 'false';
    case 'num':
      return formatNumber(v.text);
    case 'str':
      return writeString(v.v);
    case 'arr':
      return `[${v.items.map(writeValue).join(',')}]`;
    case 'obj':
      return `{${mapEntries(v.entries)
        .map(([k, x]) => `${writeString(k)}:${writeValue(x)}`)
        .join(',')}}`;
  }
}

interface ProtectedHeader {
  readonly alg: string;
  readonly enc: string;
  /** Every other member, deduplicated and sorted. */
  readonly other: ReadonlyArray<readonly [string, JsonValue]>;
}

/** kbs-types `ProtectedHeader` deserialization (from the decoded `protected` bytes). */
function parseProtectedHeader(bytes: Uint8Array): ProtectedHeader {
  let root: JsonValue;
  try {
    root = JsonReader.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch (cause) {
    throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE protected header is not valid JSON', { cause });
  }
  if (root.t !== 'obj') throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE protected header is not a JSON object');
  let alg: string | undefined;
  let enc: string | undefined;
  const rest: Array<readonly [string, JsonValue]> = [];
  for (const [k, v] of root.entries) {
    if (k === 'alg' || k === 'enc') {
      if ((k === 'alg' ? alg : enc) !== undefined) {
        throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE protected header: duplicate field \`${k}\``);
      }
      if (v.t !== 'str') throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE protected header: \`${k}\` is not a string`);
      if (k === 'alg') alg = v.v;
      else enc = v.v;
    } else {
      rest.push([k, v]);
    }
  }
  if (alg === undefined) throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE protected header: missing field `alg`');
  if (enc === undefined) throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE protected header: missing field `enc`');
  return { alg, enc, other: mapEntries(rest) };
}

/** `serde_json::to_string(&ProtectedHeader)`: alg, enc, then the other members (flattened). */
function serializeProtectedHeader(h: ProtectedHeader): string {
  const parts = [`"alg":${writeString(h.alg)}`, `"enc":${writeString(h.enc)}`];
  for (const [k, v] of h.other) parts.push(`${writeString(k)}:${writeValue(v)}`);
  return `{${parts.join(',')}}`;
}

/**
 * The GCM AAD the Rust client computes for a `protected` value: base64url(re-serialized header).
 * A server is interoperable only if this equals the `protected` string it sent.
 */
export function clientAadFor(protectedB64: string): string {
  const header = parseProtectedHeader(decodeB64u(protectedB64, 'protected'));
  return Buffer.from(serializeProtectedHeader(header), 'utf8').toString('base64url');
}

// ---------------------------------------------------------------------------------------------
// Response (kbs-types `Response`)

interface DecodedResponse {
  readonly header: ProtectedHeader;
  readonly encryptedKey: Buffer;
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

const RESPONSE_FIELDS = ['protected', 'encrypted_key', 'iv', 'ciphertext', 'tag'] as const;

/** A raw body is read with the same duplicate-field rule as serde's derived struct visitor. */
function responseFromRaw(raw: string | Uint8Array): Record<string, unknown> {
  let root: JsonValue;
  try {
    const text = typeof raw === 'string' ? raw : new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
    root = JsonReader.parse(text);
  } catch (cause) {
    throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE response is not valid JSON', { cause });
  }
  if (root.t !== 'obj') throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE response is not a JSON object');
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of root.entries) {
    if (!(RESPONSE_FIELDS as readonly string[]).includes(k) && k !== 'aad') continue; // ignored
    if (Object.prototype.hasOwnProperty.call(out, k)) {
      throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE response: duplicate field \`${k}\``);
    }
    out[k] = v.t === 'str' ? v.v : v;
  }
  return out;
}

function decodeResponse(response: unknown): DecodedResponse {
  const obj = typeof response === 'string' || response instanceof Uint8Array ? responseFromRaw(response) : response;
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE response is not a JSON object');
  }
  const rec = obj as Record<string, unknown>;
  const field = (name: string): string => {
    const v = Object.prototype.hasOwnProperty.call(rec, name) ? rec[name] : undefined;
    if (v === undefined) throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE response: missing field \`${name}\``);
    if (typeof v !== 'string') throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE response: \`${name}\` is not a string`);
    return v;
  };
  const header = parseProtectedHeader(decodeB64u(field('protected'), 'protected'));
  const encryptedKey = decodeB64u(field('encrypted_key'), 'encrypted_key');
  // `aad`, when present, must be a string; it is not used for decryption.
  if (Object.prototype.hasOwnProperty.call(rec, 'aad') && typeof rec['aad'] !== 'string') {
    throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE response: `aad` is not a string');
  }
  const iv = decodeB64u(field('iv'), 'iv');
  const ciphertext = decodeB64u(field('ciphertext'), 'ciphertext');
  const tag = decodeB64u(field('tag'), 'tag');
  return { header, encryptedKey, iv, ciphertext, tag };
}

// ---------------------------------------------------------------------------------------------
// Key unwrapping helpers

/** EME-PKCS1-v1_5 decoding (RFC 8017 §7.2.2 step 3) of a raw RSA decryption result. */
function pkcs1v15Unpad(em: Buffer, k: number): Buffer {
  // em is k bytes: 0x00 ‖ 0x02 ‖ PS (>= 8 non-zero bytes) ‖ 0x00 ‖ M
  let bad = em.length !== k || k < 11 ? 1 : 0;
  bad |= em[0] ?? 1;
  bad |= (em[1] ?? 0) ^ 0x02;
  let sep = 0;
  for (let i = 2; i < em.length; i++) {
    const isZero = em[i] === 0 ? 1 : 0;
    if (sep === 0 && isZero === 1) sep = i;
  }
  bad |= sep === 0 ? 1 : 0;
  bad |= sep !== 0 && sep < 10 ? 1 : 0;
  if (bad !== 0) throw new TeeKeyPairError('DECRYPT_FAILED', 'RSA key pkcs1v15 decrypt failed');
  return em.subarray(sep + 1);
}

function concatKdfA256kw(z: Uint8Array): Buffer {
  const alg = Buffer.from(ALG_ECDH_ES_A256KW, 'ascii');
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n, 0);
    return b;
  };
  const otherInfo = Buffer.concat([u32(alg.length), alg, u32(0), u32(0), u32(256)]);
  return createHash('sha256').update(u32(1)).update(z).update(otherInfo).digest();
}

function jsonStringMember(obj: JsonValue, name: string): string {
  const v = obj.t === 'obj' ? mapEntries(obj.entries).find(([k]) => k === name)?.[1] : undefined;
  if (v === undefined) throw new TeeKeyPairError('RESPONSE_MALFORMED', `Invalid JWE ProtectedHeader. Without \`${name}\``);
  if (v.t !== 'str') throw new TeeKeyPairError('RESPONSE_MALFORMED', `Invalid JWE ProtectedHeader. \`${name}\` is not a string`);
  return v.v;
}

function ecPoint(curve: EcCurve, x: Buffer, y: Buffer): Buffer {
  if (x.length !== curve.coordBytes) throw new TeeKeyPairError('DECRYPT_FAILED', 'invalid bytes length of coordinates X');
  if (y.length !== curve.coordBytes) throw new TeeKeyPairError('DECRYPT_FAILED', 'invalid bytes length of coordinates Y');
  return Buffer.concat([Buffer.from([0x04]), x, y]);
}

function isTeeKeyAlgorithm(v: unknown): v is TeeKeyAlgorithm {
  return v === 'ECDH-ES+A256KW-P256' || v === 'ECDH-ES+A256KW-P521' || v === 'RSA-OAEP-256';
}

function ecStateFromPrivateKey(privateKey: KeyObject): KeyState {
  const named = privateKey.asymmetricKeyDetails?.namedCurve;
  const curveName = named !== undefined && Object.prototype.hasOwnProperty.call(CURVE_BY_OPENSSL, named)
    ? CURVE_BY_OPENSSL[named]
    : undefined;
  if (curveName === undefined) {
    throw new TeeKeyPairError('KEY_INVALID', 'EC private key is not on P-256 or P-521');
  }
  const curve = EC_CURVES[curveName];
  const jwk = privateKey.export({ format: 'jwk' });
  if (typeof jwk.d !== 'string') throw new TeeKeyPairError('KEY_INVALID', 'EC private key has no private scalar');
  const ecdh = createECDH(curve.openssl);
  ecdh.setPrivateKey(Buffer.from(jwk.d, 'base64url'));
  return { kind: 'ec', curve, privateKey, ecdh };
}

// ---------------------------------------------------------------------------------------------

export class TeeKeyPair {
  private readonly key: KeyState;

  private constructor(key: KeyState) {
    this.key = key;
  }

  /** New key pair; the default, like guest-components, is EC P-256 (`ECDH-ES+A256KW-P256`). */
  static generate(alg: TeeKeyAlgorithm = 'ECDH-ES+A256KW-P256'): TeeKeyPair {
    if (!isTeeKeyAlgorithm(alg)) {
      throw new TeeKeyPairError('UNSUPPORTED_ALGORITHM', 'unsupported TEE key algorithm');
    }
    if (alg === 'RSA-OAEP-256') {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: RSA_BITS, publicExponent: 65537 });
      return new TeeKeyPair({ kind: 'rsa', privateKey });
    }
    const curve = EC_CURVES[alg === 'ECDH-ES+A256KW-P521' ? 'P-521' : 'P-256'];
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: curve.openssl });
    return new TeeKeyPair(ecStateFromPrivateKey(privateKey));
  }

  /**
   * Load a private key: RSA as PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`), EC P-256/P-521
   * as PKCS#8. (Upstream `from_pem` takes RSA PKCS#1 or EC PKCS#8.)
   */
  static fromPem(pem: string): TeeKeyPair {
    if (typeof pem !== 'string') throw new TeeKeyPairError('KEY_INVALID', 'PEM must be a string');
    const label = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem)?.[1];
    if (label !== 'RSA PRIVATE KEY' && label !== 'PRIVATE KEY') {
      throw new TeeKeyPairError('KEY_INVALID', 'private key is not RSA (PKCS#1 or PKCS#8) nor EC P256/P521 (PKCS#8)');
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: pem, format: 'pem' });
    } catch (cause) {
      throw new TeeKeyPairError('KEY_INVALID', 'private key PEM could not be parsed', { cause });
    }
    if (privateKey.asymmetricKeyType === 'rsa') return new TeeKeyPair({ kind: 'rsa', privateKey });
    if (privateKey.asymmetricKeyType === 'ec' && label === 'PRIVATE KEY') {
      return new TeeKeyPair(ecStateFromPrivateKey(privateKey));
    }
    throw new TeeKeyPairError('KEY_INVALID', 'private key is not RSA (PKCS#1 or PKCS#8) nor EC P256/P521 (PKCS#8)');
  }

  /** RSA as PKCS#1 PEM, EC as PKCS#8 PEM (as upstream `to_pem`). Contains the private key. */
  toPem(): string {
    const type = this.key.kind === 'rsa' ? 'pkcs1' : 'pkcs8';
    return this.key.privateKey.export({ type, format: 'pem' }).toString();
  }

  /** The `tee-pubkey` JWK, exactly as upstream `export_pubkey`. */
  publicJwk(): TeePubKey {
    if (this.key.kind === 'ec') {
      const raw = this.key.ecdh.getPublicKey(); // 0x04 ‖ X ‖ Y, fixed length
      const n = this.key.curve.coordBytes;
      return {
        kty: 'EC',
        crv: this.key.curve.name,
        alg: ALG_ECDH_ES_A256KW,
        x: raw.subarray(1, 1 + n).toString('base64url'),
        y: raw.subarray(1 + n, 1 + 2 * n).toString('base64url'),
      };
    }
    const jwk = this.key.privateKey.export({ format: 'jwk' });
    if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') {
      throw new TeeKeyPairError('KEY_INVALID', 'RSA key export failed');
    }
    return { kty: 'RSA', alg: ALG_RSA_OAEP_256, n: jwk.n, e: jwk.e };
  }

  /** `decrypt_response`: the resource bytes of a KBS JWE response (parsed JSON or raw body). */
  decrypt(response: unknown): Uint8Array {
    const r = decodeResponse(response);
    const cek = this.unwrapCek(r.header, r.encryptedKey);
    try {
      const aad = Buffer.from(Buffer.from(serializeProtectedHeader(r.header), 'utf8').toString('base64url'), 'ascii');
      if (cek.length !== 32) throw new TeeKeyPairError('DECRYPT_FAILED', 'Failed to convert array to key');
      if (r.iv.length !== 12) throw new TeeKeyPairError('DECRYPT_FAILED', 'Failed to convert array to nonce');
      if (r.tag.length !== 16) throw new TeeKeyPairError('DECRYPT_FAILED', 'Failed to convert array to tag');
      try {
        const decipher = createDecipheriv('aes-256-gcm', cek, r.iv, { authTagLength: 16 });
        decipher.setAAD(aad);
        decipher.setAuthTag(r.tag);
        return new Uint8Array(Buffer.concat([decipher.update(r.ciphertext), decipher.final()]));
      } catch (cause) {
        throw new TeeKeyPairError('DECRYPT_FAILED', 'aes-256-gcm decrypt failed', { cause });
      }
    } finally {
      cek.fill(0);
    }
  }

  /** `unwrap_cek`, selected by the header's `alg`. */
  private unwrapCek(header: ProtectedHeader, wrapped: Buffer): Buffer {
    const key = this.key;
    if (header.alg === ALG_RSA1_5 || header.alg === ALG_RSA_OAEP_256) {
      if (key.kind !== 'rsa') throw new TeeKeyPairError('KEY_MISMATCH', 'Unmatched key. Must be RSA key');
      const k = Math.ceil((key.privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
      if (wrapped.length !== k) throw new TeeKeyPairError('DECRYPT_FAILED', 'RSA ciphertext length mismatch');
      try {
        if (header.alg === ALG_RSA_OAEP_256) {
          return privateDecrypt(
            { key: key.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
            wrapped,
          );
        }
        // Node 20 refuses RSA_PKCS1_PADDING for private decryption (CVE-2023-46809); decode the
        // padding from the raw RSA result instead.
        const em = privateDecrypt({ key: key.privateKey, padding: constants.RSA_NO_PADDING }, wrapped);
        return pkcs1v15Unpad(em, k);
      } catch (cause) {
        if (cause instanceof TeeKeyPairError) throw cause;
        throw new TeeKeyPairError('DECRYPT_FAILED', `RSA key decrypt (${header.alg}) failed`, { cause });
      }
    }
    if (header.alg === ALG_ECDH_ES_A256KW) {
      const epk = header.other.find(([k]) => k === 'epk')?.[1];
      if (epk === undefined) throw new TeeKeyPairError('RESPONSE_MALFORMED', 'Invalid JWE ProtectedHeader. Without `epk`');
      const crv = jsonStringMember(epk, 'crv');
      const x = decodeB64u(jsonStringMember(epk, 'x'), 'epk.x');
      const y = decodeB64u(jsonStringMember(epk, 'y'), 'epk.y');
      if (key.kind !== 'ec') throw new TeeKeyPairError('KEY_MISMATCH', 'Unmatched key. Must be EC key');
      if (crv !== key.curve.name) throw new TeeKeyPairError('KEY_MISMATCH', `Unmatched curve: ${JSON.stringify(crv.slice(0, 32))}`);
      let z: Buffer;
      try {
        z = key.ecdh.computeSecret(ecPoint(key.curve, x, y));
      } catch (cause) {
        if (cause instanceof TeeKeyPairError) throw cause;
        throw new TeeKeyPairError('DECRYPT_FAILED', 'invalid public key', { cause });
      }
      const kek = concatKdfA256kw(z);
      z.fill(0);
      try {
        if (wrapped.length < 24 || wrapped.length % 8 !== 0) throw new Error('invalid wrapped key length');
        const decipher = createDecipheriv('id-aes256-wrap', kek, AES_KW_DEFAULT_IV);
        return Buffer.concat([decipher.update(wrapped), decipher.final()]);
      } catch (cause) {
        throw new TeeKeyPairError('DECRYPT_FAILED', 'failed to unwrap key', { cause });
      } finally {
        kek.fill(0);
      }
    }
    throw new TeeKeyPairError(
      'UNSUPPORTED_ALGORITHM',
      `Unsupported algorithm: ${JSON.stringify(header.alg.slice(0, 64))}`,
    );
  }
}
