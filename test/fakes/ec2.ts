/**
 * A fake EC2 for tests: a real HTTP server on 127.0.0.1 speaking the subset of the EC2 Query API that
 * the EC2 node provisioner uses (CreateFleet `instant`, CreateTags, DescribeInstances, TerminateInstances,
 * DescribeSpotPriceHistory), with state in memory. Requests are form-encoded, answers are the XML EC2
 * sends, so the real `@aws-sdk/client-ec2` can talk to it. Handles let a test run out of capacity,
 * throttle, reclaim spot instances and watch instances come up.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An instance as the fake keeps it. */
export interface FakeInstance {
  instanceId: string;
  instanceType: string;
  state: InstanceStateName;
  lifecycle: 'spot' | 'on-demand';
  privateDnsName: string;
  availabilityZone: string;
  tags: Record<string, string>;
  launchTime: Date;
  stateReason?: { code: string; message: string };
}

/** A request the fake received: its action, its form parameters as sent, and the status it answered. */
export interface FakeRequest {
  action: string;
  params: Record<string, string>;
  status: number;
}

/** Options of {@link startFakeEc2}. */
export interface FakeEc2Options {
  /** The region the fake plays, for zone and DNS names. Default `us-east-1`. */
  region?: string;
  /** How long an instance stays `pending`, and `shutting-down`, ms. Default 0 (the next tick). */
  launchDelayMs?: number;
}

/** A running fake EC2 and its test handles. */
export interface FakeEc2 {
  /** Where to point the SDK: `new EC2Client({ endpoint: fake.url, ... })`. */
  readonly url: string;
  /** Every instance, terminated ones included (EC2 shows those for a while too). */
  instances(): FakeInstance[];
  /** Requests received, oldest first; only those of one action when given. */
  requests(action?: string): FakeRequest[];
  /** From now on at most `n` more instances of this type can launch (Infinity: no limit, the default). */
  setCapacity(instanceType: string, n: number): void;
  /** Answers the next `n` requests, whatever their action, with `RequestLimitExceeded` (HTTP 503). */
  throttleNext(n: number): void;
  /**
   * Answers the next request — of `action` only, when given — with this error, e.g.
   * `failNext('VcpuLimitExceeded', '…', 400, 'CreateFleet')`.
   */
  failNext(code: string, message: string, status?: number, action?: string): void;
  /** A spot interruption: the instance is terminated with reason `Server.SpotInstanceTermination`. */
  reclaim(instanceId: string): void;
  /** Terminates an instance behind the provisioner's back, as someone at the console would. */
  terminate(instanceId: string): void;
  /** Forgets terminated instances, as EC2 does about an hour after they end. */
  purgeTerminated(): void;
  /** The current spot price of a type in a zone, $/hour. */
  setSpotPrice(instanceType: string, availabilityZone: string, price: number): void;
  /** Calls `listener` each time an instance turns `running`. */
  onInstanceRunning(listener: (instance: FakeInstance) => void): void;
  /** Every pending instance is running now (with a long `launchDelayMs`, the test says when). */
  runPending(): void;
  close(): Promise<void>;
}

type InstanceStateName = 'pending' | 'running' | 'shutting-down' | 'terminated';

const STATE_CODES: Record<InstanceStateName, number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
};
const NAMESPACE = 'http://ec2.amazonaws.com/doc/2016-11-15/';

/** A failure the fake answers with, as EC2 would. */
class Ec2Fault extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/**
 * Starts a fake EC2 on a free local port.
 *
 * @example
 * const ec2 = await startFakeEc2({ launchDelayMs: 20 });
 * const client = new EC2Client({ region: 'us-east-1', endpoint: ec2.url, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
 * ec2.setCapacity('p5.48xlarge', 0);
 * await ec2.close();
 */
