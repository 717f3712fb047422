/**
 * The client's one-of-a-kind deadlines, keyed by purpose (as quinn-proto's
 * `TimerTable`). Per-relay deadlines (probes, opens, keepalives, lingers, FEC
 * receivers) stay with the relay's state and are scanned by their rooms; the table
 * holds the rest, and {@link TimerTable.earliest} is their share of `pollTimeout`.
 *
 * An unarmed timer holds NaN: every comparison with it is false, so it is never due,
 * never pending, and never the earliest.
 */

/** What a deadline is for. */
export const ClientTimer = {
  /** Next path report for the coordinator (armed by the first candidates). */
  Report: 0,
  /** The relay selector's own deadline (its `pollTimeout`). */
  Selector: 1,
  /** Give up when no session has opened by then (armed by the first candidates, disarmed by the first open). */
  ConnectGiveUp: 2,
  /** Upstream is duplicated to the backup until then (a downstream loss burst). */
  DuplicateHold: 3,
  /** Check that the current relay's session still delivers after a silence (see `Liveness`). */
  SessionCheck: 4,
} as const;

/** One of the {@link ClientTimer} values. */
export type ClientTimerValue = (typeof ClientTimer)[keyof typeof ClientTimer];

const TIMER_COUNT = 5;

/** Deadlines in ms (the driver's clock), one per {@link ClientTimer}. */
export class TimerTable {
  private readonly deadlinesMs = new Float64Array(TIMER_COUNT).fill(Number.NaN);

  /** Arms `timer` at `atMs`; undefined disarms it. */
  set(timer: ClientTimerValue, atMs: number | undefined): void {
    this.deadlinesMs[timer] = atMs ?? Number.NaN;
  }

  /** Disarms `timer`. */
  clear(timer: ClientTimerValue): void {
    this.deadlinesMs[timer] = Number.NaN;
  }

  /** Whether `timer` is armed. */
  isArmed(timer: ClientTimerValue): boolean {
    return !Number.isNaN(this.deadlinesMs[timer]!);
  }

  /** Whether `timer` is armed and its deadline has come (`nowMs` at or after it). */
  isDue(timer: ClientTimerValue, nowMs: number): boolean {
    return nowMs >= this.deadlinesMs[timer]!;
  }

  /** Whether `timer` is armed and its deadline is still ahead of `nowMs`. */
  isPending(timer: ClientTimerValue, nowMs: number): boolean {
    return nowMs < this.deadlinesMs[timer]!;
  }

  /** `at`, or the earliest armed deadline later than `after` when that is earlier than `at`. */
  earliest(at: number, after: number): number {
    for (let i = 0; i < TIMER_COUNT; i++) at = earlier(at, this.deadlinesMs[i]!, after);
    return at;
  }
}

/** `at`, or `t` when `t` is a deadline after `after` and earlier than `at` (pollTimeout's minimum, without a closure per call). */
export function earlier(at: number, t: number | undefined, after: number): number {
  return t !== undefined && t > after && t < at ? t : at;
}
