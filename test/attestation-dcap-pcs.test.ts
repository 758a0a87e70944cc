/**
 * Online Intel PCS v4 collateral against a stand-in on 127.0.0.1 serving the vector collateral
 * with PCS headers: fetch, on-disk cache, one request per item in flight, 404, timeout.
 */
import test from 'ava';
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

test('fetchIntelCollateral fills the layout from PCS (FMSPC list and quote files)', async (t) => {
  const pcs = await standIn();
  const dir = mkdtempSync(join(tmpdir(), 'kbs-fetch-'));
  const quoteFile = join(dir, 'q6.dat');
  (await import('node:fs')).writeFileSync(quoteFile, vec('tdx/tdx_quote_6.dat'));
  const paths = await fetchIntelCollateral({ dir, pcsBaseUrl: pcs.base, timeoutMs: 2000, quoteFiles: [quoteFile], fmspcs: ['00a06d080000'], updateType: 'standard' });
  const rel = paths.map((p) => p.slice(join(dir, 'intel').length + 1)).sort();
  t.true(rel.includes(join('tcbinfo', 'tdx', '00A06D080000.json')));
  t.true(rel.includes(join('qeidentity', 'tdx.json')));
  t.true(rel.includes(join('pckcrl', 'platform.der')));
  t.true(rel.includes('rootcacrl.der'));
  t.is(readFileSync(join(dir, 'intel', 'tcbinfo', 'tdx', '00A06D080000.json'), 'utf8'), vecText('intel_dcap/tcbInfo.json'));
  await t.throwsAsync(fetchIntelCollateral({ dir, pcsBaseUrl: pcs.base, timeoutMs: 2000, fmspcs: ['112233445566'], updateType: 'standard' }), {
    message: /no TCB info/,
  });
  await t.throwsAsync(fetchIntelCollateral({ dir, pcsBaseUrl: pcs.base, timeoutMs: 2000, fmspcs: ['nothex'], updateType: 'standard' }));
  await close(pcs.server);
});
