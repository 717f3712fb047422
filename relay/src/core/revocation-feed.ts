/**
 * The relay's follower of the coordinator's revocation feed (`GET /v1/revocations`, a
 * long poll), as a sans-IO state machine: it owns the feed's cursor and asks for the next
 * page as soon as one is answered. After a failure (which may mean a different replica
 * answers next, with its own receive times) the cursor rewinds by
 * {@link RevocationFeedInit.cursorOverlapMs} so nothing is missed, and the next poll
 * waits a backoff (200 ms doubling to 5 s); sessions already reported are filtered out
 * until their revocation expires, so the rewind reports nothing twice. The first poll,
 * and the first after a failure, ask with no wait (`waitMs` 0): the coordinator answers at
 * once, so a relay that has just (re)started or reconnected learns at once that its list is
 * current (every answer is reported as `answered`; see tunnel.revocationMaxAgeMs).
 *
 * Inputs: {@link RevocationFeedCore.start}, {@link RevocationFeedCore.handleResponse},
 * {@link RevocationFeedCore.handleTimeout}, {@link RevocationFeedCore.stop}. Outputs,
 * drained after every input: {@link RevocationFeedCore.pollEvent},
 * {@link RevocationFeedCore.pollRequest}, {@link RevocationFeedCore.pollTimeout}.
 * Revocations expire in wall time (epoch ms, as the coordinator states them), so answers
 * come with the wall clock's reading; the cores' own deadlines are monotonic ms.
 */
import { REVOCATION_CURSOR_OVERLAP_MS, REVOCATION_WAIT_MS_DEFAULT, type RevocationEntry, type RevocationPage } from '../../../proto/src/api/contract.js';
import type { FleetFailure } from './fleet-agent.js';

/** Long-poll wait per request, ms (the coordinator's default; it accepts ≤ 30000). */
export const REVOCATION_FEED_WAIT_MS_DEFAULT = REVOCATION_WAIT_MS_DEFAULT;
/** How far the cursor rewinds after a failed poll, ms (the API contract's). */
export const REVOCATION_FEED_OVERLAP_MS_DEFAULT = REVOCATION_CURSOR_OVERLAP_MS;
/** First backoff after a failed poll, ms. */
export const REVOCATION_FEED_BACKOFF_MS_MIN = 200;
/** Longest backoff between failed polls, ms. */
export const REVOCATION_FEED_BACKOFF_MS_MAX = 5000;

/** Options of a {@link RevocationFeedCore}. */
export interface RevocationFeedInit {
  /** Start after this cursor (0 = every active revocation). Default 0. */
  readonly sinceMs?: number;
  /** Long-poll wait per request, ms. Default {@link REVOCATION_FEED_WAIT_MS_DEFAULT}. */
  readonly waitMs?: number;
  /** Rewind after a failure, ms. Default {@link REVOCATION_FEED_OVERLAP_MS_DEFAULT}. */
  readonly cursorOverlapMs?: number;
}

/** One poll of the feed (`GET /v1/revocations?sinceMs=&waitMs=`); answered with a {@link RevocationPage}. */
export interface RevocationFeedRequest {
  readonly id: number;
  readonly kind: 'revocations';
  readonly sinceMs: number;
  readonly waitMs: number;
}

/** What the feed tells its driver. */
export type RevocationFeedEvent =
  /** Sessions revoked that were not reported before: end them now. */
  | { readonly type: 'revoked'; readonly revocations: readonly RevocationEntry[] }
  /** A poll failed; the feed retries after a backoff. */
  | { readonly type: 'failed'; readonly reason: string }
  /** A poll was answered (after its `revoked` event, if any): the list is complete as of `wallNowMs` (Unix ms), up to `cursorMs`. */
  | { readonly type: 'answered'; readonly wallNowMs: number; readonly cursorMs: number };

