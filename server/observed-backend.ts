/**
 * Times every storage call (get, put, delete, list, check) into
 * `kbs_backend_operation_duration_seconds{backend, operation, outcome}`. The wrapper is a Proxy so
 * a backend's own extra methods (the PKCS#11 backend's `stats`, `fault`) stay reachable; every
 * method runs bound to the real backend (private fields keep working).
 */
import { BACKEND_ERROR_CODES, BackendError, type StorageBackend } from '../backends/types.js';
import type { Metrics } from './metrics.js';

const TIMED = new Set<PropertyKey>(['get', 'put', 'delete', 'list', 'check']);
const CODES = new Set<string>(BACKEND_ERROR_CODES);

/** `ok`, a BackendError code in lower case, or `error`: a closed set of label values. */
function outcomeOf(e: unknown): string {
  return e instanceof BackendError && CODES.has(e.code) ? e.code.toLowerCase() : 'error';
}

export function observeBackend(backend: StorageBackend, metrics: Metrics): StorageBackend {
  const kind = backend.kind;
  return new Proxy(backend, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (!TIMED.has(prop)) return fn.bind(target);
      const operation = String(prop);
      return async (...args: unknown[]) => {
        const end = metrics.backendDuration.startTimer({ backend: kind, operation });
        try {
          const result = await fn.apply(target, args);
          end({ outcome: 'ok' });
          return result;
        } catch (e) {
          end({ outcome: outcomeOf(e) });
          throw e;
        }
      };
    },
  });
}
