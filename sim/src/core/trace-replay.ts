/**
 * Trace-driven link models: the `trace` option of a `LinkModelSpec`, its validation,
 * and {@link IntervalTracePlayer}, which turns a recorded path trace into the delay,
 * jitter and loss of one link direction at any moment. Sans-IO: times come from the
 * caller (virtual ms in the simulator, a monotonic clock in the proxy).
 */
import { SimConfigError } from '../../../proto/src/errors.js';
import { TRACE_INTERVAL_MS_MAX, TRACE_INTERVAL_MS_MIN, TRACE_RTT_MS_MAX, TRACE_TIME_MS_MAX, type TraceInterval } from '../../../proto/src/trace/format.js';
import { MAHIMAHI_LINES_MAX, MAHIMAHI_QUEUE_PACKETS_DEFAULT, MAHIMAHI_TIME_MS_MAX } from './trace-mahimahi.js';

/**
 * How a round-trip trace maps onto one direction.
 * - `split` (default): the trace is a round trip shared by both directions, so put it
 *   on both: each carries half the RTT, jitter whose round-trip sum matches the trace,
 *   and loss 1 − √(1 − L), so that a probe's round trip sees the recorded loss L.
 * - `whole`: this direction alone carries the recorded RTT, jitter and loss.
 */
export type TraceShare = 'split' | 'whole';

/**
 * How recorded loss is drawn.
 * - `spread` (default): each interval loses its recorded fraction of packets to within
 *   a packet or two, at randomly dithered spacing (error diffusion with a random
 *   threshold): a replay reproduces the recording interval by interval.
 * - `bernoulli`: each packet is lost independently with the interval's probability, so
 *   short intervals scatter around the recorded figure.
 */
export type TraceLossPattern = 'spread' | 'bernoulli';

/** A recorded path (Slipstream trace format) replayed as delay, jitter and loss. */
export interface IntervalTraceSpec {
  readonly kind: 'intervals';
  /** The intervals, strictly increasing `tMs` (see `sim/src/trace/format.ts`). */
  readonly intervals: readonly TraceInterval[];
  /** Duration of the last interval, ms (1–3,600,000). Default: the spacing of the last two, or 1000. */
  readonly lastIntervalMs?: number;
  /** See {@link TraceShare}. Default `split`. */
  readonly share?: TraceShare;
  /** Start over after the last interval. Default false: the last interval's figures hold. */
  readonly loop?: boolean;
  /** See {@link TraceLossPattern}. Default `spread`. */
  readonly lossPattern?: TraceLossPattern;
  /** Caller's time (ms) of trace time 0. Default: when the direction carries its first packet. */
  readonly startMs?: number;
}

/** A mahimahi packet-delivery trace replayed as the direction's bottleneck. */
export interface DeliveryTraceSpec {
  readonly kind: 'mahimahi';
  /** Opportunity times, ms, non-decreasing, the last > 0 (the loop period). Each carries 1500 bytes. */
  readonly deliveryMs: ArrayLike<number>;
  /** Packets that may wait for an opportunity, including the one in service, 1–1,000,000. Default 1000. */
  readonly queuePackets?: number;
  /** Caller's time (ms) of trace time 0. Default: when the direction carries its first packet. */
  readonly startMs?: number;
}

/** The `trace` option of a link model. */
export type LinkTraceSpec = IntervalTraceSpec | DeliveryTraceSpec;

const INTERVAL_KEYS = ['kind', 'intervals', 'lastIntervalMs', 'share', 'loop', 'lossPattern', 'startMs'];
const DELIVERY_KEYS = ['kind', 'deliveryMs', 'queuePackets', 'startMs'];
/** Upper bound of a trace's `queuePackets` (the link core's own bound). */
const QUEUE_PACKETS_MAX = 1_000_000;

function bad(parameter: string, reason: string): never {
  throw new SimConfigError(parameter, `${parameter}: ${reason}`);
}

function checkNumber(parameter: string, value: unknown, min: number, max: number, integer = false): void {
  const kind = integer ? 'an integer' : 'a number';
  if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) bad(parameter, `${String(value)} is not ${kind}; expected ${kind} from ${min} to ${max}`);
  if (value < min || value > max) bad(parameter, `${value} is out of range; expected ${kind} from ${min} to ${max}`);
}

/**
 * Checks a `trace` option and throws {@link SimConfigError} naming the first bad
 * parameter (`link.trace.intervals[3].lossFraction`). `conflicts` are the other keys of
 * the link model that the trace would fight with (they are errors, not silently ignored).
 */
