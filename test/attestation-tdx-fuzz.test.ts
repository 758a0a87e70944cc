/**
 * Mutation property over every positive DCAP quote vector: flipping any byte either rejects the
 * quote with an AttestationFailure or, for bytes outside what the signatures and the structure
 * cover (the PEM text of the certification data, padding after the quote), yields identical claims.
 * Every byte before the PEM chain (header, body, lengths, signatures, keys, QE report, QE auth
 * data, type fields) must reject. No other exception type may escape.
 */
import test from 'ava';
import fc from 'fast-check';
import { IntelCollateral, parseQuote, verifySgxQuote, verifyTdQuote } from '../attestation/intel-dcap/index.js';
import { isAttestationFailure } from '../attestation/types.js';
import { vec } from './dcap-helpers.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const collateral = new IntelCollateral({});

for (const [file, kind] of [
  ['tdx/tdx_quote_4.dat', 'tdx'],
  ['tdx/tdx_quote_6.dat', 'tdx'],
  ['az-tdx-vtpm/td-quote.bin', 'tdx'],
  ['sgx/occlum_quote.dat', 'sgx'],
] as const) {
  test(`byte flips of ${file}: rejected, or identical when outside the covered bytes`, async (t) => {
    const original = vec(file);
    const run = (q: Buffer) => (kind === 'tdx' ? verifyTdQuote(q, NOW, collateral) : verifySgxQuote(q, NOW, collateral));
    const baseline = JSON.stringify((await run(original)).claims);
    const parsed = parseQuote(original);
    const pemStart = parsed.length - parsed.sig.pckChainPem.length;
    let rejected = 0;
    let identical = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: original.length - 1 }), fc.integer({ min: 1, max: 255 }), async (pos, xor) => {
        const q = Buffer.from(original);
        q[pos] = (q[pos] as number) ^ xor;
        try {
          const claims = JSON.stringify((await run(q)).claims);
          if (pos < pemStart) return false; // covered bytes must never verify after a change
          identical++;
          return claims === baseline;
        } catch (e) {
          rejected++;
          return isAttestationFailure(e);
        }
      }),
      { numRuns: 300 },
    );
    // Flips in the covered prefix dominate, so most mutants are rejected.
    t.true(rejected > identical);
    // Explicitly: every byte of the signed region and signature data up to the PEM rejects (stride sample).
    for (let pos = 0; pos < pemStart; pos += 7) {
      const q = Buffer.from(original);
      q[pos] = (q[pos] as number) ^ 0x01;
      const e = await t.throwsAsync(run(q));
      t.true(isAttestationFailure(e), `byte ${pos}`);
    }
    // Padding after the quote is not covered: any value there verifies identically.
    const padded = Buffer.concat([original.subarray(0, parsed.length), Buffer.alloc(16, 0x5a)]);
    t.is(JSON.stringify((await run(padded)).claims), baseline);
  });
}
