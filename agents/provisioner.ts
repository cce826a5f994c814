/**
 * Node provisioners add and remove nodes in a pool: `sim` (a simulated cloud), EC2 and GCE.
 */
import type { Pool } from '../policies/index.ts';

/** A node as the agent knows it. */
export interface ProvisionedNode {
  name: string;
  pool: string;
  ready: boolean;
  capacityType: Pool['capacityType'];
  /** The broker's planned id, when the node was added for a plan. */
  plannedId?: string;
  createdAt: number;
}

/**
 * Why a pool cannot add nodes now: `max-nodes` (it is at its maximum), `capacity` (the cloud has none of
 * the type, or the spot price is above the maximum), `quota` (an account limit), `throttled` (the API
 * kept refusing calls), `managed` (the nodes are not Gantry's to add: Kubernetes-managed pools),
 * `error` (anything else; the reason says what).
 */
export type ExhaustedKind = 'max-nodes' | 'capacity' | 'quota' | 'throttled' | 'managed' | 'error';

/**
 * Something that happened to a node — or to a pool: `exhausted` when the cloud cannot add nodes to it
 * now, so that the broker plans on other pools until `retryAfterMs` has passed. `plannedIds` are the
 * nodes asked for that will not come; `kind` says why as data, `reason` in words.
 */
export type NodeEvent =
  | { type: 'ready' | 'gone' | 'preempted'; node: ProvisionedNode }
  | {
      type: 'exhausted';
      pool: string;
      plannedIds: string[];
      kind: ExhaustedKind;
      reason: string;
      retryAfterMs: number;
    };

/** Adds and removes nodes; reports when they come up and when they disappear. */
export interface NodeProvisioner {
  readonly kind: string;
  /** Every node, ready or not. */
  list(): ProvisionedNode[];
  /** Asks for nodes, one per planned id; each is reported `ready` when it can take work. */
  add(pool: Pool, plannedIds: readonly string[]): Promise<void>;
  remove(nodeName: string): Promise<void>;
  onEvent(listener: (event: NodeEvent) => void): void;
  /**
   * Resolves once the cluster's instances have been listed (and adopted) since start, so that they count
   * against pools' maximums. Providers without a first listing leave it out.
   */
  whenListed?(): Promise<void>;
  /** Resolves when the provisioner's cloud answers now; rejects saying why not (the agent's `/readyz`). */
  ping?(): Promise<void>;
  close(): Promise<void>;
}

/**
 * How a provisioner's polls of its cloud went, so that `ping` answers from them without calling the
 * cloud again: it answers while a poll succeeded within `maxAgeMs`.
 */
export class PollHealth {
  #okAt: number | undefined;
  #error: string | undefined;

  constructor(
    private readonly what: string,
    private readonly maxAgeMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  ok(): void {
    this.#okAt = this.clock();
    this.#error = undefined;
  }

  failed(err: unknown): void {
    this.#error = err instanceof Error ? err.message : String(err);
  }

  /** Throws, saying why, unless a poll succeeded within `maxAgeMs`. */
  check(): void {
    const age = this.#okAt === undefined ? undefined : this.clock() - this.#okAt;
    if (age !== undefined && age <= this.maxAgeMs) return;
    const since =
      age === undefined
        ? 'no poll has succeeded yet'
        : `no poll has succeeded for ${Math.round(age / 1000)}s`;
    throw new Error(`${this.what}: ${since}${this.#error ? ` (last error: ${this.#error})` : ''}`);
  }
}

/** An instance as its cloud lists it: what the core needs to watch, adopt and terminate it. */
export interface CloudInstance {
  /** The cloud's id of the instance (what `terminate` takes). */
  id: string;
  /** The node's name (its Kubernetes node name); it may change until the node is ready. */
  name: string;
  /** The pool it was launched for, undefined when its tag names no pool of the cluster. */
  pool: string | undefined;
  plannedId?: string;
  state: 'starting' | 'running' | 'ended';
  /** A spot instance, or one the cloud says it reclaimed: its end is a preemption. */
  spot: boolean;
  createdAt?: number;
  /** Where it runs, when the cloud needs it to terminate it (a GCE zone). */
  zone?: string;
}

/** Planned ids a cloud would not launch, and why, as data. */
export interface LaunchRefusal {
  plannedIds: string[];
  kind: Exclude<ExhaustedKind, 'max-nodes' | 'managed' | 'error'>;
  reason: string;
  retryAfterMs: number;
}

/** What a launch gave: the instances (with their planned ids), refusals by cause, any other failure. */
export interface LaunchOutcome {
  launched: CloudInstance[];
  refused: LaunchRefusal[];
  /** A failure of another kind for the planned ids neither launched nor refused: `add` rejects with it. */
  failed?: Error;
}

/**
 * A cloud as the core sees it: list the cluster's instances, launch some for planned ids, terminate
 * one. Each says why a launch failed as a {@link LaunchRefusal}; the core does everything else.
 */
export interface CloudAdapter {
  readonly kind: string;
  /** The call that lists instances, named in `/readyz` answers (`EC2 DescribeInstances`). */
  readonly listCall: string;
  list(): Promise<CloudInstance[]>;
  launch(pool: Pool, plannedIds: string[]): Promise<LaunchOutcome>;
  /** Terminates an instance; resolves also when the cloud no longer has it. */
  terminate(instance: CloudInstance): Promise<void>;
  close(): Promise<void>;
}
