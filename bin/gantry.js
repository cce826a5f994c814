#!/usr/bin/env node
// The `gantry` command. Gantry is written in TypeScript and runs from source through tsx, so that
// `gantry run workflow.ts` can load users' TypeScript workflows the same way.
import { register } from 'tsx/esm/api';

register();
// `gantry … | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});
const { main } = await import('./cli.ts');
process.exitCode = await main(process.argv);
