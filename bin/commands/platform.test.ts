import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBroker } from '../../broker/index.ts';
import { loadPlatform } from '../../policies/index.ts';
import { runGantry } from '../../test/cli.ts';
import { startSystem, TestClient, type TestSystem } from '../../test/system.ts';

let system: TestSystem;
let client: TestClient;
let dir: string;
let url: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gantry-apply-'));
  cpSync('test/fixtures/platform', dir, { recursive: true });
  system = await startSystem('nats', { platformDir: dir });
  client = new TestClient(system.transport);
  url = system.server!.url;
});
afterAll(async () => {
  await system?.stop();
});

const edit = (file: string, from: string, to: string) => {
  const path = join(dir, file);
  const text = readFileSync(path, 'utf8');
  expect(text).toContain(from);
  writeFileSync(path, text.replace(from, to));
};
const big = { resources: { cpu: 2, memory: '16Gi' } };

describe('gantry apply and gantry get clusters|policies|profiles', () => {
  it('shows what the broker plans with', async () => {
    const policies = await runGantry('get', 'policies', '--nats', url);
    expect(policies.code).toBe(0);
    expect(policies.out.split('\n')[0]).toMatch(/^NAME +TEAMS +SPOT +PRIORITY +QUOTAS +BUDGET$/);
    expect(policies.out).toMatch(/^ml +ml +allowed +0 +0/m);
    const yaml = await runGantry('get', 'policies', '--nats', url, '-o', 'yaml');
    expect(yaml.out).toMatch(/^- teams:\n {4}- ml$/m);
    expect(yaml.out).toMatch(/^ {4}memory: 65536$/m);
    const clusters = await runGantry('get', 'clusters', '--nats', url, '-o', 'wide');
    expect(clusters.out).toMatch(/^sim-gcp +sim +gcp +us-central1 +cpu,l4 +l4:1× L4$/m);
    const json = JSON.parse((await runGantry('get', 'clusters', '--nats', url, '-o', 'json')).out);
    expect(json.map((c: { name: string }) => c.name)).toEqual(['sim-aws', 'sim-gcp']);
  });

  it('validates with file:line and sends nothing when a document is wrong', async () => {
    edit('policy.yaml', 'spot: allowed', 'spott: allowed');
    try {
      const r = await runGantry('apply', '-f', dir, '--nats', url);
      expect(r.code).toBe(1);
      expect(r.out).toMatch(
        /policy\.yaml:6:3 {2}spec\.spott {2}unknown field 'spott' \(did you mean 'spot'\?\)/,
      );
      expect(r.err).toContain('nothing was sent to the broker');
    } finally {
      edit('policy.yaml', 'spott: allowed', 'spot: allowed');
    }
  });

  it('applies a changed policy and prices from the next cycle, without a restart, and keeps them', async () => {
    // The team may ask for 16Gi until its limit comes down to 8Gi.
    expect(await client.request('big-1', big)).toMatchObject({ ok: true });
    edit('policy.yaml', 'memory: 64Gi', 'memory: 8Gi');
    writeFileSync(
      join(dir, 'prices.yaml'),
      'apiVersion: gantry.dev/v1alpha1\nkind: PriceCatalog\nmetadata: { name: negotiated }\nspec:\n' +
        '  entries:\n    - { cloud: aws, instanceType: m7i.2xlarge, region: us-east-1, onDemand: 0.3, spot: 0.05 }\n',
    );
    const dry = await runGantry('apply', '-f', dir, '--nats', url, '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('resourcepolicy/ml configured (dry run)');
    expect(dry.out).toContain('cluster/sim-gcp unchanged');
    expect(dry.out).toMatch(/dry run: nothing sent/);
    expect(await client.request('big-2', big)).toMatchObject({ ok: true });

    const applied = await runGantry('apply', '-f', dir, '--nats', url);
    expect(applied.code).toBe(0);
    expect(applied.out).toContain('cluster/sim-aws configured');
    expect(applied.out).toContain('cluster/sim-gcp unchanged');
    expect(applied.out).toContain('resourcepolicy/ml configured');
    expect(applied.out).toContain('pricecatalog/negotiated applied through the pools it prices');
    expect(applied.out).toMatch(/^sim-aws\/cpu-spot +\$0\.\d{4} +\$0\.0500$/m);
    expect(applied.out).toMatch(/^sim-aws\/cpu-od +\$0\.\d{4} +\$0\.3000$/m);
    expect(applied.out).toMatch(/2 changes effective from the broker's next solve cycle/);
    expect(system.broker.platform.pools.find((p) => p.id === 'sim-aws/cpu-spot')?.price).toBe(0.05);
    const refused = await client.request('big-3', big);
    expect(refused).toMatchObject({ ok: false, error: { message: expect.stringMatching(/memory.*8Gi/) } });

    const again = await runGantry('apply', '-f', dir, '--nats', url);
    expect(again.out).toContain('nothing to change: the broker already plans with these documents');

    // A broker that starts from the old files (a restart, a standby taking over) plans with what was applied.
    const { platform } = loadPlatform(['test/fixtures/platform']);
    const standby = createBroker({ transport: system.transport, store: system.brokerStore, platform });
    await standby.start();
    try {
      expect(standby.platform.policyFor('ml')?.limits?.memory).toBe(8 * 1024);
      expect(standby.platform.pools.find((p) => p.id === 'sim-aws/cpu-spot')?.price).toBe(0.05);
    } finally {
      await standby.stop();
    }
  });
});
