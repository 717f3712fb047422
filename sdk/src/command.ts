/**
 * `slipstream connect`: a local proxy so unmodified games and tools use Slipstream.
 *
 * - `udp:HOST:PORT`: datagrams the game sends to this port go through the tunnel
 *   (FEC, failover) to the origin; the origin's replies come back to the game's
 *   address (the latest local sender).
 * - `tcp:HOST:PORT`: each connection is piped to the current relay's L4 TCP rule for
 *   the origin (`--relay-tcp-port`); new connections follow failovers, established
 *   ones end with their relay (the tunnel carries datagrams; TCP needs its relay).
 *
 * Prints the path on every change and a status line every `--status-interval-ms`
 * on stdout; one error line on stderr and exit 1 when it cannot connect. Every UDP
 * socket asks for 4 MiB kernel buffers (`--socket-*-buffer-bytes`, see socket-buffers.ts);
 * a `buffers:` line at start says what the kernel granted, and one warning when it capped them.
 */
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { flagCommand, type Command } from '../../kit/command.js';
import { num, str, type FlagSpec } from '../../kit/flags.js';
import { CoordinatorClient } from '../../kit/coordinator-client.js';
import { describeNetworkError } from '../../kit/system-error.js';
import { CliUsageError, ErrorCode } from '../../proto/src/errors.js';
import { PLAYER_ID_CHARS_MAX, PLAYER_ID_PATTERN } from '../../proto/src/proxy-protocol.js';
import { connect, type Connection, type TicketGrant } from './connect.js';
import { SlipstreamError } from './errors.js';
import type { PathInfo } from './core/tunnel-client.js';
import { bufferCapProblem, bufferSocketOptions, describeBufferSizes, grantedBufferSizes, SOCKET_BUFFER_BYTES_DEFAULT, SOCKET_BUFFER_BYTES_MAX, type SocketBufferSizes } from './socket-buffers.js';

/** Default status line period, ms. */
export const STATUS_INTERVAL_MS_DEFAULT = 5000;

const FLAGS: Record<string, FlagSpec> = {
  coordinator: { type: 'string', valueName: 'URL', description: 'Coordinator base URL, e.g. http://127.0.0.1:7400 (required)' },
  origin: { type: 'string', valueName: 'NAME', description: 'Origin (game server) name as the coordinator knows it (required)' },
  listen: { type: 'string', valueName: 'LIST', description: 'Local ports, comma-separated: udp:HOST:PORT and/or tcp:HOST:PORT (required)' },
  'ticket-file': { type: 'string', valueName: 'FILE', description: "JSON ticket grant {sessionId, ticket, sessionKey} (the coordinator's POST /v1/session answer)" },
  'api-key': { type: 'string', valueName: 'KEY', description: 'Instead of --ticket-file: ask the coordinator for a ticket with this API key (development; also $SLIPSTREAM_API_KEY)' },
  'exit-relay': { type: 'string', valueName: 'ID|auto', description: "With --api-key: ask for a ticket whose session leaves through this exit relay (or 'auto'), so the origin sees one source address across relay switches" },
  'player-id': { type: 'string', valueName: 'ID', description: 'With --api-key: the player id signed into the ticket (1–128 printable ASCII characters, no spaces); relays with tunnel.proxyProtocol give it to the origin with each datagram' },
  'relay-tcp-port': { type: 'integer', valueName: 'PORT', min: 1, max: 65535, description: "Port of the relays' L4 TCP rule for this origin (needed for tcp:)" },
  cache: { type: 'string', valueName: 'FILE', description: 'Candidate cache used when the coordinator is unreachable [default ~/.cache/slipstream/candidates-<hash>.json]' },
  'status-interval-ms': { type: 'integer', valueName: 'MS', min: 500, max: 600_000, default: STATUS_INTERVAL_MS_DEFAULT, description: 'Status line period, ms' },
  'connect-timeout-ms': { type: 'integer', valueName: 'MS', min: 500, max: 120_000, default: 5000, description: 'Give up when no relay opens a session within this long, ms' },
  'socket-receive-buffer-bytes': { type: 'integer', valueName: 'BYTES', min: 0, max: SOCKET_BUFFER_BYTES_MAX, default: SOCKET_BUFFER_BYTES_DEFAULT, description: 'SO_RCVBUF of the tunnel socket and each udp: listen socket, bytes, so bursts survive a busy machine; capped by the kernel at net.core.rmem_max (a warning says so); 0 = OS default' },
  'socket-send-buffer-bytes': { type: 'integer', valueName: 'BYTES', min: 0, max: SOCKET_BUFFER_BYTES_MAX, default: SOCKET_BUFFER_BYTES_DEFAULT, description: 'SO_SNDBUF of the same sockets, bytes; capped at net.core.wmem_max; 0 = OS default' },
  bind: { type: 'string', valueName: 'ADDRESS', default: '0.0.0.0', description: 'Local address of the tunnel socket' },
  'latency-budget-ms': { type: 'integer', valueName: 'MS', min: 0, max: 1000, description: "Latency budget of the session's FEC, ms: repairs are chosen so that at most 0.3 % of packets are rebuilt later than this, both ways (sent to the relay; relays older than it refuse the open) [default: the controller's, 10 ms, and the relay's tunnel.fec.latencyBudgetMs downstream]" },
  record: { type: 'string', valueName: 'FILE', description: 'Write what the connection measures on the path in use (RTT, loss, jitter per second) to FILE as a Slipstream trace (.csv: CSV, else JSON lines), for sim run and sim proxy to replay' },
  'record-interval-ms': { type: 'integer', valueName: 'MS', min: 100, max: 3_600_000, default: 1000, description: 'Interval of --record, ms' },
};

