/**
 * `slipstream sim proxy`: the impairment proxy for real processes (our netem /
 * toxiproxy, UDP and TCP). Runs until SIGTERM or SIGINT, then closes every proxy and
 * exits 0. Logs JSON lines on stdout; the first, `{"event":"started","api":URL,…}`,
 * says where the API listens (useful with `--listen 127.0.0.1:0`).
 */
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Command } from '../../../kit/command.js';
import { bool, formatHelp, num, parseFlags, str, type FlagSpec } from '../../../kit/flags.js';
import { createLogger, LOG_LEVELS, type LogLevel } from '../../../kit/log.js';
import { CliUsageError } from '../../../proto/src/errors.js';
import { ProxyApi, startApiServer } from './api.js';
import { loadProxyConfig, type ProxyConfig } from './config.js';
import { PROXY_API_LISTEN_DEFAULT } from './constants.js';
import { formatFieldPath, formatHostPort, parseHostPort } from './definition.js';
import { ProxyManager } from './manager.js';

const FLAGS: Record<string, FlagSpec> = {
  listen: { type: 'string', valueName: 'HOST:PORT', default: PROXY_API_LISTEN_DEFAULT, description: 'Address of the HTTP API (port 0 picks a free one; keep it on loopback: the API has no authentication)' },
  config: { type: 'string', valueName: 'FILE', description: 'YAML file of proxies to create at start (see sim/README.md)' },
  seed: { type: 'integer', valueName: 'S', min: 0, max: Number.MAX_SAFE_INTEGER, description: 'Seed of every random draw (loss, jitter, …); random and logged when absent' },
  'log-level': { type: 'string', choices: LOG_LEVELS, default: 'info', description: 'Minimum level of the JSON log on stdout' },
  check: { type: 'boolean', description: 'Validate --config (trace files included) and exit: 0 valid, 2 invalid' },
};

const SUMMARY = 'Impairment proxy for real processes: UDP and TCP proxies whose delay, loss, rate, traces… change over an HTTP API.';

async function run(argv: readonly string[], io: Parameters<Command['run']>[1]): Promise<number> {
  const { values } = parseFlags('sim proxy', argv, FLAGS);
  if (values.help === true) {
    io.out(formatHelp('slipstream sim proxy [--listen HOST:PORT] [--config FILE] [--seed S] [--log-level L] [--check]', `${SUMMARY}\nAPI: GET/POST /v1/proxies, GET/DELETE /v1/proxies/NAME, PUT/DELETE /v1/proxies/NAME/impairments, POST /v1/proxies/NAME/stall|reset; GET/POST /v1/links, GET/DELETE /v1/links/NAME, PUT/DELETE /v1/links/NAME/impairments (shared links: one impairment several UDP proxies cross).`, FLAGS));
    return 0;
  }
  const listen = parseHostPort(str(values, 'listen'), [], 0);
  if (!listen.ok) throw new CliUsageError('--listen', `--listen: ${listen.error.reason}`);
  const configPath = str(values, 'config');
  let config: ProxyConfig | undefined;
  if (configPath !== undefined) config = loadProxyConfig(configPath);
  if (bool(values, 'check')) {
    if (configPath === undefined) throw new CliUsageError('--check', '--check: needs --config FILE to check');
    io.out(`${configPath}: valid (${config!.proxies.length} proxies${config!.links.length > 0 ? `, ${config!.links.length} shared links` : ''})\n`);
    return 0;
  }
  const seed = num(values, 'seed') ?? randomInt(0, 2 ** 47);
  const logger = createLogger('sim-proxy', str(values, 'log-level') as LogLevel);
  const clock = (): number => performance.now();
  const manager = new ProxyManager({ seed, logger, clock });
  const api = new ProxyApi(manager, process.cwd());
  const fatal = async (message: string): Promise<number> => {
    logger.fatal({ event: 'start_failed', err: message }, 'proxy failed to start');
    io.err(`slipstream sim proxy: ${message}\n`);
    await manager.close();
    return 1;
  };
  for (const definition of config?.links ?? []) {
    const created = manager.createLink(definition, config!.baseDir);
    if (!created.ok) return fatal(`${configPath}: link '${definition.name}': ${formatFieldPath(created.path)}: ${created.reason}`);
  }
  for (const definition of config?.proxies ?? []) {
    const created = await manager.create(definition, config!.baseDir);
    if (!created.ok) return fatal(`${configPath}: proxy '${definition.name}': ${formatFieldPath(created.path)}: ${created.reason}`);
  }
  let server;
  try {
    server = await startApiServer(api, listen.value, (error) => logger.error({ event: 'api_error', err: error.message }, 'API request failed'));
  } catch (error) {
    return fatal(`--listen ${formatHostPort(listen.value)}: cannot listen: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const running = server;
  return new Promise<number>((resolveRun) => {
    let stopping = false;
    const onSignal = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      void Promise.all([running.close(), manager.close()]).then(() => {
        logger.info({ event: 'stopped', signal }, 'sim proxy stopped');
        resolveRun(0);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // Announced once the handlers are in place, so a signal right after it stops us cleanly.
    logger.info({ event: 'started', api: running.url, seed, config: configPath, proxies: manager.list().map((p) => ({ name: p.name, protocol: p.protocol, listen: p.listen, upstream: p.upstream })) }, 'sim proxy started');
  });
}

/** The `slipstream sim proxy` command. */
export const proxyCommand: Command = {
  name: 'proxy',
  summary: 'Impairment proxy for real processes (UDP and TCP, HTTP API, traces).',
  run,
};
