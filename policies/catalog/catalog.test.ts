import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildCatalogFile, buildEntries, gcpMachineGpus, parsePriceCsv, PriceCsvError } from './build.ts';
import {
  BUILTIN_CATALOG_META,
  type CatalogEntry,
  CatalogEntryError,
  type CatalogOverride,
  loadBuiltinCatalog,
  PriceCatalog,
} from './catalog.ts';

const catalog = loadBuiltinCatalog();

function entry(cloud: string, instanceType: string, region: string): CatalogEntry {
  const e = catalog.lookup(cloud, instanceType, region);
  if (!e) throw new Error(`${cloud} ${instanceType} ${region} missing from the built-in catalog`);
  return e;
}

describe('built-in catalog: real AWS and GCP prices', () => {
  it('ships its source and date', () => {
    expect(catalog.meta).toEqual(BUILTIN_CATALOG_META);
    expect(catalog.meta.extracted).toBe('2026-11-25');
    expect(loadBuiltinCatalog()).toBe(catalog);
    expect(catalog.entries).toHaveLength(223);
    expect(catalog.clouds()).toEqual(['aws', 'gcp']);
  });

  it('reads AWS p5.48xlarge in us-east-1 as in the CSV, GPUs included', () => {
    const e = entry('aws', 'p5.48xlarge', 'us-east-1');
    expect(e).toMatchObject({
      vcpu: 192,
      memoryGiB: 2048,
      gpu: { model: 'H100', count: 8 },
      onDemand: 98.32,
    });
    expect(e.zones).toEqual(['use1-az1', 'use1-az2', 'use1-az3', 'use1-az4', 'use1-az5', 'use1-az6']);
    // Spot is the cheapest zone's: use1-az3 at 20.9934 (the others 25.30 to 30.33).
    expect(e.spot).toBe(20.9934);
    expect(e.spotByZone['use1-az1']).toBe(30.326);
  });

  it('adds the GCP GPU rows to the host price, zone by zone', () => {
    const e = entry('gcp', 'a3-highgpu-8g', 'us-central1');
    expect(e.gpu).toEqual({ model: 'H100', count: 8 });
    // host 9.46006 + H100:8 33.60609 = 43.06615
    expect(e.onDemand).toBe(43.06615);
    // host spot 2.17547 + H100:8 spot 18.024 = 20.19947
    expect(e.spot).toBe(20.19947);
    expect(e.zones).toEqual(['us-central1-a', 'us-central1-b', 'us-central1-c']);
  });

  it('gives g2-standard-48 four L4s: host 1.7615 + L4:4 2.24016 = 4.00166', () => {
    expect(entry('gcp', 'g2-standard-48', 'us-central1')).toMatchObject({
      gpu: { model: 'L4', count: 4 },
      onDemand: 4.00166,
      spot: 1.59723, // 0.70483 + 0.8924
    });
  });

  it.each([
    ['a2-highgpu-4g', { model: 'A100', count: 4 }],
    ['a2-ultragpu-8g', { model: 'A100-80GB', count: 8 }],
    ['a3-highgpu-2g', { model: 'H100', count: 2 }],
    ['g2-standard-8', { model: 'L4', count: 1 }],
    ['g2-standard-24', { model: 'L4', count: 2 }],
    ['g2-standard-96', { model: 'L4', count: 8 }],
    ['n2-standard-8', undefined],
    ['c3-standard-22', undefined],
  ])('maps GCP %s to its GPUs', (type, gpus) => {
    expect(gcpMachineGpus(type)).toEqual(gpus);
  });

  it('leaves zones without a spot price out of spotByZone', () => {
    const e = entry('aws', 'p3.2xlarge', 'us-east-1');
    expect(e.zones).toHaveLength(6);
    expect(Object.keys(e.spotByZone)).toEqual(['use1-az1', 'use1-az2', 'use1-az5', 'use1-az6']);
    expect(e.spot).toBe(0.5197);
  });

  it('merges zones the source lists twice (p4de.24xlarge) and drops rows without an on-demand price', () => {
    const e = entry('aws', 'p4de.24xlarge', 'us-east-1');
    expect(e.zones).toEqual(['use1-az1', 'use1-az2', 'use1-az3', 'use1-az4', 'use1-az5', 'use1-az6']);
    expect(e.spotByZone).toEqual({ 'use1-az4': 7.8074, 'use1-az6': 5.8394 });
    // The only p5e.48xlarge row has a spot price but no on-demand one.
    expect(catalog.has('aws', 'p5e.48xlarge')).toBe(false);
  });

  it('suggests the closest instance type of the same cloud', () => {
    expect(catalog.suggestInstanceType('aws', 'p5.48xlage')).toBe('p5.48xlarge');
    expect(catalog.suggestInstanceType('aws', 'a3-highgpu-8g')).toBeUndefined();
    expect(catalog.has('gcp', 'a3-highgpu-8g')).toBe(true);
    expect(catalog.has('gcp', 'a3-highgpu-8g', 'us-east-1')).toBe(false);
    expect(catalog.instanceTypes('gcp')).toContain('g2-standard-96');
  });
});

