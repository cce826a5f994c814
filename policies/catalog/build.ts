/**
 * Builds `cloud-prices.json` from the real AWS and GCP prices in `data/prices/cloud-prices.csv`
 * (skypilot-catalog v7, extracted 2026-11-25): `npm run catalog:build [csv] [out.json]`. The JSON is
 * committed and shipped; Gantry never reads the CSV at run time.
 *
 * GCP prices a2/a3/g2 machines without their GPUs; the GPUs are separate rows with an empty instance type,
 * priced per (model, count, zone). They are added to the host price here, zone by zone.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CatalogError } from '../errors.ts';
import { type GpuModel, normalizeGpuModel } from '../gpu.ts';
import { BUILTIN_CATALOG_META, type CatalogEntry, catalogEntrySchema } from './catalog.ts';

const COLUMNS = [
  'cloud',
  'InstanceType',
  'AcceleratorName',
  'AcceleratorCount',
  'vCPUs',
  'MemoryGiB',
  'Price',
  'SpotPrice',
  'Region',
  'AvailabilityZone',
] as const;

/** One CSV row, keyed by column name, cells trimmed. `line` is 1-based, counting the header. */
export type PriceRow = Record<(typeof COLUMNS)[number], string> & { line: number };

/** A row or cell the builder cannot read; carries the CSV line. */
export class PriceCsvError extends CatalogError {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`cloud-prices.csv:${line}: ${message}`);
  }
}

/**
 * Splits the CSV into rows. The file has no quoted fields (checked: a quote is an error), so a comma
 * always separates cells.
 */
export function parsePriceCsv(text: string): PriceRow[] {
  const lines = text.split(/\r?\n/);
  const header = lines[0]?.split(',').map((c) => c.trim()) ?? [];
  if (header.join(',') !== COLUMNS.join(','))
    throw new PriceCsvError(`expected columns ${COLUMNS.join(',')}`, 1);
  const rows: PriceRow[] = [];
  lines.slice(1).forEach((l, i) => {
    const line = i + 2;
    if (l.trim() === '') return;
    if (l.includes('"')) throw new PriceCsvError('quoted fields are not supported', line);
    const cells = l.split(',').map((c) => c.trim());
    if (cells.length !== COLUMNS.length)
      throw new PriceCsvError(`${cells.length} cells, expected ${COLUMNS.length}`, line);
    const row = Object.fromEntries(COLUMNS.map((c, j) => [c, cells[j] ?? ''])) as Record<
      (typeof COLUMNS)[number],
      string
    >;
    rows.push({ ...row, line });
  });
  return rows;
}

/**
 * The GPUs a GCP machine type carries, which GCP prices as separate rows; undefined for CPU-only types.
 *
 * @example
 * gcpMachineGpus('a3-highgpu-8g');  // { model: 'H100', count: 8 }
 * gcpMachineGpus('g2-standard-48'); // { model: 'L4', count: 4 }
 */
export function gcpMachineGpus(instanceType: string): { model: GpuModel; count: number } | undefined {
  const a2 = /^a2-(high|ultra)gpu-(\d+)g$/.exec(instanceType);
  if (a2) return { model: a2[1] === 'ultra' ? 'A100-80GB' : 'A100', count: Number(a2[2]) };
  const a3 = /^a3-highgpu-(\d+)g$/.exec(instanceType);
  if (a3) return { model: 'H100', count: Number(a3[1]) };
  const g2 = /^g2-standard-(\d+)$/.exec(instanceType);
  // Only the three largest g2 shapes carry more than one L4.
  if (g2)
    return {
      model: 'L4',
      count: ({ '24': 2, '48': 4, '96': 8 } as Record<string, number>)[g2[1] ?? ''] ?? 1,
    };
  return undefined;
}

/** Entries built from the CSV, and what the builder skipped or reconciled, one sentence each. */
export interface BuildResult {
  entries: CatalogEntry[];
  warnings: string[];
}

interface ZonePrice {
  onDemand: number;
  spot: number | null;
}

