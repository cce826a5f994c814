import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlatform } from '../../policies/index.ts';
import { type FakeEc2, startFakeEc2 } from '../../test/fakes/ec2.ts';
import { runGantry } from '../../test/cli.ts';

let ec2: FakeEc2;
const saved = { ...process.env };
beforeAll(async () => {
  ec2 = await startFakeEc2();
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
});
afterAll(async () => {
  process.env = saved;
  await ec2?.close();
});

describe('gantry spot-prices', () => {
  it("writes a PriceCatalog of today's lowest spot prices that the platform then uses", async () => {
    ec2.setSpotPrice('m7i.2xlarge', 'us-east-1a', 0.1501);
    ec2.setSpotPrice('m7i.2xlarge', 'us-east-1b', 0.0987);
    ec2.setSpotPrice('g6.xlarge', 'us-east-1c', 0.3333);
    const dir = mkdtempSync(join(tmpdir(), 'gantry-spot-'));
    const out = join(dir, 'spot.yaml');
    const r = await runGantry('spot-prices', '-f', 'examples', '--out', out, '--ec2-endpoint', ec2.url);
    expect(r.err).not.toMatch(/error/i);
    expect(r.out).toMatch(/^wrote \d+ spot prices to /);
    expect(readFileSync(out, 'utf8')).toContain('instanceType: m7i.2xlarge');
    const { platform } = loadPlatform(['examples', out]);
    const pool = (name: string) => platform.pools.find((p) => p.cluster === 'aws-use1' && p.name === name)!;
    expect(pool('cpu-spot').price).toBe(0.0987);
    expect(pool('l4-spot').price).toBe(0.3333);
  });

  it('needs AWS pools', async () => {
    const r = await runGantry(
      'spot-prices',
      '-f',
      'examples/clusters/onprem.yaml',
      '--ec2-endpoint',
      ec2.url,
    );
    expect(r).toMatchObject({ code: 2, err: 'gantry: no AWS pools in examples/clusters/onprem.yaml\n' });
  });
});
