/**
 * `gantry logs <run> [task]`: the logs of a run's container and command tasks, one block per execution
 * (each attempt), from the run's lineage and the artifact store, embedded (`--state`) or over NATS.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Store } from '../../protocol/index.ts';
import {
  type ArtifactStore,
  type LineageRecord,
  openLocalArtifacts,
  readLineage,
} from '../../runtime/index.ts';
import { openLocalStore } from '../../protocol/index.ts';
import { openJetStreamArtifacts } from '../../runtime/nats-artifacts.ts';
import { connectCli, openStoreCli } from '../connect.ts';
import { LINEAGE_STREAM, RUNTIME_BUCKET } from '../credentials.ts';
import { UsageError } from '../errors.ts';

interface LogsFlags {
  nats?: string;
  creds?: string;
  state: string;
}

/** Adds `gantry logs`. */
export function registerLogsCommand(program: Command): void {
  program
    .command('logs <run> [task]')
    .description("Print the logs of a run's container and command tasks (every attempt), or of one task")
    .option('--nats <url>', 'read them from a Gantry over NATS instead of the state directory')
    .option('--creds <file>', 'NATS credentials')
    .option('--state <dir>', 'state directory (embedded mode)', '.gantry/state')
    .action(async (run: string, task: string | undefined, flags: LogsFlags) => {
      const { store, artifacts, close } = await open(flags);
      try {
        const { records } = await readLineage(store);
        const mine = records.filter((r) => r.run === run);
        if (mine.length === 0)
          throw new UsageError(`no run '${run}' in the lineage (gantry get runs lists them)`);
        const chosen = mine.filter((r) => task === undefined || r.task === task);
        if (task !== undefined && chosen.length === 0) {
          const tasks = [...new Set(mine.map((r) => r.task))].join(', ');
          throw new UsageError(`run ${run} has no task '${task}' (it ran: ${tasks})`);
        }
        const logged = chosen.filter((r) => r.logs).sort((a, b) => a.startedAt - b.startedAt);
        if (logged.length === 0) {
          process.stderr.write(
            `no logs for ${task ?? `run ${run}`}: logs are kept for container and command tasks\n`,
          );
          return;
        }
        for (const r of logged) {
          process.stdout.write(`==> ${header(r)} <==\n`);
          const text = new TextDecoder().decode(await artifacts.get(r.logs!));
          process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
        }
      } finally {
        await close();
      }
    });
}

/** Attempts count from 1, as `gantry describe run` and `gantry lineage` print them ($GANTRY_ATTEMPT is 0-based). */
function header(r: LineageRecord): string {
  const where = r.placement ? ` on ${r.placement.cluster}/${r.placement.node}` : '';
  const how = r.error ? `${r.error.name}: ${r.error.message.split('\n')[0]}` : 'succeeded';
  return `${r.task} ${r.execution} attempt ${r.attempt + 1}${where}: ${how}`;
}

async function open(
  flags: LogsFlags,
): Promise<{ store: Store; artifacts: ArtifactStore; close: () => Promise<void> }> {
  if (flags.nats) {
    const target = { nats: flags.nats, creds: flags.creds };
    const nats = await connectCli(target, 'gantry-logs');
    const store = await openStoreCli(nats, target, { bucket: RUNTIME_BUCKET, stream: LINEAGE_STREAM });
    return {
      store,
      artifacts: await openJetStreamArtifacts(nats.connection),
      async close() {
        await store.close();
        await nats.close();
      },
    };
  }
  if (!existsSync(join(flags.state, 'runtime')))
    throw new UsageError(
      `no runs in ${flags.state}: pass --state <dir> where gantry run ran, or --nats <url>`,
    );
  const store = await openLocalStore(join(flags.state, 'runtime'));
  return {
    store,
    artifacts: await openLocalArtifacts(join(flags.state, 'artifacts')),
    close: () => store.close(),
  };
}
