/**
 * SEV-SNP collateral: the offline VCEK store, AMD KDS through a local HTTP stand-in on 127.0.0.1
 * (URL shape, caching, timeout), CRL checking with an openssl-made RSA-PSS CA, and
 * fetchAmdCollateral.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';
import { AttestationFailure } from '../attestation/types.js';
import {
  assertNotRevoked,
  crlPath,
  parseSnpEvidence,
  parseSnpReport,
  SnpVerifier,
  tcbPrefix,
  vcekPaths,
  vcekUrl,
  verifyCrl,
} from '../attestation/snp/index.js';
import { parseCert } from '../attestation/snp/cert.js';
import { fetchAmdCollateral } from '../cli/collateral-amd.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const snpFile = (name: string): Buffer => readFileSync(join(VECTORS, 'snp', name));
const e2e = (): Record<string, unknown> => JSON.parse(snpFile('e2e-evidence.json').toString('utf8')) as Record<string, unknown>;
const NOW = new Date('2025-06-01T00:00:00Z');

const tempDir = (): string => mkdtempSync(join(tmpdir(), 'snp-collateral-'));
const e2eVcek = (): Buffer => Buffer.from((e2e()['cert_chain'] as Array<{ data: number[] }>)[0]?.data ?? []);
const withoutChain = (): Record<string, unknown> => ({ ...e2e(), cert_chain: null });

async function failsAt(t: import('ava').ExecutionContext, p: Promise<unknown>, step: string, message?: RegExp): Promise<void> {
  const e = await t.throwsAsync(p);
  t.true(e instanceof AttestationFailure, String(e));
  t.is((e as AttestationFailure).step, step, (e as Error).message);
  if (message !== undefined) t.regex((e as Error).message, message);
}

/** A KDS stand-in: serves `routes` by path+query, counts requests, hangs on `/hang`. */
async function kdsStandIn(routes: Map<string, Buffer>): Promise<{ server: Server; base: string; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    hits.push(url);
    if (url.startsWith('/hang')) return; // never answers
    const body = routes.get(url);
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, base: `http://127.0.0.1:${port}`, hits };
}

const close = (s: Server): Promise<void> =>
  new Promise((resolve) => {
    s.closeAllConnections();
    s.close(() => resolve());
  });

test('KDS URL and offline-store names follow upstream', (t) => {
  const report = parseSnpEvidence(e2e()).report;
  const hw = report.chipId.toString('hex');
  t.is(vcekUrl('https://kdsintf.amd.com/', 'Genoa', report), `https://kdsintf.amd.com/vcek/v1/Genoa/${hw}?blSPL=10&teeSPL=00&snpSPL=23&ucodeSPL=25`);
  t.is(tcbPrefix(report), 'bl10_tee00_snp23_ucode25');
  t.deepEqual(vcekPaths('/d', report, 'Genoa'), {
    tcb: `/d/vcek/${hw}/bl10_tee00_snp23_ucode25_vcek.der`,
    fallback: `/d/vcek/${hw}/vcek.der`,
  });
});

