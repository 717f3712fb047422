/**
 * The receiving half of sliding-window FEC for one flow: a sans-IO state machine.
 *
 * Inputs: {@link SlidingWindowDecoder.handleSource} and
 * {@link SlidingWindowDecoder.handleRepair} for every shard received, in any order;
 * {@link SlidingWindowDecoder.handleTimeout}. Outputs:
 * {@link SlidingWindowDecoder.pollDelivered} (application packets, each exactly once)
 * and {@link SlidingWindowDecoder.pollTimeout}.
 *
 * Polling order: after every input, drain `pollDelivered(out)` until it returns
 * undefined, then read `pollTimeout()`. The decoder never reads a clock.
 *
 * Delivery: a source packet is delivered the moment it arrives (never held back to
 * restore order); a missing one the moment the repairs received determine it (see
 * `sliding-window-equations.ts`: on-the-fly Gaussian elimination, so no solvable
 * packet waits). Every copy after the first is dropped and counted.
 *
 * Window: the decoder tracks the last `windowPackets` source seqs (those up to the
 * highest seq any shard has shown it). A missing source is given up — counted lost,
 * never delivered afterwards — by the first {@link SlidingWindowDecoder.handleTimeout}
 * at or after `windowMs` from when the decoder learnt it existed (the latency budget,
 * {@link SlidingWindowDecoder.pollTimeout}), or when it leaves the tracked seqs. Shards
 * never give anything up by their arrival time: after a stall of the process the
 * driver feeds what its socket queued meanwhile (a repair, a late source) before the
 * late timeout, and those still count. A given-up source stays an
 * unknown of the system until it leaves, so repairs that cover it still help rebuild
 * the others. A shard older than the tracked seqs is dropped as late.
 *
 * On the wire: FecReceiver feeds it the shards of mode `sw` (scheme.ts has
 * the header mapping; see the top README's FEC section).
 */
import { BufferPool } from './pool.js';
import { FEC_LENGTH_PREFIX_BYTES, FEC_MAX_PAYLOAD_BYTES, FEC_MAX_PAYLOAD_BYTES_DEFAULT } from './rs.js';
import { SLIDING_WINDOW_PACKETS_MAX, SlidingWindowCodec, sharedSlidingWindowCodec, slidingWindowCoefficient, sourceVectorPayloadLength, writeSourceVector } from './sliding-window-code.js';
import { SLIDING_WINDOW_MS_DEFAULT, SLIDING_WINDOW_MS_MAX } from './sliding-window-encoder.js';
import { RepairEquations } from './sliding-window-equations.js';
import { ShardRing } from './ring.js';

/**
 * Default {@link SlidingWindowDecoderInit.windowPackets}: room for the encoder's
 * default window (8) with plenty of reordering and several repair windows of history.
 */
export const SLIDING_WINDOW_DECODER_PACKETS_DEFAULT = 64;

/** Options for {@link SlidingWindowDecoder}. */
export interface SlidingWindowDecoderInit {
  /** Codec; share one per thread. Default: the thread's shared one ({@link sharedSlidingWindowCodec}). */
  readonly codec?: SlidingWindowCodec;
  /** Largest application payload, in bytes; must match the encoder's. Default {@link FEC_MAX_PAYLOAD_BYTES_DEFAULT}. */
  readonly maxPayloadBytes?: number;
  /**
   * Source seqs tracked, 1 to {@link SLIDING_WINDOW_PACKETS_MAX}; must be at least the
   * encoder's `windowPackets` plus the reordering depth, or repairs arrive late.
   * Default {@link SLIDING_WINDOW_DECODER_PACKETS_DEFAULT}.
   */
  readonly windowPackets?: number;
  /**
   * How long a missing source may wait for its repairs, in ms from when the decoder
   * learnt it was missing: the encoder's `windowMs` plus the path's jitter, 0 to
   * {@link SLIDING_WINDOW_MS_MAX}. Default {@link SLIDING_WINDOW_MS_DEFAULT}.
   */
  readonly windowMs?: number;
  /** Seq of the first source (u32), when known; by default the first shard received sets the start. */
  readonly firstSourceSeq?: number;
}

