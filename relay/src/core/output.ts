/**
 * What the relay core hands its driver, and the one place it is queued: datagrams to
 * send (a ring of reusable {@link Transmit} objects: no allocation per packet), events
 * (sockets to open and close, session log lines), the drop counters, and the one
 * anti-amplification gate ({@link RelayOutput.sendUnauthenticated}) every reply to a
 * sender that has proved nothing goes through.
 */
import type { ErrorCodeValue } from '../../../proto/src/errors.js';
import type { Endpoint } from '../../../proto/src/transport.js';

/** Why a packet was dropped; indexes {@link RelayOutput.drops}. Stable: they are metric labels. */
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

const EMPTY = new Uint8Array(0);

/**
 * One datagram to send. The object is reused by the next {@link RelayOutput.pollTransmit};
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
  /**
   * An L4 UDP flow ended without ever hearing from its origin (`reason`: `idle`, `shed`
   * to make room, …). It logged no start: the driver counts these into one aggregated
   * line per interval instead of a line each.
   */
  | { readonly type: 'flowUnreplied'; readonly rule: string; readonly client: string; readonly origin: string; readonly reason: string }
  | { readonly type: 'sessionRefused'; readonly client: string; readonly id: string; readonly reason: ErrorCodeValue; readonly detail: string }
  | { readonly type: 'originHealth'; readonly group: string; readonly origin: string; readonly healthy: boolean }
  /** Run a TCP connect check and report it with `RelayCore.handleCheckResult`. */
  | { readonly type: 'tcpCheck'; readonly checkId: number; readonly address: string; readonly port: number; readonly timeoutMs: number }
  /** End TCP connection `connId` (both sockets) for `reason` (e.g. `idle`), then report it with `RelayCore.tcpClosed`. */
  | { readonly type: 'tcpEnd'; readonly connId: number; readonly reason: string };

/** Transmits the ring starts with; it doubles when full (a power of two: indexes wrap by mask). */
const TX_RING_START = 64;

/** The core's output queues, drop counters and anti-amplification ledger (one per core). */
export class RelayOutput {
  /** Packets dropped, indexed by {@link DropReason}. */
  readonly drops = new Float64Array(dropReasonNames.length);
  /** Bytes received from, and sent to, senders not (yet) authenticated: the anti-amplification ledger. */
  unauthenticatedBytesIn = 0;
  unauthenticatedBytesOut = 0;

  private txRing: Transmit[] = [];
  private txHead = 0;
  private txCount = 0;
  private readonly events: RelayEvent[] = [];
  private eventHead = 0;

  constructor() {
    for (let i = 0; i < TX_RING_START; i++) this.txRing.push(new Transmit());
  }

  /** Queues an event for the driver. */
  event(event: RelayEvent): void {
    this.events.push(event);
  }

  /** Queues a datagram: `prefix` (optional) then `bytes`, both views the driver must not modify. */
  push(socketId: number, address: string, port: number, prefix: Uint8Array | undefined, bytes: Uint8Array): void {
    if (this.txCount === this.txRing.length) this.growRing();
    const tx = this.txRing[(this.txHead + this.txCount) & (this.txRing.length - 1)]!;
    this.txCount++;
    tx.socketId = socketId;
    tx.address = address;
    tx.port = port;
    tx.prefix = prefix;
    tx.bytes = bytes;
  }

  /**
   * The one way to answer a sender that has not proved anything: the reply goes out
   * only if it is no larger than what that sender sent (anti-amplification).
   */
  sendUnauthenticated(socketId: number, to: Endpoint, receivedBytes: number, reply: Uint8Array): boolean {
    if (reply.length > receivedBytes) {
      this.drops[DropReason.Amplification]++;
      return false;
    }
    this.unauthenticatedBytesOut += reply.length;
    this.push(socketId, to.address, to.port, undefined, reply);
    return true;
  }

  /** The next datagram to send (reused object), or undefined. */
  pollTransmit(): Transmit | undefined {
    if (this.txCount === 0) return undefined;
    const tx = this.txRing[this.txHead]!;
    this.txHead = (this.txHead + 1) & (this.txRing.length - 1);
    this.txCount--;
    return tx;
  }

  /** The next event, or undefined. */
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

  private growRing(): void {
    const old = this.txRing;
    const next: Transmit[] = [];
    for (let i = 0; i < this.txCount; i++) next.push(old[(this.txHead + i) & (old.length - 1)]!);
    while (next.length < old.length * 2) next.push(new Transmit());
    this.txRing = next;
    this.txHead = 0;
  }
}
