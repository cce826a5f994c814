import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runGantry } from '../../test/cli.ts';

const gantryCatalog = (...args: string[]) => runGantry('catalog', ...args);

describe('gantry catalog', () => {
  it('lists the cheapest H100 spot offers first as an aligned table with the source', async () => {
    const { code, out } = await gantryCatalog('--gpu', 'H100', '--spot', '--limit', '4');
    expect(code).toBe(0);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(
      /^CLOUD\s+REGION\s+INSTANCE TYPE\s+VCPU\s+MEMORY\s+GPU\s+CAPACITY\s+\$\/HOUR\s+\$\/GPU-HOUR$/,
    );
    // GCP a3-highgpu-1g in us-east4: host spot 0.21294 + H100 spot 1.7632.
    expect(lines[1]?.split(/\s+/)).toEqual([
      'gcp',
      'us-east4',
      'a3-highgpu-1g',
      '26',
      '234Gi',
      'H100:1',
      'spot',
      '1.97614',
      '1.97614',
    ]);
    // Row 4 is the first two-GPU machine: $/GPU-hour halves the node price.
    expect(lines[4]?.split(/\s+/).slice(2)).toEqual([
      'a3-highgpu-2g',
      '52',
      '468Gi',
      'H100:2',
      'spot',
      '3.95228',
      '1.97614',
    ]);
    // The price columns end at the same place on every row.
    expect(new Set(lines.slice(0, 5).map((l) => l.length)).size).toBe(1);
    expect(out).toContain('4 of 14 offers');
    expect(out).toContain('skypilot-catalog v7');
    expect(out).toContain('extracted 2026-11-25');
  });

  it('prints JSON offers with the catalog metadata', async () => {
    const { code, out } = await gantryCatalog(
      '--gpu',
      'h100',
      '--cloud',
      'aws',
      '--region',
      'us-east-1',
      '-o',
      'json',
    );
    expect(code).toBe(0);
    const doc = JSON.parse(out) as { extracted: string; total: number; offers: Record<string, unknown>[] };
    expect(doc.extracted).toBe('2026-11-25');
    expect(doc.total).toBe(2);
    expect(doc.offers.map((o) => [o.instanceType, o.capacityType, o.price, o.pricePerGpu])).toEqual([
      ['p5.48xlarge', 'spot', 20.9934, 2.62418],
      ['p5.48xlarge', 'on-demand', 98.32, 12.29],
    ]);
    expect(doc.offers[0]).toMatchObject({ gpu: { model: 'H100', count: 8 }, vcpu: 192, memoryGiB: 2048 });
  });

  it('applies --min-gpus, --max-price and --on-demand', async () => {
    const { out } = await gantryCatalog('--min-gpus', '8', '--max-price', '10', '--on-demand', '-o', 'json');
    const doc = JSON.parse(out) as { offers: { region: string; instanceType: string; price: number }[] };
    expect(doc.offers.map((o) => `${o.region} ${o.instanceType} ${o.price}`)).toEqual([
      'us-east-1 g4dn.metal 7.824',
      'us-west-2 g4dn.metal 7.824',
      'us-east4 g2-standard-96 7.97712', // host 3.51147 + L4:8 4.46565
      'us-central1 g2-standard-96 8.00333',
      'europe-west4 g2-standard-96 8.4072',
      'eu-west-1 g4dn.metal 8.724',
    ]);
  });

  it.each([
    [['--gpu', 'H900'], /^gantry: unknown GPU model 'H900' \(known: H200, H100, A100-80GB, .*P100\)\n$/],
    [['--min-gpus', '-1'], /--min-gpus must be a whole number of at least 1, not '-1'/],
    [['--max-price', '-3'], /--max-price must be a price in \$\/hour, 0 or more, not '-3'/],
    [['--limit', 'ten'], /--limit must be a whole number of at least 1, not 'ten'/],
    [['--output', 'xml'], /argument 'xml' is invalid\. Allowed choices are table, wide, json, yaml\./],
    [['--cloud', 'azure'], /unknown cloud 'azure' \(known: aws, gcp\)/],
    [['--cloud', 'gcp', '--region', 'us-east-1'], /unknown gcp region 'us-east-1' \(did you mean us-east4\?/],
    [['--spot', '--on-demand'], /--spot and --on-demand exclude each other/],
  ])('refuses %j with exit 2 and one line', async (args, message) => {
    const { code, out, err } = await gantryCatalog(...args);
    expect(code).toBe(2);
    expect(out).toBe('');
    expect(err).toMatch(message);
    expect(err.trim().split('\n')).toHaveLength(1);
  });

  it('runs as `node bin/gantry.js catalog`', () => {
    const bin = fileURLToPath(new URL('../gantry.js', import.meta.url));
    const ok = spawnSync(process.execPath, [bin, 'catalog', '--gpu', 'H100', '--spot', '--limit', '1'], {
      encoding: 'utf8',
    });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/\ngcp\s+us-east4\s+a3-highgpu-1g .* 1\.97614\s+1\.97614\n/);
    const bad = spawnSync(process.execPath, [bin, 'catalog', '--gpu', 'H900'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^gantry: unknown GPU model 'H900'/);
  });
});