/** Cumulative counters over the decoder's life. */
export interface SlidingWindowDecoderTotals {
  /** Source packets delivered as they arrived. */
  received: number;
  /** Source packets rebuilt from repairs and delivered. */
  rebuilt: number;
  /** Source packets given up (never delivered). */
  lost: number;
  /** Copies of sources already delivered, dropped. */
  duplicates: number;
  /** Sources that arrived after they were given up or left the tracked seqs, dropped. */
  late: number;
  /** Repair packets received. */
  repairsReceived: number;
  /** Of those, repairs that covered no missing source (nothing to do). */
  repairsUnneeded: number;
  /** Of those, repairs that covered sources no longer tracked, dropped. */
  repairsStale: number;
  /** Shards dropped for bad fields or lengths. */
  malformed: number;
  /** Rebuilt vectors refused for an impossible length or non-zero padding (inputs that contradict each other). */
  inconsistent: number;
}

/** One delivered packet, from {@link SlidingWindowDecoder.pollDelivered}; the object is reused. */
export interface SlidingWindowDelivery {
  /** Its source seq. */
  seq: number;
  /** Payload bytes written into the caller's buffer. */
  length: number;
  /** Whether it was rebuilt from repairs (else it arrived). */
  rebuilt: boolean;
}

// Slot states.
const EMPTY = 0;
/** Missing, still deliverable. */
const MISSING = 1;
/** Missing and given up: an unknown of the system, never delivered. */
const GIVEN_UP = 2;
/** Payload held and delivered. */
const KNOWN = 3;
/** Payload held (for later repairs) but never delivered: it became known after it was given up. */
const KNOWN_LATE = 4;

const NONE = -1;
const QUEUE_CAPACITY_INITIAL = 16;

/** The receiving half of sliding-window FEC for one flow. See the module comment for the polling order. */
export class SlidingWindowDecoder {
  /** Largest payload, in bytes. */
  readonly maxPayloadBytes: number;
  /** Source seqs tracked. */
  readonly windowPackets: number;
  /** How long a missing source may wait, in ms. */
  readonly windowMs: number;
  /** Cumulative counters (live object). */
  readonly totals: SlidingWindowDecoderTotals = {
    received: 0,
    rebuilt: 0,
    lost: 0,
    duplicates: 0,
    late: 0,
    repairsReceived: 0,
    repairsUnneeded: 0,
    repairsStale: 0,
    malformed: 0,
    inconsistent: 0,
  };

  private readonly codec: SlidingWindowCodec;
  private readonly pool: BufferPool;
  private readonly equations: RepairEquations;
  private readonly mask: number;
  private readonly slotState: Uint8Array;
  private readonly slotBuffer: Int32Array;
  private readonly slotLearnedMs: Float64Array;
  private started = false;
  /** Oldest tracked seq. */
  private lowSeq = 0;
  /** Newest tracked seq (lowSeq − 1 when none). */
  private highSeq = 0;
  /** No seq before this one is MISSING: where the give-up scan resumes. */
  private giveUpCursor = 0;

  private readonly coefficients: Uint8Array;
  private readonly knownRows: Uint8Array[] = [];
  private readonly knownLengths = new Int32Array(SLIDING_WINDOW_PACKETS_MAX);
  private readonly knownCoefficients = new Uint8Array(SLIDING_WINDOW_PACKETS_MAX);

  /** Packets waiting for pollDelivered; fields: seq, rebuilt (1) or not (0). */
  private readonly deliveries = new ShardRing(QUEUE_CAPACITY_INITIAL);
  private readonly delivery: SlidingWindowDelivery = { seq: 0, length: 0, rebuilt: false };

