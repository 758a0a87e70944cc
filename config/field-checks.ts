/**
 * Field checks shared by the TOML schemas: bounded TOML integers, non-empty strings, socket
 * address parsing (`host:port`) and admin ACL regex checks (anchoring, RE2 syntax).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { RE2JS } from 're2js';
import { z } from 'zod';
import type { SocketAddress } from './types.js';

/** A TOML integer (parsed as bigint) within [min, max], as a number. */
export function tomlInteger(min: number, max: number, what = 'integer') {
  const problem =
    max < Number.MAX_SAFE_INTEGER
      ? `must be a ${what} between ${min} and ${max}`
      : min === 1
        ? `must be a ${what}`
        : `must be a ${what} >= ${min}`;
  return z
    .bigint()
    .min(BigInt(min), { error: problem })
    .max(BigInt(max), { error: problem })
    .transform((v) => Number(v));
}

export const nonEmptyString = z.string().min(1, { error: 'must not be empty' });

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Parses `host:port` (IPv4, `[IPv6]`, or a DNS name); returns a problem text when invalid. */
export function parseSocketAddress(text: string): SocketAddress | string {
  const expected = 'expected "host:port" (IPv4, [IPv6] in brackets, or a host name; port 0-65535)';
  let host: string;
  let portText: string;
  let family: SocketAddress['family'];
  if (text.startsWith('[')) {
    const m = /^\[([^\]]+)\]:([0-9]+)$/.exec(text);
    if (m === null || !isIPv6(m[1] as string)) return `invalid socket address, ${expected}`;
    host = m[1] as string;
    portText = m[2] as string;
    family = 'ipv6';
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return `invalid socket address (no port), ${expected}`;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return `invalid socket address (IPv6 addresses must be in brackets), ${expected}`;
    if (isIPv4(host)) family = 'ipv4';
    else if (HOSTNAME.test(host) && !/^[0-9.]+$/.test(host)) family = 'hostname';
    else return `invalid socket address, ${expected}`;
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) return `invalid port, ${expected}`;
  const port = Number(portText);
  return { host, port, family, text: family === 'ipv6' ? `[${host}]:${port}` : `${host}:${port}` };
}

export const socketAddress = z.string().transform((text, ctx): SocketAddress => {
  const parsed = parseSocketAddress(text);
  if (typeof parsed === 'string') {
    ctx.issues.push({ code: 'custom', message: parsed, input: text });
    return z.NEVER;
  }
  return parsed;
});

/** Problem text when an ACL regex is not anchored `^/kbs…$` or is not valid RE2; else null. */
export function aclRegexProblem(regex: string, role: string): string | null {
  const who = `acl for role ${JSON.stringify(role)}`;
  if (!regex.startsWith('^/kbs') || !regex.endsWith('$')) {
    return `regex must start with "^/kbs" and end with "$" (${who})`;
  }
  try {
    RE2JS.compile(regex);
  } catch {
    return `invalid RE2 regular expression (${who})`;
  }
  return null;
}
