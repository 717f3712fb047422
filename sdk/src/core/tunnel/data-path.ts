/**
 * The data path room of a `TunnelClient`: the app's datagrams upstream (queued
 * until a session opens, FEC-coded by one sender whose numbering every relay shares,
 * each sent through one relay: the current one, or the backup while the current one is
 * suspect; a copy or repair goes where the sources it can rebuild went) and the origin's
 * downstream (per-relay or per-exit FEC receivers that rebuild and dedupe, their
 * interval stats reported back to the relay), with the counters of both directions.
 * The rules are "One session, several relays" and "FEC" in the module comment of
 * `tunnel-client.ts`.
 *
 * Per packet it allocates only the datagram it emits (a slab view): the header, the
 * scratch shard and the target list are reused.
 */
import { FEC_SLIDING_WINDOW_MARKER, FecController, FecSender, FecShardKind, setShardHeader, type FecIntervalStats, type FecScheme, type FecTransmit } from '../../../../proto/src/fec/index.js';
import { HEADER_BYTES, HeaderFlag, PacketHeader, PacketType, writeHeader } from '../../../../proto/src/header.js';
import { SlabAllocator } from '../../../../proto/src/slab.js';
import { buildControlPacket, fecStatsMessage } from '../../../../proto/src/wire-frames.js';
import * as C from '../constants.js';
import type { TunnelContext } from './context.js';
import type { Liveness } from './liveness.js';
import type { RelayLink } from './relay-link-state.js';
import { earlier } from './timer-table.js';

const SHARD_SCRATCH_BYTES = 1500;
/** Slots of the source-owner ring: more than one sliding-window repair covers (255 sources), and groups in flight (~17 s at 60 packets/s). A power of two. */
const OWNER_SLOTS = 1024;

/** The data path room; see the module comment. */
export class DataPath {
  private readonly queue: Uint8Array[] = [];
  private readonly outHeader = new PacketHeader();
  private readonly scratch = new Uint8Array(SHARD_SCRATCH_BYTES);
  /** Upstream shards and delivered messages: views carved from slabs (proto/src/slab.ts), as in the relay core. */
  private readonly slabs = new SlabAllocator();
  /**
   * The relay that carried each recent upstream FEC source, by group id (a source's own
   * in `duplicate` and `sw`, its group's in `rs`; `ownerGroups` says which id a slot
   * holds), or null for an `rs` group whose data went to two relays. Copies and repairs
   * follow it: a relay must never rebuild a datagram another relay delivered, or the
   * origin gets it twice (see {@link shardLink}).
   */
  private readonly owners: (RelayLink | null | undefined)[] = new Array<RelayLink | null | undefined>(OWNER_SLOTS).fill(undefined);
  private readonly ownerGroups = new Uint32Array(OWNER_SLOTS);
  /** The upstream adaptive controller, made with the sender (its family follows the session's mode); undefined while fixed or not started. */
  private controller: FecController | undefined = undefined;
  private sender: FecSender | undefined = undefined;
  /** The relay the latest FEC-coded source went to (a change restarts the sliding window). */
  private sourceTarget: RelayLink | undefined = undefined;
  /** Datagrams the app sent / received. */
  packetsSent = 0;
  packetsReceived = 0;
  /** Downstream wire shards judged and lost before FEC (every relay). */
  wirePackets = 0;
  wireLost = 0;
  /** Downstream application packets delivered, rebuilt by FEC, and lost after FEC. */
  delivered = 0;
  recovered = 0;
  unrecoverable = 0;

  constructor(
    private readonly ctx: TunnelContext,
    private readonly liveness: Liveness,
  ) {}

  /** Upstream FEC payload bytes sent so far (the sender's counters), for `TunnelClient.stats`. */
  get upstreamFecBytes(): { readonly data: number; readonly redundant: number } {
    const c = this.sender?.counters;
    return c === undefined ? { data: 0, redundant: 0 } : { data: c.dataBytes, redundant: c.parityBytes + c.duplicateBytes };
  }

  /** The upstream FEC scheme now, for `TunnelClient.stats` (e.g. `dup×1@17ms`). */
  get upstreamScheme(): string {
    return describeScheme(this.sender?.scheme);
  }

  /**
   * Queues `payload` (a copy) until a session opens; when full, the oldest is dropped for
   * it. Returns false when one was dropped.
   */
  enqueue(payload: Uint8Array): boolean {
    // Full: the oldest is dropped for this one, and the caller hears of the loss.
    const dropping = this.queue.length >= C.QUEUE_BEFORE_OPEN_MAX;
    if (dropping) this.queue.shift();
    this.queue.push(payload.slice());
    return !dropping;
  }

