/**
 * The relay's validated configuration as the core sees it: plain data, already
 * checked (relay/src/config.ts turns YAML into this and names the file/key/range of
 * anything wrong). The core never parses text.
 */
import type { KeyObject } from 'node:crypto';
import type { SlidingWindowParameters } from '../../../proto/src/fec/index.js';
import type { Cidr } from './addr.js';

/** How an origin group's health is checked. */
export interface HealthCheckSpec {
  /** `udp`: send `udpPayload`, any reply within `timeoutMs` is healthy; `tcp`: a TCP connect succeeds; `none`: always healthy. */
  readonly mode: 'udp' | 'tcp' | 'none';
  /** Period between checks, ms. */
  readonly intervalMs: number;
  /** Wait for an answer, ms (< intervalMs). */
  readonly timeoutMs: number;
  /** Consecutive failures that take an origin out. */
  readonly failuresToDown: number;
  /** Consecutive successes that bring it back. */
  readonly successesToUp: number;
  /** The UDP check datagram (mode `udp`). */
  readonly udpPayload: Uint8Array;
}

/** One origin: an IP literal and a port, or a port range mapped from a listen range. */
export interface OriginSpec {
  readonly address: string;
  readonly port: number;
  /** Last port of a range (= `port` for one port). */
  readonly portEnd: number;
}

/** A named set of interchangeable origins. */
export interface OriginGroupSpec {
  readonly name: string;
  readonly origins: readonly OriginSpec[];
  readonly healthCheck: HealthCheckSpec;
}

/** An L4 port-mapping rule: listen on a port (or range), forward to an origin group. */
export interface RuleSpec {
  /** Unique name, used in logs and metric labels. */
  readonly name: string;
  readonly protocol: 'udp' | 'tcp';
  readonly listenAddress: string;
  readonly listenPort: number;
  /** Last port of the listen range (= `listenPort` for one port). */
  readonly listenPortEnd: number;
  /** Name of the origin group. */
  readonly group: string;
  /** A flow with no traffic either way for this long is closed, ms (30 000–3 600 000). */
  readonly idleTimeoutMs: number;
  /**
   * Most flows (UDP) or connections (TCP) of this rule at once, inside its kind's
   * budget (see budgets.ts). Optional; default: the kind's budget (relay/src/config.ts
   * splits it among the rules of that protocol).
   */
  readonly sessionsMax?: number;
  /**
   * TCP only: an origin connect that has not completed after this long counts as a
   * failed connect (the next origin is tried), ms. Default
   * {@link TCP_CONNECT_TIMEOUT_MS_DEFAULT} (3000), accepted 100–60 000.
   */
  readonly connectTimeoutMs?: number;
  /** Real-client-address header the origin gets: none, PROXY v2, or SPP (UDP only). */
  readonly proxyProtocol: 'none' | 'v2' | 'spp';
  /** What the consistent hash keys on: the client IP (a returning client lands on the same origin) or IP and port. */
  readonly hashKey: 'ip' | 'ip-port';
  /**
   * TCP only: byte rate of each connection, each way (client → origin and origin →
   * client counted apart), bytes/s; 0 or absent = unlimited. Bucket depth
   * `limits.burstMs` (at least 64 KiB). Accepted 0–10^10.
   */
  readonly connectionBytesPerSecond?: number;
  /**
   * TCP only: byte rate of all the rule's connections together, each way, bytes/s;
   * 0 or absent = unlimited. Bucket depth `limits.burstMs` (at least 64 KiB). Accepted 0–10^10.
   */
  readonly bytesPerSecond?: number;
  /** When non-empty, only these sources may use the rule. */
  readonly allow: readonly Cidr[];
  /** These sources may never use the rule (checked before `allow`). */
  readonly deny: readonly Cidr[];
}