/** An entry being gathered: its shape, the CSV line that introduced it, and its zones' prices. */
interface Slot extends Pick<
  CatalogEntry,
  'cloud' | 'instanceType' | 'region' | 'vcpu' | 'memoryGiB' | 'gpu'
> {
  line: number;
  zones: Map<string, ZonePrice>;
}

/** GPU rows (empty instance type, GCP) by `zone|model|count`, and the keys no machine has used yet. */
function gpuRowPrices(rows: readonly PriceRow[], warnings: string[]) {
  const prices = new Map<string, ZonePrice>();
  const unused = new Map<string, string>();
  for (const r of rows.filter((r) => r.InstanceType === '')) {
    const model = gpuModel(r);
    const k = `${r.AvailabilityZone}|${model}|${Number(r.AcceleratorCount)}`;
    const onDemand = money(r.Price, r, 'Price');
    if (onDemand === null) {
      warnings.push(
        `${r.cloud} ${model}:${r.AcceleratorCount} ${r.AvailabilityZone} (line ${r.line}): no price, row skipped`,
      );
      continue;
    }
    prices.set(k, { onDemand, spot: money(r.SpotPrice, r, 'SpotPrice') });
    unused.set(k, `${r.cloud} ${model}`);
  }
  return { gpuPrices: prices, unusedGpus: unused };
}

/** Turns CSV rows into catalog entries, one per (cloud, instance type, region), sorted. */
export function buildEntries(rows: readonly PriceRow[]): BuildResult {
  const warnings: string[] = [];
  const { gpuPrices, unusedGpus } = gpuRowPrices(rows, warnings);

  const byKey = new Map<string, Slot>();
  for (const r of rows.filter((r) => r.InstanceType !== '')) {
    const at = `${r.cloud} ${r.InstanceType} ${r.AvailabilityZone} (line ${r.line})`;
    const host = money(r.Price, r, 'Price');
    if (host === null) {
      warnings.push(`${at}: no on-demand price, row skipped`);
      continue;
    }
    let price: ZonePrice = { onDemand: host, spot: money(r.SpotPrice, r, 'SpotPrice') };
    let gpu: CatalogEntry['gpu'] = r.AcceleratorName
      ? { model: gpuModel(r), count: Number(r.AcceleratorCount) }
      : null;
    const carried = r.cloud === 'gcp' ? gcpMachineGpus(r.InstanceType) : undefined;
    if (carried) {
      const k = `${r.AvailabilityZone}|${carried.model}|${carried.count}`;
      const add = gpuPrices.get(k);
      if (!add) {
        warnings.push(`${at}: no ${carried.model}:${carried.count} price in the zone, row skipped`);
        continue;
      }
      unusedGpus.delete(k);
      const spot = price.spot === null || add.spot === null ? null : price.spot + add.spot;
      price = { onDemand: price.onDemand + add.onDemand, spot };
      gpu = carried;
    }
    const k = `${r.cloud}|${r.InstanceType}|${r.Region}`;
    let slot = byKey.get(k);
    if (!slot) {
      const shape = { vcpu: Number(r.vCPUs), memoryGiB: Number(r.MemoryGiB), gpu };
      slot = {
        cloud: r.cloud,
        instanceType: r.InstanceType,
        region: r.Region,
        ...shape,
        line: r.line,
        zones: new Map(),
      };
      byKey.set(k, slot);
    }
    const seen = slot.zones.get(r.AvailabilityZone);
    if (seen) {
      // The source lists some zones twice (p4de.24xlarge), once with and once without a spot price.
      warnings.push(`${at}: zone listed twice, prices merged`);
      price = { onDemand: Math.min(seen.onDemand, price.onDemand), spot: minOrNull(seen.spot, price.spot) };
    }
    slot.zones.set(r.AvailabilityZone, price);
  }

  const entries = [...byKey.values()].map((slot) => finish(slot, warnings));
  const unused = [...new Set(unusedGpus.values())].sort();
  if (unused.length > 0)
    warnings.push(`GPU rows no machine type uses (n1 attachable GPUs): ${unused.join(', ')}`);
  entries.sort(
    (a, b) =>
      a.cloud.localeCompare(b.cloud) ||
      a.region.localeCompare(b.region) ||
      a.instanceType.localeCompare(b.instanceType, 'en', { numeric: true }),
  );
  return { entries, warnings };
}

