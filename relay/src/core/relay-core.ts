/**
 * The relay's forwarding logic as one sans-IO state machine (quinn-proto / str0m
 * style). It never touches a socket, a timer or a clock: the driver (real sockets in
 * `relay/src/relay.ts`, virtual ones in `relay/src/sim-driver.ts`) feeds it and drains
 * it.
 *
 * Inputs: {@link RelayCore.handleDatagram}, {@link RelayCore.handleTimeout}, the TCP
 * admission calls, health-check results, and app commands ({@link RelayCore.reconfigure},
 * {@link RelayCore.revoke}, {@link RelayCore.drain}, {@link RelayCore.close}).
 *
 * Outputs, in this order after every input (the str0m rule):
 * 1. drain {@link RelayCore.pollEvent} until undefined — it announces the sockets to
 *    open before any datagram is sent on them, and session starts/ends for the log;
 * 2. drain {@link RelayCore.pollTransmit} until undefined — datagrams to send, each as
 *    `prefix` (optional) followed by `bytes`, both views the driver must not modify;
 * 3. arm one timer for {@link RelayCore.pollTimeout}.
 *
 * Sockets are numbered by the core. Kinds: `listener` (L4 UDP/TCP listen ports),
 * `upstream` (one origin-facing UDP socket per L4 flow or tunnel session: a flow keeps
 * its socket, and so its source port at the origin, for its whole life), `tunnel` (the
 * tunnel port) and `health` (UDP health checks).
 *
 * Abuse protection on the hot path: the stateless header check runs before any
 * lookup; per-source and per-session token buckets; replies to unauthenticated
 * packets never exceed the packet's size (checked in one place, {@link sendUnauthenticated});
 * session caps in total and per source; CIDR allow/deny; origins only from config or
 * from a ticket that names one the config allows.
 *
 * ## Exit relays
 * A ticket may name an exit relay (id and tunnel address, under the coordinator's
 * signature). The relay that finds its own id there is the session's **exit**: it holds
 * the one origin-facing socket, the FEC and the downstream numbering. Any other relay
 * is an **entry**: it verifies the ticket as always (so it never forwards for anyone
 * the coordinator did not admit, and only to the address the coordinator signed), opens
 * no origin socket, and passes the session's datagrams to the exit and back unchanged,
 * so FEC and sequence numbers run end to end between the SDK and the exit. The origin
 * sees one source address:port whichever entry the player uses.
 *
 * Authentication between relays: the exit treats an entry exactly as it treats a
 * client's new address — a packet from an unknown address is answered with a path
 * challenge, and the address joins the session only after a response MACed with the
 * session key, which every fleet relay unseals from the ticket with the fleet seal key.
 * We chose this over a fleet-MACed forward header because it adds no secret and no
 * per-packet MAC to the data path, reuses the challenge machinery and its
 * anti-amplification rule (a 40-byte challenge only for a ≥ 40-byte trigger; nothing
 * else for unvalidated senders), and gives an entry no more power than the player
 * itself has: it can reach only this session's origin. The cost is that validated
 * paths are then trusted by source address, as client addresses already are. An exit
 * session keeps up to {@link EXIT_PATHS_MAX} validated paths (current and backup entry,
 * the client if it talks to the exit directly); downstream goes to the path that carried
 * the latest upstream data.
 *
 * If the exit stops answering (see {@link RelayCore.checkExits}), the entry opens its
 * own origin socket and serves the session: the one case in which the origin sees a
 * new source address. Without an exit in the ticket nothing here changes.
 */
import type { KeyObject } from 'node:crypto';
import { decodeControl, encodeControl, type ControlMessageFields } from '../../../proto/src/control.js';
import { ErrorCode, type ErrorCodeValue } from '../../../proto/src/errors.js';
import { FecController, FecReceiver, FecSender, FEC_OFF, type FecScheme } from '../../../proto/src/fec/index.js';
import { HEADER_BYTES, HEADER_MAGIC, PacketHeader, PROTOCOL_VERSION, PacketType, parseHeader, quickCheck, sessionIdToHex } from '../../../proto/src/header.js';
import { encodeProxyV2, encodeSpp } from '../../../proto/src/proxy-protocol.js';
import { SlabAllocator } from '../../../proto/src/slab.js';
import { openSessionKey, verifyTicket } from '../../../proto/src/ticket.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import { cidrListMatches, type Cidr, hashString, rendezvousScore, splitHostPort } from './addr.js';
import { RateBucket, StatelessLimiter } from './bucket.js';
import type { HealthCheckSpec, LimitsSpec, OriginGroupSpec, RelayCoreConfig, RuleSpec, TunnelSpec } from './config-types.js';
import { EXIT_CHECK_INTERVAL_MS, EXIT_DEAD_AFTER_MS_DEFAULT, EXIT_KEEPALIVE_MS, EXIT_OPEN_TIMEOUT_MS, EXIT_PATHS_MAX, DATAGRAM_BYTES_MAX, PATH_CHALLENGE_TIMEOUT_MS, PATH_CHALLENGES_PENDING_MAX, SOURCE_IDLE_MS, SWEEP_INTERVAL_MS, TCP_CONNECT_TIMEOUT_MS_DEFAULT, UNAUTHENTICATED_BUCKETS, FEC_OVERHEAD_MAX_DEFAULT } from './constants.js';
import { buildPathResponse, CLOSE_MAC_BYTES, fecStatsFromMessage, fecStatsMessage, openRelayClose, PATH_MAC_BYTES, PATH_NONCE_BYTES, PROBE_BODY_BYTES_MIN, PROBE_BODY_BYTES_WITH_STATUS, PROBE_STATUS_OFFSET, ProbeStatus, relayCloseMac, verifyCloseMac, verifyPathResponseMac } from '../../../proto/src/wire.js';

/** Why a packet was dropped; indexes {@link RelayCore.drops}. Stable: they are metric labels. */
export const DropReason = {
  /** Failed the stateless header check or the full header parse. */
  Junk: 0,
  /** A source's packet/byte bucket was empty. */
  RateLimitedSource: 1,
  /** A session's packet/byte bucket was empty. */
  RateLimitedSession: 2,
  /** A CIDR allow/deny list refused the source. */
  Denied: 3,
  /** The session caps (total or per source) are reached. */
  SessionCap: 4,
  /** The relay is draining and takes no new sessions. */
  Draining: 5,
  /** Tunnel packet for a session this relay does not have. */
  UnknownSession: 6,
  /** A datagram on an origin-facing socket from anything but that flow's origin. */
  UnknownSource: 7,
  /** Tunnel packet from a new address not yet validated by a path challenge. */
  PathUnverified: 8,
  /** A reply would have been larger than the unauthenticated packet it answers. */
  Amplification: 9,
  /** Datagram too large to forward with its header. */
  TooLarge: 10,
  /** Undecodable or unexpected control message. */
  BadControl: 11,
  /** A session open refused for its ticket (any reason). */
  TicketRefused: 12,
  /** New sessions per source per second exceeded. */
  RateLimitedNewSessions: 13,
  /** A probe too short to carry the reply's timestamps. */
  ProbeTooShort: 14,
  /** Parity or FEC-coded data on a session without FEC. */
  FecNotNegotiated: 15,
  /** A datagram from source port 0: no reply can reach it (sending to port 0 fails), so it is never legitimate. */
  SourcePortZero: 16,
} as const;

/** One of {@link DropReason}. */
export type DropReasonValue = (typeof DropReason)[keyof typeof DropReason];

/** Metric label of each {@link DropReason}, by value. */
export const dropReasonNames: readonly string[] = [
  'junk',
  'rate_limited_source',
  'rate_limited_session',
  'denied',
  'session_cap',
  'draining',
  'unknown_session',
  'unknown_source',
  'path_unverified',
  'amplification',
  'too_large',
  'bad_control',
  'ticket_refused',
  'rate_limited_new_sessions',
  'probe_too_short',
  'fec_not_negotiated',
  'source_port_zero',
];

/** What a socket is for. */
export type SocketKind = 'listener' | 'upstream' | 'tunnel' | 'health';

/**
 * One datagram to send. The object is reused by the next {@link RelayCore.pollTransmit};
 * `prefix` and `bytes` stay valid (the driver may hand them to the kernel as they are).
 */
export class Transmit {
  /** Socket to send on. */
  socketId = 0;
  /** Destination address (IP literal). */
  address = '';
  /** Destination port. */
  port = 0;
  /** Bytes to send before `bytes` (a PROXY/SPP or tunnel header), or undefined. */
  prefix: Uint8Array | undefined = undefined;
  /** The datagram (after `prefix`). */
  bytes: Uint8Array = EMPTY;
}

const EMPTY = new Uint8Array(0);

/** Totals of one ended session, for its log line. */
export interface SessionTotals {
  readonly packetsUp: number;
  readonly bytesUp: number;
  readonly packetsDown: number;
  readonly bytesDown: number;
  readonly durationMs: number;
}

/** What the core tells its driver. */
export type RelayEvent =
  /** Open a socket (UDP unless `protocol` says tcp); datagrams for it follow. Listener binds failing is fatal at start. */
  | { readonly type: 'openSocket'; readonly socketId: number; readonly kind: SocketKind; readonly protocol: 'udp' | 'tcp'; readonly address: string; readonly port: number; readonly rule: string }
  /** Close it; nothing more will be sent on it. */
  | { readonly type: 'closeSocket'; readonly socketId: number; readonly kind: SocketKind; readonly protocol: 'udp' | 'tcp' }
  /** `exit`: a tunnel session this relay forwards to that exit relay (its id) instead of talking to the origin itself. */
  | { readonly type: 'sessionStart'; readonly kind: 'udp' | 'tcp' | 'tunnel'; readonly id: string; readonly rule: string; readonly client: string; readonly origin: string; readonly fecMode?: string; readonly exit?: string }
  | { readonly type: 'sessionEnd'; readonly kind: 'udp' | 'tcp' | 'tunnel'; readonly id: string; readonly rule: string; readonly client: string; readonly origin: string; readonly reason: string; readonly totals: SessionTotals }
  /** A flow moved to another origin (failover), or a tunnel session to a new client address (validated migration). */
  | { readonly type: 'sessionMoved'; readonly kind: 'udp' | 'tunnel'; readonly id: string; readonly rule: string; readonly what: 'origin' | 'client'; readonly from: string; readonly to: string }
  | { readonly type: 'sessionRefused'; readonly client: string; readonly id: string; readonly reason: ErrorCodeValue; readonly detail: string }
  | { readonly type: 'originHealth'; readonly group: string; readonly origin: string; readonly healthy: boolean }
  /** Run a TCP connect check and report it with {@link RelayCore.handleCheckResult}. */
  | { readonly type: 'tcpCheck'; readonly checkId: number; readonly address: string; readonly port: number; readonly timeoutMs: number };

/** Packet and byte counters of one rule (the tunnel counts as rule `tunnel`). */
export class RuleStats {
  /** Datagrams (or TCP chunks) received from clients. */
  packetsUp = 0;
  bytesUp = 0;
  /** Datagrams received from origins. */
  packetsDown = 0;
  bytesDown = 0;
  /** Sessions open now. */
  sessionsActive = 0;
  /** Sessions opened since start. */
  sessionsOpened = 0;
  constructor(
    /** The rule's name. */
    readonly name: string,
    /** `udp`, `tcp` or `tunnel`. */
    readonly protocol: string,
  ) {}
}

/** Components the core is given. */
export interface RelayCoreComponents {
  /** Wall clock (Unix epoch ms) for ticket expiry: issuer and relay are different machines. */
  readonly wallClockMs: () => number;
  /** Fills a buffer with unpredictable bytes (path-challenge nonces). Production: crypto.randomFillSync; simulator: a seeded Rng. */
  readonly randomFill: (out: Uint8Array) => void;
}

// ---------------------------------------------------------------- state objects

class OriginState {
  healthy = true;
  failures = 0;
  successes = 0;
  lastReplyMs = Number.NEGATIVE_INFINITY;
  checkPending = false;
  checkSentMs = 0;
  checkId = 0;
  retired = false;
  readonly hash: number;
  readonly label: string;
  constructor(
    readonly address: string,
    readonly port: number,
    readonly portEnd: number,
  ) {
    this.label = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    this.hash = hashString(this.label);
  }
  /** The port to use for a listener `offset` ports into its range. */
  portFor(offset: number): number {
    return this.portEnd > this.port ? this.port + offset : this.port;
  }
}

class OriginGroup {
  nextCheckMs = 0;
  checkDeadlineMs = Number.POSITIVE_INFINITY;
  constructor(
    readonly name: string,
    public origins: OriginState[],
    public health: HealthCheckSpec,
  ) {}
}

class Listener {
  /** Flows by client port; same port, other address → chained through {@link Flow.nextSamePort}. */
  readonly flowsByPort = new Map<number, Flow>();
  constructor(
    readonly socketId: number,
    readonly key: string,
    public rule: RuleRuntime,
    public port: number,
    public portOffset: number,
  ) {}
}

