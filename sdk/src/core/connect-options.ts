/**
 * What the Node `connect()` (slipstream/sdk) and the browser `connect()`
 * (slipstream/browser) share of their options: types only, so the browser entry may
 * import it (no Node API, no value). Each entry's options interface extends
 * {@link ConnectOptionsBase} and adds the fields whose meaning or default is its own
 * (the coordinator URL, `connectTimeoutMs`, sockets or peer connections).
 */
import type { SlidingWindowParameters } from '../../../proto/src/fec/index.js';
import type { RelaySelectorInit } from './relay-selector.js';

/** What the game backend hands the client: the coordinator's `POST /v1/session` answer fits as it is. */
export interface TicketGrant {
  /** 16 lowercase hex digits. */
  readonly sessionId: string;
  /** Ticket bytes, or base64. */
  readonly ticket: Uint8Array | string;
  /** 32-byte session key, or base64. */
  readonly sessionKey: Uint8Array | string;
  /**
   * The exit relay the ticket names, if any (the coordinator's answer carries it as
   * `exitRelay`). Only ranking uses it: candidates are then ranked by the path through
   * the exit. The relays read the exit from the ticket itself.
   */
  readonly exitRelay?: string;
}

/** The options both `connect()`s take, with the same meaning and defaults. */
export interface ConnectOptionsBase {
  /** Origin name, as the coordinator and relays know it. */
  readonly origin: string;
  /** A ticket obtained already. Give this or `ticketProvider`. */
  readonly ticket?: TicketGrant;
  /** Called once to obtain a ticket (normally from the game's backend). */
  readonly ticketProvider?: () => Promise<TicketGrant>;
  /** Reject with `SLIP_ERR_TICKET_PROVIDER` when the provider has not answered after this long, ms. Default 10 000. */
  readonly ticketProviderTimeoutMs?: number;
  /** Region hint for the coordinator's first ranking. */
  readonly region?: string;
  /** Client coordinates for the first ranking, degrees (both or neither). */
  readonly latitude?: number;
  readonly longitude?: number;
  /** Coordinator request timeout, ms. Default 3000. */
  readonly coordinatorTimeoutMs?: number;
  /** FEC modes offered, best first. Default `['sw', 'dup', 'rs', 'off']` (the adaptive sliding window, then spaced copies for relays that predate it). */
  readonly fecModes?: readonly string[];
  /**
   * The session's FEC latency budget, ms (0–1000): both directions' `sw` controllers keep
   * the packets they rebuild later than this under 0.3 %. Sent to the relay, so only
   * relays of this version or later accept the open. Default: none sent (the
   * controller's 10 ms upstream, the relay's `tunnel.fec.latencyBudgetMs` downstream).
   */
  readonly latencyBudgetMs?: number;
  /** Fixed upstream `sw` settings instead of the adaptive controller (see sdk/README.md). Default none (adaptive). */
  readonly slidingWindow?: Partial<SlidingWindowParameters>;
  /** Selection rule tuning (see sdk/README.md). */
  readonly selector?: RelaySelectorInit;
  /** Probe period of the current relay, ms (bounds failover detection). Default 100. */
  readonly probeCurrentIntervalMs?: number;
  /** Re-ask the coordinator for candidates this often, ms. Default 60 000. */
  readonly refreshMs?: number;
}
