/**
 * The relay core's timers: one deadline per purpose in a small table (quinn-proto's
 * `TimerTable`), not callbacks. `RelayCore.pollTimeout` returns {@link TimerTable.earliest};
 * `handleTimeout` asks {@link TimerTable.isExpired} for each purpose and re-arms what ran.
 */

/** What a timer is for; indexes the {@link TimerTable}. */
export const Timer = {
  /** Idle flows, sessions and TCP connections, stale challenges, revocations, sources: every `SWEEP_INTERVAL_MS` (sooner while a sweep is unfinished). */
  Sweep: 0,
  /** The earliest health check to send or to time out over every origin group. */
  Health: 1,
  /** Entry role: the next look at the exits' liveness (`EXIT_CHECK_INTERVAL_MS` while any session is forwarded). */
  ExitCheck: 2,
  /** The earliest FEC sender or receiver deadline over every session. */
  Fec: 3,
} as const;

/** One of {@link Timer}. */
export type TimerKey = (typeof Timer)[keyof typeof Timer];

const TIMER_COUNT = 4;

/** Deadlines by {@link Timer} key, monotonic ms; +∞ when stopped (the initial state). */
export class TimerTable {
  private readonly deadlinesMs = new Float64Array(TIMER_COUNT).fill(Number.POSITIVE_INFINITY);

  /** Arms `key` for `deadlineMs` (+∞ stops it). */
  set(key: TimerKey, deadlineMs: number): void {
    this.deadlinesMs[key] = deadlineMs;
  }

  /** Arms `key` for `deadlineMs` only if that is sooner than its current deadline. */
  lower(key: TimerKey, deadlineMs: number): void {
    if (deadlineMs < this.deadlinesMs[key]!) this.deadlinesMs[key] = deadlineMs;
  }

  /** The deadline of `key`, ms (+∞ when stopped). */
  get(key: TimerKey): number {
    return this.deadlinesMs[key]!;
  }

  /** Stops `key`. */
  stop(key: TimerKey): void {
    this.deadlinesMs[key] = Number.POSITIVE_INFINITY;
  }

  /** Whether `key`'s deadline has passed at `nowMs`. */
  isExpired(key: TimerKey, nowMs: number): boolean {
    return nowMs >= this.deadlinesMs[key]!;
  }

  /** The soonest deadline over every purpose, ms (+∞ when none is armed). */
  earliest(): number {
    let soonest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < TIMER_COUNT; i++) if (this.deadlinesMs[i]! < soonest) soonest = this.deadlinesMs[i]!;
    return soonest;
  }
}
