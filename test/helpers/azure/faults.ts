/** Fault injection for the stand-in: rules matched against each incoming request, in order added. */
import type { FaultHandle, FaultResponse, FaultRule, RecordedRequest, ServiceName } from './types.js';

/** What the transport does for one request after consulting the rules. */
export interface FaultDecision {
  delayMs: number;
  respond?: FaultResponse;
  drop: boolean;
}

type Hook = (request: Readonly<RecordedRequest>) => FaultResponse | undefined | Promise<FaultResponse | undefined>;

interface LiveRule {
  rule: FaultRule;
  hits: number;
  remaining: number;
}

function matches(rule: FaultRule, r: Readonly<RecordedRequest>): boolean {
  if (rule.service && rule.service !== 'any' && rule.service !== r.service) return false;
  if (rule.vault && rule.vault.toLowerCase() !== r.vault) return false;
  if (rule.method && rule.method.toUpperCase() !== r.method) return false;
  if (typeof rule.path === 'string' && rule.path !== r.path) return false;
  if (rule.path instanceof RegExp && !rule.path.test(r.path)) return false;
  return rule.match ? rule.match(r) : true;
}

/** Test-facing fault controls (`standIn.faults`). */
export class Faults {
  readonly #rules: LiveRule[] = [];
  readonly #hooks: Hook[] = [];

  /** Adds a rule; the first matching rule with uses left decides. */
  add(rule: FaultRule): FaultHandle {
    const times = rule.times ?? 1;
    if (!(times > 0)) throw new Error('fault rule times must be > 0');
    const live: LiveRule = { rule, hits: 0, remaining: times };
    this.#rules.push(live);
    const rules = this.#rules;
    return {
      get hits() { return live.hits; },
      get remaining() { return live.remaining; },
      remove() {
        const i = rules.indexOf(live);
        if (i >= 0) rules.splice(i, 1);
      },
    };
  }

  /** 429 + `Retry-After` for the next `times` matching requests. */
  throttle(times: number, opts: { service?: ServiceName; vault?: string; retryAfterSeconds?: number } = {}): FaultHandle {
    const retryAfter = String(opts.retryAfterSeconds ?? 1);
    const service = opts.service ?? 'vault';
    return this.add({
      service,
      ...(opts.vault ? { vault: opts.vault } : {}),
      times,
      respond: {
        status: 429,
        headers: { 'retry-after': retryAfter },
        code: service === 'vault' ? 'Throttled' : 'temporarily_unavailable',
        message: 'Request was not processed because too many requests were received.',
      },
    });
  }

  /** Answers the next `times` matching requests normally, but `ms` late. */
  delay(ms: number, opts: Omit<FaultRule, 'delayMs' | 'respond' | 'drop'> = {}): FaultHandle {
    return this.add({ ...opts, delayMs: ms });
  }

  /** An error answer in the service's own error shape. */
  error(status: number, code: string, opts: Omit<FaultRule, 'respond' | 'drop'> & { message?: string } = {}): FaultHandle {
    const { message, ...rule } = opts;
    return this.add({ ...rule, respond: { status, code, message: message ?? `Injected fault ${code}.` } });
  }

  /** Closes the connection without an answer (the client sees ECONNRESET / socket hang up). */
  drop(opts: Omit<FaultRule, 'respond' | 'drop'> = {}): FaultHandle {
    return this.add({ ...opts, drop: true });
  }

  /** A per-request hook, consulted after the rules; returning a response answers with it. */
  hook(fn: Hook): () => void {
    this.#hooks.push(fn);
    return () => {
      const i = this.#hooks.indexOf(fn);
      if (i >= 0) this.#hooks.splice(i, 1);
    };
  }

  /** Removes every rule and hook. */
  clear(): void {
    this.#rules.length = 0;
    this.#hooks.length = 0;
  }

  /** @internal Called by the transport for each request. */
  async decide(request: Readonly<RecordedRequest>): Promise<FaultDecision | undefined> {
    for (const live of this.#rules) {
      if (live.remaining <= 0 || !matches(live.rule, request)) continue;
      live.hits++;
      live.remaining--;
      if (live.remaining <= 0) this.#rules.splice(this.#rules.indexOf(live), 1);
      return {
        delayMs: live.rule.delayMs ?? 0,
        ...(live.rule.respond ? { respond: live.rule.respond } : {}),
        drop: live.rule.drop === true,
      };
    }
    for (const hook of [...this.#hooks]) {
      const respond = await hook(request);
      if (respond) return { delayMs: 0, respond, drop: false };
    }
    return undefined;
  }
}
