/**
 * `connect()` for browsers: the browser driver of the same sans-IO {@link TunnelClient}
 * the Node SDK drives (probing, selection with hysteresis, warm backup, failover, FEC
 * both ways), over WebRTC DataChannels instead of a UDP socket ({@link WebRtcTransport}),
 * with WebCrypto for the session MACs and `fetch` for the coordinator.
 *
 * ```js
 * import { connect } from 'slipstream/browser';
 * const conn = await connect({
 *   coordinator: 'https://coordinator.example.com',
 *   origin: 'eu-game',
 *   ticketProvider: () => fetch('/api/slipstream-ticket').then((r) => r.json()), // { sessionId, ticket, sessionKey } (base64)
 * });
 * conn.on('message', (bytes) => game.onPacket(bytes));
 * conn.on('path', (p) => console.log(`via ${p.relayId}, ${p.rttMs} ms, FEC ${p.fecMode}`));
 * conn.on('close', (reason) => reason && console.log(`ended: ${reason.code}`));
 * conn.send(new TextEncoder().encode('hello'));
 * ```
 *
 * The steps: candidates from the coordinator (relays with a browser entry, `webrtcUrl`),
 * the ticket from `ticketProvider`, one peer connection to each of the first
 * {@link BrowserConnectOptions.relaysMax} candidates (in parallel; their signaling
 * carries the ticket), then the core's probes over those DataChannels measure each
 * path, the selector picks the best and the second best becomes the warm backup, whose
 * session is open too, so a failover needs no signaling. Rejections are
 * `SlipstreamError`s with the Node SDK's codes.
 */
import { ErrorCode, SlipstreamError } from '../../../proto/src/errors.js';
import type { HmacSha256 } from '../../../proto/src/session-mac.js';
import { CANDIDATES_REFRESH_MS_DEFAULT, COORDINATOR_TIMEOUT_MS_DEFAULT, TICKET_PROVIDER_TIMEOUT_MS_DEFAULT } from '../core/constants.js';
import type { ConnectOptionsBase, TicketGrant } from '../core/connect-options.js';
import { TunnelClient, type PathInfo, type PathReport, type TunnelCandidate, type TunnelStats } from '../core/tunnel-client.js';
import { browserCandidatesFromRoute, fetchRoute, postReports, type BrowserCandidate } from './coordinator-fetch.js';
import { Emitter } from './emitter.js';
import { browserPeerConnectionFactory, type PeerConnectionFactory, type RtcConfigurationLike } from './rtc-types.js';
import { serveMacJobs, webCryptoHmacSha256 } from './webcrypto-hmac.js';
import { WebRtcTransport, type SignalingRefusal } from './webrtc-transport.js';

export type { TicketGrant } from '../core/connect-options.js';

/** Relays a browser connection opens peer connections to (and probes), default. */
export const BROWSER_RELAYS_MAX_DEFAULT = 3;
/** How long the Close frames get to leave before the peer connections close, ms. */
const CLOSE_LINGER_MS = 200;
/** A timer this late (ms) was held up by a busy page: its timeout waits for the messages queued meanwhile (see kit/late-timer.ts, the Node drivers' version). */
const LATE_TIMER_MS = 5;
/** Tasks a late timeout waits at most while messages keep arriving. */
const LATE_TIMER_DEFERRALS_MAX = 8;

