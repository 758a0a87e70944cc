/**
 * KBS resource path (`repo/type/tag`, case-sensitive, `[A-Za-z0-9_.-]`) ⇄ Azure Key Vault secret
 * name (`^[0-9a-zA-Z-]{1,127}$`, case-insensitive).
 *
 * Reversible scheme (names starting `kbs-0`): lower-case letters and digits pass through; `-`
 * introduces a two-character escape: `-<a..z>` is that letter upper-cased, `-0` = `/`, `-1` = `-`,
 * `-2` = `_`, `-3` = `.`. The vault may return names in another case; decoding lower-cases first,
 * so two paths can never collide case-insensitively. `default/akv/coco_one` → `kbs-0default-0akv-0coco-2one`.
 *
 * Paths whose escaped form exceeds 127 characters are stored as `kbs-9<sha256 hex of the path>`;
 * the path itself travels in the secret's tags (`kbs-path`, `kbs-path-1`, …, 250 characters each)
 * and is accepted on listing only when it hashes back to the name.
 */
import { createHash } from 'node:crypto';
import { isValidSegment } from '../resource-path.js';
import type { ResourcePath } from '../types.js';

export const AKV_NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;
export const AKV_MAX_NAME_LENGTH = 127;
/** Prefix of reversibly mapped names ("kbs/"). */
export const REVERSIBLE_PREFIX = 'kbs-0';
/** Prefix of hashed names (long paths). */
export const HASHED_PREFIX = 'kbs-9';
/** Tag holding the KBS path (first chunk); further chunks are `kbs-path-<n>`. */
export const PATH_TAG = 'kbs-path';
const TAG_CHUNK = 250;

const ESCAPE: Readonly<Record<string, string>> = { '/': '0', '-': '1', _: '2', '.': '3' };
const UNESCAPE: Readonly<Record<string, string>> = { '0': '/', '1': '-', '2': '_', '3': '.' };

function hashedName(path: string): string {
  return HASHED_PREFIX + createHash('sha256').update(path, 'utf8').digest('hex');
}

/** The secret name of a (validated) resource path. */
export function toAkvName(p: ResourcePath): string {
  const path = `${p.repo}/${p.type}/${p.tag}`;
  let out = REVERSIBLE_PREFIX;
  for (const ch of path) {
    if (/[a-z0-9]/.test(ch)) out += ch;
    else if (/[A-Z]/.test(ch)) out += `-${ch.toLowerCase()}`;
    else {
      const esc = ESCAPE[ch];
      if (esc === undefined) throw new Error(`unmappable character in resource path`); // validated paths never get here
      out += `-${esc}`;
    }
    if (out.length > AKV_MAX_NAME_LENGTH) return hashedName(path);
  }
  return out;
}

/** Tags that carry the path (always written, so listings never need the value). */
export function pathTags(p: ResourcePath): Record<string, string> {
  const path = `${p.repo}/${p.type}/${p.tag}`;
  const tags: Record<string, string> = {};
  for (let i = 0; i * TAG_CHUNK < path.length; i++) {
    tags[i === 0 ? PATH_TAG : `${PATH_TAG}-${i}`] = path.slice(i * TAG_CHUNK, (i + 1) * TAG_CHUNK);
  }
  return tags;
}

function splitPath(path: string): [string, string, string] | null {
  const parts = path.split('/');
  if (parts.length !== 3 || !parts.every(isValidSegment)) return null;
  return parts as [string, string, string];
}

/**
 * The resource path a secret name (and its tags) stands for, or null when the secret is not a KBS
 * entry (other tools' secrets in a shared vault, malformed names, tags that do not match the hash).
 */
export function fromAkvName(name: string, tags?: Readonly<Record<string, string>>): [string, string, string] | null {
  const n = name.toLowerCase();
  if (n.startsWith(HASHED_PREFIX) && n.length === HASHED_PREFIX.length + 64) {
    if (tags === undefined) return null;
    let path = '';
    for (let i = 0; ; i++) {
      const chunk = tags[i === 0 ? PATH_TAG : `${PATH_TAG}-${i}`];
      if (chunk === undefined) break;
      path += chunk;
    }
    return hashedName(path) === n ? splitPath(path) : null;
  }
  if (!n.startsWith(REVERSIBLE_PREFIX)) return null;
  let path = '';
  for (let i = REVERSIBLE_PREFIX.length; i < n.length; i++) {
    const ch = n[i] as string;
    if (ch !== '-') {
      if (!/[a-z0-9]/.test(ch)) return null;
      path += ch;
      continue;
    }
    const d = n[++i];
    if (d === undefined) return null;
    if (d >= 'a' && d <= 'z') path += d.toUpperCase();
    else if (UNESCAPE[d] !== undefined) path += UNESCAPE[d];
    else return null;
  }
  const parts = splitPath(path);
  // Only the canonical encoding of a path is that path's secret (rules out e.g. a hashed-length path
  // written under a reversible name by hand).
  return parts !== null && toAkvName({ repo: parts[0], type: parts[1], tag: parts[2] }) === n ? parts : null;
}

/** A secret name as written by an operator (imports): checked against the vault's rule. */
export function isAkvName(name: unknown): name is string {
  return typeof name === 'string' && AKV_NAME_RE.test(name);
}
