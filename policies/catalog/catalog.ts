/**
 * The price catalog: instance types with their shape and on-demand / spot $/hour per region, built from
 * real AWS and GCP prices and shipped with Gantry (`cloud-prices.json`, made by `npm run catalog:build`).
 */
import { readFileSync } from 'node:fs';
import type { GpuModel } from '../gpu.ts';
import { closest } from '../suggest.ts';

/** One instance type in one region. Prices are $/hour; `spot` is the cheapest zone's, null when none. */
export interface CatalogEntry {
  cloud: string;
  instanceType: string;
  region: string;
  zones: string[];
  vcpu: number;
  memoryGiB: number;
  gpu: { model: GpuModel; count: number } | null;
  onDemand: number;
  spot: number | null;
  spotByZone: Record<string, number>;
}

/** An entry bought one way: on-demand or spot, at that price. */
export interface CatalogOffer extends CatalogEntry {
  capacityType: 'spot' | 'on-demand';
  price: number;
}

/** A negotiated rate or an on-prem type: replaces the fields it sets, or adds a whole entry. */
export interface CatalogOverride {
  cloud: string;
  instanceType: string;
  region: string;
  onDemand?: number | undefined;
  spot?: number | undefined;
  vcpu?: number | undefined;
  memoryGiB?: number | undefined;
  gpu?: { model: GpuModel; count: number } | undefined;
}

/** Where the shipped prices come from. */
export interface CatalogMeta {
  source: string;
  extracted: string;
  currency: string;
}

/** Filter for {@link PriceCatalog.find}. */
export interface CatalogFilter {
  gpu?: GpuModel;
  minGpus?: number;
  spot?: boolean;
  cloud?: string;
  region?: string;
  maxPrice?: number;
}

/** Instance types and prices, looked up by (cloud, instance type, region). Immutable. */
export class PriceCatalog {
  private readonly byKey = new Map<string, CatalogEntry>();

  constructor(
    readonly entries: readonly CatalogEntry[],
    readonly meta: CatalogMeta,
  ) {
    for (const e of entries) this.byKey.set(key(e.cloud, e.instanceType, e.region), e);
  }

  /** The entry for an instance type in a region. */
  lookup(cloud: string, instanceType: string, region: string): CatalogEntry | undefined {
    return this.byKey.get(key(cloud, instanceType, region));
  }

  /** Whether the catalog knows the type (in the region, when given). */
  has(cloud: string, instanceType: string, region?: string): boolean {
    if (region !== undefined) return this.byKey.has(key(cloud, instanceType, region));
    return this.entries.some((e) => e.cloud === cloud && e.instanceType === instanceType);
  }

  /** Distinct instance type names, of one cloud or all. */
  instanceTypes(cloud?: string): string[] {
    return [
      ...new Set(this.entries.filter((e) => !cloud || e.cloud === cloud).map((e) => e.instanceType)),
    ].sort();
  }

  /** The closest known instance type name, for "did you mean" messages. */
  suggestInstanceType(cloud: string, name: string): string | undefined {
    return closest(name, this.instanceTypes(cloud));
  }

  /**
   * Offers matching the filter, cheapest first. Each entry gives an on-demand offer and, where it has a
   * spot price, a spot offer.
   *
   * @example
   * loadBuiltinCatalog().find({ gpu: 'H100', spot: true })[0]; // the cheapest H100 spot offer
   */
  find(filter: CatalogFilter = {}): CatalogOffer[] {
    const offers: CatalogOffer[] = [];
    for (const e of this.entries) {
      if (filter.cloud && e.cloud !== filter.cloud) continue;
      if (filter.region && e.region !== filter.region) continue;
      if (filter.gpu && e.gpu?.model !== filter.gpu) continue;
      if (filter.minGpus && (e.gpu?.count ?? 0) < filter.minGpus) continue;
      if (filter.spot !== false) {
        if (e.spot !== null) offers.push({ ...e, capacityType: 'spot', price: e.spot });
      }
      if (filter.spot !== true) offers.push({ ...e, capacityType: 'on-demand', price: e.onDemand });
    }
    return offers
      .filter((o) => filter.maxPrice === undefined || o.price <= filter.maxPrice)
      .sort((a, b) => a.price - b.price || a.instanceType.localeCompare(b.instanceType));
  }

  /** A new catalog with overrides applied (negotiated rates, on-prem hardware). */
  withOverrides(overrides: readonly CatalogOverride[]): PriceCatalog {
    const merged = new Map(this.byKey);
    for (const o of overrides) {
      const k = key(o.cloud, o.instanceType, o.region);
      const base = merged.get(k);
      const entry: CatalogEntry = {
        cloud: o.cloud,
        instanceType: o.instanceType,
        region: o.region,
        zones: base?.zones ?? [],
        vcpu: o.vcpu ?? base?.vcpu ?? 0,
        memoryGiB: o.memoryGiB ?? base?.memoryGiB ?? 0,
        gpu: o.gpu ?? base?.gpu ?? null,
        onDemand: o.onDemand ?? base?.onDemand ?? 0,
        spot: o.spot ?? base?.spot ?? null,
        spotByZone: base?.spotByZone ?? {},
      };
      merged.set(k, entry);
    }
    return new PriceCatalog([...merged.values()], this.meta);
  }
}

function key(cloud: string, instanceType: string, region: string): string {
  return `${cloud}|${instanceType}|${region}`;
}

let builtin: PriceCatalog | undefined;

/** The catalog shipped with Gantry, read once per process. */
export function loadBuiltinCatalog(): PriceCatalog {
  if (!builtin) {
    const data = JSON.parse(
      readFileSync(new URL('./cloud-prices.json', import.meta.url), 'utf8'),
    ) as CatalogMeta & {
      entries: CatalogEntry[];
    };
    builtin = new PriceCatalog(data.entries, {
      source: data.source,
      extracted: data.extracted,
      currency: data.currency,
    });
  }
  return builtin;
}
