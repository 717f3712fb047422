/**
 * The sending half of FEC for one flow: a sans-IO state machine (quinn/str0m style).
 *
 * Inputs: {@link FecSender.push} (an application packet), {@link FecSender.handleTimeout},
 * {@link FecSender.handleFeedback} (the receiver's interval stats, relayed by the tunnel),
 * {@link FecSender.setScheme}. Outputs: {@link FecSender.pollTransmit} and
 * {@link FecSender.pollTimeout}.
 *
 * Polling order (the str0m rule): after every input, drain `pollTransmit(out)` until it
 * returns undefined, sending each shard as it comes (the order is the wire order, and
 * the `seq` it carries assumes so); then read `pollTimeout()` and call
 * `handleTimeout(now)` once that time has come. The sender never reads a clock.
 *
 * What goes on the wire: data packets leave at once, in {@link FecSender.push}. In `rs`
 * mode their parity follows when the stripe of `interleave` groups is full or
 * `holdMs` after its first packet, whichever is first, so low-rate traffic never waits
 * for a group to fill. In `duplicate` mode copies follow `spacingMs` apart. In `sw` mode
 * a {@link SlidingWindowEncoder} does the work and its shards are mapped onto the same
 * header fields (see scheme.ts); that mode is fixed for the sender's life (a controller
 * of the `sw` family changes its settings, never the mode).
 */
import { PacketType, type PacketHeader } from '../header.js';
import type { FecController } from './controller.js';
import { BufferPool } from './pool.js';
import type { FecIntervalStats } from './receiver.js';
import { FEC_LENGTH_PREFIX_BYTES, FEC_MAX_PAYLOAD_BYTES, ReedSolomon, sharedReedSolomon } from './rs.js';
import { FEC_INTERLEAVE_MAX, FEC_MAX_PAYLOAD_BYTES_DEFAULT, FEC_OFF, FEC_SLIDING_WINDOW_MARKER, sameScheme, validateScheme, type FecScheme } from './scheme.js';
import { SlidingWindowEncoder, SlidingWindowShardKind } from './sliding-window-encoder.js';
import { doubledRing, ShardRing } from './ring.js';

/** What a shard is, in {@link FecTransmit.kind}. */
export const FecShardKind = {
  /** An application packet, first transmission. */
  Data: 0,
  /** A Reed-Solomon parity shard. */
  Parity: 1,
  /** A repeated copy of a data packet (duplicate mode). */
  Duplicate: 2,
} as const;

/** {@link FecTransmit.index} of a sliding-window repair (mode `sw`): the highest index, so the shard is parity whatever its window count. */
const SLIDING_WINDOW_REPAIR_INDEX = 255;

/** One of the {@link FecShardKind} values. */
export type FecShardKindValue = (typeof FecShardKind)[keyof typeof FecShardKind];

/**
 * The header fields of one shard to send. Returned by {@link FecSender.pollTransmit};
 * the object is reused by the next call, so copy what must be kept.
 */
export interface FecTransmit {
  /** Wire sequence number (u32, +1 per shard, wraps): the data-plane header's sequence field, from which the receiver measures loss and bursts. */
  seq: number;
  /** FEC group id (u32, wraps). */
  groupId: number;
  /** Shard index in the group (0–254): data when index < k. */
  index: number;
  /** Data shards in the group (nominal for data shards, actual for parity). */
  k: number;
  /** Parity shards in the group (nominal for data shards, actual for parity). */
  r: number;
  /** Data, parity or duplicate. Not on the wire (the receiver tells data from parity by index < k); for counters and logs. */
  kind: FecShardKindValue;
  /** Payload bytes written into the caller's buffer. */
  length: number;
}

/**
 * Fills the data-plane header fields of one shard to send: its type (data below `k`,
 * parity otherwise), the session id, the wire sequence and the group fields. Flags are
 * left to the caller (they depend on where the copy goes). Allocates nothing.
 */
export function setShardHeader(h: PacketHeader, tx: FecTransmit, sessionIdHigh: number, sessionIdLow: number): void {
  h.type = tx.index < tx.k ? PacketType.Data : PacketType.Parity;
  h.sessionIdHigh = sessionIdHigh;
  h.sessionIdLow = sessionIdLow;
  h.sequence = tx.seq;
  h.fecGroup = tx.groupId;
  h.fecIndex = tx.index;
  h.fecDataCount = tx.k;
  h.fecParityCount = tx.r;
}

