/**
 * Load-benchmark baseline (b): a bare `node:http` server doing only the irreducible work of a
 * resource GET: the ECDH-ES+A256KW / A256GCM JWE of the resource for a fixed P-256 TEE key
 * (server/jwe.ts `encryptForTeeKey`) serialized as the JSON response. No routing, session, token,
 * policy or storage work.
 *
 * argv[2]: the TEE public key (JWK JSON); argv[3]: the resource (base64). Started as a child process
 * by bench/server.ts; prints `{"port": N}` on stdout once listening on 127.0.0.1.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { encryptForTeeKey } from '../server/jwe.js';
import { parseTeePubKey } from '../server/tee-pubkey.js';

const key = parseTeePubKey(JSON.parse(process.argv[2] ?? 'null'));
const resource = Buffer.from(process.argv[3] ?? '', 'base64');

const server = createServer((_req, res) => {
  const body = JSON.stringify(encryptForTeeKey(key, resource));
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
});
process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
