/**
 * Start-up: from the resolved configuration to listening sockets. Builds the services once
 * (keys, policy store, storage backend, attestation service, admin authorizer, sessions), logs a
 * loud warning for every insecure mode on every start, and returns a handle that closes it all.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, mkdir } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { JSONWebKeySet } from 'jose';
import { AttestationService, defaultVerifiers } from '../attestation/index.js';
import { openBackend, type BackendConfig } from '../backends/index.js';
import type { StorageBackend } from '../backends/types.js';
import { readSecret, type AdminConfig, type KbsConfig, type ResourceStorageConfig } from '../config/index.js';
import { APPRAISAL_HOST_FUNCTIONS, compile, ResourcePolicyStore, samplePolicyText } from '../policy/index.js';
import { AdminAuthorizer, publicKeysFromPem, type AdminAuthConfig } from './admin-auth.js';
import { createApp } from './app.js';
import { azureKeyVaultBackendConfig, buildAadTokenBroker } from './azure.js';
import { problem } from './error-handler.js';
import { ensureAdminCredentials, loadTokenKey } from './keys.js';
import { createLogger, type Logger } from './log.js';
import type { Services } from './services.js';
import { MemorySessionStore } from './sessions.js';
import { TokenSigner, TokenVerifier } from './tokens.js';

export interface RunningKbs {
  /** Base URLs of the listeners (e.g. http://127.0.0.1:8080). */
  urls: string[];
  services: Services;
  close(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  now?: () => Date;
  /**
   * How long close() lets in-flight requests finish before it drops their connections (default
   * 5000 ms). Without a bound, one stuck or slow client would hold a shutdown (SIGTERM) open.
   */
  shutdownGraceMs?: number;
}

const DEFAULT_SHUTDOWN_GRACE_MS = 5000;

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
  const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
  const body = JSON.stringify(problem(tooLarge ? 'RequestHeaderTooLarge' : 'BadRequest', tooLarge ? 'Request headers too large' : 'Malformed HTTP request'));
  socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/**
 * Requests Node would answer itself with an empty body: an HTTP/1.1 request without Host (RFC 9112
 * §3.2: 400, then close) and an `Expect` other than 100-continue (417). Same statuses, problem body.
 */
function answerProblem(res: ServerResponse, status: number, code: string, detail: string, close: boolean): void {
  const body = JSON.stringify(problem(code, detail));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...(close ? { Connection: 'close' } : {}) });
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
  const backend: StorageBackend = await openBackend(await backendConfig(resource.storage, log));
  const attestation = new AttestationService({
    verifiers: defaultVerifiers(),
    appraisalPolicy: compile(samplePolicyText('ear_default_policy_cpu'), { hostFunctions: APPRAISAL_HOST_FUNCTIONS }),
    referenceValue: () => null,
    tokenLifetimeSeconds: config.attestationService.tokenBroker.durationMinutes * 60,
    ...(options.now ? { now: options.now } : {}),
  });
  const sessions = new MemorySessionStore({
    ttlMs: config.attestationService.sessionTimeoutMinutes * 60_000,
    maxSessions: config.attestationService.maxSessions,
    ...(options.now ? { now: () => (options.now as () => Date)().getTime() } : {}),
  });
  return {
    log,
    sessions,
    attestation,
    signer,
    verifier,
    policies,
    backend,
    ...(aadTokens !== undefined ? { aadTokens } : {}),
    admin,
    payloadLimitBytes: config.httpServer.payloadRequestSizeBytes,
    policyStepBudget: config.policy.stepBudget,
    extraTeeKeyPaths: config.attestationToken.extraTeeKeyPaths,
    secureCookies: !config.httpServer.insecureHttp,
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
  let tls: { key: string; cert: string } | undefined;
  if (!config.httpServer.insecureHttp && config.httpServer.tls) {
    const key = await readFile(config.httpServer.tls.privateKeyPath, 'utf8');
    createPrivateKey(key); // a clear error now rather than a TLS failure later
    tls = { key, cert: await readFile(config.httpServer.tls.certificatePath, 'utf8') };
  }
  const servers: HttpServer[] = [];
  const urls: string[] = [];
  try {
    for (const socket of config.httpServer.sockets) {
      const server = tls
        ? createHttpsServer({ key: tls.key, cert: tls.cert, minVersion: 'TLSv1.2', requireHostHeader: false }, handler)
        : createHttpServer({ requireHostHeader: false }, handler); // the Host check is the handler's (a problem body)
      server.requestTimeout = 60_000;
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
    async close() {
      const grace = options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
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

async function closeServices(s: Services): Promise<void> {
  await s.sessions.close();
  s.aadTokens?.close();
  await s.backend.close();
}
