/**
 * Every common operational mistake, through the real `gantry` binary: NATS down, NATS without
 * JetStream, no broker, a server that wants credentials, unreadable or refused credentials, no AWS
 * credentials, an unreachable or refusing EC2 endpoint, a metrics port in use, a platform that is not
 * where the default `-f` looks. Each must end in one line that says what failed, where and what to do,
 * with the documented exit code and no stack trace.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createUser } from '@nats-io/nkeys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GantryProcess, spawnGantry, startGantry } from './cli.ts';
import { type FakeEc2, startFakeEc2 } from './fakes/ec2.ts';
import { freePort, type NatsServer, startNatsServer } from './nats/server.ts';

const INPUT = '{"source":"s3://bucket/clicks","rows":1000,"epochs":1}';
const RUN = ['run', 'examples/workflows/train.ts', '--team', 'research', '--input', INPUT];

let withJs: NatsServer;
let noJs: NatsServer;
let locked: NatsServer;
let ec2: FakeEc2;
let busy: Server;
let busyPort: number;
let deadPort: number;
let strangerSeed: string;
let holder: GantryProcess;
const tmp = mkdtempSync(join(tmpdir(), 'gantry-oops-'));

beforeAll(async () => {
  [withJs, noJs, locked, ec2] = await Promise.all([
    startNatsServer(),
    startNatsServer({ jetstream: false }),
    startNatsServer({ config: 'authorization { user: operator, password: s3cret }' }),
    startFakeEc2(),
  ]);
  busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  busyPort = (busy.address() as { port: number }).port;
  deadPort = await freePort();
  holder = startGantry(['up', '-f', 'examples', '--state', join(tmp, 'held')]);
  await holder.waitFor(/Gantry is up/);
  strangerSeed = join(tmp, 'stranger.nk');
  writeFileSync(strangerSeed, `${new TextDecoder().decode(createUser().getSeed())}\n`);
});

afterAll(async () => {
  busy?.close();
  await holder?.stop();
  await Promise.all([withJs?.stop(), noJs?.stop(), locked?.stop(), ec2?.close()]);
});

/** No AWS credentials anywhere the SDK looks, and never the instance metadata service. */
const noAws = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('AWS_')) delete env[k];
  return {
    ...env,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: join(tmp, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: join(tmp, 'none'),
  };
};
const someAws = (): NodeJS.ProcessEnv => ({
  ...noAws(),
  AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'example',
});

interface Case {
  name: string;
  args: () => string[];
  line: RegExp;
  code?: number;
  env?: () => NodeJS.ProcessEnv;
  cwd?: () => string;
  before?: () => void;
}

