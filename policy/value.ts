/**
 * The Rego value model.
 *
 * JSON values are used as they are (no conversion of `input` per evaluation): null, booleans, numbers,
 * strings, arrays and plain objects with string keys. Rego sets are the one addition (`RegoSet`).
 * Values are never mutated once built.
 *
 * Ordering follows regorus/OPA: null < boolean < number < string < array < object < set.
 * Numbers are IEEE doubles: integers beyond 2^53 lose precision (EAR claims are small integers or
 * hex strings, so the policies Trustee ships never notice).
 */
export type Value = null | boolean | number | string | Value[] | RegoObject | RegoSet;

export interface RegoObject {
  [key: string]: Value;
}

/** A JSON document as it comes from JSON.parse. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export class RegoSet {
  private readonly items: Map<string, Value>;
  private order: Value[] | undefined;

  constructor(values?: Iterable<Value>) {
    this.items = new Map();
    if (values) for (const v of values) this.items.set(canonicalKey(v), v);
  }

  get size(): number {
    return this.items.size;
  }

  has(v: Value): boolean {
    return this.items.has(canonicalKey(v));
  }

  /** Adds in place; only for sets under construction (comprehensions, builtins). */
  add(v: Value): void {
    const k = canonicalKey(v);
    if (!this.items.has(k)) {
      this.items.set(k, v);
      this.order = undefined;
    }
  }

  values(): IterableIterator<Value> {
    return this.items.values();
  }

  /** Elements in Rego order (the order iteration uses, as OPA does); computed once per set. */
  sorted(): Value[] {
    this.order ??= [...this.items.values()].sort(compare);
    return this.order;
  }

  [Symbol.iterator](): IterableIterator<Value> {
    return this.items.values();
  }
}

export function isObject(v: Value | undefined): v is RegoObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof RegoSet);
}

export function isSet(v: Value | undefined): v is RegoSet {
  return v instanceof RegoSet;
}

export type TypeName = 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object' | 'set';

export function typeName(v: Value): TypeName {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return 'boolean';
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    default:
      if (Array.isArray(v)) return 'array';
      if (v instanceof RegoSet) return 'set';
      return 'object';
  }
}

const TYPE_RANK: Record<TypeName, number> = {
  null: 0,
  boolean: 1,
  number: 2,
  string: 3,
  array: 4,
  object: 5,
  set: 6,
};

/** Own-property lookup on an object (never the prototype chain). */
export function getKey(obj: RegoObject, key: string): Value | undefined {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** Defines an own property, safe for keys such as `__proto__`. */
export function setKey(obj: RegoObject, key: string, v: Value): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value: v, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = v;
  }
}

/** A string that is equal for two values exactly when `equal` holds. */
export function canonicalKey(v: Value): string {
  if (v === null) return 'n';
  switch (typeof v) {
    case 'boolean':
      return v ? 't' : 'f';
    case 'number':
      return 'd' + String(v === 0 ? 0 : v);
    case 'string':
      return JSON.stringify(v);
    default:
      if (Array.isArray(v)) return '[' + v.map(canonicalKey).join(',') + ']';
      if (v instanceof RegoSet) {
        const keys = [...v.values()].map(canonicalKey).sort();
        return '<' + keys.join(',') + '>';
      }
      return (
        '{' +
        Object.keys(v)
          .sort()
          .map((k) => JSON.stringify(k) + ':' + canonicalKey(v[k] as Value))
          .join(',') +
        '}'
      );
  }
}

export function equal(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!equal(a[i] as Value, b[i] as Value)) return false;
    return true;
  }
  if (a instanceof RegoSet) {
    if (!(b instanceof RegoSet) || a.size !== b.size) return false;
    for (const x of a) if (!b.has(x)) return false;
    return true;
  }
  if (Array.isArray(b) || b instanceof RegoSet) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.hasOwn(b, k) || !equal(a[k] as Value, b[k] as Value)) return false;
  }
  return true;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Total order over Rego values: negative, zero or positive. */
export function compare(a: Value, b: Value): number {
  const ta = typeName(a);
  const tb = typeName(b);
  if (ta !== tb) return TYPE_RANK[ta] - TYPE_RANK[tb];
  switch (ta) {
    case 'null':
      return 0;
    case 'boolean':
      return (a ? 1 : 0) - (b ? 1 : 0);
    case 'number':
      return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
    case 'string':
      return compareStrings(a as string, b as string);
    case 'array':
      return compareSequences(a as Value[], b as Value[]);
    case 'set':
      return compareSequences((a as RegoSet).sorted(), (b as RegoSet).sorted());
    case 'object': {
      const oa = a as RegoObject;
      const ob = b as RegoObject;
      const ka = Object.keys(oa).sort();
      const kb = Object.keys(ob).sort();
      const n = Math.min(ka.length, kb.length);
      for (let i = 0; i < n; i++) {
        const c = compareStrings(ka[i] as string, kb[i] as string);
        if (c !== 0) return c;
        const cv = compare(oa[ka[i] as string] as Value, ob[kb[i] as string] as Value);
        if (cv !== 0) return cv;
      }
      return ka.length - kb.length;
    }
  }
}

function compareSequences(a: Value[], b: Value[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compare(a[i] as Value, b[i] as Value);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/** Converts a value to JSON: sets become sorted arrays (as regorus serialises them). */
export function toJSON(v: Value): JsonValue {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(toJSON);
  if (v instanceof RegoSet) return v.sorted().map(toJSON);
  const out: { [key: string]: JsonValue } = {};
  for (const k of Object.keys(v)) {
    const x = toJSON(v[k] as Value);
    if (k === '__proto__') {
      Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true });
    } else {
      out[k] = x;
    }
  }
  return out;
}

/**
 * Checks that an arbitrary JS value is a JSON document (what host functions may return), bounded in
 * depth. Returns undefined when it is not.
 */
export function fromUnknown(x: unknown, depth = 0): Value | undefined {
  if (depth > 256) return undefined;
  if (x === null || typeof x === 'boolean' || typeof x === 'string') return x;
  if (typeof x === 'number') return Number.isFinite(x) ? x : undefined;
  if (Array.isArray(x)) {
    const out: Value[] = [];
    for (const e of x) {
      const v = fromUnknown(e, depth + 1);
      if (v === undefined) return undefined;
      out.push(v);
    }
    return out;
  }
  if (x instanceof RegoSet) return x;
  if (typeof x === 'object') {
    const proto = Object.getPrototypeOf(x);
    if (proto !== Object.prototype && proto !== null) return undefined;
    const out: RegoObject = {};
    for (const [k, e] of Object.entries(x)) {
      const v = fromUnknown(e, depth + 1);
      if (v === undefined) return undefined;
      setKey(out, k, v);
    }
    return out;
  }
  return undefined;
}

/** Rego truthiness of an expression statement: anything but `false` (undefined never reaches here). */
export function isTruthy(v: Value): boolean {
  return v !== false;
}
