/**
 * The sending half of sliding-window FEC for one flow: a sans-IO state machine.
 *
 * Inputs: {@link SlidingWindowEncoder.push} (an application packet),
 * {@link SlidingWindowEncoder.handleTimeout}, {@link SlidingWindowEncoder.setParameters}.
 * Outputs: {@link SlidingWindowEncoder.pollTransmit} and
 * {@link SlidingWindowEncoder.pollTimeout}.
 *
 * Polling order (the str0m rule): after every input, drain `pollTransmit(out)` until it
 * returns undefined, sending each shard as it comes; then read `pollTimeout()` and call
 * `handleTimeout(now)` once that time has come. The encoder never reads a clock and
 * draws no random numbers (a repair's seed is a counter).
 *
 * What goes on the wire: a source packet leaves at once, unchanged, with the next
 * source seq. Each source earns `repairsPerSource` repairs (fractional rates add up: 0.5
 * is one repair every second source); the i-th repair earned by a source is due
 * i·`repairSpacingMs` after it (0: right behind it), or earlier in a burst: the
 * repairs still scheduled when the window is full go out before the next source, which
 * would otherwise evict sources no repair has covered yet. A repair covers the window as
 * it is when the repair goes out: the newest sources, at most `windowPackets` of them and
 * none sent more than `windowMs` ago (the latency budget: a source older than that is
 * not worth rebuilding). So an isolated loss is repaired by the next repair, a few ms
 * later, rather than by the next source packet.
 *
 * On the wire: FecSender drives it in mode `sw` (scheme.ts has the header mapping); the
 * adaptive controller's `sw` family chooses these parameters (see the top README's FEC
 * section).
 */
import { BufferPool } from './pool.js';
import { FEC_LENGTH_PREFIX_BYTES, FEC_MAX_PAYLOAD_BYTES, FEC_MAX_PAYLOAD_BYTES_DEFAULT } from './rs.js';
import { SLIDING_WINDOW_PACKETS_MAX, SlidingWindowCodec, sharedSlidingWindowCodec, slidingWindowCoefficient, writeSourceVector } from './sliding-window-code.js';
import { ShardRing } from './ring.js';

/** Default {@link SlidingWindowParameters.repairsPerSource}: one repair per source, which repairs any isolated loss. */
export const SLIDING_WINDOW_REPAIRS_PER_SOURCE_DEFAULT = 1;
/** Largest {@link SlidingWindowParameters.repairsPerSource}. */
export const SLIDING_WINDOW_REPAIRS_PER_SOURCE_MAX = 8;
/** Default {@link SlidingWindowParameters.repairSpacingMs}: a few ms, so a short burst that takes a source does not take its repair too. */
export const SLIDING_WINDOW_REPAIR_SPACING_MS_DEFAULT = 2;
/** Largest {@link SlidingWindowParameters.repairSpacingMs}, in ms. */
export const SLIDING_WINDOW_REPAIR_SPACING_MS_MAX = 1000;
/** Default {@link SlidingWindowParameters.windowPackets}: at game rates (30–120 packets/s) the time limit binds first. */
export const SLIDING_WINDOW_PACKETS_DEFAULT = 8;
/** Default {@link SlidingWindowParameters.windowMs}: the adaptive controller's default latency budget (`FEC_LATENCY_BUDGET_MS_DEFAULT`). */
export const SLIDING_WINDOW_MS_DEFAULT = 20;
/** Largest {@link SlidingWindowParameters.windowMs}, in ms. */
export const SLIDING_WINDOW_MS_MAX = 10_000;
/** Slack when adding up fractional repair rates, so three thirds make one repair. */
const CREDIT_EPSILON = 1e-9;

/** The knobs of the code, all changeable at run time ({@link SlidingWindowEncoder.setParameters}). */
export interface SlidingWindowParameters {
  /** Repairs per source packet, 0 to {@link SLIDING_WINDOW_REPAIRS_PER_SOURCE_MAX}, fractions allowed. Default {@link SLIDING_WINDOW_REPAIRS_PER_SOURCE_DEFAULT}. */
  readonly repairsPerSource: number;
  /** Delay from a source to its first repair and between its repairs, in ms, 0 to {@link SLIDING_WINDOW_REPAIR_SPACING_MS_MAX}. Default {@link SLIDING_WINDOW_REPAIR_SPACING_MS_DEFAULT}. */
  readonly repairSpacingMs: number;
  /** Most sources one repair covers, 1 to {@link SLIDING_WINDOW_PACKETS_MAX}. Default {@link SLIDING_WINDOW_PACKETS_DEFAULT}. */
  readonly windowPackets: number;
  /** A source sent more than this many ms ago leaves the window (the latency budget), 0 to {@link SLIDING_WINDOW_MS_MAX}. Default {@link SLIDING_WINDOW_MS_DEFAULT}. */
  readonly windowMs: number;
}