export async function startFakeEc2(opts: FakeEc2Options = {}): Promise<FakeEc2> {
  const region = opts.region ?? 'us-east-1';
  const launchDelayMs = opts.launchDelayMs ?? 0;
  const instances = new Map<string, FakeInstance>();
  const capacity = new Map<string, number>();
  const spotPrices = new Map<string, { instanceType: string; zone: string; price: number; at: Date }>();
  const received: FakeRequest[] = [];
  const runningListeners: ((i: FakeInstance) => void)[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const faults: { fault: Ec2Fault; action?: string }[] = [];
  let serial = 0;

  const later = (fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, launchDelayMs);
    timers.add(t);
  };

  function launch(instanceType: string, zone: string, lifecycle: FakeInstance['lifecycle']): FakeInstance {
    serial++;
    const ip = `10-0-${Math.floor(serial / 250)}-${(serial % 250) + 4}`;
    const domain = region === 'us-east-1' ? 'ec2.internal' : `${region}.compute.internal`;
    const instance: FakeInstance = {
      instanceId: `i-${serial.toString(16).padStart(17, '0')}`,
      instanceType,
      state: 'pending',
      lifecycle,
      privateDnsName: `ip-${ip}.${domain}`,
      availabilityZone: zone,
      tags: {},
      launchTime: new Date(),
    };
    instances.set(instance.instanceId, instance);
    later(() => run(instance));
    return instance;
  }

  function run(instance: FakeInstance): void {
    if (instance.state !== 'pending') return;
    instance.state = 'running';
    runningListeners.forEach((l) => l(instance));
  }

  function end(instance: FakeInstance, reason: { code: string; message: string }, at: 'now' | 'later'): void {
    if (instance.state === 'terminated' || instance.state === 'shutting-down') return;
    instance.stateReason = reason;
    if (at === 'now') instance.state = 'terminated';
    else {
      instance.state = 'shutting-down';
      later(() => (instance.state = 'terminated'));
    }
  }

  function known(instanceId: string): FakeInstance {
    const instance = instances.get(instanceId);
    if (!instance) throw new Error(`the fake EC2 has no instance ${instanceId}`);
    return instance;
  }

  const actions: Record<string, (p: Params) => string> = {
    CreateFleet: (p) => createFleet(p, { launch, capacity, region }),
    CreateTags: (p) => createTags(p, instances),
    DescribeInstances: (p) => describeInstances(p, instances),
    TerminateInstances: (p) => terminateInstances(p, instances, end),
    DescribeSpotPriceHistory: (p) => describeSpotPriceHistory(p, [...spotPrices.values()]),
  };

  function answer(params: Params): { status: number; body: string } {
    const action = params.get('Action') ?? '';
    const requestId = randomUUID();
    try {
      const at = faults.findIndex((f) => f.action === undefined || f.action === action);
      if (at >= 0) throw faults.splice(at, 1)[0]!.fault;
      if (params.get('Version') !== '2016-11-15') throw new Ec2Fault('InvalidParameterValue', 'bad Version');
      const handler = actions[action];
      if (!handler)
        throw new Ec2Fault('InvalidAction', `The action ${action} is not valid for this web service.`);
      const body = handler(params);
      return {
        status: 200,
        body: `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${NAMESPACE}"><requestId>${requestId}</requestId>${body}</${action}Response>`,
      };
    } catch (err) {
      const fault = err instanceof Ec2Fault ? err : new Ec2Fault('InternalError', String(err), 500);
      return { status: fault.status, body: errorXml(fault, requestId) };
    }
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const params: Params = new Map(new URLSearchParams(text));
      const { status, body } = answer(params);
      received.push({ action: params.get('Action') ?? '', params: Object.fromEntries(params), status });
      res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' }).end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    instances: () => [...instances.values()],
    requests: (action) => received.filter((r) => action === undefined || r.action === action),
    setCapacity: (instanceType, n) => void capacity.set(instanceType, n),
    throttleNext(n) {
      for (let i = 0; i < n; i++)
        faults.push({ fault: new Ec2Fault('RequestLimitExceeded', 'Request limit exceeded.', 503) });
    },
    failNext: (code, message, status = 400, action) =>
      void faults.push({ fault: new Ec2Fault(code, message, status), ...(action ? { action } : {}) }),
    reclaim(instanceId) {
      const instance = known(instanceId);
      if (instance.lifecycle !== 'spot') throw new Error(`${instanceId} is not a spot instance`);
      const message = 'Server.SpotInstanceTermination: Spot instance termination';
      end(instance, { code: 'Server.SpotInstanceTermination', message }, 'now');
    },
    terminate(instanceId) {
      const message = 'Client.UserInitiatedShutdown: User initiated shutdown';
      end(known(instanceId), { code: 'Client.UserInitiatedShutdown', message }, 'now');
    },
    purgeTerminated() {
      for (const [id, instance] of instances) if (instance.state === 'terminated') instances.delete(id);
    },
    setSpotPrice(instanceType, zone, price) {
      spotPrices.set(`${instanceType}|${zone}`, { instanceType, zone, price, at: new Date() });
    },
    onInstanceRunning: (listener) => void runningListeners.push(listener),
    runPending() {
      for (const instance of instances.values()) run(instance);
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// --- Query parameters: flat `A.1.B.2.C=v` keys, read back by prefix. ---

type Params = Map<string, string>;

/** The parameters under `prefix.`, with the prefix taken off. */
function under(p: Params, prefix: string): Params {
  const out: Params = new Map();
  for (const [k, v] of p) if (k.startsWith(`${prefix}.`)) out.set(k.slice(prefix.length + 1), v);
  return out;
}

/** The members of a list of structures: `prefix.1.*`, `prefix.2.*`, … */
function members(p: Params, prefix: string): Params[] {
  const out: Params[] = [];
  for (let i = 1; ; i++) {
    const member = under(p, `${prefix}.${i}`);
    if (member.size === 0) return out;
    out.push(member);
  }
}

/** The values of a list of strings: `prefix.1`, `prefix.2`, … */
function values(p: Params, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 1; p.has(`${prefix}.${i}`); i++) out.push(p.get(`${prefix}.${i}`)!);
  return out;
}

function required(p: Params, key: string): string {
  const value = p.get(key);
  if (value === undefined)
    throw new Ec2Fault('MissingParameter', `The request must contain the parameter ${key}`);
  return value;
}

// --- Actions. Each returns the XML inside its <ActionResponse>. ---

interface FleetWorld {
  launch: (instanceType: string, zone: string, lifecycle: FakeInstance['lifecycle']) => FakeInstance;
  capacity: Map<string, number>;
  region: string;
}

function createFleet(p: Params, world: FleetWorld): string {
  if (p.get('Type') !== 'instant') throw new Ec2Fault('Unsupported', 'the fake EC2 only runs instant fleets');
  const config = members(p, 'LaunchTemplateConfigs')[0];
  if (!config)
    throw new Ec2Fault('MissingParameter', 'The request must contain the parameter LaunchTemplateConfigs');
  const template = under(config, 'LaunchTemplateSpecification');
  if (!template.has('LaunchTemplateId') && !template.has('LaunchTemplateName'))
    throw new Ec2Fault('MissingParameter', 'a launch template id or name is required');
  required(template, 'Version');
  const override = members(config, 'Overrides')[0] ?? new Map<string, string>();
  const instanceType = required(override, 'InstanceType');
  const zone = override.get('AvailabilityZone') ?? `${world.region}a`;
  const wanted = Number(required(p, 'TargetCapacitySpecification.TotalTargetCapacity'));
  const lifecycle =
    p.get('TargetCapacitySpecification.DefaultTargetCapacityType') === 'spot' ? 'spot' : 'on-demand';
  const tags = members(p, 'TagSpecification')
    .filter((s) => s.get('ResourceType') === 'instance')
    .flatMap((s) => members(s, 'Tag'));

  const room = world.capacity.get(instanceType) ?? Infinity;
  const count = Math.max(0, Math.min(wanted, room));
  world.capacity.set(instanceType, room - count);
  const launched = Array.from({ length: count }, () => world.launch(instanceType, zone, lifecycle));
  for (const instance of launched) for (const t of tags) instance.tags[t.get('Key')!] = t.get('Value') ?? '';

  const templateXml = template.has('LaunchTemplateId')
    ? `<launchTemplateId>${esc(template.get('LaunchTemplateId')!)}</launchTemplateId>`
    : `<launchTemplateName>${esc(template.get('LaunchTemplateName')!)}</launchTemplateName>`;
  const andOverrides =
    `<launchTemplateAndOverrides><launchTemplateSpecification>${templateXml}<version>${esc(template.get('Version')!)}</version></launchTemplateSpecification>` +
    `<overrides><instanceType>${esc(instanceType)}</instanceType><availabilityZone>${esc(zone)}</availabilityZone></overrides></launchTemplateAndOverrides>`;
  const errors =
    count < wanted
      ? `<item>${andOverrides}<lifecycle>${lifecycle}</lifecycle><errorCode>InsufficientInstanceCapacity</errorCode>` +
        `<errorMessage>${esc(noCapacityMessage(instanceType, zone, lifecycle))}</errorMessage></item>`
      : '';
  const fleetInstances =
    count > 0
      ? `<item>${andOverrides}<lifecycle>${lifecycle}</lifecycle><instanceIds>${launched.map((i) => `<item>${i.instanceId}</item>`).join('')}</instanceIds>` +
        `<instanceType>${esc(instanceType)}</instanceType></item>`
      : '';
  return `<fleetId>fleet-${randomUUID()}</fleetId><errorSet>${errors}</errorSet><fleetInstanceSet>${fleetInstances}</fleetInstanceSet>`;
}

function noCapacityMessage(instanceType: string, zone: string, lifecycle: string): string {
  return lifecycle === 'spot'
    ? 'There is no Spot capacity available that matches your request.'
    : `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${zone}).`;
}

function createTags(p: Params, instances: Map<string, FakeInstance>): string {
  const ids = values(p, 'ResourceId');
  const tags = members(p, 'Tag');
  for (const id of ids) if (!instances.has(id)) throw notFound([id]);
  for (const id of ids) for (const t of tags) instances.get(id)!.tags[t.get('Key')!] = t.get('Value') ?? '';
  return '<return>true</return>';
}

function describeInstances(p: Params, instances: Map<string, FakeInstance>): string {
  const ids = values(p, 'InstanceId');
  const missing = ids.filter((id) => !instances.has(id));
  if (missing.length > 0) throw notFound(missing);
  const filters = members(p, 'Filter').map((f) => ({
    name: required(f, 'Name'),
    values: values(f, 'Value'),
  }));
  const matches = (i: FakeInstance) =>
    (ids.length === 0 || ids.includes(i.instanceId)) &&
    filters.every((f) => f.values.some((v) => v === instanceField(i, f.name)));
  const items = [...instances.values()]
    .filter(matches)
    .map(
      (i) =>
        `<item><reservationId>r-${i.instanceId.slice(2)}</reservationId><ownerId>123456789012</ownerId><groupSet/>` +
        `<instancesSet>${instanceXml(i)}</instancesSet></item>`,
    );
  return `<reservationSet>${items.join('')}</reservationSet>`;
}

/** The value a DescribeInstances filter compares with; EC2 rejects filters it does not know. */
function instanceField(i: FakeInstance, filter: string): string | undefined {
  if (filter.startsWith('tag:')) return i.tags[filter.slice(4)];
  if (filter === 'instance-state-name') return i.state;
  if (filter === 'instance-id') return i.instanceId;
  if (filter === 'instance-type') return i.instanceType;
  throw new Ec2Fault('InvalidParameterValue', `The filter '${filter}' is invalid`);
}

function instanceXml(i: FakeInstance): string {
  const tags = Object.entries(i.tags)
    .map(([k, v]) => `<item><key>${esc(k)}</key><value>${esc(v)}</value></item>`)
    .join('');
  const reason = i.stateReason
    ? `<reason>${esc(i.stateReason.message)}</reason><stateReason><code>${esc(i.stateReason.code)}</code><message>${esc(i.stateReason.message)}</message></stateReason>`
    : '<reason/>';
  return (
    `<item><instanceId>${i.instanceId}</instanceId><imageId>ami-0123456789abcdef0</imageId>` +
    `<instanceState><code>${STATE_CODES[i.state]}</code><name>${i.state}</name></instanceState>` +
    `<privateDnsName>${i.state === 'terminated' ? '' : i.privateDnsName}</privateDnsName><dnsName/>${reason}` +
    `<instanceType>${esc(i.instanceType)}</instanceType><launchTime>${i.launchTime.toISOString()}</launchTime>` +
    `<placement><availabilityZone>${esc(i.availabilityZone)}</availabilityZone><tenancy>default</tenancy></placement>` +
    (i.lifecycle === 'spot' ? '<instanceLifecycle>spot</instanceLifecycle>' : '') +
    `<tagSet>${tags}</tagSet></item>`
  );
}

function terminateInstances(
  p: Params,
  instances: Map<string, FakeInstance>,
  end: (i: FakeInstance, reason: { code: string; message: string }, at: 'later') => void,
): string {
  const ids = values(p, 'InstanceId');
  const missing = ids.filter((id) => !instances.has(id));
  if (missing.length > 0) throw notFound(missing);
  const items = ids.map((id) => {
    const instance = instances.get(id)!;
    const previous = instance.state;
    end(
      instance,
      {
        code: 'Client.UserInitiatedShutdown',
        message: 'Client.UserInitiatedShutdown: User initiated shutdown',
      },
      'later',
    );
    const state = (s: InstanceStateName) => `<code>${STATE_CODES[s]}</code><name>${s}</name>`;
    return `<item><instanceId>${id}</instanceId><currentState>${state(instance.state)}</currentState><previousState>${state(previous)}</previousState></item>`;
  });
  return `<instancesSet>${items.join('')}</instancesSet>`;
}

function describeSpotPriceHistory(
  p: Params,
  prices: { instanceType: string; zone: string; price: number; at: Date }[],
): string {
  const types = values(p, 'InstanceType');
  const products = values(p, 'ProductDescription');
  if (products.length > 0 && !products.includes('Linux/UNIX')) return '<spotPriceHistorySet/>';
  const items = prices
    .filter((s) => types.length === 0 || types.includes(s.instanceType))
    .map(
      (s) =>
        `<item><instanceType>${esc(s.instanceType)}</instanceType><productDescription>Linux/UNIX</productDescription>` +
        `<spotPrice>${s.price.toFixed(6)}</spotPrice><timestamp>${s.at.toISOString()}</timestamp>` +
        `<availabilityZone>${esc(s.zone)}</availabilityZone></item>`,
    );
  return `<spotPriceHistorySet>${items.join('')}</spotPriceHistorySet>`;
}

function notFound(ids: string[]): Ec2Fault {
  const quoted = ids.map((id) => `'${id}'`).join(', ');
  return new Ec2Fault('InvalidInstanceID.NotFound', `The instance IDs ${quoted} do not exist`);
}

function errorXml(fault: Ec2Fault, requestId: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${esc(fault.code)}</Code>` +
    `<Message>${esc(fault.message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`
  );
}

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}
