/**
 * PKCS#11 return codes (CKR_*) → typed BackendErrors with messages an operator can act on.
 *
 * pkcs11js throws two shapes (shared/docs/backends.md §2.5): a Pkcs11Error whose message is the
 * CKR name and whose `code` is the number, or a plain Error whose message is "CKR_NAME:number".
 * `ckrOf` normalises both. Messages name the token, the resource path and the CKR name; they never
 * contain the PIN or a value (the worker additionally scrubs the PIN from every outgoing message).
 */
import { BackendError } from '../types.js';

/** The return codes this backend treats specially (values from the PKCS#11 2.40 header). */
export const CKR = {
  OK: 0x0,
  HOST_MEMORY: 0x2,
  SLOT_ID_INVALID: 0x3,
  GENERAL_ERROR: 0x5,
  FUNCTION_FAILED: 0x6,
  ARGUMENTS_BAD: 0x7,
  ATTRIBUTE_READ_ONLY: 0x10,
  ATTRIBUTE_SENSITIVE: 0x11,
  ATTRIBUTE_TYPE_INVALID: 0x12,
  ATTRIBUTE_VALUE_INVALID: 0x13,
  DEVICE_ERROR: 0x30,
  DEVICE_MEMORY: 0x31,
  DEVICE_REMOVED: 0x32,
  OBJECT_HANDLE_INVALID: 0x82,
  OPERATION_ACTIVE: 0x90,
  PIN_INCORRECT: 0xa0,
  PIN_INVALID: 0xa1,
  PIN_LEN_RANGE: 0xa2,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  SESSION_CLOSED: 0xb0,
  SESSION_COUNT: 0xb1,
  SESSION_HANDLE_INVALID: 0xb3,
  SESSION_READ_ONLY: 0xb5,
  TEMPLATE_INCOMPLETE: 0xd0,
  TEMPLATE_INCONSISTENT: 0xd1,
  TOKEN_NOT_PRESENT: 0xe0,
  TOKEN_NOT_RECOGNIZED: 0xe1,
  TOKEN_WRITE_PROTECTED: 0xe2,
  USER_ALREADY_LOGGED_IN: 0x100,
  USER_NOT_LOGGED_IN: 0x101,
  USER_PIN_NOT_INITIALIZED: 0x102,
  CRYPTOKI_NOT_INITIALIZED: 0x190,
  CRYPTOKI_ALREADY_INITIALIZED: 0x191,
} as const;

const NAME_BY_CODE = new Map<number, string>(Object.entries(CKR).map(([name, code]) => [code, `CKR_${name}`]));

export interface Ckr {
  /** e.g. "CKR_PIN_INCORRECT" */
  name: string;
  /** e.g. 160; NaN when the library gave a name without a number. */
  code: number;
}

/** The CKR_* carried by an error thrown by pkcs11js, or null for other errors (dlopen, TypeError…). */
export function ckrOf(e: unknown): Ckr | null {
  if (typeof e !== 'object' || e === null) return null;
  const message = (e as { message?: unknown }).message;
  const m = typeof message === 'string' ? /(CKR_[A-Z0-9_]+)(?::(\d+))?/.exec(message) : null;
  const rawCode = (e as { code?: unknown }).code;
  const numeric = typeof rawCode === 'number' && rawCode !== 0 ? rawCode : m?.[2] !== undefined ? Number(m[2]) : NaN;
  if (m === null) {
    // A Pkcs11Error always names its CKR; a bare numeric code is accepted for completeness.
    return Number.isFinite(numeric) && NAME_BY_CODE.has(numeric) ? { name: NAME_BY_CODE.get(numeric)!, code: numeric } : null;
  }
  const name = m[1]!;
  const code = Number.isFinite(numeric) ? numeric : ((CKR as Record<string, number>)[name.slice(4)] ?? NaN);
  return { name, code };
}

/** True when `e` is the CKR `code`. */
export function isCkr(e: unknown, code: number): boolean {
  return ckrOf(e)?.code === code;
}

/**
 * Session or login lost (HSM restarted, sessions closed by another application in the process,
 * logout, token re-inserted): the worker re-opens its session, logs in again, rescans and retries
 * the operation once.
 */
export function isSessionLoss(e: unknown): boolean {
  const c = ckrOf(e)?.code;
  return (
    c === CKR.USER_NOT_LOGGED_IN ||
    c === CKR.SESSION_HANDLE_INVALID ||
    c === CKR.SESSION_CLOSED ||
    c === CKR.CRYPTOKI_NOT_INITIALIZED ||
    c === CKR.DEVICE_REMOVED ||
    c === CKR.TOKEN_NOT_PRESENT
  );
}