/** The defaults of every {@link SlidingWindowParameters} field. */
export const SLIDING_WINDOW_PARAMETERS_DEFAULT: SlidingWindowParameters = {
  repairsPerSource: SLIDING_WINDOW_REPAIRS_PER_SOURCE_DEFAULT,
  repairSpacingMs: SLIDING_WINDOW_REPAIR_SPACING_MS_DEFAULT,
  windowPackets: SLIDING_WINDOW_PACKETS_DEFAULT,
  windowMs: SLIDING_WINDOW_MS_DEFAULT,
};

/** Throws RangeError naming the field and its accepted range when `p` is out of bounds. */
export function validateSlidingWindowParameters(p: SlidingWindowParameters): void {
  const bad = (field: string, range: string, value: number): never => {
    throw new RangeError(`sliding-window FEC ${field}: ${value} is out of range; expected ${range}`);
  };
  if (!(p.repairsPerSource >= 0 && p.repairsPerSource <= SLIDING_WINDOW_REPAIRS_PER_SOURCE_MAX)) bad('repairsPerSource', `a number from 0 to ${SLIDING_WINDOW_REPAIRS_PER_SOURCE_MAX}`, p.repairsPerSource);
  if (!(p.repairSpacingMs >= 0 && p.repairSpacingMs <= SLIDING_WINDOW_REPAIR_SPACING_MS_MAX)) bad('repairSpacingMs', `0 to ${SLIDING_WINDOW_REPAIR_SPACING_MS_MAX} ms`, p.repairSpacingMs);
  if (!Number.isInteger(p.windowPackets) || p.windowPackets < 1 || p.windowPackets > SLIDING_WINDOW_PACKETS_MAX) bad('windowPackets', `an integer from 1 to ${SLIDING_WINDOW_PACKETS_MAX}`, p.windowPackets);
  if (!(p.windowMs >= 0 && p.windowMs <= SLIDING_WINDOW_MS_MAX)) bad('windowMs', `0 to ${SLIDING_WINDOW_MS_MAX} ms`, p.windowMs);
}

/** What a shard is, in {@link SlidingWindowTransmit.kind}. */
export const SlidingWindowShardKind = {
  /** An application packet, sent unchanged. */
  Source: 0,
  /** A linear combination of a window of source packets. */
  Repair: 1,
} as const;

/** One of the {@link SlidingWindowShardKind} values. */
export type SlidingWindowShardKindValue = (typeof SlidingWindowShardKind)[keyof typeof SlidingWindowShardKind];

/**
 * The header fields of one shard to send. Returned by
 * {@link SlidingWindowEncoder.pollTransmit}; the object is reused by the next call.
 */
export interface SlidingWindowTransmit {
  /** Source or repair. */
  kind: SlidingWindowShardKindValue;
  /** Source: its source seq (u32, +1 per source, wraps). Repair: the first source seq of its window. */
  seq: number;
  /** Repair: sources covered, seq … seq + count − 1 (1–255). Source: 1. */
  count: number;
  /** Repair: the coefficient seed (u32 counter, +1 per repair, wraps). Source: 0. */
  seed: number;
  /** Payload bytes written into the caller's buffer (a repair's is 2 + its window's longest payload). */
  length: number;
}

/** Cumulative counts of what the encoder put on the wire; payload bytes, headers excluded. */
export interface SlidingWindowEncoderCounters {
  /** Source packets sent. */
  sourcePackets: number;
  /** Their payload bytes. */
  sourceBytes: number;
  /** Repair packets sent. */
  repairPackets: number;
  /** Their payload bytes. */
  repairBytes: number;
  /** Repairs that fell due with an empty window (every source older than `windowMs`) and were not sent. */
  repairsSkipped: number;
}

