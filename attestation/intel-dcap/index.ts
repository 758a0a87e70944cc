/** Intel DCAP quote verification (README.md): the stable entry points. */
export { IntelCollateral, type DcapOptions } from './collateral.js';
export { verifySgxQuote, verifyTdQuote, type DcapResult, type TcbVerdict } from './verify.js';
export { parseQuote, type Quote, type SgxQuote, type TdxQuote, type TdxReportBody, type SgxReportBody } from './quote.js';
export type { PlatformInfo } from './pck-extension.js';
export type { TcbStatus } from './collateral-schema.js';
export { DEFAULT_PCS_TIMEOUT_MS, DEFAULT_PCS_URL, type PcsOptions } from './pcs.js';
export { INTEL_ROOT_KEY_ID, INTEL_ROOT_PUBLIC_KEY } from './root.js';
