/**
 * Rules every command's flags follow, applied once to the whole command tree: an unknown flag is named
 * before a missing required one (commander checks required flags first, so `gantry plan --frob` would
 * complain about `-f`), and `--nats` takes only URLs the NATS client can connect to.
 *
 * @example
 * const program = new Command('gantry');
 * registerPlanCommand(program);
 * strictFlags(program); // after every command is registered
 */
import { type Command, InvalidArgumentError } from 'commander';

/** URL schemes the Node NATS client connects with: plain TCP, and TCP with TLS required. */
export const NATS_SCHEMES = ['nats', 'tls'] as const;

const WHY_NOT: Record<string, string> = {
  http: 'HTTP is the monitoring port',
  https: 'HTTP is the monitoring port',
  ws: 'the Node NATS client does not speak WebSocket',
  wss: 'the Node NATS client does not speak WebSocket',
};

/**
 * Checks a `--nats` value: one server URL or several separated by commas, each `nats://host:port`,
 * `tls://host:port` or a bare `host:port`. Returns it unchanged, or throws commander's
 * InvalidArgumentError, which commander prints naming the flag (exit code 2).
 */
export function natsUrls(value: string): string {
  for (const server of value.split(',').map((s) => s.trim())) {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(server)?.[1]?.toLowerCase();
    if (server === '' || (scheme !== undefined && !(NATS_SCHEMES as readonly string[]).includes(scheme)))
      throw new InvalidArgumentError(
        `${server === '' ? 'an empty server' : `${scheme}://`} is not a NATS URL` +
          `${scheme && WHY_NOT[scheme] ? ` (${WHY_NOT[scheme]})` : ''}: ` +
          `write nats://<host>:<port>, or tls:// for TLS, e.g. nats://127.0.0.1:4222`,
      );
  }
  return value;
}

/**
 * Applies the rules to `cmd` and every command under it. Required flags are checked before the action
 * runs instead of while parsing, so that commander reports an unknown flag (or a missing argument) first.
 */
export function strictFlags(cmd: Command): void {
  const required = cmd.options.filter((o) => o.mandatory);
  for (const option of required) option.makeOptionMandatory(false);
  if (required.length > 0)
    cmd.hook('preAction', (_self, action) => {
      if (action !== cmd) return;
      const missing = required.find((o) => cmd.getOptionValue(o.attributeName()) === undefined);
      if (missing)
        cmd.error(`error: required option '${missing.flags}' not specified`, {
          code: 'commander.missingMandatoryOptionValue',
        });
    });
  for (const option of cmd.options) if (option.long === '--nats') option.argParser(natsUrls);
  for (const sub of cmd.commands) strictFlags(sub);
}