  /** @param init options; every field has a default. Throws RangeError for out-of-range values. */
  constructor(init: SlidingWindowDecoderInit = {}) {
    this.maxPayloadBytes = init.maxPayloadBytes ?? FEC_MAX_PAYLOAD_BYTES_DEFAULT;
    if (!Number.isInteger(this.maxPayloadBytes) || this.maxPayloadBytes < 0 || this.maxPayloadBytes > FEC_MAX_PAYLOAD_BYTES) {
      throw new RangeError(`SlidingWindowDecoder maxPayloadBytes: ${this.maxPayloadBytes} is out of range; expected an integer from 0 to ${FEC_MAX_PAYLOAD_BYTES}`);
    }
    this.windowPackets = init.windowPackets ?? SLIDING_WINDOW_DECODER_PACKETS_DEFAULT;
    if (!Number.isInteger(this.windowPackets) || this.windowPackets < 1 || this.windowPackets > SLIDING_WINDOW_PACKETS_MAX) {
      throw new RangeError(`SlidingWindowDecoder windowPackets: ${this.windowPackets} is out of range; expected an integer from 1 to ${SLIDING_WINDOW_PACKETS_MAX}`);
    }
    this.windowMs = init.windowMs ?? SLIDING_WINDOW_MS_DEFAULT;
    if (!(this.windowMs >= 0 && this.windowMs <= SLIDING_WINDOW_MS_MAX)) {
      throw new RangeError(`SlidingWindowDecoder windowMs: ${this.windowMs} is out of range; expected 0 to ${SLIDING_WINDOW_MS_MAX} ms`);
    }
    let slots = 1;
    while (slots < this.windowPackets) slots <<= 1;
    this.mask = slots - 1;
    this.slotState = new Uint8Array(slots);
    this.slotBuffer = new Int32Array(slots).fill(NONE);
    this.slotLearnedMs = new Float64Array(slots);
    this.coefficients = new Uint8Array(slots);
    this.codec = init.codec ?? sharedSlidingWindowCodec();
    this.pool = new BufferPool(this.maxPayloadBytes + FEC_LENGTH_PREFIX_BYTES);
    this.equations = new RepairEquations(slots, this.codec, this.pool);
    if (init.firstSourceSeq !== undefined) this.start(init.firstSourceSeq >>> 0);
  }

  /** Pooled buffers in use (sources held, equations, queued deliveries): a leak check for tests. */
  get buffersInUse(): number {
    return this.pool.inUse;
  }

  /** Repair equations waiting for more shards. */
  get pendingEquations(): number {
    return this.equations.size;
  }

  /**
   * Input: a source packet as received (`nowMs`, the caller's monotonic clock).
   * `payload` is read during the call only. Bad lengths are counted, never thrown.
   */
  handleSource(nowMs: number, seq: number, payload: Uint8Array): void {
    seq >>>= 0;
    if (payload.length > this.maxPayloadBytes) {
      this.totals.malformed++;
      return;
    }
    if (!this.started) this.start(seq);
    if (((seq - this.lowSeq) | 0) < 0) {
      this.totals.late++;
      return;
    }
    this.extendTo(nowMs, seq);
    const slot = seq & this.mask;
    const state = this.slotState[slot];
    if (state === KNOWN) {
      this.totals.duplicates++;
      return;
    }
    if (state === KNOWN_LATE) {
      this.totals.late++;
      return;
    }
    const id = this.pool.acquire();
    const buffer = this.pool.buffers[id];
    const length = writeSourceVector(payload, payload.length, buffer);
    this.pool.lengths[id] = length;
    this.slotBuffer[slot] = id;
    if (state === MISSING) {
      this.slotState[slot] = KNOWN;
      this.totals.received++;
      this.deliver(id, seq, false);
    } else {
      this.slotState[slot] = KNOWN_LATE;
      this.totals.late++;
    }
    if (this.equations.involves(slot)) {
      this.equations.substitute(slot, buffer, length);
      this.drainSolved();
    }
  }

