/**
 * `gantry spot-prices`: today's EC2 spot prices for the platform's AWS instance types, as a
 * PriceCatalog document to put beside the Cluster YAML (its prices replace the shipped catalog's spot
 * column for those types).
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { API_VERSION, loadPlatform } from '../../policies/index.ts';
import { cloudProblem, UsageError } from '../errors.ts';
import { outputOption, serialize } from '../options.ts';

interface SpotFlags {
  file: string[];
  out?: string;
  ec2Endpoint?: string;
  output: 'yaml' | 'json';
}

/** Adds `gantry spot-prices`. */
export function registerSpotPricesCommand(program: Command): void {
  const cmd = program
    .command('spot-prices')
    .description(
      "Fetch EC2 spot prices (DescribeSpotPriceHistory) for the platform's AWS pools, as a PriceCatalog",
    )
    .requiredOption('-f, --file <path...>', 'the platform YAML')
    .option('--out <file>', 'write the PriceCatalog here instead of standard output')
    .option('--ec2-endpoint <url>', 'EC2 endpoint (a VPC endpoint; default: the region’s public one)');
  outputOption(cmd, ['yaml', 'json']).action(async (flags: SpotFlags) => {
    const { platform } = loadPlatform(flags.file);
    const byRegion = new Map<string, Set<string>>();
    for (const p of platform.pools) {
      if (p.cloud !== 'aws') continue;
      const set = byRegion.get(p.region) ?? new Set<string>();
      set.add(p.instanceType);
      byRegion.set(p.region, set);
    }
    if (byRegion.size === 0) throw new UsageError(`no AWS pools in ${flags.file.join(', ')}`);
    // The SDK loads only here: the rest of the CLI never needs it.
    const { EC2Client } = await import('@aws-sdk/client-ec2');
    const { refreshSpotPrices } = await import('../../agents/cloud-index.ts');
    const entries: { cloud: string; instanceType: string; region: string; spot: number }[] = [];
    for (const [region, types] of byRegion) {
      const client = new EC2Client({
        region,
        ...(flags.ec2Endpoint ? { endpoint: flags.ec2Endpoint } : {}),
      });
      const prices = await refreshSpotPrices(client, [...types].sort()).catch((err: unknown) => {
        client.destroy();
        throw cloudProblem(err, flags.ec2Endpoint ?? `ec2.${region}.amazonaws.com`) ?? err;
      });
      for (const [instanceType, spot] of [...prices].sort(([a], [b]) => a.localeCompare(b)))
        entries.push({ cloud: 'aws', instanceType, region, spot });
      client.destroy();
    }
    if (entries.length === 0) throw new UsageError('EC2 returned no spot prices for these instance types');
    const day = new Date().toISOString().slice(0, 10);
    const doc = {
      apiVersion: API_VERSION,
      kind: 'PriceCatalog',
      metadata: { name: `ec2-spot-${day}` },
      spec: { entries },
    };
    const text =
      flags.output === 'json'
        ? serialize('json', doc)
        : `# EC2 spot prices on ${day} (the lowest zone's), from DescribeSpotPriceHistory.\n${stringify(doc)}`;
    if (flags.out) {
      writeFileSync(flags.out, text);
      process.stdout.write(`wrote ${entries.length} spot prices to ${flags.out}\n`);
    } else process.stdout.write(text);
  });
}
