/**
 * mahimahi's packet-delivery traces (Netravali et al., "Mahimahi: Accurate
 * Record-and-Replay for HTTP", USENIX ATC 2015; `mm-link`): each line is a time in ms
 * at which one MTU-sized packet (1500 bytes) may leave the link. Several lines with the
 * same time are several opportunities in that millisecond. The trace loops: its period
 * is the last line's time, so a file ending at 1000 repeats every second.
 *
 * {@link DeliverySchedule} replays one as the bottleneck of a link direction, sans-IO:
 * FIFO, byte-granular as in mm-link (a packet smaller than 1500 bytes leaves the rest
 * of its opportunity to the packets behind it; a larger one spans opportunities), an
 * unused opportunity is lost, and a bounded queue tail-drops.
 */
import type { TraceParseResult } from '../../../proto/src/trace/format.js';

/** Bytes one delivery opportunity carries (mahimahi's MTU). */
export const MAHIMAHI_PACKET_BYTES = 1500;
/** Most lines a trace may have (ten million: about 2.8 hours at 12 Mbit/s). */
export const MAHIMAHI_LINES_MAX = 10_000_000;
/** Largest timestamp, ms (about 31 years: a larger one is a unit mistake). */
export const MAHIMAHI_TIME_MS_MAX = 1e12;
/** Queue in front of the schedule when none is given, packets (mm-link's default is unbounded; a proxy needs a bound). */
export const MAHIMAHI_QUEUE_PACKETS_DEFAULT = 1000;

/** A parsed mahimahi trace. */
export interface MahimahiTrace {
  /** Opportunity times, ms, non-decreasing. */
  readonly deliveryMs: Float64Array;
  /** Loop period: the last timestamp, ms (> 0). */
  readonly periodMs: number;
}

/** Parses a mahimahi trace: one non-negative integer per line, non-decreasing, the last > 0. Never throws. */
export function parseMahimahiTrace(text: string): TraceParseResult<MahimahiTrace> {
  const values: number[] = [];
  let lineNo = 0;
  let start = 0;
  let previous = 0;
  let lastValueLine = 1;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    lineNo++;
    const raw = text.slice(start, end).trim();
    start = end + 1;
    if (raw === '') continue;
    if (!/^\d{1,13}$/.test(raw)) return { ok: false, error: { line: lineNo, field: undefined, reason: `'${raw.length > 40 ? `${raw.slice(0, 40)}…` : raw}' is not a whole number of ms; expected one non-negative integer timestamp per line` } };
    const value = Number(raw);
    if (value > MAHIMAHI_TIME_MS_MAX) return { ok: false, error: { line: lineNo, field: undefined, reason: `${value} is out of range; expected at most ${MAHIMAHI_TIME_MS_MAX} ms` } };
    if (value < previous) return { ok: false, error: { line: lineNo, field: undefined, reason: `${value} is before the previous line's ${previous}; timestamps must not decrease` } };
    if (values.length >= MAHIMAHI_LINES_MAX) return { ok: false, error: { line: lineNo, field: undefined, reason: `more than ${MAHIMAHI_LINES_MAX} lines` } };
    values.push(value);
    previous = value;
    lastValueLine = lineNo;
  }
  if (values.length === 0) return { ok: false, error: { line: lineNo, field: undefined, reason: 'no timestamps; expected one delivery time in ms per line' } };
  const periodMs = values[values.length - 1]!;
  if (periodMs <= 0) return { ok: false, error: { line: lastValueLine, field: undefined, reason: 'the last timestamp is 0; it sets the loop period and must be greater than 0' } };
  return { ok: true, trace: { deliveryMs: Float64Array.from(values), periodMs } };
}

/** Mean rate a trace offers, kbit/s (opportunities × 1500 B per period). */
export function mahimahiRateKbps(deliveryMs: ArrayLike<number>, periodMs: number): number {
  return (deliveryMs.length * MAHIMAHI_PACKET_BYTES * 8) / periodMs;
}