  /**
   * Input: a repair packet as received: its window (first source seq, count), its
   * coefficient seed and its payload (read during the call only). Bad fields are
   * counted, never thrown.
   */
  handleRepair(nowMs: number, firstSeq: number, count: number, seed: number, payload: Uint8Array): void {
    firstSeq >>>= 0;
    this.totals.repairsReceived++;
    if (!Number.isInteger(count) || count < 1 || count > SLIDING_WINDOW_PACKETS_MAX || payload.length < FEC_LENGTH_PREFIX_BYTES || payload.length > this.maxPayloadBytes + FEC_LENGTH_PREFIX_BYTES) {
      this.totals.malformed++;
      return;
    }
    if (!this.started) this.start(firstSeq);
    const lastSeq = (firstSeq + count - 1) >>> 0;
    // Even a repair too old to use tells which seqs were sent.
    this.extendTo(nowMs, lastSeq);
    // A window wider than the tracked seqs, or starting before them, covers sources no longer held.
    if (count > this.windowPackets || ((firstSeq - this.lowSeq) | 0) < 0) {
      this.totals.repairsStale++;
      return;
    }
    let unknowns = 0;
    for (let j = 0; j < count; j++) {
      const state = this.slotState[(firstSeq + j) & this.mask];
      if (state === MISSING || state === GIVEN_UP) unknowns++;
    }
    if (unknowns === 0) {
      this.totals.repairsUnneeded++;
      return;
    }
    const coefficients = this.coefficients;
    coefficients.fill(0);
    let known = 0;
    for (let j = 0; j < count; j++) {
      const seq = (firstSeq + j) >>> 0;
      const slot = seq & this.mask;
      const c = slidingWindowCoefficient(seed, seq);
      if (this.slotState[slot] >= KNOWN) {
        const id = this.slotBuffer[slot];
        this.knownRows[known] = this.pool.buffers[id];
        this.knownLengths[known] = this.pool.lengths[id];
        this.knownCoefficients[known] = c;
        known++;
      } else {
        coefficients[slot] = c;
      }
    }
    const id = this.pool.acquire();
    const row = this.pool.buffers[id];
    row.set(payload);
    // Subtracting the known sources leaves a combination of the unknown ones only.
    const length = this.codec.accumulate(row, payload.length, this.knownRows, this.knownLengths, this.knownCoefficients, known);
    this.equations.addEquation(coefficients, id, length);
    this.drainSolved();
  }

  /** Input: a deadline from {@link pollTimeout} has passed (calling early is harmless); the only input that gives sources up. */
  handleTimeout(nowMs: number): void {
    this.advanceTime(nowMs);
  }

  /**
   * Output: copies the next delivered packet into `out` (which must hold
   * {@link maxPayloadBytes}) and returns its seq and length in a reused object, or
   * undefined when none is waiting.
   */
  pollDelivered(out: Uint8Array): SlidingWindowDelivery | undefined {
    const deliveries = this.deliveries;
    const id = deliveries.shift();
    if (id < 0) return undefined;
    const src = this.pool.buffers[id];
    const length = (src[0] << 8) | src[1];
    if (out.length < length) throw new RangeError(`pollDelivered: out holds ${out.length} bytes; packets need up to ${this.maxPayloadBytes}`);
    this.pool.copyOutAndRelease(id, FEC_LENGTH_PREFIX_BYTES, length, out);
    const d = this.delivery;
    d.seq = deliveries.takenField(0);
    d.length = length;
    d.rebuilt = deliveries.takenField(1) === 1;
    return d;
  }

  /** Output: when the oldest missing source will be given up (ms), or undefined when none is missing. */
  pollTimeout(): number | undefined {
    if (!this.started) return undefined;
    this.skipNotMissing();
    if (((this.giveUpCursor - this.highSeq) | 0) > 0) return undefined;
    return this.slotLearnedMs[this.giveUpCursor & this.mask] + this.windowMs;
  }

  private start(seq: number): void {
    this.started = true;
    this.lowSeq = seq;
    this.highSeq = (seq - 1) >>> 0;
    this.giveUpCursor = seq;
  }