const SUMMARY = 'Local proxy: tunnel a UDP (and TCP) port to an origin through the best relay.';

interface ListenSpec {
  readonly protocol: 'udp' | 'tcp';
  readonly host: string;
  readonly port: number;
}

function parseListen(text: string): ListenSpec[] {
  const out: ListenSpec[] = [];
  for (const item of text.split(',')) {
    const m = /^(udp|tcp):(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(item.trim());
    if (!m || Number(m[4]) > 65535) throw new CliUsageError('--listen', `--listen: '${item}' is not accepted; expected udp:HOST:PORT or tcp:HOST:PORT (port 0–65535), comma-separated`);
    out.push({ protocol: m[1] as 'udp' | 'tcp', host: m[2] ?? m[3]!, port: Number(m[4]) });
  }
  return out;
}

function defaultCache(coordinator: string, origin: string): string {
  const base = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  const hash = createHash('sha256').update(`${coordinator}\n${origin}`).digest('hex').slice(0, 12);
  return join(base, 'slipstream', `candidates-${hash}.json`);
}

function readGrant(path: string): TicketGrant {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CliUsageError('--ticket-file', `--ticket-file: cannot read '${path}' as JSON: ${(error as Error).message}`);
  }
  const g = parsed as Partial<TicketGrant>;
  if (typeof g.sessionId !== 'string' || typeof g.ticket !== 'string' || typeof g.sessionKey !== 'string') throw new CliUsageError('--ticket-file', `--ticket-file: '${path}' must hold {sessionId, ticket, sessionKey} as POST /v1/session answers`);
  return g as TicketGrant;
}

const pct = (f: number): string => `${(f * 100).toFixed(2)} %`;
const ms = (v: number | undefined): string => (v === undefined ? '?' : `${v.toFixed(1)} ms`);

function pathLine(info: PathInfo): string {
  return `path: ${info.relayId ?? 'none'} (${info.reason}${info.previousId ? `, was ${info.previousId}` : ''}) rtt ${ms(info.rttMs)} loss ${pct(info.lossFraction)} fec ${info.fecMode ?? 'pending'} backup ${info.backupId ?? 'none'}\n`;
}

