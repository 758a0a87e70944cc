/**
 * The one place where errors become HTTP responses (Koa's central error handler): a KbsError maps
 * to its status and problem body; anything else is an internal error whose cause is logged and
 * never sent.
 */
import type { Context, Next } from 'koa';
import type { Logger } from './log.js';
import { ERROR_TYPE_PREFIX, isKbsError } from './errors.js';

export interface ProblemBody {
  type: string;
  detail: string;
}

export function problem(code: string, detail: string): ProblemBody {
  return { type: ERROR_TYPE_PREFIX + code, detail };
}

export function errorHandler(serverLog: Logger) {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    // the request's logger (bound to its request id) when server/request-observer.ts set one
    const log = (ctx.state as { log?: Logger }).log ?? serverLog;
    try {
      await next();
    } catch (e) {
      if (isKbsError(e)) {
        ctx.status = e.status;
        for (const [k, v] of Object.entries(e.headers)) ctx.set(k, v);
        ctx.body = problem(e.code, e.detail);
        const cause = e.cause instanceof Error ? e.cause.message : e.cause === undefined ? undefined : String(e.cause);
        log.info({ method: ctx.method, path: ctx.path, status: e.status, error: e.code, cause }, 'request failed');
      } else if (ctx.req.destroyed && !ctx.req.complete) {
        // The client closed the connection in the middle of its request (the body read fails with
        // "aborted"): nobody is left to answer and nothing is wrong with the server. Not an internal
        // error; what is set here is never sent.
        ctx.status = 400;
        ctx.body = problem('BadRequest', 'Request aborted by the client');
        log.info({ method: ctx.method, path: ctx.path, cause: e instanceof Error ? e.message : String(e) }, 'request aborted by the client');
      } else {
        ctx.status = 500;
        ctx.body = problem('InternalError', 'Internal server error');
        log.error({ method: ctx.method, path: ctx.path, err: e instanceof Error ? { name: e.name, message: e.message, stack: e.stack } : String(e) }, 'internal error');
      }
      ctx.type = 'application/json';
    }
  };
}
