/**
 * The spend audit: a seeded simulated stretch of work on the example platform, its AWS and GCP clusters
 * buying nodes from the EC2 and GCE test servers through the real agents, the broker planning. It counts
 * the instances the clouds launched against the nodes the broker planned (an instance with no planned id
 * the broker sent, or a second one for the same id, is extra), and reads each team's spend against its
 * budgets. What `npm run bench:spend` prints and test/spend.system.test.ts asserts.
 */
import { decodeJson, encodeJson, type ScaleMsg, subjects } from '../../protocol/index.ts';
import { startCloudSystem } from '../../test/cloud-system.ts';
import { mulberry32 } from '../../test/random.ts';
import { TestClient } from '../../test/system.ts';

/** Options of {@link runSpendAudit}. */
export interface SpendAuditOptions {
  /** Simulated hours of work. Default 168 (a week). */
  hours?: number;
  /** Tasks sent per simulated hour. Default 6. */
  tasksPerHour?: number;
  /** Simulated seconds per second. Default 7200 (an hour in half a second). */
  speedup?: number;
  seed?: number;
}

/** What the audit found. */
export interface SpendAudit {
  hours: number;
  tasks: { sent: number; succeeded: number };
  clouds: { cloud: 'ec2' | 'gce'; cluster: string; planned: number; launched: number; extra: number }[];
  budgets: { team: string; spent: number; perMonth?: number; perHour?: number }[];
  /**
   * Lease-seconds of work left running for a run nobody waits for. Runs are not owned yet (their
   * heartbeat and cancellation are the broker and runtime's part of the same work): undefined until then.
   */
  orphanedLeaseSeconds: number | undefined;
}

const SHAPES = [
  { cpu: 4, memory: '8Gi' },
  { cpu: 8, memory: '16Gi' },
  { cpu: 2, memory: '4Gi' },
  { gpu: 'L4:1', memory: '16Gi' },
];
const TEAMS = ['research', 'product'];

/**
 * Runs the audit.
 *
 * @example
 * const audit = await runSpendAudit({ hours: 24 });
 * audit.clouds.every((c) => c.extra === 0);
 */
export async function runSpendAudit(opts: SpendAuditOptions = {}): Promise<SpendAudit> {
  const hours = opts.hours ?? 168;
  const speedup = opts.speedup ?? 7200;
  const rand = mulberry32(opts.seed ?? 12);
  const system = await startCloudSystem({
    platformDir: 'examples',
    clusters: ['aws-use1', 'gcp-usc1'],
    speedup,
  });
  try {
    const planned = new Map<string, Set<string>>();
    system.transport.subscribe(subjects.scale('*'), (msg) => {
      const cluster = msg.subject.split('.').at(-2)!;
      const ids = planned.get(cluster) ?? new Set<string>();
      for (const id of (decodeJson(msg.data) as ScaleMsg).add ?? []) ids.add(id);
      planned.set(cluster, ids);
    });
    const client = new TestClient(system.transport);
    const ids: string[] = [];
    const hourMs = 3_600_000 / speedup;
    for (let h = 0; h < hours; h++) {
      const n = Math.round((opts.tasksPerHour ?? 6) * (0.5 + rand()));
      for (let i = 0; i < n; i++) {
        const id = `h${h}-t${i}`;
        ids.push(id);
        // A request the broker does not answer in time counts as not succeeded.
        void client
          .request(id, {
            team: TEAMS[Math.floor(rand() * TEAMS.length)]!,
            resources: SHAPES[Math.floor(rand() * SHAPES.length)]!,
            work: { kind: 'sim', durationMs: Math.round((5 + rand() * 85) * 60_000) },
          })
          .catch(() => undefined);
      }
      await new Promise((r) => setTimeout(r, hourMs));
      if (h % 24 === 23) process.stderr.write(`  day ${(h + 1) / 24} of ${hours / 24}\n`);
    }
    await client.finished(ids, 60_000 + 2 * hourMs * 2).catch(() => undefined);
    const budgets = await system.transport.request(subjects.admin('budgets'), encodeJson({}));
    const status = decodeJson(budgets.data) as {
      budgets: { team: string; perHour?: { cap: number }; perMonth?: { cap: number; spent: number } }[];
    };
    return {
      hours,
      tasks: { sent: ids.length, succeeded: ids.filter((id) => client.successes(id) > 0).length },
      clouds: [
        tally(
          'ec2',
          'aws-use1',
          planned.get('aws-use1'),
          system.ec2.instances().map((i) => i.tags['gantry.dev/planned-id']),
        ),
        tally(
          'gce',
          'gcp-usc1',
          planned.get('gcp-usc1'),
          system.gce.instances().map((i) => i.labels['gantry-planned-id']),
        ),
      ],
      budgets: status.budgets.map((b) => ({
        team: b.team,
        spent: b.perMonth?.spent ?? 0,
        ...(b.perMonth ? { perMonth: b.perMonth.cap } : {}),
        ...(b.perHour ? { perHour: b.perHour.cap } : {}),
      })),
      orphanedLeaseSeconds: undefined,
    };
  } finally {
    await system.stop();
  }
}

/** Instances against planned ids: extra are those of no planned id, or a second of one. */
function tally(
  cloud: 'ec2' | 'gce',
  cluster: string,
  planned: Set<string> | undefined,
  instanceIds: (string | undefined)[],
): SpendAudit['clouds'][number] {
  const seen = new Set<string>();
  let extra = 0;
  for (const id of instanceIds) {
    if (!id || !planned?.has(id) || seen.has(id)) extra++;
    if (id) seen.add(id);
  }
  return { cloud, cluster, planned: planned?.size ?? 0, launched: instanceIds.length, extra };
}
