/**
 * Where collateral comes from: the offline directory (loose files first, then the PCS Client Tool
 * file) and, when configured, Intel PCS online for items that are missing or past their nextUpdate.
 * Online responses are written into the directory layout atomically, so the next start is offline.
 */
import { join } from 'node:path';
import { writeAtomic } from '../../policy/store.js';
import { parseCrl } from '../common/der.js';
import {
  layout,
  loadClientTool,
  loadLooseFiles,
  type CollateralSet,
  type IntelTee,
  type PckCa,
  type UpdateType,
} from './offline-store.js';
import { PcsClient, type PcsOptions } from './pcs.js';
import type { SignedItem } from './signed-collateral.js';

export interface DcapOptions {
  /** Offline collateral root; Intel items live under `<collateralDir>/intel/` (README.md). */
  collateralDir?: string;
  /** Intel PCS (or PCCS) online; omitted means offline only. */
  pcs?: PcsOptions;
}

/** How long an online outcome (an item, or a failure to get one) stands before the PCS is asked again. */
const RETRY_AFTER_MS = 60_000;


/** nextUpdate of a signed JSON item, or undefined when it cannot be read (verification will say why). */
function jsonNextUpdate(item: SignedItem, key: string): number | undefined {
  try {
    const v = (JSON.parse(item.text) as Record<string, { nextUpdate?: unknown }>)[key]?.nextUpdate;
    return typeof v === 'string' ? Date.parse(v) : undefined;
  } catch {
    return undefined;
  }
}

function crlNextUpdate(der: Buffer): number | undefined {
  try {
    return parseCrl(der).nextUpdate?.getTime();
  } catch {
    return undefined;
  }
}

export class IntelCollateral {
  readonly intelDir: string | undefined;
  readonly updateType: UpdateType;
  readonly pcs: PcsClient | undefined;
  /** Online fetches under way, one per item. */
  private readonly flights = new Map<string, Promise<unknown>>();
  /** The last online outcome per item (`undefined`: it failed), trusted for RETRY_AFTER_MS. */
  private readonly lastOnline = new Map<string, { at: number; value: unknown }>();

  constructor(options: DcapOptions = {}) {
    this.intelDir = options.collateralDir === undefined ? undefined : join(options.collateralDir, 'intel');
    this.updateType = options.pcs?.updateType ?? 'early';
    this.pcs = options.pcs === undefined ? undefined : new PcsClient(options.pcs);
  }

  /** Raw collateral for a quote of `tee` from a platform with `fmspc` under PCK CA `ca`. */
  async collect(tee: IntelTee, fmspc: string, ca: PckCa, now: Date): Promise<CollateralSet> {
    let set: CollateralSet = {};
    if (this.intelDir !== undefined) {
      const tool = await loadClientTool(this.intelDir, tee, fmspc, ca, this.updateType);
      const loose = await loadLooseFiles(this.intelDir, tee, fmspc, ca, this.updateType);
      set = { ...tool, ...loose };
    }
    if (this.pcs !== undefined) await this.refresh(set, tee, fmspc, ca, now.getTime());
    return set;
  }

  /**
   * One online fetch per item at a time, and its outcome reused for RETRY_AFTER_MS: a result, so
   * that a verification that read the (still empty) disk before a concurrent one saved the item
   * does not fetch it again; a failure, so that an unreachable PCS is not asked on every quote.
   */
  private online<T>(key: string, run: () => Promise<T | undefined>): Promise<T | undefined> {
    const flying = this.flights.get(key);
    if (flying !== undefined) return flying as Promise<T | undefined>;
    const last = this.lastOnline.get(key);
    if (last !== undefined && Date.now() - last.at <= RETRY_AFTER_MS) return Promise.resolve(last.value as T | undefined);
    const flight = run()
      .then((value) => {
        this.lastOnline.set(key, { at: Date.now(), value });
        return value;
      })
      .finally(() => this.flights.delete(key));
    this.flights.set(key, flight);
    return flight;
  }

  private async save(rel: string, data: Buffer | string): Promise<void> {
    if (this.intelDir === undefined) return;
    try {
      await writeAtomic(join(this.intelDir, rel), data);
    } catch {
      // A read-only collateral directory still allows verification with the fetched item.
    }
  }

  private async refresh(set: CollateralSet, tee: IntelTee, fmspc: string, ca: PckCa, now: number): Promise<void> {
    const pcs = this.pcs as PcsClient;
    const early = this.updateType === 'early';
    const stale = (t: number | undefined): boolean => t === undefined || t < now;
    const jobs: Promise<void>[] = [];
    if (set.tcbInfo === undefined || stale(jsonNextUpdate(set.tcbInfo, 'tcbInfo'))) {
      jobs.push(
        this.online(`tcb/${tee}/${fmspc}`, () => pcs.tcbInfo(tee, fmspc)).then(async (item) => {
          if (item === undefined) return;
          set.tcbInfo = item;
          const rel = layout.tcbInfo(tee, fmspc, early);
          await this.save(rel, item.text);
          await this.save(layout.chainOf(rel), item.issuerChainPem);
        }),
      );
    }
    if (set.qeIdentity === undefined || stale(jsonNextUpdate(set.qeIdentity, 'enclaveIdentity'))) {
      jobs.push(
        this.online(`qe/${tee}`, () => pcs.qeIdentity(tee)).then(async (item) => {
          if (item === undefined) return;
          set.qeIdentity = item;
          const rel = layout.qeIdentity(tee, early);
          await this.save(rel, item.text);
          await this.save(layout.chainOf(rel), item.issuerChainPem);
        }),
      );
    }
    if (set.pckCrl === undefined || stale(crlNextUpdate(set.pckCrl))) {
      jobs.push(
        this.online(`pckcrl/${ca}`, () => pcs.pckCrl(ca)).then(async (r) => {
          if (r === undefined) return;
          set.pckCrl = r.der;
          await this.save(layout.pckCrl(ca), r.der);
          if (r.chain !== undefined) await this.save(layout.pckCrlChain(ca), r.chain);
        }),
      );
    }
    if (set.rootCaCrl === undefined || stale(crlNextUpdate(set.rootCaCrl))) {
      jobs.push(
        this.online('rootcacrl', () => pcs.rootCaCrl()).then(async (der) => {
          if (der === undefined) return;
          set.rootCaCrl = der;
          await this.save(layout.rootCaCrl, der);
        }),
      );
    }
    await Promise.all(jobs);
  }
}
