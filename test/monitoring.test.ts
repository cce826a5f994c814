/**
 * The operations kit, checked by Prometheus's own tools and against a running Gantry: the alert rules
 * pass `promtool check rules` and their unit tests (`promtool test rules`), which show every alert
 * firing and not firing and fail when an alert is broken; the PrometheusRule holds the same groups and
 * is valid for the operator; the Grafana dashboard is importable and its queries parse; and every metric
 * the dashboard and the rules name is in a real `/metrics` scrape of an embedded Gantry at work.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PodMonitor, PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { serveEmbeddedMetrics } from '../bin/embedded.ts';
import { locate, PROMTOOL } from './requirements.ts';
import { eventually, startSystem, TestClient, type TestSystem } from './system.ts';

const ROOT = resolve(import.meta.dirname, '..');
const PROM = join(ROOT, 'deploy/prometheus');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}
interface RuleTests {
  rule_files: string[];
  tests: {
    name: string;
    alert_rule_test?: { eval_time: string; alertname: string; exp_alerts: unknown[] }[];
  }[];
}

const rules = parse(read('deploy/prometheus/gantry-rules.yaml')) as RuleFile;
const ruleTests = parse(read('deploy/prometheus/gantry-rules.test.yaml')) as RuleTests;
const alerts = rules.groups.flatMap((g) => g.rules.filter((r) => r.alert));

/** Runs promtool (the global setup found it, or stopped the run naming what to install). */
function promtool(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(locate(PROMTOOL)!, args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Runs the rules' unit tests against `file` (a rule file's contents) instead of gantry-rules.yaml. */
function testRulesAgainst(file: RuleFile): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gantry-rules-'));
  writeFileSync(join(dir, 'gantry-rules.yaml'), stringify(file));
  writeFileSync(join(dir, 'gantry-rules.test.yaml'), read('deploy/prometheus/gantry-rules.test.yaml'));
  return promtool('test', 'rules', join(dir, 'gantry-rules.test.yaml'));
}

/** The rule file with one alert's expression rewritten. */
function withExpr(alert: string, rewrite: (expr: string) => string): RuleFile {
  return {
    groups: rules.groups.map((g) => ({
      ...g,
      rules: g.rules.map((r) => (r.alert === alert ? { ...r, expr: rewrite(r.expr) } : r)),
    })),
  };
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'Inf', 'NaN']);

