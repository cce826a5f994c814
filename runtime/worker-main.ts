/**
 * Entry of a worker process started by the process host: waits for its lease from the parent (as a
 * booted spare, it may wait a while), runs the execution or serves as a warm worker over the parent's
 * transport, and exits.
 */
import type { LeaseMsg } from '../protocol/index.ts';
import { Runtime } from './client.ts';
import { loadModule, runTaskLease, serveWorker } from './host.ts';
import { connectToParent } from './ipc.ts';

// A spare process is told which workflow module to load while it waits for a lease.
const { transport, artifacts, started } = connectToParent((module) => {
  if (module) loadModule(module).catch(() => undefined);
});
const { lease, node } = (await started) as { lease: LeaseMsg; node: string };
const services = { transport, artifacts };
const runtime = new Runtime({ ...services, cluster: lease.cluster, progress: false });
const ac = new AbortController();
process.once('SIGTERM', () => {
  ac.abort();
  process.exit(143);
});
if (lease.work.kind === 'task') {
  const result = await runTaskLease(services, runtime, lease, node, ac.signal);
  // The result has reached the parent's transport once this round trip returns.
  await transport.flush();
  process.disconnect?.();
  // Work the task left running (a timeout does not stop a busy loop) must not keep the lease.
  process.exit(result?.ok ? 0 : 1);
} else {
  await serveWorker(services, runtime, lease, node, ac.signal);
  await transport.flush();
  process.disconnect?.();
  process.exit(0);
}
