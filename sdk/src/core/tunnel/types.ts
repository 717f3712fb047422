/**
 * The public shapes of a `TunnelClient`: its options, the candidates it is given,
 * the events and datagrams it emits and its counters. `tunnel-client.ts` re-exports
 * them, so importers keep taking them from there. `C.*` names are the defaults in
 * `sdk/src/core/constants.ts`.
 */
import type { ClientPathReport } from '../../../../proto/src/api/contract.js';
import type { SlidingWindowParameters } from '../../../../proto/src/fec/index.js';
import type { HmacSha256 } from '../../../../proto/src/session-mac.js';
import type { Endpoint } from '../../../../proto/src/transport.js';
import type { RelaySelectorInit } from '../relay-selector.js';

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
  /** Relay→origin part of the path, ms (see `RelaySelector`). Default 0. */
  readonly restMs?: number;
}

/** Options of a `TunnelClient`. */
export interface TunnelClientInit {
  /** 16 lowercase hex digits, from the ticket. */
  readonly sessionId: string;
  /** The ticket bytes (opaque to the client). */
  readonly ticket: Uint8Array;
  /** The 32-byte session key the game backend handed out with the ticket. */
  readonly sessionKey: Uint8Array;
  /**
   * HMAC-SHA256 for the session MACs (path responses, Closes): Node's synchronous
   * `nodeHmacSha256` (proto/src/wire.ts), or an asynchronous one (WebCrypto in a
   * browser), whose work the client queues for its driver (`pollMacJob`). Required: the
   * core imports no crypto library, so that it runs in a browser.
   */
  readonly hmac: HmacSha256;
  /**
   * FEC modes offered, best first; the relay takes the first it enables. Default
   * `['sw', 'dup', 'rs', 'off']`: sliding-window repairs follow each packet within a
   * few ms (no waiting for a group to fill), and a relay that predates `sw` gets spaced
   * copies, which at game rates protect as well as Reed-Solomon groups of one.
   */
  readonly fecModes?: readonly string[];
  /**
   * The session's latency budget, ms: in mode `sw` both directions' adaptive
   * controllers keep the packets they rebuild later than this under 0.3 % (so a round trip's p99 stays within it), and
   * choose repairs per packet and the window for loss and burstiness within it. Sent to
   * the relay only when set (relays before it refuse the field). Default: the
   * controller's, `FEC_SW_LATENCY_BUDGET_MS_DEFAULT` (10 ms), and the relay's
   * `tunnel.fec.latencyBudgetMs` downstream.
   */
  readonly latencyBudgetMs?: number;
  /**
   * Fixed settings for the upstream sender in mode `sw` instead of the adaptive
   * controller (tests, measurements). Missing fields take
   * `SLIDING_WINDOW_PARAMETERS_DEFAULT` (1 repair per source, 2 ms spacing, 8 packets,
   * 20 ms). Default: none (adaptive).
   */
  readonly slidingWindow?: Partial<SlidingWindowParameters>;
  /** Selection rule tuning. Default: the selector's defaults. */
  readonly selector?: RelaySelectorInit;
  /** Probe period of the current relay, ms (bounds failure detection). Default `C.PROBE_CURRENT_INTERVAL_MS_DEFAULT`. */
  readonly probeCurrentIntervalMs?: number;
  /** Probe period of the backup, ms. Default `C.PROBE_BACKUP_INTERVAL_MS_DEFAULT`. */
  readonly probeBackupIntervalMs?: number;
  /** Probe period of the other candidates, ms. Default `C.PROBE_OTHER_INTERVAL_MS_DEFAULT`. */
  readonly probeOtherIntervalMs?: number;
  /** Give up when no session opens within this long of the first candidates, ms. Default `C.CONNECT_TIMEOUT_MS_DEFAULT`. */
  readonly connectTimeoutMs?: number;
  /** Path reports for the coordinator this often, ms. Default `C.REPORT_INTERVAL_MS_DEFAULT`. */
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

/** One per-relay path figure for the coordinator: the API contract's client report (`POST /v1/reports`). */
export type PathReport = ClientPathReport;

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

/** Counters of a connection; see `TunnelClient.stats`. */
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
  /** Upstream FEC payload bytes sent so far: the app's own (`data`) and redundancy (`redundant`: copies, parity, repairs). */
  readonly upstreamFecBytes: { readonly data: number; readonly redundant: number };
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
  /** Whether upstream goes to the backup instead of the silent current relay now (a tentative failover; see `Liveness.upstreamBackup`). */
  readonly viaBackup: boolean;
  /** Path challenges answered. */
  readonly pathChallenges: number;
}

/** One datagram to send (a fresh buffer the driver may keep). */
export interface ClientTransmit {
  readonly to: Endpoint;
  readonly bytes: Uint8Array;
}

/**
 * A MAC the client needs computed, when its HMAC is asynchronous: HMAC-SHA256 of `data`
 * under `key` (32 bytes), handed back with `TunnelClient.handleMacResult(now, id, mac)`.
 */
export interface MacJob {
  /** Names the job in `handleMacResult`. */
  readonly id: number;
  /** The session key. */
  readonly key: Uint8Array;
  /** The bytes to MAC (`session-mac.ts` says which). */
  readonly data: Uint8Array;
}
