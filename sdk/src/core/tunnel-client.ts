/**
 * The client side of a tunnel session as one sans-IO state machine: probing,
 * selection (through {@link RelaySelector}), session opens on the current relay and a
 * warm backup, FEC both ways, liveness and failover, duplication to the backup while
 * the current relay looks bad, path challenges (NAT rebinding), keepalives and path
 * reports. It never touches a socket, a timer or a clock.
 *
 * Inputs: {@link TunnelClient.setCandidates}, {@link TunnelClient.handleDatagram},
 * {@link TunnelClient.handleTimeout}; app commands {@link TunnelClient.send},
 * {@link TunnelClient.close}. Outputs, drained after every input (the str0m rule):
 * {@link TunnelClient.pollEvent} until undefined, {@link TunnelClient.pollTransmit}
 * until undefined, then one timer at {@link TunnelClient.pollTimeout}. Every datagram
 * goes out of one local socket.
 *
 * ## One session, several relays
 * The ticket is not bound to a relay, so the same session id is opened on the current
 * relay and on the backup; each relay keeps its own origin-facing socket for it.
 * Upstream, one FEC sender numbers every shard, whichever relay carries it, so the
 * sequence stays continuous across a failover and a shard duplicated to the backup is
 * the same shard. Downstream, each relay numbers its own packets, so each has its own
 * FEC receiver.
 *
 * ## Liveness and failover
 * The current relay is probed every {@link TunnelClientInit.probeCurrentIntervalMs};
 * any packet from it (probe reply, data, accept) proves it alive. Silence for
 * `max(150 ms, 1.5 probe periods + SRTT + 4 RTTVAR)` makes it suspect: every upstream
 * shard is then also sent to the backup (whose session is already open), so traffic
 * flows again within about one backup RTT. Silence for `max(450 ms, 2 × suspect)`
 * judges it dead: {@link RelaySelector.markSilent} promotes the backup, which needs no
 * handshake, if it has answered since, and a new backup is opened; if nothing has (the
 * client's own link went dark), the relay stays current with its session, every relay
 * is re-probed from 250 ms on, and traffic resumes with the link. A burst of downstream
 * loss (a 250 ms interval losing ≥ 25 %) also duplicates, for 2 s.
 *
 * ## FEC
 * The relay chooses the downstream mode (its `tunnel.fec` config) from the modes the
 * client offers. Each side's receiver sends its interval stats to the other side in a
 * `fecStats` control message, and each side's sender runs an adaptive
 * {@link FecController} fed by the far side's report, so protection follows the loss
 * of the direction it protects (upload and download last miles often differ). Until
 * the relay's first report the client protects with one spaced copy.
 *
 * ## Keepalive
 * A session idle for {@link C.KEEPALIVE_MS} gets its `sessionOpen` again rather than a
 * bare keepalive: any packet from the session's address refreshes the relay's idle timer
 * and the NAT mapping, and a repeated open also re-creates the session when the relay
 * restarted or swept it (a bare keepalive would only learn that from a Close, one round
 * trip later), and it is large enough (≥ 40 bytes) to earn a path challenge after a NAT
 * rebinding. The relay charges it to the session, not to the per-source unauthenticated
 * bucket, so many players behind one CGNAT address do not starve each other. Cost: one
 * ~250-byte datagram per 10 s of silence; `fecStats` reports also count as traffic.
 */
import { decodeControl } from '../../../proto/src/control.js';
import { ErrorCode } from '../../../proto/src/errors.js';
import { FecController, FecReceiver, FecSender, FecShardKind, type FecIntervalStats, type FecScheme } from '../../../proto/src/fec/index.js';
import { HEADER_BYTES, HeaderFlag, PacketHeader, PacketType, parseHeader, sessionIdFromHex, writeHeader } from '../../../proto/src/header.js';
import { SlabAllocator } from '../../../proto/src/slab.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import { buildClientClose, buildControlPacket, buildPathResponse, buildProbe, fecStatsFromMessage, fecStatsMessage, openRelayClose, parseProbeReplyBody, PROBE_BODY_BYTES_WITH_STATUS } from '../../../proto/src/wire.js';
import { isTicketRefusal } from '../errors.js';
import * as C from './constants.js';
import { RelaySelector, type RelaySelectorInit, type SelectionEvent } from './relay-selector.js';

/** A relay the coordinator offered, as the client needs it. */
export interface TunnelCandidate {
  /** Relay id. */
  readonly id: string;
  /** Where to open the session. */
  readonly tunnel: Endpoint;
  /** Where to probe (relays answer probes on the tunnel port; may be the same). */
  readonly probe: Endpoint;
  /** The coordinator's whole-path estimate, ms. */
  readonly estimateMs?: number;
  /** Relay→origin part of the path, ms (see {@link RelaySelector}). Default 0. */
  readonly restMs?: number;
}

/** Options of a {@link TunnelClient}. */
export interface TunnelClientInit {
  /** 16 lowercase hex digits, from the ticket. */
  readonly sessionId: string;
  /** The ticket bytes (opaque to the client). */
  readonly ticket: Uint8Array;
  /** The 32-byte session key the game backend handed out with the ticket. */
  readonly sessionKey: Uint8Array;
  /**
   * FEC modes offered, best first; the relay takes the first it enables and protects
   * downstream with its own settings for it. Default `['dup', 'rs', 'off']`: at game
   * rates a few-ms Reed-Solomon hold closes groups of one packet, so spaced copies
   * protect as well for less.
   */
  readonly fecModes?: readonly string[];
  /** Selection rule tuning. Default: the selector's defaults. */
  readonly selector?: RelaySelectorInit;
  /** Probe period of the current relay, ms (bounds failure detection). Default {@link C.PROBE_CURRENT_INTERVAL_MS_DEFAULT}. */
  readonly probeCurrentIntervalMs?: number;
  /** Probe period of the backup, ms. Default {@link C.PROBE_BACKUP_INTERVAL_MS_DEFAULT}. */
  readonly probeBackupIntervalMs?: number;
  /** Probe period of the other candidates, ms. Default {@link C.PROBE_OTHER_INTERVAL_MS_DEFAULT}. */
  readonly probeOtherIntervalMs?: number;
  /** Give up when no session opens within this long of the first candidates, ms. Default {@link C.CONNECT_TIMEOUT_MS_DEFAULT}. */
  readonly connectTimeoutMs?: number;
  /** Path reports for the coordinator this often, ms. Default {@link C.REPORT_INTERVAL_MS_DEFAULT}. */
  readonly reportIntervalMs?: number;
  /** Keep a warm backup session. Default true. */
  readonly warmBackup?: boolean;
}

/** What a switch looks like to the application. */
export interface PathInfo {
  /** The relay carrying traffic, or undefined while none is usable. */
  readonly relayId: string | undefined;
  /** The warm backup, if any. */
  readonly backupId: string | undefined;
  /** The relay before this change. */
  readonly previousId: string | undefined;
  /** `initial`, `better-path`, `failover`, … */
  readonly reason: string;
  /** Smoothed client→relay RTT, ms. */
  readonly rttMs: number | undefined;
  /** Probe loss to the relay, fraction. */
  readonly lossFraction: number;
  /** FEC mode the relay agreed to (`rs`, `dup`, `off`). */
  readonly fecMode: string | undefined;
  /** When it changed, ms (the driver's clock). */
  readonly atMs: number;
}

