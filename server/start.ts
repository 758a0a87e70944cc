/**
 * Start-up: from the resolved configuration to listening sockets. Builds the services once
 * (keys, policy store, storage backend, attestation service, admin authorizer, sessions), logs a
 * loud warning for every insecure mode on every start, and returns a handle that closes it all.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, mkdir } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { JSONWebKeySet } from 'jose';
import { AttestationPolicyStore } from '../attestation/appraisal-policy-store.js';
import { AttestationService, defaultVerifiers, hardwareVerifiers } from '../attestation/index.js';
import { ReferenceValueStore } from '../attestation/reference-values/store.js';
import { openBackend, type BackendConfig } from '../backends/index.js';
import type { StorageBackend } from '../backends/types.js';
import { readSecret, type AdminConfig, type KbsConfig, type ResourceStorageConfig } from '../config/index.js';
import { ResourcePolicyStore } from '../policy/index.js';
import { AdminAuthorizer, publicKeysFromPem, type AdminAuthConfig } from './admin-auth.js';
import { createApp } from './app.js';
import { AuditLog } from './audit.js';
import { CryptoPool } from './crypto-pool.js';
import { Metrics } from './metrics.js';
import { observeBackend } from './observed-backend.js';
import { requestIdFor } from './request-observer.js';
import { azureKeyVaultBackendConfig, buildAadTokenBroker } from './azure.js';
import { problem } from './error-handler.js';
import { ensureAdminCredentials, loadTokenKey } from './keys.js';
import { createLogger, type Logger } from './log.js';
import type { Services } from './services.js';
import { RateLimiter } from './rate-limit.js';
import { MemorySessionStore } from './sessions.js';
import { loadTlsMaterial, profileOptions, type TlsMaterial } from './tls.js';
import { TokenSigner, TokenVerifier } from './tokens.js';

export interface RunningKbs {
  /** Base URLs of the listeners (e.g. http://127.0.0.1:8080). */
  urls: string[];
  services: Services;
  /**
   * Re-reads the TLS key and certificate (SIGHUP) and serves them to new connections; open
   * connections keep theirs. A bad pair is logged and the current one stays. False when nothing
   * was reloaded (plain HTTP, or the new files are unusable).
   */
  reloadTls(): Promise<boolean>;
  close(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  now?: () => Date;
  /**
   * How long close() lets in-flight requests finish before it drops their connections (default:
   * `[http_server] shutdown_grace_seconds`). Without a bound, one stuck or slow client would hold a
   * shutdown (SIGTERM) open.
   */
  shutdownGraceMs?: number;
}

function certificatesFromPem(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((b) => new X509Certificate(b));
}

async function adminAuthConfig(admin: AdminConfig): Promise<AdminAuthConfig> {
  switch (admin.mode) {
    case 'InsecureAllowAll':
    case 'DenyAll':
      return { mode: admin.mode };
    case 'Ed25519Key': {
      const [publicKey] = publicKeysFromPem(await readFile(admin.publicKeyPath, 'utf8'));
      if (!publicKey || publicKey.asymmetricKeyType !== 'ed25519') {
        throw new Error(`admin.auth_public_key ${admin.publicKeyPath} is not an Ed25519 public key`);
      }
      return { mode: 'Ed25519Key', publicKey };
    }
    case 'AuthenticatedAuthorization': {
      const providers = [];
      for (const p of admin.identityProviders) {
        const text = await readFile(p.key.path, 'utf8');
        const base = { ...(p.issuer !== null ? { issuer: p.issuer } : {}), ...(p.audience !== null ? { audience: p.audience } : {}) };
        if (p.key.kind === 'PublicKeyPem') {
          const publicKeys = publicKeysFromPem(text);
          if (publicKeys.length === 0) throw new Error(`identity provider key file ${p.key.path} holds no PEM public key`);
          providers.push({ ...base, publicKeys });
        } else {
          providers.push({ ...base, publicKeys: [], jwks: JSON.parse(text) as JSONWebKeySet });
        }
      }
      return { mode: 'AuthenticatedAuthorization', providers, acls: admin.acls.map((a) => ({ ...a })) };
    }
  }
}