/** Abuse limits; 0 on a rate means unlimited. */
export interface LimitsSpec {
  /** Most sessions of every kind together (the overall ceiling over the budgets below). */
  readonly sessionsMax: number;
  /**
   * Most L4 UDP flows (see budgets.ts). Optional for configs built in code; default
   * `sessionsMax` (relay/src/config.ts splits `sessionsMax` among the kinds configured).
   */
  readonly udpFlowsMax?: number;
  /** Most L4 TCP connections. Optional; default as {@link udpFlowsMax}. */
  readonly tcpConnectionsMax?: number;
  /** Most tunnel sessions. Optional; default as {@link udpFlowsMax}. */
  readonly tunnelSessionsMax?: number;
  /**
   * An L4 UDP flow whose origin has not answered yet ends after this long without a
   * packet (or the rule's `idleTimeoutMs` if shorter), ms. Optional; default
   * {@link UNREPLIED_IDLE_TIMEOUT_MS_DEFAULT} (5000).
   */
  readonly unrepliedIdleTimeoutMs?: number;
  readonly sessionsPerSourceMax: number;
  readonly newSessionsPerSourcePerSecond: number;
  readonly sourcePacketsPerSecond: number;
  readonly sourceBytesPerSecond: number;
  readonly sessionPacketsPerSecond: number;
  readonly sessionBytesPerSecond: number;
  readonly unauthenticatedPacketsPerSecond: number;
  /** Ticket (Ed25519) verifications per second over every source before session opens must carry a cookie (tunnel/cookie.ts). */
  readonly ticketVerificationsPerSecond: number;
  /** Ticket verifications per second one source IP may cause; beyond it its opens must carry a cookie. */
  readonly ticketVerificationsPerSourcePerSecond: number;
  readonly burstMs: number;
}

/** FEC settings for tunnel sessions. */
export interface TunnelFecSpec {
  /**
   * Modes the relay agrees to: `sw` (sliding window), `rs`, `dup`, `off`. The client's
   * order decides among them (the first it offers that is listed here).
   */
  readonly modes: readonly ('rs' | 'dup' | 'off' | 'sw')[];
  /** Reed-Solomon data shards per group (mode `rs`). */
  readonly k: number;
  /** Parity shards per group (mode `rs`). */
  readonly r: number;
  /** Longest hold of a group before its parity goes out, ms. */
  readonly holdMs: number;
  /** Extra copies per packet (mode `dup`). */
  readonly copies: number;
  /** Spacing between copies, ms (mode `dup`). */
  readonly spacingMs: number;
  /**
   * Let the client's `fecStats` reports (its downstream receiver's loss) drive an
   * adaptive controller that replaces the scheme above once it has evidence. Optional
   * for configs built in code; default true.
   */
  readonly adaptive?: boolean;
  /** Cap on the adaptive controller's extra bandwidth, fraction of the data. Optional; default 2. */
  readonly overheadMax?: number;
  /**
   * Downstream latency budget of sessions whose client sets none, ms: what the adaptive
   * controller keeps rebuilt packets within at p99 (mode `sw`; in rs/dup the longest
   * group fill or copy spacing). Optional; default: the controller's (10 ms for `sw`,
   * 20 ms for rs/dup).
   */
  readonly latencyBudgetMs?: number;
  /**
   * Fixed sliding-window settings for sessions in mode `sw` when `adaptive` is false
   * (units and ranges on {@link SlidingWindowParameters}); they also size the receiver.
   * Optional; default `SLIDING_WINDOW_PARAMETERS_DEFAULT` (1 repair per source, 2 ms
   * spacing, 8 packets, 20 ms).
   */
  readonly sw?: SlidingWindowParameters;
}

