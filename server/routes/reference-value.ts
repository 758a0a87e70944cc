/**
 * `/kbs/v0/reference-value` (admin), the built-in RVPS (kbs-protocol.md §3.7; upstream
 * `kbs/src/api_server.rs`): `POST` registers the reference values of one RVPS message (200,
 * `application/json`, empty body); `GET /kbs/v0/reference-value/<id...>` returns the value stored
 * under the id (the rest of the path joined with `/`) as JSON. Every failure is 401 `RvpsError`
 * `RVPS configuration failed: …`.
 */
import { RvpsMessageError } from '../../attestation/reference-values/message.js';
import { readRawBody } from '../body.js';
import { KbsError } from '../errors.js';
import type { Services } from '../services.js';
import { adminWho, requireAdmin } from './admin.js';
import type { Step } from './types.js';

const PREFIX = '/kbs/v0/reference-value';

function rvpsError(message: string, cause?: unknown): KbsError {
  return new KbsError('RvpsError', `RVPS configuration failed: ${message}`, cause === undefined ? {} : { cause });
}

function clip(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

export function setReferenceValueRoute(s: Services): Step[] {
  const register: Step = async (ctx) => {
    const body = await readRawBody(ctx, s.payloadLimitBytes);
    let message: string;
    try {
      message = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      throw rvpsError('Failed to parse reference value message');
    }
    let ids: string[];
    try {
      ids = await s.referenceValues.register(message);
    } catch (e) {
      if (e instanceof RvpsMessageError) throw rvpsError(`Failed to register reference value: ${e.message}`, e);
      throw rvpsError('Failed to register reference value: storage error', e);
    }
    s.log.info({ ids: ids.slice(0, 32), count: ids.length, by: adminWho(ctx.state.admin) }, 'reference values registered');
    ctx.status = 200;
    ctx.body = '';
    ctx.type = 'application/json';
  };
  return [requireAdmin(s, 'reference-value'), register];
}

export function getReferenceValueRoute(s: Services): Step[] {
  const query: Step = async (ctx) => {
    const rest = ctx.path.slice(PREFIX.length);
    const id = rest.startsWith('/') ? rest.slice(1) : rest;
    const value = s.referenceValues.get(id);
    if (value === undefined) {
      throw rvpsError(`Failed to get reference_values: No reference value found for the given id: ${clip(id)}`);
    }
    ctx.status = 200;
    ctx.type = 'application/json';
    ctx.body = JSON.stringify(value);
  };
  return [requireAdmin(s, 'reference-value'), query];
}