/** Options for {@link SlidingWindowEncoder}. */
export interface SlidingWindowEncoderInit {
  /** Codec; share one per thread. Default: the thread's shared one ({@link sharedSlidingWindowCodec}). */
  readonly codec?: SlidingWindowCodec;
  /** Largest payload {@link SlidingWindowEncoder.push} accepts, in bytes. Default {@link FEC_MAX_PAYLOAD_BYTES_DEFAULT}. */
  readonly maxPayloadBytes?: number;
  /** Parameters at start; missing fields take their defaults ({@link SLIDING_WINDOW_PARAMETERS_DEFAULT}). */
  readonly parameters?: Partial<SlidingWindowParameters>;
  /** Seq of the first source packet (u32). Default 0. */
  readonly firstSourceSeq?: number;
  /** Seed of the first repair (u32). Default 0. */
  readonly firstSeed?: number;
  /**
   * Advance the seed counter on every shard, source or repair, instead of on repairs
   * only. A repair's seed is then `firstSeed` + the number of shards queued before it:
   * its position in the shard stream, which a transport that numbers shards
   * consecutively from `firstSeed` already carries (the tunnel's wire sequence), so
   * the seed costs no header bits. Default false.
   */
  readonly seedPerShard?: boolean;
}

/** Ring of the sources in the window: one slot per possible window position. */
const WINDOW_RING_SLOTS = 256;
const QUEUE_CAPACITY_INITIAL = 16;

/** The sending half of sliding-window FEC for one flow. See the module comment for the polling order. */
export class SlidingWindowEncoder {
  /** Largest payload {@link push} accepts, in bytes. */
  readonly maxPayloadBytes: number;
  /** Size the `out` buffer of {@link pollTransmit} must have: a repair over payloads of the largest size. */
  readonly maxShardBytes: number;
  /** Cumulative wire counters (live object). */
  readonly counters: SlidingWindowEncoderCounters = { sourcePackets: 0, sourceBytes: 0, repairPackets: 0, repairBytes: 0, repairsSkipped: 0 };

  private readonly codec: SlidingWindowCodec;
  private readonly pool: BufferPool;
  private params: SlidingWindowParameters;
  private nextSourceSeq: number;
  private nextSeed: number;
  private readonly seedPerShard: boolean;
  private repairCredit = 0;
  private readonly transmit: SlidingWindowTransmit = { kind: SlidingWindowShardKind.Source, seq: 0, count: 0, seed: 0, length: 0 };

  // The window: sources oldest first; the oldest has seq windowFirstSeq.
  private readonly windowBuffer = new Int32Array(WINDOW_RING_SLOTS);
  private readonly windowSentMs = new Float64Array(WINDOW_RING_SLOTS);
  private windowHead = 0;
  private windowCount = 0;
  private windowFirstSeq: number;
  private readonly encodeRows: Uint8Array[] = [];
  private readonly encodeLengths = new Int32Array(SLIDING_WINDOW_PACKETS_MAX);
  private readonly encodeCoefficients = new Uint8Array(SLIDING_WINDOW_PACKETS_MAX);

  // Transmit queue: a ring of shards waiting for pollTransmit (fields: kind, seq, count, seed).
  private readonly tx = new ShardRing(QUEUE_CAPACITY_INITIAL);

  // Repairs scheduled for later, sorted by due time (a source's repairs may interleave with the next source's).
  private dueMs = new Float64Array(QUEUE_CAPACITY_INITIAL);
  private dueCount = 0;

  /** @param init options; every field has a default. Throws RangeError for out-of-range values. */
  constructor(init: SlidingWindowEncoderInit = {}) {
    this.maxPayloadBytes = init.maxPayloadBytes ?? FEC_MAX_PAYLOAD_BYTES_DEFAULT;
    if (!Number.isInteger(this.maxPayloadBytes) || this.maxPayloadBytes < 0 || this.maxPayloadBytes > FEC_MAX_PAYLOAD_BYTES) {
      throw new RangeError(`SlidingWindowEncoder maxPayloadBytes: ${this.maxPayloadBytes} is out of range; expected an integer from 0 to ${FEC_MAX_PAYLOAD_BYTES}`);
    }
    this.maxShardBytes = this.maxPayloadBytes + FEC_LENGTH_PREFIX_BYTES;
    this.codec = init.codec ?? sharedSlidingWindowCodec();
    this.pool = new BufferPool(this.maxShardBytes);
    this.params = { ...SLIDING_WINDOW_PARAMETERS_DEFAULT, ...init.parameters };
    validateSlidingWindowParameters(this.params);
    this.nextSourceSeq = (init.firstSourceSeq ?? 0) >>> 0;
    this.windowFirstSeq = this.nextSourceSeq;
    this.nextSeed = (init.firstSeed ?? 0) >>> 0;
    this.seedPerShard = init.seedPerShard ?? false;
  }