/** Fills the per-region fields from the zones' prices, and checks the entry against the schema. */
function finish(slot: Slot, warnings: string[]): CatalogEntry {
  const { line, zones, ...shape } = slot;
  const names = [...zones.keys()].sort();
  const onDemand = new Set(names.map((z) => round(zones.get(z)?.onDemand ?? 0)));
  if (onDemand.size > 1) {
    warnings.push(
      `${shape.cloud} ${shape.instanceType} ${shape.region}: zones disagree on on-demand price, kept the lowest`,
    );
  }
  const spotByZone: Record<string, number> = {};
  for (const z of names) {
    const spot = zones.get(z)?.spot;
    if (spot !== null && spot !== undefined) spotByZone[z] = round(spot);
  }
  const spots = Object.values(spotByZone);
  const entry = {
    ...shape,
    zones: names,
    onDemand: Math.min(...onDemand),
    spot: spots.length > 0 ? Math.min(...spots) : null,
    spotByZone,
  };
  // zod returns keys in schema order, which is the order in the JSON file.
  const parsed = catalogEntrySchema.safeParse(entry);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PriceCsvError(`${shape.instanceType}: ${issue?.path.join('.')}: ${issue?.message}`, line);
  }
  return parsed.data;
}

function gpuModel(r: PriceRow): GpuModel {
  const model = normalizeGpuModel(r.AcceleratorName);
  if (!model) throw new PriceCsvError(`unknown GPU '${r.AcceleratorName}'`, r.line);
  return model;
}

/** A $/hour cell; null when empty, which the source uses for "not sold". */
function money(cell: string, r: PriceRow, column: string): number | null {
  if (cell === '') return null;
  const n = Number(cell);
  if (!Number.isFinite(n) || n < 0) throw new PriceCsvError(`${column} '${cell}' is not a price`, r.line);
  return n;
}

function minOrNull(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  return b === null ? a : Math.min(a, b);
}

// Sums of host and GPU prices pick up float noise (0.1 + 0.2); five decimals is the source's precision.
function round(n: number): number {
  return Number(n.toFixed(5));
}

/** The text of `cloud-prices.json`: metadata, then one entry per line so that diffs stay readable. */
export function catalogJson(entries: readonly CatalogEntry[]): string {
  const head = Object.entries(BUILTIN_CATALOG_META).map(
    ([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)},`,
  );
  const lines = entries.map((e) => `    ${JSON.stringify(e)}`).join(',\n');
  return `{\n${head.join('\n')}\n  "entries": [\n${lines}\n  ]\n}\n`;
}

/** Reads the CSV, writes the JSON, and returns what was built. */
export function buildCatalogFile(csvPath: string, outPath: string): BuildResult {
  const result = buildEntries(parsePriceCsv(readFileSync(csvPath, 'utf8')));
  writeFileSync(outPath, catalogJson(result.entries));
  return result;
}

/** Entry counts per cloud and region, e.g. `aws us-east-1  52`. */
export function summarize(entries: readonly CatalogEntry[]): string[] {
  const counts = new Map<string, number>();
  for (const e of entries)
    counts.set(`${e.cloud} ${e.region}`, (counts.get(`${e.cloud} ${e.region}`) ?? 0) + 1);
  return [...counts].map(([where, n]) => `${where.padEnd(20)} ${String(n).padStart(3)} instance types`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const repoRoot = new URL('../../', import.meta.url);
  const csvPath = process.argv[2] ?? fileURLToPath(new URL('data/prices/cloud-prices.csv', repoRoot));
  const outPath = process.argv[3] ?? fileURLToPath(new URL('./cloud-prices.json', import.meta.url));
  const { entries, warnings } = buildCatalogFile(csvPath, outPath);
  for (const line of summarize(entries)) console.log(line);
  for (const w of warnings) console.warn(`warning: ${w}`);
  console.log(`wrote ${entries.length} entries from ${csvPath} to ${outPath}`);
}