/** See the module comment. */
export class RevocationFeedCore {
  private readonly waitMs: number;
  private readonly overlapMs: number;
  private cursorMs: number;
  private backoffMs = REVOCATION_FEED_BACKOFF_MS_MIN;
  private retryAtMs = Number.POSITIVE_INFINITY;
  /** Sessions reported, → when their revocation expires (wall ms). */
  private readonly seen = new Map<string, number>();
  private readonly requests: RevocationFeedRequest[] = [];
  private readonly events: RevocationFeedEvent[] = [];
  private inFlight: number | undefined;
  private nextRequestId = 1;
  private stopped = false;
  /** Whether the next poll asks without waiting (the first, and the first after a failure). */
  private immediate = true;

  constructor(init: RevocationFeedInit = {}) {
    this.cursorMs = init.sinceMs ?? 0;
    this.waitMs = init.waitMs ?? REVOCATION_FEED_WAIT_MS_DEFAULT;
    this.overlapMs = init.cursorOverlapMs ?? REVOCATION_FEED_OVERLAP_MS_DEFAULT;
  }

  /** The cursor the next poll asks from, ms (the coordinator's receive time of the last entry seen). */
  get cursor(): number {
    return this.cursorMs;
  }

  /** Command: starts polling. Idempotent. */
  start(): void {
    if (this.inFlight === undefined && this.retryAtMs === Number.POSITIVE_INFINITY && !this.stopped) this.poll();
  }

  /** Command: stops; answers still in flight are ignored. Idempotent. */
  stop(): void {
    this.stopped = true;
    this.inFlight = undefined;
    this.retryAtMs = Number.POSITIVE_INFINITY;
    this.requests.length = 0;
  }

  /** Input: the answer to poll `requestId`, with the wall clock now (epoch ms: revocations expire in wall time). */
  handleResponse(nowMs: number, wallNowMs: number, requestId: number, response: { readonly ok: true; readonly body: unknown } | { readonly ok: false; readonly failure: FleetFailure }): void {
    if (this.stopped || requestId !== this.inFlight) return;
    this.inFlight = undefined;
    if (!response.ok) {
      this.events.push({ type: 'failed', reason: response.failure.message });
      this.cursorMs = Math.max(0, this.cursorMs - this.overlapMs);
      this.retryAtMs = nowMs + this.backoffMs;
      this.backoffMs = Math.min(REVOCATION_FEED_BACKOFF_MS_MAX, this.backoffMs * 2);
      this.immediate = true;
      return;
    }
    const page = response.body as RevocationPage;
    this.backoffMs = REVOCATION_FEED_BACKOFF_MS_MIN;
    this.cursorMs = page.cursorMs;
    for (const [id, expiresAtMs] of this.seen) if (expiresAtMs <= wallNowMs) this.seen.delete(id);
    const fresh = page.revocations.filter((r) => !this.seen.has(r.sessionId));
    for (const r of fresh) this.seen.set(r.sessionId, r.expiresAtMs);
    if (fresh.length > 0) this.events.push({ type: 'revoked', revocations: fresh });
    this.events.push({ type: 'answered', wallNowMs, cursorMs: this.cursorMs });
    this.poll();
  }

  /** Input: a deadline from {@link pollTimeout} passed. */
  handleTimeout(nowMs: number): void {
    if (this.stopped || nowMs < this.retryAtMs) return;
    this.retryAtMs = Number.POSITIVE_INFINITY;
    this.poll();
  }

  /** Output: the next event, or undefined. */
  pollEvent(): RevocationFeedEvent | undefined {
    return this.events.shift();
  }

  /** Output: the next poll to send, or undefined. */
  pollRequest(): RevocationFeedRequest | undefined {
    return this.requests.shift();
  }

  /** Output: when to call {@link handleTimeout} (the retry after a failure), ms; undefined when none is due. */
  pollTimeout(): number | undefined {
    return this.retryAtMs === Number.POSITIVE_INFINITY ? undefined : this.retryAtMs;
  }

  private poll(): void {
    const id = this.nextRequestId++;
    this.inFlight = id;
    this.requests.push({ id, kind: 'revocations', sinceMs: this.cursorMs, waitMs: this.immediate ? 0 : this.waitMs });
    this.immediate = false;
  }
}
