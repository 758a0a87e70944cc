/**
 * Shape validation of the parsed TOML document: the whole document against `KbsConfigToml`, then
 * the `[admin]` table dispatched between its current and legacy forms and each `[[plugins]]` entry
 * between its typed and kvstorage forms. Problems go to `Issues`; nothing is resolved here.
 */
import {
  ADMIN_MODES,
  AdminToml,
  KbsConfigToml,
  KvStorageResourcePluginToml,
  LEGACY_ADMIN_KEYS,
  LegacyAdminToml,
  PLUGIN_NAMES,
  ResourcePluginToml,
  type AdminTomlInput,
  type KbsConfigTomlInput,
  type KvStorageResourcePluginTomlInput,
  type LegacyAdminTomlInput,
  type ResourcePluginTomlInput,
} from './schema.js';
import { AadTokenPluginToml, type AadTokenPluginTomlInput } from './azure.js';
import { Issues, kindOf, showOptions, showValue, unknownKeyProblem, type PathSegment } from './issues.js';

/** Every key some `[admin]` form allows. */
const ADMIN_KEYS: ReadonlySet<string> = new Set([
  'authorization_mode',
  'authentication',
  'authorization',
  ...LEGACY_ADMIN_KEYS,
]);

export type AdminInput =
  | { form: 'default' }
  | { form: 'current'; value: AdminTomlInput }
  | { form: 'legacy'; value: LegacyAdminTomlInput };

export type PluginInput =
  | { form: 'typed'; index: number; value: ResourcePluginTomlInput }
  | { form: 'aad-token'; index: number; value: AadTokenPluginTomlInput }
  | { form: 'kvstorage'; index: number; value: KvStorageResourcePluginTomlInput };

export interface ValidatedDocument {
  toml: KbsConfigTomlInput;
  admin: AdminInput;
  /** Undefined when `plugins` is absent (the default plugin set applies). */
  plugins: PluginInput[] | undefined;
}

export function validateDocument(document: Record<string, unknown>, issues: Issues): ValidatedDocument | undefined {
  const toml = issues.check(KbsConfigToml, document, []);
  if (toml === undefined) return undefined;

  let admin: AdminInput = { form: 'default' };
  if (toml.admin !== undefined) {
    const raw = toml.admin;
    const legacy = !('authorization_mode' in raw) && LEGACY_ADMIN_KEYS.some((k) => k in raw);
    if (legacy) {
      const value = issues.check(LegacyAdminToml, raw, ['admin']);
      if (value !== undefined) admin = { form: 'legacy', value };
    } else {
      const mode = raw['authorization_mode'];
      if (typeof mode !== 'string' || !(ADMIN_MODES as readonly string[]).includes(mode)) {
        // The mode is what selects the allowed keys; still name keys no mode allows.
        for (const key of Object.keys(raw)) {
          if (!ADMIN_KEYS.has(key)) issues.add(['admin', key], unknownKeyProblem(['admin', key]));
        }
      }
      const value = issues.check(AdminToml, raw, ['admin']);
      if (value !== undefined) admin = { form: 'current', value };
    }
  }

  let plugins: PluginInput[] | undefined;
  if (toml.plugins !== undefined) {
    plugins = [];
    const seen = new Set<string>();
    toml.plugins.forEach((raw, index) => {
      const at: PathSegment[] = ['plugins', index];
      const name = raw['name'];
      if (typeof name !== 'string') {
        issues.add(
          [...at, 'name'],
          name === undefined
            ? `missing required key (expected ${showOptions(PLUGIN_NAMES)})`
            : `expected string, got ${kindOf(name)}`,
        );
        return;
      }
      if (!(PLUGIN_NAMES as readonly string[]).includes(name)) {
        issues.add([...at, 'name'], `unknown plugin ${showValue(name)} (supported: ${PLUGIN_NAMES.join(', ')})`);
        return;
      }
      if (seen.has(name)) {
        issues.add([...at, 'name'], `duplicate plugin ${showValue(name)}: configure each plugin once`);
        return;
      }
      seen.add(name);
      if (name === 'aad-token') {
        const value = issues.check(AadTokenPluginToml, raw, at);
        if (value !== undefined) plugins?.push({ form: 'aad-token', index, value });
      } else if ('storage_backend_type' in raw) {
        const value = issues.check(KvStorageResourcePluginToml, raw, at);
        if (value !== undefined) plugins?.push({ form: 'kvstorage', index, value });
      } else {
        const value = issues.check(ResourcePluginToml, raw, at);
        if (value !== undefined) plugins?.push({ form: 'typed', index, value });
      }
    });
  }

  return { toml, admin, plugins };
}
