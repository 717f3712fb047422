/**
 * `slipstream relay --config relay.yaml`: runs a relay until SIGTERM/SIGINT.
 * SIGHUP re-reads the file and applies mappings and limits without dropping live
 * sessions (a bad file is logged and the running config kept). SIGTERM drains: no new
 * sessions, live ones served up to `drain.timeoutMs`, then exit 0.
 * `slipstream relay --join URL --token T`: the same relay from a join token alone (join.ts).
 */
import net from 'node:net';
import { flagCommand, type Command } from '../../kit/command.js';
import { ConfigReader } from '../../kit/config.js';
import { bool, num, str, type FlagSpec } from '../../kit/flags.js';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../../kit/log.js';
import { CliUsageError, ConfigError } from '../../proto/src/errors.js';
import { loadRelayConfig, type RelayConfig } from './config.js';
import { tuneGarbageCollector } from './gc-tuning.js';
import { Relay } from './relay.js';
import { joinFailure, prepareJoin } from './join.js';
import { RelayWorkers } from './workers.js';

const FLAGS: Record<string, FlagSpec> = {
  config: { type: 'string', valueName: 'FILE', description: 'Relay configuration (YAML); see relay/README.md' },
  'log-level': { type: 'string', choices: LOG_LEVELS, description: 'Overrides logLevel from the file' },
  'log-format': { type: 'string', choices: LOG_FORMATS, description: 'Log lines on stdout: json (one object a line) or pretty (for a terminal); also $SLIPSTREAM_LOG_FORMAT [default json]' },
  check: { type: 'boolean', description: 'Validate the configuration and exit (0 valid, 2 invalid)' },
  join: { type: 'string', valueName: 'URL', description: "Instead of --config: join this coordinator with a join token (its key, the ticket and seal keys and the origins come from the coordinator; see relay/README.md, 'Joining with a token')" },
  token: { type: 'string', valueName: 'TOKEN', description: 'With --join: the one-time join token (slipstream coordinator token); needed on the first start only' },
  'state-dir': { type: 'string', valueName: 'DIR', description: 'With --join: where the key, the enrollment and the generated relay.yaml live [default ./slipstream-relay]' },
  tunnel: { type: 'string', valueName: 'HOST:PORT', description: 'With --join: tunnel listen address [default 0.0.0.0:4433]' },
  'public-address': { type: 'string', valueName: 'IP:PORT', description: 'With --join: the public tunnel address clients reach (needed when --tunnel is 0.0.0.0)' },
  udp: { type: 'string', valueName: 'LISTEN=ORIGIN[,…]', description: 'With --join: L4 UDP rules, e.g. 0.0.0.0:27015=10.0.1.10:27015' },
  tcp: { type: 'string', valueName: 'LISTEN=ORIGIN[,…]', description: 'With --join: L4 TCP rules, e.g. 0.0.0.0:7000=10.0.1.30:7000' },
  region: { type: 'string', valueName: 'NAME', description: 'With --join: region, when the token carries none' },
  lat: { type: 'number', valueName: 'DEG', min: -90, max: 90, description: 'With --join: latitude, when the token carries none' },
  lon: { type: 'number', valueName: 'DEG', min: -180, max: 180, description: 'With --join: longitude, when the token carries none' },
};

