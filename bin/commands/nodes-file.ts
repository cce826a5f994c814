/**
 * The `--nodes` file of `gantry plan`: nodes running now and what is free on each.
 *
 * CSV, with a header: `cluster,pool,node,cpu,memory,gpus` — e.g. `onprem,dgx-a100,dgx-07,96,800Gi,6`.
 * JSON: an array of objects with the same fields. `cpu`, `memory` and `gpus` are the FREE amounts.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  parseCpu,
  parseMemory,
  type Platform,
  type Problem,
  QuantityError,
  ValidationError,
} from '../../policies/index.ts';
import type { NodeState } from '../../solver/index.ts';

const row = z.strictObject({
  cluster: z.string().min(1),
  pool: z.string().min(1),
  node: z.string().min(1),
  cpu: z.union([z.string(), z.number()]),
  memory: z.union([z.string(), z.number()]),
  gpus: z.coerce.number().nonnegative().default(0),
});

/** Reads the file into running nodes per pool id; throws a ValidationError naming every bad line. */
export function readNodesFile(file: string, platform: Platform): Map<string, NodeState[]> {
  const text = readFileSync(file, 'utf8');
  const rows: { line: number; value: unknown }[] = [];
  if (/\.json$/i.test(file)) {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new ValidationError([
        { file, line: 0, col: 0, path: '', message: `not JSON: ${(err as Error).message}` },
      ]);
    }
    if (!Array.isArray(data))
      throw new ValidationError([{ file, line: 1, col: 1, path: '', message: 'expected an array of nodes' }]);
    data.forEach((value, i) => rows.push({ line: i + 1, value }));
  } else {
    const lines = text.split('\n');
    const header = (lines[0] ?? '').split(',').map((h) => h.trim());
    lines.slice(1).forEach((l, i) => {
      if (l.trim() === '') return;
      const cells = l.split(',');
      rows.push({
        line: i + 2,
        value: Object.fromEntries(header.map((h, k) => [h, cells[k]?.trim() ?? ''])),
      });
    });
  }
  const problems: Problem[] = [];
  const byPool = new Map<string, NodeState[]>();
  const pools = new Map(platform.pools.map((p) => [p.id, p]));
  for (const { line, value } of rows) {
    const parsed = row.safeParse(value);
    const where = /\.json$/i.test(file) ? `[${line - 1}]` : '';
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        problems.push({
          file,
          line,
          col: 1,
          path: `${where}${issue.path.join('.')}`,
          message: issue.message,
        });
      }
      continue;
    }
    const r = parsed.data;
    const pool = pools.get(`${r.cluster}/${r.pool}`);
    if (!pool) {
      problems.push({
        file,
        line,
        col: 1,
        path: `${where}pool`,
        message: `no pool ${r.cluster}/${r.pool} is declared`,
      });
      continue;
    }
    try {
      const gpus = Math.min(r.gpus, pool.gpuCount);
      const node: NodeState = {
        name: r.node,
        freeCpuMilli: parseCpu(r.cpu),
        freeMemoryMiB: parseMemory(r.memory),
        freeGpuMilli: Array.from({ length: pool.gpuCount }, (_, d) => (d < gpus ? 1000 : 0)),
      };
      byPool.set(pool.id, [...(byPool.get(pool.id) ?? []), node]);
    } catch (err) {
      if (!(err instanceof QuantityError)) throw err;
      problems.push({ file, line, col: 1, path: where, message: err.message });
    }
  }
  if (problems.length > 0) throw new ValidationError(problems);
  return byPool;
}
