/**
 * Interval-by-interval comparison of a replay against the recording it replays: the
 * acceptance rule of issue 7 ("a trace recorded by `slipstream connect --record` and
 * replayed in the proxy reproduces the recorded loss and RTT per interval within
 * 10 %"), shared by the tests and `slipstream bench proxy` so they judge alike.
 *
 * Per recorded interval (matched to the replayed one by `tMs`):
 * - RTT: |replayed − recorded| ≤ tolerance × recorded (skipped when the recording has
 *   no RTT there: every probe was lost);
 * - loss: |replayed − recorded| ≤ max(tolerance × recorded, floor ÷ replayed probes).
 *   The floor is in packets, because a relative bound on a small count asks for less
 *   than one packet: the caller states how many packets its replay may miscount (for
 *   the default `spread` loss pattern, see {@link TRACE_SPREAD_LOSS_SLACK_PACKETS}).
 */
import type { TraceInterval } from '../../../proto/src/trace/format.js';

/** The issue's tolerance: 10 % of the recorded figure. */
export const TRACE_REPLAY_TOLERANCE = 0.1;

/**
 * Packets by which a round trip through two links replaying a trace with the `spread`
 * loss pattern may miss an interval's recorded loss count: each direction loses its
 * share to within its loss credit (kept in [−0.5, 1.5), so ±2 packets over an
 * interval), and the two directions add up.
 */
export const TRACE_SPREAD_LOSS_SLACK_PACKETS = 4;

/** Options of {@link compareTraceIntervals}. */
export interface TraceComparisonOptions {
  /** Relative tolerance of both figures. Default {@link TRACE_REPLAY_TOLERANCE}. */
  readonly tolerance?: number;
  /** Loss error always allowed, in packets of the replayed interval. Default 0. */
  readonly lossFloorPackets?: number;
}

/** One interval's verdict. */
export interface IntervalComparison {
  /** Interval start, ms of trace time. */
  readonly tMs: number;
  readonly recordedRttMs: number | null;
  /** Null when the replay has no RTT there (or no such interval). */
  readonly replayedRttMs: number | null;
  /** |replayed − recorded| ÷ recorded; null when either is missing. */
  readonly rttError: number | null;
  readonly rttOk: boolean;
  readonly recordedLoss: number;
  /** NaN when the replay has no such interval. */
  readonly replayedLoss: number;
  /** |replayed − recorded| (fractions). */
  readonly lossError: number;
  /** The loss error allowed in this interval (fraction). */
  readonly lossAllowed: number;
  readonly lossOk: boolean;
  /** Probes of the replayed interval (0 when unknown). */
  readonly replayedProbes: number;
  readonly ok: boolean;
}

/** Compares `replayed` with `recorded` interval by interval; see the module comment. */
export function compareTraceIntervals(recorded: readonly TraceInterval[], replayed: readonly TraceInterval[], options: TraceComparisonOptions = {}): IntervalComparison[] {
  const tolerance = options.tolerance ?? TRACE_REPLAY_TOLERANCE;
  const floorPackets = options.lossFloorPackets ?? 0;
  const byT = new Map(replayed.map((x) => [x.tMs, x]));
  return recorded.map((a) => {
    const b = byT.get(a.tMs);
    const replayedRttMs = b?.rttMs ?? null;
    const rttError = a.rttMs === null || replayedRttMs === null ? null : Math.abs(replayedRttMs - a.rttMs) / a.rttMs;
    const rttOk = a.rttMs === null || (rttError !== null && rttError <= tolerance);
    const replayedProbes = b?.probes ?? 0;
    const replayedLoss = b === undefined ? Number.NaN : b.lossFraction;
    const lossError = Math.abs(replayedLoss - a.lossFraction);
    const lossAllowed = Math.max(tolerance * a.lossFraction, replayedProbes > 0 ? floorPackets / replayedProbes : 0);
    const lossOk = lossError <= lossAllowed + 1e-12;
    return { tMs: a.tMs, recordedRttMs: a.rttMs, replayedRttMs, rttError, rttOk, recordedLoss: a.lossFraction, replayedLoss, lossError, lossAllowed, lossOk, replayedProbes, ok: rttOk && lossOk };
  });
}

/** The comparison as text lines, one per interval, with the verdict. */
export function formatTraceComparison(rows: readonly IntervalComparison[]): string[] {
  const ms = (v: number | null): string => (v === null ? '—' : `${v.toFixed(2)} ms`);
  const pct = (v: number): string => (Number.isNaN(v) ? '—' : `${(v * 100).toFixed(2)} %`);
  return rows.map(
    (r) =>
      `t ${String(r.tMs).padStart(6)} ms: RTT ${ms(r.recordedRttMs).padStart(10)} → ${ms(r.replayedRttMs).padStart(10)} (${r.rttError === null ? '—' : `${(r.rttError * 100).toFixed(1)} %`} ${r.rttOk ? 'ok' : 'FAIL'}), ` +
      `loss ${pct(r.recordedLoss).padStart(8)} → ${pct(r.replayedLoss).padStart(8)} (off by ${pct(r.lossError)}, allowed ${pct(r.lossAllowed)} ${r.lossOk ? 'ok' : 'FAIL'}; ${r.replayedProbes} probes)`,
  );
}

/**
 * Per-interval figures of a probe run, by send time from `startMs`: the loss fraction
 * and the **median** RTT of the answered probes (`rttMs[i]` NaN when probe i was not
 * answered). Tests judge RTT by the median because a stall of the machine inflates a
 * mean without bound but moves a median only when it covers half the interval; on a
 * replayed path, whose jitter is symmetric, the two coincide.
 */
export function probeIntervals(sentAtMs: ArrayLike<number>, rttMs: ArrayLike<number>, startMs: number, intervalMs: number, intervals: number): TraceInterval[] {
  const rtts: number[][] = Array.from({ length: intervals }, () => []);
  const sent = new Array<number>(intervals).fill(0);
  const lost = new Array<number>(intervals).fill(0);
  for (let i = 0; i < sentAtMs.length; i++) {
    const index = Math.floor((sentAtMs[i]! - startMs) / intervalMs);
    if (!(index >= 0 && index < intervals)) continue;
    sent[index]!++;
    if (Number.isNaN(rttMs[i]!)) lost[index]!++;
    else rtts[index]!.push(rttMs[i]!);
  }
  return rtts.map((list, index) => {
    const sorted = Float64Array.from(list).sort();
    const mid = sorted.length >> 1;
    const median = sorted.length === 0 ? null : sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
    return { tMs: index * intervalMs, rttMs: median, lossFraction: sent[index]! === 0 ? 0 : lost[index]! / sent[index]!, jitterMs: null, probes: sent[index]! };
  });
}
