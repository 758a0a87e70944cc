/**
 * Path resolution for the configuration: `Resolver` turns configured paths into absolute ones
 * under `work_dir` (`file://` prefix allowed, other URI schemes refused), checks that files the
 * configuration names exist, and collects the warnings of the resolution.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorCode, type Issues, type PathSegment } from './issues.js';

export const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

export class Resolver {
  readonly warnings: string[] = [];

  constructor(
    readonly workDir: string,
    readonly issues: Issues,
  ) {}

  /** A default path (relative to work_dir), never checked: the server creates what is missing. */
  defaultPath(relative: string): string {
    return path.resolve(this.workDir, relative);
  }

  /** A configured path: `file://` prefix allowed, other schemes refused; relative to work_dir. */
  path(at: readonly PathSegment[], value: string): string | undefined {
    let local = value;
    if (value.startsWith('file://')) {
      const rest = value.slice('file://'.length);
      if (rest.startsWith('/')) {
        try {
          local = fileURLToPath(value);
        } catch {
          this.issues.add(at, 'invalid file:// URI');
          return undefined;
        }
      } else {
        local = rest;
      }
      if (local === '') {
        this.issues.add(at, 'must not be empty');
        return undefined;
      }
    } else if (URI_SCHEME.test(value)) {
      this.issues.add(at, 'only local files are supported (a path, optionally with a file:// prefix), not a remote URI');
      return undefined;
    }
    return path.resolve(this.workDir, local);
  }

  /** A configured path that must name an existing regular file. */
  file(at: readonly PathSegment[], value: string): string | undefined {
    const resolved = this.path(at, value);
    if (resolved === undefined) return undefined;
    try {
      const stat = statSync(resolved, { throwIfNoEntry: false });
      if (stat === undefined) {
        this.issues.add(at, `file not found: ${resolved}`);
        return undefined;
      }
      if (!stat.isFile()) {
        this.issues.add(at, `not a regular file: ${resolved}`);
        return undefined;
      }
    } catch (error) {
      this.issues.add(at, `cannot access ${resolved} (${errorCode(error)})`);
      return undefined;
    }
    return resolved;
  }

  files(at: readonly PathSegment[], values: readonly string[]): string[] {
    const out: string[] = [];
    values.forEach((value, index) => {
      const resolved = this.file([...at, index], value);
      if (resolved !== undefined) out.push(resolved);
    });
    return out;
  }
}
