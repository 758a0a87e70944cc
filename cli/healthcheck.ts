/**
 * Container health check (Docker HEALTHCHECK; slim images have no curl): GET <url> and exit 0 on
 * 200, 1 otherwise (no answer within 3 s, another status, a connection error). The URL comes from
 * the first argument, else `KBS_HEALTHCHECK_URL`, else https://127.0.0.1:8080/healthz. The probe
 * talks to its own container over loopback, so it does not verify the server certificate (the
 * certificate may name only the public host); it sends nothing secret and reads nothing back.
 * Deliberately tiny: it imports nothing of the server.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pathToFileURL } from 'node:url';

export function probe(url: string, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return resolve(false);
    }
    const send = u.protocol === 'https:' ? httpsRequest : u.protocol === 'http:' ? httpRequest : undefined;
    if (!send) return resolve(false);
    const req = send(u, { method: 'GET', timeout: timeoutMs, rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const url = process.argv[2] ?? process.env['KBS_HEALTHCHECK_URL'] ?? 'https://127.0.0.1:8080/healthz';
  process.exitCode = (await probe(url)) ? 0 : 1;
}
