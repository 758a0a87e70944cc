/**
 * Init-data (kbs-protocol.md §11 and checklist item 24): format, TOML body, digest algorithms and
 * aliases, `data` claims with cdh.toml/aa.toml conversion and policy_data extraction, and limits.
 */
import test from 'ava';
import { createHash, getHashes } from 'node:crypto';
import { AttestationFailure, extractPolicyData, INIT_DATA_MAX_BYTES, parseInitData } from '../attestation/index.js';

const ITEM24_BODY = 'version = "0.1.0"\nalgorithm = "sha384"\n[data]\nk = "v"\n';

function initDataFailure(v: unknown): AttestationFailure {
  try {
    parseInitData(v);
  } catch (e) {
    if (e instanceof AttestationFailure) return e;
    throw e;
  }
  throw new Error('expected an AttestationFailure');
}

const toml = (body: string): { format: string; body: string } => ({ format: 'toml', body });
const doc = (algorithm: string, data: string): string => `version = "0.1.0"\nalgorithm = "${algorithm}"\n[data]\n${data}`;

test('item 24: claims {k: "v"}, digest SHA-384 of the raw body', (t) => {
  const r = parseInitData(toml(ITEM24_BODY));
  if (r === undefined) return t.fail();
  t.deepEqual(r.claims, { k: 'v' });
  t.is(r.algorithm, 'sha384');
  t.is(r.digest.toString('hex'), createHash('sha384').update(ITEM24_BODY).digest('hex'));
});

test('absent or null init-data means none', (t) => {
  t.is(parseInitData(undefined), undefined);
  t.is(parseInitData(null), undefined);
});

test('only format "toml" is accepted', (t) => {
  for (const format of ['json', 'TOML', 'yaml', '']) {
    t.is(initDataFailure({ format, body: ITEM24_BODY }).step, 'init-data', format);
  }
  t.is(initDataFailure({ body: ITEM24_BODY }).step, 'init-data');
  t.is(initDataFailure({ format: 1, body: ITEM24_BODY }).step, 'init-data');
  t.is(initDataFailure({ format: 'toml' }).step, 'init-data');
  t.is(initDataFailure({ format: 'toml', body: { version: '0.1.0' } }).step, 'init-data');
  for (const v of ['toml', 1, true, [], [ITEM24_BODY]]) t.is(initDataFailure(v).step, 'init-data');
});

test('algorithms and their IANA aliases; digest over the raw body bytes', (t) => {
  const cases: Array<[string, string]> = [
    ['sha256', 'sha256'],
    ['sha384', 'sha384'],
    ['sha512', 'sha512'],
    ['sha-256', 'sha256'],
    ['sha-384', 'sha384'],
    ['sha-512', 'sha512'],
  ];
  for (const [name, node] of cases) {
    const body = doc(name, 'k = "v"\n');
    const r = parseInitData(toml(body));
    if (r === undefined) return t.fail();
    t.is(r.algorithm as string, node);
    t.is(r.digest.toString('hex'), createHash(node).update(body, 'utf8').digest('hex'), name);
  }
  for (const bad of ['SHA384', 'Sha-384', 'md5', 'sha1', 'sha3-384', '']) {
    t.is(initDataFailure(toml(doc(bad, ''))).step, 'init-data', bad);
  }
});

test('sm3 (a kbs-types HashAlgorithm) works when the runtime has it, else is refused', (t) => {
  const body = doc('sm3', 'k = "v"\n');
  if (getHashes().includes('sm3')) {
    const r = parseInitData(toml(body));
    t.is(r?.algorithm, 'sm3');
    t.is(r?.digest.toString('hex'), createHash('sm3').update(body).digest('hex'));
    t.is(r?.digest.length, 32);
  } else {
    t.is(initDataFailure(toml(body)).step, 'init-data');
  }
});

test('non-ASCII bodies are hashed as UTF-8', (t) => {
  const body = doc('sha256', 'greeting = "grüß dich 😀"\n');
  const r = parseInitData(toml(body));
  t.is(r?.digest.toString('hex'), createHash('sha256').update(Buffer.from(body, 'utf8')).digest('hex'));
  t.deepEqual(r?.claims, { greeting: 'grüß dich 😀' });
});

