/**
 * `connect()`: the SDK's Node driver. It asks the coordinator for candidates (falling
 * back to a cached list when the coordinator is unreachable), gets a ticket, binds one
 * UDP socket ({@link UdpTransport}) and drives the sans-IO {@link TunnelClient} with
 * real time and one timer.
 *
 * ```ts
 * import { connect } from 'slipstream/sdk';
 * const conn = await connect({
 *   coordinator: 'http://127.0.0.1:7400',
 *   origin: 'eu-game',
 *   ticketProvider: () => myBackend.slipstreamTicket(), // { sessionId, ticket, sessionKey } (base64 or bytes)
 * });
 * conn.on('message', (bytes) => game.onPacket(bytes));
 * conn.on('path', (p) => console.log(`via ${p.relayId}, ${p.rttMs} ms, FEC ${p.fecMode}`));
 * conn.send(new TextEncoder().encode('hello'));
 * console.log(conn.stats());
 * conn.close();
 * ```
 *
 * Rejections are {@link SlipstreamError}s with a stable `code`: `SLIP_ERR_UNKNOWN_ORIGIN`,
 * `SLIP_ERR_COORDINATOR_UNREACHABLE` (and no cache), `SLIP_ERR_TICKET_*` (the relay
 * refused the ticket), `SLIP_ERR_NO_RELAY`, `SLIP_ERR_TICKET_PROVIDER`.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import { CoordinatorApiError, CoordinatorClient, type RouteAnswer } from '../../kit/coordinator-client.js';
import { UdpTransport, type UdpTransportInit } from './udp-transport.js';
import { LateTimer } from '../../kit/late-timer.js';
import type { Endpoint } from '../../proto/src/transport.js';
import { CANDIDATES_REFRESH_MS_DEFAULT, COORDINATOR_TIMEOUT_MS_DEFAULT, TICKET_PROVIDER_TIMEOUT_MS_DEFAULT } from './core/constants.js';
import type { ConnectOptionsBase, TicketGrant } from './core/connect-options.js';
import { nodeHmacSha256 } from '../../proto/src/wire.js';
import { TunnelClient, type PathInfo, type PathReport, type TunnelCandidate, type TunnelStats } from './core/tunnel-client.js';
import { ErrorCode } from '../../proto/src/errors.js';
import { SlipstreamError } from './errors.js';
import { ProbeTraceTap, type RecordOptions } from './trace-record.js';
import { bufferSizeProblem, SOCKET_BUFFER_BYTES_DEFAULT, type SocketBufferSizes } from './socket-buffers.js';

export type { TicketGrant } from './core/connect-options.js';

/** Options of {@link connect}. */
export interface ConnectOptions extends ConnectOptionsBase {
  /** Coordinator base URL, e.g. `http://127.0.0.1:7400`. */
  readonly coordinator: string;
  /** JSON file caching the last candidate list, used when the coordinator is unreachable. Default: none. */
  readonly cacheFile?: string;
  /** Local address of the tunnel socket. Default `0.0.0.0`. */
  readonly bindAddress?: string;
  /**
   * SO_RCVBUF of the tunnel socket, bytes, so bursts from the relays survive a busy
   * event loop. Default {@link SOCKET_BUFFER_BYTES_DEFAULT} (4 MiB); the kernel caps it at
   * `net.core.rmem_max` (see {@link Connection.socketBuffers}); 0 keeps the OS default.
   */
  readonly socketReceiveBufferBytes?: number;
  /** SO_SNDBUF of the tunnel socket, bytes. Default 4 MiB, capped at `net.core.wmem_max`; 0 keeps the OS default. */
  readonly socketSendBufferBytes?: number;
  /** Give up when no session opens within this long, ms. Default 5000. */
  readonly connectTimeoutMs?: number;
  /**
   * Record what the connection measures on the path in use (RTT, loss, jitter per
   * interval) as a Slipstream trace, line by line, for the simulator and the impairment
   * proxy to replay (see `trace-record.ts`). Default: no recording.
   */
  readonly record?: RecordOptions;
}

