/**
 * attestation/common/der.ts: the strict DER reader on real certificates (AMD VCEK extensions,
 * both hwID encodings), an openssl-made CRL, and malformed input.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';
import {
  certificateExtensions,
  children,
  DerError,
  decodeInteger,
  decodeOid,
  parseCrl,
  parseDer,
  readTlv,
} from '../attestation/common/der.js';
import { AMD_OID, certificateValidity, decodeHwId, vekExtensions } from '../attestation/snp/cert.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const snpFile = (name: string): Buffer => readFileSync(join(VECTORS, 'snp', name));

test('test-vcek.der: AMD SPL extensions and hwID equal the report (bl=3 tee=0 snp=8 ucode=115)', (t) => {
  const der = snpFile('test-vcek.der');
  const exts = certificateExtensions(der);
  t.true(exts.has(AMD_OID.blSPL) && exts.has(AMD_OID.hwID) && exts.has(AMD_OID.productName));
  const v = vekExtensions(der);
  t.like(v, { blSPL: 3, teeSPL: 0, snpSPL: 8, ucodeSPL: 115, fmcSPL: undefined });
  const chipId = readFileSync(join(VECTORS, 'snp', 'test-report.bin')).subarray(0x1a0, 0x1e0);
  t.true((v.hwId as Buffer).equals(chipId));
  t.deepEqual(certificateValidity(der), {
    notBefore: new Date('2023-01-24T17:58:26Z'),
    notAfter: new Date('2030-01-24T17:58:26Z'),
  });
});

test('hwID: the legacy raw 64-byte and the OCTET STRING encodings both decode to 00..3f', (t) => {
  const expected = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
  for (const f of ['test-vcek-invalid-legacy.der', 'test-vcek-invalid-new.der']) {
    t.true((vekExtensions(snpFile(f)).hwId as Buffer).equals(expected), f);
  }
  t.throws(() => decodeHwId(Buffer.from([0x04, 0x02, 0x01, 0x02])), { instanceOf: DerError });
  t.throws(() => decodeHwId(Buffer.alloc(63)), { instanceOf: DerError });
});

test('VLEK: no hwID; csp_id present', (t) => {
  const der = snpFile('test-vlek.der');
  t.is(vekExtensions(der).hwId, undefined);
  t.true(certificateExtensions(der).get(AMD_OID.cspID)?.value.toString('latin1').includes('amazonaws.com'));
});

test('primitives: OIDs, integers, lengths', (t) => {
  t.is(decodeOid(Buffer.from('2b060104019c78010301', 'hex')), '1.3.6.1.4.1.3704.1.3.1');
  t.is(decodeInteger(Buffer.from([0x00, 0xff])), 255n);
  t.is(decodeInteger(Buffer.from([0xff])), -1n);
  t.throws(() => decodeOid(Buffer.from([0x2b, 0x80, 0x01])), { instanceOf: DerError });
  t.throws(() => decodeOid(Buffer.from([0x2b, 0x86])), { instanceOf: DerError });
  t.throws(() => readTlv(Buffer.from([0x04])), { instanceOf: DerError });
  t.throws(() => readTlv(Buffer.from([0x04, 0x80])), { message: /indefinite/ });
  t.throws(() => readTlv(Buffer.from([0x04, 0x81, 0x05, 1, 2, 3, 4, 5])), { message: /non-minimal/ });
  t.throws(() => readTlv(Buffer.from([0x04, 0x05, 1])), { message: /past the end/ });
  t.throws(() => readTlv(Buffer.from([0x1f, 0x01, 0x00])), { message: /multi-octet/ });
  t.throws(() => parseDer(Buffer.from([0x05, 0x00, 0x00])), { message: /trailing/ });
  t.throws(() => children(parseDer(Buffer.from([0x04, 0x00]))), { message: /constructed/ });
});

test('malformed certificates: truncation and byte damage throw DerError, never garbage', (t) => {
  const der = snpFile('test-vcek.der');
  for (const cut of [1, 10, 100, der.length - 1]) {
    t.throws(() => certificateExtensions(der.subarray(0, cut)), { instanceOf: DerError }, `cut ${cut}`);
  }
  const damaged = Buffer.from(der);
  damaged[1] = 0x85; // outer length octet count
  t.throws(() => certificateExtensions(damaged), { instanceOf: DerError });
  t.throws(() => certificateExtensions(Buffer.concat([der, Buffer.from([0])])), { message: /trailing/ });
});

test('parseCrl: an openssl CRL with two revoked serials, dates and issuer', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'der-crl-'));
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  try {
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'crlnumber'), '10\n');
    writeFileSync(
      join(dir, 'ca.cnf'),
      `[ca]\ndefault_ca=c\n[c]\ndatabase=${join(dir, 'index.txt')}\ncrlnumber=${join(dir, 'crlnumber')}\ncertificate=${join(dir, 'ca.pem')}\nprivate_key=${join(dir, 'ca.key')}\ndefault_md=sha256\ndefault_crl_days=7\n`,
    );
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-subj', '/CN=Test CRL CA', '-days', '7', '-out', 'ca.pem');
    for (const serial of ['0100', '7F']) {
      run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${serial}.key`, '-subj', `/CN=leaf${serial}`, '-out', `${serial}.csr`);
      run('x509', '-req', '-in', `${serial}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${serial}`, '-days', '7', '-out', `${serial}.pem`);
      run('ca', '-config', 'ca.cnf', '-revoke', `${serial}.pem`);
    }
    run('ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem');
    run('crl', '-in', 'crl.pem', '-outform', 'DER', '-out', 'crl.der');
    const crl = parseCrl(readFileSync(join(dir, 'crl.der')));
    t.deepEqual([...crl.revoked].sort(), ['0100', '7f']);
    t.is(crl.signatureAlgorithm, '1.2.840.10045.4.3.2');
    t.true(crl.issuer.toString('latin1').includes('Test CRL CA'));
    t.true(crl.nextUpdate !== undefined && crl.nextUpdate.getTime() - crl.thisUpdate.getTime() === 7 * 86_400_000);
    t.throws(() => parseCrl(readFileSync(join(dir, 'crl.der')).subarray(0, 50)), { instanceOf: DerError });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
