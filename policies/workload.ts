/**
 * Workloads for what-if planning: a `Workload` YAML document (task groups with counts), or JSON lines with
 * one request per line. Both resolve to concrete per-task requests with profiles and defaults applied.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { z } from 'zod';
import type { Problem } from './errors.ts';
import { resourcesSpec } from './kinds.ts';
import { loadDocuments } from './load.ts';
import type { Platform } from './platform.ts';
import { ResolveError, resolveResources, type ResolvedResources } from './resources.ts';

/** One task of a workload. */
export interface WorkloadTask {
  id: string;
  team: string;
  priority: number | undefined;
  resources: ResolvedResources;
}

/** A JSON-lines request: resources plus who asks, an optional id and a count of identical copies. */
export const requestLine = resourcesSpec.extend({
  id: z.string().min(1).optional(),
  team: z.string().min(1),
  count: z.int().positive().default(1),
  priority: z.int().optional(),
});

/**
 * Reads a workload file: `.yaml`/`.yml` holds `Workload` documents, anything else is JSON lines.
 * Returns every problem with its location instead of throwing.
 *
 * @example
 * const { tasks, problems } = loadWorkload('examples/workloads/nightly.yaml', platform);
 */
export function loadWorkload(
  file: string,
  platform: Platform,
): { tasks: WorkloadTask[]; problems: Problem[] } {
  return /\.ya?ml$/i.test(file) ? fromYaml(file, platform) : fromJsonLines(file, platform);
}

function fromYaml(file: string, platform: Platform): { tasks: WorkloadTask[]; problems: Problem[] } {
  const { docs, problems } = loadDocuments([file]);
  const tasks: WorkloadTask[] = [];
  for (const doc of docs) {
    if (doc.value.kind !== 'Workload') {
      problems.push({
        file: doc.file,
        line: 1,
        col: 1,
        path: 'kind',
        message: `expected kind Workload, found ${doc.kind}`,
      });
      continue;
    }
    doc.value.spec.groups.forEach((g, i) => {
      if (!platform.policyFor(g.team)) {
        const at = doc.locate(['spec', 'groups', i, 'team']);
        problems.push({
          file: doc.file,
          ...at,
          path: `spec.groups[${i}].team`,
          message: `team '${g.team}' has no ResourcePolicy`,
        });
        return;
      }
      try {
        const resources = resolveResources(g, g.team, platform);
        for (let k = 0; k < g.count; k++)
          tasks.push({ id: `${doc.name}/${g.name}-${k}`, team: g.team, priority: g.priority, resources });
      } catch (err) {
        if (!(err instanceof ResolveError)) throw err;
        const at = doc.locate(['spec', 'groups', i, 'profile']);
        problems.push({
          file: doc.file,
          ...at,
          path: `spec.groups[${i}].${err.field}`,
          message: err.message,
        });
      }
    });
  }
  return { tasks, problems };
}

function fromJsonLines(file: string, platform: Platform): { tasks: WorkloadTask[]; problems: Problem[] } {
  const shown = relative(process.cwd(), file) || file;
  const problems: Problem[] = [];
  const tasks: WorkloadTask[] = [];
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return {
      tasks,
      problems: [
        { file: shown, line: 0, col: 0, path: '', message: `cannot read: ${(err as Error).message}` },
      ],
    };
  }
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '' || raw.trim().startsWith('#')) return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      problems.push({ file: shown, line, col: 1, path: '', message: `not JSON: ${(err as Error).message}` });
      return;
    }
    const parsed = requestLine.safeParse(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const path = issue.path.map(String).join('.');
        problems.push({
          file: shown,
          line,
          col: 1,
          path,
          message: issue.message.replace(/^Invalid input: /, ''),
        });
      }
      return;
    }
    const r = parsed.data;
    if (!platform.policyFor(r.team)) {
      problems.push({
        file: shown,
        line,
        col: 1,
        path: 'team',
        message: `team '${r.team}' has no ResourcePolicy`,
      });
      return;
    }
    try {
      const resources = resolveResources(r, r.team, platform);
      const id = r.id ?? `line${line}`;
      for (let k = 0; k < r.count; k++) {
        tasks.push({ id: r.count === 1 ? id : `${id}-${k}`, team: r.team, priority: r.priority, resources });
      }
    } catch (err) {
      if (!(err instanceof ResolveError)) throw err;
      problems.push({ file: shown, line, col: 1, path: err.field, message: err.message });
    }
  });
  return { tasks, problems };
}
