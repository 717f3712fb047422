/**
 * The route answer cache of `GET /v1/route` (issue #17 item 5): ranking 500 relays for
 * every request saturated one coordinator process near 2,000 routes/s, while clients of
 * one network ask for the same thing. An answer is kept for `routeCacheMs` (default
 * {@link ROUTE_CACHE_MS_DEFAULT}) under a key made of everything the ranking depends on
 * for that client:
 *
 * - the client prefix (/24 for IPv4, /48 for IPv6: the unit client reports are filed
 *   under, so every client of a prefix has the same measured legs),
 * - the origin, and the query's region, lat/lon (as given), limit, twoHop and exit,
 * - the reporter (IPv4 address or IPv6 /64) only when it has figures of its own, which
 *   are laid over its prefix's for its own routes; otherwise it shares its prefix's entry.
 *
 * Invalidation: the whole cache is emptied when the fleet changes materially (a relay
 * comes up, starts draining, goes down or is forgotten: the registry's events, also
 * those a replica learns from the store), so a drained or dead relay is not offered
 * from the cache once the coordinator knows; a prefix's answers are dropped when this
 * replica takes a client report from it (its figures, or a reporter's own, may have
 * moved). What changes without either (relay→origin legs, load, client figures taken
 * by another replica) is at most `routeCacheMs` old, a fraction of the SDK's own
 * re-probe period.
 * Cached answers keep their `generatedAtMs` (when they were ranked). `routeCacheMs: 0`
 * turns the cache off.
 *
 * Each answer lives between ½ and 1 × `routeCacheMs` (spread by insertion order), so
 * answers made at the same moment do not all expire, and get re-ranked, at once.
 *
 * No clock here: the caller passes `nowMs` (the cache is sans-IO like the core, but
 * kept out of core/ since it is a driver concern). Bounded: at most
 * {@link ROUTE_CACHE_ENTRIES_MAX} entries, the oldest dropped first. Clients with no
 * prefix (an address that is neither IPv4 nor IPv6) share the prefix ''.
 */

/** Default lifetime of a cached route answer, ms. */
export const ROUTE_CACHE_MS_DEFAULT = 1000;
/** Largest accepted `routeCacheMs`, ms: routes must follow the fleet within seconds. */
export const ROUTE_CACHE_MS_MAX = 10_000;
/** Most answers held; beyond it the oldest is dropped. */
export const ROUTE_CACHE_ENTRIES_MAX = 50_000;

/** Lifetime spread: an answer lives ttl × (1 − i / (2 × this)) for i = its sequence number modulo this. */
const LIFETIME_STEPS = 8;

/** What a route answer depends on, besides the fleet (see the module comment). */
export interface RouteCacheKeyParts {
  readonly origin: string;
  readonly prefix: string | undefined;
  /** Set only when the reporter has figures of its own. */
  readonly reporter: string | undefined;
  readonly region: string | undefined;
  readonly lat: number | undefined;
  readonly lon: number | undefined;
  readonly limit: number;
  readonly twoHop: boolean | undefined;
  readonly exit: string | undefined;
}

/** The cache key of a route query. */
export function routeCacheKey(p: RouteCacheKeyParts): string {
  // One template (not an array joined): built for every route request, hits included.
  return `${p.origin}\0${p.prefix ?? ''}\0${p.reporter ?? ''}\0${p.region ?? ''}\0${p.lat ?? ''}\0${p.lon ?? ''}\0${p.limit}\0${p.twoHop ? 1 : 0}\0${p.exit ?? ''}`;
}

/** See the module comment. `T` is the answer (the service keeps its JSON body). Entries are filed by client prefix, so one prefix's can be dropped. */
export class RouteCache<T> {
  private readonly byPrefix = new Map<string, Map<string, { value: T; expiresAtMs: number }>>();
  /** Every entry in insertion order (prefix, key), for the size bound; may name entries already gone. */
  private readonly order: [string, string][] = [];
  private orderHead = 0;
  private entries = 0;
  private sequence = 0;
  hits = 0;
  misses = 0;

  /** `ttlMs`: lifetime of an answer, ms (0: nothing is cached). */
  constructor(
    readonly ttlMs: number,
    private readonly maxEntries: number = ROUTE_CACHE_ENTRIES_MAX,
  ) {}

  /** Whether the cache is on. */
  get enabled(): boolean {
    return this.ttlMs > 0;
  }

  /** The answer cached for `prefix` under `key` that is younger than the TTL at `nowMs`, else undefined. */
  get(nowMs: number, prefix: string, key: string): T | undefined {
    if (!this.enabled) return undefined;
    const entries = this.byPrefix.get(prefix);
    const entry = entries?.get(key);
    if (entry && entry.expiresAtMs > nowMs) {
      this.hits++;
      return entry.value;
    }
    if (entry) this.remove(prefix, key);
    this.misses++;
    return undefined;
  }

  /** Keeps `value` for `prefix` under `key` for between ½ and 1 × `ttlMs` from `nowMs` (see the module comment). */
  set(nowMs: number, prefix: string, key: string, value: T): void {
    if (!this.enabled) return;
    this.remove(prefix, key);
    while (this.entries >= this.maxEntries && this.orderHead < this.order.length) {
      const [oldPrefix, oldKey] = this.order[this.orderHead++]!;
      this.remove(oldPrefix, oldKey);
    }
    if (this.orderHead > 1024 && this.orderHead * 2 > this.order.length) {
      this.order.splice(0, this.orderHead);
      this.orderHead = 0;
    }
    let entries = this.byPrefix.get(prefix);
    if (!entries) this.byPrefix.set(prefix, (entries = new Map()));
    // Lifetimes spread over (½, 1] × ttlMs: answers made together (a burst of new
    // prefixes, a cache emptied by a fleet event) would otherwise all expire together,
    // and their re-ranking would stall the process for every request at that moment.
    const lifetimeMs = this.ttlMs * (1 - (this.sequence++ % LIFETIME_STEPS) / (2 * LIFETIME_STEPS));
    entries.set(key, { value, expiresAtMs: nowMs + lifetimeMs });
    this.entries++;
    this.order.push([prefix, key]);
  }

  /** Forgets `prefix`'s answers (its client figures changed). */
  clearPrefix(prefix: string): void {
    const entries = this.byPrefix.get(prefix);
    if (!entries) return;
    this.entries -= entries.size;
    this.byPrefix.delete(prefix);
  }

  /** Forgets every answer (the fleet changed). */
  clear(): void {
    this.byPrefix.clear();
    this.order.length = 0;
    this.orderHead = 0;
    this.entries = 0;
  }

  /** Answers held (some may have expired and not been looked up since). */
  get size(): number {
    return this.entries;
  }

  private remove(prefix: string, key: string): void {
    const entries = this.byPrefix.get(prefix);
    if (!entries?.delete(key)) return;
    this.entries--;
    if (entries.size === 0) this.byPrefix.delete(prefix);
  }
}
