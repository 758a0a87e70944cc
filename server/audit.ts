/**
 * The audit log: one JSON line per security decision (attestation outcome, resource release
 * decision, admin change, admin denial, start and stop), to a file or to standard output.
 *
 * A file is opened append-only (`O_WRONLY | O_APPEND | O_CREAT`, mode 0600) and every record is on
 * disk (fdatasync) before `write` resolves; concurrent records share one write and one sync (group
 * commit). With `required`, a record that cannot be written refuses the operation it describes
 * (`require` throws a 503 ServiceUnavailable), as Vault refuses requests it cannot audit.
 *
 * Records never hold secret values: callers pass resource paths, verdicts, reasons, identities and
 * SHA-256 fingerprints (`fingerprint`) of session ids and tokens, never the ids or tokens.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { AuditConfig } from '../config/index.js';
import { KbsError } from './errors.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export type AuditValue = string | number | boolean | null | undefined | { readonly [k: string]: AuditValue };

export interface AuditRecord {
  /** `kbs.start`, `kbs.stop`, `attestation`, `resource.release`, `admin.change`, `admin.denied`. */
  event: string;
  [field: string]: AuditValue;
}

/** First 16 hex digits of SHA-256: ties records together without revealing the value. */
export function fingerprint(value: string | Uint8Array): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 16);
}

const MAX_TEXT = 1000;

function clipStrings(v: AuditValue): AuditValue {
  if (typeof v === 'string') return v.length > MAX_TEXT ? `${v.slice(0, MAX_TEXT)}…` : v;
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clipStrings(x)]));
}

interface Sink {
  append(data: string): Promise<void>;
  close(): Promise<void>;
}

class FileSink implements Sink {
  private constructor(private readonly fh: FileHandle) {}

  static async open(path: string): Promise<FileSink> {
    return new FileSink(await open(path, 'a', 0o600));
  }

  async append(data: string): Promise<void> {
    let buf = Buffer.from(data, 'utf8');
    while (buf.length > 0) {
      const { bytesWritten } = await this.fh.write(buf, 0, buf.length, null);
      buf = buf.subarray(bytesWritten);
    }
    await this.fh.datasync();
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

class StdoutSink implements Sink {
  append(data: string): Promise<void> {
    return new Promise((resolve, reject) => {
      process.stdout.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  async close(): Promise<void> {}
}

interface Pending {
  line: string;
  done: (ok: boolean) => void;
}

function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : e instanceof Error ? e.name : 'unknown';
}

export class AuditLog {
  private sink: Sink | undefined;
  private queue: Pending[] = [];
  private flushing = false;
  /** A failed write may have left a partial line: the next batch starts on a fresh line. */
  private torn = false;
  private lastOk = true;

  private constructor(
    readonly config: AuditConfig,
    private readonly log: Logger,
    private readonly metrics: Metrics | undefined,
  ) {}

  /** A log that records nothing (`[audit]` absent or disabled). */
  static disabled(log: Logger): AuditLog {
    return new AuditLog({ enabled: false, destination: { kind: 'stdout' }, required: false }, log, undefined);
  }

  /**
   * Opens the destination. With `required`, a destination that cannot be opened stops the start;
   * otherwise the failure is logged and records are dropped (and counted) until `reopen` succeeds.
   */
  static async open(config: AuditConfig, log: Logger, metrics?: Metrics): Promise<AuditLog> {
    const audit = new AuditLog(config, log, metrics);
    if (!config.enabled) return audit;
    try {
      await audit.openSink();
    } catch (e) {
      if (config.required) throw new Error(`[audit] cannot open ${audit.where()} (${errorCode(e)}) and required = true`);
      log.error({ audit: audit.where(), code: errorCode(e) }, 'audit log cannot be opened: records are lost until it can');
    }
    return audit;
  }

  get enabled(): boolean {
    return this.config.enabled;
  }

  get required(): boolean {
    return this.config.enabled && this.config.required;
  }

  /** False when the destination is not open or the last write failed. */
  get healthy(): boolean {
    return !this.config.enabled || (this.sink !== undefined && this.lastOk);
  }

  private where(): string {
    return this.config.destination.kind === 'file' ? this.config.destination.path : 'stdout';
  }

  private async openSink(): Promise<void> {
    const d = this.config.destination;
    this.sink = d.kind === 'file' ? await FileSink.open(d.path) : new StdoutSink();
    this.lastOk = true;
  }

  /** Closes and reopens the destination (log rotation, recovery after a failure). */
  async reopen(): Promise<boolean> {
    if (!this.config.enabled) return true;
    const old = this.sink;
    this.sink = undefined;
    await old?.close().catch(() => undefined);
    try {
      await this.openSink();
      this.torn = false;
      return true;
    } catch (e) {
      this.lastOk = false;
      this.log.error({ audit: this.where(), code: errorCode(e) }, 'audit log cannot be reopened');
      return false;
    }
  }

  /** Appends one record; resolves true once it is durable, false when it was lost. Never throws. */
  write(record: AuditRecord, requestId?: string): Promise<boolean> {
    if (!this.config.enabled) return Promise.resolve(true);
    const { event, ...fields } = record;
    const line = JSON.stringify({
      time: new Date().toISOString(),
      event,
      ...(requestId !== undefined ? { request_id: requestId } : {}),
      ...(clipStrings(fields) as Record<string, AuditValue>),
    });
    return new Promise((resolve) => {
      this.queue.push({ line, done: resolve });
      void this.flush();
    });
  }

  /**
   * Appends one record; when it cannot be written and the log is required, throws a 503
   * ServiceUnavailable so that the operation it describes does not happen.
   */
  async require(record: AuditRecord, requestId?: string): Promise<void> {
    const ok = await this.write(record, requestId);
    if (!ok && this.required) throw new KbsError('ServiceUnavailable', 'Audit log unavailable', { cause: `audit record ${record.event} not written` });
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        const ok = await this.appendBatch(batch.map((p) => p.line));
        this.metrics?.auditRecords.inc({ outcome: ok ? 'ok' : 'error' }, batch.length);
        for (const p of batch) p.done(ok);
      }
    } finally {
      this.flushing = false;
    }
  }

  private async appendBatch(lines: string[]): Promise<boolean> {
    const sink = this.sink;
    if (!sink) {
      this.lastOk = false;
      this.log.error({ audit: this.where(), records: lines.length }, 'audit log not open: records lost');
      return false;
    }
    try {
      await sink.append(`${this.torn ? '\n' : ''}${lines.join('\n')}\n`);
      this.torn = false;
      this.lastOk = true;
      return true;
    } catch (e) {
      this.torn = true;
      this.lastOk = false;
      this.log.error({ audit: this.where(), code: errorCode(e), records: lines.length }, 'audit write failed: records lost');
      return false;
    }
  }

  /** Waits for queued records, then closes the destination. */
  async close(): Promise<void> {
    while (this.flushing || this.queue.length > 0) await new Promise((r) => setImmediate(r));
    const sink = this.sink;
    this.sink = undefined;
    await sink?.close().catch(() => undefined);
  }
}