const dead = () => `nats://127.0.0.1:${deadPort}`;
const cases: Case[] = [
  {
    name: 'NATS not reachable (cluster list)',
    args: () => ['cluster', 'list', '--nats', dead()],
    line: /^gantry: cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+ \(connection refused\): start nats-server with JetStream there \(nats-server -js\), or pass --nats <url> of a running one$/,
  },
  {
    name: 'NATS not reachable (run)',
    args: () => [...RUN, '--nats', dead()],
    line: /^gantry: cannot reach NATS at .* \(connection refused\): start nats-server/,
  },
  {
    name: 'NATS not reachable (broker)',
    args: () => ['broker', '-f', 'examples', '--nats', dead()],
    line: /^gantry: cannot reach NATS at .* \(connection refused\)/,
  },
  {
    name: 'NATS not reachable (agent)',
    args: () => ['agent', '-f', 'examples', '--cluster', 'aws-use1', '--nats', dead()],
    line: /^gantry: cannot reach NATS at .* \(connection refused\)/,
  },
  {
    name: 'NATS not reachable (report cost)',
    args: () => ['report', 'cost', '--nats', dead()],
    line: /^gantry: cannot reach NATS at .* \(connection refused\)/,
  },
  {
    name: 'a --nats host that does not resolve (get nodes)',
    args: () => ['get', 'nodes', '--nats', 'nats://no-such-host.invalid:4222'],
    line: /^gantry: cannot reach NATS at nats:\/\/no-such-host\.invalid:4222 \(no such host: 'no-such-host\.invalid'\): check the host name in --nats/,
  },
  {
    name: 'a --nats host that does not resolve (run)',
    args: () => [...RUN, '--nats', 'no-such-host.invalid'],
    line: /^gantry: cannot reach NATS at no-such-host\.invalid \(no such host/,
  },
  {
    name: 'a platform path that does not exist (plan)',
    args: () => ['plan', '-f', join(tmp, 'nope'), '--workload', 'examples/workloads/nightly.yaml'],
    line: /^\S*nope {2}\(document\) {2}no such file or directory$/,
  },
  {
    name: 'a --nats that is no URL',
    args: () => ['get', 'nodes', '--nats', '::::'],
    line: /^gantry: --nats :::: is not a NATS URL: write nats:\/\/<host>:<port>/,
    code: 2,
  },
  {
    name: 'NATS without JetStream (broker)',
    args: () => ['broker', '-f', 'examples', '--nats', noJs.url],
    line: /^gantry: NATS at nats:\/\/127\.0\.0\.1:\d+ has no JetStream, where Gantry keeps its state: restart nats-server with -js \(or jetstream \{\} in its config\)$/,
  },
  {
    name: 'NATS without JetStream (report cost)',
    args: () => ['report', 'cost', '--nats', noJs.url],
    line: /^gantry: NATS at .* has no JetStream/,
  },
  {
    name: 'no broker answering (get nodes)',
    args: () => ['get', 'nodes', '--nats', withJs.url],
    line: /^gantry: no broker answers on NATS at nats:\/\/127\.0\.0\.1:(\d+): start one \(gantry broker -f <dir> --nats nats:\/\/127\.0\.0\.1:\1\), or point --nats at the server it uses$/,
  },
  {
    name: 'no broker answering (run)',
    args: () => [...RUN, '--nats', withJs.url],
    line: /^gantry: no broker answers on NATS at /,
  },
  {
    name: 'an authenticated server without --creds',
    args: () => ['cluster', 'list', '--nats', locked.url],
    line: /^gantry: NATS at nats:\/\/127\.0\.0\.1:\d+ needs credentials \(authorization violation\): pass --creds <file> \(gantry cluster onboard writes them\)$/,
  },
  {
    name: 'an authenticated server without --creds (run)',
    args: () => [...RUN, '--nats', locked.url],
    line: /^gantry: NATS at .* needs credentials/,
  },
  {
    name: 'credentials the server does not know',
    args: () => ['get', 'leases', '--nats', locked.url, '--creds', strangerSeed],
    line: /^gantry: NATS at .* refused the credentials in .*stranger\.nk \(authorization violation\): pass --creds of a user the server knows/,
  },
  {
    name: 'a --creds file that is not there',
    args: () => ['get', 'leases', '--nats', locked.url, '--creds', join(tmp, 'missing.nk')],
    line: /^gantry: cannot read --creds .*missing\.nk \(no such file\): pass the credentials file `gantry cluster onboard` wrote$/,
  },
  {
    name: 'no AWS credentials (spot-prices)',
    args: () => ['spot-prices', '-f', 'examples', '--ec2-endpoint', ec2.url],
    env: noAws,
    line: /^gantry: no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance role applies$/,
  },
  {
    name: 'a dead --ec2-endpoint (spot-prices)',
    args: () => ['spot-prices', '-f', 'examples', '--ec2-endpoint', `http://127.0.0.1:${deadPort}`],
    env: someAws,
    line: /^gantry: cannot reach EC2 at http:\/\/127\.0\.0\.1:\d+ \(connection refused\): check --ec2-endpoint and the network$/,
  },
  {
    name: 'EC2 refusing the credentials (spot-prices)',
    before: () =>
      ec2.failNext('AuthFailure', 'AWS was not able to validate the provided access credentials', 401),
    args: () => ['spot-prices', '-f', 'examples', '--ec2-endpoint', ec2.url],
    env: someAws,
    line: /^gantry: EC2 at http:\/\/127\.0\.0\.1:\d+ refused the AWS credentials \(AuthFailure: AWS was not able to validate the provided access credentials\)/,
  },
  {
    name: 'the metrics port in use (up)',
    args: () => ['up', '-f', 'examples', '--state', join(tmp, 'up'), '--metrics-port', String(busyPort)],
    line: /^gantry: port \d+ on 127\.0\.0\.1 is already in use: choose another --metrics-port \(or stop what listens there\)$/,
  },
  {
    name: 'the metrics port in use (embedded broker)',
    args: () => ['broker', '-f', 'examples', '--state', join(tmp, 'b'), '--metrics-port', String(busyPort)],
    line: /^gantry: port \d+ on 127\.0\.0\.1 is already in use: choose another --metrics-port/,
  },
  {
    name: 'a state directory another gantry up holds (run)',
    args: () => [...RUN, '--state', join(tmp, 'held')],
    line: /^gantry: .*held is in use by another Gantry process \(pid \d+, a `gantry up` or a run\?\): stop it, pass another --state, or reach a broker over NATS with --nats$/,
  },
  {
    name: 'a state directory another gantry up holds (up)',
    args: () => ['up', '-f', 'examples', '--state', join(tmp, 'held')],
    line: /^gantry: .*held is in use by another Gantry process/,
  },
  {
    name: 'NATS down (history)',
    args: () => ['history', '--nats', `nats://127.0.0.1:${deadPort}`, '--state', join(tmp, 'h1')],
    line: /^gantry: cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+/,
  },
  {
    name: 'PostgreSQL down (history)',
    args: () => [
      'history',
      '--postgres',
      `postgres://127.0.0.1:${deadPort}/gantry`,
      '--state',
      join(tmp, 'h2'),
    ],
    line: /^gantry: cannot reach PostgreSQL at postgres:\/\/127\.0\.0\.1:\d+\/gantry \(connection refused\): start it, or leave out --postgres/,
  },
  {
    name: 'the API port in use (history)',
    args: () => ['history', '--state', join(tmp, 'h3'), '--port', String(busyPort)],
    line: /^gantry: port \d+ on 127\.0\.0\.1 is already in use: choose another --port \(or stop what listens there\)$/,
  },
  {
    name: 'a bad retention (artifacts gc)',
    args: () => ['artifacts', 'gc', '--older-than', '30', '--state', join(tmp, 'h4')],
    code: 2,
    line: /^gantry: --older-than must be a duration such as 30d, 12h or 2w, not '30'$/,
  },
  {
    name: 'run from another directory, without -f',
    args: () =>
      [join(process.cwd(), 'examples/workflows/train.ts')].flatMap((f) => ['run', f, '--team', 'research']),
    cwd: () => tmp,
    code: 2,
    line: /^gantry: gantry run needs the platform's YAML: pass -f <dir> \(without -f it reads \.\/examples, and there is no .*\/examples\), or --nats <url> to use a running broker$/,
  },
];

/** Lines that say what a command is doing, not what went wrong. */
const PROGRESS = /^creating the history database in /;

describe('operational mistakes', () => {
  it.each(cases)('$name: one line, exit code, no stack trace', async (c) => {
    c.before?.();
    const r = await spawnGantry(c.args(), {
      ...(c.env ? { env: c.env() } : {}),
      ...(c.cwd ? { cwd: c.cwd() } : {}),
    });
    expect(r.err).not.toMatch(/\n\s+at /);
    // One line says what went wrong; a progress line before it (the history database being made) may stay.
    const lines = r.err.trimEnd().split('\n');
    expect(lines.filter((l) => !PROGRESS.test(l))).toEqual([expect.stringMatching(c.line)]);
    expect(r.code).toBe(c.code ?? 1);
  });
});
