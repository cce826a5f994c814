import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runGantry } from '../../test/cli.ts';

describe('gantry plan', () => {
  it('plans the example workload and prints JSON with placements, new nodes, cost, bound and baseline', async () => {
    const { code, out } = await runGantry(
      'plan',
      '-f',
      'examples',
      '--workload',
      'examples/workloads/nightly.yaml',
      '-o',
      'json',
    );
    expect(code).toBe(0);
    const plan = JSON.parse(out);
    expect(plan.placements.length + plan.unplaced.length).toBe(160);
    // Both pretraining tasks take a whole 8×H100 node: GCP's spot a3-highgpu-8g is the cheapest.
    const pretrain = plan.placements.filter((p: { taskId: string }) =>
      p.taskId.startsWith('nightly/pretrain'),
    );
    expect(pretrain.map((p: { poolId: string; newNode: boolean }) => [p.poolId, p.newNode])).toEqual([
      ['gcp-usc1/h100-spot', true],
      ['gcp-usc1/h100-spot', true],
    ]);
    // Owned hardware is used before anything is bought: preprocessing and fine-tuning go to the DGX nodes.
    const onDgx = plan.placements.filter((p: { poolId: string }) => p.poolId === 'onprem/dgx-a100');
    expect(onDgx).toHaveLength(64);
    const reasons = plan.unplaced.map((u: { reason: { kind: string; detail: string } }) => u.reason);
    expect(reasons.length).toBeGreaterThan(0);
    for (const r of reasons) {
      expect(r.kind).toBe('quota');
      expect(r.detail).toMatch(/^policy product: /);
    }
    expect(plan.cost.expected).toBeGreaterThan(0);
    expect(plan.bound).toBeLessThanOrEqual(plan.cost.objective + 1e-6);
    // The node-level bound holds the quota that leaves eval tasks out: no bound above the plan.
    expect(plan.bounds.node).toBeGreaterThanOrEqual(plan.bounds.lp - 1e-6);
    expect(plan.bounds.node).toBeLessThanOrEqual(plan.cost.objective + 1e-6);
    expect(plan.cost.objective).toBeLessThanOrEqual(plan.baseline.objective + 1e-9);
    expect(plan.solver).toMatchObject({ status: 'optimal', groups: 5, pools: 8 });
  });

  it('reads JSON-lines workloads and a nodes file', async () => {
    const { code, out } = await runGantry(
      'plan',
      '-f',
      'examples',
      '-w',
      'test/fixtures/requests.jsonl',
      '--nodes',
      'test/fixtures/nodes.csv',
      '-o',
      'json',
    );
    expect(code).toBe(0);
    const plan = JSON.parse(out);
    expect(plan.placements.map((p: { taskId: string }) => p.taskId).sort()).toEqual([
      'line3-0',
      'line3-1',
      'line3-2',
      'line3-3',
      'line3-4',
      'train-1',
    ]);
    // Only two DGX nodes are declared running; the big one has room for nothing of the research H100 task.
    expect(plan.placements.find((p: { taskId: string }) => p.taskId === 'train-1').poolId).toBe(
      'gcp-usc1/h100-spot',
    );
  });

  it('names the file, line and field of every bad request, and exits 1', async () => {
    const { code, out } = await runGantry('plan', '-f', 'examples', '-w', 'test/fixtures/bad-requests.jsonl');
    expect(code).toBe(1);
    expect(out.split('\n').filter(Boolean)).toEqual([
      "test/fixtures/bad-requests.jsonl:1:1  memory  '16GB' has no memory unit Gantry knows: did you mean 16Gi?",
      expect.stringMatching(/^test\/fixtures\/bad-requests\.jsonl:2:1  \(document\)  not JSON: /),
      "test/fixtures/bad-requests.jsonl:3:1  team  team 'nobody' has no ResourcePolicy",
    ]);
  });

  it('lists owned servers apart from nodes to buy, and says how unplaced work sets the exit code', async () => {
    const args = [
      'plan',
      '-f',
      'examples',
      '-w',
      'examples/workloads/nightly.yaml',
      '--nodes',
      'test/fixtures/nodes.csv',
    ];
    const r = await runGantry(...args);
    expect(r.code).toBe(0);
    const toBuy = r.out.slice(
      r.out.indexOf('New nodes to buy:'),
      r.out.indexOf('\n\n', r.out.indexOf('New nodes to buy:')),
    );
    expect(toBuy).toMatch(/gcp-usc1\/h100-spot/);
    expect(toBuy).not.toMatch(/onprem|reserved/);
    expect(r.out).toContain(
      'Owned nodes the plan also counts on (reserved, not running or in --nodes; nothing to buy): onprem/dgx-a100 ×2',
    );
    expect(r.out).toMatch(/^Unplaced: 14 task\(s\) \(exit code 0; --fail-on-unplaced makes it 1\)$/m);
    expect(r.out).toContain('… and 4 more (-o wide lists them all)');

    const failing = await runGantry(...args, '--fail-on-unplaced', '-o', 'wide');
    expect(failing.code).toBe(1);
    expect(failing.out).toMatch(/^Unplaced: 14 task\(s\) \(exit code 1\)$/m);
    expect(failing.out.match(/^ {2}nightly\/eval-\d+: quota/gm)).toHaveLength(14);
    expect(failing.out.split('\n')[2]).toMatch(/WHY +NEXT BEST$/);

    const yaml = await runGantry(...args, '-o', 'yaml');
    expect(yaml.code).toBe(0);
    expect(yaml.out).toMatch(/^placements:\n {2}- taskId: /m);
    expect(yaml.out).toMatch(/^unplaced:$/m);
  });

  it('refuses an empty workload file instead of planning nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-plan-'));
    const file = join(dir, 'empty.jsonl');
    writeFileSync(file, '\n');
    const r = await runGantry('plan', '-f', 'examples', '-w', file);
    expect(r.code).toBe(1);
    expect(r.out).toBe(
      `${file}:1:1  (document)  no tasks to plan: write a Workload document with spec.groups, or JSON lines with one request each\n`,
    );
  });

  it('refuses a bad flag with one line and exit 2', async () => {
    const { code, err } = await runGantry(
      'plan',
      '-f',
      'examples',
      '-w',
      'examples/workloads/nightly.yaml',
      '--time-budget',
      'soon',
    );
    expect(code).toBe(2);
    expect(err).toBe(
      "gantry: --time-budget: 'soon' is not a duration: write it like 90s, 30m, 2h or 1h30m\n",
    );
  });
});
