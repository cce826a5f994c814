/**
 * The spend audit: a seeded simulated stretch of work on the example platform, its AWS and GCP clusters
 * buying nodes from the EC2 and GCE test servers through the real agents, the broker planning. Along the
 * way spot instances are reclaimed on both clouds, a run's driver dies, and the GCP cluster is drained
 * and removed with `--force` (its work moved off first; the nodes Gantry bought there terminated). It
 * counts the instances the clouds launched against the nodes the broker planned (an instance with no
 * planned id the broker sent, or a second one for the same id, is extra), the removed cluster's
 * instances still running after its removal, and reads each team's spend against its budgets. What
 * `npm run bench:spend` prints and test/spend.system.test.ts asserts.
 */
import {
  decodeJson,
  encodeJson,
  type AgentEvents,
  type ScaleMsg,
  subjects,
  TERMINAL,
  type TaskStatesMsg,
} from '../../protocol/index.ts';
import { type CloudSystem, startCloudSystem } from '../../test/cloud-system.ts';
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
  /** How long a run's driver may be silent before the broker stops its work, wall ms. Default 1000. */
  runGraceMs?: number;
}

/** What the audit found. */
export interface SpendAudit {
  hours: number;
  /** `notSucceeded`: the tasks that did not succeed, with the states they went through and why. */
  tasks: {
    sent: number;
    succeeded: number;
    notSucceeded: { id: string; states: string[]; reason?: string }[];
  };
  clouds: {
    cloud: 'ec2' | 'gce';
    cluster: string;
    planned: number;
    launched: number;
    extra: number;
    /** Planned nodes the agent gave up (the pool could not add them), by why. */
    givenUp: Record<string, number>;
    /** Spot instances the audit had the cloud reclaim (running ones, with work on them or not). */
    reclaimed: number;
  }[];
  /**
   * The cluster drained and removed with `--force` at `atHour`: the nodes Gantry bought there that the
   * removal terminated, and its instances still running (or on their way) once it was removed.
   */
  removedCluster: {
    cluster: string;
    atHour: number;
    terminated: number;
    leftRunning: number;
    error?: string;
  };
  budgets: { team: string; spent: number; perMonth?: number; perHour?: number }[];
  /**
   * The killed driver: a run whose driver stops sending heartbeats a while after its tasks started.
   * `orphanedLeaseSeconds`: simulated lease-seconds its work kept running past the grace period
   * (`graceSeconds`, simulated, from its last heartbeat, and the broker's check within two ticks) —
   * counted until the broker reported each lease ended, or the audit's end.
   */
  killedDriver: {
    leases: number;
    graceSeconds: number;
    /** The broker checks runs every health tick (half a heartbeat): what one tick is, simulated seconds. */
    tickSeconds: number;
    orphanedLeaseSeconds: number;
  };
}