class RuleRuntime {
  readonly listeners: Listener[] = [];
  constructor(
    public spec: RuleSpec,
    readonly stats: RuleStats,
    public group: OriginGroup,
  ) {}
}

class SourceState {
  sessions = 0;
  /** A fleet relay (`tunnel.peerCidrs`): exempt from per-source caps, which count players, not entries. */
  peer = false;
  lastSeenMs: number;
  readonly bucket: RateBucket;
  readonly newSessions: RateBucket;
  constructor(
    readonly address: string,
    limits: LimitsSpec,
    nowMs: number,
  ) {
    this.lastSeenMs = nowMs;
    this.bucket = new RateBucket(limits.sourcePacketsPerSecond, limits.sourceBytesPerSecond, limits.burstMs, nowMs);
    this.newSessions = new RateBucket(limits.newSessionsPerSourcePerSecond, 0, 1000, nowMs);
  }
}

/** Shared by L4 flows and tunnel sessions: counters, buckets, timing. */
class SessionBase {
  packetsUp = 0;
  bytesUp = 0;
  packetsDown = 0;
  bytesDown = 0;
  lastActiveMs: number;
  readonly openedMs: number;
  closed = false;
  constructor(
    readonly id: number,
    public source: SourceState,
    public clientAddress: string,
    public clientPort: number,
    readonly upBucket: RateBucket,
    readonly downBucket: RateBucket,
    nowMs: number,
  ) {
    this.lastActiveMs = nowMs;
    this.openedMs = nowMs;
  }
}

class Flow extends SessionBase {
  nextSamePort: Flow | undefined = undefined;
  originPort = 0;
  constructor(
    id: number,
    source: SourceState,
    clientAddress: string,
    clientPort: number,
    upBucket: RateBucket,
    downBucket: RateBucket,
    nowMs: number,
    public listener: Listener,
    public origin: OriginState,
    readonly prefix: Uint8Array | undefined,
    readonly clientHash: number,
  ) {
    super(id, source, clientAddress, clientPort, upBucket, downBucket, nowMs);
  }
}

interface PendingChallenge {
  address: string;
  port: number;
  nonce: Uint8Array;
  sentMs: number;
}

/**
 * Entry side of a session forwarded to its exit relay (see the module comment,
 * "Exit relays"). Everything from the client goes to the exit verbatim and everything
 * from the exit to the client, so FEC and sequence numbering run end to end between
 * the SDK and the exit.
 */
class ExitLink {
  /** `opening`: the client's open was forwarded, no accept yet; `open`: the exit accepted. */
  state: 'opening' | 'open' = 'opening';
  /** Last packet from the exit, ms. */
  lastRxMs: number;
  /**
   * When the oldest packet forwarded since the exit last spoke went out, ms; +∞ when
   * the exit has spoken since. Silence counts from here, not from the last answer: a
   * warm backup entry carries nothing for minutes, and its first packet after that must
   * not find the exit "silent for minutes".
   */
  waitingSinceMs = Number.POSITIVE_INFINITY;
  /** Last open (first, keepalive or re-open) sent to the exit, ms. */
  lastOpenMs: number;
  /** Last path response sent to the exit, ms (rate limit: see onFromExit). */
  lastResponseMs = Number.NEGATIVE_INFINITY;
  constructor(
    readonly relayId: string,
    readonly address: string,
    readonly port: number,
    /** The client's `sessionOpen` datagram (header and ticket), re-sent as keepalive and to re-open. */
    readonly open: Uint8Array,
    readonly openedMs: number,
  ) {
    this.lastRxMs = openedMs;
    this.lastOpenMs = openedMs;
  }

  /** A packet went to the exit at `nowMs`. */
  sent(nowMs: number): void {
    if (this.waitingSinceMs === Number.POSITIVE_INFINITY) this.waitingSinceMs = nowMs;
  }
}

/** Exit side: one validated path of a session (an entry relay, or the client itself). */
interface SessionPath {
  address: string;
  port: number;
  /** Last packet from it, ms (the least recent is evicted when the set is full). */
  lastRxMs: number;
}

class TunnelSession extends SessionBase {
  /** Entry role: the exit this session is forwarded to; undefined when this relay talks to the origin. */
  exit: ExitLink | undefined = undefined;
  /** Exit role: every validated path (entries) the session may arrive on; undefined for a session with one client address (no exit). */
  paths: SessionPath[] | undefined = undefined;
  /** Whether the origin-facing socket was opened (forwarded sessions open it only on falling back). */
  upstreamOpen = false;
  nextSameLow: TunnelSession | undefined = undefined;
  sequenceOut = 0;
  challenges: PendingChallenge[] | undefined = undefined;
  fecSender: FecSender | undefined = undefined;
  fecReceiver: FecReceiver | undefined = undefined;
  /** Earliest of this session's FEC sender and receiver deadlines, ms (+∞ when neither has one). */
  fecDeadlineMs = Number.POSITIVE_INFINITY;
  /** Adaptive downstream protection, driven by the client's `fecStats` (its receiver's loss); undefined = the configured scheme stays. */
  fecController: FecController | undefined = undefined;
  /** The ticket's own limits, kept so a reload can lower the config caps without raising a session above its ticket. */
  ticketPacketsPerSecond = Number.POSITIVE_INFINITY;
  ticketBytesPerSecond = Number.POSITIVE_INFINITY;
  constructor(
    id: number,
    source: SourceState,
    clientAddress: string,
    clientPort: number,
    upBucket: RateBucket,
    downBucket: RateBucket,
    nowMs: number,
    readonly idHigh: number,
    readonly idLow: number,
    readonly idHex: string,
    readonly key: Uint8Array,
    readonly originAddress: string,
    readonly originPort: number,
    readonly originName: string,
    readonly fecMode: string,
  ) {
    super(id, source, clientAddress, clientPort, upBucket, downBucket, nowMs);
  }
}

class TcpConn {
  readonly tried: OriginState[] = [];
  /** Byte buckets of this connection (rule key `connectionBytesPerSecond`), client → origin and back. */
  readonly upBucket: RateBucket;
  readonly downBucket: RateBucket;
  constructor(
    readonly id: number,
    readonly rule: RuleRuntime,
    readonly listener: Listener,
    readonly source: SourceState,
    readonly clientAddress: string,
    readonly clientPort: number,
    public origin: OriginState,
    readonly openedMs: number,
    burstMs: number,
  ) {
    const rate = rule.spec.connectionBytesPerSecond ?? 0;
    this.upBucket = new RateBucket(0, rate, burstMs, openedMs);
    this.downBucket = new RateBucket(0, rate, burstMs, openedMs);
  }
}

/** A TCP rule's shared byte buckets (`bytesPerSecond`), kept by rule name across reloads. */
class TcpRuleBuckets {
  readonly up: RateBucket;
  readonly down: RateBucket;
  constructor(rate: number, burstMs: number, nowMs: number) {
    this.up = new RateBucket(0, rate, burstMs, nowMs);
    this.down = new RateBucket(0, rate, burstMs, nowMs);
  }
}

/** Where a TCP connection should go, from {@link RelayCore.admitTcp}. */
export interface TcpAdmission {
  /** Id to report back with. */
  readonly connId: number;
  readonly address: string;
  readonly port: number;
  /** PROXY v2 header to write first, or undefined. */
  readonly prefix: Uint8Array | undefined;
  /** Close after this long without bytes either way, ms. */
  readonly idleTimeoutMs: number;
  /** A connect to the origin not done after this long counts as failed ({@link RelayCore.tcpConnectFailed}), ms. */
  readonly connectTimeoutMs: number;
  /** The rule's counters (the driver adds bytes as they flow). */
  readonly stats: RuleStats;
}

type SocketEntry =
  | { kind: 'listener'; protocol: 'udp' | 'tcp'; listener: Listener }
  | { kind: 'upstream'; flow: Flow | undefined; session: TunnelSession | undefined }
  | { kind: 'tunnel' }
  | { kind: 'health' };

/** Most idle closes per sweep call. */
const SWEEP_CLOSES_MAX = 32;
/** Delay before an unfinished sweep continues, ms. */
const SWEEP_CONTINUE_MS = 5;
const HEALTH_SOCKET_ID = 1;
const TUNNEL_SOCKET_ID = 2;
const FIRST_DYNAMIC_ID = 16;
const FEC_SHARD_BYTES_MAX = 1402;
/** Body of the relay's Close for data on a session it does not hold (the same for every session). */
const UNKNOWN_SESSION_BODY = encodeControl({ type: 'sessionReject', reason: ErrorCode.UnknownSession, message: '' });
/** The body of a header-only Close: "unknown session" said in 24 bytes (see answerUnknownSession). */
const EMPTY_BODY = new Uint8Array(0);

