/**
 * The revocation log relays follow. A revocation lives until the ticket it kills could
 * no longer open a session (`expiresAtMs`). Followers ask for everything received
 * after a cursor (this replica's receipt time, ms); replicas with slightly different
 * clocks or late replication are covered by followers rewinding their cursor by
 * {@link REVOCATION_CURSOR_OVERLAP_MS} and deduplicating by session id.
 *
 * Sans-IO: `nowMs` comes from the caller.
 */
import { REVOCATION_CURSOR_OVERLAP_MS } from './constants.js';

/** One revoked session. */
export interface Revocation {
  /** 16 lowercase hex digits. */
  readonly sessionId: string;
  /** When the game backend revoked it (at the replica that took the request), ms. */
  readonly revokedAtMs: number;
  /** After this the entry is dropped (the ticket can no longer open a session), ms. */
  readonly expiresAtMs: number;
}

/** A revocation plus when this replica learned of it (the follower cursor). */
export interface ReceivedRevocation extends Revocation {
  /** When this replica received it, ms. */
  readonly receivedAtMs: number;
}

export { REVOCATION_CURSOR_OVERLAP_MS };

/** Revocations in order of receipt. */
export class RevocationLog {
  private readonly bySession = new Map<string, ReceivedRevocation>();
  /** In receipt order; receipt times never decrease. */
  private readonly ordered: ReceivedRevocation[] = [];
  private lastReceivedMs = Number.NEGATIVE_INFINITY;

  /** Active revocations held. */
  get size(): number {
    return this.bySession.size;
  }

  /** Adds a revocation; returns the stored entry, or undefined when the session was already revoked or the entry has expired. */
  add(nowMs: number, revocation: Revocation): ReceivedRevocation | undefined {
    if (revocation.expiresAtMs <= nowMs || this.bySession.has(revocation.sessionId)) return undefined;
    // Receipt times must not go backwards, or a follower's cursor could skip an entry.
    const receivedAtMs = Math.max(nowMs, this.lastReceivedMs);
    this.lastReceivedMs = receivedAtMs;
    const entry: ReceivedRevocation = { sessionId: revocation.sessionId, revokedAtMs: revocation.revokedAtMs, expiresAtMs: revocation.expiresAtMs, receivedAtMs };
    this.bySession.set(entry.sessionId, entry);
    this.ordered.push(entry);
    return entry;
  }

  /** Whether `sessionId` is revoked (and not yet expired) at `nowMs`. */
  isRevoked(nowMs: number, sessionId: string): boolean {
    const entry = this.bySession.get(sessionId);
    return entry !== undefined && entry.expiresAtMs > nowMs;
  }

  /** Entries received strictly after `cursorMs` that are still active at `nowMs`, at most `max`, oldest first. */
  since(nowMs: number, cursorMs: number, max = Number.POSITIVE_INFINITY): ReceivedRevocation[] {
    const out: ReceivedRevocation[] = [];
    // Binary search for the first entry after the cursor.
    let lo = 0;
    let hi = this.ordered.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ordered[mid]!.receivedAtMs <= cursorMs) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.ordered.length && out.length < max; i++) {
      const entry = this.ordered[i]!;
      if (entry.expiresAtMs > nowMs && this.bySession.get(entry.sessionId) === entry) out.push(entry);
    }
    return out;
  }

  /** Every active entry. */
  active(): IterableIterator<ReceivedRevocation> {
    return this.bySession.values();
  }

  /** Drops expired entries; returns how many. */
  expire(nowMs: number): number {
    let dropped = 0;
    for (const [id, entry] of this.bySession) {
      if (entry.expiresAtMs <= nowMs) {
        this.bySession.delete(id);
        dropped++;
      }
    }
    // Compact the ordered list once most of it is dead.
    if (this.bySession.size < this.ordered.length / 2) {
      const live = this.ordered.filter((e) => this.bySession.get(e.sessionId) === e);
      this.ordered.length = 0;
      this.ordered.push(...live);
    }
    return dropped;
  }
}