test('offline store: evidence without cert_chain verifies with the VCEK from <dir>/vcek/<hwid>/', async (t) => {
  const dir = tempDir();
  try {
    const report = parseSnpEvidence(e2e()).report;
    const { tcb, fallback } = vcekPaths(dir, report, 'Genoa');
    await failsAt(t, new SnpVerifier({ collateralDir: dir }).evaluate(withoutChain(), { now: NOW }), 'vcek-fetch', /offline store/);
    mkdirSync(join(dir, 'vcek', report.chipId.toString('hex')), { recursive: true });
    writeFileSync(fallback, e2eVcek());
    const r1 = await new SnpVerifier({ collateralDir: dir }).evaluate(withoutChain(), { now: NOW });
    t.is(r1.metadata.vekSource, 'offline-store');
    // The TCB-specific name wins over vcek.der: a wrong certificate there is used (and refused).
    writeFileSync(tcb, snpFile('test-vcek.der'));
    await failsAt(t, new SnpVerifier({ collateralDir: dir }).evaluate(withoutChain(), { now: NOW }), 'certificate-chain');
    // No source configured at all.
    await failsAt(t, new SnpVerifier().evaluate(withoutChain(), { now: NOW }), 'vcek-fetch', /no VCEK source/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('KDS: fetches the VCEK once (LRU), caches it on disk, and the disk copy serves offline', async (t) => {
  const dir = tempDir();
  const report = parseSnpEvidence(e2e()).report;
  const path = new URL(vcekUrl('http://x', 'Genoa', report));
  const kds = await kdsStandIn(new Map([[path.pathname + path.search, e2eVcek()]]));
  try {
    const v = new SnpVerifier({ collateralDir: dir, kds: { baseUrl: kds.base, timeoutMs: 15_000 } });
    const r = await v.evaluate(withoutChain(), { now: NOW });
    t.deepEqual(r.claims, JSON.parse(snpFile('e2e-expected-claims.json').toString('utf8')));
    t.is(r.metadata.vekSource, 'kds');
    t.is(r.metadata.crl, 'absent'); // the stand-in has no CRL (404)
    await v.evaluate(withoutChain(), { now: NOW });
    t.is(kds.hits.filter((h) => h.startsWith('/vcek/v1/Genoa/') && !h.endsWith('/crl')).length, 1);
    t.true(readFileSync(vcekPaths(dir, report, 'Genoa').tcb).equals(e2eVcek()));
    const offline = await new SnpVerifier({ collateralDir: dir }).evaluate(withoutChain(), { now: NOW });
    t.is(offline.metadata.vekSource, 'offline-store');
  } finally {
    await close(kds.server);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('KDS: a wrong certificate is refused and not kept on disk; 404 and timeouts are clear failures', async (t) => {
  const dir = tempDir();
  const report = parseSnpEvidence(e2e()).report;
  const path = new URL(vcekUrl('http://x', 'Genoa', report));
  const kds = await kdsStandIn(new Map([[path.pathname + path.search, snpFile('test-vcek.der')]]));
  try {
    const v = new SnpVerifier({ collateralDir: dir, kds: { baseUrl: kds.base, timeoutMs: 15_000 } });
    await failsAt(t, v.evaluate(withoutChain(), { now: NOW }), 'certificate-chain');
    t.false(existsSync(vcekPaths(dir, report, 'Genoa').tcb));
    const missing = new SnpVerifier({ kds: { baseUrl: `${kds.base}/nothing`, timeoutMs: 15_000 } });
    await failsAt(t, missing.evaluate(withoutChain(), { now: NOW }), 'vcek-fetch', /HTTP 404/);
    const slow = new SnpVerifier({ kds: { baseUrl: `${kds.base}/hang`, timeoutMs: 200 } });
    const started = Date.now();
    await failsAt(t, slow.evaluate(withoutChain(), { now: NOW }), 'vcek-fetch', /timed out after 200 ms/);
    t.true(Date.now() - started < 10_000, 'hang guard');
  } finally {
    await close(kds.server);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CRL: a CRL in the collateral dir that the ARK did not sign fails the attestation', async (t) => {
  const dir = tempDir();
  try {
    mkdirSync(join(dir, 'crl'));
    writeFileSync(crlPath(dir, 'Genoa'), Buffer.from('not a crl'));
    await failsAt(t, new SnpVerifier({ collateralDir: dir }).evaluate(e2e(), { now: NOW }), 'crl');
    const ca = makeCa();
    writeFileSync(crlPath(dir, 'Genoa'), ca.crl);
    await failsAt(t, new SnpVerifier({ collateralDir: dir }).evaluate(e2e(), { now: NOW }), 'crl', /signature does not verify/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** An openssl CA (RSA-PSS/SHA-384 like AMD's) with two intermediates, one revoked, and its CRL. */
function makeCa(): { root: Buffer; good: Buffer; revoked: Buffer; crl: Buffer } {
  const dir = tempDir();
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  try {
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'crlnumber'), '01\n');
    writeFileSync(
      join(dir, 'ca.cnf'),
      [
        '[ca]',
        'default_ca=amd',
        '[amd]',
        `database=${join(dir, 'index.txt')}`,
        `crlnumber=${join(dir, 'crlnumber')}`,
        `certificate=${join(dir, 'root.pem')}`,
        `private_key=${join(dir, 'root.key')}`,
        'default_md=sha384',
        'default_crl_days=30',
        '[v3]',
        'basicConstraints=critical,CA:TRUE',
        '',
      ].join('\n'),
    );
    const pss = ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:48', '-sigopt', 'rsa_mgf1_md:sha384'];
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'root.key', '-subj', '/CN=ARK-Test', '-days', '30', '-sha384', ...pss, '-out', 'root.pem');
    for (const [name, serial] of [['good', '0A'], ['revoked', '0B']] as const) {
      run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-subj', `/CN=SEV-${name}`, '-out', `${name}.csr`);
      run('x509', '-req', '-in', `${name}.csr`, '-CA', 'root.pem', '-CAkey', 'root.key', '-set_serial', `0x${serial}`, '-days', '30', '-sha384', ...pss, '-out', `${name}.pem`);
    }
    run('ca', '-config', 'ca.cnf', '-revoke', 'revoked.pem');
    run('ca', '-config', 'ca.cnf', '-gencrl', ...pss, '-out', 'crl.pem');
    const der = (args: string[], out: string): Buffer => {
      run(...args, '-outform', 'DER', '-out', out);
      return readFileSync(join(dir, out));
    };
    return {
      root: der(['x509', '-in', 'root.pem'], 'root.der'),
      good: der(['x509', '-in', 'good.pem'], 'good.der'),
      revoked: der(['x509', '-in', 'revoked.pem'], 'revoked.der'),
      crl: der(['crl', '-in', 'crl.pem'], 'crl.der'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('CRL component: RSA-PSS CRL verified with its issuer; the revoked intermediate is refused, the other passes', (t) => {
  const ca = makeCa();
  const root = parseCert(ca.root, 'root');
  const now = new Date();
  const verified = verifyCrl(ca.crl, root, now, 'test CRL');
  t.true(verified.crl.revoked.has('0b'));
  t.notThrows(() => assertNotRevoked(verified, parseCert(ca.good, 'good'), 'good'));
  const e = t.throws(() => assertNotRevoked(verified, parseCert(ca.revoked, 'revoked'), 'ASK'));
  t.is((e as AttestationFailure).step, 'crl');
  // Stale (after nextUpdate) and wrong issuer key.
  t.throws(() => verifyCrl(ca.crl, root, new Date(now.getTime() + 40 * 86_400_000)), { message: /stale/ });
  t.throws(() => verifyCrl(ca.crl, parseCert(ca.good, 'good'), now), { message: /signature does not verify/ });
  // A flipped byte in the signed part.
  const bad = Buffer.from(ca.crl);
  bad[bad.length - 300] = (bad[bad.length - 300] as number) ^ 1;
  t.throws(() => verifyCrl(bad, root, now), { instanceOf: AttestationFailure });
});

test('fetchAmdCollateral: writes the verified VCEK for an evidence file; a bad CRL writes nothing', async (t) => {
  const dir = tempDir();
  const report = parseSnpEvidence(e2e()).report;
  const path = new URL(vcekUrl('http://x', 'Genoa', report));
  const kds = await kdsStandIn(new Map([
    [path.pathname + path.search, e2eVcek()],
    ['/vcek/v1/Genoa/crl', Buffer.from('garbage')],
  ]));
  try {
    const evidenceFile = join(VECTORS, 'snp', 'e2e-evidence.json');
    const written = await fetchAmdCollateral({ dir, kdsBaseUrl: kds.base, timeoutMs: 15_000, evidenceFiles: [evidenceFile], products: [], now: NOW });
    t.deepEqual(written, [vcekPaths(dir, report, 'Genoa').tcb]);
    t.true(readFileSync(written[0] as string).equals(e2eVcek()));
    await t.throwsAsync(fetchAmdCollateral({ dir, kdsBaseUrl: kds.base, timeoutMs: 15_000, products: ['genoa'], now: NOW }));
    t.false(existsSync(crlPath(dir, 'Genoa')));
    await t.throwsAsync(fetchAmdCollateral({ dir, kdsBaseUrl: kds.base, timeoutMs: 15_000, products: ['Venice'] }), { message: /unknown AMD product/ });
    // A v2 binary report cannot name its generation.
    await t.throwsAsync(
      fetchAmdCollateral({ dir, kdsBaseUrl: kds.base, timeoutMs: 15_000, products: [], evidenceFiles: [join(VECTORS, 'snp', 'test-report.bin')] }),
    );
    t.is(parseSnpReport(snpFile('test-report.bin')).version, 2);
  } finally {
    await close(kds.server);
    rmSync(dir, { recursive: true, force: true });
  }
});
