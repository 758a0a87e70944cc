/**
 * The az-tdx-vtpm verifier end to end on the real vectors (shared/vectors/az-tdx-vtpm). Offline
 * there is no Intel collateral for FMSPC 00806F050000, so the DCAP verdict is `tcb_status:
 * "Unknown"` (intel-dcap README); everything else (TPM quote, TD quote signatures and PCK chain,
 * var_data binding) is checked for real.
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';
import { AttestationFailure, type Claims } from '../attestation/types.js';
import { AzTdxVtpmVerifier } from '../attestation/az-tdx-vtpm/verifier.js';
import { VAR_DATA_OFFSET } from '../attestation/az-vtpm/hcl.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const read = (...p: string[]): Buffer => readFileSync(join(VECTORS, ...p));
const readJson = (...p: string[]): Record<string, unknown> => JSON.parse(read(...p).toString('utf8')) as Record<string, unknown>;

const NOW = new Date('2026-01-01T00:00:00Z');
const CHALLENGE = Buffer.from('challenge');
const v0 = readJson('az-tdx-vtpm', 'evidence-v0.json');
const v1 = readJson('az-tdx-vtpm', 'evidence-v1.json');
const TD_QUOTE = read('az-tdx-vtpm', 'td-quote.bin');
/** td-quote.bin is a 4936-byte v4 quote followed by 70 zero bytes no parser reads. */
const QUOTE_END = 4936;

const verifier = new AzTdxVtpmVerifier();
const b64u = (b: Buffer): string => b.toString('base64url');
const unb64u = (s: unknown): Buffer => Buffer.from(s as string, 'base64url');
type Quote = { signature: string; message: string; pcrs: string[] };
const q1 = v1['tpm_quote'] as Quote;

async function rejectsAt(t: ExecutionContext, p: Promise<unknown>, step: string): Promise<void> {
  const e = await t.throwsAsync(p, { instanceOf: AttestationFailure });
  t.is(e?.step, step, e?.message);
}

function flip(b: Buffer, i: number, mask = 1): Buffer {
  const out = Buffer.from(b);
  out[i] = (out[i] as number) ^ mask;
  return out;
}

test('v0 and v1 verify with report data "challenge"; claims follow upstream (TDX + tpm + DCAP)', async (t) => {
  for (const ev of [v0, v1]) {
    const claims = await verifier.verify(ev, CHALLENGE, undefined, NOW);
    t.is(claims['report_data'], '6368616c6c656e6765');
    t.is((claims['tpm'] as Claims)['pcr00'], '782b20b10f55cc46e2142cc2145d548698073e5beb82752c8d7f9279f0d8a273');
    t.is(claims['init_data'], (claims['tpm'] as Claims)['pcr08']);
    t.is(claims['tcb_status'], 'Unknown');
    const keys = Object.keys(claims);
    t.deepEqual(keys.slice(0, 6), ['quote', 'td_attributes', 'report_data', 'init_data', 'platform_instance_id', 'tpm']);
    t.true(keys.includes('root_key_id') && keys.indexOf('root_key_id') > keys.indexOf('tpm'));
    // The TD quote's own report_data is sha256(var_data) ‖ 0³², visible in quote.body.
    const body = (claims['quote'] as Claims)['body'] as Claims;
    t.is((body['report_data'] as string).slice(64), '0'.repeat(64));
  }
});

test('report data is required and must equal the quote nonce', async (t) => {
  await rejectsAt(t, verifier.evaluate(v1, { now: NOW }), 'report-data');
  await rejectsAt(t, verifier.verify(v1, Buffer.from('123abc', 'hex'), undefined, NOW), 'tpm-nonce');
});

