/**
 * Every Rego policy found in upstream Trustee (20 .rego files and the inline policies from tests,
 * scripts and docs, see test/fixtures/policy/manifest.json and docs/policy.md §1) must compile, or be
 * rejected at upload with a positioned PolicyError when the manifest says so.
 */
import test from 'ava';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

import { compile } from '../policy/index.js';
import { PolicyError } from '../policy/errors.js';
import { packageRoot } from '../policy/samples.js';


const ROOT = packageRoot();
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'policy');
const SAMPLES = path.join(ROOT, 'policy', 'samples');

interface ManifestEntry {
  file: string;
  source: string;
  role: 'kbs' | 'as' | 'legacy';
  expect: 'compile' | 'reject';
  reason?: string;
  line?: number;
  note?: string;
}

const manifest = JSON.parse(readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8')) as ManifestEntry[];
const COMPILE_OPTIONS = { hostFunctions: { query_reference_value: 1 } };
const REJECT_CODES = ['POLICY_SYNTAX', 'POLICY_UNSUPPORTED', 'POLICY_COMPILE'];

function readFixture(file: string): string {
  return readFileSync(path.join(FIXTURES, file), 'utf8');
}

test('manifest lists the 20 upstream files and the inline policies, each once', (t) => {
  const files = manifest.map((e) => e.file);
  t.is(new Set(files).size, files.length, 'duplicate manifest entries');
  t.is(files.filter((f) => f.startsWith('upstream/')).length, 20);
  t.true(files.filter((f) => f.startsWith('inline/')).length >= 18);
  for (const e of manifest) {
    t.true(existsSync(path.join(FIXTURES, e.file)), `${e.file} is missing`);
    t.regex(e.source, /^[^:]+:\d+-\d+$/, `${e.file}: source must be "path:first-last"`);
    t.true(['kbs', 'as', 'legacy'].includes(e.role), `${e.file}: role`);
    t.true(e.expect === 'compile' || (e.expect === 'reject' && typeof e.reason === 'string'), `${e.file}: expect/reason`);
  }
});

test('every .rego file under fixtures/policy/{upstream,inline} has a manifest entry', (t) => {
  const listed = new Set(manifest.map((e) => e.file));
  const walk = (rel: string): string[] =>
    readdirSync(path.join(FIXTURES, rel), { withFileTypes: true }).flatMap((d) => {
      const r = rel + '/' + d.name;
      if (d.isDirectory()) return walk(r);
      return d.name.endsWith('.rego') ? [r] : [];
    });
  for (const f of [...walk('upstream'), ...walk('inline')]) t.true(listed.has(f), `${f} is not in manifest.json`);
});

for (const entry of manifest) {
  if (entry.expect === 'compile') {
    test(`compiles ${entry.file} (${entry.source})`, (t) => {
      const text = readFixture(entry.file);
      let policy;
      try {
        policy = compile(text, COMPILE_OPTIONS);
      } catch (e) {
        const detail = e instanceof PolicyError ? `${e.code} ${e.message}` : String(e);
        t.fail(`${entry.file} must compile: ${detail}`);
        return;
      }
      t.true(Array.isArray(policy.packagePath) && policy.packagePath.length > 0);
      t.regex(policy.hash, /^[0-9a-f]{96}$/, 'hash is SHA-384 hex');
    });
  } else {
    test(`rejects ${entry.file} (${entry.source})`, (t) => {
      const text = readFixture(entry.file);
      const err = t.throws(() => compile(text, COMPILE_OPTIONS), { instanceOf: PolicyError });
      t.true(REJECT_CODES.includes(err.code), `code ${err.code} is not one of ${REJECT_CODES.join('/')} (${err.message})`);
      t.is(typeof err.line, 'number', `no line in ${err.message}`);
      if (entry.line !== undefined) t.is(err.line, entry.line, `${err.message}; manifest reason: ${entry.reason}`);
    });
  }
}

// policy/samples/<name> is shipped byte-for-byte from upstream.
const SAMPLE_ORIGIN: Record<string, string> = {
  'default.rego': 'upstream/kbs/sample_policies/default.rego',
  'allow_all.rego': 'upstream/kbs/sample_policies/allow_all.rego',
  'deny_all.rego': 'upstream/kbs/sample_policies/deny_all.rego',
  'affirming.rego': 'upstream/kbs/sample_policies/affirming.rego',
  'ear_default_policy_cpu.rego': 'upstream/attestation-service/src/ear_token/ear_default_policy_cpu.rego',
  'ear_default_policy_gpu.rego': 'upstream/attestation-service/src/ear_token/ear_default_policy_gpu.rego',
  'ear_default_policy_switch.rego': 'upstream/attestation-service/src/ear_token/ear_default_policy_switch.rego',
  'ear_default_policy_ppcie.rego': 'upstream/attestation-service/src/ear_token/ear_default_policy_ppcie.rego',
};

test('the shipped samples in policy/samples are byte-identical to upstream', (t) => {
  const shipped = readdirSync(SAMPLES).filter((f) => f.endsWith('.rego'));
  for (const name of ['default.rego', 'allow_all.rego', 'deny_all.rego', 'affirming.rego']) {
    t.true(shipped.includes(name), `policy/samples/${name} is missing`);
  }
  for (const name of shipped) {
    const origin = SAMPLE_ORIGIN[name];
    t.truthy(origin, `policy/samples/${name} has no known upstream origin`);
    if (!origin) continue;
    const a = readFileSync(path.join(SAMPLES, name));
    const b = readFileSync(path.join(FIXTURES, origin));
    t.true(a.equals(b), `policy/samples/${name} differs from ${origin}`);
  }
});

test('the quickstart policy is rejected only for its undefined reference_tdx_mrtd', (t) => {
  const text = readFixture('inline/quickstart_my_policy.rego');
  t.true(text.includes('reference_tdx_mrtd[_]'));
  const fixed = compile(text.replace('reference_tdx_mrtd[_]', 'reference_tdx_mr_td[_]'), COMPILE_OPTIONS);
  t.deepEqual([...fixed.packagePath], ['my_policy']);
});