/** Events of a {@link Connection}. */
export interface ConnectionEvents {
  /** A datagram from the origin. */
  message: [bytes: Uint8Array];
  /** The relay carrying traffic changed (first pick, better path, failover). */
  path: [info: PathInfo];
  /** The connection ended for good (ticket revoked, every relay gone). */
  error: [error: SlipstreamError];
  /** A candidate refresh failed; the connection keeps its list and goes on. */
  coordinatorError: [error: Error];
  /** A refreshed candidate was left out: its address cannot be a relay's (code `SLIP_ERR_INVALID_RELAY_ADDRESS`). */
  candidateSkipped: [error: SlipstreamError];
  /** The connection is closed. */
  close: [];
}

/** How often a recording judges overdue probes lost and writes finished intervals, ms. */
const RECORD_TICK_MS = 250;

/** A relay's tunnel candidate as cached on disk. */
interface CacheFile {
  readonly coordinator: string;
  readonly origin: string;
  readonly savedAtMs: number;
  readonly candidates: TunnelCandidate[];
}

function toBytes(value: Uint8Array | string, what: string, bytes?: number): Uint8Array {
  const out = typeof value === 'string' ? new Uint8Array(Buffer.from(value, 'base64')) : value;
  if (out.length === 0 || (bytes !== undefined && out.length !== bytes)) throw new SlipstreamError(ErrorCode.TicketProvider, `the ticket grant's ${what} is ${out.length} bytes; expected ${bytes ?? 'some'} (base64 or bytes)`);
  return out;
}

/** Why `endpoint` cannot be a relay's (not an IP literal, port outside 1–65535), or undefined when it can. */
export function relayEndpointProblem(endpoint: unknown): string | undefined {
  if (typeof endpoint !== 'object' || endpoint === null) return 'is not an address';
  const { address, port } = endpoint as { address?: unknown; port?: unknown };
  if (typeof address !== 'string' || isIP(address) === 0) return `address '${String(address).slice(0, 64)}' is not an IP literal`;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) return `port ${String(port).slice(0, 16)} is outside 1–65535`;
  return undefined;
}

function splitEndpoint(text: string): Endpoint | string {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!m) return `'${text.slice(0, 64)}' is not IP:port`;
  const endpoint = { address: m[1] ?? m[2]!, port: Number(m[3]) };
  return relayEndpointProblem(endpoint) ?? endpoint;
}

function skip(skipped: SlipstreamError[] | undefined, relayId: string, source: string, problem: string): void {
  skipped?.push(new SlipstreamError(ErrorCode.InvalidRelayAddress, `relay ${String(relayId).slice(0, 64)} from ${source} skipped: ${problem}`));
}

/**
 * Turns a route answer into tunnel candidates: direct routes, and with `exitRelay`
 * also the routes through that exit (the path a session whose ticket names it takes;
 * its relay→origin estimate is then entry→exit + exit→origin). Other two-hop routes
 * are left out: the exit is the ticket's, not the client's, choice. Candidates whose
 * addresses no datagram can reach are left out, each with a
 * `SLIP_ERR_INVALID_RELAY_ADDRESS` pushed to `skipped`.
 */
export function candidatesFromRoute(answer: RouteAnswer, skipped?: SlipstreamError[], exitRelay?: string): TunnelCandidate[] {
  const out: TunnelCandidate[] = [];
  for (const c of answer.candidates) {
    if (c.kind !== 'direct' && (exitRelay === undefined || c.exitRelayId !== exitRelay)) continue;
    const tunnel = splitEndpoint(String(c.tunnelAddress));
    const probe = splitEndpoint(String(c.probeAddress));
    if (typeof tunnel === 'string' || typeof probe === 'string') {
      skip(skipped, c.relayId, 'the coordinator', `tunnel/probe address ${typeof tunnel === 'string' ? tunnel : probe as string}`);
      continue;
    }
    out.push({ id: c.relayId, tunnel, probe, estimateMs: c.costMs, restMs: (c.legs.relayToRelay?.rttMs ?? 0) + c.legs.relayToOrigin.rttMs });
  }
  return out;
}

