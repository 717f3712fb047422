/**
 * What players would feel, from a deployment's packet logs ({@link PathLog}): the
 * figures of `slipstream sim run`'s report, for the direct path and through
 * Slipstream, computed the same way for both.
 *
 * Over the game packets a player sent in its measurement window `[start + warm-up,
 * end]`:
 * - `loss`: one-way deliveries that never happened ÷ one-way deliveries attempted,
 *   both directions (a packet the origin never got counts once; an answer the player
 *   never got counts once);
 * - `latencyMs`: round trip of a packet (player → origin → player: what players call
 *   ping), nearest-rank p50 and p99 over every answered packet;
 * - `jitterMs`: mean absolute difference between consecutive round trips (in send
 *   order), as the SDK's selector and the trace format define jitter;
 * - `longestGapMs`: the longest time the player received nothing in the window (edges
 *   included: a player who never hears back has a gap of the whole window).
 */
import type { PathLog } from '../deployment/deployment.js';

/** Raw sums of one player's path over a window: combine several with {@link mergeSamples}. */
export class PathSamples {
  /** One-way deliveries attempted / missed. */
  attempts = 0;
  missed = 0;
  /** Round trips, ms, in send order. */
  readonly rttsMs: number[] = [];
  /** Sum of |consecutive RTT differences|, ms, and how many. */
  jitterSumMs = 0;
  jitterPairs = 0;
  /** Longest silence at the player, ms. */
  longestGapMs = 0;
}

/** Figures of one path as the report prints them. */
export interface PathQoe {
  /** Fraction 0–1 (6 decimals). */
  readonly loss: number;
  /** Round trip, ms (3 decimals); null without a single answered packet. */
  readonly latencyMs: { readonly p50: number | null; readonly p99: number | null };
  readonly jitterMs: number;
  readonly longestGapMs: number;
}

/** Sums `log` over packets sent in `[fromMs, toMs]`. */
export function samplePath(log: PathLog, fromMs: number, toMs: number): PathSamples {
  const out = new PathSamples();
  const n = log.sentAtMs.length;
  const rttBySeq: (number | undefined)[] = new Array<number | undefined>(n);
  for (let seq = 0; seq < n; seq++) {
    const t = log.sentAtMs[seq]!;
    if (t < fromMs || t > toMs) continue;
    out.attempts++;
    if (Number.isNaN(log.originAtMs[seq]!)) out.missed++;
  }
  const arrivals: number[] = [];
  for (let d = 0; d < log.echoSentAtMs.length; d++) {
    const seq = log.echoOf[d]!;
    const t = log.sentAtMs[seq]!;
    const at = log.clientAtMs[d]!;
    // NaN (never arrived) fails both comparisons.
    if (at >= fromMs && at <= toMs) arrivals.push(at);
    if (t < fromMs || t > toMs) continue;
    out.attempts++;
    if (Number.isNaN(at)) out.missed++;
    else rttBySeq[seq] = at - t;
  }
  let previous: number | undefined;
  for (let seq = 0; seq < n; seq++) {
    const rtt = rttBySeq[seq];
    if (rtt === undefined) continue;
    out.rttsMs.push(rtt);
    if (previous !== undefined) {
      out.jitterSumMs += Math.abs(rtt - previous);
      out.jitterPairs++;
    }
    previous = rtt;
  }
  // Typed-array sort is numeric and much faster than a comparator on a plain array.
  const sortedArrivals = Float64Array.from(arrivals).sort();
  let last = fromMs;
  for (const at of sortedArrivals) {
    out.longestGapMs = Math.max(out.longestGapMs, at - last);
    last = at;
  }
  out.longestGapMs = Math.max(out.longestGapMs, toMs - last);
  return out;
}

/** Pools several players' samples (the report's totals). */
export function mergeSamples(parts: readonly PathSamples[]): PathSamples {
  const out = new PathSamples();
  for (const p of parts) {
    out.attempts += p.attempts;
    out.missed += p.missed;
    for (const r of p.rttsMs) out.rttsMs.push(r);
    out.jitterSumMs += p.jitterSumMs;
    out.jitterPairs += p.jitterPairs;
    out.longestGapMs = Math.max(out.longestGapMs, p.longestGapMs);
  }
  return out;
}

/** Nearest-rank percentile of sorted values; null when empty. */
export function percentile(sorted: ArrayLike<number>, q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Rounds ms to 3 decimals (µs), so reports stay short and identical across runs. */
export function roundMs(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** Rounds a fraction to 6 decimals. */
export function roundFraction(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

/** The report figures of pooled samples. */
export function pathQoe(s: PathSamples): PathQoe {
  const sorted = Float64Array.from(s.rttsMs).sort();
  const p50 = percentile(sorted, 0.5);
  const p99 = percentile(sorted, 0.99);
  return {
    loss: roundFraction(s.attempts === 0 ? 0 : s.missed / s.attempts),
    latencyMs: { p50: p50 === null ? null : roundMs(p50), p99: p99 === null ? null : roundMs(p99) },
    jitterMs: roundMs(s.jitterPairs === 0 ? 0 : s.jitterSumMs / s.jitterPairs),
    longestGapMs: roundMs(s.longestGapMs),
  };
}

/** Per-interval figures of one path over `[0, endMs)`: loss and median round trip of packets sent in each interval (null when none). */
export function pathSeries(log: PathLog, intervalMs: number, endMs: number): { loss: (number | null)[]; latencyMs: (number | null)[] } {
  const buckets = Math.ceil(endMs / intervalMs);
  const attempts = new Array<number>(buckets).fill(0);
  const missed = new Array<number>(buckets).fill(0);
  const rtts: number[][] = Array.from({ length: buckets }, () => []);
  const bucketOf = (t: number): number => Math.floor(t / intervalMs);
  for (let seq = 0; seq < log.sentAtMs.length; seq++) {
    const b = bucketOf(log.sentAtMs[seq]!);
    if (b >= buckets) continue;
    attempts[b]!++;
    if (Number.isNaN(log.originAtMs[seq]!)) missed[b]!++;
  }
  for (let d = 0; d < log.echoSentAtMs.length; d++) {
    const seq = log.echoOf[d]!;
    const b = bucketOf(log.sentAtMs[seq]!);
    if (b >= buckets) continue;
    attempts[b]!++;
    const at = log.clientAtMs[d]!;
    if (Number.isNaN(at)) missed[b]!++;
    else rtts[b]!.push(at - log.sentAtMs[seq]!);
  }
  return {
    loss: attempts.map((a, b) => (a === 0 ? null : roundFraction(missed[b]! / a))),
    latencyMs: rtts.map((list) => {
      const p = percentile(Float64Array.from(list).sort(), 0.5);
      return p === null ? null : roundMs(p);
    }),
  };
}