/** Cumulative counts of what the sender put on the wire. Payload bytes, headers excluded. */
export interface FecSenderCounters {
  /** Application packets sent (first copies). */
  dataPackets: number;
  /** Their payload bytes. */
  dataBytes: number;
  /** Parity shards sent. */
  parityPackets: number;
  /** Their bytes (each is 2 + the longest payload of its group). */
  parityBytes: number;
  /** Duplicate copies sent. */
  duplicatePackets: number;
  /** Their bytes. */
  duplicateBytes: number;
  /** Groups whose parity was sent. */
  groupsClosed: number;
  /** Of those, groups closed by the hold timer before they were full. */
  groupsClosedByHold: number;
}

/** Options for {@link FecSender}. */
export interface FecSenderInit {
  /** Codec to use; share one per thread. Default: the thread's shared one ({@link sharedReedSolomon}). */
  readonly codec?: ReedSolomon;
  /** Largest payload accepted by {@link FecSender.push}, in bytes. Default {@link FEC_MAX_PAYLOAD_BYTES_DEFAULT}. */
  readonly maxPayloadBytes?: number;
  /**
   * Protection at start. Default `off`. Ignored when a controller is given (it decides).
   * An `sw` scheme stays `sw` for the sender's life (other settings of it may change).
   */
  readonly scheme?: FecScheme;
  /** Adaptive controller: told of every packet and every feedback report, and obeyed. */
  readonly controller?: FecController;
  /** First group id (u32). Default 0. */
  readonly firstGroupId?: number;
  /** First wire sequence number (u32). Default 0. */
  readonly firstSeq?: number;
}

const RING_CAPACITY_INITIAL = 64;

/** The sending half of FEC for one flow. See the module comment for the polling order. */
export class FecSender {
  /** Largest payload {@link push} accepts, in bytes. */
  readonly maxPayloadBytes: number;
  /** Size the `out` buffer of {@link pollTransmit} must have: a parity shard of the largest payload. */
  readonly maxShardBytes: number;
  /** Cumulative wire counters (live object; read at any time). */
  readonly counters: FecSenderCounters = {
    dataPackets: 0,
    dataBytes: 0,
    parityPackets: 0,
    parityBytes: 0,
    duplicatePackets: 0,
    duplicateBytes: 0,
    groupsClosed: 0,
    groupsClosedByHold: 0,
  };

  private readonly codec: ReedSolomon;
  private readonly controller: FecController | undefined;
  private readonly pool: BufferPool;
  private current: FecScheme = FEC_OFF;
  /** The sliding-window encoder, in `sw` mode only. */
  private readonly slidingWindow: SlidingWindowEncoder | undefined;
  private nextGroupId: number;
  private nextSeq: number;
  private readonly transmit: FecTransmit = { seq: 0, groupId: 0, index: 0, k: 0, r: 0, kind: FecShardKind.Data, length: 0 };

  // Transmit queue: a ring of shards waiting for pollTransmit.
  /** Shards waiting for pollTransmit; fields: group, index, k, r, kind. */
  private readonly tx = new ShardRing(RING_CAPACITY_INITIAL);

  // Duplicate queue: copies waiting for their time, in due order.
  private dupDueMs = new Float64Array(RING_CAPACITY_INITIAL);
  private dupBuf = new Int32Array(RING_CAPACITY_INITIAL);
  private dupGroup = new Uint32Array(RING_CAPACITY_INITIAL);
  private dupHead = 0;
  private dupCount = 0;

  // The open stripe of `interleave` groups (rs mode).
  private stripeOpen = false;
  private stripeDeadlineMs = 0;
  private stripePackets = 0;
  private readonly slotGroup = new Uint32Array(FEC_INTERLEAVE_MAX);
  private readonly slotCount = new Int32Array(FEC_INTERLEAVE_MAX);
  /** Data buffer ids per slot: slot s, index j at s·255 + j. */
  private readonly slotBufs = new Int32Array(FEC_INTERLEAVE_MAX * 255);
  /** Parity buffer ids per slot, same layout. */
  private readonly slotParity = new Int32Array(FEC_INTERLEAVE_MAX * 255);
  private readonly slotR = new Int32Array(FEC_INTERLEAVE_MAX);
  private readonly encodeData: Uint8Array[] = [];
  private readonly encodeLengths = new Int32Array(255);
  private readonly encodeParity: Uint8Array[] = [];

