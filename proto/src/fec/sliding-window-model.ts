/**
 * What a sliding-window code (`sw`, see `sliding-window-encoder.ts`) delivers on a
 * Gilbert-Elliott path: the fraction of source packets never rebuilt, and the fraction
 * rebuilt later than a latency budget. The adaptive controller compares `sw` settings
 * with it, the way `model.ts` serves duplication and Reed-Solomon.
 *
 * The model follows one lost source S₀ through the wire stream that comes after it —
 * the later sources and every repair, in send order (a source's repairs leave
 * `repairSpacingMs` apart, so they may interleave with the next source) — while the
 * chain moves one step per wire packet. The decoder is short of one equation per lost
 * source since S₀ and gains one per repair that arrives and still covers S₀ (sent at
 * most `windowMs` after it, at most `windowPackets` sources from it); S₀ is rebuilt
 * when the deficit reaches zero, at that repair's send time. A random linear code over
 * GF(2⁸) is rank-deficient with probability about 1/256 per extra equation, which this
 * ignores, and losses before S₀ are taken as already repaired: so the figures are a
 * little optimistic for long bursts, which the controller's margin covers. Exact for
 * the fitted chain otherwise, by dynamic programming over (deficit, chain state).
 *
 * Sans-IO and deterministic: pure arithmetic, no clock.
 */
import type { GilbertFit } from './model.js';
import { stationaryLoss } from './model.js';

/** The `sw` settings and the flow the model is evaluated for. */
export interface SlidingWindowModelInput {
  /** Repairs per source packet (fractions allowed, as in the encoder). */
  readonly repairsPerSource: number;
  /** Delay from a source to its first repair and between its repairs, ms. */
  readonly repairSpacingMs: number;
  /** Most sources one repair covers. */
  readonly windowPackets: number;
  /** A source older than this (ms) leaves the window. */
  readonly windowMs: number;
  /** Time between source packets, ms (1000 / packet rate). */
  readonly sourceGapMs: number;
  /** A source rebuilt later than this after it was sent counts as late, ms. */
  readonly latencyBudgetMs: number;
}

/** What {@link slidingWindowOutcome} returns; fractions of all source packets. */
export interface SlidingWindowOutcome {
  /** Sources lost on the wire and never rebuilt. */
  readonly residual: number;
  /** Sources rebuilt, but more than the latency budget after they were sent. */
  readonly late: number;
}

/** Phases of a fractional repair rate that are averaged (the encoder's repair credit at S₀). */
const CREDIT_PHASES = 8;
/** Most wire packets of the stream after S₀ that are followed. */
const EVENTS_MAX = 512;
const CREDIT_EPSILON = 1e-9;

// Scratch of the walk, shared (the model runs to completion on one thread).
const eventTimeMs = new Float64Array(EVENTS_MAX);
const eventIsRepair = new Uint8Array(EVENTS_MAX);
let massBad = new Float64Array(EVENTS_MAX + 2);
let massGood = new Float64Array(EVENTS_MAX + 2);
let nextBad = new Float64Array(EVENTS_MAX + 2);
let nextGood = new Float64Array(EVENTS_MAX + 2);

/**
 * Lays out the wire stream after S₀ (sent at time 0) for a repair credit of `credit0`
 * before S₀'s own repairs are earned; returns the number of events. S₀ itself is not
 * an event. Repairs that no longer cover S₀ end the stream.
 */