  /** The parameters in force. */
  get parameters(): SlidingWindowParameters {
    return this.params;
  }

  /** Sources currently in the window (before the age limit is applied at the next repair). */
  get windowSize(): number {
    return this.windowCount;
  }

  /** Pooled buffers in use (window, queued shards): a leak check for tests. */
  get buffersInUse(): number {
    return this.pool.inUse;
  }

  /**
   * Input: an application packet to send now (`nowMs`, the caller's monotonic clock).
   * Copies `payload`. Returns its source seq. Throws RangeError when it is longer than
   * {@link maxPayloadBytes}.
   */
  push(nowMs: number, payload: Uint8Array): number {
    const length = payload.length;
    if (length > this.maxPayloadBytes) throw new RangeError(`FEC payload of ${length} bytes exceeds maxPayloadBytes ${this.maxPayloadBytes}`);
    this.runDue(nowMs);
    this.flushBeforeEviction(nowMs);
    const seq = this.nextSourceSeq;
    this.nextSourceSeq = (seq + 1) >>> 0;
    const id = this.pool.acquire();
    this.pool.lengths[id] = writeSourceVector(payload, length, this.pool.buffers[id]);
    this.pool.retain(id);
    this.enqueue(id, SlidingWindowShardKind.Source, seq, 1, 0);
    if (this.seedPerShard) this.nextSeed = (this.nextSeed + 1) >>> 0;
    this.admit(nowMs, id, seq);
    this.repairCredit += this.params.repairsPerSource;
    let nth = 0;
    while (this.repairCredit >= 1 - CREDIT_EPSILON) {
      this.repairCredit -= 1;
      nth++;
      if (this.params.repairSpacingMs === 0) this.emitRepair(nowMs);
      else this.schedule(nowMs + nth * this.params.repairSpacingMs);
    }
    if (this.repairCredit < 0) this.repairCredit = 0;
    return seq;
  }

  /** Input: time has reached a deadline from {@link pollTimeout} (calling early is harmless). */
  handleTimeout(nowMs: number): void {
    this.runDue(nowMs);
  }

  /**
   * Command: new parameters, in force for the next repair (a smaller window applies to
   * repairs already scheduled too). Throws RangeError when out of range.
   */
  setParameters(parameters: SlidingWindowParameters): void {
    validateSlidingWindowParameters(parameters);
    this.params = parameters;
    if (parameters.repairsPerSource === 0) this.repairCredit = 0;
  }

  /**
   * Command: the sources sent so far go elsewhere than the next ones (the tunnel moved
   * them to another relay): the repairs still scheduled go out now, over the window as
   * it is, and the window starts afresh, so later repairs cover only later sources.
   * Without it every repair for the next `windowPackets` sources would straddle the move
   * and be useless to either side.
   */
  restartWindow(nowMs: number): void {
    this.emitAllDue(nowMs);
    this.trimWindow(nowMs, 0);
  }

  /**
   * Output: the next shard to send. Writes its payload into `out` (which must hold
   * {@link maxShardBytes}) and returns its header fields in a reused object, or
   * undefined when nothing is queued.
   */
  pollTransmit(out: Uint8Array): SlidingWindowTransmit | undefined {
    const tx = this.tx;
    const id = tx.shift();
    if (id < 0) return undefined;
    const t = this.transmit;
    t.kind = tx.takenField(0) as SlidingWindowShardKindValue;
    t.seq = tx.takenField(1);
    t.count = tx.takenField(2);
    t.seed = tx.takenField(3);
    // A source goes out as its payload (the vector without its prefix); a repair as its vector.
    const from = t.kind === SlidingWindowShardKind.Source ? FEC_LENGTH_PREFIX_BYTES : 0;
    const length = this.pool.lengths[id] - from;
    if (out.length < length) throw new RangeError(`pollTransmit: out holds ${out.length} bytes; shards need up to ${this.maxShardBytes}`);
    this.pool.copyOutAndRelease(id, from, length, out);
    t.length = length;
    const c = this.counters;
    if (t.kind === SlidingWindowShardKind.Source) {
      c.sourcePackets++;
      c.sourceBytes += length;
    } else {
      c.repairPackets++;
      c.repairBytes += length;
    }
    return t;
  }