/** The `connect` command. */
export const connectCommand: Command = flagCommand({
  path: 'connect',
  summary: SUMMARY,
  usage: 'slipstream connect --coordinator URL --origin NAME --listen udp:127.0.0.1:7777[,tcp:127.0.0.1:7778] [flags]',
  flags: FLAGS,
  async run({ values }, io) {
    const coordinator = str(values, 'coordinator');
    const origin = str(values, 'origin');
    const listenText = str(values, 'listen');
    if (coordinator === undefined || !/^https?:\/\/\S+$/.test(coordinator)) throw new CliUsageError('--coordinator', '--coordinator: missing or not an http(s):// URL');
    if (origin === undefined || origin.length === 0) throw new CliUsageError('--origin', '--origin: missing; expected the origin name, e.g. eu-game');
    if (listenText === undefined) throw new CliUsageError('--listen', '--listen: missing; expected udp:HOST:PORT and/or tcp:HOST:PORT');
    const listens = parseListen(listenText);
    const relayTcpPort = num(values, 'relay-tcp-port');
    if (listens.some((l) => l.protocol === 'tcp') && relayTcpPort === undefined) throw new CliUsageError('--relay-tcp-port', "--relay-tcp-port: needed with tcp: listeners; expected the port of the relays' TCP rule for the origin");
    const ticketFile = str(values, 'ticket-file');
    const apiKey = str(values, 'api-key') ?? process.env.SLIPSTREAM_API_KEY;
    if (ticketFile === undefined && apiKey === undefined) throw new CliUsageError('--ticket-file', '--ticket-file: missing; give a ticket grant file, or --api-key to ask the coordinator for one');
    const exitRelay = str(values, 'exit-relay');
    if (exitRelay !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(exitRelay)) throw new CliUsageError('--exit-relay', "--exit-relay: expected a relay id (letters, digits, . _ -) or 'auto'");
    if (exitRelay !== undefined && apiKey === undefined) throw new CliUsageError('--exit-relay', '--exit-relay: needs --api-key (a ticket file already names its exit, if any)');
    const playerId = str(values, 'player-id');
    if (playerId !== undefined && !PLAYER_ID_PATTERN.test(playerId)) throw new CliUsageError('--player-id', `--player-id: expected 1–${PLAYER_ID_CHARS_MAX} printable ASCII characters without spaces`);
    if (playerId !== undefined && apiKey === undefined) throw new CliUsageError('--player-id', '--player-id: needs --api-key (a ticket file already carries its player id, if any)');
    const statusMs = num(values, 'status-interval-ms')!;
    const recordFile = str(values, 'record');
    let recordFd: number | undefined;
    if (recordFile !== undefined) {
      try {
        recordFd = openSync(recordFile, 'w');
      } catch (error) {
        throw new CliUsageError('--record', `--record: cannot write '${recordFile}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    }
    const closeRecord = (): void => {
      if (recordFd !== undefined) closeSync(recordFd);
      recordFd = undefined;
    };

    const buffersAsked: SocketBufferSizes = { receiveBytes: num(values, 'socket-receive-buffer-bytes')!, sendBytes: num(values, 'socket-send-buffer-bytes')! };

    // The local ports are bound first: a port in use is the commonest mistake and must
    // fail at once, before a ticket is spent or the coordinator is asked anything.
    const tunnel: TunnelRef = { conn: undefined };
    const closers: (() => void)[] = [];
    const buffers: { what: string; granted: SocketBufferSizes }[] = [];
    try {
      for (const l of listens) {
        if (l.protocol === 'tcp') {
          closers.push(await tcpProxy(tunnel, l, relayTcpPort!));
          continue;
        }
        const proxy = await udpProxy(tunnel, l, buffersAsked);
        closers.push(proxy.close);
        buffers.push({ what: `udp:${l.host}:${l.port}`, granted: proxy.granted });
      }
    } catch (error) {
      closeRecord();
      for (const c of closers) c();
      const l = (error as { listen?: ListenSpec }).listen;
      const where = l === undefined ? '' : ` ${l.protocol}:${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}`;
      io.err(`slipstream connect: ${ErrorCode.BindFailed}: cannot listen on${where}: ${describeNetworkError(error)}${(error as { code?: string }).code === 'EADDRINUSE' ? '; another process holds it: stop it or choose another --listen port' : ''}\n`);
      return 1;
    }

    let conn: Connection;
    try {
      conn = await connect({
        coordinator,
        origin,
        cacheFile: str(values, 'cache') ?? defaultCache(coordinator, origin),
        bindAddress: str(values, 'bind'),
        socketReceiveBufferBytes: buffersAsked.receiveBytes,
        ...(num(values, 'latency-budget-ms') !== undefined ? { latencyBudgetMs: num(values, 'latency-budget-ms') } : {}),
        socketSendBufferBytes: buffersAsked.sendBytes,
        connectTimeoutMs: num(values, 'connect-timeout-ms'),
        ...(recordFd === undefined
          ? {}
          : {
              record: {
                intervalMs: num(values, 'record-interval-ms'),
                encoding: recordFile!.endsWith('.csv') ? ('csv' as const) : ('jsonl' as const),
                onLine: (line: string) => {
                  if (recordFd !== undefined) writeSync(recordFd, `${line}\n`);
                },
              },
            }),
        ...(ticketFile !== undefined
          ? { ticket: readGrant(ticketFile) }
          : {
              ticketProvider: async () => {
                try {
                  return await new CoordinatorClient({ baseUrl: coordinator, apiKey, timeoutMs: 3000 }).issueSession({ origin, ...(exitRelay !== undefined ? { exitRelay } : {}), ...(playerId !== undefined ? { playerId } : {}) });
                } catch (error) {
                  throw new Error(`POST ${coordinator}/v1/session: ${(error as Error).message}`);
                }
              },
            }),
      });
    } catch (error) {
      closeRecord();
      for (const c of closers) c();
      if (error instanceof SlipstreamError) {
        io.err(`slipstream connect: ${error.code}: ${error.message}\n`);
        return 1;
      }
      if (error instanceof CliUsageError) throw error;
      io.err(`slipstream connect: ${(error as Error).message}\n`);
      return 1;
    }
    tunnel.conn = conn;

    io.out(`connected: session open through ${conn.stats().relayId} (candidates ${conn.candidateIds.join(', ')})\n`);
    if (conn.path !== undefined) io.out(pathLine(conn.path));
    conn.on('path', (info) => io.out(pathLine(info)));
    conn.on('coordinatorError', (e) => io.err(`slipstream connect: coordinator unreachable, keeping ${conn.candidateIds.length} cached candidates (${e.message})\n`));

    // What the kernel granted each UDP socket, for the started line and the one warning.
    buffers.unshift({ what: 'tunnel', granted: conn.socketBuffers().granted });
    io.out(`listening: ${listens.map((l) => `${l.protocol}:${l.host}:${l.port}`).join(', ')}\n`);
    io.out(`buffers: ${buffers.map((b) => `${b.what} ${describeBufferSizes(b.granted)}`).join('; ')} (asked ${describeBufferSizes(buffersAsked)})\n`);
    // Once, at start: every socket asks the same sizes, so one cap caps them all.
    const capped = bufferCapProblem('UDP', buffersAsked, buffers.reduce((low, b) => ({ receiveBytes: Math.min(low.receiveBytes, b.granted.receiveBytes), sendBytes: Math.min(low.sendBytes, b.granted.sendBytes) }), buffersAsked));
    if (capped !== undefined) io.err(`slipstream connect: warning: ${capped}\n`);

    return new Promise<number>((resolve) => {
      const status = setInterval(() => {
        const s = conn.stats();
        io.out(`status: relay ${s.relayId ?? 'none'} rtt ${ms(s.rttMs)} loss ${pct(s.lossBeforeFec)} before FEC → ${pct(s.lossAfterFec)} after; up ${s.upstreamScheme} down ${s.fecMode ?? 'off'}; sent ${s.packetsSent} received ${s.packetsReceived}; switches ${s.switches}; fec up data ${s.upstreamFecBytes.data} B redundant ${s.upstreamFecBytes.redundant} B\n`);
      }, statusMs);
      const stop = (code: number): void => {
        clearInterval(status);
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        for (const c of closers) c();
        conn.close();
        closeRecord();
        resolve(code);
      };
      const onSignal = (): void => stop(0);
      conn.on('error', (error) => {
        io.err(`slipstream connect: ${error.code}: ${error.message}\n`);
        stop(1);
      });
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
  },
});

/** The connection the local listeners forward to: undefined until it is open (listeners are bound before). */
interface TunnelRef {
  conn: Connection | undefined;
}

/** Rejects with `error` marked with the listener it belongs to, so the one error line can name it. */
function listenFailed(l: ListenSpec, reject: (error: unknown) => void): (error: Error) => void {
  return (error) => reject(Object.assign(error, { listen: l }));
}

/**
 * A `udp:` listener: binds it with the buffer sizes asked; resolves to its closer and
 * the sizes the kernel granted. Datagrams that arrive before the tunnel is open are
 * dropped (the game retries, as it would on any lossy path).
 */
async function udpProxy(tunnel: TunnelRef, l: ListenSpec, buffersAsked: SocketBufferSizes): Promise<{ close: () => void; granted: SocketBufferSizes }> {
  const socket = dgram.createSocket({ type: net.isIPv6(l.host) ? 'udp6' : 'udp4', ...bufferSocketOptions(buffersAsked) });
  await new Promise<void>((resolve, rejectRaw) => {
    const reject = listenFailed(l, rejectRaw);
    socket.once('error', reject);
    socket.bind(l.port, l.host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', () => {
    // ICMP errors from earlier sends (the game went away) are not fatal.
  });
  let game: { address: string; port: number } | undefined;
  let attached: Connection | undefined;
  socket.on('message', (message, from) => {
    // Source port 0 cannot be answered (dgram throws sending to it): never the game.
    if (from.port === 0) return;
    game = { address: from.address, port: from.port };
    const conn = tunnel.conn;
    if (conn === undefined) return;
    if (attached !== conn) {
      attached = conn;
      conn.on('message', (bytes) => {
        if (game !== undefined) socket.send(bytes, game.port, game.address);
      });
    }
    conn.send(message);
  });
  return { close: () => socket.close(), granted: grantedBufferSizes(socket) };
}

/** A `tcp:` listener: each connection is piped to the current relay's TCP rule; refused (closed) until the tunnel is open. */
async function tcpProxy(tunnel: TunnelRef, l: ListenSpec, relayTcpPort: number): Promise<() => void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((local) => {
    sockets.add(local);
    const relay = tunnel.conn?.relayEndpoint();
    if (relay === undefined) {
      local.destroy();
      return;
    }
    const upstream = net.connect({ host: relay.address, port: relayTcpPort });
    sockets.add(upstream);
    local.pipe(upstream);
    upstream.pipe(local);
    const end = (): void => {
      local.destroy();
      upstream.destroy();
      sockets.delete(local);
      sockets.delete(upstream);
    };
    local.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve, rejectRaw) => {
    const reject = listenFailed(l, rejectRaw);
    server.once('error', reject);
    server.listen(l.port, l.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return () => {
    server.close();
    for (const s of sockets) s.destroy();
  };
}