function layOut(input: SlidingWindowModelInput, credit0: number): number {
  const rho = input.repairsPerSource;
  const gap = Math.max(input.sourceGapMs, 1e-3);
  const spacing = input.repairSpacingMs;
  // Candidate events as (time, isRepair); sorted by time, sources before
  // repairs due at the same instant (the encoder runs due repairs before a push).
  const times: number[] = [];
  const kinds: number[] = [];
  let credit = credit0;
  const lastSource = Math.min(input.windowPackets - 1, Math.floor(input.windowMs / gap) + 1);
  for (let i = 0; i <= lastSource; i++) {
    const t = i * gap;
    if (i > 0) {
      times.push(t);
      kinds.push(0);
    }
    credit += rho;
    let nth = 0;
    while (credit >= 1 - CREDIT_EPSILON) {
      credit -= 1;
      nth++;
      times.push(t + nth * spacing);
      kinds.push(1);
    }
    if (credit < 0) credit = 0;
  }
  const order = times.map((_, i) => i).sort((a, b) => times[a] - times[b] || kinds[a] - kinds[b]);
  let n = 0;
  for (const i of order) {
    if (n >= EVENTS_MAX) break;
    const t = times[i];
    if (kinds[i] === 1) {
      // The sources sent by then: S₀ is in the window while it is one of the newest windowPackets and young enough.
      const sourcesSent = Math.floor(t / gap + 1e-9) + 1;
      if (t > input.windowMs + 1e-9 || sourcesSent > input.windowPackets) break;
    }
    eventTimeMs[n] = t;
    eventIsRepair[n] = kinds[i];
    n++;
  }
  return n;
}

/** The walk for one layout; returns [unrecovered, late] given S₀ was lost. */
function walk(fit: GilbertFit, events: number, budgetMs: number): [number, number] {
  const bb = 1 - fit.r;
  const gb = fit.p;
  const cap = events + 1;
  massBad.fill(0, 0, cap + 1);
  massGood.fill(0, 0, cap + 1);
  // S₀ was lost: the chain is in the bad state, one equation short.
  massBad[1] = 1;
  let late = 0;
  let top = 1;
  for (let e = 0; e < events; e++) {
    nextBad.fill(0, 0, top + 2);
    nextGood.fill(0, 0, top + 2);
    const repair = eventIsRepair[e] === 1;
    let recovered = 0;
    for (let d = 1; d <= top; d++) {
      const fromBad = massBad[d];
      const fromGood = massGood[d];
      if (fromBad === 0 && fromGood === 0) continue;
      const toBad = fromBad * bb + fromGood * gb;
      const toGood = fromBad * (1 - bb) + fromGood * (1 - gb);
      if (repair) {
        // Lost repair: no change; received repair: one equation more.
        nextBad[d] += toBad;
        if (d === 1) recovered += toGood;
        else nextGood[d - 1] += toGood;
      } else {
        // Lost source: one more unknown; received source: no change.
        nextBad[d + 1] += toBad;
        nextGood[d] += toGood;
      }
    }
    if (!repair) top++;
    if (recovered > 0 && eventTimeMs[e] > budgetMs + 1e-9) late += recovered;
    [massBad, nextBad] = [nextBad, massBad];
    [massGood, nextGood] = [nextGood, massGood];
  }
  let unrecovered = 0;
  for (let d = 1; d <= top; d++) unrecovered += massBad[d] + massGood[d];
  return [unrecovered, late];
}

/**
 * Residual and late fractions of `sw` with `input`'s settings on the fitted path.
 * With no repairs it is the path's loss.
 */
export function slidingWindowOutcome(fit: GilbertFit, input: SlidingWindowModelInput): SlidingWindowOutcome {
  const loss = stationaryLoss(fit);
  if (loss === 0) return { residual: 0, late: 0 };
  if (!(input.repairsPerSource > 0)) return { residual: loss, late: 0 };
  // A whole rate has one phase; a fractional one is averaged over where S₀ falls in
  // the repair cycle (a repair right behind it, or sources later).
  const fractional = Math.abs(input.repairsPerSource - Math.round(input.repairsPerSource)) > CREDIT_EPSILON;
  const phases = fractional ? CREDIT_PHASES : 1;
  let unrecovered = 0;
  let late = 0;
  for (let phase = 0; phase < phases; phase++) {
    const events = layOut(input, phase / phases);
    const [u, l] = walk(fit, events, input.latencyBudgetMs);
    unrecovered += u;
    late += l;
  }
  return { residual: (loss * unrecovered) / phases, late: (loss * late) / phases };
}