  /** @param init options; every field has a default */
  constructor(init: FecSenderInit = {}) {
    this.maxPayloadBytes = init.maxPayloadBytes ?? FEC_MAX_PAYLOAD_BYTES_DEFAULT;
    if (!Number.isInteger(this.maxPayloadBytes) || this.maxPayloadBytes < 1 || this.maxPayloadBytes > FEC_MAX_PAYLOAD_BYTES) {
      throw new RangeError(`FecSender maxPayloadBytes: ${this.maxPayloadBytes} is out of range; expected an integer from 1 to ${FEC_MAX_PAYLOAD_BYTES}`);
    }
    this.maxShardBytes = this.maxPayloadBytes + FEC_LENGTH_PREFIX_BYTES;
    this.codec = init.codec ?? sharedReedSolomon();
    this.controller = init.controller;
    this.pool = new BufferPool(this.maxShardBytes);
    this.nextGroupId = (init.firstGroupId ?? 0) >>> 0;
    this.nextSeq = (init.firstSeq ?? 0) >>> 0;
    const scheme = this.controller ? this.controller.scheme : (init.scheme ?? FEC_OFF);
    validateScheme(scheme);
    this.current = scheme;
    // Seeds numbered per shard from the first wire sequence: a repair's seed is its wire
    // sequence, which the receiver reads from the header (scheme.ts, the wire mapping).
    this.slidingWindow =
      scheme.mode === 'sw' ? new SlidingWindowEncoder({ maxPayloadBytes: this.maxPayloadBytes, parameters: scheme, firstSourceSeq: this.nextGroupId, firstSeed: this.nextSeq, seedPerShard: true }) : undefined;
  }

  /** The protection in force. */
  get scheme(): FecScheme {
    return this.current;
  }

  /** Pooled buffers in use (queued shards, open groups, pending copies): a leak check for tests. */
  get buffersInUse(): number {
    return this.pool.inUse + (this.slidingWindow?.buffersInUse ?? 0);
  }

  /**
   * Input: an application packet to send now. Copies `payload` (the caller may reuse
   * it at once). Throws RangeError when it is longer than {@link maxPayloadBytes}.
   */
  push(now: number, payload: Uint8Array): void {
    const length = payload.length;
    if (length > this.maxPayloadBytes) {
      throw new RangeError(`FEC payload of ${length} bytes exceeds maxPayloadBytes ${this.maxPayloadBytes}`);
    }
    this.controller?.handlePacket(now, length);
    if (this.slidingWindow !== undefined) {
      this.slidingWindow.push(now, payload);
      return;
    }
    this.runDue(now);
    const id = this.pool.acquireCopy(payload, length);
    const scheme = this.current;
    if (scheme.mode === 'rs') {
      if (!this.stripeOpen) {
        this.stripeOpen = true;
        this.stripePackets = 0;
        this.stripeDeadlineMs = now + scheme.holdMs;
      }
      const slot = this.stripePackets % scheme.interleave;
      const index = this.slotCount[slot];
      if (index === 0) {
        this.slotGroup[slot] = this.nextGroupId;
        this.nextGroupId = (this.nextGroupId + 1) >>> 0;
      }
      this.slotBufs[slot * 255 + index] = id;
      this.slotCount[slot] = index + 1;
      this.stripePackets++;
      this.pool.retain(id);
      this.enqueue(id, this.slotGroup[slot], index, scheme.k, scheme.r, FecShardKind.Data);
      if (this.stripePackets === scheme.k * scheme.interleave) this.closeStripe(false);
      else if (now >= this.stripeDeadlineMs) this.closeStripe(true);
      return;
    }
    const groupId = this.nextGroupId;
    this.nextGroupId = (groupId + 1) >>> 0;
    this.enqueue(id, groupId, 0, 1, 0, FecShardKind.Data);
    if (scheme.mode === 'duplicate') {
      for (let copy = 1; copy <= scheme.copies; copy++) {
        this.pool.retain(id);
        if (scheme.spacingMs === 0) this.enqueue(id, groupId, 0, 1, 0, FecShardKind.Duplicate);
        else this.scheduleCopy(now + copy * scheme.spacingMs, id, groupId);
      }
    }
  }

  /** Input: time has reached a deadline from {@link pollTimeout} (calling early is harmless). */
  handleTimeout(now: number): void {
    if (this.slidingWindow !== undefined) this.slidingWindow.handleTimeout(now);
    else this.runDue(now);
  }

  /**
   * Command (mode `sw`; a no-op otherwise): the next sources go to another receiver than
   * the previous ones; the repairs scheduled go out now and later repairs cover only
   * later sources (see {@link SlidingWindowEncoder.restartWindow}).
   */
  restartWindow(now: number): void {
    this.slidingWindow?.restartWindow(now);
  }