test('negative: TPM, TD quote, var_data and certificate dates', async (t) => {
  const hcl = unb64u(v1['hcl_report']);
  const vmId = hcl.indexOf('"vmUniqueId":"') + 14;
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['flipped TPM signature', { ...v1, tpm_quote: { ...q1, signature: flip(Buffer.from(q1.signature, 'hex'), 3).toString('hex') } }, 'tpm-signature'],
    ['flipped PCR', { ...v1, tpm_quote: { ...q1, pcrs: q1.pcrs.map((p, i) => (i === 4 ? flip(Buffer.from(p, 'hex'), 9).toString('hex') : p)) } }, 'pcr-digest'],
    ['flipped TD quote body byte', { ...v1, td_quote: b64u(flip(TD_QUOTE, 48 + 136)) }, 'tdx-quote-signature'],
    ['another genuine TD quote', { ...v1, td_quote: b64u(read('tdx', 'tdx_quote_6.dat')) }, 'hcl-binding'],
    ['an SGX quote', { ...v1, td_quote: b64u(read('sgx', 'occlum_quote.dat')) }, 'tdx-quote-format'],
    ['tampered var_data', { ...v1, hcl_report: b64u(flip(hcl, vmId)) }, 'hcl-binding'],
    ['HCL with an SNP report', { ...v1, hcl_report: b64u(read('az-snp-vtpm', 'hcl-report.bin')) }, 'evidence-format'],
  ];
  for (const [name, ev, step] of cases) {
    const e = await t.throwsAsync(verifier.verify(ev, CHALLENGE, undefined, NOW), { instanceOf: AttestationFailure }, name);
    t.is(e?.step, step, `${name}: ${e?.message}`);
  }
  await rejectsAt(t, verifier.verify(v1, CHALLENGE, undefined, new Date('2060-01-01T00:00:00Z')), 'tdx-pck-certificate');
  await rejectsAt(t, verifier.verify(v1, CHALLENGE, Buffer.alloc(32, 7), NOW), 'init-data');
});

/**
 * Bytes no check depends on: the HCL header after "HCLA", the whole hardware-report slot (the TD
 * report is not used: its MAC cannot be checked off the platform and the TD quote carries the same
 * report data), the IGVM data_size and version, the padding after var_data, and the TD quote's
 * trailing bytes.
 */
function unsignedHclByte(hcl: Buffer, i: number): boolean {
  const varEnd = VAR_DATA_OFFSET + hcl.readUInt32LE(VAR_DATA_OFFSET - 4);
  return (i >= 4 && i < VAR_DATA_OFFSET - 20) || (i >= VAR_DATA_OFFSET - 20 && i < VAR_DATA_OFFSET - 12) || i >= varEnd;
}

test('property (v1): flipped bytes are rejected unless provably unused', async (t) => {
  const hcl = unb64u(v1['hcl_report']);
  /** The TD quote up to the QE report signature: header, body, quote signature, key, QE report. */
  const quoteSigned = 48 + 584 + 4 + 64 + 64 + 6 + 384 + 64;
  const arb = fc.record({
    part: fc.constantFrom('hcl', 'hcl', 'quote', 'quote-tail', 'signature', 'message', 'pcr'),
    pos: fc.nat(),
    mask: fc.integer({ min: 1, max: 255 }),
  });
  await fc.assert(
    fc.asyncProperty(arb, async ({ part, pos, mask }) => {
      let ev: Record<string, unknown>;
      let unsigned = false;
      if (part === 'hcl') {
        const i = pos % hcl.length;
        ev = { ...v1, hcl_report: b64u(flip(hcl, i, mask)) };
        unsigned = unsignedHclByte(hcl, i);
      } else if (part === 'quote') {
        ev = { ...v1, td_quote: b64u(flip(TD_QUOTE, pos % quoteSigned, mask)) };
      } else if (part === 'quote-tail') {
        ev = { ...v1, td_quote: b64u(flip(TD_QUOTE, QUOTE_END + (pos % (TD_QUOTE.length - QUOTE_END)), mask)) };
        unsigned = true;
      } else if (part === 'pcr') {
        const pcrs = q1.pcrs.map((p, i) => (i === pos % 24 ? flip(Buffer.from(p, 'hex'), pos % 32, mask).toString('hex') : p));
        ev = { ...v1, tpm_quote: { ...q1, pcrs } };
      } else {
        const key = part as 'signature' | 'message';
        const b = Buffer.from(q1[key], 'hex');
        ev = { ...v1, tpm_quote: { ...q1, [key]: flip(b, pos % b.length, mask).toString('hex') } };
      }
      try {
        await verifier.verify(ev, CHALLENGE, undefined, NOW);
        return unsigned;
      } catch (e) {
        return !unsigned && e instanceof AttestationFailure;
      }
    }),
    { numRuns: 300 },
  );
  t.pass();
});
