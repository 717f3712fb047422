/**
 * What L4 flows and tunnel sessions share: counters, buckets and timing
 * ({@link SessionBase}), the downstream admission both charge ({@link admitDown}), the
 * totals of an ended one, and the one way to unlink an entry from a hash chain
 * ({@link unlinkChained}: flows chained by client port, sessions by the low half of
 * their id).
 */
import type { RateBucket } from './bucket.js';
import type { RuleStats } from './context.js';
import { DropReason, type RelayOutput, type SessionTotals } from './output.js';
import type { SourceState } from './sources.js';

/** Shared by L4 flows and tunnel sessions: counters, buckets, timing. */
export class SessionBase {
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

/** An entry of a hash chain: entries whose keys collide are linked through `nextInChain`. */
export interface Chained<T> {
  nextInChain: T | undefined;
}

/** Takes `item` out of the chain that `heads` keeps under `key` (a no-op if it is not there). */
export function unlinkChained<K, T extends Chained<T>>(heads: Map<K, T>, key: K, item: T): void {
  let head = heads.get(key);
  if (head === item) {
    if (item.nextInChain !== undefined) heads.set(key, item.nextInChain);
    else heads.delete(key);
    return;
  }
  while (head !== undefined && head.nextInChain !== item) head = head.nextInChain;
  if (head !== undefined) head.nextInChain = item.nextInChain;
}

/**
 * A datagram towards the client: counted on `stats`, then charged to the flow's or
 * session's downstream bucket. False (counted as a rate-limit drop) when over its rate.
 */
export function admitDown(out: RelayOutput, nowMs: number, stats: RuleStats, carrier: SessionBase, bytes: Uint8Array): boolean {
  stats.packetsDown++;
  stats.bytesDown += bytes.length;
  if (!carrier.downBucket.take(nowMs, bytes.length)) {
    out.drops[DropReason.RateLimitedSession]++;
    return false;
  }
  carrier.lastActiveMs = nowMs;
  carrier.packetsDown++;
  carrier.bytesDown += bytes.length;
  return true;
}

/** The totals of a flow or session at `nowMs`, for its `sessionEnd` line. */
export function sessionTotals(nowMs: number, s: SessionBase): SessionTotals {
  return { packetsUp: s.packetsUp, bytesUp: s.bytesUp, packetsDown: s.packetsDown, bytesDown: s.bytesDown, durationMs: nowMs - s.openedMs };
}

/** `address:port`, with IPv6 addresses in brackets. */
export function endpointText(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The tighter of the config's rate (0 = unlimited) and the ticket's (∞ = none); 0 when both are unlimited. */
export function sessionRate(configRate: number, ticketRate: number): number {
  const limit = Math.min(configRate === 0 ? Number.POSITIVE_INFINITY : configRate, ticketRate);
  return Number.isFinite(limit) ? limit : 0;
}
