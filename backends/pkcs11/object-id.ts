/**
 * CKA_ID of the objects this backend writes: "kbs1" ‖ generation (u64 big endian) ‖ updatedAt in ms
 * since the epoch (u64 BE) ‖ 4 random bytes — 24 bytes. PKCS#11 keeps no modification time and
 * labels are not unique, so the id carries both: `list()` reports updatedAt, and among objects
 * sharing a label the greatest id (highest generation, then newest, then the random tie-breaker)
 * is the current value. Objects without this id were written by other tools.
 */
export const OBJECT_ID_MAGIC = 'kbs1';
export const OBJECT_ID_BYTES = 24;

const MAGIC = Buffer.from(OBJECT_ID_MAGIC, 'latin1');

export interface ObjectIdInfo {
  generation: bigint;
  updatedAtMs: number;
}

export function encodeObjectId(generation: bigint, updatedAtMs: number, nonce: Uint8Array): Buffer {
  if (nonce.byteLength < 4) throw new RangeError('object id nonce must be 4 bytes');
  const id = Buffer.alloc(OBJECT_ID_BYTES);
  MAGIC.copy(id, 0);
  id.writeBigUInt64BE(generation, 4);
  id.writeBigUInt64BE(BigInt(Math.max(0, Math.trunc(updatedAtMs))), 12);
  id.set(nonce.subarray(0, 4), 20);
  return id;
}

/** The generation and time of an id written by this backend; null for any other id. */
export function decodeObjectId(id: Uint8Array | undefined): ObjectIdInfo | null {
  if (id === undefined || id.byteLength !== OBJECT_ID_BYTES) return null;
  const b = Buffer.from(id.buffer, id.byteOffset, id.byteLength);
  if (!b.subarray(0, 4).equals(MAGIC)) return null;
  return { generation: b.readBigUInt64BE(4), updatedAtMs: Number(b.readBigUInt64BE(12)) };
}
