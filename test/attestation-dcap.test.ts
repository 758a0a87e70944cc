/**
 * Intel DCAP core (attestation/intel-dcap): quote parsing, signatures, PCK chain to the pinned root,
 * collateral signatures over raw text, TCB evaluation against the shipped collateral, CRLs.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRevoked, verifyCrl } from '../attestation/intel-dcap/crl.js';
import { IntelCollateral, parseQuote, verifySgxQuote, verifyTdQuote, INTEL_ROOT_KEY_ID } from '../attestation/intel-dcap/index.js';
import { INTEL_ROOT_CA_PEM, INTEL_ROOT_PUBLIC_KEY, ecPoint } from '../attestation/intel-dcap/root.js';
import { packageRoot } from '../policy/index.js';
import { AttestationFailure } from '../attestation/types.js';
import { AFTER_EXPIRY, BEFORE_EXPIRY, collateralDir, vec, vecText } from './dcap-helpers.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const offline = new IntelCollateral({});

const failsAt = async (t: import('ava').ExecutionContext, p: Promise<unknown>, step: string | RegExp): Promise<void> => {
  const e = await t.throwsAsync(p, { instanceOf: AttestationFailure });
  if (typeof step === 'string') t.is(e?.step, step, e?.message);
  else t.regex(e?.step ?? '', step, e?.message);
};

test('shipped root PEM equals the vector, the embedded copy, and the pinned key', (t) => {
  const shipped = readFileSync(join(packageRoot(), 'attestation', 'intel-dcap', 'roots', 'intel_sgx_root_ca.pem'), 'utf8');
  t.is(shipped, vecText('intel_dcap/intel_sgx_root_ca.pem'));
  t.is(shipped.trim(), INTEL_ROOT_CA_PEM.trim());
  t.true(ecPoint(new X509Certificate(shipped))?.equals(INTEL_ROOT_PUBLIC_KEY));
  t.is(INTEL_ROOT_KEY_ID, '46e403bd34f05a3f2817ab9badcaacc7ffc98e0f261008cd30dae936cace18d5dcf58eef31463613de1570d516200993');
});

for (const f of ['tdx/tdx_quote_4.dat', 'tdx/tdx_quote_6.dat', 'az-tdx-vtpm/td-quote.bin']) {
  test(`${f}: verifies offline; TCB Unknown without collateral`, async (t) => {
    const r = await verifyTdQuote(vec(f), NOW, offline);
    t.is(r.quote.kind, 'tdx');
    t.is(r.tcb.status, 'Unknown');
    t.is(r.claims['tcb_status'], 'Unknown');
    t.is(r.claims['collateral_expiration_status'], '1');
    t.is(r.claims['root_key_id'], INTEL_ROOT_KEY_ID);
    t.false('tcb_date' in r.claims);
  });
}

test('occlum SGX quote verifies offline; the TDX entry point rejects it and vice versa', async (t) => {
  const r = await verifySgxQuote(vec('sgx/occlum_quote.dat'), NOW, offline);
  t.is(r.platform.fmspc.toString('hex'), '00606a000000');
  await failsAt(t, verifyTdQuote(vec('sgx/occlum_quote.dat'), NOW, offline), 'quote-format');
  await failsAt(t, verifySgxQuote(vec('tdx/tdx_quote_4.dat'), NOW, offline), 'quote-format');
});

test('trailing bytes: tdx_quote_6 has 70 zero bytes after the quote; more or other padding is ignored too', async (t) => {
  const q = vec('tdx/tdx_quote_6.dat');
  const parsed = parseQuote(q);
  t.is(parsed.length, 4936);
  t.is(q.length - parsed.length, 70);
  const a = await verifyTdQuote(q, NOW, offline);
  const b = await verifyTdQuote(Buffer.concat([q, Buffer.from('anything at all')]), NOW, offline);
  const c = await verifyTdQuote(q.subarray(0, parsed.length), NOW, offline);
  t.deepEqual(b.claims, a.claims);
  t.deepEqual(c.claims, a.claims);
});

test('every truncation of a quote is rejected with a quote-format failure', async (t) => {
  const q = vec('tdx/tdx_quote_4.dat');
  for (const n of [0, 1, 47, 48, 100, 631, 632, 635, 700, 1000, 2000, 4935]) {
    await failsAt(t, verifyTdQuote(q.subarray(0, n), NOW, offline), /quote-format|pck-certificate/);
  }
});

test('PCK certificate dates are enforced at now', async (t) => {
  await failsAt(t, verifyTdQuote(vec('tdx/tdx_quote_4.dat'), new Date('2031-01-01'), offline), 'pck-certificate');
  await failsAt(t, verifyTdQuote(vec('tdx/tdx_quote_6.dat'), new Date('2025-01-01'), offline), 'pck-certificate');
});

test('PCK SGX extension of tdx_quote_6: FMSPC, PCE-ID, PCESVN, sgx type, platform fields', async (t) => {
  const r = await verifyTdQuote(vec('tdx/tdx_quote_6.dat'), BEFORE_EXPIRY, offline);
  const p = r.platform;
  t.is(p.fmspc.toString('hex').toUpperCase(), '00A06D080000');
  t.is(p.pceid.toString('hex'), '0000');
  t.is(p.pcesvn, 11);
  t.is(p.sgxType, 2);
  t.true(p.isPlatformCa);
  t.is(p.platformInstanceId?.length, 16);
  t.is(p.tcbComponents.length, 16);
  t.is(r.claims['sgx_type'], 'Scalable with Integrity');
});

test('tdx_quote_6 against the shipped collateral: OutOfDate (module TDX_03 and TD_QE UpToDate)', async (t) => {
  const c = new IntelCollateral({ collateralDir: collateralDir() });
  const r = await verifyTdQuote(vec('tdx/tdx_quote_6.dat'), BEFORE_EXPIRY, c);
  t.is(r.tcb.status, 'OutOfDate');
  t.is(r.tcb.evaluation?.platformStatus, 'OutOfDate');
  t.is(r.tcb.evaluation?.moduleStatus, 'UpToDate');
  t.is(r.tcb.evaluation?.qeStatus, 'UpToDate');
  t.is(r.claims['tcb_status'], 'OutOfDate');
  t.is(r.claims['tcb_date'], '2018-01-04T00:00:00Z');
  t.is(r.claims['tcb_eval_num'], 17);
  t.is(r.claims['latest_issue_date'], '2025-10-28T06:45:09Z');
  t.is(r.claims['earliest_issue_date'], '2018-05-21T10:45:10Z');
  // The only available TCB signing certificate expired on 2025-05-21, so the collateral set is
  // flagged as expired even before the TCB info's nextUpdate (QVL counts issuer certificates too).
  t.is(r.claims['earliest_expiration_date'], '2025-05-21T10:50:10Z');
  t.is(r.claims['collateral_expiration_status'], '1');
  t.is(r.claims['crl_status'], 'missing');
});

test('after the collateral nextUpdate (2025-11-26) the status is still computed and flagged expired', async (t) => {
  const c = new IntelCollateral({ collateralDir: collateralDir() });
  const r = await verifyTdQuote(vec('tdx/tdx_quote_6.dat'), AFTER_EXPIRY, c);
  t.is(r.tcb.status, 'OutOfDate');
  t.true(r.tcb.collateralExpired);
  t.is(r.claims['collateral_expiration_status'], '1');
});

test('tampered tcbInfo text is a signature failure', async (t) => {
  const text = vecText('intel_dcap/tcbInfo.json').replace('"pcesvn":13', '"pcesvn":11');
  const c = new IntelCollateral({ collateralDir: collateralDir({ tcbInfoText: text }) });
  const e = await t.throwsAsync(verifyTdQuote(vec('tdx/tdx_quote_6.dat'), BEFORE_EXPIRY, c), { instanceOf: AttestationFailure });
  t.is(e?.step, 'tcb-info');
  t.regex(e?.message ?? '', /signature/);
});

test('reformatted (pretty-printed) tcbInfo still verifies via whitespace removal; a changed value does not', async (t) => {
  const pretty = JSON.stringify(JSON.parse(vecText('intel_dcap/tcbInfo.json')), null, 2);
  const c = new IntelCollateral({ collateralDir: collateralDir({ tcbInfoText: pretty }) });
  t.is((await verifyTdQuote(vec('tdx/tdx_quote_6.dat'), BEFORE_EXPIRY, c)).tcb.status, 'OutOfDate');
  const changed = pretty.replace('"tcbEvaluationDataNumber": 17', '"tcbEvaluationDataNumber": 18');
  const c2 = new IntelCollateral({ collateralDir: collateralDir({ tcbInfoText: changed }) });
  await failsAt(t, verifyTdQuote(vec('tdx/tdx_quote_6.dat'), BEFORE_EXPIRY, c2), 'tcb-info');
});

test('the PCS Client Tool JSON form (file with URL-encoded chains) gives the same verdict', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbs-dcap-tool-'));
  mkdirSync(join(dir, 'intel'));
  const chain = encodeURIComponent(vecText('intel_dcap/intel_sgx_tcb_signing_2018.pem') + vecText('intel_dcap/intel_sgx_root_ca.pem'));
  const tool =
    `{"collaterals":{"tcbinfos":[{"fmspc":"00a06d080000","tdx_tcbinfo":${vecText('intel_dcap/tcbInfo.json').trim()}}],` +
    `"pckcacrl":{"processorCrl":"","platformCrl":""},"tdqeidentity":${vecText('intel_dcap/enclaveIdentity.json').trim()},` +
    `"certificates":{"TCB-Info-Issuer-Chain":"${chain}","SGX-Enclave-Identity-Issuer-Chain":"${chain}"},"rootcacrl":""}}`;
  writeFileSync(join(dir, 'intel', 'pcs-client-tool.json'), tool);
  const c = new IntelCollateral({ collateralDir: dir });
  const r = await verifyTdQuote(vec('tdx/tdx_quote_6.dat'), BEFORE_EXPIRY, c);
  t.is(r.tcb.status, 'OutOfDate');
});

test('collateral of another platform (FMSPC mismatch) is refused', async (t) => {
  const dir = collateralDir();
  const intel = join(dir, 'intel', 'tcbinfo', 'tdx');
  // Serve the 00A06D080000 TCB info under quote_4's FMSPC.
  writeFileSync(join(intel, '50806F000000.json'), vecText('intel_dcap/tcbInfo.json'));
  const c = new IntelCollateral({ collateralDir: dir });
  await failsAt(t, verifyTdQuote(vec('tdx/tdx_quote_4.dat'), BEFORE_EXPIRY, c), 'tcb-info');
});

test('a CRL not signed by the PCK CA is refused; CRL parsing and revocation lookup work', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbs-crl-'));
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
  ssl('req', '-new', '-x509', '-key', 'ca.key', '-subj', '/CN=Test CA', '-days', '30', '-out', 'ca.pem');
  ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'leaf.key');
  ssl('req', '-new', '-key', 'leaf.key', '-subj', '/CN=leaf', '-out', 'leaf.csr');
  ssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '0x0badcafe', '-days', '30', '-out', 'leaf.pem');
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'crlnumber'), '2A\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    `[ca]\ndefault_ca=d\n[d]\ndatabase=${dir}/index.txt\ncrlnumber=${dir}/crlnumber\ndefault_md=sha256\ndefault_crl_days=30\ncertificate=${dir}/ca.pem\nprivate_key=${dir}/ca.key\n`,
  );
  ssl('ca', '-config', 'ca.cnf', '-revoke', 'leaf.pem');
  ssl('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem');
  ssl('crl', '-in', 'crl.pem', '-outform', 'DER', '-out', 'crl.der');
  const der = readFileSync(join(dir, 'crl.der'));
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')));
  const leaf = new X509Certificate(readFileSync(join(dir, 'leaf.pem')));
  const v = verifyCrl(der, ca, 'test CRL');
  t.is(v.number, 0x2a);
  t.true(isRevoked(v.crl, leaf));
  t.false(isRevoked(v.crl, ca));
  // In the verifier, this CRL claims to be the platform PCK CRL and the Root CA CRL: both refused.
  const col = collateralDir();
  mkdirSync(join(col, 'intel', 'pckcrl'));
  writeFileSync(join(col, 'intel', 'pckcrl', 'platform.der'), der);
  await failsAt(t, verifyTdQuote(vec('tdx/tdx_quote_6.dat'), BEFORE_EXPIRY, new IntelCollateral({ collateralDir: col })), 'collateral-crl');
  const col2 = collateralDir();
  writeFileSync(join(col2, 'intel', 'rootcacrl.der'), der);
  await failsAt(t, verifyTdQuote(vec('tdx/tdx_quote_6.dat'), BEFORE_EXPIRY, new IntelCollateral({ collateralDir: col2 })), 'collateral-crl');
});

/** A v5 quote rebuilt from quote_4's bytes (the signature no longer matches: parser-only). */
function v5From(v4: Buffer, type: 2 | 3): Buffer {
  const header = Buffer.from(v4.subarray(0, 48));
  header.writeUInt16LE(5, 0);
  const body = Buffer.concat([v4.subarray(48, 632), Buffer.alloc(type === 3 ? 64 : 0, 0xab)]);
  const ts = Buffer.alloc(6);
  ts.writeUInt16LE(type, 0);
  ts.writeUInt32LE(body.length, 2);
  return Buffer.concat([header, ts, body, v4.subarray(632)]);
}

test('v5 quotes (TDX 1.0 and 1.5 bodies) parse; their re-signed region fails the signature check', async (t) => {
  const v4 = vec('tdx/tdx_quote_4.dat');
  for (const type of [2, 3] as const) {
    const q = parseQuote(v5From(v4, type));
    t.is(q.kind, 'tdx');
    if (q.kind !== 'tdx') return;
    t.is(q.v5?.type, type);
    t.deepEqual(q.body.reportData, v4.subarray(568, 632));
    t.is(q.body.teeTcbSvn2 !== undefined, type === 3);
    await failsAt(t, verifyTdQuote(v5From(v4, type), NOW, offline), 'quote-signature');
  }
  const bad = v5From(v4, 2);
  bad.writeUInt32LE(999, 50);
  t.throws(() => parseQuote(bad), { instanceOf: AttestationFailure });
  bad.writeUInt16LE(7, 48);
  t.throws(() => parseQuote(bad), { instanceOf: AttestationFailure });
});
