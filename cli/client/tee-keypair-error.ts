/**
 * The error type of the guest-side TEE key pair (`TeeKeyPair`): one `code` per kind of failure,
 * shared by key loading, JWE response decoding and CEK unwrapping.
 */
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
