/**
 * Type tests: is_string, is_number, is_boolean, is_array, is_object, is_set, is_null, type_name.
 * They never fail: any value is a valid argument.
 */
import { typeName, type TypeName, type Value } from '../value.js';
import type { Builtin } from './types.js';
import { def, table } from './util.js';

function is(name: string, type: TypeName): Builtin {
  return def(name, 1, (args) => typeName(args[0] as Value) === type);
}

export const TYPECHECK_BUILTINS: ReadonlyMap<string, Builtin> = table(
  is('is_string', 'string'),
  is('is_number', 'number'),
  is('is_boolean', 'boolean'),
  is('is_array', 'array'),
  is('is_object', 'object'),
  is('is_set', 'set'),
  is('is_null', 'null'),
  def('type_name', 1, (args) => typeName(args[0] as Value)),
);