/** Tunnel mode: one UDP port speaking the Slipstream wire protocol. */
export interface TunnelSpec {
  readonly listenAddress: string;
  readonly listenPort: number;
  /** The coordinator's Ed25519 public key tickets are verified with. */
  readonly ticketPublicKey: KeyObject;
  /** The fleet seal key (32 bytes) session keys are sealed under. */
  readonly sealKey: Uint8Array;
  /**
   * Further ticket public keys accepted besides {@link ticketPublicKey} (default none):
   * during a signing-key rotation, the coordinators' next or previous key.
   */
  readonly additionalTicketPublicKeys?: readonly KeyObject[];
  /** Further seal keys (32 bytes each) tried after {@link sealKey} (default none): a seal-key rotation. */
  readonly additionalSealKeys?: readonly Uint8Array[];
  /**
   * Origins tickets may name by name → address, each with an optional
   * {@link proxyProtocol} of its own (default: the tunnel's).
   */
  readonly origins: ReadonlyMap<string, { readonly address: string; readonly port: number; readonly proxyProtocol?: 'none' | 'v2' | 'spp' }>;
  /** `host:port` origins in tickets are accepted only inside these blocks (default none: names only). */
  readonly allowOriginCidrs: readonly Cidr[];
  readonly idleTimeoutMs: number;
  /** Wall-clock tolerance between coordinator and relay when checking expiry, ms. */
  readonly clockSkewMs: number;
  readonly allow: readonly Cidr[];
  readonly deny: readonly Cidr[];
  readonly fec: TunnelFecSpec;
  /**
   * This relay's id in the fleet (`tunnel.relayId`, else `fleet.relayId`). A ticket
   * whose exit names this id is terminated here; a ticket naming another exit is
   * forwarded to it. Optional; without it this relay is never an exit.
   */
  readonly relayId?: string;
  /**
   * Sources that are fleet relays (entries forwarding sessions to this relay as their
   * exit): one entry address carries many players' sessions, so per-source session
   * caps, new-session rates and the unauthenticated-packet limiter do not apply to
   * them (per-session limits and ticket checks still do). Optional; default none.
   */
  readonly peerCidrs?: readonly Cidr[];
  /**
   * An entry forwarding to an exit judges the exit dead after this long without a
   * packet from it while it has traffic to carry, and falls back to its own
   * origin-facing socket, ms. Optional; default `EXIT_DEAD_AFTER_MS_DEFAULT` (1000, constants.ts).
   */
  readonly exitDeadAfterMs?: number;
  /**
   * The header in front of every datagram this relay sends to a session's origin (not
   * on the origin's replies): `v2` (PROXY v2 with the player's address and the ticket's
   * player id, TLV 0xE0), `spp` (Simple Proxy Protocol: the address only) or `none`.
   * Optional; default `none`. A named origin may set its own (`origins`); `host:port`
   * origins take this one. See origin-header.ts for the address used per transport.
   */
  readonly proxyProtocol?: 'none' | 'v2' | 'spp';
  /**
   * Set when the relay follows a coordinator's revocation feed (`tunnel.coordinatorUrl`):
   * how old the revocation list may grow (since the feed last answered) before new
   * sessions are refused with `SLIP_ERR_RELAY_REVOCATIONS_STALE` (`refuse`) or admitted
   * and counted (`admit`). Optional; undefined = no feed, the list never goes stale.
   */
  readonly revocationFeed?: RevocationFeedSpec;
}

/** How a relay following a revocation feed treats new sessions when its list is stale. */
export interface RevocationFeedSpec {
  /** Age of the list (since the feed's last answer) beyond which it is stale, ms (`tunnel.revocationMaxAgeMs`, default 300000). */
  readonly maxAgeMs: number;
  /** `refuse` (default): refuse new sessions while stale; `admit`: admit them, unchecked against revocations made since (`tunnel.revocationStalePolicy`). */
  readonly stalePolicy: 'refuse' | 'admit';
}

/** Everything the core needs. */
export interface RelayCoreConfig {
  readonly rules: readonly RuleSpec[];
  readonly groups: readonly OriginGroupSpec[];
  readonly limits: LimitsSpec;
  readonly tunnel: TunnelSpec | undefined;
  /** Local address origin-facing sockets bind to (e.g. `0.0.0.0`, or `127.0.0.1` in tests). */
  readonly upstreamBindAddress: string;
  /** L4 TCP admission per source address (YAML `tcp:`); optional in code, each field defaulting as in `constants.ts`. */
  readonly tcp?: TcpLimitsSpec;
}

/**
 * L4 TCP caps per source address, so that connections held open without traffic (a
 * slowloris) from a few addresses cannot fill the relay's tables. A SIGHUP applies them
 * to new connections (and the first-byte timeout to live ones).
 */
export interface TcpLimitsSpec {
  /** Open TCP connections per source address, every TCP rule together. */
  readonly connectionsPerSourceMax: number;
  /** Connections per source address that have not moved a byte either way yet (connecting ones included). */
  readonly silentPerSourceMax: number;
  /** A connection with no byte either way this long after its origin connected is ended (`no first byte`), ms; 0 = never. */
  readonly firstByteTimeoutMs: number;
}
