/**
 * The receiving half of FEC for one flow: a sans-IO state machine.
 *
 * Input: {@link FecReceiver.handleShard} for every shard the tunnel receives (data,
 * parity or copy), {@link FecReceiver.handleTimeout}. Outputs:
 * {@link FecReceiver.pollDelivered} (application packets, each exactly once),
 * {@link FecReceiver.pollEvent} (per-interval stats for the sender's controller) and
 * {@link FecReceiver.pollTimeout}.
 *
 * Polling order: after every input, drain `pollDelivered(out)` until it returns -1,
 * then `pollEvent()` until undefined, then read `pollTimeout()`.
 *
 * Data packets are delivered the moment they arrive, in arrival order (FEC never
 * holds a packet back to restore order: game traffic prefers late-and-unordered to
 * late). A missing data packet is rebuilt as soon as any k shards of its group are in.
 * Every copy after the first is dropped and counted as a duplicate.
 *
 * Sliding-window shards (mode `sw`, marked by r = 255; the wire mapping is in
 * scheme.ts) go to a {@link SlidingWindowDecoder} made at the first one; its
 * deliveries and counts flow through the same outputs, so a driver need not know
 * which mode its peer sends.
 */
import { BufferPool } from './pool.js';
import { FEC_LENGTH_PREFIX_BYTES, FEC_MAX_PAYLOAD_BYTES, FEC_MAX_SHARDS, RECONSTRUCT_INCONSISTENT, ReedSolomon, sharedReedSolomon } from './rs.js';
import { FEC_MAX_PAYLOAD_BYTES_DEFAULT, FEC_SLIDING_WINDOW_MARKER } from './scheme.js';
import { SLIDING_WINDOW_PACKETS_MAX } from './sliding-window-code.js';
import { SLIDING_WINDOW_DECODER_PACKETS_DEFAULT, SlidingWindowDecoder, type SlidingWindowDecoderInit } from './sliding-window-decoder.js';
import { SLIDING_WINDOW_MS_MAX, type SlidingWindowParameters } from './sliding-window-encoder.js';
import { SequenceTracker, SequenceVerdict } from './sequence.js';
import { doubledRing } from './ring.js';

/**
 * What the receiver saw in one stats interval. `lossRate` and `meanBurstPackets` are
 * measured on the wire (every shard counts, by its sequence number), which is what
 * the controller needs to size redundancy; the packet counts are application packets.
 */
export interface FecIntervalStats {
  /** Start of the interval (receiver's clock, ms). */
  readonly startMs: number;
  /** End of the interval (ms). */
  readonly endMs: number;
  /** Application packets delivered as they arrived. */
  readonly received: number;
  /** Application packets rebuilt from parity. */
  readonly recovered: number;
  /**
   * Application packets known lost for good: groups given up with data missing, plus
   * one per group of which no shard ever arrived (a lower bound: a group's size is only
   * known from its parity).
   */
  readonly unrecoverable: number;
  /** Copies of already-delivered packets that arrived (duplication mode, or the network). */
  readonly duplicates: number;
  /** Parity shards that arrived. */
  readonly parityReceived: number;
  /** Wire shards judged in the interval (received or lost), by sequence number. */
  readonly wirePackets: number;
  /** Of those, lost. */
  readonly wireLost: number;
  /** Runs of consecutive lost shards that started in the interval. */
  readonly lossBursts: number;
  /** wireLost / wirePackets (0 when nothing was judged); a fraction. */
  readonly lossRate: number;
  /** wireLost / lossBursts: the mean burst length in packets (0 when nothing was lost). */
  readonly meanBurstPackets: number;
}

/** An output of {@link FecReceiver.pollEvent}. */
export type FecReceiverEvent = { readonly type: 'stats'; readonly stats: FecIntervalStats };

/** Cumulative counters over the receiver's life. */
export interface FecReceiverTotals {
  received: number;
  recovered: number;
  unrecoverable: number;
  duplicates: number;
  parityReceived: number;
  /** Shards dropped for bad FEC fields, lengths above the limit, or contradicting their group. */
  malformed: number;
  /** Shards of groups already given up. */
  late: number;
}

