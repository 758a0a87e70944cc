/**
 * Event `details` of the CC event log claims, per event type, as upstream's eventlog crate renders
 * them. A parser error fails the whole event log (as upstream). Device-path nodes of
 * EV_EFI_BOOT_SERVICES_APPLICATION are printed in the generic `Path(type,subtype,hex)` form only
 * (upstream prints known node types by name).
 */
import type { JsonValue } from '../../policy/index.js';
import { AttestationFailure } from '../types.js';

export type EventDetails = { [key: string]: JsonValue };

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lossyUtf8 = new TextDecoder('utf-8');

function fail(message: string): never {
  throw new AttestationFailure('eventlog', `CC event log: ${message}`);
}

function utf8(data: Buffer): string {
  try {
    return strictUtf8.decode(data);
  } catch {
    return fail('event data is not UTF-8');
  }
}

/** Unicode control characters (Rust `char::is_control`: categories Cc). */
const isControl = (c: number): boolean => c <= 0x1f || (c >= 0x7f && c <= 0x9f);

function simple(data: Buffer): EventDetails {
  return { string: utf8(data) };
}

function simpleString(data: Buffer): EventDetails {
  if (data.length === 0) fail('event data is empty');
  const end = data[0] as number;
  if (end < 1 || data.length < end) fail('event description runs past the event');
  return { string: utf8(data.subarray(1, end)) };
}

function platformConfigFlags(data: Buffer): EventDetails {
  let s = '';
  try {
    s = strictUtf8.decode(data);
  } catch {
    s = '';
  }
  let out = '';
  for (const ch of s.replaceAll('\u0010', ' ')) if (!isControl(ch.codePointAt(0) as number)) out += ch;
  return { string: out };
}

function eventTag(data: Buffer): EventDetails {
  if (data.length < 8) fail('tagged event is too short');
  const id = data.readUInt32LE(0);
  const size = data.readUInt32LE(4);
  if (8 + size > data.length) fail('tagged event data runs past the event');
  const body = data.subarray(8, 8 + size);
  const details: EventDetails = { string: lossyUtf8.decode(body).replaceAll('\0', '') };
  if (id === 0x4141454c) {
    const s = utf8(body);
    const a = s.indexOf(' ');
    const b = a < 0 ? -1 : s.indexOf(' ', a + 1);
    if (a < 0 || b < 0) fail('AAEL event has no domain/operation');
    const contentText = s.slice(b + 1);
    let content: JsonValue;
    try {
      content = JSON.parse(contentText) as JsonValue;
    } catch {
      content = contentText;
    }
    details['unicode_name'] = 'AAEL';
    details['data'] = { domain: s.slice(0, a), operation: s.slice(a + 1, b), content };
  }
  return details;
}

function ipl(data: Buffer): EventDetails {
  if (data.length < 2) fail('IPL event is too short');
  if (data[0] === 0x2e && data[1] === 0x00) {
    const end = data.length - 2;
    if (end === 0 || end % 2 !== 0) fail('IPL event is not UTF-16');
    const words: number[] = [];
    for (let i = 2; i + 1 < end; i += 2) words.push(data.readUInt16LE(i));
    return { string: Buffer.from(Uint16Array.from(words).buffer).toString('utf16le') };
  }
  const nul = data.indexOf(0);
  try {
    return { string: strictUtf8.decode(nul < 0 ? data : data.subarray(0, nul)) };
  } catch {
    return { string: data.toString('hex') };
  }
}

function efiVariable(data: Buffer): EventDetails {
  if (data.length < 32) fail('EFI variable event is too short');
  const guid = data.subarray(0, 16).toString('hex');
  const nameLen = data.readBigUInt64LE(16);
  const dataLen = data.readBigUInt64LE(24);
  if (nameLen * 2n > BigInt(data.length - 32)) fail('EFI variable name runs past the event');
  const nameEnd = 32 + Number(nameLen) * 2;
  const words = data.subarray(32, nameEnd);
  let name = '';
  for (let i = 0; i + 1 < words.length; i += 2) {
    const w = words.readUInt16LE(i);
    if (w >= 0xd800 && w <= 0xdfff) {
      const lo = i + 3 < words.length ? words.readUInt16LE(i + 2) : 0;
      if (w > 0xdbff || lo < 0xdc00 || lo > 0xdfff) fail('EFI variable name is not UTF-16');
      name += String.fromCharCode(w, lo);
      i += 2;
    } else name += String.fromCharCode(w);
  }
  if (dataLen > BigInt(data.length - nameEnd)) fail('EFI variable data runs past the event');
  const varData = dataLen > 0n ? data.subarray(nameEnd, nameEnd + Number(dataLen)).toString('base64') : '';
  return {
    unicode_name: name,
    unicode_name_length: Number(nameLen),
    variable_data: varData,
    variable_data_length: Number(dataLen),
    variable_name: `${guid.slice(0, 8)}-${guid.slice(8, 12)}-${guid.slice(12, 16)}-${guid.slice(16, 20)}-${guid.slice(20)}`,
  };
}

function bootServicesApp(data: Buffer): EventDetails {
  if (data.length < 32) fail('boot services application event is too short');
  const len = data.readBigUInt64LE(24);
  if (len === 0n) return {};
  if (len < 4n || len - 4n > BigInt(data.length - 32)) fail('device path runs past the event');
  let path = data.subarray(32, 32 + Number(len) - 4);
  if (path.length < 4) fail('device path is shorter than 4 bytes');
  const paths: string[] = [];
  while (path.length > 0) {
    if (path.length < 4) fail('device path node is truncated');
    const nodeLen = path.readUInt16LE(2);
    if (nodeLen < 4 || nodeLen > path.length) fail('device path node length is invalid');
    paths.push(`Path(${path[0]},${path[1]},${path.subarray(4, nodeLen).toString('hex')})`);
    path = path.subarray(nodeLen);
  }
  return { device_paths: paths };
}

/** The details parser of an event type (upstream `TcgEventType::get_parser`). */
export function eventDetails(type: number, data: Buffer): EventDetails {
  switch (type) {
    case 0x1: // EV_POST_CODE
    case 0x5: // EV_ACTION
    case 0xc: // EV_COMPACT_HASH
    case 0x12: // EV_OMIT_BOOT_DEVICE_EVENTS
    case 0x80000007: // EV_EFI_ACTION
      return simple(data);
    case 0x6:
      return eventTag(data);
    case 0xa:
      return platformConfigFlags(data);
    case 0xd:
      return ipl(data);
    case 0x80000001:
    case 0x80000002:
    case 0x8000000c:
    case 0x800000e0:
      return efiVariable(data);
    case 0x80000003:
      return bootServicesApp(data);
    case 0x8000000a:
    case 0x8000000b:
      return simpleString(data);
    default:
      return {};
  }
}
