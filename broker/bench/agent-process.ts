/**
 * One cluster's agent as its own process, for `npm run bench:broker` over NATS: the same sim executor
 * and provisioner the embedded run uses in-process, so that the agent's memory and CPU can be measured
 * apart from the client's. `tsx broker/bench/agent-process.ts <nats url> <cluster>`; stops on SIGTERM.
 */
import { createAgent, createSimExecutor, createSimProvisioner } from '../../agents/index.ts';
import { loadPlatform } from '../../policies/index.ts';
import { connectNats } from '../../protocol/nats-index.ts';

const [url, name] = process.argv.slice(2);
const cluster = loadPlatform(['test/fixtures/bench']).platform.clusters.find((c) => c.name === name);
if (!url || !cluster) throw new Error('usage: agent-process.ts <nats url> <cluster of test/fixtures/bench>');
const transport = await connectNats({ servers: url.split(','), name: `bench-agent-${cluster.name}` });
const agent = createAgent({
  transport,
  cluster,
  executor: createSimExecutor({ speedup: 1 }),
  provisioner: createSimProvisioner(cluster, { speedup: 1000 }),
  heartbeatMs: 500,
});
await agent.start();
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  void agent
    .stop()
    .then(() => transport.close())
    .then(() => process.exit(0));
});
