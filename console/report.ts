/**
 * The static HTML cost report's charts: the console's chart components built into one script
 * (`console/dist/report.js`, by `npm run console:build`), which the report inlines so that the file
 * opens offline with nothing else.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConsoleNotBuiltError } from './errors.ts';
import { DIST } from './server.ts';

/** The chart script's text, safe to inline in a `<script>` element. */
export function reportChartsScript(distDir = DIST): string {
  const file = join(distDir, 'report.js');
  if (!existsSync(file)) throw new ConsoleNotBuiltError(distDir);
  // `</script` would end the element early; `<\/` means the same inside the script's strings.
  return readFileSync(file, 'utf8').replace(/<\/script/gi, '<\\/script');
}
