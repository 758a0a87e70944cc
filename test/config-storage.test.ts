/** Storage backend sections of the configuration: LocalFs, Sqlite, Pkcs11 (PIN sources). */
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfigText, readSecret, type KbsConfig } from '../config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'kbs-config-storage-'));
writeFileSync(join(dir, 'libfake.so'), '');
writeFileSync(join(dir, 'pin.txt'), '1234\n');

function parse(plugin: string): KbsConfig {
  return parseConfigText(`work_dir = ${JSON.stringify(dir)}\n[http_server]\ninsecure_http = true\n[[plugins]]\nname = "resource"\n${plugin}\n`, {
    cwd: dir,
    source: join(dir, 'kbs.toml'),
  });
}

function problem(plugin: string): string {
  try {
    parse(plugin);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error('expected a configuration error');
}

test('Sqlite: db_path relative to work_dir, default resources.db', (t) => {
  t.deepEqual(parse('type = "Sqlite"\ndb_path = "kbs.db"').plugins[0]?.storage, { type: 'Sqlite', dbPath: join(dir, 'kbs.db') });
  t.deepEqual(parse('type = "Sqlite"').plugins[0]?.storage, { type: 'Sqlite', dbPath: join(dir, 'resources.db') });
  t.regex(problem('type = "Sqlite"\ndir_path = "x"'), /plugins\[0\]\.dir_path/);
});

test('Pkcs11: module must exist; slot or label; PIN from exactly one source', (t) => {
  const c = parse('type = "Pkcs11"\nmodule = "libfake.so"\ntoken_label = "kbs"\npin_file = "pin.txt"');
  t.deepEqual(c.plugins[0]?.storage, {
    type: 'Pkcs11',
    module: join(dir, 'libfake.so'),
    slotIndex: null,
    tokenLabel: 'kbs',
    pin: { kind: 'file', path: join(dir, 'pin.txt') },
  });
  const envDefault = parse('type = "Pkcs11"\nmodule = "libfake.so"\nslot_index = 2');
  t.deepEqual(envDefault.plugins[0]?.storage, {
    type: 'Pkcs11',
    module: join(dir, 'libfake.so'),
    slotIndex: 2,
    tokenLabel: null,
    pin: { kind: 'env', name: 'KBS_PKCS11_PIN' },
  });
  t.regex(problem('type = "Pkcs11"\nmodule = "missing.so"'), /plugins\[0\]\.module: file not found/);
  t.regex(problem('type = "Pkcs11"\nmodule = "libfake.so"\nslot_index = 1\ntoken_label = "x"'), /slot_index or token_label/);
  t.regex(problem('type = "Pkcs11"\nmodule = "libfake.so"\npin = "1"\npin_env = "X"'), /exactly one of pin, pin_file, pin_env/);
  t.regex(problem('type = "Pkcs11"\nmodule = "libfake.so"\nslot_index = -1'), /plugins\[0\]\.slot_index/);
  t.regex(problem('type = "Pkcs11"\nmodule = "libfake.so"\npin_env = "1BAD"'), /plugins\[0\]\.pin_env/);
});

test('Pkcs11: an inline PIN works but warns, and the warning never contains the PIN', (t) => {
  const c = parse('type = "Pkcs11"\nmodule = "libfake.so"\npin = "s3cr3t-pin"');
  t.true(c.warnings.some((w) => /prefer pin_file or pin_env/.test(w)));
  t.false(c.warnings.join('\n').includes('s3cr3t-pin'));
});

test('unknown storage type is an error naming it', (t) => {
  t.regex(problem('type = "Vault"'), /plugins\[0\]\.type/);
});

test('readSecret: inline, file (trailing newline dropped), env; errors never contain the value', async (t) => {
  t.is(await readSecret({ kind: 'inline', value: 'a' }, 'PIN'), 'a');
  t.is(await readSecret({ kind: 'file', path: join(dir, 'pin.txt') }, 'PIN'), '1234');
  t.is(await readSecret({ kind: 'env', name: 'KBS_TEST_PIN' }, 'PIN', { KBS_TEST_PIN: '99' }), '99');
  await t.throwsAsync(() => readSecret({ kind: 'env', name: 'KBS_TEST_PIN' }, 'PIN', {}), { message: /KBS_TEST_PIN is not set/ });
  await t.throwsAsync(() => readSecret({ kind: 'file', path: join(dir, 'nope') }, 'PIN'), { message: /cannot read/ });
  writeFileSync(join(dir, 'empty.txt'), '');
  await t.throwsAsync(() => readSecret({ kind: 'file', path: join(dir, 'empty.txt') }, 'PIN'), { message: /is empty/ });
});
