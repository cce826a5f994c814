/**
 * `gantry catalog`: lists the built-in prices as offers (an instance type in a region, bought spot or
 * on-demand), cheapest first, filtered by GPU model, capacity type, cloud, region, GPU count and price.
 */
import type { Command } from 'commander';
import {
  type CatalogFilter,
  type CatalogOffer,
  closest,
  formatGpu,
  formatMemory,
  gpuModelNames,
  loadBuiltinCatalog,
  normalizeGpuModel,
  type PriceCatalog,
} from '../../policies/index.ts';
import { UsageError } from '../errors.ts';
import { type Output, outputOption, serialize } from '../options.ts';
import { table } from '../table.ts';

/** Flags as commander hands them over: every value still a string. */
interface CatalogFlags {
  gpu?: string;
  spot?: boolean;
  onDemand?: boolean;
  cloud?: string;
  region?: string;
  minGpus?: string;
  maxPrice?: string;
  limit: string;
  output: Output;
}

/** Adds `gantry catalog` to the program. */
export function registerCatalogCommand(program: Command): void {
  const cmd = program
    .command('catalog')
    .description('List instance types with their on-demand and spot $/hour, cheapest first')
    .option('--gpu <model>', `only this GPU model (${gpuModelNames.join(', ')})`)
    .option('--spot', 'spot offers only')
    .option('--on-demand', 'on-demand offers only')
    .option('--cloud <name>', 'only this cloud (aws or gcp)')
    .option('--region <region>', 'only this region, e.g. us-east-1')
    .option('--min-gpus <n>', 'at least this many GPUs per node')
    .option('--max-price <usd>', 'at most this many $/hour per node')
    .option('--limit <n>', 'show at most this many offers', '20');
  outputOption(cmd).action((flags: CatalogFlags) => {
    const catalog = loadBuiltinCatalog();
    const { filter, limit, output } = parseFlags(flags, catalog);
    const offers = catalog.find(filter);
    const shown = offers.slice(0, limit);
    const write = (s: string) => process.stdout.write(s);
    if (output === 'json' || output === 'yaml') {
      const rows = shown.map((o) => ({ ...o, pricePerGpu: perGpu(o) }));
      write(serialize(output, { ...catalog.meta, total: offers.length, offers: rows }));
      return;
    }
    const wide = output === 'wide';
    const headers = wide ? [...HEADERS, ...WIDE_HEADERS] : HEADERS;
    if (shown.length === 0) write('No offers match these filters.\n');
    else
      write(
        table(
          headers,
          rightAlign(
            headers,
            shown.map((o) => row(o, wide)),
            NUMERIC,
          ),
        ),
      );
    write(footer(shown.length, offers.length, catalog));
  });
}

/** The validated query behind a `gantry catalog` call. */
interface CatalogQuery {
  filter: CatalogFilter;
  limit: number;
  output: Output;
}

/** Checks every flag against what the catalog knows; throws `UsageError` with a one-line message. */
function parseFlags(flags: CatalogFlags, catalog: PriceCatalog): CatalogQuery {
  const filter: CatalogFilter = {};
  if (flags.gpu !== undefined) {
    const model = normalizeGpuModel(flags.gpu);
    if (!model) throw new UsageError(`unknown GPU model '${flags.gpu}' (known: ${gpuModelNames.join(', ')})`);
    filter.gpu = model;
  }
  if (flags.spot && flags.onDemand) {
    throw new UsageError('--spot and --on-demand exclude each other; give neither to list both');
  }
  if (flags.spot) filter.spot = true;
  if (flags.onDemand) filter.spot = false;
  if (flags.cloud !== undefined) filter.cloud = known('cloud', flags.cloud, catalog.clouds());
  if (flags.region !== undefined) {
    const where = filter.cloud === undefined ? 'region' : `${filter.cloud} region`;
    filter.region = known(where, flags.region, catalog.regions(filter.cloud));
  }
  if (flags.minGpus !== undefined) filter.minGpus = wholeNumber('--min-gpus', flags.minGpus);
  if (flags.maxPrice !== undefined) filter.maxPrice = dollars('--max-price', flags.maxPrice);
  const limit = wholeNumber('--limit', flags.limit);
  return { filter, limit, output: flags.output };
}

function known(what: string, value: string, names: readonly string[]): string {
  if (names.includes(value)) return value;
  const hint = closest(value, names);
  const mean = hint ? `did you mean ${hint}? ` : '';
  throw new UsageError(`unknown ${what} '${value}' (${mean}known: ${names.join(', ')})`);
}

function wholeNumber(flag: string, text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < 1) {
    throw new UsageError(`${flag} must be a whole number of at least 1, not '${text}'`);
  }
  return n;
}

function dollars(flag: string, text: string): number {
  const n = Number(text.replace(/^\$/, ''));
  if (text.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new UsageError(`${flag} must be a price in $/hour, 0 or more, not '${text}'`);
  }
  return n;
}

const HEADERS = [
  'CLOUD',
  'REGION',
  'INSTANCE TYPE',
  'VCPU',
  'MEMORY',
  'GPU',
  'CAPACITY',
  '$/HOUR',
  '$/GPU-HOUR',
];
/** What `-o wide` adds: the on-demand price beside a spot one, and the zones that sell the type. */
const WIDE_HEADERS = ['ON-DEMAND $/HOUR', 'ZONES'];
// Columns whose cells are numbers, right-aligned so that the digits line up.
const NUMERIC = new Set([3, 4, 7, 8, 9]);

function row(o: CatalogOffer, wide: boolean): string[] {
  const gpuPrice = perGpu(o);
  return [
    o.cloud,
    o.region,
    o.instanceType,
    String(o.vcpu),
    formatMemory(o.memoryGiB * 1024),
    o.gpu ? formatGpu([o.gpu]) : '-',
    o.capacityType,
    usd(o.price),
    gpuPrice === null ? '-' : usd(gpuPrice),
    ...(wide ? [usd(o.onDemand), o.zones.join(',') || '-'] : []),
  ];
}

// Five decimals is the catalog's precision; fewer would round 40.96575 to a price nobody charges.
function usd(n: number): string {
  return n.toFixed(5);
}

function perGpu(o: CatalogOffer): number | null {
  return o.gpu ? Number((o.price / o.gpu.count).toFixed(5)) : null;
}

/** Pads the numeric columns on the left to the width of their widest cell or header. */
function rightAlign(headers: readonly string[], rows: string[][], columns: ReadonlySet<number>): string[][] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (columns.has(i) ? cell.padStart(widths[i] ?? 0) : cell)));
}

function footer(shown: number, total: number, catalog: PriceCatalog): string {
  const { source, extracted, currency } = catalog.meta;
  const more = shown < total ? ` (--limit ${total} to see all)` : '';
  const count =
    total > 0
      ? `${shown} of ${total} offers${more}. Spot prices are the cheapest zone's in the region.\n`
      : '';
  return `\n${count}Prices in ${currency}/hour from ${source}, extracted ${extracted}.\n`;
}
