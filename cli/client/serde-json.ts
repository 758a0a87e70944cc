/**
 * A JSON reader/writer with serde_json's semantics, used to re-serialize the JWE protected header
 * exactly as the Rust client does when it recomputes the AES-GCM AAD.
 *
 * JSON.parse/JSON.stringify are not enough: serde_json keeps integers and floats apart (`1.0` is
 * written back as `1.0`), writes floats the way the `ryu` crate does, rejects lone surrogates,
 * numbers out of f64 range and nesting deeper than 127, and the typed `alg`/`enc` fields refuse
 * duplicates. Objects are kept as entry lists so duplicates can be seen.
 */

export type JsonValue =
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

export class JsonReader {
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
export function writeString(s: string): string {
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
export function mapEntries(entries: ReadonlyArray<readonly [string, JsonValue]>): Array<[string, JsonValue]> {
  const m = new Map<string, JsonValue>();
  for (const [k, v] of entries) m.set(k, v);
  return [...m.entries()].sort((a, b) => compareUtf8(a[0], b[0]));
}

export function writeValue(v: JsonValue): string {
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
