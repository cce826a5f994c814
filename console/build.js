#!/usr/bin/env node
// Builds the console's pages into console/dist: what `npm ci` runs (the `prepare` script), so a fresh
// clone serves the console after `npm ci`. Without the build tools (`npm ci --omit=dev`, as the image
// installs them) it says so and leaves the build to whoever has them.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
let vite;
try {
  createRequire(import.meta.url).resolve('vite');
  vite = await import('vite');
} catch {
  process.stdout.write('console: vite is not installed (production install): the pages are not built here\n');
  process.exit(0);
}
const started = Date.now();
await vite.build({
  configFile: join(here, 'app', 'vite.config.ts'),
  root: join(here, 'app'),
  logLevel: 'warn',
});
// The static HTML cost report's charts: the same components in one script that the report inlines.
await vite.build({
  configFile: join(here, 'app', 'vite.config.ts'),
  root: join(here, 'app'),
  logLevel: 'warn',
  define: { 'process.env.NODE_ENV': JSON.stringify('production') },
  build: {
    outDir: join(here, 'dist'),
    emptyOutDir: false,
    copyPublicDir: false,
    lib: {
      entry: join(here, 'app', 'src', 'report.tsx'),
      formats: ['iife'],
      name: 'gantryReport',
      fileName: () => 'report.js',
    },
  },
});
process.stdout.write(
  `console: pages and the cost report's charts built into console/dist in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
);
