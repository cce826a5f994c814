/**
 * The price catalog: instance types with their shape and on-demand / spot $/hour per region, built from
 * real AWS and GCP prices and shipped with Gantry (`cloud-prices.json`, made by `npm run catalog:build`).
 * Overrides (negotiated rates, on-prem hardware) give a new catalog; the shipped one never changes.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { CatalogError } from '../errors.ts';
import { type GpuModel, gpuModelNames } from '../gpu.ts';
import { closest } from '../suggest.ts';

const money = z.number().finite().nonnegative();
const gpuModel = z.enum(gpuModelNames as [GpuModel, ...GpuModel[]]);

/** GPUs of one node: `count` devices of one canonical model. */
export const catalogGpuSchema = z.strictObject({ model: gpuModel, count: z.number().int().positive() });

/** One instance type in one region. Validates the shipped JSON and every whole entry an override adds. */
export const catalogEntrySchema = z.strictObject({
  cloud: z.string().min(1),
  instanceType: z.string().min(1),
  region: z.string().min(1),
  /** Zones that sell the type; empty for on-prem types. */
  zones: z.array(z.string().min(1)),
  vcpu: z.number().finite().positive(),
  memoryGiB: z.number().finite().positive(),
  gpu: catalogGpuSchema.nullable(),
  /** $/hour on demand, GPUs included. */
  onDemand: money,
  /** $/hour on spot in the cheapest zone; null when no zone sells spot. */
  spot: money.nullable(),
  spotByZone: z.record(z.string(), money),
});

/** One instance type in one region. Prices are $/hour; `spot` is the cheapest zone's, null when none. */
export type CatalogEntry = z.infer<typeof catalogEntrySchema>;

/**
 * A negotiated rate or an on-prem type. For a known (cloud, instanceType, region) it replaces only the
 * fields it sets; otherwise it adds a whole entry and must give `vcpu`, `memoryGiB` and `onDemand`.
 */
export const catalogOverrideSchema = z.strictObject({
  cloud: z.string().min(1),
  instanceType: z.string().min(1),
  region: z.string().min(1),
  onDemand: money.optional(),
  spot: money.optional(),
  vcpu: z.number().finite().positive().optional(),
  memoryGiB: z.number().finite().positive().optional(),
  gpu: catalogGpuSchema.optional(),
});

/** See {@link catalogOverrideSchema}. */
export type CatalogOverride = z.infer<typeof catalogOverrideSchema>;

/** Where the prices come from. */
export interface CatalogMeta {
  source: string;
  /** Day the prices were extracted, `YYYY-MM-DD`. */
  extracted: string;
  currency: string;
}

/** Metadata of the shipped catalog; `build.ts` writes it into `cloud-prices.json`. */
export const BUILTIN_CATALOG_META: Readonly<CatalogMeta> = Object.freeze({
  source: 'skypilot-org/skypilot-catalog v7 catalogs/v7/{aws,gcp}/vms.csv via data/prices/cloud-prices.csv',
  extracted: '2026-11-25',
  currency: 'USD',
});

/** The shape of `cloud-prices.json`. */
export const catalogFileSchema = z.strictObject({
  source: z.string().min(1),
  extracted: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  currency: z.string().min(1),
  entries: z.array(catalogEntrySchema),
});

/** An entry bought one way: on-demand or spot, at that $/hour. */
export type CatalogOffer = CatalogEntry & { capacityType: 'spot' | 'on-demand'; price: number };

/** Filter for {@link PriceCatalog.find}. Unset fields match everything. */
export interface CatalogFilter {
  gpu?: GpuModel;
  /** At least this many GPUs per node (of `gpu`, when set). */
  minGpus?: number;
  /** true: spot offers only; false: on-demand only; unset: both. */
  spot?: boolean;
  cloud?: string;
  region?: string;
  /** Highest $/hour per node. */
  maxPrice?: number;
}

/** A catalog entry or override that cannot be used; names the entry. Keeps the name `CatalogError`. */
export class CatalogEntryError extends CatalogError {
  constructor(
    message: string,
    readonly cloud: string,
    readonly instanceType: string,
    readonly region: string,
    options?: ErrorOptions,
  ) {
    super(`${cloud} ${instanceType} in ${region}: ${message}`, options);
  }
}

/**
 * Instance types and prices, looked up by (cloud, instance type, region). Immutable: `withOverrides`
 * returns a new catalog.
 *
 * @example
 * const catalog = loadBuiltinCatalog();
 * catalog.lookup('aws', 'p5.48xlarge', 'us-east-1')?.onDemand; // 98.32
 * catalog.find({ gpu: 'H100', spot: true })[0];                 // the cheapest H100 spot offer
 * catalog.withOverrides([{ cloud: 'onprem', instanceType: 'dgx-a100', region: 'dc1',
 *   vcpu: 128, memoryGiB: 1024, gpu: { model: 'A100-80GB', count: 8 }, onDemand: 0 }]);
 */
export class PriceCatalog {
  readonly entries: readonly CatalogEntry[];
  private readonly byKey = new Map<string, CatalogEntry>();

