/**
 * The stand-in's HTTP(S) plumbing: listeners on 127.0.0.1, bounded body reading, the request log
 * (secret-free) and fault injection, shared by the Entra, Key Vault and managed-identity services.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Faults } from './faults.js';
import type { FaultResponse, RecordedRequest, ServiceName } from './types.js';

/** Largest request body accepted (Key Vault's own request limit is far above the 25 KB value limit). */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface Exchange {
  method: string;
  url: URL;
  headers: IncomingMessage['headers'];
  body: Buffer;
  record: RecordedRequest;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  /** Objects are sent as JSON. */
  body?: string | object;
  errorCode?: string;
}

export type Handler = (ex: Exchange) => Promise<Reply>;
/** Renders an error in a service's own body shape. */
export type ErrorRenderer = (status: number, code: string, message: string) => Reply;

export interface Listener {
  port: number;
  close(): Promise<void>;
}

export interface TransportContext {
  faults: Faults;
  log: RecordedRequest[];
  nextSeq(): number;
}

const REDACTED_HEADERS: Record<string, (v: string) => string> = {
  authorization: (v) => v.split(' ')[0] ?? '',
  'x-identity-header': () => '<present>',
  secret: () => '<present>',
  cookie: () => '<present>',
};

function recordHeaders(h: IncomingMessage['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    const value = Array.isArray(v) ? v.join(', ') : v;
    out[k] = REDACTED_HEADERS[k]?.(value) ?? value;
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function send(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = { ...(reply.headers ?? {}) };
  let payload = '';
  if (typeof reply.body === 'string') payload = reply.body;
  else if (reply.body !== undefined) {
    payload = JSON.stringify(reply.body);
    headers['content-type'] ??= 'application/json; charset=utf-8';
  }
  headers['content-length'] = String(Buffer.byteLength(payload));
  res.writeHead(reply.status, headers);
  res.end(payload);
}

function faultReply(f: FaultResponse, render: ErrorRenderer): Reply {
  if (f.body !== undefined) return { status: f.status, headers: { ...(f.headers ?? {}) }, body: f.body };
  if (f.code === undefined) return { status: f.status, headers: { ...(f.headers ?? {}) } };
  const r = render(f.status, f.code, f.message ?? f.code);
  return { ...r, headers: { ...(r.headers ?? {}), ...(f.headers ?? {}) } };
}

/**
 * Starts one listener on 127.0.0.1 (HTTPS when `tls` is given). `vault` tags the log records.
 */
export async function listen(opts: {
  service: ServiceName;
  vault?: string;
  tls?: { cert: string; key: string };
  ctx: TransportContext;
  handler: Handler;
  renderError: ErrorRenderer;
  /** Adds service-specific, secret-free detail to the record before faults are matched. */
  annotate?: (record: RecordedRequest, body: Buffer, headers: IncomingMessage['headers']) => void;
}): Promise<Listener> {
  const { ctx, service } = opts;
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const record: RecordedRequest = {
      seq: ctx.nextSeq(),
      service,
      ...(opts.vault ? { vault: opts.vault } : {}),
      method: (req.method ?? 'GET').toUpperCase(),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: recordHeaders(req.headers),
      authorized: typeof req.headers.authorization === 'string',
      bodyLength: 0,
      status: 0,
      durationMs: 0,
    };
    const finish = (reply: Reply | undefined): void => {
      record.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      if (reply) {
        record.status = reply.status;
        if (reply.errorCode) record.errorCode = reply.errorCode;
      }
      ctx.log.push(record);
    };
    void (async () => {
      const body = await readBody(req);
      if (body === undefined) {
        const reply = opts.renderError(413, 'RequestTooLarge', 'The request body is too large.');
        send(res, reply);
        finish(reply);
        return;
      }
      record.bodyLength = body.length;
      opts.annotate?.(record, body, req.headers);
      const decision = await ctx.faults.decide(record);
      if (decision?.delayMs) await sleep(decision.delayMs);
      if (decision?.drop) {
        record.fault = true;
        req.socket.destroy();
        finish(undefined);
        return;
      }
      let reply: Reply;
      if (decision?.respond) {
        record.fault = true;
        reply = faultReply(decision.respond, opts.renderError);
        reply.errorCode ??= decision.respond.code;
      } else {
        try {
          reply = await opts.handler({ method: record.method, url, headers: req.headers, body, record });
        } catch (error) {
          // A stand-in bug must be loud in the test that hit it, not a hang.
          reply = opts.renderError(500, 'StandInError', error instanceof Error ? error.message : String(error));
        }
      }
      send(res, reply);
      finish(reply);
    })().catch(() => {
      req.socket.destroy();
      finish(undefined);
    });
  };
  const server: Server = opts.tls
    ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest)
    : createHttpServer(onRequest);
  // Azure front ends keep idle connections for minutes; Node's 5 s default would race the SDK's
  // keep-alive reuse under load and surface as ECONNRESET in unrelated tests.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Parses an `application/x-www-form-urlencoded` body. */
export function parseForm(body: Buffer): URLSearchParams {
  return new URLSearchParams(body.toString('utf8'));
}
