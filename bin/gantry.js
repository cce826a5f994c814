#!/usr/bin/env node
// The `gantry` command. Gantry is written in TypeScript and runs from source through tsx, so that
// `gantry run workflow.ts` can load users' TypeScript workflows the same way.
import { register } from 'tsx/esm/api';

register();
// Gantry supports Node 20, 22 and 24; the AWS SDK's notice that its releases after January 2027 will need
// Node 22 is not something a user of this release can act on, and would otherwise print on every EC2 call.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// `gantry … | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});
const { main } = await import('./cli.ts');
const code = await main(process.argv);
process.exitCode = code;
// A command that returned has finished its cleanup: nothing it left behind (a reconnecting client, a
// stopped task that ignores its AbortSignal and sleeps on) may keep it alive. It exits once what it
// printed is written.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
