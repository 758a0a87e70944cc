/**
 * Attribute encoding of the PKCS#11 worker (worker.ts): the templates of resource objects (see
 * backend.ts for the storage format) and the reading of their attributes, including objects
 * provisioned by other tools that lack some of them. Worker thread only.
 */
import pkcs11js from 'pkcs11js';
import { segmentProblem } from '../resource-path.js';
import { CKR, isCkr, isSessionLoss } from './errors.js';

export type Handle = Buffer;

/** A CK_ULONG attribute (8 or 4 bytes, little-endian as pkcs11js returns it), or null. */
function readUlong(b: Buffer | undefined): number | null {
  if (b === undefined) return null;
  if (b.length === 8) return Number(b.readBigUInt64LE(0));
  if (b.length === 4) return b.readUInt32LE(0);
  return null;
}

function isResourceLabel(label: string): boolean {
  const parts = label.split('/');
  return parts.length === 3 && parts.every((p) => segmentProblem(p) === null);
}

/** Finds every secret key, or those labelled `label`. */
export function secretKeyTemplate(label?: string): pkcs11js.Template {
  const template: pkcs11js.Template = [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }];
  if (label !== undefined) template.push({ type: pkcs11js.CKA_LABEL, value: label });
  return template;
}

/** The object C_CreateObject makes for a resource: a private, extractable generic secret on the token. */
export function resourceObjectTemplate(label: string, id: Buffer, value: Uint8Array): pkcs11js.Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: false },
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    { type: pkcs11js.CKA_MODIFIABLE, value: true },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_VALUE, value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) },
  ];
}

/**
 * Label, CKA_ID and value size of an object; null if it vanished or its label is not a resource
 * path. Throws on a session loss.
 */
export function readObjectAttributes(
  p: pkcs11js.PKCS11,
  s: Handle,
  handle: Handle,
): { label: string; id: Buffer | undefined; size: number } | null {
  const get = (type: number): Buffer | undefined => {
    try {
      return p.C_GetAttributeValue(s, handle, [{ type }])[0]?.value;
    } catch (e) {
      if (isCkr(e, CKR.OBJECT_HANDLE_INVALID) || isSessionLoss(e)) throw e;
      return undefined; // attribute absent or unreadable
    }
  };
  let label: Buffer | undefined;
  let id: Buffer | undefined;
  let len: Buffer | undefined;
  try {
    const r = p.C_GetAttributeValue(s, handle, [{ type: pkcs11js.CKA_LABEL }, { type: pkcs11js.CKA_ID }, { type: pkcs11js.CKA_VALUE_LEN }]);
    [label, id, len] = [r[0]?.value, r[1]?.value, r[2]?.value];
  } catch (e) {
    if (isCkr(e, CKR.OBJECT_HANDLE_INVALID)) return null;
    if (isSessionLoss(e)) throw e;
    // Some attribute is missing on an object provisioned by another tool: read them one by one.
    label = get(pkcs11js.CKA_LABEL);
    id = get(pkcs11js.CKA_ID);
    len = get(pkcs11js.CKA_VALUE_LEN);
  }
  const labelText = label?.toString('utf8') ?? '';
  if (!isResourceLabel(labelText)) return null;
  let size = readUlong(len);
  if (size === null) {
    const v = get(pkcs11js.CKA_VALUE);
    size = v?.length ?? 0;
  }
  return { label: labelText, id, size };
}

/** CKA_VALUE of an object (empty when the token gives none). */
export function readValueAttribute(p: pkcs11js.PKCS11, s: Handle, handle: Handle): Buffer {
  const r = p.C_GetAttributeValue(s, handle, [{ type: pkcs11js.CKA_VALUE }]);
  return r[0]?.value ?? Buffer.alloc(0);
}