/** One per-relay path figure for the coordinator (`POST /v1/reports`). */
export interface PathReport {
  readonly relayId: string;
  readonly rttMs: number;
  readonly jitterMs: number;
  readonly lossFraction: number;
  readonly samples: number;
}

/** What the core tells its driver. */
export type TunnelClientEvent =
  /** The first session is open: `connect()` resolves. */
  | { readonly type: 'open'; readonly relayId: string; readonly fecMode: string }
  /** A datagram from the origin (a copy the app may keep). */
  | { readonly type: 'message'; readonly bytes: Uint8Array }
  /** The current relay changed (every switch, including the first). */
  | { readonly type: 'path'; readonly info: PathInfo }
  /** Measurements to report to the coordinator. */
  | { readonly type: 'report'; readonly reports: readonly PathReport[] }
  /** A relay challenged the client's (new) address and was answered: the session follows the client there. */
  | { readonly type: 'pathChallenge'; readonly relayId: string }
  /** The connection cannot continue (a ticket refusal, no relay): `code` is a stable `SLIP_ERR_*`. */
  | { readonly type: 'failed'; readonly code: string; readonly message: string };

/** Counters of a connection; see {@link TunnelClient.stats}. */
export interface TunnelStats {
  /** Relay carrying traffic now. */
  readonly relayId: string | undefined;
  readonly backupId: string | undefined;
  /** Smoothed RTT to the current relay, ms. */
  readonly rttMs: number | undefined;
  /** FEC mode of the current relay's session. */
  readonly fecMode: string | undefined;
  /** Upstream FEC scheme now (e.g. `dup×1@17ms`). */
  readonly upstreamScheme: string;
  /** Datagrams the app sent / received. */
  readonly packetsSent: number;
  readonly packetsReceived: number;
  /** Downstream wire shards judged and lost before FEC (every relay). */
  readonly wirePackets: number;
  readonly wireLost: number;
  /** Downstream loss before FEC, fraction (wireLost / wirePackets). */
  readonly lossBeforeFec: number;
  /** Downstream application packets lost after FEC, fraction (unrecoverable / (delivered + unrecoverable)). */
  readonly lossAfterFec: number;
  /** Packets rebuilt by FEC. */
  readonly recovered: number;
  /** Changes of the current relay after the first pick. */
  readonly switches: number;
  /** Failovers (dead current relay) among them. */
  readonly failovers: number;
  /** Whether upstream is being duplicated to the backup now. */
  readonly duplicating: boolean;
  /** Path challenges answered. */
  readonly pathChallenges: number;
}

type SessionState = 'none' | 'opening' | 'open' | 'refused' | 'closed';

class RelayLink {
  sessionState: SessionState = 'none';
  openAttempts = 0;
  /** Refusals (draining, full) in a row; while > 0 the relay is excluded from selection and reopened with backoff. */
  refusals = 0;
  nextOpenMs = Number.POSITIVE_INFINITY;
  fecMode = 'off';
  /**
   * The exit relay terminating this link's session (the accept's `exit`), or undefined
   * when the relay itself does. Links with the same exit share one FEC receiver.
   */
  exit: string | undefined = undefined;
  receiver: FecReceiver | undefined = undefined;
  /** Last packet of any kind from this relay, ms. */
  lastRxMs = Number.NEGATIVE_INFINITY;
  /** Last packet to its session (data or keepalive), ms. */
  lastTxMs = Number.NEGATIVE_INFINITY;
  nextProbeMs = 0;
  initialProbesLeft = C.PROBE_INITIAL_COUNT;
  lingerUntilMs = Number.POSITIVE_INFINITY;
  /** Plain (k = 0) downstream/upstream numbering when FEC is off. */
  plainSequence = 0;
  /** Application packets delivered from this relay's session. */
  delivered = 0;
  /** When the latest sessionAccept arrived, ms: the relay held the session then. */
  acceptedAtMs = Number.POSITIVE_INFINITY;
  /**
   * A session check found the open session silent and re-sent its open (see
   * {@link TunnelClient.checkSessionAfterOutage}); cleared by the accept (or a refusal).
   */
  rechecking = false;
  estimateMs: number | undefined;
  restMs: number;
  constructor(
    readonly id: string,
    public tunnel: Endpoint,
    public probe: Endpoint,
    estimateMs: number | undefined,
    restMs: number | undefined,
  ) {
    this.estimateMs = estimateMs;
    this.restMs = restMs ?? 0;
  }
}

interface OutstandingProbe {
  readonly relayId: string;
  readonly sentMs: number;
}

/** One datagram to send (a fresh buffer the driver may keep). */
export interface ClientTransmit {
  readonly to: Endpoint;
  readonly bytes: Uint8Array;
}

const SHARD_SCRATCH_BYTES = 1500;

/** `at`, or `t` when `t` is a deadline after `after` and earlier than `at` (pollTimeout's minimum, without a closure per call). */
function earlier(at: number, t: number | undefined, after: number): number {
  return t !== undefined && t > after && t < at ? t : at;
}

/**
 * The last few endpoints keyed, and their keys: a datagram's source is looked up by its
 * key, and drivers that reuse endpoint objects (the simulator's sockets) would otherwise
 * build and hash a fresh string per datagram. Checked by identity and by content.
 */
const KEY_CACHE_SIZE = 4;
const keyCacheEndpoints: (Endpoint | undefined)[] = new Array<Endpoint | undefined>(KEY_CACHE_SIZE).fill(undefined);
const keyCacheAddresses: string[] = new Array<string>(KEY_CACHE_SIZE).fill('');
const keyCachePorts: number[] = new Array<number>(KEY_CACHE_SIZE).fill(-1);
const keyCacheKeys: string[] = new Array<string>(KEY_CACHE_SIZE).fill('');
let keyCacheNext = 0;

function endpointKey(e: Endpoint): string {
  for (let i = 0; i < KEY_CACHE_SIZE; i++) {
    if (keyCacheEndpoints[i] === e && keyCacheAddresses[i] === e.address && keyCachePorts[i] === e.port) return keyCacheKeys[i]!;
  }
  const key = `${e.address}|${e.port}`;
  const i = keyCacheNext;
  keyCacheNext = (i + 1) % KEY_CACHE_SIZE;
  keyCacheEndpoints[i] = e;
  keyCacheAddresses[i] = e.address;
  keyCachePorts[i] = e.port;
  keyCacheKeys[i] = key;
  return key;
}