  /** Sends what was queued before the current relay's session opened. */
  flushQueue(nowMs: number): void {
    while (this.queue.length > 0) {
      this.packetsSent++;
      this.sendData(nowMs, this.queue.shift()!);
    }
  }

  /**
   * Starts the upstream sender (at the first accept of a session with FEC, in that
   * session's `fecMode`) and its adaptive controller: in `sw` one of the `sw` family
   * under the session's latency budget (or the app's fixed sliding window, without a
   * controller); otherwise the block family, starting as below.
   */
  ensureSender(fecMode: string): void {
    if (this.sender !== undefined) return;
    const budget = this.ctx.latencyBudgetMs !== undefined ? { latencyBudgetMs: this.ctx.latencyBudgetMs } : {};
    if (fecMode === 'sw') {
      const fixed = this.ctx.slidingWindow;
      if (fixed === undefined) this.controller = new FecController({ family: 'sw', overheadMax: C.UPSTREAM_FEC_OVERHEAD_MAX, ...budget });
      this.sender = new FecSender({ maxPayloadBytes: C.TUNNEL_PAYLOAD_BYTES_MAX, scheme: fixed !== undefined ? { mode: 'sw', ...fixed } : this.controller!.scheme });
      return;
    }
    this.controller = new FecController({ overheadMax: C.UPSTREAM_FEC_OVERHEAD_MAX, ...budget });
    // Until the controller has an estimate, one copy spaced a packet gap or so apart.
    this.sender = new FecSender({ maxPayloadBytes: C.TUNNEL_PAYLOAD_BYTES_MAX, scheme: { mode: 'duplicate', copies: 1, spacingMs: 10 } });
  }

  /** One app datagram upstream: FEC-coded when it fits a shard, plain otherwise (also to a relay with FEC off). */
  sendData(nowMs: number, payload: Uint8Array): void {
    const ctx = this.ctx;
    const current = ctx.currentLink();
    if (current === undefined) return;
    const sender = this.sender;
    if (sender !== undefined && payload.length <= sender.maxPayloadBytes) {
      this.controller?.handlePacket(nowMs, payload.length);
      // Sources move to another relay (a failover, a switch, a tentative move and back):
      // the repairs owed to the earlier ones leave now, to their relay, and the window
      // restarts, so the next sources' repairs reach the relay that has their sources
      // (repairs that straddle a move are not sent at all, see shardLink).
      const target = this.target(nowMs);
      if (target !== this.sourceTarget) {
        if (this.sourceTarget !== undefined) {
          sender.restartWindow(nowMs);
          this.drainSender(nowMs);
        }
        this.sourceTarget = target;
      }
      sender.push(nowMs, payload);
      this.drainSender(nowMs);
      return;
    }
    const link = this.target(nowMs)!;
    const h = this.outHeader;
    h.type = PacketType.Data;
    h.flags = link === current ? 0 : HeaderFlag.ViaBackup;
    h.sessionIdHigh = ctx.sessionIdHigh;
    h.sessionIdLow = ctx.sessionIdLow;
    h.sequence = link.plainSequence = (link.plainSequence + 1) >>> 0;
    h.fecGroup = h.fecIndex = h.fecDataCount = h.fecParityCount = 0;
    const out = new Uint8Array(HEADER_BYTES + payload.length);
    writeHeader(h, out);
    out.set(payload, HEADER_BYTES);
    link.lastTxMs = nowMs;
    ctx.transmits.push({ to: link.tunnel, bytes: out });
  }

  /**
   * The one relay a new upstream datagram goes to: the current one, or the backup while
   * the current one is suspect and the backup answers (see `Liveness.upstreamBackup`).
   * One, not both: each relay forwards to the origin from its own socket, so a datagram
   * sent through two reaches an unmodified origin twice, from two addresses, whenever
   * both relays are alive. Duplicating to the backup against loss buys little anyway:
   * the player's last mile is one channel (see "Network model" in DESIGN.md), and a
   * copy to the backup crosses it with the original and dies in the same burst; loss is
   * FEC's job.
   */
  private target(nowMs: number): RelayLink | undefined {
    return this.liveness.upstreamBackup(nowMs) ?? this.ctx.currentLink();
  }

