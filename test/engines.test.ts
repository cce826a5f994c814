/**
 * Gantry runs on the Node 20, 22 and 24 lines: every package `npm ci` installs (development tools
 * included) must accept each line's oldest supported release, so `npm ci` never warns EBADENGINE there,
 * and package.json's `engines` must promise no Node that a package refuses.
 */
import { readFileSync } from 'node:fs';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as {
  packages: Record<string, { engines?: { node?: string } | string[] }>;
};
const ranges = Object.entries(lock.packages)
  .filter(([path]) => path !== '')
  .flatMap(([path, p]) => {
    const node = p.engines && !Array.isArray(p.engines) ? p.engines.node : undefined;
    return node ? [{ name: path.replace(/.*node_modules\//, ''), node }] : [];
  });

describe('Node versions', () => {
  it.each(['20.19.0', '22.13.0', '24.0.0'])('every package accepts Node %s', (version) => {
    expect(semver.satisfies(version, pkg.engines.node)).toBe(true);
    const refusing = ranges.filter((r) => !semver.satisfies(version, r.node));
    expect(refusing).toEqual([]);
  });

  it("package.json's engines promise nothing a package refuses", () => {
    expect(ranges.length).toBeGreaterThan(10);
    const narrower = ranges.filter((r) => !semver.subset(pkg.engines.node, r.node));
    expect(narrower).toEqual([]);
  });
});