describe('PriceCatalog.find', () => {
  it('lists the cheapest H100 spot offer first: GCP a3-highgpu-1g in us-east4, 0.21294 + 1.7632', () => {
    const offers = catalog.find({ gpu: 'H100', spot: true });
    expect(offers[0]).toMatchObject({ instanceType: 'a3-highgpu-1g', region: 'us-east4', price: 1.97614 });
    expect(offers.every((o) => o.capacityType === 'spot' && o.gpu?.model === 'H100')).toBe(true);
    const prices = offers.map((o) => o.price);
    expect(prices).toEqual([...prices].sort((a, b) => a - b));
  });

  it.each<
    [string, Parameters<PriceCatalog['find']>[0], (o: ReturnType<PriceCatalog['find']>[number]) => boolean]
  >([
    ['on-demand only', { spot: false }, (o) => o.capacityType === 'on-demand' && o.price === o.onDemand],
    [
      'one cloud and region',
      { cloud: 'aws', region: 'eu-west-1' },
      (o) => o.cloud === 'aws' && o.region === 'eu-west-1',
    ],
    ['at least 8 GPUs', { minGpus: 8 }, (o) => (o.gpu?.count ?? 0) >= 8],
    ['at most $1/hour', { maxPrice: 1 }, (o) => o.price <= 1],
  ])('filters: %s', (_name, filter, holds) => {
    const offers = catalog.find(filter);
    expect(offers.length).toBeGreaterThan(0);
    expect(offers.filter((o) => !holds(o))).toEqual([]);
  });

  it('offers both capacity types by default', () => {
    const offers = catalog.find({ cloud: 'aws', region: 'us-east-1', gpu: 'H100' });
    expect(offers.map((o) => [o.capacityType, o.price])).toEqual([
      ['spot', 20.9934],
      ['on-demand', 98.32],
    ]);
  });
});