/**
 * The metric names a PromQL expression reads: identifiers that are not functions, keywords, label
 * names (in matchers, `by`/`on` lists) or range durations.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = [...bare.matchAll(/(?<![\w.$])[a-zA-Z_:][\w:]*(?![\w:]|\s*\()/g)].map((m) => m[0]);
  return [...new Set(names.filter((n) => !KEYWORDS.has(n)))];
}

describe('the alert rules (deploy/prometheus)', () => {
  it('pass promtool check rules', () => {
    const r = promtool('check', 'rules', join(PROM, 'gantry-rules.yaml'));
    expect(r.out).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(r.status).toBe(0);
  });

  it('pass their unit tests, promtool test rules', () => {
    const r = promtool('test', 'rules', join(PROM, 'gantry-rules.test.yaml'));
    expect(r.out).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('are what the issue asks for', () => {
    expect(alerts.map((a) => a.alert).sort()).toEqual([
      'GantryClusterUnhealthy',
      'GantryNoBrokerLeading',
      'GantryNodesNotReady',
      'GantryRequestsHeldLong',
      'GantrySolveTimeNearBudget',
      'GantryTeamBudgetNearlyUsed',
      'GantryTeamBudgetUsedUp',
    ]);
    for (const a of alerts) {
      expect(['warning', 'critical']).toContain(a.labels?.severity);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      expect(a.annotations?.description, a.alert).toBeTruthy();
    }
  });

  it('have a unit test of every alert firing and one of it not firing', () => {
    const cases = ruleTests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const a of alerts) {
      const mine = cases.filter((c) => c.alertname === a.alert);
      expect(
        mine.some((c) => c.exp_alerts.length > 0),
        `${a.alert} firing`,
      ).toBe(true);
      expect(
        mine.some((c) => c.exp_alerts.length === 0),
        `${a.alert} not firing`,
      ).toBe(true);
    }
    // No test of an alert that does not exist (promtool would only see it never fire).
    for (const c of cases) expect(alerts.map((a) => a.alert)).toContain(c.alertname);
  });

  it.each(alerts.map((a) => a.alert!))('fail their unit tests when %s never fires', (alert) => {
    const r = testRulesAgainst(withExpr(alert, () => 'vector(1) < 0'));
    expect(r.status).not.toBe(0);
    expect(r.out).toContain(`alertname: ${alert}`);
  });

  it.each(alerts.map((a) => a.alert!))('fail their unit tests when %s always fires', (alert) => {
    const r = testRulesAgainst(withExpr(alert, (expr) => `(${expr}) or vector(1)`));
    expect(r.status).not.toBe(0);
    expect(r.out).toContain(`alertname: ${alert}`);
  });

  it('are the same groups in the PrometheusRule, which the operator’s schema accepts', () => {
    const manifest = parse(read('deploy/prometheus/prometheusrule.yaml')) as { spec: RuleFile };
    expect(manifest.spec.groups).toEqual(rules.groups);
    expect(() => new PrometheusRule(manifest as never).validate()).not.toThrow();
    // The schema notices a broken one.
    const broken = { ...manifest, spec: { groups: [{ rules: [{ alert: 'X' }] }] } };
    expect(() => new PrometheusRule(broken as never).validate()).toThrow();
  });

  it('come with a PodMonitor for the brokers’ and agents’ metrics ports, and a kustomization', () => {
    const monitor = parse(read('deploy/prometheus/podmonitor.yaml')) as {
      metadata: { namespace: string };
      spec: { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port: string }[] };
    };
    expect(() => new PodMonitor(monitor as never).validate()).not.toThrow();
    expect(monitor.metadata.namespace).toBe('gantry');
    expect(monitor.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/part-of': 'gantry' });
    expect(monitor.spec.podMetricsEndpoints.map((e) => e.port)).toEqual(['metrics']);
    const kustomization = parse(read('deploy/prometheus/kustomization.yaml')) as { resources: string[] };
    expect(kustomization.resources.sort()).toEqual(['podmonitor.yaml', 'prometheusrule.yaml']);
  });
});

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr: string; datasource?: { type: string; uid: string } }[];
}
interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  templating: { list: { name: string; type: string; query: unknown; datasource?: { uid: string } }[] };
  panels: Panel[];
}

const dashboard = JSON.parse(read('deploy/grafana/gantry.json')) as Dashboard;
const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, ...t })));
const variableQueries = dashboard.templating.list.flatMap((v) =>
  v.type === 'query' ? [(v.query as { query: string }).query] : [],
);

/** A dashboard query as Prometheus would get it: Grafana's variables replaced by what "All" sends. */
const asPromql = (expr: string) => expr.replaceAll('$__rate_interval', '5m').replace(/\$\w+/g, '.*');

describe('the Grafana dashboard (deploy/grafana/gantry.json)', () => {
  it('is a dashboard Grafana imports: schema version, a Prometheus datasource variable, panels with targets', () => {
    expect(dashboard).toMatchObject({ title: 'Gantry', uid: 'gantry-overview' });
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const datasource = dashboard.templating.list.find((v) => v.type === 'datasource');
    expect(datasource).toMatchObject({ name: 'datasource', query: 'prometheus' });
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      expect(p.gridPos.h, p.title).toBeGreaterThan(0);
      if (p.type === 'row') continue;
      expect(['stat', 'timeseries', 'bargauge', 'state-timeline']).toContain(p.type);
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
      for (const t of p.targets!) expect(t.datasource?.uid).toBe('${datasource}');
    }
    // Every variable a query uses is defined (or one of Grafana's own).
    const defined = new Set(dashboard.templating.list.map((v) => v.name));
    for (const q of queries)
      for (const [, name] of q.expr.matchAll(/\$(\w+)/g))
        expect(name === '__rate_interval' || defined.has(name!), `$${name} in ${q.panel.title}`).toBe(true);
  });

  it('shows what the issue asks for', () => {
    const titles = dashboard.panels.map((p) => p.title);
    for (const wanted of [
      'Spend now',
      'Spend rate by team',
      'Monthly budget used per team',
      'Month to date against budget',
      'Savings against on-demand',
      'Queue and holds by reason',
      'Solve time',
      'Nodes by pool and state',
      'Cluster health',
    ])
      expect(titles).toContain(wanted);
  });

  it('has queries that parse as PromQL (promtool check rules)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-dashboard-'));
    const file = join(dir, 'dashboard-queries.yaml');
    const recorded: RuleFile = {
      groups: [
        {
          name: 'dashboard',
          rules: queries.map((q) => ({
            record: `dashboard:panel_${q.panel.id}_${q.refId}`,
            expr: asPromql(q.expr),
          })),
        },
      ],
    };
    writeFileSync(file, stringify(recorded));
    const r = promtool('check', 'rules', file);
    expect(r.out).toContain(`SUCCESS: ${queries.length} rules found`);
    expect(r.status).toBe(0);
    // And a broken one would not.
    writeFileSync(
      file,
      stringify({ groups: [{ name: 'x', rules: [{ record: 'x:y', expr: 'sum by (team (x)' }] }] }),
    );
    expect(promtool('check', 'rules', file).status).not.toBe(0);
  });
});

