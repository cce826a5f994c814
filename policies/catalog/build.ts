/**
 * Builds `cloud-prices.json` from the real AWS and GCP prices in `../shared/data/prices/cloud-prices.csv`
 * (skypilot-catalog v7, extracted 2026-11-25). Run with `npm run catalog:build [csv]`.
 *
 * GCP prices a2/a3/g2 machines without their GPUs; the GPUs are separate rows with an empty instance type,
 * priced per (model, count, zone). They are added to the host price here.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { normalizeGpuModel } from '../gpu.ts';
import type { CatalogEntry } from './catalog.ts';

type Row = Record<
  'cloud' | 'type' | 'acc' | 'accCount' | 'vcpu' | 'mem' | 'price' | 'spot' | 'region' | 'zone',
  string
>;

/** GPUs a GCP machine type carries, which GCP prices separately. */
export function gcpGpus(instanceType: string): { model: string; count: number } | undefined {
  const a = /^a2-highgpu-(\d+)g$/.exec(instanceType);
  if (a) return { model: 'A100', count: Number(a[1]) };
  const u = /^a2-ultragpu-(\d+)g$/.exec(instanceType);
  if (u) return { model: 'A100-80GB', count: Number(u[1]) };
  const h = /^a3-highgpu-(\d+)g$/.exec(instanceType);
  if (h) return { model: 'H100', count: Number(h[1]) };
  const g = /^g2-standard-(\d+)$/.exec(instanceType);
  if (g) return { model: 'L4', count: ({ 24: 2, 48: 4, 96: 8 } as Record<string, number>)[g[1]!] ?? 1 };
  return undefined;
}

const round = (n: number) => Math.round(n * 1e5) / 1e5;

/** Parses the CSV text and returns catalog entries, one per (cloud, instance type, region). */
export function buildEntries(csv: string): CatalogEntry[] {
  const rows: Row[] = csv
    .split('\n')
    .slice(1)
    .filter((l) => l.trim())
    .map((l) => {
      const [cloud, type, acc, accCount, vcpu, mem, price, spot, region, zone] = l
        .split(',')
        .map((c) => c.trim());
      return { cloud, type, acc, accCount, vcpu, mem, price, spot, region, zone } as Row;
    });
  // GCP GPU prices by zone, model and count.
  const gpuPrice = new Map<string, { price: number; spot: number | null }>();
  for (const r of rows) {
    if (r.cloud === 'gcp' && r.type === '') {
      const model = normalizeGpuModel(r.acc);
      gpuPrice.set(`${r.zone}|${model}|${Number(r.accCount)}`, {
        price: Number(r.price),
        spot: r.spot ? Number(r.spot) : null,
      });
    }
  }
  const entries = new Map<string, CatalogEntry>();
  for (const r of rows) {
    if (r.type === '') continue;
    let onDemand = Number(r.price);
    let spot: number | null = r.spot ? Number(r.spot) : null;
    let gpu: CatalogEntry['gpu'] = null;
    if (r.cloud === 'gcp') {
      const carried = gcpGpus(r.type);
      if (carried) {
        const model = normalizeGpuModel(carried.model)!;
        const add = gpuPrice.get(`${r.zone}|${model}|${carried.count}`);
        if (!add) continue; // the GPU is not sold in this zone
        onDemand += add.price;
        spot = spot === null || add.spot === null ? null : spot + add.spot;
        gpu = { model, count: carried.count };
      }
    } else if (r.acc) {
      const model = normalizeGpuModel(r.acc);
      if (!model) throw new Error(`unknown GPU '${r.acc}' for ${r.type}`);
      gpu = { model, count: Number(r.accCount) };
    }
    const k = `${r.cloud}|${r.type}|${r.region}`;
    let e = entries.get(k);
    if (!e) {
      e = {
        cloud: r.cloud,
        instanceType: r.type,
        region: r.region,
        zones: [],
        vcpu: Number(r.vcpu),
        memoryGiB: Number(r.mem),
        gpu,
        onDemand: round(onDemand),
        spot: null,
        spotByZone: {},
      };
      entries.set(k, e);
    }
    e.zones.push(r.zone);
    // Zones of a region share the on-demand price; keep the lowest if a row disagrees.
    e.onDemand = Math.min(e.onDemand, round(onDemand));
    if (spot !== null) {
      e.spotByZone[r.zone] = round(spot);
      e.spot = e.spot === null ? round(spot) : Math.min(e.spot, round(spot));
    }
  }
  return [...entries.values()].sort(
    (a, b) =>
      a.cloud.localeCompare(b.cloud) ||
      a.region.localeCompare(b.region) ||
      a.instanceType.localeCompare(b.instanceType),
  );
}

/** The JSON text written to `cloud-prices.json`: metadata, then one entry per line. */
export function catalogJson(entries: readonly CatalogEntry[]): string {
  const head = {
    source:
      'skypilot-org/skypilot-catalog catalogs/v7/aws/vms.csv and catalogs/v7/gcp/vms.csv, via shared/data/prices/cloud-prices.csv',
    extracted: '2026-11-25',
    currency: 'USD',
  };
  const lines = entries.map((e) => `    ${JSON.stringify(e)}`);
  return `{\n  "source": ${JSON.stringify(head.source)},\n  "extracted": "${head.extracted}",\n  "currency": "USD",\n  "entries": [\n${lines.join(',\n')}\n  ]\n}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const csvPath =
    process.argv[2] ??
    fileURLToPath(new URL('../../../shared/data/prices/cloud-prices.csv', import.meta.url));
  const entries = buildEntries(readFileSync(csvPath, 'utf8'));
  const out = fileURLToPath(new URL('./cloud-prices.json', import.meta.url));
  writeFileSync(out, catalogJson(entries));
  const counts = new Map<string, number>();
  for (const e of entries)
    counts.set(`${e.cloud} ${e.region}`, (counts.get(`${e.cloud} ${e.region}`) ?? 0) + 1);
  for (const [k, n] of counts) console.log(`${k.padEnd(20)} ${n} instance types`);
  console.log(`wrote ${entries.length} entries to ${out}`);
}
