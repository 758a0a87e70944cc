/**
 * Entra ID credentials for the Key Vault backend and the aad-token plugin, built with
 * `@azure/identity`. Every mode gets the same transport settings: authority host, instance
 * discovery (off for non-Microsoft authority hosts: MSAL's discovery URL is hard-coded to
 * login.microsoftonline.com), bounded retries, an optional extra CA.
 *
 * `client_certificate` with SCONE's `private_key` + `certificate_thumbprint` (no certificate) signs
 * the client assertion itself: the SDK derives the thumbprint from a certificate it is given, and
 * SCONE's configuration has none. SHA-1 thumbprints (40 hex, what the Entra portal shows) go in
 * `x5t` with RS256; SHA-256 thumbprints (64 hex) in `x5t#S256` with PS256.
 *
 * Secrets (client secrets, private keys) arrive already read and are never put in messages.
 */
import { createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import {
  ClientAssertionCredential,
  ClientCertificateCredential,
  ClientSecretCredential,
  DefaultAzureCredential,
  ManagedIdentityCredential,
  WorkloadIdentityCredential,
  type TokenCredential,
} from '@azure/identity';
import { SignJWT } from 'jose';

export const DEFAULT_AUTHORITY_HOST = 'https://login.microsoftonline.com';

/** Microsoft's public and sovereign cloud authority hosts: instance discovery works against them. */
const MICROSOFT_AUTHORITY_HOSTS = new Set([
  'login.microsoftonline.com',
  'login.microsoftonline.us',
  'login.chinacloudapi.cn',
  'login.partner.microsoftonline.cn',
]);

export const CREDENTIAL_KINDS = ['workload_identity', 'managed_identity', 'client_secret', 'client_certificate', 'default'] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

/** A credential as configured, secrets already read. */
export type AzureCredentialConfig =
  | {
      /** AKS workload identity; unset fields come from AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_FEDERATED_TOKEN_FILE. */
      readonly kind: 'workload_identity';
      readonly tenantId?: string;
      readonly clientId?: string;
      readonly tokenFilePath?: string;
    }
  | {
      /** IMDS / App Service / token exchange; `clientId` selects a user-assigned identity. */
      readonly kind: 'managed_identity';
      readonly clientId?: string;
    }
  | { readonly kind: 'client_secret'; readonly tenantId: string; readonly clientId: string; readonly clientSecret: string }
  | {
      readonly kind: 'client_certificate';
      readonly tenantId: string;
      readonly clientId: string;
      /** PEM holding the CERTIFICATE and its private key. */
      readonly certificatePem: string;
      /** Send the chain (x5c) for subject-name/issuer authentication. */
      readonly sendCertificateChain?: boolean;
    }
  | {
      /** SCONE's form: PKCS#8 RSA key + the registered certificate's thumbprint, no certificate. */
      readonly kind: 'client_key_thumbprint';
      readonly tenantId: string;
      readonly clientId: string;
      readonly privateKeyPem: string;
      /** SHA-1 (40 hex) or SHA-256 (64 hex); colons and spaces allowed. */
      readonly certificateThumbprint: string;
    }
  | { readonly kind: 'default'; readonly tenantId?: string; readonly clientId?: string };

export interface IdentityTransportOptions {
  /** Entra authority host (https URL); default AZURE_AUTHORITY_HOST, else login.microsoftonline.com. */
  authorityHost?: string;
  /** Default: true for hosts that are not Microsoft's (MSAL would ask login.microsoftonline.com). */
  disableInstanceDiscovery?: boolean;
  /** Extra trusted CA certificates (PEM) for Entra / IMDS / Key Vault. */
  caPem?: string;
  maxRetries?: number;
  retryDelayInMs?: number;
  maxRetryDelayInMs?: number;
  /** Tenants besides the configured one that a Key Vault challenge may ask for ("*" = any). */
  additionallyAllowedTenants?: string[];
  env?: NodeJS.ProcessEnv;
}

export class CredentialConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialConfigError';
  }
}

