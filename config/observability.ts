/**
 * Resolution of the observability sections: `[metrics]` (the Prometheus endpoint) and `[audit]`
 * (the audit log). The log level lives in `[logging]`.
 */
import type { Resolver } from './paths.js';
import type { AuditConfig, KbsConfigTomlInput, MetricsConfig } from './schema.js';

/** Default audit file, relative to work_dir. */
export const DEFAULT_AUDIT_PATH = 'audit.log';

/** The values of `[audit] path` that mean standard output. */
const STDOUT_NAMES = new Set(['-', 'stdout']);

export function resolveMetrics(toml: KbsConfigTomlInput): MetricsConfig {
  return { enabled: toml.metrics?.enabled ?? true };
}

/**
 * `[audit]`: absent → disabled; present → enabled unless `enabled = false`. `required = true`
 * without an enabled log is a contradiction and an error.
 */
export function resolveAudit(r: Resolver, toml: KbsConfigTomlInput): AuditConfig {
  const a = toml.audit;
  const enabled = a === undefined ? false : (a.enabled ?? true);
  const required = a?.required ?? false;
  if (required && !enabled) r.issues.add(['audit', 'required'], 'required = true needs the audit log enabled (enabled = true)');
  let destination: AuditConfig['destination'];
  if (a?.path !== undefined && STDOUT_NAMES.has(a.path)) {
    destination = { kind: 'stdout' };
  } else {
    const path = a?.path === undefined ? r.defaultPath(DEFAULT_AUDIT_PATH) : r.path(['audit', 'path'], a.path);
    destination = { kind: 'file', path: path ?? '' };
  }
  return { enabled, destination, required };
}