/** Options for {@link FecReceiver}. */
export interface FecReceiverInit {
  /** Codec to use; share one per thread. Default: the thread's shared one ({@link sharedReedSolomon}). */
  readonly codec?: ReedSolomon;
  /** Largest application payload, in bytes; must match the sender's. Default {@link FEC_MAX_PAYLOAD_BYTES_DEFAULT}. */
  readonly maxPayloadBytes?: number;
  /**
   * How long a group waits for shards after its first arrives before it is given up,
   * in ms. Must exceed the sender's hold time plus the path's jitter. Default
   * {@link FEC_GROUP_TIMEOUT_MS_DEFAULT}.
   */
  readonly groupTimeoutMs?: number;
  /** Stats interval in ms. Default {@link FEC_STATS_INTERVAL_MS_DEFAULT}. */
  readonly statsIntervalMs?: number;
  /** How far out of order (in shards) a shard may arrive and still count as received in the loss stats. Default 32. */
  readonly reorderPackets?: number;
  /**
   * Settings of the sliding-window decoder used for `sw` shards: `windowPackets`
   * (source seqs tracked) and `windowMs` (how long a missing source waits for repairs,
   * from when it is known missing: the sender's `windowMs` plus the path's jitter).
   * Defaults: the decoder's ({@link SlidingWindowDecoderInit}).
   */
  readonly slidingWindow?: Pick<SlidingWindowDecoderInit, 'windowPackets' | 'windowMs'>;
}

/**
 * Shortest time a receiver waits for a missing `sw` source before giving it up, ms:
 * longer than any window the adaptive controller picks (its tail window is 100 ms at
 * budgets up to 33 ms) plus jitter. Waiting costs nothing but a tracked slot: sources
 * are delivered the moment they arrive or are rebuilt, never held back.
 */
export const SLIDING_WINDOW_RECEIVER_WAIT_MS_MIN = 300;

/**
 * The {@link FecReceiverInit.slidingWindow} settings that fit a sender using `p` or an
 * adaptive one: wait for a missing source at least the sender's window
 * (`windowMs`: the decoder's clock starts only once it knows a source is missing, so
 * this already leaves the repairs their spacing) and at least
 * {@link SLIDING_WINDOW_RECEIVER_WAIT_MS_MIN}, and track at least twice its window in
 * seqs, never fewer than the decoder's default.
 */
export function slidingWindowReceiverSettings(p: SlidingWindowParameters): { readonly windowPackets: number; readonly windowMs: number } {
  return {
    windowPackets: Math.min(SLIDING_WINDOW_PACKETS_MAX, Math.max(SLIDING_WINDOW_DECODER_PACKETS_DEFAULT, 2 * p.windowPackets)),
    windowMs: Math.min(SLIDING_WINDOW_MS_MAX, Math.max(SLIDING_WINDOW_RECEIVER_WAIT_MS_MIN, p.windowMs)),
  };
}

/** {@link FecTransmit}-style index of a sliding-window repair (see scheme.ts). */
const SLIDING_WINDOW_REPAIR_INDEX = 255;

/** Default {@link FecReceiverInit.groupTimeoutMs}: far above any useful hold, far below a session's life. */
export const FEC_GROUP_TIMEOUT_MS_DEFAULT = 500;
/** Default {@link FecReceiverInit.statsIntervalMs}: four reports a second lets the controller react within ~1 s. */
export const FEC_STATS_INTERVAL_MS_DEFAULT = 250;
const REORDER_PACKETS_DEFAULT = 32;
/** Groups judged for "never seen" once this many newer group ids have appeared (covers interleaving). */
const GROUP_REORDER_SLACK = 64;
const NO_BUFFER = -1;
/** Shard slots a group starts with (enough for small RS groups; more are added on demand). */
const GROUP_SLOTS_INITIAL = 8;
/**
 * Slots of the receiver's direct-mapped group table (a power of two). A flow's group
 * ids are consecutive, so the groups alive at once (those of the last
 * {@link FecReceiverInit.groupTimeoutMs}) sit in distinct slots unless more than this
 * many are alive; the rest go to an overflow map.
 */
const GROUP_TABLE_SLOTS = 256;

