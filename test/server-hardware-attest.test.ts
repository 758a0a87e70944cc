/**
 * The hardware verifiers behind `POST /kbs/v0/attest`, over HTTP on a real server: real SNP, TDX and
 * Azure vTPM evidence reaches its verifier, and a refusal names the failing step in the problem
 * body, with the session left unattested (no token, no resource).
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { packageRoot } from '../policy/samples.js';
import { startTestKbs, type TestKbs } from './helpers/kbs-server.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const vector = (rel: string): unknown => JSON.parse(readFileSync(join(VECTORS, rel), 'utf8'));
const OFFLINE = '[attestation_service.verifier_config]\noffline = true\n[admin]\nauthorization_mode = "InsecureAllowAll"\n';

async function handshake(kbs: TestKbs, tee: string, evidence: unknown): Promise<{ attest: Response; cookie: string; body: { type?: string; detail?: string } }> {
  const auth = await fetch(`${kbs.url}/kbs/v0/auth`, {
    method: 'POST',
    body: JSON.stringify({ version: '0.4.0', tee, 'extra-params': {} }),
  });
  if (auth.status !== 200) throw new Error(`auth ${auth.status}`);
  const cookie = (auth.headers.get('set-cookie') ?? '').split(';')[0] as string;
  const { nonce } = (await auth.json()) as { nonce: string };
  const attest = await fetch(`${kbs.url}/kbs/v0/attest`, {
    method: 'POST',
    headers: { Cookie: cookie, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      'runtime-data': { nonce, 'tee-pubkey': TeeKeyPair.generate().publicJwk() },
      'tee-evidence': { primary_evidence: evidence, additional_evidence: '' },
    }),
  });
  const text = await attest.text();
  return { attest, cookie, body: text === '' ? {} : (JSON.parse(text) as { type?: string; detail?: string }) };
}

test('real SNP, TDX and Azure vTPM evidence reach their verifiers; refusals name the step', async (t) => {
  const kbs = await startTestKbs({ toml: OFFLINE });
  try {
    // Genuine evidence, but bound to another nonce: each verifier gets as far as the binding.
    const cases: Array<[string, string, RegExp]> = [
      ['snp', 'snp/e2e-evidence.json', /report-data/],
      ['tdx', 'tdx/evidence-quote4.json', /report-data|report_data/i],
      ['az-snp-vtpm', 'az-snp-vtpm/evidence-v1.json', /tpm-nonce/],
      ['az-tdx-vtpm', 'az-tdx-vtpm/evidence-v1.json', /tpm-nonce/],
      ['sgx', 'sgx/evidence-occlum.json', /report-data|report_data/i],
    ];
    for (const [tee, file, step] of cases) {
      const r = await handshake(kbs, tee, vector(file));
      t.is(r.attest.status, 401, tee);
      t.is(r.body.type, 'https://github.com/confidential-containers/kbs/errors/AttestationError', tee);
      t.regex(r.body.detail ?? '', /^Attestation error: RCAR handshake Attest failed: /, tee);
      t.regex(r.body.detail ?? '', step, `${tee}: ${r.body.detail}`);
      const get = await fetch(`${kbs.url}/kbs/v0/resource/default/key/one`, { headers: { Cookie: r.cookie } });
      t.is(get.status, 401, `${tee}: an unattested session releases nothing`);
    }
    // Malformed evidence for a hardware TEE: a clean evidence-format refusal, and the server keeps serving.
    const junk = await handshake(kbs, 'snp', { attestation_report: 'nope' });
    t.is(junk.attest.status, 401);
    t.regex(junk.body.detail ?? '', /evidence/);
    t.is((await fetch(`${kbs.url}/healthz`)).status, 200);
  } finally {
    await kbs.close();
  }
});