/** The client state machine; see the module comment. */
export class TunnelClient {
  private readonly high: number;
  private readonly low: number;
  private readonly fecModes: readonly string[];
  private readonly selector: RelaySelector;
  private readonly relays = new Map<string, RelayLink>();
  /**
   * Downstream FEC receivers of exit-terminated sessions, by exit id: every entry of
   * one exit carries the exit's numbering, so one receiver dedups copies that arrive
   * through different entries and keeps its state across a failover.
   */
  private readonly exitReceivers = new Map<string, FecReceiver>();
  private readonly byEndpoint = new Map<string, RelayLink>();
  private readonly outstanding = new Map<number, OutstandingProbe>();
  private readonly transmits: ClientTransmit[] = [];
  private readonly events: TunnelClientEvent[] = [];
  private readonly queue: Uint8Array[] = [];
  private readonly header = new PacketHeader();
  private readonly outHeader = new PacketHeader();
  private readonly scratch = new Uint8Array(SHARD_SCRATCH_BYTES);
  /** Upstream shards and delivered messages: views carved from slabs (proto/src/slab.ts), as in the relay core. */
  private readonly slabs = new SlabAllocator();
  /** What {@link targets} returns (reused: one per upstream packet would be garbage). */
  private readonly targetList: RelayLink[] = [];
  private readonly probeCurrentMs: number;
  private readonly probeBackupMs: number;
  private readonly probeOtherMs: number;
  private readonly connectTimeoutMs: number;
  private readonly reportIntervalMs: number;
  private readonly warmBackup: boolean;
  private readonly controller = new FecController({ overheadMax: C.UPSTREAM_FEC_OVERHEAD_MAX });
  private sender: FecSender | undefined = undefined;
  private currentId: string | undefined = undefined;
  private backupId: string | undefined = undefined;
  private opened = false;
  private failed = false;
  private closed = false;
  private startedMs: number | undefined = undefined;
  private probeSequence = 1;
  private duplicateUntilMs = Number.NEGATIVE_INFINITY;
  private nextReportMs = Number.POSITIVE_INFINITY;
  private switchCount = 0;
  private failoverCount = 0;
  private packetsSent = 0;
  private packetsReceived = 0;
  private wirePackets = 0;
  private wireLost = 0;
  private delivered = 0;
  private unrecoverable = 0;
  private recovered = 0;
  private pathChallenges = 0;
  private selectorDeadlineMs: number | undefined = undefined;
  /**
   * After the current relay was silent long enough to be suspect (or judged dead) and
   * answers again: when to check that its session still delivers, the count then, and
   * the opens the check has re-sent so far.
   */
  private sessionCheck: { readonly atMs: number; readonly relayId: string; readonly delivered: number; readonly reopens: number } | undefined = undefined;
  /** Time of the latest input, ms. */
  private lastNowMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly init: TunnelClientInit) {
    const id = sessionIdFromHex(init.sessionId);
    if (id === undefined) throw new RangeError(`TunnelClient: sessionId '${init.sessionId}' is not 16 hex digits`);
    if (init.sessionKey.length !== 32) throw new RangeError(`TunnelClient: sessionKey must be 32 bytes, got ${init.sessionKey.length}`);
    [this.high, this.low] = id;
    this.fecModes = init.fecModes ?? ['dup', 'rs', 'off'];
    this.selector = new RelaySelector(init.selector);
    this.probeCurrentMs = init.probeCurrentIntervalMs ?? C.PROBE_CURRENT_INTERVAL_MS_DEFAULT;
    this.probeBackupMs = init.probeBackupIntervalMs ?? C.PROBE_BACKUP_INTERVAL_MS_DEFAULT;
    this.probeOtherMs = init.probeOtherIntervalMs ?? C.PROBE_OTHER_INTERVAL_MS_DEFAULT;
    this.connectTimeoutMs = init.connectTimeoutMs ?? C.CONNECT_TIMEOUT_MS_DEFAULT;
    this.reportIntervalMs = init.reportIntervalMs ?? C.REPORT_INTERVAL_MS_DEFAULT;
    this.warmBackup = init.warmBackup ?? true;
  }

  // ------------------------------------------------------------------ getters

  /** The relay carrying traffic now. */
  get current(): string | undefined {
    return this.currentId;
  }
  /** The warm backup. */
  get backup(): string | undefined {
    return this.backupId;
  }
  /** Whether a session has opened (the connection is usable). */
  get isOpen(): boolean {
    return this.opened && !this.failed && !this.closed;
  }
  /** The selector (for its figures). */
  get relaySelector(): RelaySelector {
    return this.selector;
  }

  /** A snapshot of the counters. */
  stats(): TunnelStats {
    const current = this.currentId === undefined ? undefined : this.relays.get(this.currentId);
    const judged = this.delivered + this.unrecoverable;
    return {
      relayId: this.currentId,
      backupId: this.backupId,
      rttMs: this.currentId === undefined ? undefined : this.selector.figures(this.currentId)?.rttMs,
      fecMode: current?.sessionState === 'open' ? current.fecMode : undefined,
      upstreamScheme: describeScheme(this.sender?.scheme),
      packetsSent: this.packetsSent,
      packetsReceived: this.packetsReceived,
      wirePackets: this.wirePackets,
      wireLost: this.wireLost,
      lossBeforeFec: this.wirePackets === 0 ? 0 : this.wireLost / this.wirePackets,
      lossAfterFec: judged === 0 ? 0 : this.unrecoverable / judged,
      recovered: this.recovered,
      switches: this.switchCount,
      failovers: this.failoverCount,
      duplicating: this.duplicating(this.lastNowMs),
      pathChallenges: this.pathChallenges,
    };
  }

  // ------------------------------------------------------------------ inputs

  /**
   * Input: the coordinator's candidates, best first. Only the first
   * {@link C.PROBED_CANDIDATES_MAX} are probed. Relays in use are kept even when the
   * list drops them (a coordinator outage or a stale list must not end a session).
   */
  setCandidates(nowMs: number, candidates: readonly TunnelCandidate[]): void {
    if (this.closed || this.failed) return;
    this.startedMs ??= nowMs;
    const chosen = candidates.slice(0, C.PROBED_CANDIDATES_MAX);
    let stagger = 0;
    for (const c of chosen) {
      let link = this.relays.get(c.id);
      if (link === undefined) {
        link = new RelayLink(c.id, c.tunnel, c.probe, c.estimateMs, c.restMs);
        // Stagger the first probes so that candidates' bursts interleave rather than collide.
        link.nextProbeMs = nowMs + stagger;
        stagger += C.PROBE_INITIAL_SPACING_MS / Math.max(1, chosen.length);
        this.relays.set(c.id, link);
      } else {
        link.estimateMs = c.estimateMs;
        link.restMs = c.restMs ?? 0;
        if (link.sessionState === 'none' || link.sessionState === 'closed') {
          this.forgetEndpoint(link.tunnel, link);
          link.tunnel = c.tunnel;
        }
        if (link.probe.address !== c.probe.address || link.probe.port !== c.probe.port) {
          if (endpointKey(link.probe) !== endpointKey(link.tunnel)) this.forgetEndpoint(link.probe, link);
          link.probe = c.probe;
        }
      }
      this.byEndpoint.set(endpointKey(link.tunnel), link);
      this.byEndpoint.set(endpointKey(link.probe), link);
    }
    const listed = new Set(chosen.map((c) => c.id));
    for (const [id, link] of this.relays) {
      if (listed.has(id) || id === this.currentId || id === this.backupId) continue;
      if (link.sessionState === 'open' || link.sessionState === 'opening') this.closeSession(link);
      this.relays.delete(id);
      this.forgetEndpoints(link);
    }
    this.selector.setCandidates(
      nowMs,
      [...this.relays.values()].map((l) => ({ id: l.id, estimateMs: l.estimateMs, restMs: l.restMs })),
    );
    if (this.nextReportMs === Number.POSITIVE_INFINITY) this.nextReportMs = nowMs + this.reportIntervalMs;
    this.afterInput(nowMs);
  }

  /** Drops `endpoint`'s entry if it still points at `link` (another relay may have taken the address since). */
  private forgetEndpoint(endpoint: Endpoint, link: RelayLink): void {
    const key = endpointKey(endpoint);
    if (this.byEndpoint.get(key) === link) this.byEndpoint.delete(key);
  }

  private forgetEndpoints(link: RelayLink): void {
    this.forgetEndpoint(link.tunnel, link);
    this.forgetEndpoint(link.probe, link);
  }

  /** Input: one datagram received on the client's socket. `bytes` is read during the call only. */
  handleDatagram(nowMs: number, from: Endpoint, bytes: Uint8Array): void {
    if (this.closed || this.failed) return;
    const h = this.header;
    if (parseHeader(bytes, h) !== 0) return;
    if (h.sessionIdHigh !== this.high || h.sessionIdLow !== this.low) return;
    if (h.type === PacketType.ProbeReply) {
      this.onProbeReply(nowMs, from, bytes);
      this.afterInput(nowMs);
      return;
    }
    const link = this.byEndpoint.get(endpointKey(from));
    if (link === undefined) return;
    this.heardFrom(nowMs, link);
    switch (h.type) {
      case PacketType.Data:
      case PacketType.Parity:
        this.onData(nowMs, link, bytes);
        break;
      case PacketType.Control:
        this.onControl(nowMs, link, bytes.subarray(HEADER_BYTES));
        break;
      case PacketType.PathChallenge:
        // The relay saw us from a new address (NAT rebinding): prove we hold the key.
        this.pathChallenges++;
        this.transmits.push({ to: link.tunnel, bytes: buildPathResponse(this.init.sessionKey, this.high, this.low, bytes.subarray(HEADER_BYTES)) });
        this.events.push({ type: 'pathChallenge', relayId: link.id });
        break;
      case PacketType.Close:
        this.onRelayClose(nowMs, link, bytes.subarray(HEADER_BYTES));
        break;
      default:
        break;
    }
    this.afterInput(nowMs);
  }

  /** Input: the deadline from {@link pollTimeout} has passed (early calls are harmless). */
  handleTimeout(nowMs: number): void {
    if (this.closed || this.failed) return;
    this.expireProbes(nowMs);
    this.sendProbes(nowMs);
    this.runOpens(nowMs);
    this.checkLiveness(nowMs);
    this.checkSessionAfterOutage(nowMs);
    for (const link of this.relays.values()) {
      if (link.receiver !== undefined) {
        // A receiver shared through an exit is advanced once per link: harmless (the second finds nothing due).
        link.receiver.handleTimeout(nowMs);
        this.drainReceiver(nowMs, link);
      }
      if (link.lingerUntilMs <= nowMs) {
        link.lingerUntilMs = Number.POSITIVE_INFINITY;
        if (link.id !== this.currentId && link.id !== this.backupId) this.closeSession(link);
      }
      if (link.sessionState === 'open' && nowMs - link.lastTxMs >= C.KEEPALIVE_MS) this.sendOpen(nowMs, link);
    }
    if (this.sender !== undefined) {
      this.sender.handleTimeout(nowMs);
      this.drainSender(nowMs);
    }
    if (nowMs >= this.nextReportMs) {
      this.nextReportMs = nowMs + this.reportIntervalMs;
      this.emitReport();
    }
    if (!this.opened && this.startedMs !== undefined && nowMs - this.startedMs >= this.connectTimeoutMs) {
      const tried = [...this.relays.keys()].join(', ') || 'none';
      this.fail(ErrorCode.NoRelay, `no relay opened a session within ${this.connectTimeoutMs} ms (candidates probed: ${tried}); check that the relays' tunnel ports are reachable over UDP`);
      return;
    }
    this.selector.handleTimeout(nowMs);
    this.afterInput(nowMs);
  }

  // ------------------------------------------------------------------ app commands

  /**
   * App command: send one datagram to the origin. Before the first session opens,
   * up to {@link C.QUEUE_BEFORE_OPEN_MAX} are queued (older ones dropped). Returns
   * false when it was dropped. Datagrams longer than {@link C.TUNNEL_PAYLOAD_BYTES_MAX}
   * go uncoded.
   */
  send(nowMs: number, payload: Uint8Array): boolean {
    if (this.closed || this.failed) return false;
    const link = this.currentLink();
    if (link === undefined) {
      // Full: the oldest is dropped for this one, and the caller hears of the loss.
      const dropping = this.queue.length >= C.QUEUE_BEFORE_OPEN_MAX;
      if (dropping) this.queue.shift();
      this.queue.push(payload.slice());
      return !dropping;
    }
    this.packetsSent++;
    this.sendData(nowMs, payload);
    return true;
  }

  /**
   * App command: the driver's socket changed (a new local port or network). Sends a
   * keepalive to the current and backup relays at once, so their path challenges —
   * and with them the sessions' move to the new address — do not wait for traffic.
   */
  rebound(nowMs: number): void {
    if (this.closed || this.failed) return;
    for (const id of [this.currentId, this.backupId]) {
      const link = id === undefined ? undefined : this.relays.get(id);
      if (link?.sessionState === 'open') this.sendOpen(nowMs, link);
    }
    this.afterInput(nowMs);
  }

  /** App command: end every session (authenticated Close to each relay); idempotent. */
  close(_nowMs: number): void {
    if (this.closed) return;
    for (const link of this.relays.values()) if (link.sessionState === 'open' || link.sessionState === 'opening') this.closeSession(link);
    this.closed = true;
  }

  // ------------------------------------------------------------------ outputs

  /** Output: the next event, or undefined. */
  pollEvent(): TunnelClientEvent | undefined {
    return this.events.shift();
  }

  /** Output: the next datagram to send, or undefined. */
  pollTransmit(): ClientTransmit | undefined {
    return this.transmits.shift();
  }

  /** Output: when to call {@link handleTimeout} next (ms), or undefined for never. */
  pollTimeout(): number | undefined {
    if (this.closed || this.failed) return undefined;
    // Only future deadlines: a state that is already due (a suspect relay) was acted on
    // by the input that brought it, and must not spin the driver's timer.
    const after = this.lastNowMs;
    let at = earlier(Number.POSITIVE_INFINITY, this.nextReportMs, after);
    for (const link of this.relays.values()) {
      at = earlier(at, link.nextProbeMs, after);
      if (link.sessionState === 'opening' || link.sessionState === 'refused') at = earlier(at, link.nextOpenMs, after);
      if (link.sessionState === 'open') at = earlier(at, link.lastTxMs + C.KEEPALIVE_MS, after);
      at = earlier(at, link.lingerUntilMs, after);
      if (link.receiver !== undefined) at = earlier(at, link.receiver.pollTimeout(), after);
    }
    for (const p of this.outstanding.values()) {
      at = earlier(at, p.sentMs + C.PROBE_TIMEOUT_MS, after);
      break; // insertion order: the oldest is first
    }
    if (this.sender !== undefined) at = earlier(at, this.sender.pollTimeout(), after);
    at = earlier(at, this.selectorDeadlineMs, after);
    const current = this.currentLink();
    // The liveness deadlines are never earlier than their floors (SUSPECT_AFTER_MS_MIN ≤
    // DEAD_AFTER_MS_MIN): while traffic flows, something else is due sooner, and they
    // need not be computed.
    if (current !== undefined && current.lastRxMs + C.SUSPECT_AFTER_MS_MIN < at) {
      at = earlier(at, current.lastRxMs + this.suspectAfterMs(current.id), after);
      at = earlier(at, current.lastRxMs + this.deadAfterMs(current.id), after);
    }
    at = earlier(at, this.duplicateUntilMs, after);
    at = earlier(at, this.sessionCheck?.atMs, after);
    const backup = this.backupId === undefined ? undefined : this.relays.get(this.backupId);
    if (backup?.sessionState === 'open' && backup.lastRxMs + C.DEAD_AFTER_MS_MIN < at) at = earlier(at, backup.lastRxMs + this.deadAfterMs(backup.id, this.probeBackupMs), after);
    if (!this.opened && this.startedMs !== undefined) at = earlier(at, this.startedMs + this.connectTimeoutMs, after);
    return Number.isFinite(at) ? at : undefined;
  }

  // ------------------------------------------------------------------ probing

  private probeIntervalMs(link: RelayLink, nowMs: number): number {
    if (link.initialProbesLeft > 0) return C.PROBE_INITIAL_SPACING_MS;
    if (link.id === this.currentId) return this.probeCurrentMs;
    // A dead relay, and every relay while none answers, is re-probed sooner (backoff from 250 ms).
    const recoveryMs = this.selector.recoveryProbeIntervalMs(nowMs, link.id) ?? Number.POSITIVE_INFINITY;
    return Math.min(recoveryMs, link.id === this.backupId ? this.probeBackupMs : this.probeOtherMs);
  }

  private sendProbes(nowMs: number): void {
    for (const link of this.relays.values()) {
      if (nowMs < link.nextProbeMs) continue;
      const seq = this.probeSequence;
      this.probeSequence = (this.probeSequence + 1) >>> 0 || 1;
      if (this.outstanding.size >= C.PROBES_OUTSTANDING_MAX) {
        const oldest = this.outstanding.keys().next().value as number;
        const p = this.outstanding.get(oldest)!;
        this.outstanding.delete(oldest);
        this.selector.handleProbeResult(nowMs, p.relayId, undefined);
      }
      this.outstanding.set(seq, { relayId: link.id, sentMs: nowMs });
      this.transmits.push({ to: link.probe, bytes: buildProbe(this.high, this.low, seq, nowMs, PROBE_BODY_BYTES_WITH_STATUS) });
      if (link.initialProbesLeft > 0) link.initialProbesLeft--;
      link.nextProbeMs = nowMs + this.probeIntervalMs(link, nowMs);
    }
  }

  private expireProbes(nowMs: number): void {
    for (const [seq, p] of this.outstanding) {
      if (nowMs - p.sentMs < C.PROBE_TIMEOUT_MS) break;
      this.outstanding.delete(seq);
      this.selector.handleProbeResult(nowMs, p.relayId, undefined);
    }
  }

  private onProbeReply(nowMs: number, from: Endpoint, bytes: Uint8Array): void {
    const seq = this.header.sequence;
    const p = this.outstanding.get(seq);
    if (p === undefined) return;
    const fields = parseProbeReplyBody(bytes.subarray(HEADER_BYTES));
    if (fields === undefined) return;
    this.outstanding.delete(seq);
    const link = this.relays.get(p.relayId);
    if (link === undefined) return;
    this.heardFrom(nowMs, link);
    // The relay holds no such session though it accepted ours before this probe left:
    // it restarted (or swept it) since. Only a probe sent after the accept counts (an
    // earlier one may have crossed the open on its way), and only a reply from the
    // address probed (as a Close must come from the relay's): probe sequence numbers are
    // easy to guess, and a forged reply must not make a healthy session reopen.
    if (fields.sessionUnknown && p.sentMs >= link.acceptedAtMs && from.port === link.probe.port && from.address === link.probe.address) this.reopenUnknownSession(nowMs, link);
    // Time the relay held the probe is not path delay.
    const rttMs = Math.max(0, nowMs - p.sentMs - Math.max(0, fields.relaySendMs - fields.relayReceiveMs));
    this.selector.handleProbeResult(nowMs, link.id, rttMs);
  }

  // ------------------------------------------------------------------ sessions

  private sendOpen(nowMs: number, link: RelayLink): void {
    link.lastTxMs = nowMs;
    this.transmits.push({ to: link.tunnel, bytes: buildControlPacket(this.high, this.low, { type: 'sessionOpen', ticket: this.init.ticket, fecModes: [...this.fecModes] }) });
  }

  private ensureSession(nowMs: number, link: RelayLink): void {
    link.lingerUntilMs = Number.POSITIVE_INFINITY;
    if (link.sessionState === 'open' || link.sessionState === 'opening' || link.sessionState === 'refused') return;
    link.sessionState = 'opening';
    link.openAttempts = 0;
    link.nextOpenMs = nowMs;
  }

  private runOpens(nowMs: number): void {
    for (const link of this.relays.values()) {
      if (link.sessionState === 'refused' && nowMs >= link.nextOpenMs) {
        // A refusal (draining, full) is temporary: ask again, still excluded from selection until it accepts.
        link.sessionState = 'opening';
        link.openAttempts = 0;
      }
      if (link.sessionState !== 'opening' || nowMs < link.nextOpenMs) continue;
      if (link.openAttempts >= C.OPEN_ATTEMPTS_MAX) {
        if (link.refusals > 0) {
          // A retry nobody answered: keep backing off (a restart may take a while).
          link.sessionState = 'refused';
          link.nextOpenMs = nowMs + refusedRetryMs(link.refusals);
          continue;
        }
        link.sessionState = 'none';
        link.nextOpenMs = Number.POSITIVE_INFINITY;
        this.selector.markUnreachable(nowMs, link.id);
        continue;
      }
      link.openAttempts++;
      link.nextOpenMs = nowMs + C.OPEN_RETRY_MS;
      this.sendOpen(nowMs, link);
    }
  }

  private closeSession(link: RelayLink): void {
    if (link.sessionState === 'open' || link.sessionState === 'opening') this.transmits.push({ to: link.tunnel, bytes: buildClientClose(this.init.sessionKey, this.high, this.low) });
    if (link.sessionState !== 'refused') link.sessionState = 'closed';
    link.receiver = undefined;
    link.nextOpenMs = Number.POSITIVE_INFINITY;
  }

  private onControl(nowMs: number, link: RelayLink, body: Uint8Array): void {
    const decoded = decodeControl(body);
    if (!decoded.ok) return;
    const m = decoded.message;
    if (m.type === 'fecStats') {
      if (link.sessionState === 'open') this.onFecStats(nowMs, link, fecStatsFromMessage(nowMs, m));
      return;
    }
    if (m.type === 'sessionAccept') {
      if (link.sessionState !== 'opening' && link.sessionState !== 'open') return;
      const first = link.sessionState === 'opening';
      link.sessionState = 'open';
      link.acceptedAtMs = nowMs;
      link.nextOpenMs = Number.POSITIVE_INFINITY;
      if (link.refusals > 0) {
        // A retried open succeeded: the relay may be chosen again. Unless it is, its session lingers and closes.
        link.refusals = 0;
        if (link.id !== this.currentId && link.id !== this.backupId && link.lingerUntilMs === Number.POSITIVE_INFINITY) link.lingerUntilMs = nowMs + C.LINGER_MS;
        this.selector.setExcluded(nowMs, link.id, false);
      }
      if (!first && m.exit !== link.exit) {
        // The relay now terminates the session itself (its exit died) or another exit
        // does: downstream numbering starts afresh, so does this link's receiver.
        link.fecMode = m.fecMode;
        link.exit = m.exit;
        link.receiver = this.receiverFor(m.fecMode, m.exit);
      }
      link.rechecking = false;
      if (first) {
        link.fecMode = m.fecMode;
        link.exit = m.exit;
        link.receiver = this.receiverFor(m.fecMode, m.exit);
        if (m.fecMode !== 'off' && this.sender === undefined) {
          // Until the controller has an estimate, one copy spaced a packet gap or so apart.
          this.sender = new FecSender({ maxPayloadBytes: C.TUNNEL_PAYLOAD_BYTES_MAX, scheme: { mode: 'duplicate', copies: 1, spacingMs: 10 } });
        }
        if (link.id === this.currentId) this.onCurrentReady(nowMs, link);
      }
      return;
    }
    if (m.type === 'sessionReject') this.onRefused(nowMs, link, m.reason, m.message);
  }

  /** A downstream receiver for a session in `fecMode` terminated by `exit` (shared per exit) or by the relay itself (undefined). */
  private receiverFor(fecMode: string, exit: string | undefined): FecReceiver | undefined {
    if (fecMode === 'off') return undefined;
    if (exit === undefined) return new FecReceiver({ maxPayloadBytes: C.TUNNEL_PAYLOAD_BYTES_MAX });
    let receiver = this.exitReceivers.get(exit);
    if (receiver === undefined) this.exitReceivers.set(exit, (receiver = new FecReceiver({ maxPayloadBytes: C.TUNNEL_PAYLOAD_BYTES_MAX })));
    return receiver;
  }

  /**
   * The relay said it holds no such session (it restarted): open it there again.
   * Reopening is all an unauthenticated Close (or a probe reply's `UnknownSession` status)
   * can trigger, so a spoofer gains nothing.
   */
  private reopenUnknownSession(nowMs: number, link: RelayLink): void {
    if (link.sessionState !== 'open') return;
    link.sessionState = 'opening';
    link.openAttempts = 0;
    link.nextOpenMs = nowMs;
    link.receiver = undefined;
  }

  private onRelayClose(nowMs: number, link: RelayLink, body: Uint8Array): void {
    // A header-only Close is "unknown session" from a relay whose full answer would have
    // been larger than the (small) datagram that caused it.
    if (body.length === 0) return this.reopenUnknownSession(nowMs, link);
    // A relay MACs its Close for a session it holds; anything else is unauthenticated.
    const authentic = openRelayClose(this.init.sessionKey, this.high, this.low, body);
    const decoded = decodeControl(authentic ?? body);
    if (!decoded.ok || decoded.message.type !== 'sessionReject') return;
    const { reason, message } = decoded.message;
    if (authentic === undefined) {
      // Only "unknown session" comes without a MAC (the relay has no key for it: it
      // restarted); any other unauthenticated Close could end a session for anyone
      // knowing its id.
      if (reason === ErrorCode.UnknownSession) this.reopenUnknownSession(nowMs, link);
      return;
    }
    link.sessionState = 'closed';
    link.receiver = undefined;
    if (reason === ErrorCode.TicketRevoked) {
      this.fail(reason, `relay ${link.id} ended the session: the ticket was revoked (${message})`);
      return;
    }
    if (reason === ErrorCode.SessionIdle) {
      // Our keepalives should prevent this; reopen if the relay is still wanted.
      if (link.id === this.currentId || link.id === this.backupId) this.ensureSession(nowMs, link);
      return;
    }
    this.selector.markUnreachable(nowMs, link.id);
  }

  private onRefused(nowMs: number, link: RelayLink, code: string, message: string): void {
    // A session check's open is answered like any open: a restarted relay may be full now.
    if (link.sessionState !== 'opening' && !(link.sessionState === 'open' && link.rechecking)) return;
    link.rechecking = false;
    // A reject is unauthenticated: once the connection is open, a ticket refusal only
    // takes this relay out (a spoofed one must not end a working connection; a real
    // revocation ends the open sessions with an authenticated Close).
    if (isTicketRefusal(code) && !this.opened) {
      this.fail(code, `relay ${link.id} refused the ticket: ${code}: ${message}`);
      return;
    }
    link.sessionState = 'refused';
    link.refusals++;
    link.nextOpenMs = nowMs + refusedRetryMs(link.refusals);
    link.receiver = undefined;
    this.selector.setExcluded(nowMs, link.id, true);
    const usable = [...this.relays.values()].some((l) => l.sessionState !== 'refused');
    if (!usable) this.fail(code, `every candidate relay refused the session; last: relay ${link.id}: ${code}: ${message}`);
  }

  private onCurrentReady(nowMs: number, link: RelayLink): void {
    if (!this.opened) {
      this.opened = true;
      this.events.push({ type: 'open', relayId: link.id, fecMode: link.fecMode });
    }
    link.lastRxMs = Math.max(link.lastRxMs, nowMs);
    while (this.queue.length > 0) {
      this.packetsSent++;
      this.sendData(nowMs, this.queue.shift()!);
    }
  }

  // ------------------------------------------------------------------ selection and liveness

  private applySelection(nowMs: number, e: SelectionEvent): void {
    const previous = this.currentId;
    if (e.reason === 'relay-back' && e.currentId !== undefined && this.sessionCheck?.relayId !== e.currentId) {
      // Usually armed already by the answer that ended the silence (see heardFrom).
      const link = this.relays.get(e.currentId);
      if (link !== undefined) this.armSessionCheck(nowMs, link, 0);
    }
    this.backupId = this.warmBackup ? e.backupId : undefined;
    if (e.currentId !== previous) {
      this.currentId = e.currentId;
      if (previous !== undefined && e.currentId !== undefined) {
        this.switchCount++;
        if (e.reason === 'failover') this.failoverCount++;
      }
      const figures = e.currentId === undefined ? undefined : this.selector.figures(e.currentId);
      const link = e.currentId === undefined ? undefined : this.relays.get(e.currentId);
      if (link !== undefined) {
        this.ensureSession(nowMs, link);
        link.nextProbeMs = Math.min(link.nextProbeMs, nowMs);
        // A promoted backup was heard from recently; count from now so it gets a full liveness window.
        link.lastRxMs = Math.max(link.lastRxMs, nowMs);
        if (link.sessionState === 'open') this.onCurrentReady(nowMs, link);
      }
      this.events.push({
        type: 'path',
        info: { relayId: e.currentId, backupId: this.backupId, previousId: previous, reason: e.reason, rttMs: figures?.rttMs, lossFraction: figures?.loss ?? 0, fecMode: link?.sessionState === 'open' ? link.fecMode : undefined, atMs: nowMs },
      });
    }
    if (this.backupId !== undefined) {
      const b = this.relays.get(this.backupId);
      if (b !== undefined) {
        if (b.sessionState !== 'open') b.lastRxMs = Math.max(b.lastRxMs, nowMs);
        this.ensureSession(nowMs, b);
        // It was probed at the slow rate until now.
        b.nextProbeMs = Math.min(b.nextProbeMs, nowMs + this.probeBackupMs);
      }
    }
    for (const link of this.relays.values()) {
      // A relay judged dead (or every relay, while none answers) is re-probed sooner from now on.
      link.nextProbeMs = Math.min(link.nextProbeMs, nowMs + this.probeIntervalMs(link, nowMs));
      // It may also have lost our session (a crash and restart, where a keepalive would
      // re-create it under a fresh downstream numbering our receiver would reject): drop
      // ours now, so that choosing it again opens a fresh one.
      if (link.id !== this.currentId && (link.sessionState === 'open' || link.sessionState === 'opening') && this.selector.isUnreachable(link.id)) this.closeSession(link);
    }
    for (const link of this.relays.values()) {
      if (link.id === this.currentId || link.id === this.backupId) continue;
      // A relay retrying after a refusal keeps retrying: its accept is what lets it be chosen again.
      if ((link.sessionState === 'open' || link.sessionState === 'opening') && link.refusals === 0 && link.lingerUntilMs === Number.POSITIVE_INFINITY) link.lingerUntilMs = nowMs + C.LINGER_MS;
    }
  }

  // Called after every input (pollTimeout, checkLiveness): the estimate's RTT and
  // variation are read directly, without a figures snapshot.
  // Never below SUSPECT_AFTER_MS_MIN (deadAfterMs: DEAD_AFTER_MS_MIN): pollTimeout relies on it.
  private suspectAfterMs(id: string): number {
    const f = this.selector.rttEstimate(id);
    const srtt = f?.rttMs ?? 0;
    return Math.max(C.SUSPECT_AFTER_MS_MIN, 1.5 * this.probeCurrentMs + srtt + 4 * (f?.jitterMs ?? 0));
  }

  private deadAfterMs(id: string, probeMs = this.probeCurrentMs): number {
    const f = this.selector.rttEstimate(id);
    const suspect = Math.max(C.SUSPECT_AFTER_MS_MIN, 1.5 * probeMs + (f?.rttMs ?? 0) + 4 * (f?.jitterMs ?? 0));
    return Math.max(C.DEAD_AFTER_MS_MIN, 2 * suspect);
  }

  private duplicating(nowMs: number): boolean {
    if (nowMs < this.duplicateUntilMs) return true;
    const current = this.currentLink();
    return current !== undefined && nowMs - current.lastRxMs >= this.suspectAfterMs(current.id);
  }

  private checkLiveness(nowMs: number): void {
    const current = this.currentId === undefined ? undefined : this.relays.get(this.currentId);
    if (current !== undefined && current.sessionState === 'open' && nowMs - current.lastRxMs >= this.deadAfterMs(current.id)) {
      this.selector.markSilent(nowMs, current.id);
    }
    const backup = this.backupId === undefined ? undefined : this.relays.get(this.backupId);
    if (backup !== undefined && backup.sessionState === 'open' && nowMs - backup.lastRxMs >= this.deadAfterMs(backup.id, this.probeBackupMs)) {
      this.selector.markUnreachable(nowMs, backup.id);
    }
  }

  /**
   * A packet from `link`. When it ends a silence of the current relay long enough to
   * make it suspect, the relay may have crashed and restarted meanwhile, too quickly to
   * be judged dead, and lost our session: arm a session check.
   */
  private heardFrom(nowMs: number, link: RelayLink): void {
    if (this.sessionCheck === undefined && link.id === this.currentId && link.sessionState === 'open' && nowMs - link.lastRxMs >= this.suspectAfterMs(link.id)) this.armSessionCheck(nowMs, link, 0);
    link.lastRxMs = nowMs;
  }

  private armSessionCheck(nowMs: number, link: RelayLink, reopens: number): void {
    const srtt = this.selector.figures(link.id)?.rttMs ?? 0;
    this.sessionCheck = { atMs: nowMs + Math.max(C.RECOVERY_SESSION_CHECK_MS, 3 * srtt), relayId: link.id, delivered: link.delivered, reopens };
  }

  /**
   * The current relay answers again after a silence (suspect or dead), but if its
   * session has delivered nothing since, the relay probably restarted meanwhile and lost
   * it (with small datagrams it cannot say so: its "unknown session" answer would be
   * larger than what it got). Re-send the session's open: a relay that still holds the
   * session just accepts again, one that lost it re-creates it with a downstream
   * numbering that starts afresh, so the link gets a fresh FEC receiver now (not at the
   * accept: the re-created session's data may overtake a lost accept, and a receiver
   * replaced after delivering some of it would deliver their copies again). Nothing was
   * delivered since the outage, so the fresh receiver cannot deliver anything twice.
   * The session stays usable meanwhile, so a check that was wrong (loss, or a game whose
   * server is quiet) costs one datagram each way and no stall. Re-sent up to
   * {@link C.SESSION_RECHECK_OPENS_MAX} times while unanswered; then the session is
   * reopened outright (sends queue until it opens; a relay that never accepts is
   * marked unreachable). See {@link C.RECOVERY_SESSION_CHECK_MS}.
   */
  private checkSessionAfterOutage(nowMs: number): void {
    const check = this.sessionCheck;
    if (check === undefined || nowMs < check.atMs) return;
    this.sessionCheck = undefined;
    const link = this.currentLink();
    if (link === undefined || link.id !== check.relayId) {
      // No longer the current relay (or no longer open): the check lapses.
      const checked = this.relays.get(check.relayId);
      if (checked !== undefined) checked.rechecking = false;
      return;
    }
    if (link.delivered !== check.delivered || (check.reopens > 0 && !link.rechecking)) {
      // Delivering, or the relay accepted the re-sent open: the session is there.
      link.rechecking = false;
      return;
    }
    if (check.reopens < C.SESSION_RECHECK_OPENS_MAX) {
      if (check.reopens === 0) link.receiver = this.receiverFor(link.fecMode, link.exit);
      link.rechecking = true;
      this.sendOpen(nowMs, link);
      this.armSessionCheck(nowMs, link, check.reopens + 1);
      return;
    }
    link.rechecking = false;
    link.sessionState = 'opening';
    link.openAttempts = 0;
    link.nextOpenMs = nowMs;
    link.receiver = undefined;
  }

  private currentLink(): RelayLink | undefined {
    if (this.currentId === undefined) return undefined;
    const link = this.relays.get(this.currentId);
    return link?.sessionState === 'open' ? link : undefined;
  }

  // ------------------------------------------------------------------ data

  private sendData(nowMs: number, payload: Uint8Array): void {
    const current = this.currentLink();
    if (current === undefined) return;
    const sender = this.sender;
    if (sender !== undefined && payload.length <= sender.maxPayloadBytes) {
      this.controller.handlePacket(nowMs, payload.length);
      sender.push(nowMs, payload);
      this.drainSender(nowMs);
      return;
    }
    for (const link of this.targets(nowMs)) {
      const h = this.outHeader;
      h.type = PacketType.Data;
      h.flags = link === current ? 0 : HeaderFlag.ViaBackup;
      h.sessionIdHigh = this.high;
      h.sessionIdLow = this.low;
      h.sequence = link.plainSequence = (link.plainSequence + 1) >>> 0;
      h.fecGroup = h.fecIndex = h.fecDataCount = h.fecParityCount = 0;
      const out = new Uint8Array(HEADER_BYTES + payload.length);
      writeHeader(h, out);
      out.set(payload, HEADER_BYTES);
      link.lastTxMs = nowMs;
      this.transmits.push({ to: link.tunnel, bytes: out });
    }
  }

  /** The relays an upstream packet goes to now: the current one, and the backup while duplicating. (One reused array: read it before the next call.) */
  private targets(nowMs: number): RelayLink[] {
    const out = this.targetList;
    out.length = 0;
    const current = this.currentLink();
    if (current === undefined) return out;
    out.push(current);
    if (this.backupId !== undefined && this.duplicating(nowMs)) {
      const b = this.relays.get(this.backupId);
      if (b !== undefined && b.sessionState === 'open') out.push(b);
    }
    return out;
  }

  private drainSender(nowMs: number): void {
    const sender = this.sender!;
    const targets = this.targets(nowMs);
    const h = this.outHeader;
    for (let tx = sender.pollTransmit(this.scratch); tx !== undefined; tx = sender.pollTransmit(this.scratch)) {
      h.type = tx.index < tx.k ? PacketType.Data : PacketType.Parity;
      h.sessionIdHigh = this.high;
      h.sessionIdLow = this.low;
      h.sequence = tx.seq;
      h.fecGroup = tx.groupId;
      h.fecIndex = tx.index;
      h.fecDataCount = tx.k;
      h.fecParityCount = tx.r;
      for (const link of targets) {
        if (link.fecMode === 'off') continue; // such a relay gets plain copies only (rare: the client offers rs first)
        h.flags = (tx.kind === FecShardKind.Duplicate ? HeaderFlag.Duplicate : 0) | (link === targets[0] ? 0 : HeaderFlag.ViaBackup);
        const out = this.slabs.view(HEADER_BYTES + tx.length);
        writeHeader(h, out);
        out.set(this.scratch.subarray(0, tx.length), HEADER_BYTES);
        link.lastTxMs = nowMs;
        this.transmits.push({ to: link.tunnel, bytes: out });
      }
    }
  }

  private onData(nowMs: number, link: RelayLink, bytes: Uint8Array): void {
    if (link.sessionState !== 'open') return;
    const h = this.header;
    const payload = bytes.subarray(HEADER_BYTES);
    if (h.fecDataCount === 0 || link.receiver === undefined) {
      if (h.type !== PacketType.Data) return;
      link.delivered++;
      this.deliver(payload);
      return;
    }
    link.receiver.handleShard(nowMs, h.sequence, h.fecGroup, h.fecIndex, h.fecDataCount, h.fecParityCount, payload);
    this.drainReceiver(nowMs, link);
  }

  private drainReceiver(nowMs: number, link: RelayLink): void {
    const receiver = link.receiver!;
    for (let n = receiver.pollDelivered(this.scratch); n >= 0; n = receiver.pollDelivered(this.scratch)) {
      link.delivered++;
      this.deliver(this.scratch.subarray(0, n));
    }
    // A receiver shared through an exit reports through the current relay when that is one of its entries.
    const current = this.currentLink();
    const carrier = link.exit !== undefined && current !== undefined && current.receiver === receiver ? current : link;
    for (let e = receiver.pollEvent(); e !== undefined; e = receiver.pollEvent()) this.onReceiverStats(nowMs, carrier, e.stats);
  }

  private onReceiverStats(nowMs: number, link: RelayLink, s: FecIntervalStats): void {
    this.wirePackets += s.wirePackets;
    this.wireLost += s.wireLost;
    this.delivered += s.received + s.recovered;
    this.recovered += s.recovered;
    this.unrecoverable += s.unrecoverable;
    // The relay's sender adapts its downstream protection to what we measured: tell it.
    // (This also keeps the session and the NAT mapping alive, like any packet of ours.)
    if (link.sessionState === 'open' && (s.wirePackets > 0 || s.received > 0)) {
      link.lastTxMs = nowMs;
      this.transmits.push({ to: link.tunnel, bytes: buildControlPacket(this.high, this.low, fecStatsMessage(s)) });
    }
    if (link.id !== this.currentId) return;
    if (s.wirePackets >= 4 && s.lossRate >= C.DUPLICATE_LOSS_RATE) this.duplicateUntilMs = nowMs + C.DUPLICATE_HOLD_MS;
  }

  /** The current relay's report of what its receiver measured upstream drives our sender's controller. */
  private onFecStats(nowMs: number, link: RelayLink, stats: FecIntervalStats): void {
    if (link.id !== this.currentId || this.sender === undefined) return;
    this.controller.handleStats(nowMs, stats, this.selector.figures(link.id)?.rttMs);
    if (this.controller.lastDecision !== undefined && this.controller.scheme !== this.sender.scheme) this.sender.setScheme(nowMs, this.controller.scheme);
  }

  private deliver(payload: Uint8Array): void {
    this.packetsReceived++;
    // A copy that outlives the receiver's scratch, carved from the slab (never rewritten).
    const bytes = this.slabs.view(payload.length);
    bytes.set(payload);
    this.events.push({ type: 'message', bytes });
  }

  // ------------------------------------------------------------------ misc

  private emitReport(): void {
    const reports: PathReport[] = [];
    for (const link of this.relays.values()) {
      const f = this.selector.figures(link.id);
      if (f === undefined || f.rttMs === undefined || f.samples === 0) continue;
      reports.push({ relayId: link.id, rttMs: Math.min(60_000, f.stableRttMs ?? f.rttMs), jitterMs: Math.min(60_000, f.stableJitterMs), lossFraction: f.loss, samples: f.samples });
    }
    if (reports.length > 0) this.events.push({ type: 'report', reports });
  }

  private fail(code: string, message: string): void {
    if (this.failed) return;
    this.failed = true;
    for (const link of this.relays.values()) if (link.sessionState === 'open' || link.sessionState === 'opening') this.closeSession(link);
    this.events.push({ type: 'failed', code, message });
  }

  /** After every input: apply the selector's decisions and send what became due. */
  private afterInput(nowMs: number): void {
    this.lastNowMs = Math.max(this.lastNowMs, nowMs);
    if (this.failed || this.closed) return;
    for (let e = this.selector.pollEvent(); e !== undefined; e = this.selector.pollEvent()) this.applySelection(nowMs, e);
    this.selectorDeadlineMs = this.selector.pollTimeout();
    this.runOpens(nowMs);
    this.sendProbes(nowMs);
  }
}

/** Backoff before reopening a relay that refused `refusals` times in a row, ms. */
function refusedRetryMs(refusals: number): number {
  return Math.min(C.REFUSED_RETRY_MS_MAX, C.REFUSED_RETRY_MS_MIN * 2 ** Math.min(16, refusals - 1));
}

function describeScheme(scheme: FecScheme | undefined): string {
  if (scheme === undefined) return 'off';
  switch (scheme.mode) {
    case 'off':
      return 'off';
    case 'duplicate':
      return `dup×${scheme.copies}@${scheme.spacingMs}ms`;
    case 'rs':
      return `rs(${scheme.k},${scheme.r})×${scheme.interleave}`;
  }
}