describe('PriceCatalog.withOverrides', () => {
  const dgx: CatalogOverride = {
    cloud: 'onprem',
    instanceType: 'dgx-a100',
    region: 'dc1',
    vcpu: 128,
    memoryGiB: 1024,
    gpu: { model: 'A100-80GB', count: 8 },
    onDemand: 0,
  };

  it('replaces a negotiated price and keeps the rest of the entry', () => {
    const c = catalog.withOverrides([
      { cloud: 'aws', instanceType: 'p5.48xlarge', region: 'us-east-1', onDemand: 70 },
    ]);
    expect(c.lookup('aws', 'p5.48xlarge', 'us-east-1')).toMatchObject({
      onDemand: 70,
      spot: 20.9934,
      vcpu: 192,
    });
    expect(entry('aws', 'p5.48xlarge', 'us-east-1').onDemand).toBe(98.32);
    expect(c.meta).toBe(catalog.meta);
  });

  it('applies a spot rate to every zone', () => {
    const c = catalog.withOverrides([
      { cloud: 'aws', instanceType: 'p5.48xlarge', region: 'us-west-2', spot: 12 },
    ]);
    const e = c.lookup('aws', 'p5.48xlarge', 'us-west-2');
    expect(e?.spot).toBe(12);
    expect(Object.values(e?.spotByZone ?? {})).toEqual([12, 12, 12, 12]);
  });

  it('adds an on-prem type that find() then prefers', () => {
    const c = catalog.withOverrides([dgx]);
    expect(c.entries).toHaveLength(catalog.entries.length + 1);
    const offers = c.find({ gpu: 'A100-80GB', minGpus: 8 });
    expect(offers[0]).toMatchObject({
      cloud: 'onprem',
      instanceType: 'dgx-a100',
      capacityType: 'on-demand',
      price: 0,
    });
    expect(offers.filter((o) => o.cloud === 'onprem')).toHaveLength(1); // no spot offer: spot is null
    expect(c.lookup('onprem', 'dgx-a100', 'dc1')?.spot).toBeNull();
  });

  it('refuses a new type without a shape or price, naming the entry', () => {
    const bad = { cloud: 'onprem', instanceType: 'box', region: 'dc1', onDemand: 1 };
    expect(() => catalog.withOverrides([bad])).toThrow(
      'onprem box in dc1: not in the catalog, so the override must set vcpu, memoryGiB',
    );
    try {
      catalog.withOverrides([bad]);
    } catch (err) {
      expect(err).toBeInstanceOf(CatalogEntryError);
      expect(err).toMatchObject({
        name: 'CatalogError',
        cloud: 'onprem',
        instanceType: 'box',
        region: 'dc1',
      });
    }
  });

  it('refuses a negative price', () => {
    expect(() => catalog.withOverrides([{ ...dgx, onDemand: -1 }])).toThrow(
      /onprem dgx-a100 in dc1: bad override: onDemand/,
    );
  });
});

describe('build from CSV', () => {
  const head =
    'cloud,InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone\n';

  it('gives spot null when no zone sells spot, and skips a GCP machine whose GPUs are not sold in the zone', () => {
    const csv =
      head +
      'aws,m7i.large,,,2.0,8.0,0.1008,,us-east-1,use1-az1\n' +
      'gcp,a2-highgpu-1g,,,12.0,85.0,0.73948,0.29576,us-central1,us-central1-a\n';
    const { entries, warnings } = buildEntries(parsePriceCsv(csv));
    expect(entries).toEqual([
      expect.objectContaining({ instanceType: 'm7i.large', onDemand: 0.1008, spot: null, spotByZone: {} }),
    ]);
    expect(warnings).toEqual([
      'gcp a2-highgpu-1g us-central1-a (line 3): no A100:1 price in the zone, row skipped',
    ]);
  });

  it.each([
    [
      'a quoted field',
      head + 'aws,"m7i.large",,,2,8,0.1,,us-east-1,a\n',
      'cloud-prices.csv:2: quoted fields are not supported',
    ],
    ['a short row', head + 'aws,m7i.large,,,2,8\n', 'cloud-prices.csv:2: 6 cells, expected 10'],
    [
      'a bad price',
      head + 'aws,m7i.large,,,2,8,x,,us-east-1,a\n',
      "cloud-prices.csv:2: Price 'x' is not a price",
    ],
    ['an unknown GPU', head + 'aws,p9,Z100,8,2,8,1,,us-east-1,a\n', "cloud-prices.csv:2: unknown GPU 'Z100'"],
  ])('rejects %s with its line', (_name, csv, message) => {
    expect(() => buildEntries(parsePriceCsv(csv))).toThrow(PriceCsvError);
    expect(() => buildEntries(parsePriceCsv(csv))).toThrow(message);
  });

  it('rebuilds cloud-prices.json from data/prices/cloud-prices.csv unchanged', () => {
    const csv = fileURLToPath(new URL('../../data/prices/cloud-prices.csv', import.meta.url));
    const out = join(mkdtempSync(join(tmpdir(), 'gantry-catalog-')), 'cloud-prices.json');
    buildCatalogFile(csv, out);
    const committed = readFileSync(new URL('./cloud-prices.json', import.meta.url), 'utf8');
    expect(readFileSync(out, 'utf8')).toBe(committed);
  });
});