  /** Throws {@link CatalogEntryError} when two entries share a (cloud, instanceType, region). */
  constructor(
    entries: readonly CatalogEntry[],
    readonly meta: CatalogMeta,
  ) {
    for (const e of entries) {
      const k = key(e.cloud, e.instanceType, e.region);
      if (this.byKey.has(k)) throw new CatalogEntryError('listed twice', e.cloud, e.instanceType, e.region);
      this.byKey.set(k, e);
    }
    this.entries = [...entries];
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

  /** Distinct instance type names, of one cloud or all, sorted. */
  instanceTypes(cloud?: string): string[] {
    return distinct(
      this.entries.filter((e) => cloud === undefined || e.cloud === cloud).map((e) => e.instanceType),
    );
  }

  /** Distinct clouds, sorted. */
  clouds(): string[] {
    return distinct(this.entries.map((e) => e.cloud));
  }

  /** Distinct regions, of one cloud or all, sorted. */
  regions(cloud?: string): string[] {
    return distinct(
      this.entries.filter((e) => cloud === undefined || e.cloud === cloud).map((e) => e.region),
    );
  }

  /**
   * The closest known instance type of the cloud, for "did you mean" messages.
   *
   * @example
   * loadBuiltinCatalog().suggestInstanceType('aws', 'p5.48xlage'); // 'p5.48xlarge'
   */
  suggestInstanceType(cloud: string, name: string): string | undefined {
    return closest(name, this.instanceTypes(cloud));
  }

  /**
   * Offers matching the filter, cheapest first (ties: cloud, region, instance type, spot before
   * on-demand). Each entry gives an on-demand offer and, where some zone sells spot, a spot offer.
   */
  find(filter: CatalogFilter = {}): CatalogOffer[] {
    const offers: CatalogOffer[] = [];
    for (const e of this.entries) {
      if (filter.cloud !== undefined && e.cloud !== filter.cloud) continue;
      if (filter.region !== undefined && e.region !== filter.region) continue;
      if (filter.gpu !== undefined && e.gpu?.model !== filter.gpu) continue;
      if (filter.minGpus !== undefined && (e.gpu?.count ?? 0) < filter.minGpus) continue;
      if (filter.spot !== false && e.spot !== null)
        offers.push({ ...e, capacityType: 'spot', price: e.spot });
      if (filter.spot !== true) offers.push({ ...e, capacityType: 'on-demand', price: e.onDemand });
    }
    return offers
      .filter((o) => filter.maxPrice === undefined || o.price <= filter.maxPrice)
      .sort(
        (a, b) =>
          a.price - b.price ||
          a.cloud.localeCompare(b.cloud) ||
          a.region.localeCompare(b.region) ||
          a.instanceType.localeCompare(b.instanceType) ||
          b.capacityType.localeCompare(a.capacityType),
      );
  }

  /**
   * A new catalog with overrides applied in order. Throws {@link CatalogEntryError} for an override that
   * is malformed, or that adds a type without `vcpu`, `memoryGiB` and `onDemand`.
   */
  withOverrides(overrides: readonly CatalogOverride[]): PriceCatalog {
    const merged = new Map(this.byKey);
    for (const raw of overrides) {
      const o = parseOverride(raw);
      const k = key(o.cloud, o.instanceType, o.region);
      const base = merged.get(k);
      merged.set(k, base ? overrideEntry(base, o) : newEntry(o));
    }
    return new PriceCatalog([...merged.values()], this.meta);
  }
}

function parseOverride(raw: CatalogOverride): CatalogOverride {
  const parsed = catalogOverrideSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
  throw new CatalogEntryError(
    `bad override: ${where}${issue?.message}`,
    raw.cloud,
    raw.instanceType,
    raw.region,
    {
      cause: parsed.error,
    },
  );
}

function overrideEntry(base: CatalogEntry, o: CatalogOverride): CatalogEntry {
  const { spot } = o;
  return {
    ...base,
    vcpu: o.vcpu ?? base.vcpu,
    memoryGiB: o.memoryGiB ?? base.memoryGiB,
    gpu: o.gpu ?? base.gpu,
    onDemand: o.onDemand ?? base.onDemand,
    spot: spot ?? base.spot,
    // A negotiated spot rate holds in every zone, so the per-zone prices must not disagree with it.
    spotByZone: spot === undefined ? base.spotByZone : Object.fromEntries(base.zones.map((z) => [z, spot])),
  };
}

function newEntry(o: CatalogOverride): CatalogEntry {
  const { vcpu, memoryGiB, onDemand } = o;
  if (vcpu === undefined || memoryGiB === undefined || onDemand === undefined) {
    const missing = Object.entries({ vcpu, memoryGiB, onDemand }).filter(([, v]) => v === undefined);
    throw new CatalogEntryError(
      `not in the catalog, so the override must set ${missing.map(([f]) => f).join(', ')} (a price of 0 is fine for owned hardware)`,
      o.cloud,
      o.instanceType,
      o.region,
    );
  }
  const { cloud, instanceType, region } = o;
  return {
    cloud,
    instanceType,
    region,
    zones: [],
    vcpu,
    memoryGiB,
    gpu: o.gpu ?? null,
    onDemand,
    spot: o.spot ?? null,
    spotByZone: {},
  };
}

function key(cloud: string, instanceType: string, region: string): string {
  return `${cloud}|${instanceType}|${region}`;
}

function distinct(values: readonly string[]): string[] {
  return [...new Set(values)].sort();
}

let builtin: PriceCatalog | undefined;

/**
 * The catalog shipped with Gantry (`cloud-prices.json` beside this module), read and validated once per
 * process. Throws `CatalogError` when the file is missing or malformed.
 *
 * @example
 * const { meta } = loadBuiltinCatalog(); // { source: 'skypilot-org/…', extracted: '2026-11-25', currency: 'USD' }
 */
export function loadBuiltinCatalog(): PriceCatalog {
  if (builtin) return builtin;
  const url = new URL('./cloud-prices.json', import.meta.url);
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(url, 'utf8'));
  } catch (err) {
    throw new CatalogError(`cannot read the built-in price catalog ${url.pathname}`, { cause: err });
  }
  const parsed = catalogFileSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CatalogError(`${url.pathname}: ${issue?.path.join('.')}: ${issue?.message}`, {
      cause: parsed.error,
    });
  }
  const { entries, ...meta } = parsed.data;
  builtin = new PriceCatalog(entries, meta);
  return builtin;
}