/** Per-group state; pooled. */
class GroupState {
  id = 0;
  /** Actual data count, from a parity shard; -1 until one arrives. */
  kFinal = -1;
  rFinal = -1;
  /** Highest data index seen + 1 (a lower bound on k while kFinal is unknown). */
  dataExtent = 0;
  delivered = 0;
  /** Shards held (data and parity) for decoding. */
  held = 0;
  /** Decoded, fully received, or found inconsistent: accepts nothing more. */
  done = false;
  /**
   * Per shard index: the held buffer, and whether the data packet was delivered. Sized
   * to the indexes seen (grown by {@link reserve} up to {@link FEC_MAX_SHARDS}): at game
   * rates a group is one packet, and a receiver keeps hundreds of groups, whose state
   * should stay small enough to stay in cache.
   */
  buffers = new Int32Array(GROUP_SLOTS_INITIAL).fill(NO_BUFFER);
  deliveredFlags = new Uint8Array(GROUP_SLOTS_INITIAL);

  /** Makes room for shard indexes below `slots`. */
  reserve(slots: number): void {
    if (slots <= this.buffers.length) return;
    const size = Math.min(FEC_MAX_SHARDS, Math.max(slots, 2 * this.buffers.length));
    const buffers = new Int32Array(size).fill(NO_BUFFER);
    buffers.set(this.buffers);
    this.buffers = buffers;
    const flags = new Uint8Array(size);
    flags.set(this.deliveredFlags);
    this.deliveredFlags = flags;
  }
}

/** The receiving half of FEC for one flow. See the module comment for the polling order. */
export class FecReceiver {
  /** Largest shard accepted (payload limit + the 2-byte length prefix parity carries), in bytes. */
  readonly maxShardBytes: number;
  /** Cumulative counters (live object). */
  readonly totals: FecReceiverTotals = { received: 0, recovered: 0, unrecoverable: 0, duplicates: 0, parityReceived: 0, malformed: 0, late: 0 };

  private readonly codec: ReedSolomon;
  private readonly pool: BufferPool;
  private readonly maxPayloadBytes: number;
  private readonly slidingWindowInit: FecReceiverInit['slidingWindow'];
  /** The sliding-window decoder, from the first `sw` shard on. */
  private slidingWindow: SlidingWindowDecoder | undefined = undefined;
  /** Its totals as last added to ours (its counters are cumulative). */
  private swReceived = 0;
  private swRebuilt = 0;
  private swLost = 0;
  private swDuplicates = 0;
  private swRepairs = 0;
  private swMalformed = 0;
  private swLate = 0;
  private readonly groupTimeoutMs: number;
  private readonly statsIntervalMs: number;
  /**
   * Open and remembered groups by id: slot `id & (GROUP_TABLE_SLOTS - 1)` of the table,
   * or the overflow map when that slot was taken. A lookup per shard and an insertion
   * and a removal per group stay off the Map in the common case.
   */
  private readonly groupTable: (GroupState | undefined)[] = new Array<GroupState | undefined>(GROUP_TABLE_SLOTS).fill(undefined);
  private readonly groupOverflow = new Map<number, GroupState>();
  private groupCount = 0;
  private readonly spareGroups: GroupState[] = [];
  /** Groups in creation order (= expiry order, since the timeout is constant). */
  private expiry: GroupState[] = [];
  /**
   * When each group of {@link expiry} expires (creation + timeout), ms: checked after
   * every input, so it is kept next to its neighbours rather than in the group objects.
   */
  private expiresAtMs: number[] = [];
  private expiryHead = 0;
  private readonly wire: SequenceTracker;
  private readonly groupIds = new SequenceTracker(GROUP_REORDER_SLACK);
  /** Newest group id given up or finished and forgotten; older unknown ids are late. */
  private retiredThrough = 0;
  private anyRetired = false;

  private deliverQueue = new Int32Array(64);
  private deliverHead = 0;
  private deliverCount = 0;
  private readonly events: FecReceiverEvent[] = [];

  private statsStartMs = Number.NaN;
  private nextStatsMs = Number.NaN;
  private iReceived = 0;
  private iRecovered = 0;
  private iUnrecoverable = 0;
  private iDuplicates = 0;
  private iParity = 0;

  // Decode scratch.
  private readonly shardViews: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(FEC_MAX_SHARDS).fill(undefined);
  private readonly shardLengths = new Int32Array(FEC_MAX_SHARDS);
  private readonly recoveredViews: Uint8Array[] = [];
  private readonly recoveredIds = new Int32Array(FEC_MAX_SHARDS);
  private readonly recoveredLengths = new Int32Array(FEC_MAX_SHARDS);