test('version, algorithm and data are required with their types; other keys are ignored', (t) => {
  t.is(initDataFailure(toml('algorithm = "sha384"\n[data]\n')).step, 'init-data');
  t.is(initDataFailure(toml('version = 1\nalgorithm = "sha384"\n[data]\n')).step, 'init-data');
  t.is(initDataFailure(toml('version = "0.1.0"\n[data]\n')).step, 'init-data');
  t.is(initDataFailure(toml('version = "0.1.0"\nalgorithm = 384\n[data]\n')).step, 'init-data');
  t.is(initDataFailure(toml('version = "0.1.0"\nalgorithm = "sha384"\n')).step, 'init-data');
  t.is(initDataFailure(toml('version = "0.1.0"\nalgorithm = "sha384"\ndata = "x"\n')).step, 'init-data');
  t.is(initDataFailure(toml('version = "0.1.0"\nalgorithm = "sha384"\ndata = ["x"]\n')).step, 'init-data');
  t.is(initDataFailure(toml(doc('sha384', 'n = 1\n'))).step, 'init-data');
  t.is(initDataFailure(toml(doc('sha384', 'b = true\n'))).step, 'init-data');
  t.is(initDataFailure(toml(doc('sha384', '[data.nested]\nx = "y"\n'))).step, 'init-data');
  const r = parseInitData(toml(`extra = 5\nversion = "0.1.0"\nalgorithm = "sha384"\n[other]\nz = 1\n[data]\n`));
  t.deepEqual(r?.claims, {});
  const inline = parseInitData(toml('version = "0.1.0"\nalgorithm = "sha384"\ndata = { a = "1", b = "2" }\n'));
  t.deepEqual(inline?.claims, { a: '1', b: '2' });
});

test('invalid TOML is refused without quoting the body', (t) => {
  const secretish = 'not = toml = at all SECRET-LOOKING-TEXT';
  const e = initDataFailure(toml(secretish));
  t.is(e.step, 'init-data');
  t.false(e.message.includes('SECRET-LOOKING-TEXT'));
  t.is(initDataFailure(toml(doc('sha384', 'k = "v"\nk = "w"\n'))).step, 'init-data'); // duplicate key
});

test('an integer beyond i64 anywhere fails the document (the toml crate refuses it)', (t) => {
  t.is(initDataFailure(toml(`big = 9223372036854775808\n${doc('sha384', '')}`)).step, 'init-data');
  t.deepEqual(parseInitData(toml(`big = 9223372036854775807\n${doc('sha384', '')}`))?.claims, {});
});

test('oversized and non-Unicode bodies are refused', (t) => {
  const base = doc('sha384', 'k = "v"\n');
  const pad = (n: number): string => `${base}#${'x'.repeat(n - Buffer.byteLength(base) - 2)}\n`;
  const atLimit = pad(INIT_DATA_MAX_BYTES);
  t.is(Buffer.byteLength(atLimit), INIT_DATA_MAX_BYTES);
  t.deepEqual(parseInitData(toml(atLimit))?.claims, { k: 'v' });
  t.is(initDataFailure(toml(pad(INIT_DATA_MAX_BYTES + 1))).step, 'init-data');
  t.is(initDataFailure(toml(`${base}# \ud800\n`)).step, 'init-data');
});

const CDH_TOML = `socket = "unix:///run/confidential-containers/cdh.sock"
credentials = []

[kbc]
name = "cc_kbc"
url = "http://1.2.3.4:8080"
kbs_cert = ""
`;

test('cdh.toml and aa.toml values are converted from TOML to JSON objects', (t) => {
  const body = doc(
    'sha384',
    `"aa.toml" = '''
[token_configs.kbs]
url = "http://1.2.3.4:8080"
'''
"cdh.toml" = '''
${CDH_TOML}'''
"other.toml" = 'x = 1'
`,
  );
  const r = parseInitData(toml(body));
  t.deepEqual(r?.claims, {
    'aa.toml': { token_configs: { kbs: { url: 'http://1.2.3.4:8080' } } },
    'cdh.toml': {
      socket: 'unix:///run/confidential-containers/cdh.sock',
      credentials: [],
      kbc: { name: 'cc_kbc', url: 'http://1.2.3.4:8080', kbs_cert: '' },
    },
    'other.toml': 'x = 1',
  });
  // Member order is the data table's order.
  t.deepEqual(Object.keys(r?.claims ?? {}), ['aa.toml', 'cdh.toml', 'other.toml']);
});

test('a cdh.toml that is not valid TOML stays a string', (t) => {
  const r = parseInitData(toml(doc('sha384', `"cdh.toml" = "this is = not toml ["\n"aa.toml" = ""\n`)));
  t.deepEqual(r?.claims, { 'cdh.toml': 'this is = not toml [', 'aa.toml': {} });
});

test('TOML scalars in cdh.toml convert as serde_json::to_value(toml::Value) does', (t) => {
  const cdh = [
    'i = 42',
    'f = 1.5',
    'n = nan',
    'inf = -inf',
    'b = true',
    'odt = 1979-05-27T07:32:00Z',
    'odt2 = 1979-05-27 00:32:00.5-07:00',
    'ldt = 1979-05-27T07:32:00',
    'ld = 1979-05-27',
    'lt = 07:32:00',
    'arr = [1, "two", [3]]',
    'inline = { x = 1, y = { z = "w" } }',
  ].join('\n');
  const r = parseInitData(toml(doc('sha384', `"cdh.toml" = '''\n${cdh}\n'''\n`)));
  const dt = (s: string): { $__toml_private_datetime: string } => ({ $__toml_private_datetime: s });
  t.deepEqual(r?.claims['cdh.toml'], {
    i: 42,
    f: 1.5,
    n: null,
    inf: null,
    b: true,
    odt: dt('1979-05-27T07:32:00Z'),
    odt2: dt('1979-05-27T00:32:00.5-07:00'),
    ldt: dt('1979-05-27T07:32:00'),
    ld: dt('1979-05-27'),
    lt: dt('07:32:00'),
    arr: [1, 'two', [3]],
    inline: { x: 1, y: { z: 'w' } },
  });
});