export function authorityHostOf(options: IdentityTransportOptions): string {
  const env = options.env ?? process.env;
  const host = (options.authorityHost ?? env['AZURE_AUTHORITY_HOST'] ?? DEFAULT_AUTHORITY_HOST).replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(host);
  } catch {
    throw new CredentialConfigError(`authority host ${JSON.stringify(host)} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new CredentialConfigError(`authority host ${host} must be an https:// URL`);
  return host;
}

/** Transport options shared by credentials and SecretClients (core-rest-pipeline PipelineOptions). */
export function pipelineOptions(options: IdentityTransportOptions): {
  retryOptions: { maxRetries: number; retryDelayInMs: number; maxRetryDelayInMs: number };
  tlsOptions?: { ca: string };
} {
  return {
    retryOptions: {
      maxRetries: options.maxRetries ?? 2,
      retryDelayInMs: options.retryDelayInMs ?? 200,
      maxRetryDelayInMs: options.maxRetryDelayInMs ?? 2_000,
    },
    ...(options.caPem !== undefined ? { tlsOptions: { ca: options.caPem } } : {}),
  };
}

function normalizeThumbprint(text: string): { header: 'x5t' | 'x5t#S256'; value: string } {
  const hex = text.replace(/[\s:]/g, '');
  if (!/^[0-9a-fA-F]+$/.test(hex) || (hex.length !== 40 && hex.length !== 64)) {
    throw new CredentialConfigError('certificate_thumbprint must be a SHA-1 (40 hex digits) or SHA-256 (64 hex digits) thumbprint');
  }
  return { header: hex.length === 40 ? 'x5t' : 'x5t#S256', value: Buffer.from(hex, 'hex').toString('base64url') };
}

function rsaPrivateKey(pem: string, what: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new CredentialConfigError(`${what} is not a PEM private key (PKCS#8 or PKCS#1)`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new CredentialConfigError(`${what} must be an RSA key (Entra ID certificate credentials are RSA), got ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  return key;
}

/** A function producing a fresh signed client assertion (10 minutes) for the token endpoint. */
export function thumbprintAssertion(
  tenantId: string,
  clientId: string,
  privateKeyPem: string,
  thumbprint: string,
  authorityHost: string,
): () => Promise<string> {
  const key = rsaPrivateKey(privateKeyPem, 'private_key');
  const tp = normalizeThumbprint(thumbprint);
  const alg = tp.header === 'x5t' ? 'RS256' : 'PS256';
  const audience = `${authorityHost}/${tenantId}/oauth2/v2.0/token`;
  return () =>
    new SignJWT({})
      .setProtectedHeader({ alg, typ: 'JWT', [tp.header]: tp.value })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(audience)
      .setJti(randomUUID())
      .setNotBefore('0s')
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(key);
}

const TENANT_RE = /^[0-9A-Za-z.-]+$/;

function checkIds(tenantId: string | undefined, clientId: string | undefined): void {
  if (tenantId !== undefined && !TENANT_RE.test(tenantId)) {
    throw new CredentialConfigError('tenant_id may only contain letters, digits, "." and "-"');
  }
  if (clientId !== undefined && clientId.trim() === '') throw new CredentialConfigError('client_id is empty');
}

/** Builds the TokenCredential for `config`. Throws CredentialConfigError for unusable settings. */
export function createCredential(config: AzureCredentialConfig, options: IdentityTransportOptions = {}): TokenCredential {
  const authorityHost = authorityHostOf(options);
  const disableInstanceDiscovery =
    options.disableInstanceDiscovery ?? !MICROSOFT_AUTHORITY_HOSTS.has(new URL(authorityHost).hostname.toLowerCase());
  const common = {
    authorityHost,
    disableInstanceDiscovery,
    ...pipelineOptions(options),
    ...(options.additionallyAllowedTenants !== undefined ? { additionallyAllowedTenants: [...options.additionallyAllowedTenants] } : {}),
  };
  switch (config.kind) {
    case 'client_secret':
      checkIds(config.tenantId, config.clientId);
      return new ClientSecretCredential(config.tenantId, config.clientId, config.clientSecret, common);
    case 'client_certificate': {
      checkIds(config.tenantId, config.clientId);
      if (!/-----BEGIN CERTIFICATE-----/.test(config.certificatePem)) {
        throw new CredentialConfigError('the client certificate PEM holds no CERTIFICATE');
      }
      if (!/-----BEGIN (?:RSA |ENCRYPTED )?PRIVATE KEY-----/.test(config.certificatePem)) {
        throw new CredentialConfigError('the client certificate PEM holds no private key (give the key in the same PEM or as private_key)');
      }
      return new ClientCertificateCredential(
        config.tenantId,
        config.clientId,
        { certificate: config.certificatePem },
        { ...common, sendCertificateChain: config.sendCertificateChain ?? false },
      );
    }
    case 'client_key_thumbprint': {
      checkIds(config.tenantId, config.clientId);
      const assertion = thumbprintAssertion(config.tenantId, config.clientId, config.privateKeyPem, config.certificateThumbprint, authorityHost);
      return new ClientAssertionCredential(config.tenantId, config.clientId, assertion, common);
    }
    case 'workload_identity': {
      checkIds(config.tenantId, config.clientId);
      const env = options.env ?? process.env;
      const missing = [
        config.tenantId === undefined && env['AZURE_TENANT_ID'] === undefined ? 'AZURE_TENANT_ID (or tenant_id)' : null,
        config.clientId === undefined && env['AZURE_CLIENT_ID'] === undefined ? 'AZURE_CLIENT_ID (or client_id)' : null,
        config.tokenFilePath === undefined && env['AZURE_FEDERATED_TOKEN_FILE'] === undefined
          ? 'AZURE_FEDERATED_TOKEN_FILE (or token_file)'
          : null,
      ].filter((m): m is string => m !== null);
      if (missing.length > 0) {
        throw new CredentialConfigError(
          `workload identity is not set up: ${missing.join(', ')} missing (the AKS workload identity webhook injects them into pods labelled azure.workload.identity/use: "true")`,
        );
      }
      return new WorkloadIdentityCredential({
        ...common,
        tenantId: config.tenantId ?? (env['AZURE_TENANT_ID'] as string),
        clientId: config.clientId ?? (env['AZURE_CLIENT_ID'] as string),
        tokenFilePath: config.tokenFilePath ?? (env['AZURE_FEDERATED_TOKEN_FILE'] as string),
      });
    }
    case 'managed_identity':
      checkIds(undefined, config.clientId);
      return config.clientId === undefined
        ? new ManagedIdentityCredential(common)
        : new ManagedIdentityCredential({ ...common, clientId: config.clientId });
    case 'default':
      checkIds(config.tenantId, config.clientId);
      // DefaultAzureCredential mutates the options object it is given: pass a fresh one.
      return new DefaultAzureCredential({
        ...common,
        ...(config.tenantId !== undefined ? { tenantId: config.tenantId } : {}),
        ...(config.clientId !== undefined ? { managedIdentityClientId: config.clientId, workloadIdentityClientId: config.clientId } : {}),
      });
  }
}

/** A short description for logs: the mode and ids, never secrets. */
export function describeCredential(config: AzureCredentialConfig): string {
  const ids = [
    'tenantId' in config && config.tenantId !== undefined ? `tenant ${config.tenantId}` : null,
    'clientId' in config && config.clientId !== undefined ? `client ${config.clientId}` : null,
  ].filter((x) => x !== null);
  const kind = config.kind === 'client_key_thumbprint' ? 'client_certificate (private_key + certificate_thumbprint)' : config.kind;
  return ids.length > 0 ? `${kind} (${ids.join(', ')})` : kind;
}

/** The secret strings of a credential, for scrubbing messages. */
export function credentialSecrets(config: AzureCredentialConfig): string[] {
  switch (config.kind) {
    case 'client_secret':
      return [config.clientSecret];
    case 'client_certificate':
      return [config.certificatePem];
    case 'client_key_thumbprint':
      return [config.privateKeyPem];
    default:
      return [];
  }
}
