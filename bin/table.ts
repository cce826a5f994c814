/** Aligned plain-text tables for terminal output. */

/**
 * Formats rows under headers, columns padded to their widest cell, two spaces apart.
 *
 * @example
 * table(['POOL', 'COUNT'], [['aws/h100', '2']]);
 */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}
