/**
 * Resource path validation, identical in what it accepts to Trustee's `ResourceDesc::try_from`
 * (`kbs/src/plugins/implementations/resource/backend.rs`): exactly three segments, each matching
 * `^[A-Za-z0-9_-]+[A-Za-z0-9_.-]*$`. On top of that a segment is at most 255 bytes (a file name
 * limit on every supported file system) and `.`/`..` are refused explicitly. The regex already
 * forbids a leading dot, so a valid segment can never name `.`, `..`, a hidden file, or contain a
 * separator, NUL or non-ASCII character; `a..b` is an ordinary name.
 */
import { BackendError, type ResourcePath } from './types.js';

export const RESOURCE_SEGMENT_RE = /^[A-Za-z0-9_-]+[A-Za-z0-9_.-]*$/;
export const MAX_SEGMENT_BYTES = 255;

const SEGMENT_NAMES = ['repository', 'type', 'tag'] as const;

/** A printable, bounded rendering of untrusted input for error messages. */
function describe(value: unknown): string {
  if (typeof value !== 'string') return `a ${value === null ? 'null' : typeof value}`;
  const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  return JSON.stringify(shown).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Returns null when `segment` is acceptable, otherwise the reason. */
export function segmentProblem(segment: unknown): string | null {
  if (typeof segment !== 'string') return 'is not a string';
  if (segment.length === 0) return 'is empty';
  if (segment === '.' || segment === '..') return 'is a relative directory reference';
  if (Buffer.byteLength(segment, 'utf8') > MAX_SEGMENT_BYTES) return `is longer than ${MAX_SEGMENT_BYTES} bytes`;
  if (!RESOURCE_SEGMENT_RE.test(segment)) return 'must match ^[A-Za-z0-9_-]+[A-Za-z0-9_.-]*$';
  return null;
}

export function isValidSegment(segment: unknown): segment is string {
  return segmentProblem(segment) === null;
}

/** Validates `[repo, type, tag]`; throws BackendError INVALID_PATH. */
export function parseResourcePath(segments: readonly string[]): ResourcePath {
  if (!Array.isArray(segments)) {
    throw new BackendError('INVALID_PATH', 'invalid resource path: expected <repository>/<type>/<tag>');
  }
  if (segments.length !== 3) {
    throw new BackendError(
      'INVALID_PATH',
      `invalid resource path: expected 3 segments <repository>/<type>/<tag>, got ${segments.length}`,
    );
  }
  segments.forEach((segment: unknown, i) => {
    const problem = segmentProblem(segment);
    if (problem !== null) {
      throw new BackendError('INVALID_PATH', `invalid resource path: ${SEGMENT_NAMES[i]} ${describe(segment)} ${problem}`);
    }
  });
  const [repo, type, tag] = segments as [string, string, string];
  return Object.freeze({ repo, type, tag });
}

/** Parses "repo/type/tag" (no leading or trailing slash). */
export function resourcePathFromString(path: string): ResourcePath {
  if (typeof path !== 'string') {
    throw new BackendError('INVALID_PATH', 'invalid resource path: expected <repository>/<type>/<tag>');
  }
  return parseResourcePath(path.split('/'));
}

/**
 * Re-validates a ResourcePath received by a backend: callers may build the object by hand, so every
 * backend checks it again before touching storage.
 */
export function assertValidResourcePath(path: ResourcePath): ResourcePath {
  if (typeof path !== 'object' || path === null) {
    throw new BackendError('INVALID_PATH', 'invalid resource path: expected <repository>/<type>/<tag>');
  }
  return parseResourcePath([path.repo, path.type, path.tag]);
}

export function formatResourcePath(path: ResourcePath): string {
  return `${path.repo}/${path.type}/${path.tag}`;
}
