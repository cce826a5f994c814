/**
 * `gantry worker`: runs one `task` or `worker` lease in a container (the Kubernetes executor's pods),
 * connected to NATS directly. The lease comes in the `GANTRY_LEASE` environment variable. In a
 * container task's pod it runs twice around the task's own container: `--phase inputs` (the init
 * container) writes the inputs under /gantry/inputs, `--phase outputs` (the sidecar) waits for the
 * `task` container to end and publishes the result from /gantry/outputs.
 */
import type { Command } from 'commander';
import { leaseMsg, parseMessage, POD_PROGRAM_DIRS } from '../../protocol/index.ts';
import { Runtime } from '../../runtime/client.ts';
import { runTaskLease, serveWorker } from '../../runtime/host.ts';
import { openJetStreamArtifacts } from '../../runtime/nats-artifacts.ts';
import { containerLauncher, stageLeaseInputs } from '../../runtime/pod-phases.ts';
import { connectCli } from '../connect.ts';
import { UsageError } from '../errors.ts';

/** Adds `gantry worker`. */
export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('Run one workflow lease (from $GANTRY_LEASE) against NATS: what task pods run')
    .option('--nats <url>', 'NATS server (default: $GANTRY_NATS_URL)')
    .option('--creds <file>', 'NATS credentials (default: $GANTRY_NATS_CREDS)')
    .option(
      '--phase <phase>',
      "run (the task), or a container task pod's inputs (init container) or outputs (sidecar)",
      'run',
    )
    .action(async (flags: { nats?: string; creds?: string; phase: string }) => {
      if (!PHASES.includes(flags.phase as Phase))
        throw new UsageError(`--phase must be one of ${PHASES.join(', ')}, not '${flags.phase}'`);
      const phase = flags.phase as Phase;
      const text = process.env.GANTRY_LEASE;
      if (!text) throw new UsageError('GANTRY_LEASE is not set: the agent passes the lease to run');
      const parsed = parseMessage(leaseMsg, new TextEncoder().encode(text));
      if (!parsed.ok) throw new UsageError(`GANTRY_LEASE: ${parsed.error.message}`);
      const lease = parsed.value;
      if (lease.work.kind !== 'task' && lease.work.kind !== 'worker')
        throw new UsageError(`gantry worker runs task and worker leases, not ${lease.work.kind}`);
      if (phase !== 'run' && !(lease.work.kind === 'task' && lease.work.program?.image))
        throw new UsageError(`--phase ${phase} is for container task leases (a task with an image)`);
      const servers = flags.nats ?? process.env.GANTRY_NATS_URL;
      if (!servers) throw new UsageError('--nats (or GANTRY_NATS_URL) is required');
      const creds = flags.creds ?? process.env.GANTRY_NATS_CREDS;
      const transport = await connectCli({ nats: servers, creds }, `gantry-worker-${lease.leaseId}`);
      const services = { transport, artifacts: await openJetStreamArtifacts(transport.connection) };
      const runtime = new Runtime({ ...services, cluster: lease.cluster, progress: false });
      const node = process.env.GANTRY_NODE ?? lease.node;
      const ac = new AbortController();
      process.once('SIGTERM', () => ac.abort());
      try {
        if (phase === 'inputs') {
          const failed = await stageLeaseInputs(services, lease, podDirs());
          process.exitCode = failed ? 1 : 0;
        } else if (phase === 'outputs') {
          // The sidecar exits 0 once the result is out, whatever it says: the main container's exit
          // is the pod's verdict.
          const result = await runTaskLease(services, runtime, lease, node, ac.signal, await sidecar());
          process.exitCode = result ? 0 : 1;
        } else if (lease.work.kind === 'task') {
          const result = await runTaskLease(services, runtime, lease, node, ac.signal);
          process.exitCode = result?.ok ? 0 : 1;
        } else await serveWorker(services, runtime, lease, node, ac.signal);
        await transport.flush();
      } finally {
        await transport.close();
      }
    });
}

const PHASES = ['run', 'inputs', 'outputs'] as const;

/** The pod's input and output directories, as the agent set them. */
const podDirs = () => ({
  inputs: process.env.GANTRY_INPUTS ?? POD_PROGRAM_DIRS.inputs,
  outputs: process.env.GANTRY_OUTPUTS ?? POD_PROGRAM_DIRS.outputs,
});
type Phase = (typeof PHASES)[number];

/**
 * The outputs sidecar's launcher: the program is the pod's `task` container, watched through the
 * Kubernetes API with the pod's own service account (or $KUBECONFIG).
 */
async function sidecar() {
  const pod = process.env.GANTRY_POD;
  const namespace = process.env.GANTRY_POD_NAMESPACE;
  if (!pod || !namespace)
    throw new UsageError('GANTRY_POD and GANTRY_POD_NAMESPACE are not set: the agent names the pod');
  const { KubeConfig } = await import('@kubernetes/client-node');
  const { PROGRAM_CONTAINER, waitForContainerEnd } = await import('../../agents/cloud-index.ts');
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  return containerLauncher(podDirs(), (signal) =>
    waitForContainerEnd({ kubeConfig, namespace, pod, container: PROGRAM_CONTAINER, signal }),
  );
}
