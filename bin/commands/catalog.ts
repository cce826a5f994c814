/**
 * `gantry catalog`: the shipped price catalog, filtered, cheapest first.
 */
import type { Command } from 'commander';
import {
  gpuModelNames,
  loadBuiltinCatalog,
  normalizeGpuModel,
  type CatalogFilter,
} from '../../policies/index.ts';
import { UsageError } from '../errors.ts';
import { table } from '../table.ts';

interface CatalogFlags {
  gpu?: string;
  spot?: boolean;
  onDemand?: boolean;
  cloud?: string;
  region?: string;
  minGpus?: string;
  maxPrice?: string;
  limit: string;
  output: string;
}

function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || value.trim() === '')
    throw new UsageError(`${flag} must be a number of zero or more, not '${value}'`);
  return n;
}

/** Adds `gantry catalog` to the program. */
export function registerCatalogCommand(program: Command): void {
  program
    .command('catalog')
    .description('List instance types with real AWS and GCP prices, cheapest first')
    .option('--gpu <model>', 'only this GPU model (H100, A100-80GB, L4, …)')
    .option('--spot', 'only spot offers')
    .option('--on-demand', 'only on-demand offers')
    .option('--cloud <cloud>', 'aws or gcp')
    .option('--region <region>', 'e.g. us-east-1, us-central1')
    .option('--min-gpus <n>', 'at least this many GPUs per node')
    .option('--max-price <usd>', 'at most this many $/hour per node')
    .option('--limit <n>', 'show at most this many rows', '20')
    .option('-o, --output <format>', 'table or json', 'table')
    .action((flags: CatalogFlags) => {
      if (flags.output !== 'table' && flags.output !== 'json')
        throw new UsageError(`--output must be table or json, not '${flags.output}'`);
      if (flags.spot && flags.onDemand) throw new UsageError('--spot and --on-demand exclude each other');
      const filter: CatalogFilter = {};
      if (flags.gpu !== undefined) {
        const model = normalizeGpuModel(flags.gpu);
        if (!model)
          throw new UsageError(`--gpu: unknown GPU model '${flags.gpu}'; known: ${gpuModelNames.join(', ')}`);
        filter.gpu = model;
      }
      if (flags.spot) filter.spot = true;
      if (flags.onDemand) filter.spot = false;
      if (flags.cloud !== undefined) {
        if (flags.cloud !== 'aws' && flags.cloud !== 'gcp')
          throw new UsageError(`--cloud must be aws or gcp, not '${flags.cloud}'`);
        filter.cloud = flags.cloud;
      }
      if (flags.region !== undefined) filter.region = flags.region;
      const minGpus = positiveNumber('--min-gpus', flags.minGpus);
      if (minGpus !== undefined) filter.minGpus = minGpus;
      const maxPrice = positiveNumber('--max-price', flags.maxPrice);
      if (maxPrice !== undefined) filter.maxPrice = maxPrice;
      const limit = positiveNumber('--limit', flags.limit) ?? 20;

      const catalog = loadBuiltinCatalog();
      const offers = catalog.find(filter).slice(0, limit);
      if (flags.output === 'json') {
        const rows = offers.map(({ spotByZone: _z, ...o }) => o);
        process.stdout.write(`${JSON.stringify({ ...catalog.meta, offers: rows }, null, 2)}\n`);
        return;
      }
      const rows = offers.map((o) => [
        o.cloud,
        o.region,
        o.instanceType,
        String(o.vcpu),
        `${o.memoryGiB}Gi`,
        o.gpu ? `${o.gpu.model}:${o.gpu.count}` : '—',
        o.capacityType,
        `$${o.price.toFixed(4)}`,
        o.gpu ? `$${(o.price / o.gpu.count).toFixed(4)}` : '—',
      ]);
      process.stdout.write(
        table(
          ['CLOUD', 'REGION', 'INSTANCE TYPE', 'VCPU', 'MEMORY', 'GPU', 'CAPACITY', '$/HOUR', '$/GPU-HOUR'],
          rows,
        ),
      );
      if (offers.length === 0) process.stdout.write('(no offers match)\n');
      process.stdout.write(
        `\nPrices: ${catalog.meta.source}, extracted ${catalog.meta.extracted}. Spot: cheapest zone.\n`,
      );
    });
}