  /** Output: when {@link handleTimeout} should next be called (ms), or undefined when no repair is scheduled. */
  pollTimeout(): number | undefined {
    return this.dueCount > 0 ? this.dueMs[0] : undefined;
  }

  /**
   * A burst — sources faster than the repair spacing, such as a backlog released after a
   * stall of the sender or of the path before it — would push sources out of the window
   * before the repairs they earned go out, and those sources would have no repair at all
   * (seen: 28 of a 40-answer burst uncovered, 7 of them lost at 30 % loss). So when the
   * window is full and repairs are still scheduled, they go out now, over the window as
   * it is, before the next source evicts the oldest. At game rates the repairs are long
   * gone by the next source, and nothing changes.
   */
  /** Sends every repair still scheduled now, over the window as it is. */
  private emitAllDue(nowMs: number): void {
    for (let i = 0; i < this.dueCount; i++) this.emitRepair(nowMs);
    this.dueCount = 0;
  }

  private flushBeforeEviction(nowMs: number): void {
    if (this.dueCount === 0) return;
    this.trimWindow(nowMs, this.params.windowPackets);
    if (this.windowCount < this.params.windowPackets) return;
    this.emitAllDue(nowMs);
  }

  /** Emits every repair due by `nowMs`, in due order. */
  private runDue(nowMs: number): void {
    let done = 0;
    while (done < this.dueCount && this.dueMs[done] <= nowMs) this.emitRepair(this.dueMs[done++]);
    if (done === 0) return;
    this.dueMs.copyWithin(0, done, this.dueCount);
    this.dueCount -= done;
  }

  private schedule(atMs: number): void {
    if (this.dueCount === this.dueMs.length) {
      const grown = new Float64Array(this.dueMs.length * 2);
      grown.set(this.dueMs);
      this.dueMs = grown;
    }
    let i = this.dueCount;
    while (i > 0 && this.dueMs[i - 1] > atMs) {
      this.dueMs[i] = this.dueMs[i - 1];
      i--;
    }
    this.dueMs[i] = atMs;
    this.dueCount++;
  }

  /** Adds a source to the window, dropping the oldest beyond the ring or the count limit. */
  private admit(nowMs: number, id: number, seq: number): void {
    this.trimWindow(nowMs, this.params.windowPackets - 1);
    if (this.windowCount === 0) this.windowFirstSeq = seq;
    const at = (this.windowHead + this.windowCount) & (WINDOW_RING_SLOTS - 1);
    this.windowBuffer[at] = id;
    this.windowSentMs[at] = nowMs;
    this.windowCount++;
  }

  /** Drops sources older than `windowMs` at `nowMs`, then the oldest until at most `keep` remain. */
  private trimWindow(nowMs: number, keep: number): void {
    const windowMs = this.params.windowMs;
    while (this.windowCount > 0 && (this.windowCount > keep || nowMs - this.windowSentMs[this.windowHead] > windowMs)) {
      this.pool.release(this.windowBuffer[this.windowHead]);
      this.windowHead = (this.windowHead + 1) & (WINDOW_RING_SLOTS - 1);
      this.windowCount--;
      this.windowFirstSeq = (this.windowFirstSeq + 1) >>> 0;
    }
  }

  /** Encodes one repair over the window as it is at `atMs` and queues it. */
  private emitRepair(atMs: number): void {
    this.trimWindow(atMs, this.params.windowPackets);
    const count = this.windowCount;
    if (count === 0) {
      this.counters.repairsSkipped++;
      return;
    }
    const seed = this.nextSeed;
    this.nextSeed = (seed + 1) >>> 0;
    const first = this.windowFirstSeq;
    for (let j = 0; j < count; j++) {
      const id = this.windowBuffer[(this.windowHead + j) & (WINDOW_RING_SLOTS - 1)];
      this.encodeRows[j] = this.pool.buffers[id];
      this.encodeLengths[j] = this.pool.lengths[id];
      this.encodeCoefficients[j] = slidingWindowCoefficient(seed, (first + j) >>> 0);
    }
    const repair = this.pool.acquire();
    this.pool.lengths[repair] = this.codec.accumulate(this.pool.buffers[repair], 0, this.encodeRows, this.encodeLengths, this.encodeCoefficients, count);
    this.enqueue(repair, SlidingWindowShardKind.Repair, first, count, seed);
  }

  private enqueue(id: number, kind: SlidingWindowShardKindValue, seq: number, count: number, seed: number): void {
    this.tx.push(id, kind, seq, count, seed);
  }
}
