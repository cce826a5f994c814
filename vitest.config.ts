import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**'],
    testTimeout: 30_000,
    // Setup that starts servers or opens PGlite (a WebAssembly build of Postgres) takes seconds on a busy machine.
    hookTimeout: 60_000,
    // Finds (or installs) nats-server, Chromium and promtool, or stops in one line naming what to install.
    globalSetup: ['test/global-setup.ts'],
  },
});
