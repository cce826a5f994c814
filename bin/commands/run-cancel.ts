/**
 * Stopping runs from `gantry run`: Ctrl-C and `--fail-on-held` in the running process, and `gantry run
 * cancel <run>` from another terminal. The broker withdraws what waits and stops what runs; each prints
 * what was stopped.
 */
import { type RunCancelReply, runCancelReply, type Transport } from '../../protocol/index.ts';
import { cancelRun } from '../../runtime/index.ts';
import { askBroker } from '../connect.ts';
import { UsageError } from '../errors.ts';
import { type Output, serialize } from '../options.ts';
import type { Display } from '../progress.ts';

/** Runs cancelled by Ctrl-C in this process. */
export const cancelledByUser = new Set<string>();

/** What `gantry run cancel` and Ctrl-C print: each lease stopped and request withdrawn. */
export function cancelLines(reply: RunCancelReply): string[] {
  const lines = reply.stopped.map(
    (l) =>
      `  stopped    ${(l.task ?? l.requestId).padEnd(14)} on ${l.cluster}/${l.node} (lease ${l.leaseId})`,
  );
  for (const r of reply.withdrawn)
    lines.push(`  withdrawn  ${(r.task ?? r.requestId).padEnd(14)} (was waiting)`);
  lines.push(
    `run ${reply.run} cancelled: ${reply.stopped.length} running lease(s) stopped, ${reply.withdrawn.length} pending request(s) withdrawn`,
  );
  return lines;
}

/**
 * Cancels the run and prints what the broker stopped (or why it could not); marks the run as cancelled
 * by the user (exit code 130, or 1 with --fail-on-held).
 */
export function cancelAndSay(
  transport: Transport,
  team: string,
  runId: string,
  reason: string,
  display: Display,
): void {
  cancelledByUser.add(runId);
  void cancelRun(transport, team, runId, reason).then(
    (reply) => {
      for (const line of cancelLines(reply)) display.event(line);
    },
    (err: Error) => display.event(`could not cancel run ${runId}: ${err.message}`),
  );
}

/** `gantry run cancel <run>`: asks the broker to stop the run's work, prints what it stopped. */
export async function cancelCommand(
  run: string | undefined,
  flags: { nats?: string; creds?: string; output: Output },
): Promise<void> {
  if (!run) throw new UsageError('gantry run cancel needs the run id: gantry run cancel <run> --nats <url>');
  if (!flags.nats)
    throw new UsageError(
      'gantry run cancel needs --nats <url>: an embedded run lives in its gantry run process; press Ctrl-C there',
    );
  const answer = await askBroker(flags, 'cancel-run', { run, reason: 'gantry run cancel' });
  const reply = runCancelReply.parse(answer);
  if (flags.output === 'json' || flags.output === 'yaml') {
    process.stdout.write(flags.output === 'json' ? `${JSON.stringify(reply)}\n` : serialize('yaml', reply));
    return;
  }
  if (reply.stopped.length + reply.withdrawn.length === 0)
    process.stdout.write(`run ${run}: nothing pending or running to cancel\n`);
  else process.stdout.write(`${cancelLines(reply).join('\n')}\n`);
}
