/**
 * The TPM pieces on real vectors (shared/vectors/az-snp-vtpm, az-tdx-vtpm, tpm): TPMS_ATTEST and
 * TPMT_SIGNATURE parsing, the AK signature, the PCR digest, the nonce, PCR8 against init-data, the
 * bincode quote form, and the generic `tpm` verifier.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';
import { AttestationFailure } from '../attestation/types.js';
import { parseQuoteAttest, TpmParseError } from '../attestation/tpm/attest.js';
import { parseTpmtSignature } from '../attestation/tpm/signature.js';
import {
  parseQuoteMessage,
  verifyInitDataPcr,
  verifyPcrDigest,
  verifyQuoteNonce,
  verifyQuoteSignature,
  type TpmQuote,
} from '../attestation/tpm/quote.js';
import { TpmVerifier } from '../attestation/tpm/verifier.js';
import { decodeBincodeQuote } from '../attestation/az-vtpm/codec.js';
import { hclAkPub, parseHclReport } from '../attestation/az-vtpm/hcl.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const read = (...p: string[]): Buffer => readFileSync(join(VECTORS, ...p));
const readJson = (...p: string[]): Record<string, unknown> => JSON.parse(read(...p).toString('utf8')) as Record<string, unknown>;

function hexQuote(dir: string): TpmQuote {
  const q = readJson(dir, 'tpm-quote-v1.json') as { signature: string; message: string; pcrs: string[] };
  return {
    signature: Buffer.from(q.signature, 'hex'),
    message: Buffer.from(q.message, 'hex'),
    pcrs: q.pcrs.map((p) => Buffer.from(p, 'hex')),
  };
}

const CHALLENGE = Buffer.from('challenge');
const DIRS = ['az-snp-vtpm', 'az-tdx-vtpm'] as const;

function step(t: ExecutionContext, fn: () => unknown, name: string): void {
  const e = t.throws(fn, { instanceOf: AttestationFailure });
  t.is(e?.step, name);
}

for (const dir of DIRS) {
  test(`${dir}: the quote is a TPMS_ATTEST quote over SHA-256 PCRs 0-23 with nonce "challenge"`, (t) => {
    const quote = hexQuote(dir);
    const attest = parseQuoteAttest(quote.message);
    t.deepEqual(attest.extraData, CHALLENGE);
    t.deepEqual(attest.pcrSelections, [{ hash: 0x000b, pcrs: [...Array(24).keys()] }]);
    t.is(attest.pcrDigest.length, 32);
    t.is(attest.qualifiedSigner.length, 34);
  });

  test(`${dir}: signature by the HCL AK, PCR digest and nonce verify`, (t) => {
    const quote = hexQuote(dir);
    const ak = hclAkPub(parseHclReport(read(dir, 'hcl-report.bin')));
    t.notThrows(() => verifyQuoteSignature(quote, ak));
    const attest = parseQuoteMessage(quote);
    t.deepEqual([...verifyPcrDigest(quote, attest)], [...Array(24).keys()]);
    t.notThrows(() => verifyQuoteNonce(attest, CHALLENGE));
  });

  test(`${dir}: a flipped signature or message byte fails tpm-signature`, (t) => {
    const quote = hexQuote(dir);
    const ak = hclAkPub(parseHclReport(read(dir, 'hcl-report.bin')));
    for (const i of [0, 100, 255]) {
      const signature = Buffer.from(quote.signature);
      signature[i] = (signature[i] as number) ^ 1;
      step(t, () => verifyQuoteSignature({ ...quote, signature }, ak), 'tpm-signature');
    }
    const message = Buffer.from(quote.message);
    message[40] = (message[40] as number) ^ 0x80;
    step(t, () => verifyQuoteSignature({ ...quote, message }, ak), 'tpm-signature');
    step(t, () => verifyQuoteSignature({ ...quote, signature: quote.signature.subarray(1) }, ak), 'tpm-signature');
  });

  test(`${dir}: a flipped PCR, a missing PCR or a wrong nonce is rejected`, (t) => {
    const quote = hexQuote(dir);
    const attest = parseQuoteMessage(quote);
    for (const i of [0, 8, 23]) {
      const pcrs = quote.pcrs.map((p) => Buffer.from(p));
      (pcrs[i] as Buffer)[0] = ((pcrs[i] as Buffer)[0] as number) ^ 1;
      step(t, () => verifyPcrDigest({ ...quote, pcrs }, attest), 'pcr-digest');
    }
    step(t, () => verifyPcrDigest({ ...quote, pcrs: quote.pcrs.slice(0, 23) }, attest), 'pcr-digest');
    step(t, () => verifyQuoteNonce(attest, Buffer.from('egnellahc')), 'tpm-nonce');
    step(t, () => verifyQuoteNonce(attest, Buffer.from('challenge\0')), 'tpm-nonce');
  });

  test(`${dir}: quote.bin is the bincode form of tpm-quote-v1.json`, (t) => {
    const bin = read(dir, 'quote.bin');
    t.deepEqual(decodeBincodeQuote(bin), hexQuote(dir));
    t.is(decodeBincodeQuote(bin.subarray(0, bin.length - 1)), undefined);
    t.is(decodeBincodeQuote(Buffer.concat([bin, Buffer.alloc(1)])), undefined);
    const huge = Buffer.from(bin);
    huge.writeBigUInt64LE(1n << 40n, 0);
    t.is(decodeBincodeQuote(huge), undefined);
  });
}

test('init-data: PCR8 must be SHA-256(0^32 || digest) (upstream vector 8505…→bdda…)', (t) => {
  const quote = hexQuote('az-snp-vtpm');
  const indices = [...Array(24).keys()];
  const digest = Buffer.from('8505e4e25e50a27c5dc8147af88efbece627fbea55291911eff832d9ee127781', 'hex');
  const pcrs = [...quote.pcrs];
  pcrs[8] = Buffer.from('bddaccb9c52249e97a31baea61b7d91be8221a16e703d92148d04fb8e9c1dfdd', 'hex');
  t.notThrows(() => verifyInitDataPcr(pcrs, indices, digest));
  const other = Buffer.from(digest);
  other[0] = (other[0] as number) ^ 1;
  step(t, () => verifyInitDataPcr(pcrs, indices, other), 'init-data');
  // Quirk (d): only 32-byte digests can bind; a sha384 init-data digest is refused with a reason.
  const e = t.throws(() => verifyInitDataPcr(pcrs, indices, Buffer.alloc(48)), { instanceOf: AttestationFailure });
  t.regex(e?.message ?? '', /32-byte \(sha256\)/);
  step(t, () => verifyInitDataPcr(pcrs.slice(0, 8), indices.slice(0, 8), digest), 'init-data');
});

test('TPMS_ATTEST parser: strict about magic, type, sizes and trailing bytes', (t) => {
  const msg = hexQuote('az-snp-vtpm').message;
  const bad = (mutate: (b: Buffer) => Buffer, re: RegExp): void => {
    const e = t.throws(() => parseQuoteAttest(mutate(Buffer.from(msg))), { instanceOf: TpmParseError });
    t.regex(e?.message ?? '', re);
  };
  bad((b) => ((b[0] = 0), b), /magic/);
  bad((b) => ((b[5] = 0x17), b), /not a quote/);
  bad((b) => Buffer.concat([b, Buffer.alloc(1)]), /trailing/);
  bad((b) => b.subarray(0, b.length - 1), /truncated/);
  bad((b) => b.subarray(0, 3), /truncated/);
  bad((b) => (b.writeUInt16BE(0xffff, 6), b), /qualifiedSigner is larger/);
  // safe flag (offset after magic, type, name, extraData, clock, reset, restart)
  const safeAt = 4 + 2 + 2 + 34 + 2 + 9 + 8 + 4 + 4;
  bad((b) => ((b[safeAt] = 2), b), /TPMI_YES_NO/);
  t.throws(() => parseQuoteAttest(new Uint8Array(0)), { instanceOf: TpmParseError });
});

test('tpm-quote.msg/.sig (orphan legacy quote): parses, but no AK in the vectors verifies it', (t) => {
  const message = read('az-snp-vtpm', 'tpm-quote.msg');
  const signature = read('az-snp-vtpm', 'tpm-quote.sig');
  const attest = parseQuoteAttest(message);
  t.deepEqual(attest.extraData, CHALLENGE);
  t.deepEqual(attest.pcrSelections, [{ hash: 0x000b, pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 14] }]);
  for (const dir of DIRS) {
    const ak = hclAkPub(parseHclReport(read(dir, 'hcl-report.bin')));
    step(t, () => verifyQuoteSignature({ message, signature, pcrs: [] }, ak), 'tpm-signature');
  }
});

const tpmEvidence = readJson('tpm', 'tpm_evidence.json') as { ak_public: string; tpm_quote: Record<string, unknown> };

test('TPMT_SIGNATURE: RSASSA/SHA-256 only, exact size', (t) => {
  const sig = Buffer.from(tpmEvidence.tpm_quote['signature'] as string, 'base64');
  t.is(parseTpmtSignature(sig).length, 256);
  const pss = Buffer.from(sig);
  pss[1] = 0x16;
  t.throws(() => parseTpmtSignature(pss), { instanceOf: TpmParseError, message: /not RSASSA/ });
  const sha1 = Buffer.from(sig);
  sha1[3] = 0x04;
  t.throws(() => parseTpmtSignature(sha1), { instanceOf: TpmParseError, message: /not SHA-256/ });
  t.throws(() => parseTpmtSignature(Buffer.concat([sig, Buffer.alloc(1)])), { instanceOf: TpmParseError });
});

test('tpm verifier: tpm_evidence.json verifies without report data; its 64-byte nonce cannot bind', async (t) => {
  const v = new TpmVerifier();
  const claims = await v.evaluate(tpmEvidence, {});
  t.is(claims['ak_public'], tpmEvidence.ak_public);
  t.is(claims['report_data'], `a04182b506878d4f29b91ee606a71a0d3361ccf1b22db20c98adcaa537bea393ef0e41a18b3569ab678f1497fbc5c120${'0'.repeat(32)}`);
  t.is(claims['init_data'], claims['pcr08']);
  t.deepEqual(Object.keys(claims).slice(0, 4), ['init_data', 'report_data', 'ak_public', 'pcr00']);
  t.is(Object.keys(claims).length, 27);
  const nonce = Buffer.from(claims['report_data'] as string, 'hex');
  for (const rd of [nonce, nonce.subarray(0, 48), nonce.subarray(0, 32)]) {
    const e = await t.throwsAsync(v.verify(tpmEvidence, rd, undefined, new Date()), { instanceOf: AttestationFailure });
    t.is(e?.step, 'tpm-nonce');
  }
});

test('tpm verifier: tampering and malformed evidence', async (t) => {
  const v = new TpmVerifier();
  const q = tpmEvidence.tpm_quote;
  const pcrs = [...(q['pcrs'] as string[])];
  pcrs[3] = (pcrs[3] as string).replace(/^./, (c) => (c === '0' ? '1' : '0'));
  const cases: Array<[unknown, string]> = [
    [{ ...tpmEvidence, tpm_quote: { ...q, pcrs } }, 'pcr-digest'],
    [{ ...tpmEvidence, tpm_quote: { ...q, message: Buffer.from('x').toString('base64') } }, 'tpm-signature'],
    [{ ...tpmEvidence, ak_public: 'AAAA' }, 'evidence-format'],
    [{ ...tpmEvidence, tpm_quote: { ...q, pcrs: ['00'] } }, 'evidence-format'],
    [{ tpm_quote: q }, 'evidence-format'],
    [[], 'evidence-format'],
  ];
  for (const [ev, name] of cases) {
    const e = await t.throwsAsync(v.evaluate(ev, {}), { instanceOf: AttestationFailure });
    t.is(e?.step, name);
  }
  const e = await t.throwsAsync(v.evaluate(tpmEvidence, { initDataHash: Buffer.alloc(32) }), { instanceOf: AttestationFailure });
  t.is(e?.step, 'init-data');
});