/** What the backend was doing, for the message. */
export interface ErrorContext {
  /** "open", "login", "get", "put", "delete", "list", "check", "close" */
  op: string;
  /** Token label (or the requested one while opening). */
  token: string;
  /** Resource path, when the operation concerns one. */
  path?: string;
}

function where(ctx: ErrorContext): string {
  return ctx.path === undefined ? `token "${ctx.token}"` : `${ctx.path} on token "${ctx.token}"`;
}

/** A short, printable description of a non-PKCS#11 error (no stack). */
function plain(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const line = msg.split('\n')[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** Maps any error thrown by a pkcs11js call to a BackendError. */
export function toBackendError(e: unknown, ctx: ErrorContext): BackendError {
  if (e instanceof BackendError) return e;
  const ckr = ckrOf(e);
  if (ckr === null) {
    return new BackendError('IO', `PKCS#11 ${ctx.op} of ${where(ctx)} failed: ${plain(e)}`);
  }
  const tag = ckr.name;
  const keepsOld = ctx.op === 'put' ? '; the previous value is unchanged' : '';
  switch (ckr.code) {
    case CKR.PIN_INCORRECT:
      return new BackendError('UNAVAILABLE', `wrong PIN for token "${ctx.token}" (${tag})`);
    case CKR.PIN_LOCKED:
      return new BackendError('UNAVAILABLE', `the user PIN of token "${ctx.token}" is locked (${tag}); unlock or reset it with the SO PIN`);
    case CKR.PIN_EXPIRED:
      return new BackendError('UNAVAILABLE', `the user PIN of token "${ctx.token}" has expired (${tag}); set a new one`);
    case CKR.PIN_INVALID:
    case CKR.PIN_LEN_RANGE:
      return new BackendError('UNAVAILABLE', `the configured PIN is not acceptable to token "${ctx.token}" (${tag}): check its length and characters`);
    case CKR.USER_PIN_NOT_INITIALIZED:
      return new BackendError('UNAVAILABLE', `token "${ctx.token}" has no user PIN yet (${tag}); initialise it (softhsm2-util --init-token … --pin, or the HSM's tool)`);
    case CKR.TOKEN_NOT_PRESENT:
    case CKR.DEVICE_REMOVED:
    case CKR.TOKEN_NOT_RECOGNIZED:
    case CKR.SLOT_ID_INVALID:
      return new BackendError('UNAVAILABLE', `token "${ctx.token}" not present (${tag}): is the HSM connected and the slot or token label right?`);
    case CKR.CRYPTOKI_NOT_INITIALIZED:
    case CKR.SESSION_HANDLE_INVALID:
    case CKR.SESSION_CLOSED:
    case CKR.USER_NOT_LOGGED_IN:
      return new BackendError('UNAVAILABLE', `lost the session with token "${ctx.token}" during ${ctx.op} and could not restore it (${tag})${keepsOld}`);
    case CKR.SESSION_COUNT:
      return new BackendError('UNAVAILABLE', `token "${ctx.token}" refuses another session (${tag})`);
    case CKR.DEVICE_MEMORY:
      return new BackendError('IO', `no space on token "${ctx.token}" (${tag}) during ${ctx.op}${ctx.path === undefined ? '' : ` of ${ctx.path}`}${keepsOld}`);
    case CKR.HOST_MEMORY:
      return new BackendError('IO', `the PKCS#11 library ran out of host memory (${tag}) during ${ctx.op} of ${where(ctx)}${keepsOld}`);
    case CKR.TOKEN_WRITE_PROTECTED:
    case CKR.SESSION_READ_ONLY:
      return new BackendError('READ_ONLY', `token "${ctx.token}" is write-protected (${tag}); ${ctx.path ?? 'the resource'} was not changed`);
    case CKR.ATTRIBUTE_SENSITIVE:
      return new BackendError(
        'IO',
        `${where(ctx)} is a sensitive or non-extractable key; its value cannot be read (${tag}). ` +
          'Provision resources with CKA_SENSITIVE=false and CKA_EXTRACTABLE=true',
      );
    case CKR.GENERAL_ERROR:
    case CKR.FUNCTION_FAILED:
    case CKR.DEVICE_ERROR:
      return new BackendError(
        'IO',
        `token "${ctx.token}" failed during ${ctx.op}${ctx.path === undefined ? '' : ` of ${ctx.path}`} (${tag})` +
          (ctx.op === 'put' ? '; with SoftHSM this usually means its token directory is full or not writable' : '') +
          keepsOld,
      );
    default:
      return new BackendError('IO', `PKCS#11 ${ctx.op} of ${where(ctx)} failed (${tag})${keepsOld}`);
  }
}
