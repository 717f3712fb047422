/**
 * The livelock guard of simulation runners: runs the event queue like
 * {@link EventQueue.runUntil}, but with a bounded number of events per simulated
 * second. A component that re-arms a timer at the same instant forever (a core whose
 * `pollTimeout()` keeps returning `now`), or an event storm, would otherwise spin
 * without virtual time advancing — a silent hang. Past the budget the guard samples
 * the events that follow, and throws a {@link SimLivelockError} naming the one that
 * repeats and the host it runs on. Counting events (not wall time) keeps it a pure
 * function of the run: the same seed fails at the same event.
 */
import { ErrorCode, SlipError } from '../../../proto/src/errors.js';
import type { EventQueue, SimEventDescription } from './event-queue.js';

/**
 * Default budget, events per simulated second: about 100 × the busiest shipped
 * scenario (congested-evening, 50 players: ~43,000 at its peak before players had access
 * links, ~54,000 on average since: a hop is an event) and 2,000 × a swarm seed's peak.
 */
export const SIM_EVENTS_PER_SECOND_MAX_DEFAULT = 5_000_000;
/** Events sampled, once over budget, to find the one that repeats. */
export const SIM_LIVELOCK_SAMPLE_EVENTS = 10_000;

/** What the guard found. */
export interface SimLivelockDetails {
  /** Virtual time when the budget ran out, ms. */
  readonly atMs: number;
  /** Start of the simulated second that overran, ms. */
  readonly secondStartMs: number;
  /** The budget, events per simulated second. */
  readonly budget: number;
  /** The commonest event of the sample. */
  readonly repeating: SimEventDescription;
  /** Its share of the sample: `count` of `sampled` events. */
  readonly count: number;
  readonly sampled: number;
  /** Virtual time after the sample, ms (equal to {@link atMs} when time stood still). */
  readonly sampleEndMs: number;
}

/** A run stopped making progress in virtual time. `diagnosis` says what repeats; `message` adds the run and how to replay it. */
export class SimLivelockError extends SlipError {
  readonly details: SimLivelockDetails;
  /** The finding without the run's context: `more than N events in the simulated second from T ms; the event that repeats: …`. */
  readonly diagnosis: string;
  constructor(details: SimLivelockDetails, hostName: (address: string) => string = (a) => a, context?: { readonly run?: string; readonly replay?: string }) {
    const r = details.repeating;
    const where = r.host === undefined ? '' : ` on ${hostName(r.host)}`;
    const still = details.sampleEndMs === details.atMs ? `, virtual time stuck at ${details.atMs.toFixed(3)} ms` : ` while virtual time moved from ${details.atMs.toFixed(3)} to ${details.sampleEndMs.toFixed(3)} ms`;
    const diagnosis = `more than ${details.budget} events in the simulated second from ${details.secondStartMs} ms; the event that repeats: ${r.what}${where} (${details.count} of the next ${details.sampled} events${still})`;
    super(ErrorCode.SimLivelock, `${context?.run === undefined ? '' : `${context.run}: `}livelock: ${diagnosis}${context?.replay === undefined ? '' : `; replay: ${context.replay}`}`);
    this.name = 'SimLivelockError';
    this.details = details;
    this.diagnosis = diagnosis;
  }
}

/**
 * Runs every event due at or before `untilMs`, then sets the clock to `untilMs`, like
 * {@link EventQueue.runUntil}; throws {@link SimLivelockError} when more than
 * `maxEventsPerSecond` events fall in one simulated second (`[k·1000, (k+1)·1000)` ms).
 * @returns the number of events run
 */
export function runUntilBounded(queue: EventQueue, untilMs: number, maxEventsPerSecond = SIM_EVENTS_PER_SECOND_MAX_DEFAULT, hostName?: (address: string) => string, context?: { readonly run?: string; readonly replay?: string }): number {
  let ran = 0;
  let secondEndMs = Number.NEGATIVE_INFINITY;
  let left = 0;
  for (let t = queue.peekTimeMs(); t <= untilMs; t = queue.peekTimeMs()) {
    if (t >= secondEndMs) {
      secondEndMs = (Math.floor(t / 1000) + 1) * 1000;
      left = maxEventsPerSecond;
    }
    if (left-- === 0) throw new SimLivelockError(sampleRepeating(queue, untilMs, maxEventsPerSecond, secondEndMs - 1000), hostName, context);
    queue.dispatchNext();
    ran++;
  }
  queue.runUntil(untilMs);
  return ran;
}

/** Runs up to {@link SIM_LIVELOCK_SAMPLE_EVENTS} more events and returns the commonest. */
function sampleRepeating(queue: EventQueue, untilMs: number, budget: number, secondStartMs: number): SimLivelockDetails {
  const atMs = queue.peekTimeMs();
  const counts = new Map<string, { description: SimEventDescription; count: number }>();
  let sampled = 0;
  while (sampled < SIM_LIVELOCK_SAMPLE_EVENTS && queue.peekTimeMs() <= untilMs) {
    const d = queue.describeNext()!;
    const key = `${d.what}\u0000${d.host ?? ''}`;
    const entry = counts.get(key);
    if (entry === undefined) counts.set(key, { description: d, count: 1 });
    else entry.count++;
    queue.dispatchNext();
    sampled++;
  }
  let top: { description: SimEventDescription; count: number } = { description: { what: 'unknown' }, count: 0 };
  for (const entry of counts.values()) if (entry.count > top.count) top = entry;
  return { atMs, secondStartMs, budget, repeating: top.description, count: top.count, sampled, sampleEndMs: queue.nowMs };
}
