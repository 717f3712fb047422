/**
 * The client's one-of-a-kind deadlines, keyed by purpose (as quinn-proto's
 * `TimerTable`). Per-relay deadlines (probes, opens, keepalives, lingers, FEC
 * receivers) stay with the relay's state and are scanned by their rooms; the table
 * holds the rest, and {@link TimerTable.earliest} is their share of `pollTimeout`.
 *
 * The table itself is proto's (`proto/src/timer-table.ts`), shared with the relay core:
 * an unarmed timer is never due, never pending, and never the earliest.
 */
import { TimerTable } from '../../../../proto/src/timer-table.js';

/** What a deadline is for. */
export const ClientTimer = {
  /** Next path report for the coordinator (armed by the first candidates). */
  Report: 0,
  /** The relay selector's own deadline (its `pollTimeout`). */
  Selector: 1,
  /** Give up when no session has opened by then (armed by the first candidates, disarmed by the first open). */
  ConnectGiveUp: 2,
  /** Check that the current relay's session still delivers after a silence (see `Liveness`). */
  SessionCheck: 3,
} as const;

/** One of the {@link ClientTimer} values. */
export type ClientTimerValue = (typeof ClientTimer)[keyof typeof ClientTimer];

/** How many purposes {@link ClientTimer} names. */
export const CLIENT_TIMER_COUNT = 4;

/** The client's timer table (proto's {@link TimerTable}, keyed by {@link ClientTimer}). */
export function clientTimerTable(): TimerTable<ClientTimerValue> {
  return new TimerTable<ClientTimerValue>(CLIENT_TIMER_COUNT);
}

/** `at`, or `t` when `t` is a deadline after `after` and earlier than `at` (pollTimeout's minimum, without a closure per call). */
export function earlier(at: number, t: number | undefined, after: number): number {
  return t !== undefined && t > after && t < at ? t : at;
}