function endpointText(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The relay state machine. See the module comment for the polling order. */
export class RelayCore {
  /** Packets dropped, indexed by {@link DropReason}. */
  readonly drops = new Float64Array(dropReasonNames.length);
  /** Counters per rule name (the tunnel is `tunnel`). */
  readonly ruleStats = new Map<string, RuleStats>();
  /** Probes answered. */
  probesAnswered = 0;
  /** Bytes received from, and sent to, senders not (yet) authenticated: the anti-amplification ledger. */
  unauthenticatedBytesIn = 0;
  unauthenticatedBytesOut = 0;
  /** FEC packets rebuilt by sessions that have ended (live ones are added by {@link fecRecovered}). */
  private fecRecoveredClosed = 0;

  private config: RelayCoreConfig;
  private readonly sockets = new Map<number, SocketEntry>();
  private readonly groups = new Map<string, OriginGroup>();
  private readonly rules = new Map<string, RuleRuntime>();
  private readonly listeners = new Map<string, Listener>();
  private readonly originsByLabel = new Map<string, OriginState[]>();
  private readonly sources = new Map<string, SourceState>();
  private readonly flows = new Map<number, Flow>();
  private readonly sessionsByLow = new Map<number, TunnelSession>();
  private readonly sessions = new Map<number, TunnelSession>();
  private readonly fecSessions = new Set<TunnelSession>();
  /** Sessions this relay forwards to an exit relay: their exits' liveness is checked every {@link EXIT_CHECK_INTERVAL_MS}. */
  private readonly exitSessions = new Set<TunnelSession>();
  /** Fleet relays' addresses from {@link setPeers}. */
  private peers: ReadonlySet<string> = new Set();
  private nextExitCheckMs = Number.POSITIVE_INFINITY;
  private readonly tcpConns = new Map<number, TcpConn>();
  private readonly tcpChecks = new Map<number, OriginState>();
  private readonly tcpRuleBuckets = new Map<string, TcpRuleBuckets>();
  /** TCP reads paused by a byte-rate limit (each {@link tcpData} call that asked for a pause). */
  tcpThrottles = 0;
  /** Revocations from the file (replaced as a whole on each read). */
  private revoked = new Set<string>();
  /** Revocations pushed by a feed, with the wall time (Unix ms) after which they can be forgotten. */
  private readonly revokedFeed = new Map<string, number>();
  private tunnelStats: RuleStats = new RuleStats('tunnel', 'tunnel');
  private tunnelOpen = false;
  private healthOpen = false;
  private nextId = FIRST_DYNAMIC_ID;
  private nextSweepMs = 0;
  private fecDeadlineMs = Number.POSITIVE_INFINITY;
  private draining = false;
  private isClosed = false;
  private started = false;

  // Output queues. Transmits: a ring of reusable objects (no allocation per packet).
  private txRing: Transmit[] = [];
  private txHead = 0;
  private txCount = 0;
  private readonly events: RelayEvent[] = [];
  private eventHead = 0;

  private readonly header = new PacketHeader();
  private readonly outHeader = new PacketHeader();
  private readonly fecScratch = new Uint8Array(FEC_SHARD_BYTES_MAX + 64);
  /** Output bytes the core writes per packet (tunnel headers, FEC shards): views carved from slabs (proto/src/slab.ts). */
  private readonly slabs = new SlabAllocator();
  /** Rate limit of packets from senders that have proved nothing: no per-address state (spoofed floods cost no memory). */
  private readonly unauthenticatedLimiter: StatelessLimiter;

  /**
   * @param config validated configuration (see relay/src/config.ts)
   * @param components wall clock and randomness
   */
  constructor(
    config: RelayCoreConfig,
    private readonly components: RelayCoreComponents,
  ) {
    this.config = config;
    for (let i = 0; i < 64; i++) this.txRing.push(new Transmit());
    const key = new Uint8Array(8);
    components.randomFill(key);
    this.unauthenticatedLimiter = new StatelessLimiter(UNAUTHENTICATED_BUCKETS, config.limits.unauthenticatedPacketsPerSecond, key, 0);
  }

  // ------------------------------------------------------------------ getters

  /** Sessions open now: L4 UDP flows, TCP connections and tunnel sessions. */
  get sessionCount(): number {
    return this.flows.size + this.tcpConns.size + this.sessions.size;
  }
  /** L4 UDP flows open now. */
  get udpFlowCount(): number {
    return this.flows.size;
  }
  /** TCP connections open now. */
  get tcpConnectionCount(): number {
    return this.tcpConns.size;
  }
  /** Tunnel sessions open now. */
  get tunnelSessionCount(): number {
    return this.sessions.size;
  }
  /** Per-source entries held (bounded: idle ones are swept). */
  get sourceCount(): number {
    return this.sources.size;
  }
  /** Whether {@link drain} was called. */
  get isDraining(): boolean {
    return this.draining;
  }
  /** Packets rebuilt by FEC over the relay's life. */
  get fecRecovered(): number {
    let live = 0;
    for (const session of this.fecSessions) live += session.fecReceiver?.totals.recovered ?? 0;
    return this.fecRecoveredClosed + live;
  }
  /** Origins by group with their health, for the health endpoint and metrics. */
  originHealth(): { group: string; origin: string; healthy: boolean }[] {
    const out: { group: string; origin: string; healthy: boolean }[] = [];
    for (const group of this.groups.values()) for (const origin of group.origins) out.push({ group: group.name, origin: origin.label, healthy: origin.healthy });
    return out;
  }
  /** Where a tunnel session's client is now (`address:port`), or undefined: for tests and tooling. */
  tunnelSessionClient(sessionIdHex: string): string | undefined {
    for (const session of this.sessions.values()) if (session.idHex === sessionIdHex) return endpointText(session.clientAddress, session.clientPort);
    return undefined;
  }
  /** Total drops over every reason. */
  get dropTotal(): number {
    let sum = 0;
    for (const n of this.drops) sum += n;
    return sum;
  }

  // ------------------------------------------------------------------ lifecycle

  /** App command: open the configured sockets. Call once, before any other input. */
  start(nowMs: number): void {
    if (this.started) return;
    this.started = true;
    this.nextSweepMs = nowMs + SWEEP_INTERVAL_MS;
    this.apply(nowMs, this.config);
  }

  /**
   * App command (SIGHUP): adopt a new configuration. Listeners whose protocol, address
   * and port are unchanged keep their sockets and flows; rules get their new group,
   * ACLs and timeouts; limits apply to existing buckets at once; origins removed from a
   * group see their flows move at the next packet. Removed listeners end their flows.
   */
  reconfigure(nowMs: number, config: RelayCoreConfig): void {
    this.config = config;
    this.apply(nowMs, config);
  }

  /** App command (SIGTERM): take no new sessions; live ones continue. */
  drain(): void {
    this.draining = true;
  }

  /** App command: end every session and close every socket; idempotent. */
  close(nowMs: number): void {
    if (this.isClosed) return;
    for (const flow of [...this.flows.values()]) this.closeFlow(nowMs, flow, 'shutdown');
    for (const session of [...this.sessions.values()]) this.closeSession(nowMs, session, 'shutdown', undefined);
    for (const conn of [...this.tcpConns.values()]) this.tcpClosed(nowMs, conn.id, 'shutdown');
    for (const listener of this.listeners.values()) this.emitClose(listener.socketId, 'listener', this.protocolOf(listener));
    this.listeners.clear();
    if (this.tunnelOpen) this.emitClose(TUNNEL_SOCKET_ID, 'tunnel', 'udp');
    if (this.healthOpen) this.emitClose(HEALTH_SOCKET_ID, 'health', 'udp');
    this.tunnelOpen = this.healthOpen = false;
    this.isClosed = true;
  }

  private protocolOf(listener: Listener): 'udp' | 'tcp' {
    return listener.rule.spec.protocol;
  }

  private emitClose(socketId: number, kind: SocketKind, protocol: 'udp' | 'tcp'): void {
    this.sockets.delete(socketId);
    this.events.push({ type: 'closeSocket', socketId, kind, protocol });
  }

  private apply(nowMs: number, config: RelayCoreConfig): void {
    // Origin groups: keep each origin's state (health, flows pointing at it) by label.
    const previousByLabel = new Map<string, OriginState>();
    for (const group of this.groups.values()) for (const origin of group.origins) previousByLabel.set(`${group.name}/${origin.label}/${origin.portEnd}`, origin);
    const kept = new Set<OriginState>();
    this.groups.clear();
    this.originsByLabel.clear();
    for (const spec of config.groups) this.groups.set(spec.name, this.buildGroup(nowMs, spec, previousByLabel, kept));
    for (const origin of previousByLabel.values()) if (!kept.has(origin)) origin.retired = true;

    // Rules and listeners.
    const wantListeners = new Map<string, { rule: RuleSpec; port: number; offset: number }>();
    for (const rule of config.rules) {
      // Port 0 (an OS-chosen port) is keyed by rule name, so that reloads keep its socket.
      for (let port = rule.listenPort; port <= rule.listenPortEnd; port++) wantListeners.set(`${rule.protocol}/${rule.listenAddress}/${port}${port === 0 ? `/${rule.name}` : ''}`, { rule, port, offset: port - rule.listenPort });
    }
    for (const [key, listener] of this.listeners) {
      if (wantListeners.has(key)) continue;
      for (const flow of [...this.flows.values()]) if (flow.listener === listener) this.closeFlow(nowMs, flow, 'rule removed');
      this.listeners.delete(key);
      this.emitClose(listener.socketId, 'listener', this.protocolOf(listener));
    }
    const oldRules = new Map(this.rules);
    this.rules.clear();
    for (const spec of config.rules) {
      const stats = oldRules.get(spec.name)?.stats ?? this.ruleStats.get(spec.name) ?? new RuleStats(spec.name, spec.protocol);
      this.ruleStats.set(spec.name, stats);
      this.rules.set(spec.name, new RuleRuntime(spec, stats, this.groups.get(spec.group)!));
    }
    for (const [key, want] of wantListeners) {
      const rule = this.rules.get(want.rule.name)!;
      let listener = this.listeners.get(key);
      if (listener) {
        listener.rule = rule;
        listener.portOffset = want.offset;
      } else {
        listener = new Listener(this.nextId++, key, rule, want.port, want.offset);
        this.listeners.set(key, listener);
        this.sockets.set(listener.socketId, { kind: 'listener', protocol: want.rule.protocol, listener });
        this.events.push({ type: 'openSocket', socketId: listener.socketId, kind: 'listener', protocol: want.rule.protocol, address: want.rule.listenAddress, port: want.port, rule: want.rule.name });
      }
      rule.listeners.push(listener);
    }

    // Limits apply to every live bucket now, not only to new sessions.
    const limits = config.limits;
    this.unauthenticatedLimiter.setRate(limits.unauthenticatedPacketsPerSecond);
    for (const source of this.sources.values()) {
      source.bucket.setRates(limits.sourcePacketsPerSecond, limits.sourceBytesPerSecond, limits.burstMs);
      source.newSessions.setRates(limits.newSessionsPerSourcePerSecond, 0, 1000);
    }
    for (const flow of this.flows.values()) {
      flow.upBucket.setRates(limits.sessionPacketsPerSecond, limits.sessionBytesPerSecond, limits.burstMs);
      flow.downBucket.setRates(limits.sessionPacketsPerSecond, limits.sessionBytesPerSecond, limits.burstMs);
    }
    // TCP byte limits: a rule's shared buckets keep their tokens across reloads; live connections take their rule's new rate.
    for (const spec of config.rules) {
      const rate = spec.protocol === 'tcp' ? (spec.bytesPerSecond ?? 0) : 0;
      const shared = this.tcpRuleBuckets.get(spec.name);
      if (rate === 0) this.tcpRuleBuckets.delete(spec.name);
      else if (shared === undefined) this.tcpRuleBuckets.set(spec.name, new TcpRuleBuckets(rate, limits.burstMs, nowMs));
      else {
        shared.up.setRates(0, rate, limits.burstMs);
        shared.down.setRates(0, rate, limits.burstMs);
      }
    }
    for (const name of this.tcpRuleBuckets.keys()) if (!this.rules.has(name)) this.tcpRuleBuckets.delete(name);
    for (const conn of this.tcpConns.values()) {
      // A connection keeps the rule it was admitted by; a removed rule's connections keep their last rate.
      const spec = this.rules.get(conn.rule.spec.name)?.spec ?? conn.rule.spec;
      const rate = spec.protocol === 'tcp' ? (spec.connectionBytesPerSecond ?? 0) : 0;
      conn.upBucket.setRates(0, rate, limits.burstMs);
      conn.downBucket.setRates(0, rate, limits.burstMs);
    }

    // Health socket: one for every UDP check.
    const needHealth = config.groups.some((g) => g.healthCheck.mode === 'udp');
    if (needHealth && !this.healthOpen) {
      this.healthOpen = true;
      this.sockets.set(HEALTH_SOCKET_ID, { kind: 'health' });
      this.events.push({ type: 'openSocket', socketId: HEALTH_SOCKET_ID, kind: 'health', protocol: 'udp', address: config.upstreamBindAddress, port: 0, rule: '' });
    } else if (!needHealth && this.healthOpen) {
      this.healthOpen = false;
      this.emitClose(HEALTH_SOCKET_ID, 'health', 'udp');
    }

    // Tunnel port.
    const tunnel = config.tunnel;
    if (tunnel && !this.tunnelOpen) {
      this.tunnelOpen = true;
      this.ruleStats.set('tunnel', this.tunnelStats);
      this.sockets.set(TUNNEL_SOCKET_ID, { kind: 'tunnel' });
      this.events.push({ type: 'openSocket', socketId: TUNNEL_SOCKET_ID, kind: 'tunnel', protocol: 'udp', address: tunnel.listenAddress, port: tunnel.listenPort, rule: 'tunnel' });
    } else if (!tunnel && this.tunnelOpen) {
      for (const session of [...this.sessions.values()]) this.closeSession(nowMs, session, 'tunnel disabled', undefined);
      this.tunnelOpen = false;
      this.emitClose(TUNNEL_SOCKET_ID, 'tunnel', 'udp');
    }
    if (tunnel) {
      // A narrowed tunnel.origins (or allowOriginCidrs) ends the sessions whose ticket's
      // origin is no longer served here, or now names another address: the client is
      // told with an authenticated Close (SLIP_ERR_TICKET_WRONG_ORIGIN; the SDK then
      // takes this relay out), the same as a ticket naming it would now be refused.
      for (const session of [...this.sessions.values()]) {
        const allowed = this.resolveTicketOrigin(tunnel, session.originName);
        if (allowed === undefined || allowed.address !== session.originAddress || allowed.port !== session.originPort) {
          this.closeSession(nowMs, session, `origin '${session.originName.slice(0, 64)}' is no longer served by this relay`, ErrorCode.TicketWrongOrigin);
        }
      }
      for (const session of this.sessions.values()) {
        const pps = sessionRate(limits.sessionPacketsPerSecond, session.ticketPacketsPerSecond);
        const bps = sessionRate(limits.sessionBytesPerSecond, session.ticketBytesPerSecond);
        session.upBucket.setRates(pps, bps, limits.burstMs);
        session.downBucket.setRates(pps, bps, limits.burstMs);
      }
    }
  }

  private buildGroup(nowMs: number, spec: OriginGroupSpec, previous: Map<string, OriginState>, kept: Set<OriginState>): OriginGroup {
    const origins = spec.origins.map((o) => {
      const label = endpointText(o.address, o.port);
      const old = previous.get(`${spec.name}/${label}/${o.portEnd}`);
      const origin = old ?? new OriginState(o.address, o.port, o.portEnd);
      if (old) kept.add(old);
      if (spec.healthCheck.mode === 'none' && !origin.healthy) origin.healthy = true;
      let list = this.originsByLabel.get(origin.label);
      if (!list) this.originsByLabel.set(origin.label, (list = []));
      list.push(origin);
      return origin;
    });
    const group = new OriginGroup(spec.name, origins, spec.healthCheck);
    group.nextCheckMs = nowMs;
    return group;
  }

  // ------------------------------------------------------------------ inputs

  /**
   * Input: one datagram received on socket `socketId` from `from`. `bytes` is only
   * read during the call or handed on as a view in a {@link Transmit}: the driver must
   * not reuse its memory (Node's dgram allocates each message anew).
   */
  handleDatagram(nowMs: number, socketId: number, from: Endpoint, bytes: Uint8Array): void {
    const entry = this.sockets.get(socketId);
    if (entry === undefined || this.isClosed) return;
    if (from.port === 0) {
      // Before anything else: nothing may be sent back to port 0 (the send would fail), and no state is made for it.
      this.drops[DropReason.SourcePortZero]++;
      return;
    }
    switch (entry.kind) {
      case 'listener':
        this.onListenerDatagram(nowMs, entry.listener, from, bytes);
        return;
      case 'upstream':
        if (entry.flow !== undefined) this.onFlowReply(nowMs, entry.flow, from, bytes);
        else if (entry.session !== undefined) this.onSessionReply(nowMs, entry.session, from, bytes);
        return;
      case 'tunnel':
        this.onTunnelDatagram(nowMs, from, bytes);
        return;
      case 'health':
        this.onHealthReply(nowMs, from);
        return;
    }
  }

  /** Input: a deadline from {@link pollTimeout} has passed. */
  handleTimeout(nowMs: number): void {
    if (this.isClosed) return;
    if (nowMs >= this.nextSweepMs) {
      // A sweep that hit its budget continues shortly instead of stalling live traffic.
      this.nextSweepMs = nowMs + (this.sweep(nowMs) ? SWEEP_INTERVAL_MS : SWEEP_CONTINUE_MS);
    }
    for (const group of this.groups.values()) this.runHealth(nowMs, group);
    if (nowMs >= this.nextExitCheckMs) this.checkExits(nowMs);
    if (nowMs >= this.fecDeadlineMs) {
      this.fecDeadlineMs = Number.POSITIVE_INFINITY;
      for (const session of this.fecSessions) {
        // Only sessions whose own deadline has passed do work; the rest cost a
        // comparison, so one busy session's hold timer does not run every other's.
        if (nowMs < session.fecDeadlineMs) {
          if (session.fecDeadlineMs < this.fecDeadlineMs) this.fecDeadlineMs = session.fecDeadlineMs;
          continue;
        }
        session.fecReceiver!.handleTimeout(nowMs);
        this.drainFecReceiver(session);
        session.fecSender!.handleTimeout(nowMs);
        this.drainFecSender(session);
        this.noteFecDeadline(session);
      }
    }
  }

  /** Input: the result of a `tcpCheck` event. */
  handleCheckResult(_nowMs: number, checkId: number, ok: boolean): void {
    const origin = this.tcpChecks.get(checkId);
    if (!origin) return;
    this.tcpChecks.delete(checkId);
    if (!origin.checkPending || origin.checkId !== checkId) return;
    origin.checkPending = false;
    const group = this.groupOf(origin);
    if (group) this.recordCheck(group, origin, ok || origin.lastReplyMs >= origin.checkSentMs);
  }

  /** App command: sessions with these ids (16 hex digits) are revoked; live ones end now with `SLIP_ERR_TICKET_REVOKED`. The set replaces the previous one. */
  setRevoked(nowMs: number, sessionIds: ReadonlySet<string>): void {
    this.revoked = new Set(sessionIds);
    for (const session of [...this.sessions.values()]) if (this.revoked.has(session.idHex)) this.closeSession(nowMs, session, 'revoked', ErrorCode.TicketRevoked);
  }

  /**
   * App command: add revocations (a pushed feed) without forgetting earlier ones.
   * @param forgetAfterWallMs when the entries may be dropped (the tickets' expiry, Unix ms); default one day from now
   */
  revoke(nowMs: number, sessionIds: Iterable<string>, forgetAfterWallMs?: number): void {
    const added = new Set<string>();
    const until = forgetAfterWallMs ?? this.components.wallClockMs() + 86_400_000;
    for (const id of sessionIds) {
      this.revokedFeed.set(id, Math.max(until, this.revokedFeed.get(id) ?? 0));
      added.add(id);
    }
    for (const session of [...this.sessions.values()]) if (added.has(session.idHex)) this.closeSession(nowMs, session, 'revoked', ErrorCode.TicketRevoked);
  }

  // ------------------------------------------------------------------ outputs

  /** Output: the next datagram to send (reused object), or undefined. */
  pollTransmit(): Transmit | undefined {
    if (this.txCount === 0) return undefined;
    const tx = this.txRing[this.txHead]!;
    this.txHead = (this.txHead + 1) & (this.txRing.length - 1);
    this.txCount--;
    return tx;
  }

  /** Output: the next event, or undefined. */
  pollEvent(): RelayEvent | undefined {
    if (this.eventHead >= this.events.length) {
      if (this.eventHead > 0) {
        this.events.length = 0;
        this.eventHead = 0;
      }
      return undefined;
    }
    return this.events[this.eventHead++];
  }

  /** Output: when to call {@link handleTimeout} next (monotonic ms), or undefined when closed. */
  pollTimeout(): number | undefined {
    if (this.isClosed || !this.started) return undefined;
    let deadline = this.nextSweepMs;
    for (const group of this.groups.values()) {
      if (group.health.mode === 'none') continue;
      if (group.nextCheckMs < deadline) deadline = group.nextCheckMs;
      if (group.checkDeadlineMs < deadline) deadline = group.checkDeadlineMs;
    }
    if (this.fecDeadlineMs < deadline) deadline = this.fecDeadlineMs;
    if (this.nextExitCheckMs < deadline) deadline = this.nextExitCheckMs;
    return deadline;
  }

  /**
   * A datagram towards the client: counted on `stats`, then charged to the flow's or
   * session's downstream bucket. False (counted as a rate-limit drop) when over its rate.
   */
  private admitDown(nowMs: number, stats: RuleStats, carrier: SessionBase, bytes: Uint8Array): boolean {
    stats.packetsDown++;
    stats.bytesDown += bytes.length;
    if (!carrier.downBucket.take(nowMs, bytes.length)) {
      this.drops[DropReason.RateLimitedSession]++;
      return false;
    }
    carrier.lastActiveMs = nowMs;
    carrier.packetsDown++;
    carrier.bytesDown += bytes.length;
    return true;
  }

  private push(socketId: number, address: string, port: number, prefix: Uint8Array | undefined, bytes: Uint8Array): void {
    if (this.txCount === this.txRing.length) this.growRing();
    const tx = this.txRing[(this.txHead + this.txCount) & (this.txRing.length - 1)]!;
    this.txCount++;
    tx.socketId = socketId;
    tx.address = address;
    tx.port = port;
    tx.prefix = prefix;
    tx.bytes = bytes;
  }

  private growRing(): void {
    const old = this.txRing;
    const next: Transmit[] = [];
    for (let i = 0; i < this.txCount; i++) next.push(old[(this.txHead + i) & (old.length - 1)]!);
    while (next.length < old.length * 2) next.push(new Transmit());
    this.txRing = next;
    this.txHead = 0;
  }

  /**
   * The one way to answer a sender that has not proved anything: the reply goes out
   * only if it is no larger than what that sender sent (anti-amplification).
   */
  private sendUnauthenticated(socketId: number, to: Endpoint, receivedBytes: number, reply: Uint8Array): boolean {
    if (reply.length > receivedBytes) {
      this.drops[DropReason.Amplification]++;
      return false;
    }
    this.unauthenticatedBytesOut += reply.length;
    this.push(socketId, to.address, to.port, undefined, reply);
    return true;
  }

  // ------------------------------------------------------------------ sources and admission

  /**
   * The per-source entry of `address`, made if needed. Only senders that hold (or are
   * about to hold) a session get one: an L4 flow, a verified ticket, an answered path
   * challenge. The table is bounded; when full, the least recently seen entry without
   * sessions is evicted (the Map keeps recency order: a touch moves an entry to the end).
   */
  private sourceFor(nowMs: number, address: string): SourceState | undefined {
    let source = this.sources.get(address);
    if (source === undefined) {
      if (this.sources.size >= this.config.limits.sessionsMax * 2 + 1024 && !this.evictIdleSource()) return undefined;
      source = new SourceState(address, this.config.limits, nowMs);
      source.peer = this.isPeer(address);
    } else this.sources.delete(address);
    this.sources.set(address, source);
    source.lastSeenMs = nowMs;
    return source;
  }

  /**
   * App command: the other fleet relays' addresses (IP literals), from the fleet list.
   * Like `tunnel.peerCidrs`, they are exempt from per-source caps: an entry forwarding
   * sessions to this relay as their exit is one address carrying many players. The set
   * replaces the previous one.
   */
  setPeers(addresses: Iterable<string>): void {
    this.peers = new Set(addresses);
    for (const source of this.sources.values()) source.peer = this.isPeer(source.address);
  }

  /** Whether `address` is a fleet relay's (`tunnel.peerCidrs` or {@link setPeers}). */
  private isPeer(address: string): boolean {
    if (this.peers.has(address)) return true;
    const peers = this.config.tunnel?.peerCidrs;
    return peers !== undefined && peers.length > 0 && cidrListMatches(peers, address);
  }

  /** Evicts the least recently seen entry that holds no session; false when every entry holds one. */
  private evictIdleSource(): boolean {
    for (const [address, source] of this.sources) {
      if (source.sessions > 0) continue;
      this.sources.delete(address);
      return true;
    }
    return false;
  }

  /** Common checks for a new session; returns the source, or records the drop and returns undefined. */
  private admit(nowMs: number, address: string, allow: readonly Cidr[], deny: readonly Cidr[]): SourceState | undefined {
    if (this.draining) {
      this.drops[DropReason.Draining]++;
      return undefined;
    }
    if (cidrListMatches(deny, address) || (allow.length > 0 && !cidrListMatches(allow, address))) {
      this.drops[DropReason.Denied]++;
      return undefined;
    }
    const source = this.sourceFor(nowMs, address);
    if (source === undefined || this.sessionCount >= this.config.limits.sessionsMax || source.sessions >= this.config.limits.sessionsPerSourceMax) {
      this.drops[DropReason.SessionCap]++;
      return undefined;
    }
    if (!source.newSessions.take(nowMs, 0)) {
      this.drops[DropReason.RateLimitedNewSessions]++;
      return undefined;
    }
    return source;
  }

  private pickOrigin(group: OriginGroup, clientHash: number, exclude: readonly OriginState[] | undefined): OriginState | undefined {
    let best: OriginState | undefined;
    let bestScore = -1;
    let fallback: OriginState | undefined;
    let fallbackScore = -1;
    for (const origin of group.origins) {
      if (exclude !== undefined && exclude.includes(origin)) continue;
      const score = rendezvousScore(clientHash, origin.hash);
      if (origin.healthy && score > bestScore) {
        best = origin;
        bestScore = score;
      }
      if (score > fallbackScore) {
        fallback = origin;
        fallbackScore = score;
      }
    }
    // With every origin down, keep forwarding by the hash: sending to a possibly-dead
    // origin beats dropping everything while health checks may be wrong.
    return best ?? fallback;
  }

  private clientHashFor(rule: RuleSpec, address: string, port: number): number {
    const h = hashString(address);
    return rule.hashKey === 'ip' ? h : rendezvousScore(h, port * 2654435761);
  }

  // ------------------------------------------------------------------ L4 UDP

  private onListenerDatagram(nowMs: number, listener: Listener, from: Endpoint, bytes: Uint8Array): void {
    const stats = listener.rule.stats;
    stats.packetsUp++;
    stats.bytesUp += bytes.length;
    let flow = listener.flowsByPort.get(from.port);
    while (flow !== undefined && flow.clientAddress !== from.address) flow = flow.nextSamePort;
    if (flow === undefined) {
      flow = this.openFlow(nowMs, listener, from);
      if (flow === undefined) return;
    }
    const length = bytes.length;
    if (!flow.upBucket.take(nowMs, length)) {
      this.drops[DropReason.RateLimitedSession]++;
      return;
    }
    if (!flow.source.bucket.take(nowMs, length)) {
      this.drops[DropReason.RateLimitedSource]++;
      return;
    }
    const prefix = flow.prefix;
    if (prefix !== undefined && prefix.length + length > DATAGRAM_BYTES_MAX) {
      this.drops[DropReason.TooLarge]++;
      return;
    }
    flow.lastActiveMs = nowMs;
    flow.packetsUp++;
    flow.bytesUp += length;
    let origin = flow.origin;
    if (!origin.healthy || origin.retired) origin = this.moveFlow(flow);
    this.push(flow.id, origin.address, flow.originPort, prefix, bytes);
  }

  private openFlow(nowMs: number, listener: Listener, from: Endpoint): Flow | undefined {
    const rule = listener.rule;
    const spec = rule.spec;
    const source = this.admit(nowMs, from.address, spec.allow, spec.deny);
    if (source === undefined) return undefined;
    const clientHash = this.clientHashFor(spec, from.address, from.port);
    const origin = this.pickOrigin(rule.group, clientHash, undefined);
    if (origin === undefined) return undefined;
    const limits = this.config.limits;
    let prefix: Uint8Array | undefined;
    const local = { address: spec.listenAddress, port: listener.port };
    if (spec.proxyProtocol === 'v2') prefix = encodeProxyV2('udp', from, local);
    else if (spec.proxyProtocol === 'spp') prefix = encodeSpp(from, local);
    const id = this.nextId++;
    const flow = new Flow(
      id,
      source,
      from.address,
      from.port,
      new RateBucket(limits.sessionPacketsPerSecond, limits.sessionBytesPerSecond, limits.burstMs, nowMs),
      new RateBucket(limits.sessionPacketsPerSecond, limits.sessionBytesPerSecond, limits.burstMs, nowMs),
      nowMs,
      listener,
      origin,
      prefix,
      clientHash,
    );
    flow.originPort = origin.portFor(listener.portOffset);
    flow.nextSamePort = listener.flowsByPort.get(from.port);
    listener.flowsByPort.set(from.port, flow);
    this.flows.set(id, flow);
    source.sessions++;
    rule.stats.sessionsActive++;
    rule.stats.sessionsOpened++;
    this.sockets.set(id, { kind: 'upstream', flow, session: undefined });
    this.events.push({ type: 'openSocket', socketId: id, kind: 'upstream', protocol: 'udp', address: this.config.upstreamBindAddress, port: 0, rule: spec.name });
    this.events.push({ type: 'sessionStart', kind: 'udp', id: String(id), rule: spec.name, client: endpointText(from.address, from.port), origin: endpointText(origin.address, flow.originPort) });
    return flow;
  }

  private moveFlow(flow: Flow): OriginState {
    const group = flow.listener.rule.group;
    const next = this.pickOrigin(group, flow.clientHash, undefined) ?? flow.origin;
    if (next !== flow.origin) {
      const fromText = endpointText(flow.origin.address, flow.originPort);
      flow.origin = next;
      flow.originPort = next.portFor(flow.listener.portOffset);
      this.events.push({ type: 'sessionMoved', kind: 'udp', id: String(flow.id), rule: flow.listener.rule.spec.name, what: 'origin', from: fromText, to: endpointText(next.address, flow.originPort) });
    }
    return next;
  }

  private onFlowReply(nowMs: number, flow: Flow, from: Endpoint, bytes: Uint8Array): void {
    // The origin-facing socket answers only its origin: otherwise it would be an open
    // door from anywhere on the Internet to the player.
    if (from.port !== flow.originPort || from.address !== flow.origin.address) {
      this.drops[DropReason.UnknownSource]++;
      return;
    }
    flow.origin.lastReplyMs = nowMs;
    if (!this.admitDown(nowMs, flow.listener.rule.stats, flow, bytes)) return;
    this.push(flow.listener.socketId, flow.clientAddress, flow.clientPort, undefined, bytes);
  }

  private closeFlow(nowMs: number, flow: Flow, reason: string): void {
    if (flow.closed) return;
    flow.closed = true;
    const listener = flow.listener;
    let head = listener.flowsByPort.get(flow.clientPort);
    if (head === flow) {
      if (flow.nextSamePort) listener.flowsByPort.set(flow.clientPort, flow.nextSamePort);
      else listener.flowsByPort.delete(flow.clientPort);
    } else {
      while (head !== undefined && head.nextSamePort !== flow) head = head.nextSamePort;
      if (head !== undefined) head.nextSamePort = flow.nextSamePort;
    }
    this.flows.delete(flow.id);
    flow.source.sessions--;
    listener.rule.stats.sessionsActive--;
    this.emitClose(flow.id, 'upstream', 'udp');
    this.events.push({
      type: 'sessionEnd',
      kind: 'udp',
      id: String(flow.id),
      rule: listener.rule.spec.name,
      client: endpointText(flow.clientAddress, flow.clientPort),
      origin: endpointText(flow.origin.address, flow.originPort),
      reason,
      totals: this.totals(nowMs, flow),
    });
  }

  private totals(nowMs: number, s: SessionBase): SessionTotals {
    return { packetsUp: s.packetsUp, bytesUp: s.bytesUp, packetsDown: s.packetsDown, bytesDown: s.bytesDown, durationMs: nowMs - s.openedMs };
  }

  // ------------------------------------------------------------------ L4 TCP (admission only: bytes flow in the driver)

  /**
   * Input: a TCP connection arrived on listener `socketId`. Returns where to connect,
   * or a {@link DropReason} when refused (the driver then resets the connection).
   */
  admitTcp(nowMs: number, socketId: number, from: Endpoint): TcpAdmission | DropReasonValue {
    const entry = this.sockets.get(socketId);
    if (entry === undefined || entry.kind !== 'listener' || this.isClosed) return DropReason.Draining;
    const listener = entry.listener;
    const rule = listener.rule;
    const source = this.admit(nowMs, from.address, rule.spec.allow, rule.spec.deny);
    if (source === undefined) return this.lastAdmitDrop();
    const origin = this.pickOrigin(rule.group, this.clientHashFor(rule.spec, from.address, from.port), undefined);
    if (origin === undefined) return DropReason.SessionCap;
    const conn = new TcpConn(this.nextId++, rule, listener, source, from.address, from.port, origin, nowMs, this.config.limits.burstMs);
    conn.tried.push(origin);
    this.tcpConns.set(conn.id, conn);
    source.sessions++;
    rule.stats.sessionsActive++;
    rule.stats.sessionsOpened++;
    this.events.push({ type: 'sessionStart', kind: 'tcp', id: String(conn.id), rule: rule.spec.name, client: endpointText(from.address, from.port), origin: endpointText(origin.address, origin.portFor(listener.portOffset)) });
    return this.admission(conn);
  }

  private lastAdmitDrop(): DropReasonValue {
    if (this.draining) return DropReason.Draining;
    return DropReason.SessionCap;
  }

  private admission(conn: TcpConn): TcpAdmission {
    const spec = conn.rule.spec;
    const port = conn.origin.portFor(conn.listener.portOffset);
    const prefix = spec.proxyProtocol === 'v2' ? encodeProxyV2('tcp', { address: conn.clientAddress, port: conn.clientPort }, { address: spec.listenAddress, port: conn.listener.port }) : undefined;
    return { connId: conn.id, address: conn.origin.address, port, prefix, idleTimeoutMs: spec.idleTimeoutMs, connectTimeoutMs: spec.connectTimeoutMs ?? TCP_CONNECT_TIMEOUT_MS_DEFAULT, stats: conn.rule.stats };
  }

  /**
   * Input: `bytes` were read on TCP connection `connId`, from the client (`up`) or from
   * the origin (`down`), and handed on. Charges the connection's and the rule's byte
   * buckets and returns how long the driver should stop reading that side, ms (0: read
   * on). The bytes are never dropped: a stream is slowed, not cut.
   */
  tcpData(nowMs: number, connId: number, direction: 'up' | 'down', bytes: number): number {
    const conn = this.tcpConns.get(connId);
    if (conn === undefined) return 0;
    const up = direction === 'up';
    let waitMs = (up ? conn.upBucket : conn.downBucket).spend(nowMs, bytes);
    const shared = this.tcpRuleBuckets.get(conn.rule.spec.name);
    if (shared !== undefined) {
      const ruleWaitMs = (up ? shared.up : shared.down).spend(nowMs, bytes);
      if (ruleWaitMs > waitMs) waitMs = ruleWaitMs;
    }
    if (waitMs > 0) this.tcpThrottles++;
    return waitMs;
  }

  /** Input: the origin connection of `connId` is up (counts as a passing health signal). */
  tcpConnected(nowMs: number, connId: number): void {
    const conn = this.tcpConns.get(connId);
    if (conn) conn.origin.lastReplyMs = nowMs;
  }

  /**
   * Input: connecting to the origin failed. The origin is charged a failed check, and
   * the next origin by the hash (not yet tried) is returned, or undefined to give up.
   */
  tcpConnectFailed(_nowMs: number, connId: number): TcpAdmission | undefined {
    const conn = this.tcpConns.get(connId);
    if (!conn) return undefined;
    const group = conn.rule.group;
    if (group.health.mode !== 'none') this.recordCheck(group, conn.origin, false);
    const next = this.pickOrigin(group, this.clientHashFor(conn.rule.spec, conn.clientAddress, conn.clientPort), conn.tried);
    if (next === undefined) return undefined;
    conn.tried.push(next);
    conn.origin = next;
    return this.admission(conn);
  }

  /** Input: the TCP connection ended (either side, idle, or refused); `bytesUp`/`bytesDown` are its totals. */
  tcpClosed(nowMs: number, connId: number, reason: string, bytesUp = 0, bytesDown = 0): void {
    const conn = this.tcpConns.get(connId);
    if (!conn) return;
    this.tcpConns.delete(connId);
    conn.source.sessions--;
    conn.rule.stats.sessionsActive--;
    this.events.push({
      type: 'sessionEnd',
      kind: 'tcp',
      id: String(connId),
      rule: conn.rule.spec.name,
      client: endpointText(conn.clientAddress, conn.clientPort),
      origin: endpointText(conn.origin.address, conn.origin.portFor(conn.listener.portOffset)),
      reason,
      totals: { packetsUp: 0, bytesUp, packetsDown: 0, bytesDown, durationMs: nowMs - conn.openedMs },
    });
  }

  // ------------------------------------------------------------------ health

  private groupOf(origin: OriginState): OriginGroup | undefined {
    for (const group of this.groups.values()) if (group.origins.includes(origin)) return group;
    return undefined;
  }

  private runHealth(nowMs: number, group: OriginGroup): void {
    const health = group.health;
    if (health.mode === 'none') return;
    if (nowMs >= group.checkDeadlineMs) {
      group.checkDeadlineMs = Number.POSITIVE_INFINITY;
      for (const origin of group.origins) {
        if (!origin.checkPending) continue;
        origin.checkPending = false;
        // Traffic answered by the origin since the check went out counts as an answer.
        this.recordCheck(group, origin, origin.lastReplyMs >= origin.checkSentMs);
      }
    }
    if (nowMs < group.nextCheckMs) return;
    group.nextCheckMs = nowMs + health.intervalMs;
    group.checkDeadlineMs = nowMs + health.timeoutMs;
    for (const origin of group.origins) {
      origin.checkPending = true;
      origin.checkSentMs = nowMs;
      origin.checkId = this.nextId++;
      if (health.mode === 'udp') {
        this.push(HEALTH_SOCKET_ID, origin.address, origin.port, undefined, health.udpPayload);
      } else {
        this.tcpChecks.set(origin.checkId, origin);
        this.events.push({ type: 'tcpCheck', checkId: origin.checkId, address: origin.address, port: origin.port, timeoutMs: health.timeoutMs });
      }
    }
  }

  private onHealthReply(nowMs: number, from: Endpoint): void {
    const list = this.originsByLabel.get(endpointText(from.address, from.port));
    if (!list) return;
    for (const origin of list) {
      origin.lastReplyMs = nowMs;
      if (!origin.checkPending) continue;
      origin.checkPending = false;
      const group = this.groupOf(origin);
      if (group) this.recordCheck(group, origin, true);
    }
  }

  private recordCheck(group: OriginGroup, origin: OriginState, ok: boolean): void {
    if (ok) {
      origin.failures = 0;
      origin.successes++;
      if (!origin.healthy && origin.successes >= group.health.successesToUp) {
        origin.healthy = true;
        this.events.push({ type: 'originHealth', group: group.name, origin: origin.label, healthy: true });
      }
    } else {
      origin.successes = 0;
      origin.failures++;
      if (origin.healthy && origin.failures >= group.health.failuresToDown) {
        origin.healthy = false;
        this.events.push({ type: 'originHealth', group: group.name, origin: origin.label, healthy: false });
      }
    }
  }

  // ------------------------------------------------------------------ tunnel

  private findSession(high: number, low: number): TunnelSession | undefined {
    let session = this.sessionsByLow.get(low);
    while (session !== undefined && session.idHigh !== high) session = session.nextSameLow;
    return session;
  }

  private onTunnelDatagram(nowMs: number, from: Endpoint, bytes: Uint8Array): void {
    const stats = this.tunnelStats;
    stats.packetsUp++;
    stats.bytesUp += bytes.length;
    // Stateless junk check first: no table is touched for bytes that are not ours.
    if (quickCheck(bytes) !== 0 || parseHeader(bytes, this.header) !== 0) {
      this.drops[DropReason.Junk]++;
      this.unauthenticatedBytesIn += bytes.length;
      return;
    }
    const h = this.header;
    const type = h.type;
    if (type === PacketType.Probe) return this.onProbe(nowMs, from, bytes);
    const session = this.findSession(h.sessionIdHigh, h.sessionIdLow);
    if (session === undefined) {
      this.unauthenticatedBytesIn += bytes.length;
      if (type === PacketType.Control) return this.onControl(nowMs, from, bytes);
      this.drops[DropReason.UnknownSession]++;
      // Data for a session we do not hold (we restarted, or it ended): say so, or the
      // client, whose probes we still answer, would send into the void.
      if (type === PacketType.Data || type === PacketType.Parity) this.answerUnknownSession(nowMs, from, bytes.length, h.sessionIdHigh, h.sessionIdLow);
      return;
    }
    if (from.port !== session.clientPort || from.address !== session.clientAddress) {
      const exit = session.exit;
      if (exit !== undefined && from.port === exit.port && from.address === exit.address) return this.onFromExit(nowMs, session, exit, bytes);
      const path = session.paths === undefined ? undefined : findPath(session.paths, from);
      if (path === undefined) {
        this.unauthenticatedBytesIn += bytes.length;
        if (type === PacketType.PathResponse) return this.onPathResponse(nowMs, session, from, bytes);
        return this.onPathChange(nowMs, session, from, bytes);
      }
      // Exit role: another validated entry. Downstream follows the entry that carried
      // the latest upstream data: while the SDK duplicates to its backup both are live,
      // and when its current entry dies only the backup's copies still arrive.
      path.lastRxMs = nowMs;
      if (type === PacketType.Data || type === PacketType.Parity) {
        session.clientAddress = path.address;
        session.clientPort = path.port;
      }
    } else if (session.paths !== undefined) {
      const path = findPath(session.paths, from);
      if (path !== undefined) path.lastRxMs = nowMs;
    }
    session.lastActiveMs = nowMs;
    if (type === PacketType.Data || type === PacketType.Parity) {
      if (!session.upBucket.take(nowMs, bytes.length) || (!session.source.peer && !session.source.bucket.take(nowMs, bytes.length))) {
        this.drops[DropReason.RateLimitedSession]++;
        return;
      }
      session.packetsUp++;
      session.bytesUp += bytes.length;
      const exit = session.exit;
      if (exit !== undefined) {
        // Entry role: the exit terminates the session (FEC included); the datagram goes as it came.
        exit.sent(nowMs);
        this.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, bytes);
        return;
      }
      const receiver = session.fecReceiver;
      if (receiver !== undefined) {
        // Uncoded data (k = 0) on an FEC session is fine; coded shards go through the receiver.
        if (h.fecDataCount === 0) {
          this.push(session.id, session.originAddress, session.originPort, undefined, bytes.subarray(HEADER_BYTES));
          return;
        }
        receiver.handleShard(nowMs, h.sequence, h.fecGroup, h.fecIndex, h.fecDataCount, h.fecParityCount, bytes.subarray(HEADER_BYTES));
        this.drainFecReceiver(session);
        this.noteFecDeadline(session);
        return;
      }
      if (type === PacketType.Parity || h.fecDataCount !== 0) {
        this.drops[DropReason.FecNotNegotiated]++;
        return;
      }
      this.push(session.id, session.originAddress, session.originPort, undefined, bytes.subarray(HEADER_BYTES));
      return;
    }
    if (type === PacketType.Control) return this.onSessionControl(nowMs, session, from, bytes);
    if (type === PacketType.Close) {
      if (!verifyCloseMac(session.key, session.idHigh, session.idLow, bytes.subarray(HEADER_BYTES))) {
        this.drops[DropReason.BadControl]++;
        return;
      }
      // Entry role: the exit drops this entry's path (and ends the session when it was
      // the last one). The SDK closes a lingering entry while keeping the session
      // through another, so one entry's close must not end the exit's session.
      if (session.exit !== undefined) this.push(TUNNEL_SOCKET_ID, session.exit.address, session.exit.port, undefined, bytes);
      if (session.paths !== undefined && session.paths.length > 1) return this.dropPath(session, from);
      this.closeSession(nowMs, session, 'client closed', undefined);
      return;
    }
    if (type === PacketType.PathResponse) return; // a late answer on the current path: nothing to do
    this.drops[DropReason.BadControl]++;
  }

  private onProbe(nowMs: number, from: Endpoint, bytes: Uint8Array): void {
    this.unauthenticatedBytesIn += bytes.length;
    if (bytes.length < HEADER_BYTES + PROBE_BODY_BYTES_MIN) {
      this.drops[DropReason.ProbeTooShort]++;
      return;
    }
    if (!this.unauthenticatedLimiter.take(nowMs, from.address)) {
      this.drops[DropReason.RateLimitedSource]++;
      return;
    }
    // Same size as the probe: header copied with the type changed, stamp echoed, our times after it.
    const reply = new Uint8Array(bytes.length);
    reply.set(bytes.subarray(0, HEADER_BYTES + 8));
    reply[2] = PacketType.ProbeReply;
    // Say when we hold no such session: the client probing its current relay learns of a
    // restart from the next reply even if every Close answering its data was lost.
    const h = this.header;
    if (bytes.length >= HEADER_BYTES + PROBE_BODY_BYTES_WITH_STATUS && this.findSession(h.sessionIdHigh, h.sessionIdLow) === undefined) reply[HEADER_BYTES + PROBE_STATUS_OFFSET] = ProbeStatus.UnknownSession;
    const view = new DataView(reply.buffer, reply.byteOffset + HEADER_BYTES, PROBE_BODY_BYTES_MIN);
    view.setFloat64(8, nowMs);
    view.setFloat64(16, nowMs);
    if (this.sendUnauthenticated(TUNNEL_SOCKET_ID, from, bytes.length, reply)) this.probesAnswered++;
  }

  private onControl(nowMs: number, from: Endpoint, bytes: Uint8Array): void {
    // Fleet relays forward many players' opens from one address; their tickets are still verified.
    if (!this.unauthenticatedLimiter.take(nowMs, from.address) && !this.isPeer(from.address)) {
      this.drops[DropReason.RateLimitedSource]++;
      return;
    }
    const decoded = decodeControl(bytes.subarray(HEADER_BYTES));
    if (!decoded.ok || decoded.message.type !== 'sessionOpen') {
      this.drops[DropReason.BadControl]++;
      return;
    }
    this.onSessionOpen(nowMs, from, bytes, decoded.message);
  }

  /**
   * A control message of a known session from its current address. Not charged to the
   * per-source unauthenticated bucket (a CGNAT address carries many players' keepalives)
   * but to the session's own bucket.
   */
  private onSessionControl(nowMs: number, session: TunnelSession, from: Endpoint, bytes: Uint8Array): void {
    if (!session.upBucket.take(nowMs, bytes.length)) {
      this.drops[DropReason.RateLimitedSession]++;
      return;
    }
    const exit = session.exit;
    if (exit !== undefined) {
      // Entry role: opens (keepalives, retries) and fecStats are the exit's business; it answers through us.
      exit.sent(nowMs);
      if (exit.state === 'opening') exit.lastOpenMs = nowMs;
      this.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, bytes);
      return;
    }
    const decoded = decodeControl(bytes.subarray(HEADER_BYTES));
    if (!decoded.ok) {
      this.drops[DropReason.BadControl]++;
      return;
    }
    const m = decoded.message;
    if (m.type === 'sessionOpen') return this.onSessionOpen(nowMs, from, bytes, m);
    if (m.type === 'fecStats') {
      const controller = session.fecController;
      const sender = session.fecSender;
      if (controller === undefined || sender === undefined) return;
      controller.handleStats(nowMs, fecStatsFromMessage(nowMs, m));
      if (controller.lastDecision !== undefined && controller.scheme !== sender.scheme) {
        sender.setScheme(nowMs, controller.scheme);
        this.drainFecSender(session);
        this.noteFecDeadline(session);
      }
      return;
    }
    this.drops[DropReason.BadControl]++;
  }

  private onSessionOpen(nowMs: number, from: Endpoint, packet: Uint8Array, open: ControlMessageFields['sessionOpen']): void {
    const tunnel = this.config.tunnel;
    if (!tunnel) return;
    const receivedBytes = packet.length;
    const high = this.header.sessionIdHigh;
    const low = this.header.sessionIdLow;
    const existing = this.findSession(high, low);
    if (existing !== undefined) {
      // A retransmitted open (its accept was lost): answer again, never larger.
      this.sendUnauthenticated(TUNNEL_SOCKET_ID, from, receivedBytes, this.acceptPacket(existing));
      return;
    }
    const idHex = sessionIdToHex(high, low);
    // Admission without making per-source state: a sender gets an entry only once its
    // ticket verifies (spoofed opens must not fill the table). Known sources keep
    // their caps; unknown ones are held by the stateless limiter that let this through.
    const limits = this.config.limits;
    if (this.draining) {
      this.drops[DropReason.Draining]++;
      return this.reject(from, receivedBytes, high, low, ErrorCode.RelayDraining, 'this relay is draining; connect to another relay');
    }
    if (cidrListMatches(tunnel.deny, from.address) || (tunnel.allow.length > 0 && !cidrListMatches(tunnel.allow, from.address))) {
      this.drops[DropReason.Denied]++;
      return;
    }
    if (this.sessionCount >= limits.sessionsMax) {
      this.drops[DropReason.SessionCap]++;
      return this.reject(from, receivedBytes, high, low, ErrorCode.RelayFull, 'this relay is at its session cap; connect to another relay');
    }
    const known = this.sources.get(from.address);
    if ((known?.sessions ?? 0) >= limits.sessionsPerSourceMax && known?.peer !== true) {
      this.drops[DropReason.SessionCap]++;
      return;
    }
    if (known !== undefined && !known.newSessions.take(nowMs, 0) && !known.peer) {
      this.drops[DropReason.RateLimitedNewSessions]++;
      return;
    }
    const verifyKeys = tunnel.additionalTicketPublicKeys?.length ? [tunnel.ticketPublicKey, ...tunnel.additionalTicketPublicKeys] : tunnel.ticketPublicKey;
    const verified = verifyTicket(open.ticket, verifyKeys as KeyObject | KeyObject[], this.components.wallClockMs(), tunnel.clockSkewMs);
    if (!verified.ok) return this.reject(from, receivedBytes, high, low, verified.code, verified.detail);
    const claims = verified.claims;
    if (claims.sessionId !== idHex) return this.reject(from, receivedBytes, high, low, ErrorCode.TicketMismatch, 'the ticket is for another session id than the packet header');
    if (this.revoked.has(idHex) || this.revokedFeed.has(idHex)) return this.reject(from, receivedBytes, high, low, ErrorCode.TicketRevoked, 'the ticket was revoked');
    const origin = this.resolveTicketOrigin(tunnel, claims.origin);
    if (origin === undefined) return this.reject(from, receivedBytes, high, low, ErrorCode.TicketWrongOrigin, `this relay does not serve origin '${claims.origin.slice(0, 64)}'`);
    const fecMode = open.fecModes.find((mode) => (tunnel.fec.modes as readonly string[]).includes(mode)) ?? (open.fecModes.length === 0 ? 'off' : undefined);
    if (fecMode === undefined) return this.reject(from, receivedBytes, high, low, ErrorCode.FecUnsupported, `relay FEC modes: ${tunnel.fec.modes.join(',')}`);
    const key = openSessionKey(claims, tunnel.additionalSealKeys?.length ? [tunnel.sealKey, ...tunnel.additionalSealKeys] : tunnel.sealKey);
    if (key === undefined) return this.reject(from, receivedBytes, high, low, ErrorCode.TicketForged, 'the session key does not open with this fleet seal key');
    const source = this.sourceFor(nowMs, from.address);
    if (source === undefined) {
      this.drops[DropReason.SessionCap]++;
      return;
    }
    if (known === undefined) source.newSessions.take(nowMs, 0);
    const pps = sessionRate(limits.sessionPacketsPerSecond, claims.limits.packetsPerSecond || Number.POSITIVE_INFINITY);
    const bps = sessionRate(limits.sessionBytesPerSecond, claims.limits.bytesPerSecond || Number.POSITIVE_INFINITY);
    const id = this.nextId++;
    const session = new TunnelSession(
      id,
      source,
      from.address,
      from.port,
      new RateBucket(pps, bps, limits.burstMs, nowMs),
      new RateBucket(pps, bps, limits.burstMs, nowMs),
      nowMs,
      high,
      low,
      idHex,
      key,
      origin.address,
      origin.port,
      claims.origin,
      fecMode,
    );
    session.ticketPacketsPerSecond = claims.limits.packetsPerSecond || Number.POSITIVE_INFINITY;
    session.ticketBytesPerSecond = claims.limits.bytesPerSecond || Number.POSITIVE_INFINITY;
    session.nextSameLow = this.sessionsByLow.get(low);
    this.sessionsByLow.set(low, session);
    this.sessions.set(id, session);
    source.sessions++;
    this.tunnelStats.sessionsActive++;
    this.tunnelStats.sessionsOpened++;
    const exit = claims.exit === undefined ? undefined : this.exitEndpoint(tunnel, claims.exit.relayId, claims.exit.address);
    if (exit !== undefined) {
      // Entry role: the exit (named by the coordinator's signature, so never an open
      // relay) holds the origin-facing socket. The client's open goes to it as it came;
      // the exit's accept comes back through us. No socket or FEC here unless the exit
      // fails (see checkExits).
      session.exit = new ExitLink(claims.exit!.relayId, exit.address, exit.port, packet.slice(), nowMs);
      this.exitSessions.add(session);
      if (this.nextExitCheckMs === Number.POSITIVE_INFINITY) this.nextExitCheckMs = nowMs + EXIT_CHECK_INTERVAL_MS;
      this.events.push({ type: 'sessionStart', kind: 'tunnel', id: idHex, rule: 'tunnel', client: endpointText(from.address, from.port), origin: endpointText(origin.address, origin.port), fecMode, exit: claims.exit!.relayId });
      this.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, session.exit.open);
      return;
    }
    // Exit role (the ticket names this relay): entries are validated paths, several at once.
    if (claims.exit !== undefined) session.paths = [{ address: from.address, port: from.port, lastRxMs: nowMs }];
    this.openUpstream(session, tunnel);
    this.events.push({ type: 'sessionStart', kind: 'tunnel', id: idHex, rule: 'tunnel', client: endpointText(from.address, from.port), origin: endpointText(origin.address, origin.port), fecMode });
    this.sendUnauthenticated(TUNNEL_SOCKET_ID, from, receivedBytes, this.acceptPacket(session));
  }

  /** Opens the session's origin-facing socket and its FEC: the session is terminated here. */
  private openUpstream(session: TunnelSession, tunnel: TunnelSpec): void {
    if (session.upstreamOpen) return;
    session.upstreamOpen = true;
    if (session.fecMode !== 'off') this.startFec(session, tunnel);
    this.sockets.set(session.id, { kind: 'upstream', flow: undefined, session });
    this.events.push({ type: 'openSocket', socketId: session.id, kind: 'upstream', protocol: 'udp', address: this.config.upstreamBindAddress, port: 0, rule: 'tunnel' });
  }

  /**
   * Where to forward a session whose ticket names exit `relayId` at `address`, or
   * undefined to terminate it here: this relay is the exit, or the address is not an
   * `IP:port` a datagram can reach (then serving the session beats refusing it), or
   * it is this relay's own tunnel address (a relay without a configured id).
   */
  private exitEndpoint(tunnel: TunnelSpec, relayId: string, address: string): { address: string; port: number } | undefined {
    if (tunnel.relayId !== undefined && relayId === tunnel.relayId) return undefined;
    const parsed = splitHostPort(address);
    if (!parsed || parsed.port !== parsed.portEnd || parsed.port === 0 || !isIpLiteral(parsed.host)) return undefined;
    if (parsed.host === tunnel.listenAddress && parsed.port === tunnel.listenPort) return undefined;
    return { address: parsed.host, port: parsed.port };
  }

  /**
   * Entry role: a datagram from the session's exit. Data, parity and control go to the
   * client as they are (the exit's numbering and FEC, end to end); the exit's path
   * challenge (it validates us like a client address change) is answered here with
   * the session key, which every fleet relay can unseal from the ticket.
   */
  private onFromExit(nowMs: number, session: TunnelSession, exit: ExitLink, bytes: Uint8Array): void {
    exit.lastRxMs = nowMs;
    exit.waitingSinceMs = Number.POSITIVE_INFINITY;
    const type = this.header.type;
    if (type === PacketType.Data || type === PacketType.Parity) {
      if (this.admitDown(nowMs, this.tunnelStats, session, bytes)) this.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, bytes);
      return;
    }
    // Control and path challenges from the exit count as tunnel traffic too (not charged to the session).
    this.tunnelStats.packetsDown++;
    this.tunnelStats.bytesDown += bytes.length;
    if (type === PacketType.PathChallenge) {
      // The answer (72 bytes) is larger than the challenge (40): only the exit the ticket
      // names is answered, and at most once per keepalive period, so a sender spoofing
      // the exit's address can make us send the real exit a few small packets, no more.
      if (bytes.length < HEADER_BYTES + PATH_NONCE_BYTES || nowMs - exit.lastResponseMs < EXIT_KEEPALIVE_MS) {
        this.drops[DropReason.BadControl]++;
        return;
      }
      exit.lastResponseMs = nowMs;
      this.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, buildPathResponse(session.key, session.idHigh, session.idLow, bytes.subarray(HEADER_BYTES)));
      return;
    }
    if (type === PacketType.Control) {
      const decoded = decodeControl(bytes.subarray(HEADER_BYTES));
      if (!decoded.ok) {
        this.drops[DropReason.BadControl]++;
        return;
      }
      const m = decoded.message;
      if (m.type === 'sessionReject') {
        // The exit will not take the session (draining, full, does not serve the origin): serve it here.
        if (exit.state === 'opening') this.fallBackFromExit(nowMs, session, `exit ${exit.relayId} refused: ${m.reason}`);
        return;
      }
      if (m.type === 'sessionAccept') exit.state = 'open';
      else if (m.type !== 'fecStats') {
        this.drops[DropReason.BadControl]++;
        return;
      }
      session.lastActiveMs = nowMs;
      this.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, bytes);
      return;
    }
    if (type === PacketType.Close) {
      if (openRelayClose(session.key, session.idHigh, session.idLow, bytes.subarray(HEADER_BYTES)) !== undefined) {
        // The exit ended the session (revoked, idle): the client hears it as from any relay.
        this.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, bytes);
        return;
      }
      // Unauthenticated: the exit has no such session (it restarted). Open it again there,
      // at most once per keepalive period however much data meets the refusal.
      if (nowMs - exit.lastOpenMs >= EXIT_KEEPALIVE_MS) {
        exit.lastOpenMs = nowMs;
        exit.sent(nowMs);
        this.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, exit.open);
      }
      return;
    }
    this.drops[DropReason.BadControl]++;
  }

  /**
   * Entry role, every {@link EXIT_CHECK_INTERVAL_MS} while any session is forwarded:
   * an exit that has not accepted within {@link EXIT_OPEN_TIMEOUT_MS}, or has not said
   * anything for `exitDeadAfterMs` since a packet went to it, is judged dead and the
   * session falls back to this relay's own origin-facing socket. A quiet exit with
   * traffic pending gets the session's open again every {@link EXIT_KEEPALIVE_MS}
   * (answered by an accept), so a flow the origin never answers still proves it alive.
   */
  private checkExits(nowMs: number): void {
    const deadAfterMs = this.config.tunnel?.exitDeadAfterMs ?? EXIT_DEAD_AFTER_MS_DEFAULT;
    // No copy of the set: falling back only deletes the session being visited, which a
    // Set's iteration allows (a copy would be garbage of one slot per session, 20 times a second).
    for (const session of this.exitSessions) {
      const exit = session.exit!;
      if (exit.state === 'opening') {
        if (nowMs - exit.openedMs >= EXIT_OPEN_TIMEOUT_MS) this.fallBackFromExit(nowMs, session, `exit ${exit.relayId} did not accept within ${EXIT_OPEN_TIMEOUT_MS} ms`);
        continue;
      }
      if (exit.waitingSinceMs === Number.POSITIVE_INFINITY) continue; // nothing sent since the exit last spoke: no evidence either way
      const silentMs = nowMs - exit.waitingSinceMs;
      if (silentMs >= deadAfterMs) this.fallBackFromExit(nowMs, session, `exit ${exit.relayId} silent for ${Math.round(silentMs)} ms`);
      else if (silentMs >= EXIT_KEEPALIVE_MS && nowMs - exit.lastOpenMs >= EXIT_KEEPALIVE_MS) {
        exit.lastOpenMs = nowMs;
        this.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, exit.open);
      }
    }
    this.nextExitCheckMs = this.exitSessions.size === 0 ? Number.POSITIVE_INFINITY : nowMs + EXIT_CHECK_INTERVAL_MS;
  }

  /**
   * The one case in which the origin sees a new source address: the exit is gone, so
   * this entry opens its own origin-facing socket and terminates the session (FEC
   * included). Its accept, without `exit`, tells the SDK that downstream numbering
   * starts afresh on this relay.
   */
  private fallBackFromExit(nowMs: number, session: TunnelSession, why: string): void {
    const exit = session.exit;
    const tunnel = this.config.tunnel;
    if (exit === undefined || tunnel === undefined) return;
    session.exit = undefined;
    this.exitSessions.delete(session);
    this.openUpstream(session, tunnel);
    session.lastActiveMs = nowMs;
    this.events.push({ type: 'sessionMoved', kind: 'tunnel', id: session.idHex, rule: 'tunnel', what: 'origin', from: `exit ${exit.relayId} ${endpointText(exit.address, exit.port)} (${why})`, to: endpointText(session.originAddress, session.originPort) });
    this.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, this.acceptPacket(session));
  }

  /** Exit role: a validated path closed its part of the session (the session goes on through the others). */
  private dropPath(session: TunnelSession, from: Endpoint): void {
    const paths = session.paths!;
    const index = paths.findIndex((p) => p.address === from.address && p.port === from.port);
    if (index < 0) return;
    paths.splice(index, 1);
    if (session.clientAddress === from.address && session.clientPort === from.port) {
      let latest = paths[0]!;
      for (const p of paths) if (p.lastRxMs > latest.lastRxMs) latest = p;
      session.clientAddress = latest.address;
      session.clientPort = latest.port;
    }
  }

  private startFec(session: TunnelSession, tunnel: TunnelSpec): void {
    const fec = tunnel.fec;
    const scheme: FecScheme = session.fecMode === 'rs' ? { mode: 'rs', k: fec.k, r: fec.r, interleave: 1, holdMs: fec.holdMs } : session.fecMode === 'dup' ? { mode: 'duplicate', copies: fec.copies, spacingMs: fec.spacingMs } : FEC_OFF;
    session.fecSender = new FecSender({ scheme, maxPayloadBytes: FEC_SHARD_BYTES_MAX - 2 });
    session.fecReceiver = new FecReceiver({ maxPayloadBytes: FEC_SHARD_BYTES_MAX - 2 });
    if (fec.adaptive !== false) session.fecController = new FecController({ overheadMax: fec.overheadMax ?? FEC_OVERHEAD_MAX_DEFAULT });
    this.fecSessions.add(session);
  }

  private resolveTicketOrigin(tunnel: TunnelSpec, name: string): { address: string; port: number } | undefined {
    const named = tunnel.origins.get(name);
    if (named) return named;
    const parsed = splitHostPort(name);
    if (!parsed || parsed.port !== parsed.portEnd || parsed.port === 0) return undefined;
    // host:port only inside configured blocks: never an open proxy, and loopback or
    // private ranges only when the operator lists them.
    if (!cidrListMatches(tunnel.allowOriginCidrs, parsed.host)) return undefined;
    return { address: parsed.host, port: parsed.port };
  }

  private acceptPacket(session: TunnelSession): Uint8Array {
    const exit = session.paths !== undefined ? this.config.tunnel?.relayId : undefined;
    return this.controlPacket(PacketType.Control, session.idHigh, session.idLow, encodeControl({ type: 'sessionAccept', sessionId: session.idHex, fecMode: session.fecMode, ...(exit !== undefined ? { exit } : {}) }));
  }

  private controlPacket(type: number, high: number, low: number, body: Uint8Array): Uint8Array {
    const h = this.outHeader;
    h.type = type;
    h.flags = 0;
    h.sessionIdHigh = high;
    h.sessionIdLow = low;
    h.sequence = 0;
    h.fecGroup = h.fecIndex = h.fecDataCount = h.fecParityCount = 0;
    const out = new Uint8Array(HEADER_BYTES + body.length);
    writeTunnelHeader(h, out);
    out.set(body, HEADER_BYTES);
    return out;
  }

  /**
   * Answers data for an unknown session with an (unauthenticated: there is no key)
   * Close `SLIP_ERR_UNKNOWN_SESSION`, through the stateless limiter and never larger
   * than the packet that caused it: to a datagram too small for the encoded reason, a
   * header-only Close (24 bytes, which any data packet has), which means the same.
   * Without it a game sending small datagrams through a relay that restarted faster
   * than the SDK could suspect it would send into the void for good.
   */
  private answerUnknownSession(nowMs: number, from: Endpoint, receivedBytes: number, high: number, low: number): void {
    if (!this.unauthenticatedLimiter.take(nowMs, from.address)) {
      this.drops[DropReason.RateLimitedSource]++;
      return;
    }
    const body = HEADER_BYTES + UNKNOWN_SESSION_BODY.length <= receivedBytes ? UNKNOWN_SESSION_BODY : EMPTY_BODY;
    this.sendUnauthenticated(TUNNEL_SOCKET_ID, from, receivedBytes, this.controlPacket(PacketType.Close, high, low, body));
  }

  /** Refuses a session open with a typed reason, trimmed so the reply is never larger than the request. */
  private reject(from: Endpoint, receivedBytes: number, high: number, low: number, reason: ErrorCodeValue, detail: string): void {
    this.drops[DropReason.TicketRefused]++;
    this.events.push({ type: 'sessionRefused', client: endpointText(from.address, from.port), id: sessionIdToHex(high, low), reason, detail });
    let message = detail;
    for (;;) {
      const packet = this.controlPacket(PacketType.Control, high, low, encodeControl({ type: 'sessionReject', reason, message }));
      if (packet.length <= receivedBytes || message.length === 0) {
        this.sendUnauthenticated(TUNNEL_SOCKET_ID, from, receivedBytes, packet);
        return;
      }
      message = message.slice(0, Math.max(0, message.length - (packet.length - receivedBytes)));
    }
  }

  private onPathChange(nowMs: number, session: TunnelSession, from: Endpoint, bytes: Uint8Array): void {
    this.drops[DropReason.PathUnverified]++;
    if (!this.unauthenticatedLimiter.take(nowMs, from.address) && !this.isPeer(from.address)) return;
    let pending = session.challenges?.find((c) => c.address === from.address && c.port === from.port);
    if (pending === undefined) {
      pending = { address: from.address, port: from.port, nonce: new Uint8Array(PATH_NONCE_BYTES), sentMs: nowMs };
      this.components.randomFill(pending.nonce);
      session.challenges ??= [];
      session.challenges.push(pending);
      if (session.challenges.length > PATH_CHALLENGES_PENDING_MAX) session.challenges.shift();
    } else {
      pending.sentMs = nowMs;
    }
    // The challenge (40 bytes) goes out only if the packet that caused it was at least as large.
    this.sendUnauthenticated(TUNNEL_SOCKET_ID, from, bytes.length, this.controlPacket(PacketType.PathChallenge, session.idHigh, session.idLow, pending.nonce));
  }

  private onPathResponse(nowMs: number, session: TunnelSession, from: Endpoint, bytes: Uint8Array): void {
    const challenges = session.challenges;
    const body = bytes.subarray(HEADER_BYTES);
    if (challenges === undefined || body.length < PATH_NONCE_BYTES + PATH_MAC_BYTES) {
      this.drops[DropReason.PathUnverified]++;
      return;
    }
    const index = challenges.findIndex((c) => c.address === from.address && c.port === from.port && nowMs - c.sentMs <= PATH_CHALLENGE_TIMEOUT_MS && equalBytes(c.nonce, body.subarray(0, PATH_NONCE_BYTES)));
    if (index === -1 || !verifyPathResponseMac(session.key, session.idHigh, session.idLow, challenges[index]!.nonce, body.subarray(PATH_NONCE_BYTES, PATH_NONCE_BYTES + PATH_MAC_BYTES))) {
      this.drops[DropReason.PathUnverified]++;
      return;
    }
    if (session.paths !== undefined) return this.addPath(nowMs, session, from, index);
    const newSource = this.sourceFor(nowMs, from.address);
    if (newSource === undefined) return;
    const fromText = endpointText(session.clientAddress, session.clientPort);
    session.source.sessions--;
    newSource.sessions++;
    session.source = newSource;
    session.clientAddress = from.address;
    session.clientPort = from.port;
    session.challenges = undefined;
    session.lastActiveMs = nowMs;
    this.events.push({ type: 'sessionMoved', kind: 'tunnel', id: session.idHex, rule: 'tunnel', what: 'client', from: fromText, to: endpointText(from.address, from.port) });
  }

  /**
   * Exit role: a new entry proved it holds the session key. It joins the session's
   * paths (the least recently heard is dropped past {@link EXIT_PATHS_MAX}); downstream
   * moves to it when upstream data arrives through it. It is sent an accept at once:
   * the client behind it may be waiting for one (its open arrived as the challenge's cause).
   */
  private addPath(nowMs: number, session: TunnelSession, from: Endpoint, challengeIndex: number): void {
    const paths = session.paths!;
    session.challenges!.splice(challengeIndex, 1);
    if (session.challenges!.length === 0) session.challenges = undefined;
    if (findPath(paths, from) === undefined) {
      if (paths.length >= EXIT_PATHS_MAX) {
        let oldest = -1;
        for (let i = 0; i < paths.length; i++) {
          const p = paths[i]!;
          if (p.address === session.clientAddress && p.port === session.clientPort) continue;
          if (oldest < 0 || p.lastRxMs < paths[oldest]!.lastRxMs) oldest = i;
        }
        paths.splice(oldest, 1);
      }
      paths.push({ address: from.address, port: from.port, lastRxMs: nowMs });
    }
    session.lastActiveMs = nowMs;
    this.events.push({ type: 'sessionMoved', kind: 'tunnel', id: session.idHex, rule: 'tunnel', what: 'client', from: endpointText(session.clientAddress, session.clientPort), to: `${endpointText(from.address, from.port)} (added path ${paths.length})` });
    this.push(TUNNEL_SOCKET_ID, from.address, from.port, undefined, this.acceptPacket(session));
  }

  private onSessionReply(nowMs: number, session: TunnelSession, from: Endpoint, bytes: Uint8Array): void {
    if (from.port !== session.originPort || from.address !== session.originAddress) {
      this.drops[DropReason.UnknownSource]++;
      return;
    }
    if (!this.admitDown(nowMs, this.tunnelStats, session, bytes)) return;
    const sender = session.fecSender;
    if (sender !== undefined && bytes.length <= sender.maxPayloadBytes) {
      session.fecController?.handlePacket(nowMs, bytes.length);
      sender.push(nowMs, bytes);
      this.drainFecSender(session);
      this.noteFecDeadline(session);
      return;
    }
    if (bytes.length + HEADER_BYTES > DATAGRAM_BYTES_MAX) {
      this.drops[DropReason.TooLarge]++;
      return;
    }
    const h = this.outHeader;
    h.type = PacketType.Data;
    h.flags = 0;
    h.sessionIdHigh = session.idHigh;
    h.sessionIdLow = session.idLow;
    h.sequence = session.sequenceOut = (session.sequenceOut + 1) >>> 0;
    h.fecGroup = h.fecIndex = h.fecDataCount = h.fecParityCount = 0;
    const prefix = this.slabs.view(HEADER_BYTES);
    writeTunnelHeader(h, prefix);
    this.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, prefix, bytes);
  }

  private drainFecSender(session: TunnelSession): void {
    const sender = session.fecSender!;
    const h = this.outHeader;
    for (let tx = sender.pollTransmit(this.fecScratch); tx !== undefined; tx = sender.pollTransmit(this.fecScratch)) {
      h.type = tx.index < tx.k ? PacketType.Data : PacketType.Parity;
      h.flags = tx.kind === 2 ? 0x01 : 0;
      h.sessionIdHigh = session.idHigh;
      h.sessionIdLow = session.idLow;
      h.sequence = tx.seq;
      h.fecGroup = tx.groupId;
      h.fecIndex = tx.index;
      h.fecDataCount = tx.k;
      h.fecParityCount = tx.r;
      const out = this.slabs.view(HEADER_BYTES + tx.length);
      writeTunnelHeader(h, out);
      out.set(this.fecScratch.subarray(0, tx.length), HEADER_BYTES);
      this.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, out);
    }
  }

  private drainFecReceiver(session: TunnelSession): void {
    const receiver = session.fecReceiver!;
    for (let n = receiver.pollDelivered(this.fecScratch); n >= 0; n = receiver.pollDelivered(this.fecScratch)) {
      const delivered = this.slabs.view(n);
      delivered.set(this.fecScratch.subarray(0, n));
      this.push(session.id, session.originAddress, session.originPort, undefined, delivered);
    }
    // The upstream receiver's interval stats go back to the client: its FEC sender's
    // controller follows the loss of the direction it sends on (the last mile up).
    for (let e = receiver.pollEvent(); e !== undefined; e = receiver.pollEvent()) {
      if (e.stats.wirePackets === 0 && e.stats.received === 0) continue;
      this.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, this.controlPacket(PacketType.Control, session.idHigh, session.idLow, encodeControl(fecStatsMessage(e.stats))));
    }
  }

  private noteFecDeadline(session: TunnelSession): void {
    const a = session.fecSender!.pollTimeout() ?? Number.POSITIVE_INFINITY;
    // The receiver's group expiry needs no wakeup of its own (see FecReceiver.nextOutputMs):
    // about half the relay's timeouts at game rates, each one a scan of the sessions.
    const b = session.fecReceiver!.nextOutputMs() ?? Number.POSITIVE_INFINITY;
    session.fecDeadlineMs = a < b ? a : b;
    if (session.fecDeadlineMs < this.fecDeadlineMs) this.fecDeadlineMs = session.fecDeadlineMs;
  }

  private closeSession(nowMs: number, session: TunnelSession, reason: string, code: ErrorCodeValue | undefined): void {
    if (session.closed) return;
    session.closed = true;
    let head = this.sessionsByLow.get(session.idLow);
    if (head === session) {
      if (session.nextSameLow) this.sessionsByLow.set(session.idLow, session.nextSameLow);
      else this.sessionsByLow.delete(session.idLow);
    } else {
      while (head !== undefined && head.nextSameLow !== session) head = head.nextSameLow;
      if (head !== undefined) head.nextSameLow = session.nextSameLow;
    }
    this.sessions.delete(session.id);
    if (session.fecReceiver) this.fecRecoveredClosed += session.fecReceiver.totals.recovered;
    this.fecSessions.delete(session);
    this.exitSessions.delete(session);
    session.source.sessions--;
    this.tunnelStats.sessionsActive--;
    if (code !== undefined && this.tunnelOpen) {
      // Tell the client why, so the SDK can show it (and stop sending); MACed with the
      // session key, so that a spoofed Close cannot end a client's session.
      const reasonBytes = encodeControl({ type: 'sessionReject', reason: code, message: reason });
      const body = new Uint8Array(reasonBytes.length + CLOSE_MAC_BYTES);
      body.set(reasonBytes);
      body.set(relayCloseMac(session.key, session.idHigh, session.idLow, reasonBytes), reasonBytes.length);
      this.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, this.controlPacket(PacketType.Close, session.idHigh, session.idLow, body));
    }
    if (session.upstreamOpen) this.emitClose(session.id, 'upstream', 'udp');
    this.events.push({
      type: 'sessionEnd',
      kind: 'tunnel',
      id: session.idHex,
      rule: 'tunnel',
      client: endpointText(session.clientAddress, session.clientPort),
      origin: endpointText(session.originAddress, session.originPort),
      reason,
      totals: this.totals(nowMs, session),
    });
  }

  // ------------------------------------------------------------------ housekeeping

  /**
   * Closes idle flows and sessions, at most {@link SWEEP_CLOSES_MAX} per call (each
   * close logs a line and closes a socket: thousands expiring together would stall
   * forwarding for milliseconds). Returns true when the sweep is complete.
   */
  private sweep(nowMs: number): boolean {
    let budget = SWEEP_CLOSES_MAX;
    for (const flow of this.flows.values()) {
      if (nowMs - flow.lastActiveMs < flow.listener.rule.spec.idleTimeoutMs) continue;
      if (budget-- === 0) return false;
      this.closeFlow(nowMs, flow, 'idle');
    }
    const tunnelIdleMs = this.config.tunnel?.idleTimeoutMs ?? Number.POSITIVE_INFINITY;
    for (const session of this.sessions.values()) {
      if (nowMs - session.lastActiveMs >= tunnelIdleMs) {
        if (budget-- === 0) return false;
        this.closeSession(nowMs, session, 'idle', ErrorCode.SessionIdle);
      } else if (session.challenges !== undefined) {
        session.challenges = session.challenges.filter((c) => nowMs - c.sentMs <= PATH_CHALLENGE_TIMEOUT_MS);
        if (session.challenges.length === 0) session.challenges = undefined;
      }
    }
    if (this.revokedFeed.size > 0) {
      // A revoked ticket past its expiry (plus skew) cannot open a session anyway.
      const wallMs = this.components.wallClockMs() - (this.config.tunnel?.clockSkewMs ?? 0);
      for (const [id, until] of this.revokedFeed) if (until < wallMs) this.revokedFeed.delete(id);
    }
    for (const [address, source] of this.sources) {
      if (source.sessions === 0 && nowMs - source.lastSeenMs >= SOURCE_IDLE_MS) this.sources.delete(address);
    }
    return true;
  }
}

