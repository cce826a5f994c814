import { describe, expect, it } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import { createProvisioner, resolveProvisionerKind } from './provisioner-registry.ts';

const clusters = [
  ...loadPlatform(['test/fixtures/cloud-platform']).platform.clusters,
  ...loadPlatform(['test/fixtures/platform']).platform.clusters,
];
const cluster = (name: string) => clusters.find((c) => c.name === name)!;

describe('provisioner registry', () => {
  it.each([
    ['aws-use1', 'cloud', { ok: true, kind: 'ec2' }],
    ['gcp-usc1', 'cloud', { ok: true, kind: 'gce' }],
    ['aws-use1', 'sim', { ok: true, kind: 'sim' }],
    ['gcp-usc1', 'kubernetes', { ok: true, kind: 'kubernetes' }],
    [
      'gcp-usc1',
      'ec2',
      { ok: false, message: '--provisioner ec2 buys aws nodes; cluster gcp-usc1 has provider gcp' },
    ],
    [
      'sim-aws',
      'cloud',
      {
        ok: false,
        message:
          'cluster sim-aws has provider sim: Gantry buys nodes only for aws (ec2) and gcp (gce); use --provisioner sim or kubernetes',
      },
    ],
    [
      'aws-use1',
      'azure',
      { ok: false, message: "--provisioner must be sim, ec2, gce, kubernetes, cloud, not 'azure'" },
    ],
  ])('%s with --provisioner %s', (name, kind, expected) => {
    expect(resolveProvisionerKind(cluster(name), kind)).toEqual(expected);
  });

  it('makes the simulated cloud with the pools’ initial nodes', async () => {
    const p = await createProvisioner(cluster('sim-aws'), 'sim');
    expect(p.kind).toBe('sim');
    expect(p.list().map((n) => n.pool)).toEqual(['cpu-od']);
    await p.close();
  });
});
