/**
 * Online Intel PCS v4 collateral against a stand-in on 127.0.0.1 serving the vector collateral
 * with PCS headers: fetch, on-disk cache, one request per item in flight, 404, timeout.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { packageRoot } from '../policy/samples.js';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchIntelCollateral } from '../cli/collateral-intel.js';
import { IntelCollateral, verifyTdQuote } from '../attestation/intel-dcap/index.js';
import { BEFORE_EXPIRY, vec, vecText } from './dcap-helpers.js';

const CHAIN = encodeURIComponent(vecText('intel_dcap/intel_sgx_tcb_signing_2018.pem') + vecText('intel_dcap/intel_sgx_root_ca.pem'));

interface StandIn {
  server: Server;
  base: string;
  hits: Map<string, number>;
}

async function standIn(handler?: (req: IncomingMessage, res: ServerResponse) => boolean): Promise<StandIn> {
  const hits = new Map<string, number>();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1);
    if (handler?.(req, res) === true) return;
    if (url.pathname === '/tdx/certification/v4/tcb' && url.searchParams.get('fmspc') === '00A06D080000') {
      // Slow enough that concurrent verifications overlap.
      setTimeout(() => res.writeHead(200, { 'TCB-Info-Issuer-Chain': CHAIN, 'content-type': 'application/json' }).end(vecText('intel_dcap/tcbInfo.json')), 100);
    } else if (url.pathname === '/tdx/certification/v4/qe/identity') {
      res.writeHead(200, { 'SGX-Enclave-Identity-Issuer-Chain': CHAIN }).end(vecText('intel_dcap/enclaveIdentity.json'));
    } else if (url.pathname === '/sgx/certification/v4/pckcrl' || url.pathname === '/sgx/certification/v4/rootcacrl') {
      res.writeHead(200, { 'SGX-PCK-CRL-Issuer-Chain': CHAIN }).end(Buffer.from([0x30, 0x00]));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { server, base: `http://127.0.0.1:${port}/sgx/certification/v4/`, hits };
}

const close = (s: Server): Promise<void> => new Promise((r) => s.close(() => r()));

test('online PCS: collateral fetched once for concurrent verifications, cached on disk, reused offline', async (t) => {
  const pcs = await standIn((req, res) => {
    // No CRLs from this stand-in: revocation stays "missing".
    if ((req.url ?? '').includes('crl')) return res.writeHead(410).end(), true;
    return false;
  });
  const dir = mkdtempSync(join(tmpdir(), 'kbs-pcs-'));
  const c = new IntelCollateral({ collateralDir: dir, pcs: { baseUrl: pcs.base, timeoutMs: 2000, updateType: 'standard' } });
  const q6 = vec('tdx/tdx_quote_6.dat');
  const results = await Promise.all(Array.from({ length: 5 }, () => verifyTdQuote(q6, BEFORE_EXPIRY, c)));
  for (const r of results) t.is(r.tcb.status, 'OutOfDate');
  t.is(pcs.hits.get('/tdx/certification/v4/tcb'), 1);
  t.is(pcs.hits.get('/tdx/certification/v4/qe/identity'), 1);
  const stored = join(dir, 'intel', 'tcbinfo', 'tdx', '00A06D080000.json');
  t.is(readFileSync(stored, 'utf8'), vecText('intel_dcap/tcbInfo.json'));
  t.true(existsSync(join(dir, 'intel', 'qeidentity', 'tdx.chain.pem')));
  await close(pcs.server);
  // A new process (new IntelCollateral) with the server gone: the disk cache answers.
  const again = new IntelCollateral({ collateralDir: dir, pcs: { baseUrl: pcs.base, timeoutMs: 500, updateType: 'standard' } });
  t.is((await verifyTdQuote(q6, BEFORE_EXPIRY, again)).tcb.status, 'OutOfDate');
});

test('online PCS: 404 means not available (TCB Unknown), not a failure', async (t) => {
  const pcs = await standIn((_req, res) => (res.writeHead(404).end(), true));
  const c = new IntelCollateral({ pcs: { baseUrl: pcs.base, timeoutMs: 2000, updateType: 'early' } });
  const r = await verifyTdQuote(vec('tdx/tdx_quote_6.dat'), BEFORE_EXPIRY, c);
  t.is(r.tcb.status, 'Unknown');
  t.true((pcs.hits.get('/tdx/certification/v4/tcb') ?? 0) >= 1);
  await close(pcs.server);
});

test('online PCS: a server that never answers times out to missing collateral, without hanging', async (t) => {
  const pcs = await standIn(() => true); // accept, never respond
  const c = new IntelCollateral({ pcs: { baseUrl: pcs.base, timeoutMs: 300, updateType: 'standard' } });
  const started = Date.now();
  const r = await verifyTdQuote(vec('tdx/tdx_quote_6.dat'), BEFORE_EXPIRY, c);
  t.is(r.tcb.status, 'Unknown');
  t.true(Date.now() - started < 5000);
  pcs.server.closeAllConnections();
  await close(pcs.server);
});

test('fetchIntelCollateral refuses a CRL that does not verify, and writes nothing for it', async (t) => {
  const pcs = await standIn(); // serves `30 00` as every CRL
  const dir = mkdtempSync(join(tmpdir(), 'kbs-fetch-bad-crl-'));
  await t.throwsAsync(fetchIntelCollateral({ dir, pcsBaseUrl: pcs.base, timeoutMs: 2000, fmspcs: ['00a06d080000'], updateType: 'standard' }), {
    message: /CRL cannot be parsed/,
  });
  t.false(existsSync(join(dir, 'intel', 'pckcrl', 'platform.der')));
  t.false(existsSync(join(dir, 'intel', 'rootcacrl.der')));
  await close(pcs.server);
});

const noCrls = (req: IncomingMessage, res: ServerResponse): boolean =>
  (req.url ?? '').includes('crl') ? (res.writeHead(410).end(), true) : false;

test('fetchIntelCollateral fills the layout from PCS (FMSPC list and quote files)', async (t) => {
  const pcs = await standIn(noCrls);
  const dir = mkdtempSync(join(tmpdir(), 'kbs-fetch-'));
  const quoteFile = join(dir, 'q6.dat');
  (await import('node:fs')).writeFileSync(quoteFile, vec('tdx/tdx_quote_6.dat'));
  const paths = await fetchIntelCollateral({ dir, pcsBaseUrl: pcs.base, timeoutMs: 2000, quoteFiles: [quoteFile], fmspcs: ['00a06d080000'], updateType: 'standard' });
  const rel = paths.map((p) => p.slice(join(dir, 'intel').length + 1)).sort();
  t.true(rel.includes(join('tcbinfo', 'tdx', '00A06D080000.json')));
  t.true(rel.includes(join('qeidentity', 'tdx.json')));
  t.false(rel.includes(join('pckcrl', 'platform.der')), 'PCS has no CRLs here: nothing is written for them');
  t.is(readFileSync(join(dir, 'intel', 'tcbinfo', 'tdx', '00A06D080000.json'), 'utf8'), vecText('intel_dcap/tcbInfo.json'));
  await t.throwsAsync(fetchIntelCollateral({ dir, pcsBaseUrl: pcs.base, timeoutMs: 2000, fmspcs: ['112233445566'], updateType: 'standard' }), {
    message: /no TCB info/,
  });
  await t.throwsAsync(fetchIntelCollateral({ dir, pcsBaseUrl: pcs.base, timeoutMs: 2000, fmspcs: ['nothex'], updateType: 'standard' }));
  await close(pcs.server);
});

/** Runs the real `kbs` binary; resolves to its exit code and output. */
function runKbs(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const bin = join(packageRoot(), 'dist', 'cli', 'kbs.js');
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

test('kbs collateral fetch --intel writes verified collateral the TDX verifier then uses offline', async (t) => {
  const pcs = await standIn(noCrls);
  const dir = mkdtempSync(join(tmpdir(), 'kbs-cli-fetch-'));
  try {
    const r = await runKbs(['collateral', 'fetch', '--dir', dir, '--intel', '--fmspc', '00A06D080000', '--pcs-url', pcs.base, '--update', 'standard']);
    t.is(r.code, 0, r.err);
    t.true(r.out.split('\n').some((l) => l.endsWith(join('tcbinfo', 'tdx', '00A06D080000.json'))));
    // Offline now: the verdict comes from what was written.
    const result = await verifyTdQuote(vec('tdx/tdx_quote_6.dat'), BEFORE_EXPIRY, new IntelCollateral({ collateralDir: dir }));
    t.is(result.claims['tcb_status'], 'OutOfDate');
    const bad = await runKbs(['collateral', 'fetch', '--dir', dir, '--fmspc', '112233445566', '--pcs-url', pcs.base]);
    t.is(bad.code, 1);
    t.regex(bad.err, /no TCB info/);
  } finally {
    await close(pcs.server);
  }
});

test('kbs collateral: usage errors exit 2', async (t) => {
  for (const args of [['collateral'], ['collateral', 'fetch'], ['collateral', 'fetch', '--dir', '/tmp/x'], ['collateral', 'fetch', '--dir', '/tmp/x', '--intel', '--update', 'late']]) {
    const r = await runKbs(args);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.err, /usage:/);
  }
});
