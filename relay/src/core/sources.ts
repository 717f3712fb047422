/**
 * The front door every mode shares: per-source state (packet/byte and new-session
 * buckets, session counts), fleet peers exempt from per-source caps, the stateless
 * limiter for senders that have proved nothing, and the common admission checks of a
 * new session (draining, CIDR allow/deny, caps, new sessions per second). The per-source
 * record, {@link SourceState}, is in session-base.ts (flows and sessions point at it).
 */
import { cidrListMatches, type Cidr } from './addr.js';
import { StatelessLimiter } from './bucket.js';
import { SessionKind, type SessionBudgets } from './budgets.js';
import type { LimitsSpec } from './config-types.js';
import { SOURCE_IDLE_MS, UNAUTHENTICATED_BUCKETS } from './constants.js';
import type { RelayContext } from './context.js';
import { DropReason } from './output.js';
import type { RuleRuntime } from './l4-state.js';
import { SourceState } from './session-base.js';

/** See the module comment. */
export class SourceTable {
  private readonly sources = new Map<string, SourceState>();
  /** Fleet relays' addresses from {@link setPeers}. */
  private peers: ReadonlySet<string> = new Set();
  /** Rate limit of packets from senders that have proved nothing: no per-address state (spoofed floods cost no memory). */
  private readonly unauthenticatedLimiter: StatelessLimiter;

  /**
   * @param budgets the session budgets a new L4 session must fit (budgets.ts)
   */
  constructor(
    private readonly ctx: RelayContext,
    private readonly budgets: SessionBudgets,
  ) {
    const key = new Uint8Array(8);
    ctx.components.randomFill(key);
    this.unauthenticatedLimiter = new StatelessLimiter(UNAUTHENTICATED_BUCKETS, ctx.config.limits.unauthenticatedPacketsPerSecond, key, 0);
  }

  /** Per-source entries held (bounded: idle ones are swept). */
  get size(): number {
    return this.sources.size;
  }

  /** The entry of `address` if there is one (not touched: no recency change). */
  get(address: string): SourceState | undefined {
    return this.sources.get(address);
  }

  /** One packet from an unauthenticated sender at `address`: false when its (stateless, shared) bucket is empty. */
  takeUnauthenticated(nowMs: number, address: string): boolean {
    return this.unauthenticatedLimiter.take(nowMs, address);
  }

  /**
   * The per-source entry of `address`, made if needed. Only senders that hold (or are
   * about to hold) a session get one: an L4 flow, a verified ticket, an answered path
   * challenge. The table is bounded; when full, the least recently seen entry without
   * sessions is evicted (the Map keeps recency order: a touch moves an entry to the end).
   */
  sourceFor(nowMs: number, address: string): SourceState | undefined {
    let source = this.sources.get(address);
    if (source === undefined) {
      if (this.sources.size >= this.ctx.config.limits.sessionsMax * 2 + 1024 && !this.evictIdleSource()) return undefined;
      source = new SourceState(address, this.ctx.config.limits, nowMs);
      source.peer = this.isPeer(address);
    } else this.sources.delete(address);
    this.sources.set(address, source);
    source.lastSeenMs = nowMs;
    return source;
  }

  /**
   * The other fleet relays' addresses (IP literals), from the fleet list. Like
   * `tunnel.peerCidrs`, they are exempt from per-source caps: an entry forwarding
   * sessions to this relay as their exit is one address carrying many players. The set
   * replaces the previous one.
   */
  setPeers(addresses: Iterable<string>): void {
    this.peers = new Set(addresses);
    for (const source of this.sources.values()) source.peer = this.isPeer(source.address);
  }

  /** Whether `address` is a fleet relay's (`tunnel.peerCidrs` or {@link setPeers}). */
  isPeer(address: string): boolean {
    if (this.peers.has(address)) return true;
    const peers = this.ctx.config.tunnel?.peerCidrs;
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

  /**
   * Common checks for a new L4 session on `rule` (its protocol says which budget);
   * returns the source, or records the drop and returns undefined. The budgets come
   * last: a sender refused by its own caps never sheds anyone's unreplied flow.
   */
  admit(nowMs: number, address: string, allow: readonly Cidr[], deny: readonly Cidr[], rule: RuleRuntime): SourceState | undefined {
    const drops = this.ctx.out.drops;
    if (this.ctx.draining) {
      drops[DropReason.Draining]++;
      return undefined;
    }
    if (cidrListMatches(deny, address) || (allow.length > 0 && !cidrListMatches(allow, address))) {
      drops[DropReason.Denied]++;
      return undefined;
    }
    const source = this.sourceFor(nowMs, address);
    const limits = this.ctx.config.limits;
    if (source === undefined || source.sessions >= limits.sessionsPerSourceMax) {
      drops[DropReason.SessionCap]++;
      return undefined;
    }
    if (!source.newSessions.take(nowMs, 0)) {
      drops[DropReason.RateLimitedNewSessions]++;
      return undefined;
    }
    if (!this.budgets.admit(nowMs, rule.spec.protocol === 'udp' ? SessionKind.Udp : SessionKind.Tcp, rule.stats, rule.spec.sessionsMax)) {
      drops[DropReason.SessionCap]++;
      return undefined;
    }
    return source;
  }

  /** A reload's limits apply to every live bucket now, not only to new sources. */
  applyLimits(limits: LimitsSpec): void {
    this.unauthenticatedLimiter.setRate(limits.unauthenticatedPacketsPerSecond);
    for (const source of this.sources.values()) {
      source.bucket.setRates(limits.sourcePacketsPerSecond, limits.sourceBytesPerSecond, limits.burstMs);
      source.newSessions.setRates(limits.newSessionsPerSourcePerSecond, 0, 1000);
    }
  }

  /** Forgets sources without sessions not seen for {@link SOURCE_IDLE_MS}. */
  sweep(nowMs: number): void {
    for (const [address, source] of this.sources) {
      if (source.sessions === 0 && nowMs - source.lastSeenMs >= SOURCE_IDLE_MS) this.sources.delete(address);
    }
  }
}
