/**
 * The pod of a container task (`containerTask({ image, command, … })`) on Kubernetes, laid out as
 * Flyte's copilot lays out a raw container: the task's own image and command are the pod's main
 * container, and the Gantry image only moves data around it, through one `emptyDir` volume at
 * `/gantry` that all three containers mount.
 *
 * 1. `gantry-inputs`, an init container in the Gantry image (`gantry worker --phase inputs`): fetches
 *    the input (inline or from the artifact store), checks it against the task's schema and writes it
 *    as files under `/gantry/inputs` before the main container starts. A bad input ends here, as the
 *    task's typed error.
 * 2. `task`, the main container: the task's image, `command` and `args` (templates expanded), its
 *    `env` plus `GANTRY_INPUTS`, `GANTRY_OUTPUTS`, `GANTRY_RUN_ID`, `GANTRY_EXECUTION`, `GANTRY_ATTEMPT`
 *    (and a gang member's `MASTER_ADDR`, …), with the lease's resources as its requests and limits.
 * 3. `gantry-outputs`, a sidecar in the Gantry image (`gantry worker --phase outputs`): waits for the
 *    main container to end (reading its own pod through the Kubernetes API, as copilot's sidecar does),
 *    turns its exit into a typed error (137 / `OOMKilled` → `OutOfMemoryError`) or reads the outputs it
 *    wrote under `/gantry/outputs`, keeps its log, and publishes the result.
 *
 * The inputs are files in a volume rather than a ConfigMap or the downward API: those hold at most
 * 1 MiB and cannot carry artifacts, which are fetched by reference.
 */
import type { V1Container, V1EnvVar, V1PodSpec, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { expandProgramArg, type LeaseMsg, POD_PROGRAM_DIRS, usesInputValue } from '../protocol/index.ts';

/** The main container of a container task's pod: the task's own image and command. */
export const PROGRAM_CONTAINER = 'task';
/** The init container that writes the inputs. */
export const INPUTS_CONTAINER = 'gantry-inputs';
/** The sidecar that reads the outputs back and reports the result. */
export const OUTPUTS_CONTAINER = 'gantry-outputs';
const DATA_VOLUME = 'gantry-data';
const DATA_MOUNT: V1VolumeMount = { name: DATA_VOLUME, mountPath: '/gantry' };
const TOKEN_VOLUME = 'gantry-kube-api';
/**
 * The sidecar's Kubernetes credential, as the kubelet would mount it in every container — but here in
 * the sidecar only: the task's own program gets no token (the pod does not automount one).
 */
const TOKEN_MOUNT: V1VolumeMount = {
  name: TOKEN_VOLUME,
  mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
  readOnly: true,
};
const TOKEN: V1Volume = {
  name: TOKEN_VOLUME,
  projected: {
    sources: [
      { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
    ],
  },
};

/** Seconds a container task's pod may run past its timeout before Kubernetes stops it. */
const DEADLINE_GRACE_S = 60;

type TaskWork = Extract<LeaseMsg['work'], { kind: 'task' }>;
type Program = NonNullable<TaskWork['program']>;

/** The parts of the pod a container task changes, or why it cannot run. */
export type ContainerTaskSpec =
  | {
      ok: true;
      spec: Pick<
        V1PodSpec,
        | 'initContainers'
        | 'containers'
        | 'volumes'
        | 'serviceAccountName'
        | 'automountServiceAccountToken'
        | 'activeDeadlineSeconds'
      >;
    }
  | { ok: false; reason: string };

/**
 * The containers and volumes of a container task's pod. `worker` is the container a Gantry-image
 * `task` pod would have (`gantry worker`, its environment and credential mounts); the two helpers
 * are made from it, and `resources` go to the main container only (the helpers ask for nothing:
 * they only wait or copy, and the lease is what the broker counted). `serviceAccount` is the account
 * whose token the sidecar reads its pod with (`get` on pods and pods/log in the task namespace).
 */
export function containerTaskSpec(
  lease: LeaseMsg,
  program: Program & { image: string },
  worker: V1Container,
  resources: V1Container['resources'],
  pod: { name: string; namespace: string; serviceAccount?: string | undefined },
  volumes: V1Volume[],
): ContainerTaskSpec {
  const work = lease.work as TaskWork;
  const args = program.args;
  // A value in an argument must be known here; one passed by reference is only in the artifact store.
  const inline = 'inline' in work.input ? work.input.inline : undefined;
  if (!('inline' in work.input) && args.some(usesInputValue))
    return {
      ok: false,
      reason: `the input of ${work.task} is too large to expand {{inputs.<field>}} in its arguments: read $GANTRY_INPUTS/<field> instead`,
    };
  const helper = (
    name: string,
    phase: 'inputs' | 'outputs',
    env: V1EnvVar[] = [],
    mounts: V1VolumeMount[] = [],
  ): V1Container => {
    const { resources: _unused, ...rest } = worker;
    return {
      ...rest,
      name,
      args: ['worker', '--phase', phase],
      env: [
        ...(worker.env ?? []),
        { name: 'GANTRY_INPUTS', value: POD_PROGRAM_DIRS.inputs },
        { name: 'GANTRY_OUTPUTS', value: POD_PROGRAM_DIRS.outputs },
        ...env,
      ],
      volumeMounts: [...(worker.volumeMounts ?? []), DATA_MOUNT, ...mounts],
    };
  };
  const main: V1Container = {
    name: PROGRAM_CONTAINER,
    image: program.image,
    command: [program.command],
    args: args.map((a) => expandProgramArg(a, inline, POD_PROGRAM_DIRS)),
    env: Object.entries(programEnv(lease, work, program)).map(([name, value]) => ({ name, value })),
    ...(resources ? { resources } : {}),
    volumeMounts: [DATA_MOUNT],
  };
  return {
    ok: true,
    spec: {
      initContainers: [helper(INPUTS_CONTAINER, 'inputs')],
      containers: [
        main,
        helper(
          OUTPUTS_CONTAINER,
          'outputs',
          [
            { name: 'GANTRY_POD', value: pod.name },
            { name: 'GANTRY_POD_NAMESPACE', value: pod.namespace },
          ],
          [TOKEN_MOUNT],
        ),
      ],
      volumes: [...volumes, { name: DATA_VOLUME, emptyDir: {} }, TOKEN],
      ...(pod.serviceAccount ? { serviceAccountName: pod.serviceAccount } : {}),
      automountServiceAccountToken: false,
      // The sidecar reports a TimeoutError at the task's timeout, but cannot stop the task's own
      // container: the kubelet does, a minute later (the minute is for staging the inputs).
      ...(work.timeoutMs
        ? { activeDeadlineSeconds: Math.ceil(work.timeoutMs / 1000) + DEADLINE_GRACE_S }
        : {}),
    },
  };
}

/** The main container's environment: the task's own, then Gantry's (which a program must not shadow). */
function programEnv(lease: LeaseMsg, work: TaskWork, program: Program): Record<string, string> {
  const g = lease.gang;
  return {
    ...program.env,
    GANTRY_INPUTS: POD_PROGRAM_DIRS.inputs,
    GANTRY_OUTPUTS: POD_PROGRAM_DIRS.outputs,
    GANTRY_RUN_ID: work.run,
    GANTRY_EXECUTION: work.execution,
    GANTRY_ATTEMPT: String(work.attempt ?? 0),
    ...(g
      ? {
          MASTER_ADDR: g.master,
          MASTER_PORT: String(g.port),
          WORLD_SIZE: String(g.size),
          RANK: String(g.rank),
          NODE_RANK: String(g.rank),
        }
      : {}),
  };
}
