/** `kbs policy check` and `kbs policy eval`: output and exit codes, in process and as the real binary. */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../cli/main.js';
import { parseRequest } from '../cli/policy.js';
import { samplesDir } from '../policy/index.js';

const dir = mkdtempSync(join(tmpdir(), 'kbs-cli-'));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const sample = (name: string): string => join(samplesDir(), `${name}.rego`);

async function kbs(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('policy check: ok with the package, rules and hash', async (t) => {
  const r = await kbs('policy', 'check', sample('default'));
  t.is(r.code, 0);
  t.regex(r.out, /ok \(package policy, rules: allow, plugin, sha384 [0-9a-f]{96}\)/);
});

test('policy check: an error names file, line and column and exits 1', async (t) => {
  const bad = file('bad.rego', 'package policy\n\nallow { true }\n');
  const r = await kbs('policy', 'check', bad);
  t.is(r.code, 1);
  t.is(r.err, `${bad}:3:7: POLICY_SYNTAX: \`if\` keyword is required before rule body`);
  const unknown = file('unknown.rego', 'package policy\nallow if nope(1)\n');
  t.regex((await kbs('policy', 'check', unknown)).err, /unknown\.rego:2:10: POLICY_COMPILE: unknown function "nope"/);
});

test('policy check: usage errors exit 2', async (t) => {
  t.is((await kbs('policy', 'check')).code, 2);
  t.is((await kbs('policy', 'check', join(dir, 'missing.rego'))).code, 2);
  t.is((await kbs('policy', 'frob')).code, 2);
  t.is((await kbs('frob')).code, 2);
  t.is((await kbs('policy', 'eval', '--policy', sample('default'), '--bogus')).code, 2);
});

test('policy eval: prints the JSON result of data.policy.allow', async (t) => {
  const input = file('tdx.json', JSON.stringify({ submods: { cpu0: { 'ear.veraison.annotated-evidence': { tdx: {} } } } }));
  const allow = await kbs('policy', 'eval', '--policy', sample('default'), '--input', input, '--request', 'resource/default/key/1');
  t.is(allow.code, 0);
  t.is(allow.out, 'true');
  const deny = await kbs('policy', 'eval', '--policy', sample('default'), '--input', input, '--request', 'nebula-ca/x');
  t.is(deny.out, 'false');
});

test('policy eval: undefined, other queries, data files and --explain', async (t) => {
  const p = file('p.rego', 'package policy\nimport rego.v1\nallow if {\n  data.plugin == "resource"\n  input.ok\n}\nv := data["resource-path"]\n');
  const input = file('in.json', '{"ok": false}');
  const data = file('data.json', '{"plugin": "resource", "resource-path": ["a"], "query": {}}');
  const r = await kbs('policy', 'eval', '--policy', p, '--input', input, '--data', data, '--explain');
  t.is(r.code, 0);
  t.is(r.out, 'undefined');
  t.regex(r.err, /allow \(line 3\): failed at .*p\.rego:5:3/);
  const v = await kbs('policy', 'eval', '--policy', p, '--input', input, '--data', data, '--query', 'data.policy.v');
  t.deepEqual(JSON.parse(v.out), ['a']);
});

test('policy eval: appraisal policy with reference values', async (t) => {
  const input = file('sample.json', JSON.stringify({ sample: { svn: '1', launch_digest: 'abcde', platform_version: { major: 1, minor: 4 }, debug: false } }));
  const rvs = file('rvs.json', JSON.stringify({ svn: ['1'], launch_digest: ['abcde'], major_version: 1, minimum_minor_version: 1 }));
  const r = await kbs('policy', 'eval', '--policy', sample('ear_default_policy_cpu'), '--input', input, '--reference-values', rvs, '--query', 'data.policy.trust_claims');
  t.is(r.code, 0);
  const v = JSON.parse(r.out) as Record<string, number>;
  t.is(v['executables'], 3);
  t.is(v['hardware'], 2);
  t.is(v['configuration'], 2);
});

test('policy eval: evaluation errors exit 1 with the reason', async (t) => {
  const p = file('strict.rego', 'package policy\nallow if startswith(input.n, "x")\n');
  const input = file('n.json', '{"n": 5}');
  const r = await kbs('policy', 'eval', '--policy', p, '--input', input);
  t.is(r.code, 1);
  t.regex(r.err, /evaluation error: .*strict\.rego:2:10: POLICY_TYPE: startswith: operand 1 must be a string but got number/);
});

test('policy eval: bad JSON input is a usage error', async (t) => {
  const input = file('broken.json', '{"a": ');
  const r = await kbs('policy', 'eval', '--policy', sample('default'), '--input', input);
  t.is(r.code, 2);
  t.regex(r.err, /not valid JSON/);
});

test('parseRequest builds the KBS policy request from a path', async (t) => {
  t.deepEqual(parseRequest('/kbs/v0/plugin1/para/meters?version=1.0.0'), {
    plugin: 'plugin1',
    resourcePath: ['para', 'meters'],
    query: { version: '1.0.0' },
  });
  t.deepEqual(parseRequest('resource/a/b/c'), { plugin: 'resource', resourcePath: ['a', 'b', 'c'], query: {} });
});

test('the kbs binary runs and sets its exit code', async (t) => {
  const bin = new URL('../cli/kbs.js', import.meta.url).pathname;
  const ok = spawnSync(process.execPath, [bin, 'policy', 'check', sample('allow_all')], { encoding: 'utf8' });
  t.is(ok.status, 0);
  t.regex(ok.stdout, /ok \(package policy/);
  const bad = spawnSync(process.execPath, [bin, 'policy', 'check', file('x.rego', 'package policy\nallow if {')], { encoding: 'utf8' });
  t.is(bad.status, 1);
  t.regex(bad.stderr, /x\.rego:2:\d+: POLICY_SYNTAX/);
});
