/**
 * What `gantry lineage <target>` names: a run id, a full `sha256:` hash, or a hash prefix as the text
 * output prints it (12 hex digits, with or without `sha256:`; at least 6 digits, and only one match).
 */
import type { LineageRecord } from '../../runtime/index.ts';
import { UsageError } from '../errors.ts';

/** The shortest prefix taken, so a short word is not mistaken for a hash. */
export const MIN_PREFIX = 6;

/** The run id or full hash `target` stands for; `target` itself when nothing matches (the caller says so). */
export function resolveLineageTarget(records: readonly LineageRecord[], target: string): string {
  if (records.some((r) => r.run === target || r.input === target || r.output === target)) return target;
  const hex = target.replace(/^sha256:/, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex) || hex.length < MIN_PREFIX) return target;
  const matches = new Set<string>();
  for (const r of records)
    for (const h of [r.input, r.output]) if (h && h.replace(/^sha256:/, '').startsWith(hex)) matches.add(h);
  if (matches.size > 1)
    throw new UsageError(
      `'${target}' is the start of ${matches.size} hashes (${[...matches]
        .slice(0, 3)
        .map((h) => h.slice(0, 7 + hex.length + 4))
        .join(', ')}…): give more digits`,
    );
  return matches.size === 1 ? [...matches][0]! : target;
}
