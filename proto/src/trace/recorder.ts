/**
 * {@link TraceRecorder}: turns probe outcomes on a real path into Slipstream trace
 * lines (`sim/src/trace/format.ts`), so a bad evening can be replayed later in the
 * simulator or the impairment proxy. The SDK and `slipstream connect --record FILE`
 * feed it; it never reads a clock or writes a file (sans-IO, like the cores):
 *
 * - inputs: {@link recordReply}`(sentAtMs, rttMs)` when a probe is answered,
 *   {@link recordLoss}`(sentAtMs)` when the caller gives a probe up for lost, and
 *   {@link handleTimeout}`(nowMs)`;
 * - outputs: {@link pollLine} (the header first, then one line per finished interval)
 *   and {@link pollTimeout} (when to call `handleTimeout` next).
 *
 * Samples are filed under the interval in which their probe was *sent*, so a probe
 * answered late still counts where the path was slow. An interval is finished once
 * `settleMs` have passed after its end: by then every probe sent in it has been
 * answered or given up (the caller's loss timeout must be shorter than `settleMs`).
 * Intervals without any probe produce no line; a replay holds the previous figures
 * through the gap.
 */
import { formatTraceHeader, formatTraceInterval, TRACE_INTERVAL_MS_MAX, TRACE_INTERVAL_MS_MIN, type SlipTraceEncoding, type TraceInterval } from './format.js';

/** Interval length when none is given, ms. */
export const TRACE_RECORDER_INTERVAL_MS_DEFAULT = 1000;
/** How long after an interval ends its probes may still be answered or declared lost, when none is given, ms. */
export const TRACE_RECORDER_SETTLE_MS_DEFAULT = 2000;

/** Options of {@link TraceRecorder}. */
export interface TraceRecorderInit {
  /** The caller's time (monotonic ms) at which the recording starts: trace time 0. */
  readonly startMs: number;
  /** Interval length, ms, 1–3,600,000. Default 1000. */
  readonly intervalMs?: number;
  /** Grace after an interval's end before it is written, ms, ≥ 0. Default 2000. Must exceed the caller's probe loss timeout. */
  readonly settleMs?: number;
  /** Line encoding. Default `jsonl`. */
  readonly encoding?: SlipTraceEncoding;
}

/** Running sums of one open interval. */
class IntervalSums {
  replies = 0;
  losses = 0;
  rttSumMs = 0;
  changeSumMs = 0;
  changes = 0;
  lastRttMs = Number.NaN;
}

/** Records probe outcomes into trace lines. See the module comment for the polling order. */
export class TraceRecorder {
  /** Interval length, ms. */
  readonly intervalMs: number;
  /** Grace before an interval is finished, ms. */
  readonly settleMs: number;
  /** Samples that came too late (their interval was already written) or before the start. */
  lateSamples = 0;

  private readonly startMs: number;
  private readonly encoding: SlipTraceEncoding;
  /** Open intervals by index (few at a time: the settle window over the interval length). */
  private readonly open = new Map<number, IntervalSums>();
  /** Index of the first interval not yet finished. */
  private nextIndex = 0;
  private readonly lines: string[] = [];
  private linesHead = 0;

  constructor(init: TraceRecorderInit) {
    const intervalMs = init.intervalMs ?? TRACE_RECORDER_INTERVAL_MS_DEFAULT;
    const settleMs = init.settleMs ?? TRACE_RECORDER_SETTLE_MS_DEFAULT;
    if (!(intervalMs >= TRACE_INTERVAL_MS_MIN && intervalMs <= TRACE_INTERVAL_MS_MAX)) throw new RangeError(`TraceRecorder: intervalMs ${intervalMs} is out of range; expected ${TRACE_INTERVAL_MS_MIN} to ${TRACE_INTERVAL_MS_MAX}`);
    if (!(settleMs >= 0 && Number.isFinite(settleMs))) throw new RangeError(`TraceRecorder: settleMs ${settleMs} is out of range; expected a finite number ≥ 0`);
    if (!Number.isFinite(init.startMs)) throw new RangeError('TraceRecorder: startMs must be finite');
    this.startMs = init.startMs;
    this.intervalMs = intervalMs;
    this.settleMs = settleMs;
    this.encoding = init.encoding ?? 'jsonl';
    this.lines.push(formatTraceHeader(this.encoding, intervalMs));
  }

  /** A probe sent at `sentAtMs` was answered after `rttMs`. */
  recordReply(sentAtMs: number, rttMs: number): void {
    const sums = this.sumsFor(sentAtMs);
    if (sums === undefined || !(rttMs >= 0)) return;
    sums.replies++;
    sums.rttSumMs += rttMs;
    if (!Number.isNaN(sums.lastRttMs)) {
      sums.changeSumMs += Math.abs(rttMs - sums.lastRttMs);
      sums.changes++;
    }
    sums.lastRttMs = rttMs;
  }

  /** A probe sent at `sentAtMs` was given up for lost. */
  recordLoss(sentAtMs: number): void {
    const sums = this.sumsFor(sentAtMs);
    if (sums !== undefined) sums.losses++;
  }

  /** Finishes every interval whose end plus `settleMs` is at or before `nowMs`. */
  handleTimeout(nowMs: number): void {
    while (this.open.size > 0) {
      const endMs = this.startMs + (this.nextIndex + 1) * this.intervalMs;
      if (endMs + this.settleMs > nowMs) break;
      this.finishNext();
    }
  }

  /** When {@link handleTimeout} next has work (ms), or undefined when nothing is open. */
  pollTimeout(): number | undefined {
    if (this.open.size === 0) return undefined;
    let first = this.nextIndex;
    while (!this.open.has(first)) first++;
    return this.startMs + (first + 1) * this.intervalMs + this.settleMs;
  }

  /** The next line to write (no line ending), or undefined. The header comes first. */
  pollLine(): string | undefined {
    if (this.linesHead === this.lines.length) return undefined;
    const line = this.lines[this.linesHead++]!;
    if (this.linesHead === this.lines.length) {
      this.lines.length = 0;
      this.linesHead = 0;
    }
    return line;
  }

  /** Finishes every open interval now, settled or not (the recording is ending). */
  finish(): void {
    while (this.open.size > 0) this.finishNext();
  }

  private sumsFor(sentAtMs: number): IntervalSums | undefined {
    const relMs = sentAtMs - this.startMs;
    if (!(relMs >= 0)) {
      this.lateSamples++;
      return undefined;
    }
    const index = Math.floor(relMs / this.intervalMs);
    if (index < this.nextIndex) {
      this.lateSamples++;
      return undefined;
    }
    let sums = this.open.get(index);
    if (sums === undefined) {
      sums = new IntervalSums();
      this.open.set(index, sums);
    }
    return sums;
  }

  private finishNext(): void {
    const index = this.nextIndex++;
    const sums = this.open.get(index);
    if (sums === undefined) return;
    this.open.delete(index);
    const probes = sums.replies + sums.losses;
    if (probes === 0) return;
    const interval: TraceInterval = {
      tMs: index * this.intervalMs,
      rttMs: sums.replies > 0 ? sums.rttSumMs / sums.replies : null,
      lossFraction: sums.losses / probes,
      jitterMs: sums.changes > 0 ? sums.changeSumMs / sums.changes : null,
      probes,
    };
    this.lines.push(formatTraceInterval(this.encoding, interval));
  }
}