/** Options of the browser {@link connect}. */
export interface BrowserConnectOptions extends ConnectOptionsBase {
  /** Coordinator base URL, e.g. `https://coordinator.example.com` (same origin as the page, or CORS). */
  readonly coordinator: string;
  /** Peer connections opened (and relays probed) at most: the coordinator's first N relays with a browser entry. Default 3 (1 = no warm backup). */
  readonly relaysMax?: number;
  /** Give up when no session opens within this long, ms. Default 10 000 (ICE, DTLS and SCTP come first). */
  readonly connectTimeoutMs?: number;
  /** A peer connection whose tunnel channel has not opened this long after its offer is dropped (and retried later), ms. Default 5000. */
  readonly peerConnectionTimeoutMs?: number;
  /** ICE servers for the peer connections (STUN/TURN). Default none: relays have public addresses. */
  readonly iceServers?: RtcConfigurationLike['iceServers'];
  /** Makes the peer connections. Default: the browser's `RTCPeerConnection`. */
  readonly createPeerConnection?: PeerConnectionFactory;
  /** HMAC for the session MACs. Default: WebCrypto's (`webCryptoHmacSha256`; a secure context is needed). */
  readonly hmac?: HmacSha256;
}

/** Events of a {@link BrowserConnection}. */
export interface BrowserConnectionEvents {
  /** A datagram from the origin. */
  message: [bytes: Uint8Array];
  /** The relay carrying traffic changed (first pick, better path, failover). */
  path: [info: PathInfo];
  /** The connection ended for good (ticket revoked, every relay gone): `error.code` says why. */
  error: [error: SlipstreamError];
  /** A candidate refresh or a path report failed; the connection goes on. */
  coordinatorError: [error: Error];
  /** A relay refused (or did not answer) a signaling request; the connection goes on with the others unless the ticket itself was refused. */
  signalingRefused: [refusal: SignalingRefusal];
  /** The connection is closed: `reason` is the error that ended it, undefined after `close()`. */
  close: [reason: SlipstreamError | undefined];
}

/** Ticket refusals that no relay would accept: the connection ends on them. */
const FATAL_SIGNALING_CODES = new Set([ErrorCode.TicketRevoked, ErrorCode.TicketExpired, ErrorCode.TicketForged]);