/**
 * Requests Node's HTTP parser refuses before Koa sees them (a NUL in the request line, headers over
 * the limit): answer with a problem body like every other error, then close.
 */
function answerClientError(err: Error & { code?: string }, socket: import('node:stream').Duplex): void {
  if (!socket.writable) return;
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'; // request_timeout_seconds / headers_timeout_seconds
  const [status, code, detail] = tooLarge
    ? ['431 Request Header Fields Too Large', 'RequestHeaderTooLarge', 'Request headers too large']
    : timedOut
      ? ['408 Request Timeout', 'RequestTimeout', 'The request was not received in time']
      : ['400 Bad Request', 'BadRequest', 'Malformed HTTP request'];
  const body = JSON.stringify(problem(code, detail));
  socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestIdFor(undefined)}\r\nConnection: close\r\n\r\n${body}`);
}

/**
 * Requests Node would answer itself with an empty body: an HTTP/1.1 request without Host (RFC 9112
 * §3.2: 400, then close) and an `Expect` other than 100-continue (417). Same statuses, problem body.
 */
function answerProblem(res: ServerResponse, status: number, code: string, detail: string, close: boolean): void {
  const body = JSON.stringify(problem(code, detail));
  const requestId = requestIdFor(typeof res.req.headers['x-request-id'] === 'string' ? res.req.headers['x-request-id'] : undefined);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Request-Id': requestId, ...(close ? { Connection: 'close' } : {}) });
  res.end(body);
}

/** The storage section of the configuration → the backend's options (secrets read now). */
async function backendConfig(storage: ResourceStorageConfig, log: Logger): Promise<BackendConfig> {
  switch (storage.type) {
    case 'LocalFs':
      return { type: 'LocalFs', dirPath: storage.dirPath };
    case 'Sqlite':
      return { type: 'Sqlite', dbPath: storage.dbPath };
    case 'Pkcs11':
      return {
        type: 'Pkcs11',
        module: storage.module,
        ...(storage.slotIndex !== null ? { slotIndex: storage.slotIndex } : {}),
        ...(storage.tokenLabel !== null ? { tokenLabel: storage.tokenLabel } : {}),
        pin: await readSecret(storage.pin, 'PKCS#11 PIN'),
        logger: { info: (m) => log.info({ backend: 'Pkcs11' }, m), warn: (m) => log.warn({ backend: 'Pkcs11' }, m) },
      };
    case 'AzureKeyVault':
      return azureKeyVaultBackendConfig(storage, log);
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Builds every service from the configuration (no sockets). */
export async function buildServices(config: KbsConfig, options: StartOptions = {}): Promise<Services> {
  const log = options.log ?? createLogger({ level: config.logging.level === 'off' ? 'silent' : config.logging.level });
  await mkdir(config.workDir, { recursive: true, mode: 0o700 });
  for (const w of config.warnings) log.warn(w);
  const metrics = new Metrics({ processMetrics: config.metrics.enabled });
  const audit = await AuditLog.open(config.audit, log, metrics);
  await audit.require({ event: 'kbs.start', pid: process.pid, config: config.source, admin_mode: config.admin.mode }).catch(async (e: unknown) => {
    await audit.close();
    throw new Error('[audit] required = true and the start record cannot be written', { cause: e });
  });

  // admin
  if (config.admin.mode === 'AuthenticatedAuthorization' && config.admin.generatedCredentials) {
    const { generated } = await ensureAdminCredentials(config.admin.generatedCredentials, options.now?.());
    for (const f of generated) log.info({ file: f }, 'generated admin credential');
    log.info({ adminTokenFile: config.admin.generatedCredentials.tokenPath }, 'admin token file (use with --admin-token-file)');
  }
  const admin = new AdminAuthorizer(await adminAuthConfig(config.admin));
  if (admin.insecure) {
    log.warn('INSECURE: [admin] authorization_mode = "InsecureAllowAll": anyone who can reach this server can write secrets and policies');
  }

  // tokens
  const signerCfg = config.attestationService.tokenBroker.signer;
  const { key, generated } = await loadTokenKey(signerCfg.keyPath, signerCfg.generateIfMissing);
  if (generated) log.info({ file: signerCfg.keyPath }, 'generated attestation token signing key');
  const chain = signerCfg.certPath ? certificatesFromPem(await readFile(signerCfg.certPath, 'utf8')) : [];
  const signer = await TokenSigner.create(key, chain);
  const trustedCerts: X509Certificate[] = [];
  for (const p of config.attestationToken.trustedCertsPaths) trustedCerts.push(...certificatesFromPem(await readFile(p, 'utf8')));
  const trustedJwks: JSONWebKeySet[] = [];
  for (const p of config.attestationToken.trustedJwkSetPaths) trustedJwks.push(JSON.parse(await readFile(p, 'utf8')) as JSONWebKeySet);
  if (config.attestationToken.insecureHeaderJwk) {
    log.warn('INSECURE: [attestation_token] insecure_header_jwk = true: any self-signed token is accepted');
  }
  const verifier = new TokenVerifier({
    ...(config.attestationToken.trustOwnTokens ? { ownKey: signer.publicKey } : {}),
    trustedCerts,
    trustedJwks,
    insecureHeaderJwk: config.attestationToken.insecureHeaderJwk,
    ...(options.now ? { now: options.now } : {}),
  });

  // policy, storage, attestation
  const policies = await ResourcePolicyStore.open(config.policy.resourcePolicyPath);
  const resource = config.plugins.find((p) => p.name === 'resource');
  if (!resource) throw new Error('no [[plugins]] entry with name = "resource"');
  const aadTokenPlugin = config.plugins.find((p) => p.name === 'aad-token');
  const aadTokens = aadTokenPlugin === undefined ? undefined : await buildAadTokenBroker(aadTokenPlugin, log);
  const backend: StorageBackend = observeBackend(await openBackend(await backendConfig(resource.storage, log)), metrics);
  const attestationPolicies = await AttestationPolicyStore.open(config.attestationService.policyDir);
  const referenceValues = await ReferenceValueStore.open(config.attestationService.referenceValueDir, {
    ...(options.now ? { now: options.now } : {}),
    onExpired: (id, expiration) => log.warn({ id, expiration }, 'reference value expired: appraisals see none until it is registered again'),
  });
  log.info({ policies: attestationPolicies.ids(), referenceValues: referenceValues.size }, 'attestation policies and reference values loaded');
  const attestation = new AttestationService({
    verifiers: hardwareVerifiers(config.attestationService.verifiers, defaultVerifiers()),
    appraisalPolicyFor: (teeClass) => attestationPolicies.forClass(teeClass),
    referenceValue: (id) => referenceValues.query(id),
    tokenLifetimeSeconds: config.attestationService.tokenBroker.durationMinutes * 60,
    ...(options.now ? { now: options.now } : {}),
  });
  const sessions = new MemorySessionStore({
    ttlMs: config.attestationService.sessionTimeoutMinutes * 60_000,
    maxSessions: config.attestationService.maxSessions,
    ...(options.now ? { now: () => (options.now as () => Date)().getTime() } : {}),
  });
  metrics.trackSessions(() => sessions.size());
  return {
    log,
    sessions,
    attestation,
    signer,
    verifier,
    policies,
    attestationPolicies,
    referenceValues,
    backend,
    ...(aadTokens !== undefined ? { aadTokens } : {}),
    admin,
    payloadLimitBytes: config.httpServer.payloadRequestSizeBytes,
    policyStepBudget: config.policy.stepBudget,
    extraTeeKeyPaths: config.attestationToken.extraTeeKeyPaths,
    secureCookies: !config.httpServer.insecureHttp,
    metrics,
    metricsEnabled: config.metrics.enabled,
    audit,
    lifecycle: { draining: false },
    ...(config.rateLimit.enabled ? { rateLimiter: new RateLimiter(config.rateLimit) } : {}),
    ...(config.httpServer.cryptoThreads > 0 ? { cryptoPool: new CryptoPool(config.httpServer.cryptoThreads, log) } : {}),
  };
}

/** Starts the KBS on every configured socket. */
export async function startKbs(config: KbsConfig, options: StartOptions = {}): Promise<RunningKbs> {
  const services = await buildServices(config, options);
  const { log } = services;
  const app = createApp(services);
  const koa = app.callback();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && req.headers.host === undefined) {
      return answerProblem(res, 400, 'BadRequest', 'Missing Host header', true);
    }
    void koa(req, res);
  };
  const hs = config.httpServer;
  const tlsFiles = hs.insecureHttp ? null : hs.tls;
  let tls: TlsMaterial | undefined;
  try {
    if (tlsFiles) tls = await loadTlsMaterial(tlsFiles, hs.tlsProfile, options.now?.());
  } catch (e) {
    await closeServices(services);
    throw e;
  }
  if (tls) logCertificate(log, tls, 'TLS certificate loaded');
  const servers: HttpServer[] = [];
  const urls: string[] = [];
  try {
    for (const socket of config.httpServer.sockets) {
      // the Host check is the handler's (a problem body); timeouts are checked every second
      const common = { requireHostHeader: false, connectionsCheckingInterval: 1000 };
      const server = tls
        ? createHttpsServer({ ...profileOptions(hs.tlsProfile), key: tls.key, cert: tls.cert, ...common }, handler)
        : createHttpServer(common, handler);
      server.requestTimeout = hs.requestTimeoutMs;
      server.headersTimeout = hs.headersTimeoutMs;
      server.keepAliveTimeout = hs.keepAliveTimeoutMs;
      server.on('clientError', answerClientError);
      server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => answerProblem(res, 417, 'ExpectationFailed', 'Only Expect: 100-continue is supported', false));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socket.port, socket.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      servers.push(server);
      const addr = server.address() as AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      urls.push(`${tls ? 'https' : 'http'}://${host}:${addr.port}`);
      if (!tls && !isLoopback(socket.host)) {
        log.warn({ socket: socket.text }, 'INSECURE: plain HTTP on a non-loopback address: tokens and admin credentials travel in clear text');
      }
    }
  } catch (e) {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    await closeServices(services);
    throw e;
  }
  log.info({ urls, config: config.source }, 'kbs listening');
  return {
    urls,
    services,
    async reloadTls() {
      if (!tlsFiles) {
        log.info('TLS reload requested, but this server speaks plain HTTP');
        return false;
      }
      let next: TlsMaterial;
      try {
        next = await loadTlsMaterial(tlsFiles, hs.tlsProfile, options.now?.());
      } catch (e) {
        log.error({ err: e instanceof Error ? e.message : String(e) }, 'TLS reload failed: keeping the current certificate and key');
        return false;
      }
      for (const s of servers) (s as unknown as HttpsServer).setSecureContext({ ...profileOptions(hs.tlsProfile), key: next.key, cert: next.cert });
      logCertificate(log, next, 'TLS certificate reloaded');
      return true;
    },
    async close() {
      services.lifecycle.draining = true; // /readyz answers 503 from now on
      const grace = options.shutdownGraceMs ?? hs.shutdownGraceMs;
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              const force = setTimeout(() => {
                log.warn({ graceMs: grace }, 'shutdown: dropping connections still open after the grace period');
                s.closeAllConnections();
              }, grace); // not unref'd: a paused socket does not keep the event loop alive, this timer must
              s.close(() => {
                clearTimeout(force);
                resolve();
              });
              s.closeIdleConnections();
            }),
        ),
      );
      await closeServices(services);
    },
  };
}

function logCertificate(log: Logger, tls: TlsMaterial, message: string): void {
  const { leaf } = tls;
  const fields = { subject: leaf.subject, subjectAltName: leaf.subjectAltName, validTo: leaf.validTo, sha256: leaf.fingerprint256 };
  if (leaf.expired) log.warn(fields, `${message}: the certificate has EXPIRED; clients will refuse it`);
  else log.info(fields, message);
}

async function closeServices(s: Services): Promise<void> {
  await s.sessions.close();
  s.aadTokens?.close();
  await s.backend.close();
  await s.cryptoPool?.close();
  await s.audit.write({ event: 'kbs.stop', pid: process.pid });
  await s.audit.close();
}