function readCache(path: string | undefined, coordinator: string, origin: string, skipped?: SlipstreamError[]): TunnelCandidate[] | undefined {
  if (path === undefined) return undefined;
  let parsed: CacheFile;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as CacheFile;
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || parsed.coordinator !== coordinator || parsed.origin !== origin || !Array.isArray(parsed.candidates)) return undefined;
  // The file is input like any other: every entry is checked before it can reach a socket.
  const out: TunnelCandidate[] = [];
  for (const c of parsed.candidates as unknown[]) {
    const entry = c as Partial<TunnelCandidate> | null;
    const id = typeof entry?.id === 'string' ? entry.id : '?';
    const problem = typeof entry?.id !== 'string' ? 'has no id' : (relayEndpointProblem(entry.tunnel) ?? relayEndpointProblem(entry.probe));
    if (problem !== undefined) {
      skip(skipped, id, `the cache file ${path}`, problem);
      continue;
    }
    const number = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
    out.push({ id, tunnel: { address: entry!.tunnel!.address, port: entry!.tunnel!.port }, probe: { address: entry!.probe!.address, port: entry!.probe!.port }, estimateMs: number(entry!.estimateMs), restMs: number(entry!.restMs) });
  }
  return out.length === 0 ? undefined : out;
}

function writeCache(path: string | undefined, coordinator: string, origin: string, candidates: TunnelCandidate[]): void {
  if (path === undefined || candidates.length === 0) return;
  try {
    mkdirSync(dirname(path), { recursive: true });
    const body: CacheFile = { coordinator, origin, savedAtMs: Date.now(), candidates };
    // Write then rename: a crash mid-write never leaves a torn cache behind.
    writeFileSync(`${path}.tmp`, JSON.stringify(body));
    renameSync(`${path}.tmp`, path);
  } catch {
    // A cache that cannot be written only costs resilience later, never the session.
  }
}

/** Asks the coordinator for candidates; typed errors for what the caller can act on. */
async function lookup(client: CoordinatorClient, options: ConnectOptions, skipped?: SlipstreamError[], exitRelay?: string): Promise<TunnelCandidate[]> {
  try {
    const answer = await client.route({ origin: options.origin, region: options.region, latitude: options.latitude, longitude: options.longitude, twoHop: false, ...(exitRelay !== undefined ? { exit: exitRelay } : {}) });
    return candidatesFromRoute(answer, skipped, exitRelay);
  } catch (error) {
    if (error instanceof CoordinatorApiError) {
      if (error.code === 'unknown_origin') throw new SlipstreamError(ErrorCode.UnknownOrigin, `the coordinator at ${options.coordinator} does not know origin '${options.origin}'; check the name against GET /v1/origins`);
      throw new SlipstreamError(ErrorCode.CoordinatorUnreachable, `the coordinator at ${options.coordinator} answered ${error.message}`);
    }
    throw error;
  }
}

/** A live tunnel; see {@link connect}. */
export class Connection extends EventEmitter<ConnectionEvents> {
  /** The core's timer; after a stall it lets the datagrams queued meanwhile in first (kit/late-timer.ts). */
  private readonly timer = new LateTimer({ run: () => this.onTimer(), now: () => this.now() });
  private refreshTimer: NodeJS.Timeout | undefined;
  private isClosed = false;
  private readonly startedAt = performance.now();
  private readonly tap: ProbeTraceTap | undefined;
  private recordTimer: NodeJS.Timeout | undefined;
  /** Candidates left out when connecting (invalid addresses from the coordinator or the cache file), each a `SLIP_ERR_INVALID_RELAY_ADDRESS`. */
  readonly skippedCandidates: SlipstreamError[] = [];
  /** The ticket's exit relay (from the grant), for ranking refreshes; undefined without one. */
  exitRelay: string | undefined = undefined;