  private drainSender(nowMs: number): void {
    const ctx = this.ctx;
    const sender = this.sender!;
    const current = ctx.currentLink();
    const target = this.target(nowMs);
    const h = this.outHeader;
    const slidingWindow = sender.scheme.mode === 'sw';
    for (let tx = sender.pollTransmit(this.scratch); tx !== undefined; tx = sender.pollTransmit(this.scratch)) {
      const link = target === undefined ? undefined : this.shardLink(tx, target);
      if (link === undefined) continue;
      if (link.fecMode === 'off') continue; // such a relay gets plain copies only (rare: the client offers rs first)
      setShardHeader(h, tx, ctx.sessionIdHigh, ctx.sessionIdLow);
      if (slidingWindow && link.fecMode !== 'sw') {
        // A relay that did not agree to sw (another version, or config) gets the sources uncoded.
        if (tx.kind === FecShardKind.Data) this.sendPlain(nowMs, link, link === current, this.scratch.subarray(0, tx.length));
        continue;
      }
      h.flags = (tx.kind === FecShardKind.Duplicate ? HeaderFlag.Duplicate : 0) | (link === current ? 0 : HeaderFlag.ViaBackup);
      const out = this.slabs.view(HEADER_BYTES + tx.length);
      writeHeader(h, out);
      out.set(this.scratch.subarray(0, tx.length), HEADER_BYTES);
      link.lastTxMs = nowMs;
      ctx.transmits.push({ to: link.tunnel, bytes: out });
    }
  }

  /**
   * Where shard `tx` goes when new sources go to `target`: a source to `target` (noted
   * as its owner); a copy or repair to the relay that carried every source it covers
   * (a `duplicate` copy: its source; an `rs` parity: its group; an `sw` repair: the
   * `k` sources from its group id), if that relay's session is open; otherwise nowhere
   * (undefined). A repair sent to a relay that lacks some of its sources would let that
   * relay rebuild a datagram the other relay already delivered: a duplicate at the
   * origin. So around a move (a tentative failover and back, a switch) the repairs
   * that straddle it are not sent.
   */
  private shardLink(tx: FecTransmit, target: RelayLink): RelayLink | undefined {
    const group = tx.groupId;
    if (tx.kind === FecShardKind.Data) {
      const slot = group & (OWNER_SLOTS - 1);
      const owner = this.ownerGroups[slot] === group ? this.owners[slot] : undefined;
      // A later data shard of an rs group that went elsewhere splits the group.
      this.owners[slot] = owner !== undefined && owner !== target ? null : target;
      this.ownerGroups[slot] = group;
      return target;
    }
    const owner = this.ownerOf(group);
    if (owner == null || owner.sessionState !== 'open') return undefined;
    if (tx.r === FEC_SLIDING_WINDOW_MARKER) {
      for (let i = 1; i < tx.k; i++) if (this.ownerOf((group + i) >>> 0) !== owner) return undefined;
    }
    return owner;
  }

  /** The relay that carried group (or sw source) `group`, null when split, undefined when unknown (never sent, or overwritten). */
  private ownerOf(group: number): RelayLink | null | undefined {
    const slot = group & (OWNER_SLOTS - 1);
    return this.ownerGroups[slot] === group ? this.owners[slot] : undefined;
  }

  /** One uncoded datagram (k = 0) to `link`, numbered on its plain sequence; uses the shared header. */
  private sendPlain(nowMs: number, link: RelayLink, toCurrent: boolean, payload: Uint8Array): void {
    const ctx = this.ctx;
    const h = this.outHeader;
    h.type = PacketType.Data;
    h.flags = toCurrent ? 0 : HeaderFlag.ViaBackup;
    h.sessionIdHigh = ctx.sessionIdHigh;
    h.sessionIdLow = ctx.sessionIdLow;
    h.sequence = link.plainSequence = (link.plainSequence + 1) >>> 0;
    h.fecGroup = h.fecIndex = h.fecDataCount = h.fecParityCount = 0;
    const out = this.slabs.view(HEADER_BYTES + payload.length);
    writeHeader(h, out);
    out.set(payload, HEADER_BYTES);
    link.lastTxMs = nowMs;
    ctx.transmits.push({ to: link.tunnel, bytes: out });
  }

  /** Timer input of the upstream sender (spaced copies, closing groups). */
  advanceSender(nowMs: number): void {
    if (this.sender === undefined) return;
    this.sender.handleTimeout(nowMs);
    this.drainSender(nowMs);
  }

  /** `at`, or the upstream sender's deadline after `after` when earlier. */
  earliestDeadline(at: number, after: number): number {
    return this.sender === undefined ? at : earlier(at, this.sender.pollTimeout(), after);
  }