/**
 * The delivery schedule of a mahimahi trace as a FIFO bottleneck. Sans-IO: the caller
 * passes the time; `admit` returns when the packet leaves, so the caller can schedule
 * it at once. Times must not decrease between calls.
 */
export class DeliverySchedule {
  private readonly deliveryMs: Float64Array;
  private readonly periodMs: number;
  private readonly queuePackets: number;
  private startMs: number | undefined;
  /** Start of the loop cycle the current opportunity belongs to, ms. */
  private cycleBaseMs = 0;
  /** Index of the current opportunity in {@link deliveryMs}. */
  private index = 0;
  /** Bytes the current opportunity can still carry. */
  private bytesLeft = 0;
  /** Departure of the last admitted packet, ms. */
  private lastDepartMs = Number.NEGATIVE_INFINITY;
  /** Ring of departure times of packets still queued (non-decreasing). */
  private readonly ring: Float64Array;
  private readonly mask: number;
  private head = 0;
  private count = 0;

  /**
   * @param deliveryMs opportunity times (ms, non-decreasing, last > 0); not copied
   * @param queuePackets packets that may wait, including the one in service; more are tail-dropped
   * @param startMs when trace time 0 is, on the caller's clock; default: the first {@link admit}
   */
  constructor(deliveryMs: Float64Array, queuePackets: number, startMs?: number) {
    this.deliveryMs = deliveryMs;
    this.periodMs = deliveryMs[deliveryMs.length - 1]!;
    this.queuePackets = queuePackets;
    this.startMs = startMs;
    let capacity = 1;
    while (capacity < queuePackets) capacity *= 2;
    this.ring = new Float64Array(capacity);
    this.mask = capacity - 1;
  }

  /** Packets waiting or in service at `nowMs`. */
  queued(nowMs: number): number {
    this.drain(nowMs);
    return this.count;
  }

  /** Admits a packet of `sizeBytes` at `nowMs`; returns its departure time (ms), or -1 when the queue is full. */
  admit(nowMs: number, sizeBytes: number): number {
    if (this.startMs === undefined) this.startMs = nowMs;
    this.drain(nowMs);
    if (this.count >= this.queuePackets) return -1;
    // An idle link wastes its opportunities: service resumes at the first one from now.
    if (this.lastDepartMs < nowMs) this.seek(nowMs);
    let need = sizeBytes;
    while (need > this.bytesLeft) {
      need -= this.bytesLeft;
      this.advance();
    }
    this.bytesLeft -= need;
    const departMs = this.cycleBaseMs + this.deliveryMs[this.index]!;
    this.lastDepartMs = departMs;
    this.ring[(this.head + this.count) & this.mask] = departMs;
    this.count++;
    return departMs;
  }

  private drain(nowMs: number): void {
    while (this.count > 0 && this.ring[this.head]! <= nowMs) {
      this.head = (this.head + 1) & this.mask;
      this.count--;
    }
  }

  private advance(): void {
    this.index++;
    if (this.index === this.deliveryMs.length) {
      this.index = 0;
      this.cycleBaseMs += this.periodMs;
    }
    this.bytesLeft = MAHIMAHI_PACKET_BYTES;
  }

  /** Moves to the first opportunity at or after `nowMs`, with a full 1500 bytes. */
  private seek(nowMs: number): void {
    const startMs = this.startMs!;
    const relMs = nowMs - startMs;
    let cycle = relMs <= 0 ? 0 : Math.floor(relMs / this.periodMs);
    const inCycleMs = relMs <= 0 ? 0 : relMs - cycle * this.periodMs;
    // Lower bound: first opportunity ≥ inCycleMs.
    let lo = 0;
    let hi = this.deliveryMs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.deliveryMs[mid]! < inCycleMs) lo = mid + 1;
      else hi = mid;
    }
    if (lo === this.deliveryMs.length) {
      lo = 0;
      cycle++;
    }
    this.index = lo;
    this.cycleBaseMs = startMs + cycle * this.periodMs;
    this.bytesLeft = MAHIMAHI_PACKET_BYTES;
  }
}
