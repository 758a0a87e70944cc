/**
 * Raw-text access to JSON members. Intel signs the exact bytes of the `tcbInfo` / `enclaveIdentity`
 * value as served, so the verifier keeps the substring instead of re-serialising a parsed value.
 */

export interface RawNode {
  readonly start: number;
  readonly end: number;
  /** Object members (raw key text decoded) when the node is an object. */
  readonly members?: ReadonlyMap<string, RawNode>;
  readonly items?: readonly RawNode[];
}

export class JsonScanError extends Error {}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const MAX_DEPTH = 64;

/** Scans `text` (which must be valid JSON; call JSON.parse first) into a tree of spans. */
export function scanJson(text: string): RawNode {
  let i = 0;
  const skipWs = (): void => {
    while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  };
  const str = (): void => {
    i++; // opening quote
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x5c) i += 2;
      else if (c === 0x22) {
        i++;
        return;
      } else i++;
    }
    throw new JsonScanError('unterminated string');
  };
  const value = (depth: number): RawNode => {
    if (depth > MAX_DEPTH) throw new JsonScanError('JSON nested too deeply');
    skipWs();
    const start = i;
    const c = text[i];
    if (c === '{') {
      i++;
      const members = new Map<string, RawNode>();
      skipWs();
      if (text[i] === '}') {
        i++;
        return { start, end: i, members };
      }
      for (;;) {
        skipWs();
        const ks = i;
        if (text[i] !== '"') throw new JsonScanError('expected a key');
        str();
        const key = JSON.parse(text.slice(ks, i)) as string;
        skipWs();
        if (text[i++] !== ':') throw new JsonScanError('expected ":"');
        const v = value(depth + 1);
        if (members.has(key)) throw new JsonScanError(`duplicate member ${key}`);
        members.set(key, v);
        skipWs();
        const d = text[i++];
        if (d === '}') return { start, end: i, members };
        if (d !== ',') throw new JsonScanError('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const items: RawNode[] = [];
      skipWs();
      if (text[i] === ']') {
        i++;
        return { start, end: i, items };
      }
      for (;;) {
        items.push(value(depth + 1));
        skipWs();
        const d = text[i++];
        if (d === ']') return { start, end: i, items };
        if (d !== ',') throw new JsonScanError('expected "," or "]"');
      }
    }
    if (c === '"') {
      str();
      return { start, end: i };
    }
    while (i < text.length && !/[\s,\]}]/.test(text[i] as string)) i++;
    if (i === start) throw new JsonScanError('unexpected character');
    return { start, end: i };
  };
  const root = value(0);
  skipWs();
  if (i !== text.length) throw new JsonScanError('trailing characters after JSON');
  return root;
}

/** `text` with insignificant whitespace removed (strings untouched). */
export function minifyJson(text: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (inString) {
      out += ch;
      if (ch === '\\') out += text[++i] ?? '';
      else if (ch === '"') inString = false;
    } else if (ch === '"') {
      inString = true;
      out += ch;
    } else if (!WS.has(ch.charCodeAt(0))) out += ch;
  }
  return out;
}

/** The member `key` of an object node, or undefined. */
export function member(node: RawNode | undefined, key: string): RawNode | undefined {
  return node?.members?.get(key);
}

export function rawText(text: string, node: RawNode): string {
  return text.slice(node.start, node.end);
}
