/**
 * The record of one relay as a `TunnelClient` sees it ({@link RelayLink}): its
 * addresses, its session's state, its timers and counters. Records only: the relay
 * link room (relay-link.ts) changes them, and the other rooms read them. A leaf below
 * the shared context, whose relay table holds these records: it imports no room and
 * not the context, so the import graph has no circle.
 */
import type { FecReceiver } from '../../../../proto/src/fec/index.js';
import type { Endpoint } from '../../../../proto/src/transport.js';
import * as C from '../constants.js';

/** Where a relay's session is: never opened, open sent, accepted, refused (retried with backoff), or ended. */
export type SessionState = 'none' | 'opening' | 'open' | 'refused' | 'closed';

/** One relay as the client sees it: its addresses, its session's state, and its timers. */
export class RelayLink {
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
  /**
   * Until when (ms) the data of a session we closed on failing over away from this relay
   * is still delivered: what the relay sent before our Close reached it (in flight, or
   * held up in a stalled queue) arrives late, and UDP would have delivered it. −∞ when
   * not draining.
   */
  drainUntilMs = Number.NEGATIVE_INFINITY;
  /** While draining: our Close is still to be sent (at the drain's end, or when the connection closes). */
  get closeOwed(): boolean {
    return this.drainUntilMs !== Number.NEGATIVE_INFINITY;
  }
  /** Plain (k = 0) downstream/upstream numbering when FEC is off. */
  plainSequence = 0;
  /** Application packets delivered from this relay's session. */
  delivered = 0;
  /** When the latest sessionAccept arrived, ms: the relay held the session then. */
  acceptedAtMs = Number.POSITIVE_INFINITY;
  /**
   * A session check found the open session silent and re-sent its open (see
   * `Liveness.checkSessionAfterOutage`); cleared by the accept (or a refusal).
   */
  rechecking = false;
  /**
   * The cookie of the relay's last `sessionRetry` (it was over its ticket-verification
   * budget): echoed in every open until the relay accepts. Undefined otherwise, and
   * then never sent (relays that never ask refuse an unknown field).
   */
  cookie: Uint8Array | undefined = undefined;
  /** When an open last went out at once in answer to a `sessionRetry`, ms (at most one per {@link C.RETRY_ANSWER_MIN_MS}). */
  lastRetryAnsweredMs = Number.NEGATIVE_INFINITY;
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