  /**
   * Input: the receiver's stats for one interval, as relayed back by the tunnel. Passed
   * to the controller (if any), whose decision takes effect at once.
   * @param rttMs the current round-trip estimate, when the driver has one
   */
  handleFeedback(now: number, stats: FecIntervalStats, rttMs?: number): void {
    // A controller of the `sw` family only ever answers `sw`, so an `sw` sender follows it too.
    if (!this.controller) return;
    this.controller.handleStats(now, stats, rttMs);
    const next = this.controller.scheme;
    if (next !== this.current) this.setScheme(now, next);
  }

  /**
   * Command: switch protection. An open stripe is closed first (its parity is queued
   * now), so no group mixes two schemes; copies already scheduled still go out.
   * Throws RangeError for an invalid scheme, and for a switch into or out of `sw`
   * (its sources and repairs are numbered apart from groups); an `sw` sender takes new
   * `sw` settings at once.
   */
  setScheme(now: number, scheme: FecScheme): void {
    validateScheme(scheme);
    if ((scheme.mode === 'sw') !== (this.slidingWindow !== undefined)) {
      throw new RangeError(`FecSender: cannot switch from ${this.current.mode} to ${scheme.mode} at run time (sw is fixed for a sender's life)`);
    }
    if (this.slidingWindow !== undefined && scheme.mode === 'sw') {
      this.slidingWindow.setParameters(scheme);
      this.current = scheme;
      return;
    }
    if (sameScheme(scheme, this.current)) {
      this.current = scheme;
      return;
    }
    this.runDue(now);
    if (this.stripeOpen) this.closeStripe(false);
    this.current = scheme;
  }

