/**
 * How a container task's outputs sidecar learns that the task's own container ended, and how: it reads
 * its pod through the Kubernetes API until that container's status is `terminated`, then reads the
 * container's log. The pod's service account needs `get` on `pods` and `pods/log` in the task
 * namespace (deploy/kubernetes/task-rbac.yaml); nothing else.
 */
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

/** How a container ended: its exit code and reason (`OOMKilled`, `Error`, `Completed`), and its log. */
export interface ContainerEnd {
  /** `null` when the wait was aborted before the container ended. */
  exitCode: number | null;
  reason?: string;
  message?: string;
  log: string;
}

/** Options of {@link waitForContainerEnd}. */
export interface ContainerWaitOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  pod: string;
  container: string;
  signal: AbortSignal;
  /** How often the pod is read, ms. Default 500. */
  pollMs?: number;
  /** The API server failing this long in a row ends the wait with an error. Default 60 s. */
  giveUpAfterMs?: number;
  /** Lines of the log kept (the end). Default 10,000. */
  tailLines?: number;
}

/**
 * Resolves when `container` of `pod` has terminated (or `signal` aborts). A pod that no longer exists
 * resolves as a container killed with it (exit 137, reason `PodDeleted`); an API server that cannot be
 * read for `giveUpAfterMs` rejects, saying why.
 *
 * @example
 * const end = await waitForContainerEnd({ kubeConfig, namespace: 'gantry-tasks', pod, container: 'task', signal });
 */
export async function waitForContainerEnd(opts: ContainerWaitOptions): Promise<ContainerEnd> {
  const api = opts.kubeConfig.makeApiClient(CoreV1Api);
  const { namespace, pod: name, container, signal } = opts;
  const pollMs = opts.pollMs ?? 500;
  const maxFailures = Math.ceil((opts.giveUpAfterMs ?? 60_000) / pollMs);
  let failures = 0;
  while (!signal.aborted) {
    let pod;
    try {
      pod = await api.readNamespacedPod({ name, namespace });
      failures = 0;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return { exitCode: 137, reason: 'PodDeleted', log: '' };
      // The API server busy or restarting: read again, for a while.
      if (++failures >= maxFailures)
        throw new Error(
          `cannot read pod ${namespace}/${name} to see its ${container} container end: ${String(err)}`,
          {
            cause: err,
          },
        );
      pod = undefined;
    }
    const term = pod?.status?.containerStatuses?.find((c) => c.name === container)?.state?.terminated;
    if (term)
      return {
        exitCode: term.exitCode,
        ...(term.reason ? { reason: term.reason } : {}),
        ...(term.message ? { message: term.message } : {}),
        log: await readLog(api, opts),
      };
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, pollMs);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done);
    });
  }
  return { exitCode: null, log: '' };
}

async function readLog(api: CoreV1Api, opts: ContainerWaitOptions): Promise<string> {
  try {
    return await api.readNamespacedPodLog({
      name: opts.pod,
      namespace: opts.namespace,
      container: opts.container,
      tailLines: opts.tailLines ?? 10_000,
    });
  } catch {
    // Logs are a convenience: a result without them is still the result.
    return '';
  }
}