  /** @internal use {@link connect}. */
  constructor(
    private readonly core: TunnelClient,
    private transport: UdpTransport,
    private readonly coordinator: CoordinatorClient,
    private readonly options: ConnectOptions,
    private candidates: TunnelCandidate[],
    private readonly onOpen: (result: { ok: true } | { ok: false; error: SlipstreamError }) => void,
  ) {
    super();
    for (const c of candidates) this.known.set(c.id, c);
    if (options.record !== undefined) {
      this.tap = new ProbeTraceTap(options.record, this.now(), (to) => {
        const probe = this.known.get(this.core.current ?? '')?.probe;
        return probe !== undefined && probe.address === to.address && probe.port === to.port;
      });
      this.recordTimer = setInterval(() => this.tap!.tick(this.now()), RECORD_TICK_MS);
      this.recordTimer.unref();
    }
    this.listen();
    this.core.setCandidates(this.now(), candidates);
    this.flush();
    this.scheduleRefresh();
  }

  /** Sends one datagram to the origin (false when dropped: closed, or queue full before the first session). */
  send(bytes: Uint8Array): boolean {
    if (this.isClosed) return false;
    const ok = this.core.send(this.now(), bytes);
    this.flush();
    return ok;
  }

  /** Counters and the current path. */
  stats(): TunnelStats {
    return this.core.stats();
  }

  /** The tunnel socket's buffer sizes, bytes: `asked` (0 = OS default) and `granted` by the kernel (below `asked` when capped). */
  socketBuffers(): { asked: SocketBufferSizes; granted: SocketBufferSizes } {
    return { asked: tunnelBufferSizes(this.options), granted: this.transport.bufferSizes() };
  }

  /** The local UDP endpoint of the tunnel socket. */
  localAddress(): Endpoint {
    return this.transport.localAddress();
  }

  /**
   * Moves the tunnel to a new local socket (what a NAT rebinding or a network change
   * does); the relays' path challenges keep the session. Mostly for tests and for
   * apps that know their network changed.
   */
  async rebind(): Promise<void> {
    if (this.isClosed) return;
    const next = await UdpTransport.bind(tunnelSocketInit(this.options));
    const old = this.transport;
    this.transport = next;
    this.listen();
    old.close();
    this.core.rebound(this.now());
    this.flush();
  }

  /** Ends the sessions (authenticated Close to each relay) and unbinds; idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.core.close(this.now());
    this.flush();
    this.shutdown();
    this.emit('close');
  }

  private shutdown(): void {
    this.isClosed = true;
    this.timer.stop();
    clearTimeout(this.refreshTimer);
    clearInterval(this.recordTimer);
    this.tap?.finish();
    this.transport.close();
  }

  private now(): number {
    return performance.now() - this.startedAt;
  }

  private listen(): void {
    const transport = this.transport;
    transport.onReceive((bytes, from) => {
      if (this.transport !== transport || this.isClosed) return;
      this.tap?.received(this.now(), bytes);
      this.timer.noteInput();
      this.core.handleDatagram(this.now(), from, bytes);
      this.flush();
    });
  }

  private scheduleRefresh(): void {
    this.refreshTimer = setTimeout(() => {
      const skipped: SlipstreamError[] = [];
      void lookup(this.coordinator, this.options, skipped, this.exitRelay)
        .then(
          (candidates) => {
            if (this.isClosed) return;
            for (const error of skipped) this.emit('candidateSkipped', error);
            if (candidates.length === 0) throw new SlipstreamError(ErrorCode.NoRelay, 'the coordinator listed no usable relay; keeping the current list');
            this.candidates = candidates;
            for (const c of candidates) this.known.set(c.id, c);
            writeCache(this.options.cacheFile, this.options.coordinator, this.options.origin, candidates);
            this.core.setCandidates(this.now(), candidates);
            this.flush();
            this.scheduleRefresh();
          },
          (error: unknown) => {
            if (this.isClosed) return;
            // The session does not need the coordinator: keep the list we have.
            this.emit('coordinatorError', error instanceof Error ? error : new Error(String(error)));
            this.scheduleRefresh();
          },
        )
        // Nothing that happens on a refresh (a listener throwing, a bad list) may become an unhandled rejection.
        .catch((error: unknown) => {
          if (this.isClosed) return;
          try {
            this.emit('coordinatorError', error instanceof Error ? error : new Error(String(error)));
          } catch {
            // a throwing listener must not kill the game either
          }
          clearTimeout(this.refreshTimer);
          this.scheduleRefresh();
        });
    }, this.options.refreshMs ?? CANDIDATES_REFRESH_MS_DEFAULT);
    this.refreshTimer.unref();
  }

  private report(reports: readonly PathReport[]): void {
    this.coordinator.reportClientPaths(reports.map((r) => ({ relayId: r.relayId, rttMs: r.rttMs, jitterMs: r.jitterMs, lossFraction: r.lossFraction, samples: r.samples }))).catch(() => {
      // Reports are best effort: the coordinator may be down, and selection does not need it.
    });
  }

  private flush(): void {
    for (let e = this.core.pollEvent(); e !== undefined; e = this.core.pollEvent()) {
      switch (e.type) {
        case 'message':
          this.emit('message', e.bytes);
          break;
        case 'path':
          this.lastPath = e.info;
          this.emit('path', e.info);
          break;
        case 'open':
          this.onOpen({ ok: true });
          break;
        case 'report':
          this.report(e.reports);
          break;
        case 'failed': {
          const error = new SlipstreamError(e.code, e.message);
          this.onOpen({ ok: false, error });
          this.shutdownAfterFlush = true;
          if (this.listenerCount('error') > 0) this.emit('error', error);
          break;
        }
        default:
          break;
      }
    }
    if (this.isClosed) return;
    for (let tx = this.core.pollTransmit(); tx !== undefined; tx = this.core.pollTransmit()) {
      this.tap?.sent(this.now(), tx.to, tx.bytes);
      this.transport.send(tx.bytes, tx.to);
    }
    if (this.shutdownAfterFlush) {
      this.shutdown();
      this.emit('close');
      return;
    }
    this.timer.arm(this.core.pollTimeout());
  }

  private shutdownAfterFlush = false;
  private lastPath: PathInfo | undefined = undefined;

  /** The latest path change (the first pick happens before `connect()` resolves). */
  get path(): PathInfo | undefined {
    return this.lastPath;
  }
  /** Every candidate seen, by id: the relay in use may have left the latest list. */
  private readonly known = new Map<string, TunnelCandidate>();