export function validateLinkTrace(trace: LinkTraceSpec, where: string, otherKeys: readonly string[]): void {
  if (typeof trace !== 'object' || trace === null || Array.isArray(trace)) bad(where, 'expected a trace object {kind: intervals | mahimahi, …}');
  const kind = (trace as { kind?: unknown }).kind;
  if (kind !== 'intervals' && kind !== 'mahimahi') bad(`${where}.kind`, `'${String(kind)}' is not one of intervals, mahimahi`);
  const allowed = kind === 'intervals' ? INTERVAL_KEYS : DELIVERY_KEYS;
  for (const key of Object.keys(trace)) {
    if (!allowed.includes(key)) bad(`${where}.${key}`, `unknown parameter of a ${kind} trace; expected ${allowed.join(', ')}`);
  }
  // The trace drives these; setting them too would leave one of the two silently unused.
  const driven = kind === 'intervals' ? ['loss', 'jitterMs', 'jitterDist'] : ['rateKbps', 'queuePackets'];
  for (const key of driven) {
    if (otherKeys.includes(key)) bad(`${where}`, `a ${kind} trace sets the link's ${kind === 'intervals' ? 'loss and jitter' : 'rate and queue'}; remove ${key} or the trace`);
  }
  if (trace.startMs !== undefined) checkNumber(`${where}.startMs`, trace.startMs, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  if (trace.kind === 'intervals') {
    const intervals = trace.intervals as unknown;
    if (!Array.isArray(intervals) || intervals.length === 0) bad(`${where}.intervals`, 'expected a non-empty list of {tMs, rttMs, lossFraction, jitterMs}');
    let previous = Number.NEGATIVE_INFINITY;
    (intervals as unknown[]).forEach((raw, i) => {
      const at = `${where}.intervals[${i}]`;
      if (typeof raw !== 'object' || raw === null) bad(at, 'expected {tMs, rttMs, lossFraction, jitterMs}');
      const interval = raw as Record<string, unknown>;
      checkNumber(`${at}.tMs`, interval.tMs, 0, TRACE_TIME_MS_MAX);
      if (!((interval.tMs as number) > previous)) bad(`${at}.tMs`, `${String(interval.tMs)} is not after the previous interval's ${previous}; expected strictly increasing times`);
      previous = interval.tMs as number;
      if (interval.rttMs !== null) checkNumber(`${at}.rttMs`, interval.rttMs, 0, TRACE_RTT_MS_MAX);
      if (interval.jitterMs !== null) checkNumber(`${at}.jitterMs`, interval.jitterMs, 0, TRACE_RTT_MS_MAX);
      checkNumber(`${at}.lossFraction`, interval.lossFraction, 0, 1);
    });
    if (trace.lastIntervalMs !== undefined) checkNumber(`${where}.lastIntervalMs`, trace.lastIntervalMs, TRACE_INTERVAL_MS_MIN, TRACE_INTERVAL_MS_MAX);
    if (trace.share !== undefined && trace.share !== 'split' && trace.share !== 'whole') bad(`${where}.share`, `'${String(trace.share)}' is not one of split, whole`);
    if (trace.lossPattern !== undefined && trace.lossPattern !== 'spread' && trace.lossPattern !== 'bernoulli') bad(`${where}.lossPattern`, `'${String(trace.lossPattern)}' is not one of spread, bernoulli`);
    if (trace.loop !== undefined && typeof trace.loop !== 'boolean') bad(`${where}.loop`, 'expected true or false');
    return;
  }
  const times = trace.deliveryMs as unknown;
  if (typeof times !== 'object' || times === null || typeof (times as ArrayLike<unknown>).length !== 'number') bad(`${where}.deliveryMs`, 'expected a list of delivery times in ms');
  const list = times as ArrayLike<unknown>;
  if (list.length === 0 || list.length > MAHIMAHI_LINES_MAX) bad(`${where}.deliveryMs`, `has ${list.length} entries; expected 1 to ${MAHIMAHI_LINES_MAX}`);
  let previous = 0;
  for (let i = 0; i < list.length; i++) {
    const value = list[i];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < previous || value > MAHIMAHI_TIME_MS_MAX) {
      bad(`${where}.deliveryMs[${i}]`, `${String(value)} is not a time in ms from ${previous} (the previous entry) to ${MAHIMAHI_TIME_MS_MAX}`);
    }
    previous = value;
  }
  if (!(previous > 0)) bad(`${where}.deliveryMs`, 'the last entry is 0; it sets the loop period and must be greater than 0');
  if (trace.queuePackets !== undefined) checkNumber(`${where}.queuePackets`, trace.queuePackets, 1, QUEUE_PACKETS_MAX, true);
}