function toBytes(value: Uint8Array | string, what: string, bytes?: number): Uint8Array {
  let out: Uint8Array;
  if (typeof value === 'string') {
    try {
      out = Uint8Array.from(atob(value.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    } catch {
      throw new SlipstreamError(ErrorCode.TicketProvider, `the ticket grant's ${what} is not base64`);
    }
  } else out = value;
  if (out.length === 0 || (bytes !== undefined && out.length !== bytes)) throw new SlipstreamError(ErrorCode.TicketProvider, `the ticket grant's ${what} is ${out.length} bytes; expected ${bytes ?? 'some'} (base64 or bytes)`);
  return out;
}

/** A live tunnel from the page; see {@link connect}. */
export class BrowserConnection extends Emitter<BrowserConnectionEvents> {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerDeadlineMs = Number.POSITIVE_INFINITY;
  /** Messages fed to the core (a late timeout waits while they keep coming). */
  private inputs = 0;
  /** A late timeout is waiting for queued messages (re-arming waits for it). */
  private deferring = false;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private isClosed = false;
  private lastPath: PathInfo | undefined;
  private endReason: SlipstreamError | undefined;
  private readonly known = new Map<string, BrowserCandidate>();

  /** @internal use {@link connect}. */
  constructor(
    private readonly core: TunnelClient,
    private readonly transport: WebRtcTransport,
    private readonly hmac: HmacSha256,
    private readonly options: BrowserConnectOptions,
    /** The session id (16 hex digits), the same on every relay and across failovers. */
    readonly sessionId: string,
    private readonly exitRelay: string | undefined,
    private readonly onOpen: (result: { ok: true } | { ok: false; error: SlipstreamError }) => void,
  ) {
    super();
    transport.onReceive((bytes, from) => {
      if (this.isClosed) return;
      this.inputs++;
      this.core.handleDatagram(performance.now(), from, bytes);
      this.flush();
    });
  }

  /** @internal Hands the core its first candidates and starts the refresh timer. */
  start(candidates: readonly BrowserCandidate[]): void {
    this.setCandidates(candidates);
    this.scheduleRefresh();
  }

  /** Sends one datagram to the origin (false when dropped: closed, or queue full before the first session). */
  send(bytes: Uint8Array): boolean {
    if (this.isClosed) return false;
    const ok = this.core.send(performance.now(), bytes);
    this.flush();
    return ok;
  }

  /** Counters and the current path (the Node SDK's `TunnelStats`). */
  stats(): TunnelStats {
    return this.core.stats();
  }

  /** The latest path change (the first pick happens before `connect()` resolves). */
  get path(): PathInfo | undefined {
    return this.lastPath;
  }

  /** Whether the connection has ended. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Why the connection ended (undefined while open, or after `close()`). */
  get reason(): SlipstreamError | undefined {
    return this.endReason;
  }

  /** The relays in use and probed (for status lines). */
  get candidateIds(): string[] {
    return [...this.known.keys()];
  }

  /** Peer connections created so far (one per relay, plus one per reconnection). */
  get peerConnections(): number {
    return this.transport.peerConnections;
  }

  /** Ends the sessions (an authenticated Close to each relay, on its DataChannel) and closes the peer connections; idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.core.close(performance.now());
    this.flush();
    this.shutdown(undefined);
  }

  /** @internal A relay refused a signaling request (see {@link WebRtcTransport}). */
  onSignalingRefused(refusal: SignalingRefusal): void {
    if (this.isClosed) return;
    this.emit('signalingRefused', refusal);
    if (refusal.code !== undefined && FATAL_SIGNALING_CODES.has(refusal.code as never)) {
      const error = new SlipstreamError(refusal.code, `relay ${refusal.relayId} refused the ticket: ${refusal.message}`);
      this.fail(error);
    }
  }

  private fail(error: SlipstreamError): void {
    if (this.isClosed) return;
    this.onOpen({ ok: false, error });
    this.emit('error', error);
    this.shutdown(error);
  }

  private shutdown(reason: SlipstreamError | undefined): void {
    this.isClosed = true;
    this.endReason = reason;
    clearTimeout(this.timer);
    clearTimeout(this.refreshTimer);
    // The Close frames are queued on the channels: give them a moment before the peer connections go.
    setTimeout(() => this.transport.close(), reason === undefined ? CLOSE_LINGER_MS : 0);
    this.emit('close', reason);
  }

  private setCandidates(candidates: readonly BrowserCandidate[]): void {
    const relaysMax = this.options.relaysMax ?? BROWSER_RELAYS_MAX_DEFAULT;
    const chosen = candidates.slice(0, relaysMax);
    const list: TunnelCandidate[] = chosen.map((c) => {
      this.known.set(c.id, c);
      const endpoint = this.transport.addRelay(c.id, c.webrtcUrl);
      return { id: c.id, tunnel: endpoint, probe: endpoint, estimateMs: c.estimateMs, restMs: c.restMs };
    });
    this.core.setCandidates(performance.now(), list);
    // Relays neither listed nor in use: their peer connections go (the core no longer probes them).
    const keep = new Set([...chosen.map((c) => c.id), this.core.current, this.core.backup]);
    for (const id of this.transport.relayIds) {
      if (!keep.has(id)) {
        this.transport.forget(id);
        this.known.delete(id);
      }
    }
    this.flush();
  }

  private scheduleRefresh(): void {
    this.refreshTimer = setTimeout(() => {
      fetchRoute(this.options.coordinator, { ...this.options, exitRelay: this.exitRelay }, this.options.coordinatorTimeoutMs ?? COORDINATOR_TIMEOUT_MS_DEFAULT)
        .then((answer) => {
          if (this.isClosed) return;
          const candidates = browserCandidatesFromRoute(answer, this.exitRelay);
          if (candidates.length === 0) throw new SlipstreamError(ErrorCode.NoRelay, 'the coordinator listed no relay with a browser entry; keeping the current list');
          this.setCandidates(candidates);
        })
        .catch((error: unknown) => {
          if (!this.isClosed) this.emit('coordinatorError', error instanceof Error ? error : new Error(String(error)));
        })
        .finally(() => {
          if (!this.isClosed) this.scheduleRefresh();
        });
    }, this.options.refreshMs ?? CANDIDATES_REFRESH_MS_DEFAULT);
  }

  private report(reports: readonly PathReport[]): void {
    postReports(this.options.coordinator, reports, this.options.coordinatorTimeoutMs ?? COORDINATOR_TIMEOUT_MS_DEFAULT).catch(() => {
      // Reports are best effort: selection does not need the coordinator.
    });
  }

  private flush(): void {
    const core = this.core;
    for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) {
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
        case 'failed':
          // Send what the core queued (Closes) first, then end.
          for (let tx = core.pollTransmit(); tx !== undefined; tx = core.pollTransmit()) this.transport.send(tx.bytes, tx.to);
          this.fail(new SlipstreamError(e.code, e.message));
          return;
        default:
          break;
      }
    }
    if (this.isClosed) {
      for (let tx = core.pollTransmit(); tx !== undefined; tx = core.pollTransmit()) this.transport.send(tx.bytes, tx.to);
      return;
    }
    for (let tx = core.pollTransmit(); tx !== undefined; tx = core.pollTransmit()) this.transport.send(tx.bytes, tx.to);
    serveMacJobs(core, this.hmac, () => performance.now(), () => this.isClosed || this.flush());
    if (this.deferring) return;
    const at = core.pollTimeout();
    clearTimeout(this.timer);
    this.timerDeadlineMs = at ?? Number.POSITIVE_INFINITY;
    if (at !== undefined) this.timer = setTimeout(() => this.onTimer(), Math.max(0, at - performance.now()));
  }

  /**
   * The core's timer. One that fired more than {@link LATE_TIMER_MS} late (the page was
   * busy) first yields a task, and again while messages arrived meanwhile (up to
   * {@link LATE_TIMER_DEFERRALS_MAX}), so that the data channels' queued messages (an FEC
   * repair, say) reach the core before it gives anything up. Best effort: a browser
   * orders its timer and network tasks as it likes.
   */
  private onTimer(turns = 0, inputsBefore = 0): void {
    if (this.isClosed) return;
    if ((turns === 0 && performance.now() - this.timerDeadlineMs > LATE_TIMER_MS) || (turns > 0 && this.inputs !== inputsBefore && turns < LATE_TIMER_DEFERRALS_MAX)) {
      this.deferring = true;
      const inputs = this.inputs;
      this.timer = setTimeout(() => this.onTimer(turns + 1, inputs), 0);
      return;
    }
    this.deferring = false;
    this.core.handleTimeout(performance.now());
    this.flush();
  }
}

