/**
 * `slipstream coordinator [--config FILE] [--listen HOST:PORT] [--store memory|redis://…]
 * [--log-level L] [--lease-ms MS]`: runs the coordinator until SIGINT/SIGTERM.
 * With no flags it starts on embedded defaults and prints where it listens; keys that
 * are not configured are generated and printed loudly (development only).
 * `slipstream coordinator token …` and `slipstream coordinator identities …` are the
 * operator commands of relay identities (identity-command.ts).
 */
import { num, str, type FlagSpec } from '../../kit/flags.js';
import { flagCommand, type Command } from '../../kit/command.js';
import { ConfigReader } from '../../kit/config.js';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../../kit/log.js';
import { LEASE_MS_DEFAULT, LEASE_MS_MAX, LEASE_MS_MIN, LISTEN_DEFAULT } from './constants.js';
import { loadSettings } from './config.js';
import { startCoordinator } from './http.js';
import { openStore } from './store/index.js';

const FLAGS: Record<string, FlagSpec> = {
  config: { type: 'string', valueName: 'FILE', description: 'YAML config file (keys in coordinator/README.md)' },
  listen: { type: 'string', valueName: 'HOST:PORT', description: `Address of the HTTP API and dashboard; port 0 picks a free one [default ${LISTEN_DEFAULT}]` },
  store: { type: 'string', valueName: 'memory|redis://…', description: 'Shared state: memory (one coordinator) or a Redis URL (several replicas) [default memory]' },
  'log-level': { type: 'string', choices: LOG_LEVELS, description: 'Minimum log level [default info]' },
  'log-format': { type: 'string', choices: LOG_FORMATS, description: 'Log lines on stdout: json (one object a line) or pretty (for a terminal); also $SLIPSTREAM_LOG_FORMAT [default json]' },
  'lease-ms': { type: 'integer', valueName: 'MS', min: LEASE_MS_MIN, max: LEASE_MS_MAX, description: `A relay without a heartbeat for this long is unhealthy, ms [default ${LEASE_MS_DEFAULT}]` },
};

const SUMMARY = 'Run the coordinator: relay registry and health, measurements, ranking, tickets, dashboard.';

/** Subcommands of `slipstream coordinator`, by the word that follows it. */
const SUBCOMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  token: async () => (await import('./identity-command.js')).tokenCommand,
  identities: async () => (await import('./identity-command.js')).identitiesCommand,
};

/** The `slipstream coordinator` command: runs the coordinator, or one of {@link SUBCOMMANDS}. */
export const coordinatorCommand: Command = {
  name: 'coordinator',
  summary: SUMMARY,
  async run(argv, io) {
    const sub = argv[0] !== undefined && Object.prototype.hasOwnProperty.call(SUBCOMMANDS, argv[0]) ? SUBCOMMANDS[argv[0]] : undefined;
    return sub !== undefined ? (await sub()).run(argv.slice(1), io) : runCommand.run(argv, io);
  },
};

const runCommand: Command = flagCommand({
  path: 'coordinator',
  summary: SUMMARY,
  helpText: `${SUMMARY}\n\nAlso: 'slipstream coordinator token --relay-id ID' mints a relay join token; 'slipstream coordinator identities [--revoke ID]' lists or revokes relay identities (see their --help).`,
  flags: FLAGS,
  async run({ values }, io) {
    const configPath = str(values, 'config');
    const reader = configPath !== undefined ? ConfigReader.fromFile(configPath) : undefined;
    const settings = loadSettings(reader, {
      listen: str(values, 'listen'),
      store: str(values, 'store'),
      logLevel: str(values, 'log-level') as LogLevel | undefined,
      leaseMs: num(values, 'lease-ms'),
    });
    const logger = createLogger('coordinator', settings.logLevel, str(values, 'log-format') as LogFormat | undefined);
    // The store is opened here so that a start that fails (the port in use) closes it: an
    // open Redis connection would keep the process alive after its one error line.
    const store = await openStore(settings.store, { keyPrefix: settings.redisKeyPrefix, logger, ...(settings.fleet.identitiesFile !== undefined ? { identitiesFile: settings.fleet.identitiesFile } : {}) });
    let running: Awaited<ReturnType<typeof startCoordinator>>;
    try {
      running = await startCoordinator({ settings, logger, store });
    } catch (error) {
      await store.close();
      throw error;
    }
    const publicKey = Buffer.from(running.service.ticketPublicKey).toString('base64');
    // Signal handlers go in before the 'listening' lines: whoever waits for them (systemd,
    // tests, scripts) may signal at once, and a signal before the handlers kills outright.
    const stopped = new Promise<void>((resolve) => {
      const stop = (signal: string): void => {
        logger.info({ event: 'stopping', signal }, 'stopping');
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        void running.close().then(resolve);
      };
      const onInt = (): void => stop('SIGINT');
      const onTerm = (): void => stop('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
    });
    const g = settings.keys.generated;
    if (g.length > 0) {
      const lines = [
        '',
        '!!! WARNING: development keys generated at start (not persisted; they change on every restart) !!!',
        `!!! Put them under 'keys:' in a config file (--config) for anything real. Generated: ${g.join(', ')}`,
      ];
      if (g.includes('ticketSigningSeed')) lines.push(`!!!   ticket public key (relays verify tickets with it): ${publicKey}`);
      if (g.includes('sealKey')) lines.push(`!!!   sealKey (relays need the same):                    ${Buffer.from(settings.keys.sealKey).toString('base64')}`);
      if (g.includes('fleetSecret')) lines.push(`!!!   fleetSecret (relays authenticate with it):        ${settings.keys.fleetSecret}`);
      if (g.includes('apiKeys')) lines.push(`!!!   apiKey (game backends issue sessions with it):   ${settings.keys.apiKeys[0]}`);
      io.err(`${lines.join('\n')}\n\n`);
    }
    io.err(`slipstream coordinator listening on ${running.url} (dashboard ${running.url}/, store ${running.store.kind}, lease ${settings.leaseMs} ms, ticket public key ${publicKey})\n`);
    logger.info({ event: 'listening', url: running.url, store: running.store.kind, leaseMs: settings.leaseMs, ticketPublicKey: publicKey, generatedKeys: g }, 'coordinator listening');
    await stopped;
    return 0;
  },
});
