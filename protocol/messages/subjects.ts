/** Subject prefix; bumped when a message changes incompatibly. */
export const PROTOCOL = 'gantry.v1';

/** The run token of task states whose request names no run. */
export const NO_RUN = '-';

/**
 * Subjects, by who listens. `<cluster>` is the Cluster's metadata.name, `<team>` a ResourcePolicy team.
 * Everything a team's runtime sends or reads is under `gantry.v1.team.<team>.`, and everything an agent
 * sends under `gantry.v1.agent.<cluster>.`, so that NATS permissions (docs/security.md) give each
 * credential its own subjects: the broker takes the team or the cluster from the subject, never from
 * the message.
 */
export const subjects = {
  /** a team's runtime → broker, request/reply: ask for resources; the reply is the lease (or the refusal). */
  request: (team: string) => `${PROTOCOL}.team.${team}.request`,
  /**
   * a cluster's agent (its task hosts' nested calls) → broker, request/reply: as `request`, for a team
   * that has work on the cluster, never for `process` work.
   */
  agentRequest: (cluster: string) => `${PROTOCOL}.agent.${cluster}.request`,
  /** anyone → broker, request/reply: operator queries and commands (`gantry get`, `gantry cluster`). */
  admin: (verb: string) => `${PROTOCOL}.broker.admin.${verb}`,
  /**
   * broker → the team's runtime: the lifecycles of a run's tasks, many states per message
   * (`taskStatesMsg`), sent once per solve cycle or batch of agent events. Requests outside any run
   * go to run `-`.
   */
  taskStates: (team: string, runId: string | undefined) =>
    `${PROTOCOL}.team.${team}.run.${runId ?? NO_RUN}.states`,
  /** agent → broker, request/reply. */
  register: (cluster: string) => `${PROTOCOL}.agent.${cluster}.register`,
  /** agent → broker: capacity, every heartbeat interval. */
  heartbeat: (cluster: string) => `${PROTOCOL}.agent.${cluster}.heartbeat`,
  /** agent → broker: lease lifecycle and node events. */
  events: (cluster: string) => `${PROTOCOL}.agent.${cluster}.events`,
  /** broker → agent, request/reply: launch work (idempotent by lease id). */
  launch: (cluster: string) => `${PROTOCOL}.agent.${cluster}.launch`,
  /** broker → agent: add or remove nodes. */
  scale: (cluster: string) => `${PROTOCOL}.agent.${cluster}.scale`,
  /** broker → agent: stop a lease's work (drain, cancel). */
  cancel: (cluster: string) => `${PROTOCOL}.agent.${cluster}.cancel`,
  /** broker → agent, request/reply: the cluster is removed; terminate these nodes, then stop. */
  stop: (cluster: string) => `${PROTOCOL}.agent.${cluster}.stop`,
  /**
   * task host on `cluster` → the team's runtime: the outcome of one task execution (`resultMsg`). The
   * last token names the cluster that sent it (its credential may publish no other), so the runtime
   * takes a result only from the cluster holding the lease.
   */
  result: (team: string, execution: string, cluster: string) =>
    `${PROTOCOL}.team.${team}.exec.${execution}.result.${cluster}`,
  /** runtime → the team's warm workers, request/reply in a queue group: run invocations (`invokeMsg`). */
  invoke: (team: string, pool: string) => `${PROTOCOL}.team.${team}.worker.${pool}.invoke`,
  /** runtime → the team's warm workers: stop now (empty body). */
  stopWorkers: (team: string, pool: string) => `${PROTOCOL}.team.${team}.worker.${pool}.stop`,
  /** runtime → anyone of the team watching a run (`gantry run` prints them): placements, retries, ends. */
  runEvents: (team: string, runId: string) => `${PROTOCOL}.team.${team}.run.${runId}.events`,
  /**
   * run driver → broker (`runControlMsg`): the run's liveness heartbeat, its end, or a cancel
   * (request/reply: the answer says what was stopped).
   */
  runControl: (team: string, runId: string) => `${PROTOCOL}.team.${team}.run.${runId}.control`,
} as const;
