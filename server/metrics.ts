/**
 * Prometheus metrics (prom-client), one registry per server so several servers in one process (tests)
 * never share counters. Names, help texts and labels follow Trustee's KBS (`kbs/src/prometheus`)
 * wherever the concept exists there; the additions are marked "ours".
 *
 * Label cardinality is bounded: HTTP labels are route patterns (never raw paths), methods and
 * statuses; `tee_type` is the closed TEE list; `resource_path` only takes paths that were validated
 * and exist (released, written or deleted), the first `maxResourcePaths` distinct ones, and `other`
 * after that, so hostile paths cannot grow memory.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { packageRoot } from '../policy/samples.js';

/** Distinct `resource_path` label values kept before new paths are counted as `other`. */
export const DEFAULT_MAX_RESOURCE_PATHS = 1000;
export const OTHER_RESOURCE_PATH = 'other';

/** Trustee's request-duration buckets (seconds). */
const DURATION_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.5, 1.0];
/** Trustee's size buckets: 32 × 4^k bytes, 5 buckets. */
const SIZE_BUCKETS = [32, 128, 512, 2048, 8192];
/** Storage calls span SQLite page reads to HSM round trips. */
const BACKEND_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];

export interface MetricsOptions {
  /** Collect Node's process metrics (CPU, memory, event-loop lag, GC, handles). Default true. */
  processMetrics?: boolean;
  maxResourcePaths?: number;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export class Metrics {
  readonly registry = new Registry();

  // HTTP (Trustee: unlabelled; ours: method, route pattern and status labels)
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route'>;
  readonly httpRequestSize: Histogram;
  readonly httpResponseSize: Histogram;
  readonly httpActive: Gauge;

  // RCAR
  readonly authRequests: Counter;
  readonly authSuccesses: Counter;
  readonly authErrors: Counter;
  readonly attestationRequests: Counter;
  readonly attestationSuccesses: Counter<'tee_type'>;
  readonly attestationFailures: Counter<'tee_type'>;
  readonly attestationErrors: Counter;

  // resource policy
  readonly policyEvaluations: Counter;
  readonly policyApprovals: Counter;
  readonly policyViolations: Counter;
  readonly policyErrors: Counter;

  // resources
  readonly resourceReads: Counter<'resource_path'>;
  readonly resourceWrites: Counter<'resource_path'>;
  readonly resourceDeletes: Counter<'resource_path'>;

  // ours
  readonly sessionsLive: Gauge;
  readonly backendDuration: Histogram<'backend' | 'operation' | 'outcome'>;
  readonly auditRecords: Counter<'outcome'>;
  readonly buildInfo: Gauge<'version' | 'node_version'>;

  private readonly resourcePaths = new Set<string>();
  private readonly maxResourcePaths: number;
  private sessionCount: () => Promise<number> | number = () => 0;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    this.maxResourcePaths = options.maxResourcePaths ?? DEFAULT_MAX_RESOURCE_PATHS;
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Counter<L>({ name, help, labelNames, registers });

    this.httpRequests = counter('kbs_http_requests_total', 'Total HTTP requests count', ['method', 'route', 'status']);
    this.httpDuration = new Histogram({
      name: 'kbs_http_request_duration_seconds',
      help: 'Distribution of request handling duration',
      buckets: DURATION_BUCKETS,
      labelNames: ['method', 'route'],
      registers,
    });
    this.httpRequestSize = new Histogram({ name: 'kbs_http_request_size_bytes', help: 'Distribution of request body sizes', buckets: SIZE_BUCKETS, registers });
    this.httpResponseSize = new Histogram({ name: 'kbs_http_response_size_bytes', help: 'Distribution of response body sizes', buckets: SIZE_BUCKETS, registers });
    this.httpActive = new Gauge({ name: 'kbs_http_active_connections', help: 'Count of HTTP connections being processed at the moment', registers });

    this.authRequests = counter('kbs_auth_requests_total', 'Total count of auth requests');
    this.authSuccesses = counter('kbs_auth_successes_total', 'Total count of successfully authenticated requests');
    this.authErrors = counter('kbs_auth_errors_total', 'Total count of errors during auth processing');
    this.attestationRequests = counter('kbs_attestation_requests_total', 'Total count of attestation requests');
    this.attestationSuccesses = counter('kbs_attestation_successes_total', 'Total count of attestation successes', ['tee_type']);
    this.attestationFailures = counter('kbs_attestation_failures_total', 'Total count of attestation failures', ['tee_type']);
    this.attestationErrors = counter('kbs_attestation_errors_total', 'Total count of errors during attestation processing');

    this.policyEvaluations = counter('kbs_policy_evaluations_total', 'Total count of KBS policy evaluations');
    this.policyApprovals = counter('kbs_policy_approvals_total', 'Total count of requests approved by KBS policy');
    this.policyViolations = counter('kbs_policy_violations_total', 'Total count of requests denied by KBS policy');
    this.policyErrors = counter('kbs_policy_errors_total', 'Total count of errors during KBS evaluation');

    this.resourceReads = counter('kbs_resource_reads_total', 'KBS resource read count', ['resource_path']);
    this.resourceWrites = counter('kbs_resource_writes_total', 'KBS resource write count', ['resource_path']);
    this.resourceDeletes = counter('kbs_resource_deletes_total', 'KBS resource delete count', ['resource_path']);

    const self = this;
    this.sessionsLive = new Gauge({
      name: 'kbs_sessions_live',
      help: 'RCAR sessions currently held (authed or attested, not yet expired or purged)',
      registers,
      async collect() {
        this.set(await self.sessionCount());
      },
    });
    this.backendDuration = new Histogram({
      name: 'kbs_backend_operation_duration_seconds',
      help: 'Latency of resource storage backend operations',
      buckets: BACKEND_BUCKETS,
      labelNames: ['backend', 'operation', 'outcome'],
      registers,
    });
    this.auditRecords = counter('kbs_audit_records_total', 'Audit records written (ok) or lost (error)', ['outcome']);
    this.buildInfo = new Gauge({ name: 'kbs_build_info', help: 'KBS build info', labelNames: ['version', 'node_version'], registers });
    this.buildInfo.set({ version: packageVersion(), node_version: process.version }, 1);

    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Where the live-session gauge reads its value. */
  trackSessions(count: () => Promise<number> | number): void {
    this.sessionCount = count;
  }

  /**
   * The `resource_path` label for a validated path: itself while fewer than the cap have been seen
   * (or when already seen), `other` afterwards.
   */
  resourcePathLabel(path: string): string {
    if (this.resourcePaths.has(path)) return path;
    if (this.resourcePaths.size >= this.maxResourcePaths) return OTHER_RESOURCE_PATH;
    this.resourcePaths.add(path);
    return path;
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  async exposition(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
