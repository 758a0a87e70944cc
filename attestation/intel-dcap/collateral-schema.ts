/** zod schemas of Intel PCS v4 TCB info (v2/v3) and enclave identity (v2), as served. */
import { z } from 'zod';

const hex = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`));
const date = z.string().refine((s) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(s) && !Number.isNaN(Date.parse(s)), 'RFC 3339 UTC date');
const svn = z.number().int().min(0).max(255);

export const TCB_STATUSES = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
  'TDRelaunchAdvised',
  'TDRelaunchAdvisedConfigurationNeeded',
  'Revoked',
] as const;
export type TcbStatus = (typeof TCB_STATUSES)[number];

const status = z.enum(TCB_STATUSES);
const components = z.array(z.object({ svn }).loose()).length(16);

const tcbLevel = z
  .object({
    tcb: z
      .object({
        sgxtcbcomponents: components.optional(),
        pcesvn: z.number().int().min(0).max(0xffff).optional(),
        tdxtcbcomponents: components.optional(),
        isvsvn: z.number().int().min(0).max(0xffff).optional(),
        // TCB info v2 spells the SGX components out.
        ...Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`sgxtcbcomp${String(i + 1).padStart(2, '0')}svn`, svn.optional()])),
      })
      .loose(),
    tcbDate: date,
    tcbStatus: status,
    advisoryIDs: z.array(z.string().max(64)).max(256).optional(),
  })
  .loose();
export type TcbLevel = z.infer<typeof tcbLevel>;

const moduleIdentity = z
  .object({
    id: z.string(),
    mrsigner: hex(48),
    attributes: hex(8),
    attributesMask: hex(8),
    tcbLevels: z.array(tcbLevel).min(1).max(256),
  })
  .loose();

export const TcbInfoSchema = z
  .object({
    id: z.enum(['SGX', 'TDX']).optional(),
    version: z.union([z.literal(2), z.literal(3)]),
    issueDate: date,
    nextUpdate: date,
    fmspc: hex(6),
    pceId: hex(2),
    tcbType: z.number().int(),
    tcbEvaluationDataNumber: z.number().int().min(0),
    tdxModule: z.object({ mrsigner: hex(48), attributes: hex(8), attributesMask: hex(8) }).loose().optional(),
    tdxModuleIdentities: z.array(moduleIdentity).max(64).optional(),
    tcbLevels: z.array(tcbLevel).min(1).max(1024),
  })
  .loose();
export type TcbInfo = z.infer<typeof TcbInfoSchema>;

export const EnclaveIdentitySchema = z
  .object({
    id: z.enum(['QE', 'QVE', 'TD_QE']),
    version: z.literal(2),
    issueDate: date,
    nextUpdate: date,
    tcbEvaluationDataNumber: z.number().int().min(0),
    miscselect: hex(4),
    miscselectMask: hex(4),
    attributes: hex(16),
    attributesMask: hex(16),
    mrsigner: hex(32),
    isvprodid: z.number().int().min(0).max(0xffff),
    tcbLevels: z.array(tcbLevel).min(1).max(256),
  })
  .loose();
export type EnclaveIdentity = z.infer<typeof EnclaveIdentitySchema>;

/** The SGX component SVNs of a level (v3 array or v2 spelled-out members). */
export function sgxComponents(level: TcbLevel): number[] | undefined {
  const t = level.tcb as Record<string, unknown>;
  if (level.tcb.sgxtcbcomponents !== undefined) return level.tcb.sgxtcbcomponents.map((c) => c.svn);
  const out: number[] = [];
  for (let i = 1; i <= 16; i++) {
    const v = t[`sgxtcbcomp${String(i).padStart(2, '0')}svn`];
    if (typeof v !== 'number') return undefined;
    out.push(v);
  }
  return out;
}
