/**
 * SGX claims as upstream `sgx/claims.rs` builds them: `header{…}`, `body{…}` (lower-case hex of the
 * raw fields), `report_data`, `init_data` (CONFIGID) and, for Platform-CA PCK certificates,
 * `platform_instance_id`.
 */
import type { JsonValue } from '../../policy/index.js';
import type { PlatformInfo } from '../intel-dcap/pck-extension.js';
import type { SgxQuote } from '../intel-dcap/quote.js';
import { objectFromEntries, type Claims } from '../types.js';

const FIELDS: ReadonlyArray<readonly [string, number, number]> = [
  ['cpu_svn', 0, 16],
  ['misc_select', 16, 4],
  ['reserved1', 20, 12],
  ['isv_ext_prod_id', 32, 16],
  ['attributes.flags', 48, 8],
  ['attributes.xfrm', 56, 8],
  ['mr_enclave', 64, 32],
  ['reserved2', 96, 32],
  ['mr_signer', 128, 32],
  ['reserved3', 160, 32],
  ['config_id', 192, 64],
  ['isv_prod_id', 256, 2],
  ['isv_svn', 258, 2],
  ['config_svn', 260, 2],
  ['reserved4', 262, 42],
  ['isv_family_id', 304, 16],
  ['report_data', 320, 64],
];

export function sgxQuoteClaims(quote: SgxQuote, platform: PlatformInfo): Claims {
  const h = quote.header.raw;
  const hex = (b: Buffer): string => b.toString('hex');
  const header = objectFromEntries([
    ['version', hex(h.subarray(0, 2))],
    ['att_key_type', hex(h.subarray(2, 4))],
    ['att_key_data_0', hex(h.subarray(4, 8))],
    ['qe_svn', hex(h.subarray(8, 10))],
    ['pce_svn', hex(h.subarray(10, 12))],
    ['vendor_id', hex(h.subarray(12, 28))],
    ['user_data', hex(h.subarray(28, 48))],
  ]);
  const raw = quote.body.raw;
  const body = objectFromEntries(FIELDS.map(([name, off, len]) => [name, hex(raw.subarray(off, off + len))] as [string, JsonValue]));
  const e: Array<[string, JsonValue]> = [
    ['header', header],
    ['body', body],
    ['report_data', hex(quote.body.reportData)],
    ['init_data', hex(quote.body.configId)],
  ];
  if (platform.platformInstanceId !== undefined) {
    e.push(['platform_instance_id', hex(Buffer.from(platform.platformInstanceId).reverse())]);
  }
  return objectFromEntries(e);
}
