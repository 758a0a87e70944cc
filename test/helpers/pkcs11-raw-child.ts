/**
 * Child process for tests: raw PKCS#11 on a SoftHSM token (SOFTHSM2_CONF from the environment), to
 * inspect or prepare what a Pkcs11Backend finds. Reads { module, tokenLabel, pin, ops } as JSON on
 * stdin, writes one result per op as JSON on stdout. See softhsm.ts (`rawPkcs11`).
 */
import pkcs11js from 'pkcs11js';
import type { RawObject, RawOp, RawResult } from './softhsm.js';

interface Input {
  module: string;
  tokenLabel: string;
  pin: string;
  ops: RawOp[];
}

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const input = JSON.parse(Buffer.concat(chunks).toString()) as Input;

const p11 = new pkcs11js.PKCS11();
p11.load(input.module);
p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
let session: Buffer | null = null;

function open(): Buffer {
  if (session !== null) return session;
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === input.tokenLabel);
  if (slot === undefined) throw new Error(`no token ${input.tokenLabel}`);
  session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  p11.C_Login(session, pkcs11js.CKU_USER, input.pin);
  return session;
}

function attr(s: Buffer, h: Buffer, type: number): Buffer | null {
  try {
    return p11.C_GetAttributeValue(s, h, [{ type }])[0]?.value ?? null;
  } catch {
    return null;
  }
}

const bool = (b: Buffer | null): boolean | null => (b === null ? null : b[0] !== 0);
const ulong = (b: Buffer | null): number | null => (b === null ? null : b.length === 8 ? Number(b.readBigUInt64LE(0)) : b.readUInt32LE(0));

function run(op: RawOp): RawResult {
  switch (op.op) {
    case 'slots':
      return {
        ok: true,
        slots: p11.C_GetSlotList(true).map((s) => {
          const i = p11.C_GetTokenInfo(s);
          return { label: i.label.trim(), serial: i.serialNumber.trim(), initialized: (i.flags & pkcs11js.CKF_TOKEN_INITIALIZED) !== 0 };
        }),
      };
    case 'create': {
      const s = open();
      const template: pkcs11js.Template =
        op.cls === 'data'
          ? [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA }]
          : [
              { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
              { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
              { type: pkcs11js.CKA_SENSITIVE, value: op.sensitive ?? false },
              { type: pkcs11js.CKA_EXTRACTABLE, value: op.extractable ?? true },
            ];
      template.push(
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_LABEL, value: op.label },
        { type: pkcs11js.CKA_VALUE, value: Buffer.from(op.valueB64, 'base64') },
      );
      if (op.idHex !== undefined) template.push({ type: pkcs11js.CKA_ID, value: Buffer.from(op.idHex, 'hex') });
      p11.C_CreateObject(s, template);
      return { ok: true };
    }
    case 'list': {
      const s = open();
      p11.C_FindObjectsInit(s, []);
      const handles: Buffer[] = [];
      for (;;) {
        const batch = p11.C_FindObjects(s, 256);
        if (batch.length === 0) break;
        handles.push(...batch);
      }
      p11.C_FindObjectsFinal(s);
      const objects: RawObject[] = handles.map((h) => ({
        label: attr(s, h, pkcs11js.CKA_LABEL)?.toString('utf8') ?? '',
        idHex: attr(s, h, pkcs11js.CKA_ID)?.toString('hex') ?? '',
        valueB64: attr(s, h, pkcs11js.CKA_VALUE)?.toString('base64') ?? null,
        class: ulong(attr(s, h, pkcs11js.CKA_CLASS)) ?? -1,
        keyType: ulong(attr(s, h, pkcs11js.CKA_KEY_TYPE)),
        token: bool(attr(s, h, pkcs11js.CKA_TOKEN)) ?? false,
        private: bool(attr(s, h, pkcs11js.CKA_PRIVATE)) ?? false,
        sensitive: bool(attr(s, h, pkcs11js.CKA_SENSITIVE)),
        extractable: bool(attr(s, h, pkcs11js.CKA_EXTRACTABLE)),
      }));
      objects.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : a.idHex < b.idHex ? -1 : 1));
      return { ok: true, objects };
    }
  }
}

const out: RawResult[] = [];
for (const op of input.ops) {
  try {
    out.push(run(op));
  } catch (e) {
    out.push({ ok: false, message: e instanceof Error ? e.message : String(e) });
  }
}
if (session !== null) {
  p11.C_Logout(session);
  p11.C_CloseSession(session);
}
p11.C_Finalize();
process.stdout.write(JSON.stringify(out));