  /** A Data or Parity packet from `link`; its header is the context's, `bytes` is the whole datagram. */
  onData(nowMs: number, link: RelayLink, bytes: Uint8Array): void {
    // A session closed on a failover still delivers what its relay had sent (relay-link.ts, closeSession).
    if (link.sessionState !== 'open' && !(link.sessionState === 'closed' && nowMs < link.drainUntilMs)) return;
    const h = this.ctx.header;
    const payload = bytes.subarray(HEADER_BYTES);
    if (h.fecDataCount === 0 || link.receiver === undefined) {
      if (h.type !== PacketType.Data) return;
      link.delivered++;
      this.deliver(payload);
      return;
    }
    link.receiver.handleShard(nowMs, h.sequence, h.fecGroup, h.fecIndex, h.fecDataCount, h.fecParityCount, payload);
    this.drainReceiver(nowMs, link);
  }

  /** Timer input of `link`'s downstream receiver, if it has one. */
  advanceReceiver(nowMs: number, link: RelayLink): void {
    if (link.receiver === undefined) return;
    // A receiver shared through an exit is advanced once per link: harmless (the second finds nothing due).
    link.receiver.handleTimeout(nowMs);
    this.drainReceiver(nowMs, link);
  }

  private drainReceiver(nowMs: number, link: RelayLink): void {
    const receiver = link.receiver!;
    for (let n = receiver.pollDelivered(this.scratch); n >= 0; n = receiver.pollDelivered(this.scratch)) {
      link.delivered++;
      this.deliver(this.scratch.subarray(0, n));
    }
    // A receiver shared through an exit reports through the current relay when that is one of its entries.
    const current = this.ctx.currentLink();
    const carrier = link.exit !== undefined && current !== undefined && current.receiver === receiver ? current : link;
    for (let e = receiver.pollEvent(); e !== undefined; e = receiver.pollEvent()) this.onReceiverStats(nowMs, carrier, e.stats);
  }

  private onReceiverStats(nowMs: number, link: RelayLink, s: FecIntervalStats): void {
    const ctx = this.ctx;
    this.wirePackets += s.wirePackets;
    this.wireLost += s.wireLost;
    this.delivered += s.received + s.recovered;
    this.recovered += s.recovered;
    this.unrecoverable += s.unrecoverable;
    // The relay's sender adapts its downstream protection to what we measured: tell it.
    // (This also keeps the session and the NAT mapping alive, like any packet of ours.)
    if (link.sessionState === 'open' && (s.wirePackets > 0 || s.received > 0)) {
      link.lastTxMs = nowMs;
      ctx.transmits.push({ to: link.tunnel, bytes: buildControlPacket(ctx.sessionIdHigh, ctx.sessionIdLow, fecStatsMessage(s)) });
    }
    // Downstream loss no longer sends upstream through the backup as well: a copy through
    // a second relay reaches the origin as a second datagram, and on the player's one last
    // mile it dies in the same burst as the original (see target()).
  }

  /** The current relay's report of what its receiver measured upstream drives our sender's controller. */
  onFecStats(nowMs: number, link: RelayLink, stats: FecIntervalStats): void {
    const controller = this.controller;
    if (link.id !== this.ctx.currentId || this.sender === undefined || controller === undefined) return;
    controller.handleStats(nowMs, stats, this.ctx.selector.figures(link.id)?.rttMs);
    if (controller.lastDecision !== undefined && controller.scheme !== this.sender.scheme) this.sender.setScheme(nowMs, controller.scheme);
  }

  private deliver(payload: Uint8Array): void {
    this.packetsReceived++;
    // A copy that outlives the receiver's scratch, carved from the slab (never rewritten).
    const bytes = this.slabs.view(payload.length);
    bytes.set(payload);
    this.ctx.events.push({ type: 'message', bytes });
  }
}

function describeScheme(scheme: FecScheme | undefined): string {
  if (scheme === undefined) return 'off';
  switch (scheme.mode) {
    case 'off':
      return 'off';
    case 'duplicate':
      return `dup×${scheme.copies}@${scheme.spacingMs}ms`;
    case 'rs':
      return `rs(${scheme.k},${scheme.r})×${scheme.interleave}`;
    case 'sw':
      return `sw(${Number(scheme.repairsPerSource.toFixed(2))}×${scheme.windowPackets})@${scheme.repairSpacingMs}ms/${scheme.windowMs}ms`;
  }
}