/**
 * Opens a tunnel from the page to `origin` through the best relay with a browser entry.
 * Resolves when the first session is open; rejects with a `SlipstreamError`
 * (`SLIP_ERR_UNKNOWN_ORIGIN`, `SLIP_ERR_COORDINATOR_UNREACHABLE`, `SLIP_ERR_NO_RELAY`,
 * `SLIP_ERR_TICKET_PROVIDER`, `SLIP_ERR_TICKET_*`). Never hangs: every step is bounded.
 */
export async function connect(options: BrowserConnectOptions): Promise<BrowserConnection> {
  if (options.ticket === undefined && options.ticketProvider === undefined) throw new TypeError('connect: give ticket or ticketProvider');
  const relaysMax = options.relaysMax ?? BROWSER_RELAYS_MAX_DEFAULT;
  if (!Number.isInteger(relaysMax) || relaysMax < 1 || relaysMax > 5) throw new TypeError(`connect: relaysMax ${String(relaysMax)} is not an integer in 1–5`);
  const createPeerConnection = options.createPeerConnection ?? browserPeerConnectionFactory();
  if (createPeerConnection === undefined) throw new TypeError('connect: this runtime has no RTCPeerConnection; give createPeerConnection');
  const hmac = options.hmac ?? webCryptoHmacSha256();
  const timeoutMs = options.coordinatorTimeoutMs ?? COORDINATOR_TIMEOUT_MS_DEFAULT;
  const skipped: string[] = [];
  let candidates = browserCandidatesFromRoute(await fetchRoute(options.coordinator, options, timeoutMs), undefined, skipped);
  if (candidates.length === 0) throw new SlipstreamError(ErrorCode.NoRelay, `the coordinator at ${options.coordinator} has no healthy relay with a browser entry (tunnel.webrtc) for origin '${options.origin}'${skipped.length > 0 ? `; without one: ${skipped.join(', ')}` : ''}`);
  let grant: TicketGrant;
  try {
    grant = options.ticket ?? (await withTimeout(options.ticketProvider!(), options.ticketProviderTimeoutMs ?? TICKET_PROVIDER_TIMEOUT_MS_DEFAULT));
  } catch (error) {
    if (error instanceof SlipstreamError) throw error;
    throw new SlipstreamError(ErrorCode.TicketProvider, `the ticket provider failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof grant?.sessionId !== 'string' || !/^[0-9a-f]{16}$/.test(grant.sessionId)) throw new SlipstreamError(ErrorCode.TicketProvider, `the ticket grant's sessionId must be 16 lowercase hex digits`);
  const exitRelay = typeof grant.exitRelay === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(grant.exitRelay) ? grant.exitRelay : undefined;
  if (exitRelay !== undefined) {
    try {
      const viaExit = browserCandidatesFromRoute(await fetchRoute(options.coordinator, { ...options, exitRelay }, timeoutMs), exitRelay);
      if (viaExit.length > 0) candidates = viaExit;
    } catch {
      // keep the direct candidates
    }
  }
  const ticket = toBytes(grant.ticket, 'ticket');
  const core = new TunnelClient({
    sessionId: grant.sessionId,
    ticket,
    sessionKey: toBytes(grant.sessionKey, 'sessionKey', 32),
    hmac,
    fecModes: options.fecModes,
    latencyBudgetMs: options.latencyBudgetMs,
    slidingWindow: options.slidingWindow,
    selector: options.selector,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    probeCurrentIntervalMs: options.probeCurrentIntervalMs,
    warmBackup: relaysMax > 1,
  });
  const holder: { connection?: BrowserConnection } = {};
  const transport = new WebRtcTransport({
    ticket,
    createPeerConnection,
    rtcConfiguration: options.iceServers === undefined ? {} : { iceServers: options.iceServers },
    openTimeoutMs: options.peerConnectionTimeoutMs,
    nowMs: () => performance.now(),
    onRefused: (refusal) => holder.connection?.onSignalingRefused(refusal),
  });
  return new Promise<BrowserConnection>((resolve, reject) => {
    let settled = false;
    const connection = new BrowserConnection(core, transport, hmac, options, grant.sessionId, exitRelay, (result) => {
      if (settled) return;
      settled = true;
      if (result.ok) resolve(connection);
      else reject(result.error);
    });
    holder.connection = connection;
    const chosen = candidates.slice(0, relaysMax);
    for (const c of chosen) transport.addRelay(c.id, c.webrtcUrl);
    // Peer connections first, in parallel: the core's first probes then travel on open channels.
    void Promise.all(chosen.map((c) => transport.open(c.id))).then(() => {
      if (!connection.closed) connection.start(candidates);
    });
  });
}

/** `promise`, or a `SLIP_ERR_TICKET_PROVIDER` rejection after `timeoutMs`. */
function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SlipstreamError(ErrorCode.TicketProvider, `the ticket provider did not answer within ${timeoutMs} ms; check the game backend (or raise ticketProviderTimeoutMs)`)), timeoutMs);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}
