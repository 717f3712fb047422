/**
 * A core's one-of-a-kind deadlines in a small table keyed by purpose (quinn-proto's
 * `TimerTable`), not callbacks: a core arms and stops them as it works, its
 * `pollTimeout` returns {@link TimerTable.earliest}, and its `handleTimeout` asks
 * {@link TimerTable.isExpired} for each purpose and re-arms what ran. Keys are small
 * integers (each core declares its own `const` object of purposes).
 *
 * Deadlines are monotonic ms on the caller's clock; a stopped timer holds +∞, so it is
 * never expired and never the earliest. Sans-IO: the table reads no clock.
 */

/** Deadlines by key (0 … count − 1), ms; every key starts stopped. */
export class TimerTable<Key extends number = number> {
  private readonly deadlinesMs: Float64Array;

  /** @param count how many purposes (keys 0 … count − 1) */
  constructor(count: number) {
    this.deadlinesMs = new Float64Array(count).fill(Number.POSITIVE_INFINITY);
  }

  /** Arms `key` for `deadlineMs`; undefined (or +∞) stops it. */
  set(key: Key, deadlineMs: number | undefined): void {
    this.deadlinesMs[key] = deadlineMs ?? Number.POSITIVE_INFINITY;
  }

  /** Arms `key` for `deadlineMs` only if that is sooner than its current deadline. */
  lower(key: Key, deadlineMs: number): void {
    if (deadlineMs < this.deadlinesMs[key]!) this.deadlinesMs[key] = deadlineMs;
  }

  /** The deadline of `key`, ms (+∞ when stopped). */
  get(key: Key): number {
    return this.deadlinesMs[key]!;
  }

  /** Stops `key`. */
  stop(key: Key): void {
    this.deadlinesMs[key] = Number.POSITIVE_INFINITY;
  }

  /** Whether `key` is armed. */
  isArmed(key: Key): boolean {
    return this.deadlinesMs[key]! !== Number.POSITIVE_INFINITY;
  }

  /** Whether `key` is armed and its deadline has come (`nowMs` at or after it). */
  isExpired(key: Key, nowMs: number): boolean {
    return nowMs >= this.deadlinesMs[key]!;
  }

  /** Whether `key` is armed and its deadline is still ahead of `nowMs`. */
  isPending(key: Key, nowMs: number): boolean {
    return this.isArmed(key) && nowMs < this.deadlinesMs[key]!;
  }

  /** The soonest armed deadline later than `afterMs` (default: any), ms; +∞ when there is none. */
  earliest(afterMs = Number.NEGATIVE_INFINITY): number {
    let soonest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < this.deadlinesMs.length; i++) {
      const deadlineMs = this.deadlinesMs[i]!;
      if (deadlineMs > afterMs && deadlineMs < soonest) soonest = deadlineMs;
    }
    return soonest;
  }
}
