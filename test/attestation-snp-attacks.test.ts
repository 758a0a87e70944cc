/**
 * SEV-SNP attacks: a self-made ARK/ASK/VCEK chain in cert_chain (the ARK substitution attack),
 * a genuine ARK/ASK alongside a forged VCEK, and random byte flips of the positive vectors.
 */
import test from 'ava';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';
import { AttestationFailure } from '../attestation/types.js';
import {
  builtinAnchors,
  parseSnpEvidence,
  parseSnpReport,
  snpReportToEvidenceJson,
  SnpVerifier,
  verifySnpReportWithCert,
  SNP_SIGNED_SIZE,
} from '../attestation/snp/index.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const snpFile = (name: string): Buffer => readFileSync(join(VECTORS, 'snp', name));
const e2e = (): Record<string, unknown> => JSON.parse(snpFile('e2e-evidence.json').toString('utf8')) as Record<string, unknown>;
const NOW = new Date('2025-06-01T00:00:00Z');

/** A forged Genoa chain made with openssl: ARK (self-signed RSA), ASK, and a P-384 "VCEK" with AMD's TCB extensions. */
function forgeChain(chipIdHex: string): { ark: Buffer; ask: Buffer; vcek: Buffer; vcekKey: string } {
  const dir = mkdtempSync(join(tmpdir(), 'snp-forge-'));
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  try {
    writeFileSync(
      join(dir, 'ext.cnf'),
      [
        '[ca]',
        'basicConstraints=critical,CA:TRUE',
        'keyUsage=critical,keyCertSign,cRLSign',
        '[vcek]',
        '1.3.6.1.4.1.3704.1.3.1=ASN1:INTEGER:10',
        '1.3.6.1.4.1.3704.1.3.2=ASN1:INTEGER:0',
        '1.3.6.1.4.1.3704.1.3.3=ASN1:INTEGER:23',
        '1.3.6.1.4.1.3704.1.3.8=ASN1:INTEGER:25',
        `1.3.6.1.4.1.3704.1.4=ASN1:FORMAT:HEX,OCTETSTRING:${chipIdHex}`,
        '',
      ].join('\n'),
    );
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ark.key', '-subj', '/CN=ARK-Genoa', '-days', '3650', '-out', 'ark.pem', '-extensions', 'ca', '-config', 'ext.cnf', '-set_serial', '1');
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ask.key', '-subj', '/CN=SEV-Genoa', '-out', 'ask.csr');
    run('x509', '-req', '-in', 'ask.csr', '-CA', 'ark.pem', '-CAkey', 'ark.key', '-set_serial', '2', '-days', '3650', '-extfile', 'ext.cnf', '-extensions', 'ca', '-out', 'ask.pem');
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', 'vcek.key', '-subj', '/CN=SEV-VCEK', '-out', 'vcek.csr');
    run('x509', '-req', '-in', 'vcek.csr', '-CA', 'ask.pem', '-CAkey', 'ask.key', '-set_serial', '3', '-days', '3650', '-extfile', 'ext.cnf', '-extensions', 'vcek', '-out', 'vcek.pem');
    const der = (name: string): Buffer => {
      run('x509', '-in', `${name}.pem`, '-outform', 'DER', '-out', `${name}.der`);
      return readFileSync(join(dir, `${name}.der`));
    };
    return { ark: der('ark'), ask: der('ask'), vcek: der('vcek'), vcekKey: readFileSync(join(dir, 'vcek.key'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The e2e report with new report_data, signed by `keyPem`, as sev JSON. */
function resignedReport(keyPem: string, reportData: Buffer): Record<string, unknown> {
  const { report } = parseSnpEvidence(e2e());
  const json = snpReportToEvidenceJson(report);
  json['report_data'] = [...reportData];
  const unsigned = parseSnpEvidence({ attestation_report: json }).report;
  const sig = sign('sha384', unsigned.raw.subarray(0, SNP_SIGNED_SIZE), { key: createPrivateKey(keyPem), dsaEncoding: 'ieee-p1363' });
  const le = (b: Buffer): number[] => [...Buffer.concat([Buffer.from(b).reverse(), Buffer.alloc(24)])];
  json['signature'] = { r: le(sig.subarray(0, 48)), s: le(sig.subarray(48)) };
  return json;
}

test('ARK substitution: a self-made ARK/ASK/VCEK chain in cert_chain is not trusted', async (t) => {
  const chip = parseSnpEvidence(e2e()).report.chipId.toString('hex');
  const forged = forgeChain(chip);
  const wanted = Buffer.alloc(64, 0xab);
  const json = resignedReport(forged.vcekKey, wanted);
  // Sanity: the forged report is internally consistent (its own VCEK key verifies it) ...
  const report = parseSnpEvidence({ attestation_report: json }).report;
  t.true(report.reportData.equals(wanted));
  const v = new SnpVerifier();
  const chains = [
    [{ cert_type: 'ARK', data: [...forged.ark] }, { cert_type: 'ASK', data: [...forged.ask] }, { cert_type: 'VCEK', data: [...forged.vcek] }],
    [{ cert_type: 'VCEK', data: [...forged.vcek] }],
    // Genuine ARK and ASK beside the forged VCEK.
    [
      { cert_type: 'ARK', data: [...builtinAnchors('Genoa').ark.der] },
      { cert_type: 'ASK', data: [...builtinAnchors('Genoa').ask.der] },
      { cert_type: 'VCEK', data: [...forged.vcek] },
    ],
  ];
  for (const chain of chains) {
    const e = await t.throwsAsync(v.evaluate({ attestation_report: json, cert_chain: chain }, { now: NOW, reportData: wanted }));
    t.true(e instanceof AttestationFailure);
    t.is((e as AttestationFailure).step, 'certificate-chain');
  }
  // And the component function refuses the forged VCEK directly.
  t.throws(() => verifySnpReportWithCert(report, forged.vcek, { now: NOW }), { instanceOf: AttestationFailure });
});

test('cert_chain: a foreign ARK/ASK is ignored (reported in metadata) and the genuine VCEK still verifies', async (t) => {
  const chip = parseSnpEvidence(e2e()).report.chipId.toString('hex');
  const forged = forgeChain(chip);
  const ev = e2e();
  const chain = ev['cert_chain'] as unknown[];
  ev['cert_chain'] = [{ cert_type: 'ARK', data: [...forged.ark] }, { cert_type: 'ASK', data: [...forged.ask] }, ...chain];
  const result = await new SnpVerifier().evaluate(ev, { now: NOW });
  t.deepEqual(result.metadata.ignoredCertificates, ['ARK', 'ASK']);
});

/** Offsets whose bytes are carried by the sev JSON and covered by the signature (or are the signature). */
function meaningfulOffsets(): number[] {
  const reserved = (o: number): boolean =>
    (o >= 0x4c && o < 0x50) ||
    (o >= 0x18b && o < 0x1a0) ||
    o === 0x1eb ||
    o === 0x1ef ||
    (o >= 0x1f8 && o < 0x2a0) ||
    [0x38, 0x180, 0x1e0, 0x1f0].some((tcb) => o >= tcb + 2 && o < tcb + 6);
  const out: number[] = [];
  for (let o = 0; o < 0x330; o++) if (!reserved(o)) out.push(o);
  return out;
}

test('property: flipping any meaningful byte of e2e-evidence.json is rejected with an AttestationFailure', async (t) => {
  const ev = e2e();
  const { report } = parseSnpEvidence(ev);
  const offsets = meaningfulOffsets();
  const v = new SnpVerifier();
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...offsets), fc.integer({ min: 1, max: 255 }), async (offset, xor) => {
      const raw = Buffer.from(report.raw);
      raw[offset] = (raw[offset] as number) ^ xor;
      let json: Record<string, unknown>;
      try {
        json = snpReportToEvidenceJson(parseSnpReport(raw));
      } catch (e) {
        // Unparseable (AttestationFailure), or a u64 above 2^53 that JSON numbers cannot carry.
        return e instanceof AttestationFailure || e instanceof RangeError;
      }
      try {
        await v.evaluate({ attestation_report: json, cert_chain: ev['cert_chain'] }, { now: NOW });
        return false;
      } catch (e) {
        return e instanceof AttestationFailure;
      }
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('property: flipping any byte of the binary reports fails the component check (VCEK v2 and VLEK v3)', (t) => {
  const cases = [
    { bin: snpFile('test-report.bin'), cert: snpFile('test-vcek.der'), opts: { checkVersion: false, generation: 'Milan' as const } },
    { bin: snpFile('test-vlek-report.bin'), cert: snpFile('test-vlek.der'), opts: {} },
  ];
  for (const c of cases) t.notThrows(() => verifySnpReportWithCert(c.bin, c.cert, { now: NOW, ...c.opts }));
  fc.assert(
    fc.property(fc.constantFrom(0, 1), fc.integer({ min: 0, max: 0x4a0 - 1 }), fc.integer({ min: 1, max: 255 }), (i, offset, xor) => {
      const c = cases[i] as (typeof cases)[number];
      const raw = Buffer.from(c.bin);
      raw[offset] = (raw[offset] as number) ^ xor;
      try {
        verifySnpReportWithCert(raw, c.cert, { now: NOW, ...c.opts });
        return false;
      } catch (e) {
        return e instanceof AttestationFailure;
      }
    }),
    { numRuns: 500 },
  );
  t.pass();
});
