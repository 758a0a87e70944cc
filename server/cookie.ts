/** The `kbs-session-id` cookie. */
export const SESSION_COOKIE = 'kbs-session-id';

export function sessionCookie(id: string, expiresAt: number, secure: boolean): string {
  const parts = [`${SESSION_COOKIE}=${id}`, `Expires=${new Date(expiresAt).toUTCString()}`, 'Path=/kbs', 'HttpOnly'];
  if (secure) parts.push('Secure');
  return parts.join('; ');
}

/** The session id from a Cookie header (the first well-formed one), or undefined. */
export function readSessionCookie(header: string | undefined): string | undefined {
  if (!header || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === SESSION_COOKIE) {
      const v = part.slice(eq + 1).trim();
      if (/^[0-9a-f]{32}$/.test(v)) return v;
    }
  }
  return undefined;
}
