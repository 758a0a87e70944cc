/** Reads a request body as raw bytes, refusing more than the configured limit (413). */
import type { Context } from 'koa';
import { KbsError } from './errors.js';

export async function readRawBody(ctx: Context, limitBytes: number): Promise<Buffer> {
  const declared = ctx.request.length;
  if (declared !== undefined && declared > limitBytes) throw tooLarge(limitBytes);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.req) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buf.length;
    if (total > limitBytes) {
      ctx.req.unpipe();
      ctx.req.resume();
      throw tooLarge(limitBytes);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}

/**
 * The rest of the body is never read, so the connection cannot carry another request: say so
 * (`Connection: close`, Node then closes it after the reply) instead of advertising keep-alive on a
 * connection whose parser is stuck in the middle of the oversized body.
 */
function tooLarge(limit: number): KbsError {
  return new KbsError('PayloadTooLarge', `Request body is larger than ${limit} bytes`, { headers: { Connection: 'close' } });
}

/** Parses a JSON body; undefined when it is not JSON (callers map that to their own error). */
export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) as unknown;
  } catch {
    return undefined;
  }
}
