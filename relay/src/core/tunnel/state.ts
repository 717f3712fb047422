/**
 * The records of a tunnel session that several tunnel sub-machines and the socket table
 * point at: the session itself (run by session.ts), its pending path challenges and an
 * exit's validated paths (paths.ts), and an entry's link to the session's exit relay
 * (exit-link.ts). Records only: the logic that changes them stays in those
 * sub-machines. A leaf below the context, which names sessions in its socket table: it
 * imports no sub-machine and not the context, so the import graph has no circle.
 */
import type { FecController, FecReceiver, FecSender } from '../../../../proto/src/fec/index.js';
import type { RateBucket } from '../bucket.js';
import { SessionBase, type SourceState } from '../session-base.js';

/** A path challenge sent to a new address of a session, waiting for its response. */
export interface PendingChallenge {
  address: string;
  port: number;
  nonce: Uint8Array;
  sentMs: number;
}

/** Exit side: one validated path of a session (an entry relay, or the client itself). */
export interface SessionPath {
  address: string;
  port: number;
  /** Last packet from it, ms (the least recent is evicted when the set is full). */
  lastRxMs: number;
}

/** One tunnel session. */
export class TunnelSession extends SessionBase {
  /** Entry role: the exit this session is forwarded to; undefined when this relay talks to the origin. */
  exit: ExitLink | undefined = undefined;
  /** Exit role: every validated path (entries) the session may arrive on; undefined for a session with one client address (no exit). */
  paths: SessionPath[] | undefined = undefined;
  /** Whether the origin-facing socket was opened (forwarded sessions open it only on falling back). */
  upstreamOpen = false;
  /** The next session whose id has the same low half. */
  nextInChain: TunnelSession | undefined = undefined;
  sequenceOut = 0;
  challenges: PendingChallenge[] | undefined = undefined;
  fecSender: FecSender | undefined = undefined;
  fecReceiver: FecReceiver | undefined = undefined;
  /** Earliest of this session's FEC sender and receiver deadlines, ms (+∞ when neither has one). */
  fecDeadlineMs = Number.POSITIVE_INFINITY;
  /** Adaptive downstream protection, driven by the client's `fecStats` (its receiver's loss); undefined = the configured scheme stays. */
  fecController: FecController | undefined = undefined;
  /**
   * The client's downstream FEC receiver as its `fecStats` reported it, summed over the
   * session's life (application packets delivered, rebuilt, lost for good): the
   * heartbeat status's downstream loss (fleet-status.ts). Undefined until a report.
   */
  downFecTotals: { received: number; recovered: number; unrecoverable: number } | undefined = undefined;
  /** The ticket's own limits, kept so a reload can lower the config caps without raising a session above its ticket. */
  ticketPacketsPerSecond = Number.POSITIVE_INFINITY;
  ticketBytesPerSecond = Number.POSITIVE_INFINITY;
  /** The latency budget the client's open asked for, ms; undefined: the relay's `tunnel.fec.latencyBudgetMs`. */
  latencyBudgetMs: number | undefined = undefined;
  /** The header its origin gets (`tunnel.proxyProtocol`, or the named origin's own): set at open and by a reload. */
  proxyProtocol: 'none' | 'v2' | 'spp' = 'none';
  /** The ticket's player id (given to the origin in a PROXY v2 TLV), or undefined. */
  playerId: string | undefined = undefined;
  /** Exit role: the address the session was opened from, when it is the player's (undefined when a fleet relay forwarded the open). */
  openedFromAddress: string | undefined = undefined;
  /** Exit role: the port the session was opened from, with `openedFromAddress` (0: none). */
  openedFromPort = 0;
  /** The header in front of datagrams to the origin (origin-header.ts), and the mode and address it was built for. */
  originPrefix: Uint8Array | undefined = undefined;
  /** The `proxyProtocol` mode `originPrefix` was built for (undefined: not built yet). */
  originPrefixMode: string | undefined = undefined;
  /** The player address `originPrefix` was built for (undefined: unknown). */
  originPrefixAddress: string | undefined = undefined;
  /** The player port `originPrefix` was built for (-1: not built yet). */
  originPrefixPort = -1;
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

/**
 * Entry side of a session forwarded to its exit relay (see relay-core.ts,
 * "Exit relays"). Everything from the client goes to the exit verbatim and everything
 * from the exit to the client, so FEC and sequence numbering run end to end between
 * the SDK and the exit.
 */
export class ExitLink {
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
  /** Last path response sent to the exit, ms (rate limit: see `ExitLinks.onFromExit` in exit-link.ts). */
  lastResponseMs = Number.NEGATIVE_INFINITY;
  /** Last open sent with a cookie the exit asked for (a `sessionRetry`), ms: at most one per keepalive period. */
  lastCookieOpenMs = Number.NEGATIVE_INFINITY;
  constructor(
    readonly relayId: string,
    readonly address: string,
    readonly port: number,
    /** The client's `sessionOpen` datagram (header and ticket), re-sent as keepalive and to re-open; with the exit's cookie once it asked for one. */
    public open: Uint8Array,
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