  /** @param init options; every field has a default */
  constructor(init: FecReceiverInit = {}) {
    const maxPayloadBytes = init.maxPayloadBytes ?? FEC_MAX_PAYLOAD_BYTES_DEFAULT;
    if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < 1 || maxPayloadBytes > FEC_MAX_PAYLOAD_BYTES) {
      throw new RangeError(`FecReceiver maxPayloadBytes: ${maxPayloadBytes} is out of range; expected an integer from 1 to ${FEC_MAX_PAYLOAD_BYTES}`);
    }
    this.maxShardBytes = maxPayloadBytes + FEC_LENGTH_PREFIX_BYTES;
    this.maxPayloadBytes = maxPayloadBytes;
    this.slidingWindowInit = init.slidingWindow;
    this.codec = init.codec ?? sharedReedSolomon();
    this.pool = new BufferPool(this.maxShardBytes);
    this.groupTimeoutMs = init.groupTimeoutMs ?? FEC_GROUP_TIMEOUT_MS_DEFAULT;
    this.statsIntervalMs = init.statsIntervalMs ?? FEC_STATS_INTERVAL_MS_DEFAULT;
    if (!(this.groupTimeoutMs > 0) || !(this.statsIntervalMs > 0)) throw new RangeError('FecReceiver groupTimeoutMs and statsIntervalMs must be > 0 ms');
    this.wire = new SequenceTracker(init.reorderPackets ?? REORDER_PACKETS_DEFAULT);
  }

  /** Groups currently tracked (open or remembered for deduplication). */
  get openGroups(): number {
    return this.groupCount;
  }

  /** Pooled buffers in use: a leak check for tests. */
  get buffersInUse(): number {
    return this.pool.inUse + (this.slidingWindow?.buffersInUse ?? 0);
  }

  /**
   * Input: one shard as received. `seq`, `groupId`, `index`, `k`, `r` are the
   * data-plane header's fields; `payload` is read during the call only (copied if
   * kept). Bad fields are counted in `totals.malformed`, never thrown.
   */
  handleShard(now: number, seq: number, groupId: number, index: number, k: number, r: number, payload: Uint8Array): void {
    this.advance(now, false);
    const verdict = this.wire.record(seq);
    if (verdict === SequenceVerdict.Duplicate) {
      // The network duplicated this datagram: it is not news for the group either.
      this.totals.duplicates++;
      this.iDuplicates++;
      return;
    }
    if (r === FEC_SLIDING_WINDOW_MARKER) {
      this.handleSlidingWindow(now, seq, groupId, index, k, payload);
      return;
    }
    if (k < 1 || r < 0 || k + r > FEC_MAX_SHARDS || index >= k + r || payload.length > this.maxShardBytes) {
      this.totals.malformed++;
      return;
    }
    groupId >>>= 0;
    let group = this.findGroup(groupId);
    if (group === undefined) {
      if (this.anyRetired && ((groupId - this.retiredThrough) | 0) <= 0) {
        this.totals.late++;
        return;
      }
      group = this.openGroup(now, groupId);
    }
    group.reserve(index + 1);
    if (index < k) this.handleData(group, index, r, payload);
    else this.handleParity(group, index, k, r, payload);
  }

  /** Input: a deadline from {@link pollTimeout} has passed. */
  handleTimeout(now: number): void {
    this.advance(now, true);
  }

  /**
   * Output: copies the next delivered application packet into `out` (which must hold
   * the payload limit) and returns its length, or -1 when none is waiting.
   */
  pollDelivered(out: Uint8Array): number {
    if (this.deliverCount === 0) return -1;
    const id = this.deliverQueue[this.deliverHead];
    this.deliverHead = (this.deliverHead + 1) & (this.deliverQueue.length - 1);
    this.deliverCount--;
    const length = this.pool.lengths[id];
    if (out.length < length) throw new RangeError(`pollDelivered: out holds ${out.length} bytes; packets need up to ${this.maxShardBytes - FEC_LENGTH_PREFIX_BYTES}`);
    this.pool.copyOutAndRelease(id, 0, length, out);
    return length;
  }

  /** Output: the next event (interval stats), or undefined. */
  pollEvent(): FecReceiverEvent | undefined {
    return this.events.shift();
  }

  /** Output: when {@link handleTimeout} should next be called (ms), or undefined before any input. */
  pollTimeout(): number | undefined {
    if (Number.isNaN(this.nextStatsMs)) return undefined;
    let deadline = this.nextStatsMs;
    const giveUpMs = this.slidingWindow?.pollTimeout();
    if (giveUpMs !== undefined && giveUpMs < deadline) deadline = giveUpMs;
    if (this.expiryHead < this.expiry.length) {
      const expires = this.expiresAtMs[this.expiryHead];
      if (expires < deadline) deadline = expires;
    }
    return deadline;
  }

  /**
   * Output: when {@link handleTimeout} next has an output to give (the interval stats),
   * or undefined before any input. Unlike {@link pollTimeout} it leaves out group
   * expiry, which gives none: every input and every stats interval retires the groups
   * due first, so a driver that never wakes the receiver for anything else (the relay
   * core, whose other timers do not depend on its receivers) may wait for this.
   */
  nextOutputMs(): number | undefined {
    return Number.isNaN(this.nextStatsMs) ? undefined : this.nextStatsMs;
  }

  /** An `sw` shard (scheme.ts's wire mapping): a source (index 0, k 1) or a repair (index 255, k = its window's count, seed = its wire seq). */
  private handleSlidingWindow(now: number, seq: number, sourceSeq: number, index: number, k: number, payload: Uint8Array): void {
    const decoder = (this.slidingWindow ??= new SlidingWindowDecoder({ maxPayloadBytes: this.maxPayloadBytes, ...this.slidingWindowInit }));
    if (index === 0 && k === 1) decoder.handleSource(now, sourceSeq, payload);
    else if (index === SLIDING_WINDOW_REPAIR_INDEX) decoder.handleRepair(now, sourceSeq, k, seq, payload);
    else this.totals.malformed++;
    this.drainSlidingWindow();
  }

  /** Moves the decoder's deliveries to our queue and adds its new counts to ours. */
  private drainSlidingWindow(): void {
    const decoder = this.slidingWindow!;
    const pool = this.pool;
    for (;;) {
      const id = pool.acquire();
      const delivery = decoder.pollDelivered(pool.buffers[id]);
      if (delivery === undefined) {
        pool.release(id);
        break;
      }
      pool.lengths[id] = delivery.length;
      this.deliver(id);
    }
    const t = decoder.totals;
    const received = t.received - this.swReceived;
    const rebuilt = t.rebuilt - this.swRebuilt;
    const lost = t.lost - this.swLost;
    const duplicates = t.duplicates - this.swDuplicates;
    const repairs = t.repairsReceived - this.swRepairs;
    this.totals.received += received;
    this.iReceived += received;
    this.totals.recovered += rebuilt;
    this.iRecovered += rebuilt;
    this.totals.unrecoverable += lost;
    this.iUnrecoverable += lost;
    this.totals.duplicates += duplicates;
    this.iDuplicates += duplicates;
    this.totals.parityReceived += repairs;
    this.iParity += repairs;
    this.totals.malformed += t.malformed + t.inconsistent - this.swMalformed;
    this.totals.late += t.late - this.swLate;
    this.swReceived = t.received;
    this.swRebuilt = t.rebuilt;
    this.swLost = t.lost;
    this.swDuplicates = t.duplicates;
    this.swRepairs = t.repairsReceived;
    this.swMalformed = t.malformed + t.inconsistent;
    this.swLate = t.late;
  }

  private handleData(group: GroupState, index: number, r: number, payload: Uint8Array): void {
    if (group.deliveredFlags[index] === 1 || group.done) {
      this.totals.duplicates++;
      this.iDuplicates++;
      return;
    }
    if (group.kFinal >= 0 && index >= group.kFinal) {
      this.totals.malformed++;
      return;
    }
    const id = this.pool.acquireCopy(payload, payload.length);
    group.deliveredFlags[index] = 1;
    group.delivered++;
    if (index + 1 > group.dataExtent) group.dataExtent = index + 1;
    this.totals.received++;
    this.iReceived++;
    this.deliver(id);
    if (r === 0) {
      // No parity will come (off or duplicate mode): a one-packet group, now complete.
      group.kFinal = 1;
      group.rFinal = 0;
      this.finish(group);
      return;
    }
    this.pool.retain(id);
    group.buffers[index] = id;
    group.held++;
    this.tryComplete(group);
  }

  private handleParity(group: GroupState, index: number, k: number, r: number, payload: Uint8Array): void {
    this.totals.parityReceived++;
    this.iParity++;
    if (group.done) return;
    if (group.kFinal < 0) {
      if (k < group.dataExtent) {
        this.totals.malformed++;
        return;
      }
      group.kFinal = k;
      group.rFinal = r;
      group.reserve(k + r);
    } else if (k !== group.kFinal || r !== group.rFinal) {
      this.totals.malformed++;
      return;
    }
    if (group.buffers[index] !== NO_BUFFER) return;
    group.buffers[index] = this.pool.acquireCopy(payload, payload.length);
    group.held++;
    this.tryComplete(group);
  }

  /** Finishes the group when all data is in, or rebuilds the rest when k shards are. */
  private tryComplete(group: GroupState): void {
    const k = group.kFinal;
    if (k < 0) return;
    if (group.delivered >= k) {
      this.finish(group);
      return;
    }
    if (group.held < k) return;
    const r = group.rFinal;
    const pool = this.pool;
    let missing = 0;
    for (let i = 0; i < k + r; i++) {
      const id = group.buffers[i];
      if (id === NO_BUFFER) {
        this.shardViews[i] = undefined;
        if (i < k) {
          const out = pool.acquire();
          this.recoveredIds[missing++] = out;
          this.recoveredViews[i] = pool.buffers[out];
        }
      } else {
        this.shardViews[i] = pool.buffers[id];
        this.shardLengths[i] = pool.lengths[id];
      }
    }
    const result = this.codec.reconstruct(k, r, this.shardViews, this.recoveredViews, this.recoveredLengths, this.shardLengths);
    this.shardViews.fill(undefined, 0, k + r);
    let x = 0;
    for (let i = 0; i < k; i++) {
      if (group.buffers[i] !== NO_BUFFER) continue;
      const out = this.recoveredIds[x++];
      if (result > 0) {
        pool.lengths[out] = this.recoveredLengths[i];
        group.deliveredFlags[i] = 1;
        group.delivered++;
        this.totals.recovered++;
        this.iRecovered++;
        this.deliver(out);
      } else {
        pool.release(out);
      }
    }
    this.recoveredViews.length = 0;
    if (result === RECONSTRUCT_INCONSISTENT) {
      // Shards that cannot belong together (a confused or hostile sender): deliver
      // nothing more from this group; its losses are counted when it expires.
      this.totals.malformed++;
      this.releaseBuffers(group);
      group.done = true;
      return;
    }
    if (result > 0) this.finish(group);
  }

  /** The group needs nothing more: free its shards, remember it for deduplication until it expires. */
  private finish(group: GroupState): void {
    this.releaseBuffers(group);
    group.done = true;
  }

  private releaseBuffers(group: GroupState): void {
    if (group.held === 0) return;
    for (let i = 0; i < group.buffers.length && group.held > 0; i++) {
      const id = group.buffers[i];
      if (id !== NO_BUFFER) {
        this.pool.release(id);
        group.buffers[i] = NO_BUFFER;
        group.held--;
      }
    }
  }

  private findGroup(groupId: number): GroupState | undefined {
    const group = this.groupTable[groupId & (GROUP_TABLE_SLOTS - 1)];
    if (group !== undefined && group.id === groupId) return group;
    return this.groupOverflow.size === 0 ? undefined : this.groupOverflow.get(groupId);
  }

  private addGroup(group: GroupState): void {
    const slot = group.id & (GROUP_TABLE_SLOTS - 1);
    if (this.groupTable[slot] === undefined) this.groupTable[slot] = group;
    else this.groupOverflow.set(group.id, group);
    this.groupCount++;
  }

  private removeGroup(group: GroupState): void {
    const slot = group.id & (GROUP_TABLE_SLOTS - 1);
    if (this.groupTable[slot] === group) this.groupTable[slot] = undefined;
    else this.groupOverflow.delete(group.id);
    this.groupCount--;
  }

  private openGroup(now: number, groupId: number): GroupState {
    const group = this.spareGroups.pop() ?? new GroupState();
    // Flags are only ever set below the data extent or k (a fresh group has none).
    const flags = group.deliveredFlags;
    for (let i = Math.min(flags.length, Math.max(group.dataExtent, group.kFinal)) - 1; i >= 0; i--) flags[i] = 0;
    group.id = groupId;
    group.kFinal = -1;
    group.rFinal = -1;
    group.dataExtent = 0;
    group.delivered = 0;
    group.held = 0;
    group.done = false;
    this.addGroup(group);
    this.expiry.push(group);
    this.expiresAtMs.push(now + this.groupTimeoutMs);
    this.groupIds.record(groupId);
    return group;
  }

  private deliver(id: number): void {
    if (this.deliverCount === this.deliverQueue.length) {
      this.deliverQueue = doubledRing(this.deliverQueue, this.deliverHead, this.deliverCount);
      this.deliverHead = 0;
    }
    this.deliverQueue[(this.deliverHead + this.deliverCount) & (this.deliverQueue.length - 1)] = id;
    this.deliverCount++;
  }

  /** Expires old groups and closes stats intervals up to `now`. */
  /**
   * Retires expired groups and closes the stats interval when due. Only a timeout
   * (`giveUp`) makes the sliding-window decoder give sources up: a shard never does, so
   * that after a stall of the process the shards queued meanwhile (a repair, a late
   * source) all count before the late timeout (see sliding-window-decoder.ts).
   */
  private advance(now: number, giveUp: boolean): void {
    if (Number.isNaN(this.nextStatsMs)) {
      this.statsStartMs = now;
      this.nextStatsMs = now + this.statsIntervalMs;
    }
    while (this.expiryHead < this.expiry.length) {
      if (this.expiresAtMs[this.expiryHead] > now) break;
      this.retire(this.expiry[this.expiryHead++]);
    }
    if (this.expiryHead > 1024 && this.expiryHead * 2 > this.expiry.length) {
      this.expiry = this.expiry.slice(this.expiryHead);
      this.expiresAtMs = this.expiresAtMs.slice(this.expiryHead);
      this.expiryHead = 0;
    }
    if (giveUp && this.slidingWindow !== undefined && now >= this.nextStatsMs) {
      // Sources given up by now count in the interval that closes.
      this.slidingWindow.handleTimeout(now);
      this.drainSlidingWindow();
    }
    if (now >= this.nextStatsMs) this.emitStats(now);
  }

  private retire(group: GroupState): void {
    if (!group.done || group.delivered < (group.kFinal >= 0 ? group.kFinal : group.dataExtent)) {
      const known = group.kFinal >= 0 ? group.kFinal : group.dataExtent;
      const lost = Math.max(0, known - group.delivered);
      this.totals.unrecoverable += lost;
      this.iUnrecoverable += lost;
    }
    this.releaseBuffers(group);
    this.removeGroup(group);
    if (!this.anyRetired || ((group.id - this.retiredThrough) | 0) > 0) this.retiredThrough = group.id;
    this.anyRetired = true;
    this.spareGroups.push(group);
  }

  private emitStats(now: number): void {
    const wire = this.wire;
    // Groups of which nothing at all arrived hold at least one packet each.
    const vanished = this.groupIds.lost;
    this.totals.unrecoverable += vanished;
    const stats: FecIntervalStats = {
      startMs: this.statsStartMs,
      endMs: now,
      received: this.iReceived,
      recovered: this.iRecovered,
      unrecoverable: this.iUnrecoverable + vanished,
      duplicates: this.iDuplicates,
      parityReceived: this.iParity,
      wirePackets: wire.judged,
      wireLost: wire.lost,
      lossBursts: wire.bursts,
      lossRate: wire.judged > 0 ? wire.lost / wire.judged : 0,
      meanBurstPackets: wire.bursts > 0 ? wire.lost / wire.bursts : 0,
    };
    this.events.push({ type: 'stats', stats });
    wire.resetCounters();
    this.groupIds.resetCounters();
    this.iReceived = this.iRecovered = this.iUnrecoverable = this.iDuplicates = this.iParity = 0;
    this.statsStartMs = now;
    this.nextStatsMs += this.statsIntervalMs;
    if (this.nextStatsMs <= now) this.nextStatsMs = now + this.statsIntervalMs;
  }
}