  private onTimer(): void {
    if (this.isClosed) return;
    this.core.handleTimeout(this.now());
    this.flush();
  }

  /** The candidates in use (for status lines). */
  get candidateIds(): string[] {
    return this.candidates.map((c) => c.id);
  }

  /** The tunnel endpoint of a relay by id (the current one by default), from the candidate list. */
  relayEndpoint(relayId = this.core.current): Endpoint | undefined {
    return this.known.get(relayId ?? '')?.tunnel;
  }
}

/**
 * Opens a tunnel to `origin` through the best relay. Resolves when the first session
 * is open; rejects with a {@link SlipstreamError} (see the module comment). Never
 * hangs: every step is bounded (coordinator timeout, connect timeout).
 */
export async function connect(options: ConnectOptions): Promise<Connection> {
  if (options.ticket === undefined && options.ticketProvider === undefined) throw new TypeError('connect: give ticket or ticketProvider');
  for (const key of ['socketReceiveBufferBytes', 'socketSendBufferBytes'] as const) {
    const problem = bufferSizeProblem(options[key]);
    if (problem !== undefined) throw new TypeError(`connect: ${key} ${problem}`);
  }
  const coordinator = new CoordinatorClient({ baseUrl: options.coordinator, timeoutMs: options.coordinatorTimeoutMs ?? COORDINATOR_TIMEOUT_MS_DEFAULT });
  let candidates: TunnelCandidate[];
  const skipped: SlipstreamError[] = [];
  try {
    candidates = await lookup(coordinator, options, skipped);
    writeCache(options.cacheFile, options.coordinator, options.origin, candidates);
  } catch (error) {
    if (error instanceof SlipstreamError && error.code === ErrorCode.UnknownOrigin) throw error;
    const cached = readCache(options.cacheFile, options.coordinator, options.origin, skipped);
    if (cached === undefined) {
      const why = error instanceof Error ? error.message : String(error);
      throw new SlipstreamError(ErrorCode.CoordinatorUnreachable, `cannot reach the coordinator at ${options.coordinator} (${why}) and no cached candidate list${options.cacheFile ? ` in ${options.cacheFile}` : ''}; check the URL, or connect once while it is up`);
    }
    candidates = cached;
  }
  if (candidates.length === 0) throw new SlipstreamError(ErrorCode.NoRelay, `the coordinator at ${options.coordinator} has no healthy relay for origin '${options.origin}'${skipped.length > 0 ? `; skipped: ${skipped.map((e) => e.message).join('; ')}` : ''}`);
  let grant: TicketGrant;
  try {
    grant = options.ticket ?? (await withTimeout(options.ticketProvider!(), options.ticketProviderTimeoutMs ?? TICKET_PROVIDER_TIMEOUT_MS_DEFAULT));
  } catch (error) {
    if (error instanceof SlipstreamError) throw error;
    throw new SlipstreamError(ErrorCode.TicketProvider, `the ticket provider failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof grant?.sessionId !== 'string' || !/^[0-9a-f]{16}$/.test(grant.sessionId)) throw new SlipstreamError(ErrorCode.TicketProvider, `the ticket grant's sessionId must be 16 lowercase hex digits`);
  // A ticket with an exit relay: rank the entries by the path through it (one more
  // question to the coordinator; on any failure the direct ranking stands).
  const exitRelay = typeof grant.exitRelay === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(grant.exitRelay) ? grant.exitRelay : undefined;
  if (exitRelay !== undefined) {
    try {
      const viaExit = await lookup(coordinator, options, skipped, exitRelay);
      if (viaExit.length > 0) candidates = viaExit;
    } catch {
      // keep the direct candidates
    }
  }
  const core = new TunnelClient({
    sessionId: grant.sessionId,
    ticket: toBytes(grant.ticket, 'ticket'),
    sessionKey: toBytes(grant.sessionKey, 'sessionKey', 32),
    hmac: nodeHmacSha256,
    fecModes: options.fecModes,
    latencyBudgetMs: options.latencyBudgetMs,
    slidingWindow: options.slidingWindow,
    selector: options.selector,
    connectTimeoutMs: options.connectTimeoutMs,
    probeCurrentIntervalMs: options.probeCurrentIntervalMs,
  });
  let transport: UdpTransport;
  try {
    transport = await UdpTransport.bind(tunnelSocketInit(options));
  } catch (error) {
    throw new SlipstreamError(ErrorCode.BindFailed, `cannot bind the tunnel's UDP socket on ${options.bindAddress ?? '0.0.0.0'}: ${(error as NodeJS.ErrnoException).code ?? String(error)}; check bindAddress`);
  }
  return new Promise<Connection>((resolve, reject) => {
    let settled = false;
    const connection: Connection = new Connection(core, transport, coordinator, options, candidates, (result) => {
      if (settled) return;
      settled = true;
      if (result.ok) resolve(connection);
      else reject(result.error);
    });
    connection.skippedCandidates.push(...skipped);
    connection.exitRelay = exitRelay;
  });
}

/** The tunnel socket's buffer sizes asked for, bytes (defaults filled in). */
function tunnelBufferSizes(options: ConnectOptions): SocketBufferSizes {
  return { receiveBytes: options.socketReceiveBufferBytes ?? SOCKET_BUFFER_BYTES_DEFAULT, sendBytes: options.socketSendBufferBytes ?? SOCKET_BUFFER_BYTES_DEFAULT };
}

/** How the tunnel socket is bound: `bindAddress` and the buffer sizes. */
function tunnelSocketInit(options: ConnectOptions): UdpTransportInit {
  const sizes = tunnelBufferSizes(options);
  return { address: options.bindAddress ?? '0.0.0.0', receiveBufferBytes: sizes.receiveBytes, sendBufferBytes: sizes.sendBytes };
}

/** `promise`, or a `SLIP_ERR_TICKET_PROVIDER` rejection after `timeoutMs`: `connect()` never hangs on a provider. */
function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SlipstreamError(ErrorCode.TicketProvider, `the ticket provider did not answer within ${timeoutMs} ms; check the game backend (or raise ticketProviderTimeoutMs)`)), timeoutMs);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}