  /**
   * Output: the next shard to send. Writes its payload into `out` (which must hold
   * {@link maxShardBytes}) and returns its header fields in a reused object, or
   * undefined when nothing is queued.
   */
  pollTransmit(out: Uint8Array): FecTransmit | undefined {
    if (this.slidingWindow !== undefined) return this.pollSlidingWindow(out);
    const tx = this.tx;
    const id = tx.shift();
    if (id < 0) return undefined;
    const length = this.pool.lengths[id];
    if (out.length < length) throw new RangeError(`pollTransmit: out holds ${out.length} bytes; shards need up to ${this.maxShardBytes}`);
    this.pool.copyOutAndRelease(id, 0, length, out);
    const t = this.transmit;
    t.seq = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) >>> 0;
    t.groupId = tx.takenField(0);
    t.index = tx.takenField(1);
    t.k = tx.takenField(2);
    t.r = tx.takenField(3);
    t.kind = tx.takenField(4) as FecShardKindValue;
    t.length = length;
    const c = this.counters;
    if (t.kind === FecShardKind.Data) {
      c.dataPackets++;
      c.dataBytes += length;
    } else if (t.kind === FecShardKind.Parity) {
      c.parityPackets++;
      c.parityBytes += length;
    } else {
      c.duplicatePackets++;
      c.duplicateBytes += length;
    }
    return t;
  }

  /** Output: when {@link handleTimeout} should next be called (ms), or undefined when nothing waits. */
  pollTimeout(): number | undefined {
    if (this.slidingWindow !== undefined) return this.slidingWindow.pollTimeout();
    let deadline = Number.POSITIVE_INFINITY;
    if (this.stripeOpen) deadline = this.stripeDeadlineMs;
    if (this.dupCount > 0 && this.dupDueMs[this.dupHead] < deadline) deadline = this.dupDueMs[this.dupHead];
    return deadline === Number.POSITIVE_INFINITY ? undefined : deadline;
  }

  /** {@link pollTransmit} in `sw` mode: the encoder's next shard, on the header fields of scheme.ts's wire mapping. */
  private pollSlidingWindow(out: Uint8Array): FecTransmit | undefined {
    const sw = this.slidingWindow!.pollTransmit(out);
    if (sw === undefined) return undefined;
    const t = this.transmit;
    t.seq = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) >>> 0;
    t.groupId = sw.seq;
    t.r = FEC_SLIDING_WINDOW_MARKER;
    t.length = sw.length;
    const c = this.counters;
    if (sw.kind === SlidingWindowShardKind.Source) {
      t.index = 0;
      t.k = 1;
      t.kind = FecShardKind.Data;
      c.dataPackets++;
      c.dataBytes += sw.length;
    } else {
      // The seed rides as the wire sequence: both count every shard from the same start.
      if (sw.seed !== t.seq) throw new Error(`sliding-window seed ${sw.seed} is not the wire sequence ${t.seq}`);
      t.index = SLIDING_WINDOW_REPAIR_INDEX;
      t.k = sw.count;
      t.kind = FecShardKind.Parity;
      c.parityPackets++;
      c.parityBytes += sw.length;
    }
    return t;
  }

  private runDue(now: number): void {
    if (this.stripeOpen && now >= this.stripeDeadlineMs) this.closeStripe(true);
    const mask = this.dupDueMs.length - 1;
    while (this.dupCount > 0 && this.dupDueMs[this.dupHead] <= now) {
      const at = this.dupHead;
      this.enqueue(this.dupBuf[at], this.dupGroup[at], 0, 1, 0, FecShardKind.Duplicate);
      this.dupHead = (at + 1) & mask;
      this.dupCount--;
    }
  }

  /**
   * Encodes every group of the stripe and queues the parity interleaved across the
   * groups (parity 0 of each group, then parity 1, …) so that a burst costs each group
   * one shard at most, as the data interleaving does.
   */
  private closeStripe(byHold: boolean): void {
    const scheme = this.current;
    if (scheme.mode !== 'rs') throw new Error('closeStripe outside rs mode');
    const slots = Math.min(this.stripePackets, scheme.interleave);
    let rMax = 0;
    for (let s = 0; s < slots; s++) {
      const count = this.slotCount[s];
      // A group closed early keeps the scheme's ratio of parity to data.
      const r = Math.min(scheme.r, Math.ceil((scheme.r * count) / scheme.k), 255 - count);
      this.slotR[s] = r;
      if (r > rMax) rMax = r;
      const buffers = this.pool.buffers;
      for (let j = 0; j < count; j++) {
        const id = this.slotBufs[s * 255 + j];
        this.encodeData[j] = buffers[id];
        this.encodeLengths[j] = this.pool.lengths[id];
      }
      for (let i = 0; i < r; i++) {
        const id = this.pool.acquire();
        this.slotParity[s * 255 + i] = id;
        this.encodeParity[i] = this.pool.buffers[id];
      }
      const shardBytes = this.codec.encode(this.encodeData, count, r, this.encodeParity, this.encodeLengths);
      for (let i = 0; i < r; i++) this.pool.lengths[this.slotParity[s * 255 + i]] = shardBytes;
      for (let j = 0; j < count; j++) this.pool.release(this.slotBufs[s * 255 + j]);
      this.encodeData.length = 0;
      this.encodeParity.length = 0;
      this.counters.groupsClosed++;
      if (byHold && count < scheme.k) this.counters.groupsClosedByHold++;
    }
    for (let i = 0; i < rMax; i++) {
      for (let s = 0; s < slots; s++) {
        if (i < this.slotR[s]) this.enqueue(this.slotParity[s * 255 + i], this.slotGroup[s], this.slotCount[s] + i, this.slotCount[s], this.slotR[s], FecShardKind.Parity);
      }
    }
    for (let s = 0; s < slots; s++) this.slotCount[s] = 0;
    this.stripeOpen = false;
    this.stripePackets = 0;
  }

  /** Queues a shard; the queue takes over one reference to buffer `id`. */
  private enqueue(id: number, groupId: number, index: number, k: number, r: number, kind: FecShardKindValue): void {
    this.tx.push(id, groupId, index, k, r, kind);
  }

  /** Schedules a copy; the dup queue takes over one reference to buffer `id`. */
  private scheduleCopy(dueMs: number, id: number, groupId: number): void {
    if (this.dupCount === this.dupDueMs.length) {
      this.dupDueMs = doubledRing(this.dupDueMs, this.dupHead, this.dupCount);
      this.dupBuf = doubledRing(this.dupBuf, this.dupHead, this.dupCount);
      this.dupGroup = doubledRing(this.dupGroup, this.dupHead, this.dupCount);
      this.dupHead = 0;
    }
    // Keep the queue in due order: a shorter spacing after a scheme change may put a
    // copy ahead of older ones (rare; the queue is short).
    const mask = this.dupDueMs.length - 1;
    let pos = this.dupCount;
    while (pos > 0 && this.dupDueMs[(this.dupHead + pos - 1) & mask] > dueMs) {
      const from = (this.dupHead + pos - 1) & mask;
      const to = (this.dupHead + pos) & mask;
      this.dupDueMs[to] = this.dupDueMs[from];
      this.dupBuf[to] = this.dupBuf[from];
      this.dupGroup[to] = this.dupGroup[from];
      pos--;
    }
    const at = (this.dupHead + pos) & mask;
    this.dupDueMs[at] = dueMs;
    this.dupBuf[at] = id;
    this.dupGroup[at] = groupId;
    this.dupCount++;
  }
}