/** Task shapes; `team` when only one team asks for it, `onlyIn` when only one cluster can run it. */
const SHAPES: { resources: Record<string, unknown>; team?: string; onlyIn?: string }[] = [
  { resources: { cpu: 4, memory: '8Gi' } },
  { resources: { cpu: 8, memory: '16Gi' } },
  { resources: { cpu: 2, memory: '4Gi' } },
  { resources: { gpu: 'L4:1', memory: '16Gi' } },
  // Only GCP has H100 spot (a3-highgpu-8g): this is the work that reaches the GCE cluster.
  { resources: { gpu: 'H100:8', memory: '64Gi', spot: 'required' }, team: 'research', onlyIn: 'gcp-usc1' },
];
/** The cluster the audit drains and removes. */
const REMOVED = 'gcp-usc1';
const TEAMS = ['research', 'product'];
const HEARTBEAT_MS = 100;

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
  const runGraceMs = opts.runGraceMs ?? 1000;
  const system = await startCloudSystem({
    platformDir: 'examples',
    clusters: ['aws-use1', 'gcp-usc1'],
    speedup,
    heartbeatMs: HEARTBEAT_MS,
    runGraceMs,
    // The removed cluster keeps idle nodes four hours: it still has nodes Gantry bought when it goes.
    idleTtlSeconds: { [REMOVED]: 4 * 3600 },
  });
  try {
    const planned = new Map<string, Set<string>>();
    system.transport.subscribe(subjects.scale('*'), (msg) => {
      const cluster = msg.subject.split('.').at(-2)!;
      const ids = planned.get(cluster) ?? new Set<string>();
      for (const id of (decodeJson(msg.data) as ScaleMsg).add ?? []) ids.add(id);
      planned.set(cluster, ids);
    });
    const givenUp = new Map<string, Map<string, number>>();
    system.transport.subscribe(subjects.events('*'), (msg) => {
      for (const e of (decodeJson(msg.data) as AgentEvents).events) {
        if (e.type !== 'pool' || e.state !== 'exhausted') continue;
        const byKind = givenUp.get(e.cluster) ?? new Map<string, number>();
        const kind = e.kind ?? 'unknown';
        byKind.set(kind, (byKind.get(kind) ?? 0) + e.plannedIds.length);
        givenUp.set(e.cluster, byKind);
      }
    });
    const client = new TestClient(system.transport);
    const ids: string[] = [];
    const hourMs = 3_600_000 / speedup;
    const killed = killedDriver(system.transport, speedup, runGraceMs);
    const killAt = Math.floor(hours / 3);
    // The GCP cluster goes at three quarters: its GCP-only work (H100 spot) stops three hours before,
    // so that nothing is left waiting for it.
    const removeAt = Math.floor((hours * 3) / 4);
    let removal: Promise<SpendAudit['removedCluster']> | undefined;
    const reclaimed = { ec2: 0, gce: 0 };
    for (let h = 0; h < hours; h++) {
      if (h === killAt) await killed.start(client);
      if (h === killAt + 2) killed.kill();
      if (h === removeAt) removal = removeCluster(system, REMOVED, h);
      if (h % 4 === 2) {
        reclaimed.ec2 += reclaimSpot(system, 'ec2');
        if (h < removeAt) reclaimed.gce += reclaimSpot(system, 'gce');
      }
      const shapes = h >= removeAt - 3 ? SHAPES.filter((s) => !s.onlyIn) : SHAPES;
      const n = Math.round((opts.tasksPerHour ?? 6) * (0.5 + rand()));
      for (let i = 0; i < n; i++) {
        const id = `h${h}-t${i}`;
        ids.push(id);
        const shape = shapes[Math.floor(rand() * shapes.length)]!;
        const team = TEAMS[Math.floor(rand() * TEAMS.length)]!;
        // A request the broker does not answer in time counts as not succeeded.
        void client
          .request(id, {
            team: shape.team ?? team,
            resources: shape.resources,
            work: { kind: 'sim', durationMs: Math.round((5 + rand() * 85) * 60_000) },
          })
          .catch(() => undefined);
      }
      await new Promise((r) => setTimeout(r, hourMs));
      if (h % 24 === 23) process.stderr.write(`  day ${(h + 1) / 24} of ${hours / 24}\n`);
    }
    await client.finished(ids, 60_000 + 2 * hourMs * 2).catch(() => undefined);
    const removedCluster = (await removal) ?? {
      cluster: REMOVED,
      atHour: removeAt,
      terminated: 0,
      leftRunning: 0,
      error: 'not reached',
    };
    const budgets = await system.transport.request(subjects.admin('budgets'), encodeJson({}));
    const status = decodeJson(budgets.data) as {
      budgets: { team: string; perHour?: { cap: number }; perMonth?: { cap: number; spent: number } }[];
    };
    return {
      hours,
      tasks: {
        sent: ids.length,
        succeeded: ids.filter((id) => client.successes(id) > 0).length,
        notSucceeded: ids
          .filter((id) => client.successes(id) === 0)
          .map((id) => {
            const reason = system.broker.state.requests.get(id)?.reason;
            return { id, states: client.states.get(id) ?? [], ...(reason ? { reason } : {}) };
          }),
      },
      clouds: [
        tally(
          'ec2',
          'aws-use1',
          planned.get('aws-use1'),
          system.ec2.instances().map((i) => i.tags['gantry.dev/planned-id']),
          givenUp.get('aws-use1'),
          reclaimed.ec2,
        ),
        tally(
          'gce',
          'gcp-usc1',
          planned.get('gcp-usc1'),
          system.gce.created().map((i) => i.labels['gantry-planned-id']),
          givenUp.get('gcp-usc1'),
          reclaimed.gce,
        ),
      ],
      removedCluster,
      budgets: status.budgets.map((b) => ({
        team: b.team,
        spent: b.perMonth?.spent ?? 0,
        ...(b.perMonth ? { perMonth: b.perMonth.cap } : {}),
        ...(b.perHour ? { perHour: b.perHour.cap } : {}),
      })),
      killedDriver: killed.result(),
    };
  } finally {
    await system.stop();
  }
}

/**
 * A run whose driver dies: it heartbeats as `gantry run` does, asks for three long tasks, and goes
 * silent two simulated hours later. Its leases should end once the grace period is over.
 */