describe('reading metric names out of PromQL', () => {
  it.each([
    ['sum by (team) (gantry_spend_dollars_per_hour{team=~"$team"})', ['gantry_spend_dollars_per_hour']],
    [
      'histogram_quantile(0.99, sum by (le) (rate(gantry_solve_seconds_bucket[5m]))) > 0.8 * max(gantry_solve_budget_seconds)',
      ['gantry_solve_seconds_bucket', 'gantry_solve_budget_seconds'],
    ],
    ['(sum(gantry_broker_leader) or vector(0)) < 1', ['gantry_broker_leader']],
    [
      'process_resident_memory_bytes and on(instance) gantry_agent_registered{cluster=~".*"}',
      ['process_resident_memory_bytes', 'gantry_agent_registered'],
    ],
    ['x > 1e-9 and y offset 5m', ['x', 'y']],
  ])('%s', (expr, names) => {
    expect(metricNames(expr)).toEqual(names);
  });
});

describe('a scrape of a running embedded Gantry', () => {
  let system: TestSystem;
  let server: Server;
  let base: string;
  let text: string;
  /** Every sample's metric name in the scrape. */
  let sampled: Set<string>;
  /** $/hour of the leases the broker granted. */
  let leasedPerHour = 0;
  const value = (series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  beforeAll(async () => {
    system = await startSystem('embedded', { platformDir: 'test/fixtures/budget-platform', speedup: 1000 });
    server = await serveEmbeddedMetrics(system, 0);
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = new TestClient(system.transport);
    // Four hours of a quarter of a $0.40/h node fit the team's $0.50 month; a fifth is held for budget.
    const hour = {
      resources: { cpu: 2, memory: '8Gi', duration: '1h' },
      work: { kind: 'sim', durationMs: 3_600_000 },
    };
    const placed = await Promise.all(Array.from({ length: 4 }, (_, i) => client.request(`m-${i}`, hour)));
    // A whole node for ten minutes: a new one.
    const node = {
      resources: { cpu: 8, memory: '30Gi', duration: '10m' },
      work: { kind: 'sim', durationMs: 600_000 },
    };
    placed.push(await client.request('m-node', node));
    expect(placed.map((r) => r.ok)).toEqual([true, true, true, true, true]);
    leasedPerHour = placed.reduce((s, r) => s + (r.ok ? r.lease.pricePerHour : 0), 0);
    void client.request('m-over', hour, 60_000).catch(() => undefined);
    await eventually(
      () => system.broker.state.requests.get('m-over')?.reason?.startsWith('budget:') === true,
      5000,
      'a hold',
    );
    // A request no policy covers is refused.
    expect((await client.request('m-nobody', { team: 'nobody' })).ok).toBe(false);
    text = await (await fetch(`${base}/metrics`)).text();
    sampled = new Set(
      text
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => /^[a-zA-Z_:][\w:]*/.exec(l)![0]),
    );
  }, 30_000);

  afterAll(async () => {
    server?.close();
    await system?.stop();
  });

  it('has every metric that the dashboard and the alert rules name', () => {
    const named = new Set([
      ...queries.flatMap((q) => metricNames(asPromql(q.expr))),
      ...variableQueries.flatMap((q) => [/label_values\((\w+),/.exec(q)![1]!]),
      ...alerts.flatMap((a) => metricNames(a.expr)),
    ]);
    expect(named.size).toBeGreaterThan(20);
    const missing = [...named].filter((n) => !sampled.has(n));
    expect(missing).toEqual([]);
  });

  it('shows the spend, the budget and the hold, and counters from 0', () => {
    const sum = (metric: string) =>
      [
        ...text.matchAll(
          new RegExp(
            `^${metric}\\{team="ml",cluster="[^"]+",pool="[^"]+",capacity_type="on-demand"\\} (\\S+)$`,
            'gm',
          ),
        ),
      ].reduce((s, m) => s + Number(m[1]), 0);
    // What the leases cost, all on-demand (the ml policy allows no spot): their on-demand price is the same.
    expect(leasedPerHour).toBeGreaterThan(0);
    expect(sum('gantry_spend_dollars_per_hour')).toBeCloseTo(leasedPerHour, 9);
    expect(sum('gantry_spend_on_demand_dollars_per_hour')).toBeCloseTo(leasedPerHour, 9);
    expect(value('gantry_team_budget_month_dollars{team="ml",policy="ml-budget"}')).toBe(0.5);
    // The running work has cost something so far this month (simulated time runs 1000 times faster).
    expect(value('gantry_team_spend_month_dollars{team="ml"}')).toBeGreaterThan(0);
    expect(value('gantry_budget_used_ratio{team="ml",policy="ml-budget"}')).toBeGreaterThan(0.7);
    expect(value('gantry_requests_held{reason="budget"}')).toBe(1);
    expect(value('gantry_requests_held{reason="capacity"}')).toBe(0);
    expect(value('gantry_budget_alerts_total{team="ml",policy="ml-budget",threshold="0.5"}')).toBe(1);
    expect(value('gantry_budget_alerts_total{team="ml",policy="ml-budget",threshold="1"}')).toBe(0);
    expect(value('gantry_requests_refused_total{code="no-policy"}')).toBe(1);
    expect(value('gantry_requests_refused_total{code="bad-resources"}')).toBe(0);
    expect(value('gantry_bad_messages_total{subject="gantry.v1.agent.sim-gcp"}')).toBe(0);
    expect(value('gantry_broker_leader')).toBe(1);
    expect(value('gantry_solve_budget_seconds')).toBe(2);
    // The whole node asked for a new one: the plan cost something, at or above its bound.
    expect(value('gantry_plan_cost_dollars{kind="expected"}')).toBeGreaterThan(0);
    expect(value('gantry_plan_cost_dollars{kind="objective"}')).toBeGreaterThanOrEqual(
      value('gantry_plan_cost_dollars{kind="bound"}')! - 1e-9,
    );
    expect(value('gantry_plan_gap_ratio_count')).toBeGreaterThanOrEqual(2);
    expect(value('gantry_agent_registered{cluster="sim-aws"}')).toBe(1);
    expect(value('gantry_cluster_healthy{cluster="sim-gcp"}')).toBe(1);
    const nodes = [...text.matchAll(/^gantry_nodes\{cluster="[^"]+",pool="[^"]+",state="(\w+)"\} (\d+)$/gm)];
    expect(new Set(nodes.map((m) => m[1]))).toEqual(new Set(['planned', 'launching', 'ready', 'idle']));
    expect(nodes.filter((m) => m[1] === 'ready').reduce((n, m) => n + Number(m[2]), 0)).toBeGreaterThan(0);
  });

  it('answers /healthz, and /readyz once the broker leads and every agent is registered', async () => {
    const healthz = await fetch(`${base}/healthz`);
    expect([healthz.status, await healthz.text()]).toEqual([200, 'ok\n']);
    const readyz = await fetch(`${base}/readyz`);
    expect(readyz.status).toBe(200);
    const detail = await readyz.text();
    expect(detail).toMatch(/^leading \(broker-/);
    expect(detail).toContain('cluster sim-aws: registered; executor sim and provisioner sim answer');
    expect((await fetch(`${base}/`)).status).toBe(404);
  });
});