const AGENT_POLICY = `package agent_policy

import future.keywords.in

default CreateContainerRequest := false

CreateContainerRequest {
    some p in policy_data.containers
    input.OCI.Version == p.OCI.Version
}

policy_data := {
  "containers": [
    {"OCI": {"Annotations": {}, "Process": {"User": {"UID": 65535}}}},
    {"OCI": {"Annotations": {"io.kubernetes.cri.image-name": "bitnami/nginx:latest"}, "Process": {"User": {"UID": 1001}}}}
  ]
}
`;

test('policy.rego becomes agent_policy_claims (the JSON after policy_data := ), swap-removed', (t) => {
  const body = doc('sha384', `a = "1"\n"policy.rego" = '''\n${AGENT_POLICY}'''\nb = "2"\nc = "3"\n`);
  const r = parseInitData(toml(body));
  t.deepEqual(r?.claims, {
    a: '1',
    c: '3',
    b: '2',
    agent_policy_claims: {
      containers: [
        { OCI: { Annotations: {}, Process: { User: { UID: 65535 } } } },
        { OCI: { Annotations: { 'io.kubernetes.cri.image-name': 'bitnami/nginx:latest' }, Process: { User: { UID: 1001 } } } },
      ],
    },
  });
  // serde_json (preserve_order) Map::remove is swap_remove: the last member takes policy.rego's place.
  t.deepEqual(Object.keys(r?.claims ?? {}), ['a', 'c', 'b', 'agent_policy_claims']);
});

test('policy.rego stays when policy_data cannot be extracted', (t) => {
  const cases = [
    'package p\nallow := true\n', // no policy_data
    'package p\npolicy_data := {"a": 1}\nallow := true\n', // not the last thing in the file
    'package p\npolicy_data := {"a": 1,}\n', // not JSON
    'package p\npolicy_data := ["a"]\n', // pattern needs "{"
    'package p\npolicy_data:={"a": 1}\n', // exact spacing required
  ];
  for (const rego of cases) {
    const r = parseInitData(toml(doc('sha384', `"policy.rego" = ${JSON.stringify(rego)}\n`)));
    t.deepEqual(r?.claims, { 'policy.rego': rego }, rego);
  }
});

test('extractPolicyData follows upstream exactly', (t) => {
  t.deepEqual(extractPolicyData('x\npolicy_data := {"a": [1, 2]}\n\t \r\n'), { a: [1, 2] });
  t.deepEqual(extractPolicyData('policy_data := {}'), {});
  // The first occurrence counts, even inside a comment.
  t.is(extractPolicyData('# policy_data := {"old": 1}\npolicy_data := {"a": 1}\n'), undefined);
  t.is(extractPolicyData('policy_data := {"a": 1} # comment'), undefined);
  // What serde_json refuses: lone surrogates, out-of-range numbers, nesting beyond its limit.
  t.is(extractPolicyData('policy_data := {"a": "\\ud800"}'), undefined);
  t.is(extractPolicyData('policy_data := {"a": 1e400}'), undefined);
  t.is(extractPolicyData(`policy_data := {"a": ${'['.repeat(200)}${']'.repeat(200)}}`), undefined);
  t.deepEqual(extractPolicyData(`policy_data := {"a": ${'['.repeat(20)}${']'.repeat(20)}}`), {
    a: JSON.parse(`${'['.repeat(20)}${']'.repeat(20)}`) as unknown[],
  });
});

test('an existing agent_policy_claims key is overwritten in place', (t) => {
  const body = doc('sha384', `agent_policy_claims = "mine"\n"policy.rego" = 'policy_data := {"x": 1}'\nz = "last"\n`);
  const r = parseInitData(toml(body));
  t.deepEqual(Object.keys(r?.claims ?? {}), ['agent_policy_claims', 'z']);
  t.deepEqual(r?.claims['agent_policy_claims'], { x: 1 });
});

test('keys like __proto__ are plain data', (t) => {
  const r = parseInitData(toml(doc('sha384', '"__proto__" = "x"\nconstructor = "y"\n')));
  t.is(Object.getPrototypeOf(r?.claims), Object.prototype);
  t.deepEqual(Object.keys(r?.claims ?? {}), ['__proto__', 'constructor']);
  t.is(JSON.stringify(r?.claims), '{"__proto__":"x","constructor":"y"}');
});