/** Queue of a delivery trace after defaults. */
export function deliveryQueuePackets(trace: DeliveryTraceSpec): number {
  return trace.queuePackets ?? MAHIMAHI_QUEUE_PACKETS_DEFAULT;
}

/**
 * E|X₁ − X₂| = 2σ/√π for independent normal X: converts the trace's jitter (mean
 * change between consecutive RTTs) into the standard deviation of the RTT.
 */
const SD_PER_MEAN_CHANGE = Math.sqrt(Math.PI) / 2;

/**
 * Follows an {@link IntervalTraceSpec} over time. Call {@link advance} with the time of
 * each packet when it reaches {@link nextChangeMs}; between changes the figures hold,
 * so the per-packet cost is one comparison.
 */
export class IntervalTracePlayer {
  /** One-way delay this direction adds now, ms (before the link's own `delayMs`). */
  delayMs = 0;
  /** Standard deviation of the normal jitter this direction adds now, ms. */
  jitterSdMs = 0;
  /** Loss probability of this direction now. */
  lossProbability = 0;
  /** The caller's time at which the figures next change, ms. */
  nextChangeMs = Number.NEGATIVE_INFINITY;

  private readonly startTMs: Float64Array;
  private readonly delays: Float64Array;
  private readonly jitters: Float64Array;
  private readonly losses: Float64Array;
  private readonly periodMs: number;
  private readonly loop: boolean;
  private startMs: number | undefined;

  constructor(spec: IntervalTraceSpec) {
    const n = spec.intervals.length;
    const split = (spec.share ?? 'split') === 'split';
    this.startTMs = new Float64Array(n);
    this.delays = new Float64Array(n);
    this.jitters = new Float64Array(n);
    this.losses = new Float64Array(n);
    // Unmeasured figures (null: every probe lost) hold the last known value; leading ones take the first known.
    const firstRtt = spec.intervals.find((i) => i.rttMs !== null)?.rttMs ?? 0;
    const firstJitter = spec.intervals.find((i) => i.jitterMs !== null)?.jitterMs ?? 0;
    let rtt = firstRtt;
    let jitter = firstJitter;
    for (let i = 0; i < n; i++) {
      const interval = spec.intervals[i]!;
      rtt = interval.rttMs ?? rtt;
      jitter = interval.jitterMs ?? jitter;
      this.startTMs[i] = interval.tMs;
      const rttSdMs = jitter * SD_PER_MEAN_CHANGE;
      // Split: two independent directions of σ/√2 sum to a round trip of σ.
      this.delays[i] = split ? rtt / 2 : rtt;
      this.jitters[i] = split ? rttSdMs / Math.SQRT2 : rttSdMs;
      this.losses[i] = split ? 1 - Math.sqrt(1 - interval.lossFraction) : interval.lossFraction;
    }
    const last = spec.intervals[n - 1]!;
    const lastMs = spec.lastIntervalMs ?? (n >= 2 ? last.tMs - spec.intervals[n - 2]!.tMs : 1000);
    this.periodMs = last.tMs + lastMs;
    this.loop = spec.loop ?? false;
    this.startMs = spec.startMs;
  }

  /** Sets the figures in force at `nowMs` and {@link nextChangeMs}. The first call fixes the start when the spec gave none. */
  advance(nowMs: number): void {
    if (this.startMs === undefined) this.startMs = nowMs;
    let relMs = nowMs - this.startMs;
    let cycleBaseMs = this.startMs;
    if (this.loop && relMs >= this.periodMs) {
      const cycles = Math.floor(relMs / this.periodMs);
      relMs -= cycles * this.periodMs;
      cycleBaseMs += cycles * this.periodMs;
    }
    const times = this.startTMs;
    const n = times.length;
    // Last interval starting at or before relMs (before the first: the first's figures).
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (times[mid]! <= relMs) lo = mid + 1;
      else hi = mid;
    }
    const index = lo === 0 ? 0 : lo - 1;
    this.delayMs = this.delays[index]!;
    this.jitterSdMs = this.jitters[index]!;
    this.lossProbability = this.losses[index]!;
    if (lo < n) this.nextChangeMs = cycleBaseMs + times[lo]!;
    else this.nextChangeMs = this.loop ? cycleBaseMs + this.periodMs : Number.POSITIVE_INFINITY;
  }
}
