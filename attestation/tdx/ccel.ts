/**
 * The CC event log (ACPI CCEL, TCG2 crypto-agile format): parsing into the `uefi_event_logs` claim
 * entries and replay of the SHA-384 digests into RTMR values (CCEL index 1..4 → RTMR 0..3).
 */
import { createHash } from 'node:crypto';
import type { JsonValue } from '../../policy/index.js';
import { ByteReader } from '../common/byte-reader.js';
import { AttestationFailure } from '../types.js';
import { eventDetails } from './ccel-details.js';
import { EVENT_TYPE_NAMES } from './event-types.js';

export interface CcelEvent {
  readonly index: number;
  readonly type: number;
  readonly digests: ReadonlyArray<{ readonly alg: number; readonly digest: Buffer }>;
  readonly data: Buffer;
  readonly details: { [key: string]: JsonValue };
}

const ALG_NAMES: Record<number, string> = { 0x1: 'RSA', 0x3: 'TDES', 0x4: 'SHA-1', 0xb: 'SHA-256', 0xc: 'SHA-384', 0xd: 'SHA-512', 0x12: 'SM3' };
const ALG_HASH: Record<number, string> = { 0xb: 'sha256', 0xc: 'sha384', 0xd: 'sha512', 0x12: 'sm3' };
const EV_NO_ACTION = 0x3;
export const SHA384 = 0xc;
const MAX_EVENTS = 100_000;

function fail(message: string): never {
  throw new AttestationFailure('eventlog', `CC event log: ${message}`);
}

/** The event log's little-endian cursor; a short read is an event-log failure. */
class Reader extends ByteReader {
  constructor(buf: Buffer) {
    super(buf, 'le', fail);
  }
}

/** Reads the legacy first event and its `Spec ID Event03` list of digest sizes. */
function specIdDigestSizes(r: Reader): Map<number, number> {
  r.u32('first event index');
  const type = r.u32('first event type');
  if (type !== EV_NO_ACTION) fail('the first event is not the Spec ID event');
  r.bytes(20, 'first event digest');
  const size = r.u32('first event size');
  const spec = new Reader(r.bytes(size, 'Spec ID event'));
  spec.bytes(24, 'Spec ID header');
  const count = spec.u32('algorithm count');
  if (count > 16) fail('too many digest algorithms');
  const sizes = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const alg = spec.u16('algorithm id');
    const digestSize = spec.u16('digest size');
    if (ALG_NAMES[alg] === undefined) fail(`unknown digest algorithm 0x${alg.toString(16)}`);
    sizes.set(alg, digestSize);
  }
  spec.bytes(spec.u8('vendor info size'), 'vendor info');
  if (spec.pos !== size) fail('Spec ID event size mismatch');
  return sizes;
}

function digestMatches(data: Buffer, digests: CcelEvent['digests']): boolean {
  for (const d of digests) {
    const alg = ALG_HASH[d.alg];
    if (alg === undefined) fail(`digest algorithm ${ALG_NAMES[d.alg] ?? d.alg} is not supported`);
    if (!createHash(alg).update(data).digest().equals(d.digest)) return false;
  }
  return true;
}

/** Parses a CCEL image (the ACPI area, padded with 0xFF or 0x00 after the last event). */
export function parseCcel(buf: Buffer): CcelEvent[] {
  const r = new Reader(buf);
  const sizes = specIdDigestSizes(r);
  const events: CcelEvent[] = [];
  while (r.pos < buf.length) {
    const rest = buf.subarray(r.pos, r.pos + 8);
    if (rest.every((b) => b === 0xff) || rest.every((b) => b === 0x00)) break;
    if (events.length >= MAX_EVENTS) fail('too many events');
    const index = r.u32('event index');
    const type = r.u32('event type');
    if (EVENT_TYPE_NAMES[type] === undefined) fail(`unknown event type 0x${type.toString(16)}`);
    const count = r.u32('digest count');
    if (count > 16) fail('too many digests in an event');
    const digests: Array<{ alg: number; digest: Buffer }> = [];
    for (let i = 0; i < count; i++) {
      const alg = r.u16('digest algorithm');
      if (ALG_NAMES[alg] === undefined) fail(`unknown digest algorithm 0x${alg.toString(16)}`);
      const size = sizes.get(alg) ?? fail(`no digest size for algorithm 0x${alg.toString(16)}`);
      digests.push({ alg, digest: r.bytes(size, 'digest') });
    }
    const data = r.bytes(r.u32('event size'), 'event data');
    events.push({ index, type, digests, data, details: eventDetails(type, data) });
  }
  return events;
}

/** The register value of CCEL `index` after replaying its SHA-384 digests from 48 zero bytes. */
export function replayRtmr(events: readonly CcelEvent[], index: number): Buffer {
  let acc = Buffer.alloc(48);
  for (const e of events) {
    if (e.index !== index) continue;
    for (const d of e.digests) if (d.alg === SHA384) acc = createHash('sha384').update(acc).update(d.digest).digest();
  }
  return acc;
}

/** The `uefi_event_logs` claim entries (upstream `EventlogEntry` serialisation, member order kept). */
export function eventLogClaims(events: readonly CcelEvent[]): JsonValue[] {
  return events.map((e) => ({
    details: e.details,
    digest_matches_event: digestMatches(e.data, e.digests),
    digests: e.digests.map((d) => ({ alg: ALG_NAMES[d.alg] as string, digest: d.digest.toString('hex') })),
    event: e.data.toString('base64'),
    index: e.index,
    type_name: EVENT_TYPE_NAMES[e.type] as string,
  }));
}
