/**
 * The relay core's timers: one deadline per purpose in a small table (quinn-proto's
 * `TimerTable`), not callbacks. `RelayCore.pollTimeout` returns {@link TimerTable.earliest};
 * `handleTimeout` asks {@link TimerTable.isExpired} for each purpose and re-arms what ran.
 * The table itself is proto's (`proto/src/timer-table.ts`), shared with the SDK core.
 */
import { TimerTable } from '../../../proto/src/timer-table.js';

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

/** How many purposes {@link Timer} names. */
export const TIMER_COUNT = 4;

/** The relay core's timer table (proto's {@link TimerTable}, keyed by {@link Timer}). */
export function relayTimerTable(): TimerTable<TimerKey> {
  return new TimerTable<TimerKey>(TIMER_COUNT);
}