/** The tighter of the config's rate (0 = unlimited) and the ticket's (∞ = none); 0 when both are unlimited. */
function sessionRate(configRate: number, ticketRate: number): number {
  const limit = Math.min(configRate === 0 ? Number.POSITIVE_INFINITY : configRate, ticketRate);
  return Number.isFinite(limit) ? limit : 0;
}

function findPath(paths: SessionPath[], from: Endpoint): SessionPath | undefined {
  for (const p of paths) if (p.port === from.port && p.address === from.address) return p;
  return undefined;
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || (host.includes(':') && /^[0-9A-Fa-f:.]+$/.test(host));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Writes a header the core built itself (fields known valid), without writeHeader's assertion cost per packet. */
function writeTunnelHeader(h: PacketHeader, out: Uint8Array): void {
  out[0] = HEADER_MAGIC;
  out[1] = PROTOCOL_VERSION;
  out[2] = h.type;
  out[3] = h.flags;
  writeU32(out, 4, h.sessionIdHigh);
  writeU32(out, 8, h.sessionIdLow);
  writeU32(out, 12, h.sequence);
  writeU32(out, 16, h.fecGroup);
  out[20] = h.fecIndex;
  out[21] = h.fecDataCount;
  out[22] = h.fecParityCount;
  out[23] = 0;
}

function writeU32(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value >>> 24;
  out[offset + 1] = (value >>> 16) & 0xff;
  out[offset + 2] = (value >>> 8) & 0xff;
  out[offset + 3] = value & 0xff;
}
