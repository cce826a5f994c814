/**
 * `gantry worker`: runs one `task` or `worker` lease in a container (the Kubernetes executor's pods),
 * connected to NATS directly. The lease comes in the `GANTRY_LEASE` environment variable.
 */
import type { Command } from 'commander';
import { leaseMsg, parseMessage } from '../../protocol/index.ts';
import { Runtime } from '../../runtime/client.ts';
import { runTaskLease, serveWorker } from '../../runtime/host.ts';
import { openJetStreamArtifacts } from '../../runtime/nats-artifacts.ts';
import { connectCli } from '../connect.ts';
import { UsageError } from '../errors.ts';

/** Adds `gantry worker`. */
export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('Run one workflow lease (from $GANTRY_LEASE) against NATS: what task pods run')
    .option('--nats <url>', 'NATS server (default: $GANTRY_NATS_URL)')
    .option('--creds <file>', 'NATS credentials (default: $GANTRY_NATS_CREDS)')
    .action(async (flags: { nats?: string; creds?: string }) => {
      const text = process.env.GANTRY_LEASE;
      if (!text) throw new UsageError('GANTRY_LEASE is not set: the agent passes the lease to run');
      const parsed = parseMessage(leaseMsg, new TextEncoder().encode(text));
      if (!parsed.ok) throw new UsageError(`GANTRY_LEASE: ${parsed.error.message}`);
      const lease = parsed.value;
      if (lease.work.kind !== 'task' && lease.work.kind !== 'worker')
        throw new UsageError(`gantry worker runs task and worker leases, not ${lease.work.kind}`);
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
        if (lease.work.kind === 'task') {
          const result = await runTaskLease(services, runtime, lease, node, ac.signal);
          process.exitCode = result?.ok ? 0 : 1;
        } else await serveWorker(services, runtime, lease, node, ac.signal);
        await transport.flush();
      } finally {
        await transport.close();
      }
    });
}