  /** Gives up the missing sources whose time is up (learnt-at times grow with seq). */
  private advanceTime(nowMs: number): void {
    if (!this.started) return;
    while (true) {
      this.skipNotMissing();
      if (((this.giveUpCursor - this.highSeq) | 0) > 0) return;
      const slot = this.giveUpCursor & this.mask;
      if (this.slotLearnedMs[slot] + this.windowMs > nowMs) return;
      this.slotState[slot] = GIVEN_UP;
      this.totals.lost++;
      this.giveUpCursor = (this.giveUpCursor + 1) >>> 0;
    }
  }

  private skipNotMissing(): void {
    if (((this.giveUpCursor - this.lowSeq) | 0) < 0) this.giveUpCursor = this.lowSeq;
    while (((this.giveUpCursor - this.highSeq) | 0) <= 0 && this.slotState[this.giveUpCursor & this.mask] !== MISSING) {
      this.giveUpCursor = (this.giveUpCursor + 1) >>> 0;
    }
  }

  /** Tracks every seq up to `seq` (missing until shown otherwise), retiring the oldest beyond the window. */
  private extendTo(nowMs: number, seq: number): void {
    let ahead = (seq - this.highSeq) | 0;
    if (ahead <= 0) return;
    if (ahead > this.windowPackets) {
      // A jump past the whole window: everything tracked leaves, and the seqs jumped over were never seen.
      while (((this.highSeq - this.lowSeq) | 0) >= 0) this.retireOldest();
      const skipped = ahead - this.windowPackets;
      this.totals.lost += skipped;
      this.lowSeq = (this.lowSeq + skipped) >>> 0;
      this.highSeq = (this.lowSeq - 1) >>> 0;
      ahead = this.windowPackets;
    }
    for (let i = 0; i < ahead; i++) {
      const next = (this.highSeq + 1) >>> 0;
      if (((next - this.lowSeq) | 0) >= this.windowPackets) this.retireOldest();
      const slot = next & this.mask;
      this.slotState[slot] = MISSING;
      this.slotLearnedMs[slot] = nowMs;
      this.highSeq = next;
    }
  }

  /** Stops tracking lowSeq: a held source is released, a missing one is lost and leaves the system. */
  private retireOldest(): void {
    const slot = this.lowSeq & this.mask;
    const state = this.slotState[slot];
    if (state === KNOWN || state === KNOWN_LATE) {
      this.pool.release(this.slotBuffer[slot]);
      this.slotBuffer[slot] = NONE;
    } else if (state === MISSING || state === GIVEN_UP) {
      if (state === MISSING) this.totals.lost++;
      this.equations.forget(slot);
    }
    this.slotState[slot] = EMPTY;
    this.lowSeq = (this.lowSeq + 1) >>> 0;
    this.drainSolved();
  }

  /** Takes every source the equations determined: delivered if still wanted, kept either way for later repairs. */
  private drainSolved(): void {
    while (true) {
      const slot = this.equations.pollSolved();
      if (slot === NONE) return;
      const id = this.equations.solvedBuffer;
      const payloadLength = sourceVectorPayloadLength(this.pool.buffers[id], this.equations.solvedLength);
      const state = this.slotState[slot];
      if (payloadLength < 0 || payloadLength > this.maxPayloadBytes || (state !== MISSING && state !== GIVEN_UP)) {
        if (payloadLength < 0 || payloadLength > this.maxPayloadBytes) this.totals.inconsistent++;
        this.pool.release(id);
        continue;
      }
      this.pool.lengths[id] = payloadLength + FEC_LENGTH_PREFIX_BYTES;
      this.slotBuffer[slot] = id;
      this.slotState[slot] = state === MISSING ? KNOWN : KNOWN_LATE;
      if (state === MISSING) {
        this.totals.rebuilt++;
        this.deliver(id, (this.lowSeq + ((slot - this.lowSeq) & this.mask)) >>> 0, true);
      }
    }
  }

  private deliver(id: number, seq: number, rebuilt: boolean): void {
    this.pool.retain(id);
    this.deliveries.push(id, seq, rebuilt ? 1 : 0);
  }
}
