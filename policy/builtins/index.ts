/**
 * The builtin library: every builtin a policy may call, keyed by its Rego name, and the infix
 * operators (keyed by internal name). Anything not in BUILTINS is unknown to the engine; in
 * particular http.send, opa.runtime, rand.intn, trace, print, net.*, uuid.*, semver.*, glob.*,
 * yaml.*, hex.*, base64url.*, units.*, crypto.* and io.jwt.* are deliberately absent.
 */
import type { Builtin } from './types.js';
import { AGGREGATE_BUILTINS } from './aggregates.js';
import { ARRAY_BUILTINS } from './arrays.js';
import { ENCODING_BUILTINS } from './encoding.js';
import { NUMBER_BUILTINS } from './numbers.js';
import { OBJECT_BUILTINS } from './objects.js';
import { REGEX_BUILTINS } from './regex.js';
import { SET_BUILTINS } from './sets.js';
import { SPRINTF_BUILTINS } from './sprintf.js';
import { STRING_BUILTINS } from './strings.js';
import { TIME_BUILTINS } from './time.js';
import { TYPECHECK_BUILTINS } from './typecheck.js';
import { table } from './util.js';

export { OPERATORS } from './operators.js';
export type { Builtin, BuiltinContext } from './types.js';

export const BUILTINS: ReadonlyMap<string, Builtin> = table(
  ...[
    AGGREGATE_BUILTINS,
    ARRAY_BUILTINS,
    ENCODING_BUILTINS,
    NUMBER_BUILTINS,
    OBJECT_BUILTINS,
    REGEX_BUILTINS,
    SET_BUILTINS,
    SPRINTF_BUILTINS,
    STRING_BUILTINS,
    TIME_BUILTINS,
    TYPECHECK_BUILTINS,
  ].flatMap((m) => [...m.values()]),
);