/** The `relay` command. */
export const relayCommand: Command = flagCommand({
  path: 'relay',
  summary: 'Run a relay: L4 UDP/TCP port mapping and SDK tunnel mode.',
  usage: 'slipstream relay --config relay.yaml [flags]  |  slipstream relay --join URL --token T [flags]',
  helpText: 'Run a relay: L4 UDP/TCP port mapping and SDK tunnel mode.\nSIGHUP reloads the file; SIGTERM drains and exits 0.',
  flags: FLAGS,
  async run({ values }, io) {
    const joinUrl = str(values, 'join');
    let path = str(values, 'config');
    if (joinUrl !== undefined) {
      if (!/^https?:\/\/\S+$/.test(joinUrl)) throw new CliUsageError('--join', `--join: '${joinUrl}' is not an http(s):// URL of the coordinator`);
      try {
        const joined = await prepareJoin({
          url: joinUrl,
          token: str(values, 'token'),
          stateDir: str(values, 'state-dir') ?? 'slipstream-relay',
          tunnelListen: str(values, 'tunnel') ?? '0.0.0.0:4433',
          publicAddress: str(values, 'public-address'),
          udp: (str(values, 'udp') ?? '').split(',').filter((r) => r !== ''),
          tcp: (str(values, 'tcp') ?? '').split(',').filter((r) => r !== ''),
          extraConfig: path,
          placement: { region: str(values, 'region'), latitude: num(values, 'lat'), longitude: num(values, 'lon') },
        });
        io.err(`slipstream relay: ${joined.enrolled ? 'enrolled' : 'joined'} as '${joined.relayId}'; config written to ${joined.configPath}\n`);
        path = joined.configPath;
      } catch (error) {
        if (error instanceof CliUsageError || error instanceof ConfigError) throw error;
        io.err(`${joinFailure(error)}\n`);
        return 1;
      }
    }
    if (path === undefined) throw new CliUsageError('--config', '--config: missing; expected the path of a relay YAML file (see relay/README.md), or --join URL --token T');
    const config = loadRelayConfig(path);
    if (bool(values, 'check')) {
      io.out(`${path}: valid (${config.core.rules.length} rules${config.core.tunnel ? ', tunnel' : ''})\n`);
      return 0;
    }
    // Two relays on one host both default to 127.0.0.1:9464 for /metrics: the second one
    // takes a free port (and says which) instead of failing to start. An address written
    // in the file is kept as it is: a port in use there is an error.
    const metricsFallback = metricsDefaulted(path) && config.metricsListen !== undefined && (await tcpPortInUse(config.metricsListen.host, config.metricsListen.port)) ? config.metricsListen : undefined;
    const withFallback = (c: RelayConfig): RelayConfig => (metricsFallback !== undefined && metricsDefaulted(path) ? { ...c, metricsListen: { host: metricsFallback.host, port: 0 } } : c);
    const level = (str(values, 'log-level') as LogLevel | undefined) ?? config.logLevel;
    const logger = createLogger('relay', level, str(values, 'log-format') as LogFormat | undefined);
    // Before the sockets open: see gc-tuning.ts for the pauses these settings remove.
    const gc = tuneGarbageCollector();
    let relay: Relay;
    // workers ≥ 2: this thread is the primary (worker 0); the others are threads on the same ports (workers.ts).
    const workers = config.workers > 1 ? new RelayWorkers(config.workers, logger) : undefined;
    try {
      relay = await Relay.start({ config: withFallback(config), logger, ...(workers !== undefined ? { worker: workers.primaryHooks() } : {}) });
      if (workers !== undefined) {
        try {
          await workers.start(relay, path, level, str(values, 'log-format'));
        } catch (error) {
          relay.close();
          throw error;
        }
      }
    } catch (error) {
      logger.fatal({ event: 'start_failed', err: (error as Error).message }, 'relay failed to start');
      io.err(`slipstream relay: ${(error as Error).message}\n`);
      if (config.webrtc !== undefined) (await import('./webrtc.js')).releaseWebRtc();
      return 1;
    }
    if (metricsFallback !== undefined) {
      const bound = relay.addresses().metrics;
      io.err(`slipstream relay: warning: the default metrics address ${metricsFallback.host}:${metricsFallback.port} is in use (another relay on this host?); /metrics and /health listen on ${metricsFallback.host}:${bound?.port ?? '?'} instead; set metrics.listen to choose the port\n`);
      logger.warn({ event: 'metrics_port_fallback', asked: `${metricsFallback.host}:${metricsFallback.port}`, port: bound?.port }, 'default metrics port in use; listening on a free port');
    }
    return new Promise<number>((resolve) => {
      let stopping = false;
      const onHup = (): void => {
        try {
          const needsRestart = relay.reload(withFallback(loadRelayConfig(path)));
          workers?.reload();
          logger.info({ event: 'reloaded', config: path, sessions: relay.core.sessionCount, needsRestart }, 'configuration reloaded');
        } catch (error) {
          const message = error instanceof ConfigError ? error.message : String(error);
          logger.error({ event: 'reload_failed', err: message }, 'reload failed; keeping the running configuration');
        }
      };
      const onTerm = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        const latest = (() => {
          try {
            return loadRelayConfig(path).drainTimeoutMs;
          } catch {
            return config.drainTimeoutMs;
          }
        })();
        logger.info({ event: 'draining', signal, sessions: relay.core.sessionCount, deadlineMs: latest }, 'draining');
        // The primary stays open (health, fleet membership) until the other workers have drained too.
        const workersDrained = workers?.drain(latest) ?? Promise.resolve(0);
        void Promise.all([relay.drain(latest, workersDrained), workersDrained]).then(async ([primaryLeft, workersLeft]) => {
          const left = primaryLeft + workersLeft;
          logger.info({ event: 'stopped', sessionsCut: left }, 'relay stopped');
          // libdatachannel's threads would keep the process alive (loaded only with tunnel.webrtc).
          if (config.webrtc !== undefined) (await import('./webrtc.js')).releaseWebRtc();
          process.off('SIGHUP', onHup);
          process.off('SIGTERM', onTerm);
          process.off('SIGINT', onTerm);
          resolve(0);
        });
      };
      process.on('SIGHUP', onHup);
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onTerm);
      // Announced only now: whoever waits for this line (systemd, tests, scripts) may signal
      // at once, and a signal before the handlers would kill the relay outright.
      logger.info({ event: 'started', config: path, rules: config.core.rules.map((r) => r.name), tunnel: config.core.tunnel !== undefined, addresses: relay.addresses(), gc, workers: config.workers }, 'relay started');
    });
  },
});

/** Whether the relay file leaves `metrics.listen` to its default (no key, or an unreadable file: the loader reports that). */
function metricsDefaulted(path: string): boolean {
  try {
    return !ConfigReader.fromFile(path).has(['metrics', 'listen']);
  } catch {
    return false;
  }
}

/** Whether a TCP listener on `host:port` would fail with EADDRINUSE right now. */
function tcpPortInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EADDRINUSE'));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(false)));
  });
}
