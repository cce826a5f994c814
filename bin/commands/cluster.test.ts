import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createBroker } from '../../broker/index.ts';
import { loadPlatform, validatePaths } from '../../policies/index.ts';
import { openLocalStore } from '../../protocol/index.ts';
import { connectNats } from '../../protocol/nats-index.ts';
import { runGantry } from '../../test/cli.ts';
import { startNatsServer } from '../../test/nats/server.ts';

describe('gantry cluster and gantry get', () => {
  it('onboards clusters with credentials limited to their subjects, then manages them through the broker', async () => {
    const creds = mkdtempSync(join(tmpdir(), 'gantry-onboard-'));
    const onboard = await runGantry(
      'cluster',
      'onboard',
      '-f',
      'test/fixtures/platform',
      '--creds-dir',
      creds,
    );
    expect(onboard.code).toBe(0);
    expect(onboard.out).toContain(
      `start its agent:   gantry agent -f test/fixtures/platform --cluster sim-aws --nats nats://<server>:4222 --creds ${creds}/agent-sim-aws.nk`,
    );
    const auth = readFileSync(join(creds, 'nats-authorization.conf'), 'utf8');
    expect(auth).toMatch(
      /# agent-sim-aws\n\s+\{ nkey: (U[A-Z0-9]{55}), permissions: \{ publish: \["gantry\.v1\.agent\.sim-aws\.>", "gantry\.v1\.team\.\*\.exec\.\*\.result\.sim-aws", /,
    );
    // No identity may read every reply: each has its own inboxes.
    expect(auth).not.toContain('"_INBOX.>"');
    const agentKey = /# agent-sim-aws\n\s+\{ nkey: (U[A-Z0-9]{55})/.exec(auth)![1]!;
    expect(auth).toContain(`"_INBOX_${agentKey}.>"], allow_responses: true`);
    expect(onboard.out).toContain(`--team ml --nats nats://<server>:4222 --creds ${creds}/runtime-ml.nk`);
    expect(readFileSync(join(creds, 'agent-sim-gcp.nk'), 'utf8')).toMatch(/^SU[A-Z0-9]{56}\n$/);

    // A nats-server with that authorization, and a broker logged in as gantry-broker.
    const server = await startNatsServer({ config: auth });
    const nc = await connectNats({ servers: server.url, creds: join(creds, 'gantry-broker.nk') });
    const { platform } = loadPlatform(['test/fixtures/platform']);
    const broker = createBroker({
      transport: nc,
      store: await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-cl-'))),
      platform,
    });
    await broker.start();
    try {
      const as = ['--nats', server.url, '--creds', join(creds, 'gantry-broker.nk')];
      const list = await runGantry('cluster', 'list', ...as, '-o', 'json');
      expect(list.code).toBe(0);
      expect(
        JSON.parse(list.out).map((c: { name: string; healthy: boolean }) => [c.name, c.healthy]),
      ).toEqual([
        ['sim-aws', false],
        ['sim-gcp', false],
      ]);
      expect((await runGantry('cluster', 'drain', 'sim-gcp', ...as)).code).toBe(0);
      expect(broker.inventory.clusters.get('sim-gcp')?.draining).toBe(true);
      const unknown = await runGantry('cluster', 'describe', 'sim-azure', ...as);
      expect([unknown.code, unknown.err]).toEqual([2, 'gantry: no cluster sim-azure\n']);
      const extra = validatePaths(['test/fixtures/platform']).platform.clusters[0]!;
      await broker.onboard({ ...extra, name: 'sim-extra' });
      const nodes = await runGantry('get', 'requests', ...as);
      expect(nodes.out.split('\n')[0]).toMatch(/^REQUEST\s+TEAM\s+STATUS\s+LEASE/);
      // describe reads as text; -o yaml and -o json print what the broker answered.
      const text = await runGantry('cluster', 'describe', 'sim-aws', ...as);
      expect(text.code).toBe(0);
      expect(text.out).toMatch(/^Name: +sim-aws$/m);
      expect(text.out).toMatch(/^Health: +UNHEALTHY, no agent has registered$/m);
      expect(text.out).toMatch(/^Pools \(\d+\):\n {2}NAME +INSTANCE TYPE +CAPACITY/m);
      expect(text.out).toContain('Nodes (0):\n  none running');
      const yaml = await runGantry('cluster', 'describe', 'sim-aws', ...as, '-o', 'yaml');
      expect(yaml.out).toMatch(/^name: sim-aws$/m);
      expect(
        JSON.parse((await runGantry('cluster', 'describe', 'sim-aws', ...as, '-o', 'json')).out),
      ).toMatchObject({ name: 'sim-aws', activeLeases: 0 });
      const wide = await runGantry('cluster', 'list', ...as, '-o', 'wide');
      expect(wide.out.split('\n')[0]).toMatch(/POOLS +AGENT +LAST HEARTBEAT$/);
      const bad = await runGantry('cluster', 'list', ...as, '-o', 'xml');
      expect([bad.code, bad.err]).toEqual([
        2,
        "gantry: option '-o, --output <format>' argument 'xml' is invalid. Allowed choices are table, wide, json, yaml. (gantry cluster list --help lists them)\n",
      ]);
      const status = await runGantry('get', 'requests', ...as, '--status', 'waiting');
      expect([status.code, status.err]).toEqual([
        2,
        "gantry: --status must be one of pending, placed, launching, running, succeeded, failed, preempted, lost, not 'waiting'\n",
      ]);
      const noNats = await runGantry('get', 'leases');
      expect(noNats.code).toBe(2);
      expect(noNats.err).toMatch(/pass --nats <url>/);
    } finally {
      await broker.stop();
      await nc.close();
      await server.stop();
    }
  });
});