function killedDriver(transport: CloudSystem['transport'], speedup: number, graceMs: number) {
  const runId = 'killed-driver';
  const team = 'product';
  const requestIds = ['kd-0', 'kd-1', 'kd-2'];
  const running = new Set<string>();
  const endedAt = new Map<string, number>();
  let killedAt: number | undefined;
  let beat: NodeJS.Timeout | undefined;
  transport.subscribe(subjects.taskStates(team, '*'), (msg) => {
    for (const s of (decodeJson(msg.data) as TaskStatesMsg).states) {
      if (!requestIds.includes(s.requestId)) continue;
      if (s.state === 'running') running.add(s.requestId);
      if ((TERMINAL.has(s.state) || s.state === 'lost') && !endedAt.has(s.requestId))
        endedAt.set(s.requestId, Date.now());
    }
  });
  let lastBeat = 0;
  const heartbeat = () => {
    lastBeat = Date.now();
    transport.publish(subjects.runControl(team, runId), encodeJson({ type: 'heartbeat' }));
  };
  return {
    async start(client: TestClient) {
      heartbeat();
      beat = setInterval(heartbeat, 200);
      for (const id of requestIds)
        void client
          .request(id, {
            team,
            runId,
            resources: { cpu: 2, memory: '4Gi' },
            work: { kind: 'sim', durationMs: 20 * 3_600_000 },
          })
          .catch(() => undefined);
    },
    kill() {
      clearInterval(beat);
      killedAt = Date.now();
    },
    result(): SpendAudit['killedDriver'] {
      clearInterval(beat);
      const now = Date.now();
      // The grace period runs from the last heartbeat the broker heard; the broker looks once a health
      // tick, and a loaded event loop may run that check a tick late.
      const graceEnd = (killedAt !== undefined ? lastBeat : now) + graceMs + HEARTBEAT_MS;
      let orphanedMs = 0;
      for (const id of running) orphanedMs += Math.max(0, (endedAt.get(id) ?? now) - graceEnd);
      return {
        leases: running.size,
        graceSeconds: (graceMs * speedup) / 1000,
        tickSeconds: (HEARTBEAT_MS / 2 / 1000) * speedup,
        orphanedLeaseSeconds: Math.round((orphanedMs * speedup) / 1000),
      };
    },
  };
}

/** Instances against planned ids: extra are those of no planned id, or a second of one. */
function tally(
  cloud: 'ec2' | 'gce',
  cluster: string,
  planned: Set<string> | undefined,
  instanceIds: (string | undefined)[],
  givenUp: Map<string, number> | undefined,
  reclaimed: number,
): SpendAudit['clouds'][number] {
  const seen = new Set<string>();
  let extra = 0;
  for (const id of instanceIds) {
    if (!id || !planned?.has(id) || seen.has(id)) extra++;
    if (id) seen.add(id);
  }
  return {
    cloud,
    cluster,
    planned: planned?.size ?? 0,
    launched: instanceIds.length,
    extra,
    givenUp: Object.fromEntries(givenUp ?? []),
    reclaimed,
  };
}

/** Reclaims one running spot instance Gantry bought on the cloud, as a spot interruption; 1 if it did. */
function reclaimSpot(system: CloudSystem, cloud: 'ec2' | 'gce'): number {
  if (cloud === 'ec2') {
    const i = system.ec2.instances().find((x) => x.lifecycle === 'spot' && x.state === 'running');
    if (i) system.ec2.reclaim(i.instanceId);
    return i ? 1 : 0;
  }
  const i = system.gce
    .instances()
    .find((x) => x.status === 'RUNNING' && x.scheduling.provisioningModel === 'SPOT');
  if (i) system.gce.preempt(i.name);
  return i ? 1 : 0;
}

/**
 * `gantry cluster drain`, then, once its work has finished, `gantry cluster remove --force`: the nodes
 * Gantry bought there are terminated and its agent stopped. Counts the cluster's instances that still
 * run after.
 */
async function removeCluster(
  system: CloudSystem,
  cluster: string,
  atHour: number,
): Promise<SpendAudit['removedCluster']> {
  const out = { cluster, atHour, terminated: 0, leftRunning: 0 };
  const admin = async (verb: string, body: unknown, timeoutMs = 10_000) =>
    decodeJson(
      (await system.transport.request(subjects.admin(verb), encodeJson(body), { timeoutMs })).data,
    ) as {
      ok: boolean;
      terminated?: string[];
      error?: { message: string };
    };
  const drained = await admin('drain', { name: cluster });
  if (!drained.ok) return { ...out, error: `drain: ${drained.error?.message}` };
  const deadline = Date.now() + 60_000;
  while (system.broker.state.activeCount(cluster) > 0 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  const removed = await admin('remove', { name: cluster, force: true }, 70_000);
  if (!removed.ok) return { ...out, error: `remove: ${removed.error?.message}` };
  const alive = new Set(['PROVISIONING', 'STAGING', 'RUNNING']);
  return {
    ...out,
    terminated: removed.terminated?.length ?? 0,
    leftRunning: system.gce.instances().filter((i) => alive.has(i.status)).length,
  };
}
