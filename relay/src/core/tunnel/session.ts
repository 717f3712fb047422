/**
 * Tunnel sessions as held by this relay: the session table (by id, and by the low half
 * of the session id for the packet path), forwarding both ways for sessions terminated
 * here (the origin-facing socket, FEC sender and receiver, the adaptive controller), a
 * session's control messages and Close, and its end (an authenticated Close to the
 * client when it is told why). The session record ({@link TunnelSession}) is in state.ts.
 */
import { decodeControl, encodeControl } from '../../../../proto/src/control.js';
import { ErrorCode, type ErrorCodeValue } from '../../../../proto/src/errors.js';
import { FecController, FecReceiver, FecSender, FEC_OFF, setShardHeader, SLIDING_WINDOW_PARAMETERS_DEFAULT, slidingWindowReceiverSettings, type FecScheme } from '../../../../proto/src/fec/index.js';
import { HEADER_BYTES, type PacketHeader, PacketType } from '../../../../proto/src/header.js';
import { SlabAllocator } from '../../../../proto/src/slab.js';
import type { Endpoint } from '../../../../proto/src/transport.js';
import { CLOSE_MAC_BYTES, fecStatsFromMessage, fecStatsMessage, relayCloseMac, verifyCloseMac } from '../../../../proto/src/wire.js';
import type { LimitsSpec, TunnelSpec } from '../config-types.js';
import { DATAGRAM_BYTES_MAX, FEC_OVERHEAD_MAX_DEFAULT } from '../constants.js';
import { TUNNEL_SOCKET_ID, type RelayContext } from '../context.js';
import { DropReason } from '../output.js';
import { admitDown, endpointText, RuleStats, sessionRate, sessionTotals, unlinkChained } from '../session-base.js';
import { Timer } from '../timers.js';
import { writeTunnelHeader, type TunnelPackets } from './packets.js';
import { originHeader } from './origin-header.js';
import type { TunnelPaths } from './paths.js';
import type { TunnelSession } from './state.js';

/** Largest FEC shard, bytes (a payload of up to this minus 2 is protected; larger goes uncoded). */
const FEC_SHARD_BYTES_MAX = 1402;

/** See the module comment. */
export class TunnelSessions {
  /** Counters of the tunnel (rule `tunnel`). */
  readonly stats = new RuleStats('tunnel', 'tunnel');
  /** Sessions by id (= their origin-facing socket id). */
  readonly byId = new Map<number, TunnelSession>();
  /** Sessions this relay forwards to an exit relay (their exits' liveness is checked; see exit-link.ts). */
  readonly forwarded = new Set<TunnelSession>();
  private readonly byLow = new Map<number, TunnelSession>();
  private readonly fecSessions = new Set<TunnelSession>();
  /** FEC packets rebuilt by sessions that have ended (live ones are added by {@link fecRecovered}). */
  private fecRecoveredClosed = 0;
  /** Downstream FEC payload bytes of sessions that have ended: data, and redundancy (parity, repairs, copies). */
  private fecDataBytesClosed = 0;
  private fecRedundantBytesClosed = 0;
  private readonly fecScratch = new Uint8Array(FEC_SHARD_BYTES_MAX + 64);
  /** Output bytes the core writes per packet (tunnel headers, FEC shards): views carved from slabs (proto/src/slab.ts). */
  private readonly slabs = new SlabAllocator();

  constructor(
    private readonly ctx: RelayContext,
    private readonly packets: TunnelPackets,
    private readonly paths: TunnelPaths,
  ) {}

  /** Packets rebuilt by FEC over the relay's life. */
  get fecRecovered(): number {
    let live = 0;
    for (const session of this.fecSessions) live += session.fecReceiver?.totals.recovered ?? 0;
    return this.fecRecoveredClosed + live;
  }

  /** Downstream FEC payload bytes over the relay's life: `data` (the game's) and `redundant` (parity, repairs, copies). */
  get fecSentBytes(): { readonly data: number; readonly redundant: number } {
    let data = this.fecDataBytesClosed;
    let redundant = this.fecRedundantBytesClosed;
    for (const session of this.fecSessions) {
      const c = session.fecSender?.counters;
      if (c === undefined) continue;
      data += c.dataBytes;
      redundant += c.parityBytes + c.duplicateBytes;
    }
    return { data, redundant };
  }

  /** The session with id (`high`, `low`), or undefined. */
  find(high: number, low: number): TunnelSession | undefined {
    let session = this.byLow.get(low);
    while (session !== undefined && session.idHigh !== high) session = session.nextInChain;
    return session;
  }

  /** Enters a new session in the tables and counters. */
  add(session: TunnelSession): void {
    session.nextInChain = this.byLow.get(session.idLow);
    this.byLow.set(session.idLow, session);
    this.byId.set(session.id, session);
    session.source.sessions++;
    this.stats.sessionsActive++;
    this.stats.sessionsOpened++;
  }

  /**
   * A packet of `session` from its current address or a validated path (`h` is its
   * parsed header): data and parity go on (to the exit, through the FEC receiver, or
   * to the origin), control is the session's, Close ends it (or one path of it).
   */
  onPacket(nowMs: number, session: TunnelSession, from: Endpoint, bytes: Uint8Array, h: PacketHeader): void {
    const out = this.ctx.out;
    const type = h.type;
    session.lastActiveMs = nowMs;
    if (type === PacketType.Data || type === PacketType.Parity) {
      if (!session.upBucket.take(nowMs, bytes.length) || (!session.source.peer && !session.source.bucket.take(nowMs, bytes.length))) {
        out.drops[DropReason.RateLimitedSession]++;
        return;
      }
      session.packetsUp++;
      session.bytesUp += bytes.length;
      const exit = session.exit;
      if (exit !== undefined) {
        // Entry role: the exit terminates the session (FEC included); the datagram goes as it came.
        exit.sent(nowMs);
        out.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, bytes);
        return;
      }
      const receiver = session.fecReceiver;
      if (receiver !== undefined) {
        // Uncoded data (k = 0) on an FEC session is fine; coded shards go through the receiver.
        if (h.fecDataCount === 0) {
          this.toOrigin(session, bytes.subarray(HEADER_BYTES));
          return;
        }
        receiver.handleShard(nowMs, h.sequence, h.fecGroup, h.fecIndex, h.fecDataCount, h.fecParityCount, bytes.subarray(HEADER_BYTES));
        this.drainFecReceiver(session);
        this.noteFecDeadline(session);
        return;
      }
      if (type === PacketType.Parity || h.fecDataCount !== 0) {
        out.drops[DropReason.FecNotNegotiated]++;
        return;
      }
      this.toOrigin(session, bytes.subarray(HEADER_BYTES));
      return;
    }
    if (type === PacketType.Control) return this.onControl(nowMs, session, from, bytes);
    if (type === PacketType.Close) {
      if (!verifyCloseMac(session.key, session.idHigh, session.idLow, bytes.subarray(HEADER_BYTES))) {
        out.drops[DropReason.BadControl]++;
        return;
      }
      // Entry role: the exit drops this entry's path (and ends the session when it was
      // the last one). The SDK closes a lingering entry while keeping the session
      // through another, so one entry's close must not end the exit's session.
      if (session.exit !== undefined) out.push(TUNNEL_SOCKET_ID, session.exit.address, session.exit.port, undefined, bytes);
      if (session.paths !== undefined && session.paths.length > 1) return this.paths.dropPath(session, from);
      this.close(nowMs, session, 'client closed', undefined);
      return;
    }
    if (type === PacketType.PathResponse) return; // a late answer on the current path: nothing to do
    out.drops[DropReason.BadControl]++;
  }

  /** Sends `payload` to the session's origin, behind the `tunnel.proxyProtocol` header when there is one (origin-header.ts). */
  private toOrigin(session: TunnelSession, payload: Uint8Array): void {
    const tunnel = this.ctx.config.tunnel;
    const prefix = tunnel === undefined ? undefined : originHeader(session, tunnel, this.ctx.transportRemotes);
    if (prefix !== undefined && prefix.length + payload.length > DATAGRAM_BYTES_MAX) {
      this.ctx.out.drops[DropReason.TooLarge]++;
      return;
    }
    this.ctx.out.push(session.id, session.originAddress, session.originPort, prefix, payload);
  }

  /**
   * A control message of a known session from its current address. Not charged to the
   * per-source unauthenticated bucket (a CGNAT address carries many players' keepalives)
   * but to the session's own bucket.
   */
  private onControl(nowMs: number, session: TunnelSession, from: Endpoint, bytes: Uint8Array): void {
    const out = this.ctx.out;
    if (!session.upBucket.take(nowMs, bytes.length)) {
      out.drops[DropReason.RateLimitedSession]++;
      return;
    }
    const exit = session.exit;
    const decoded = decodeControl(bytes.subarray(HEADER_BYTES));
    if (exit !== undefined) {
      // Entry role: opens (keepalives, retries) and fecStats are the exit's business; it
      // answers through us. A player's open goes as this entry's copy (endpoint.ts,
      // forwardedOpen): never with a `client` the player wrote, and with the exit's cookie.
      exit.sent(nowMs);
      if (exit.state === 'opening') exit.lastOpenMs = nowMs;
      out.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, decoded.ok && decoded.message.type === 'sessionOpen' ? exit.open : bytes);
      return;
    }
    if (!decoded.ok) {
      out.drops[DropReason.BadControl]++;
      return;
    }
    const m = decoded.message;
    if (m.type === 'sessionOpen') {
      // A retransmitted open (its accept was lost): answer again, never larger.
      if (this.ctx.config.tunnel !== undefined) out.sendUnauthenticated(TUNNEL_SOCKET_ID, from, bytes.length, this.packets.acceptPacket(session));
      return;
    }
    if (m.type === 'fecStats') {
      // The downstream direction as the player saw it, for the heartbeat status (each report is one interval's counts, at most 2^32 - 1 each).
      const down = (session.downFecTotals ??= { received: 0, recovered: 0, unrecoverable: 0 });
      down.received += m.received;
      down.recovered += m.recovered;
      down.unrecoverable += m.unrecoverable;
      const controller = session.fecController;
      const sender = session.fecSender;
      if (controller === undefined || sender === undefined) return;
      controller.handleStats(nowMs, fecStatsFromMessage(nowMs, m));
      if (controller.lastDecision !== undefined && controller.scheme !== sender.scheme) {
        sender.setScheme(nowMs, controller.scheme);
        this.drainFecSender(session);
        this.noteFecDeadline(session);
      }
      return;
    }
    out.drops[DropReason.BadControl]++;
  }

  /** A datagram on a session's origin-facing socket: to the client, through the FEC sender when it fits. */
  onReply(nowMs: number, session: TunnelSession, from: Endpoint, bytes: Uint8Array): void {
    const out = this.ctx.out;
    if (from.port !== session.originPort || from.address !== session.originAddress) {
      out.drops[DropReason.UnknownSource]++;
      return;
    }
    if (!admitDown(out, nowMs, this.stats, session, bytes)) return;
    const sender = session.fecSender;
    if (sender !== undefined && bytes.length <= sender.maxPayloadBytes) {
      session.fecController?.handlePacket(nowMs, bytes.length);
      sender.push(nowMs, bytes);
      this.drainFecSender(session);
      this.noteFecDeadline(session);
      return;
    }
    if (bytes.length + HEADER_BYTES > DATAGRAM_BYTES_MAX) {
      out.drops[DropReason.TooLarge]++;
      return;
    }
    const h = this.packets.outHeader;
    h.type = PacketType.Data;
    h.flags = 0;
    h.sessionIdHigh = session.idHigh;
    h.sessionIdLow = session.idLow;
    h.sequence = session.sequenceOut = (session.sequenceOut + 1) >>> 0;
    h.fecGroup = h.fecIndex = h.fecDataCount = h.fecParityCount = 0;
    const prefix = this.slabs.view(HEADER_BYTES);
    writeTunnelHeader(h, prefix);
    out.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, prefix, bytes);
  }

  /** Opens the session's origin-facing socket and its FEC: the session is terminated here. */
  openUpstream(session: TunnelSession, tunnel: TunnelSpec): void {
    if (session.upstreamOpen) return;
    session.upstreamOpen = true;
    if (session.fecMode !== 'off') this.startFec(session, tunnel);
    this.ctx.openSocket(session.id, { kind: 'upstream', flow: undefined, session }, 'udp', this.ctx.config.upstreamBindAddress, 0, 'tunnel');
  }

  private startFec(session: TunnelSession, tunnel: TunnelSpec): void {
    const fec = tunnel.fec;
    const sw = fec.sw ?? SLIDING_WINDOW_PARAMETERS_DEFAULT;
    const adaptive = fec.adaptive !== false;
    // The client's budget for the session, else this relay's; the controller's default without either.
    const budgetMs = session.latencyBudgetMs ?? fec.latencyBudgetMs;
    const controllerInit = { overheadMax: fec.overheadMax ?? FEC_OVERHEAD_MAX_DEFAULT, ...(budgetMs !== undefined ? { latencyBudgetMs: budgetMs } : {}) };
    if (adaptive) session.fecController = new FecController({ ...controllerInit, family: session.fecMode === 'sw' ? 'sw' : 'block' });
    // `sw` starts as the controller says (one repair per packet until the client reports), or as configured when fixed;
    // the block modes start as configured and the controller replaces that once it has evidence.
    const scheme: FecScheme =
      session.fecMode === 'rs'
        ? { mode: 'rs', k: fec.k, r: fec.r, interleave: 1, holdMs: fec.holdMs }
        : session.fecMode === 'dup'
          ? { mode: 'duplicate', copies: fec.copies, spacingMs: fec.spacingMs }
          : session.fecMode === 'sw'
            ? (session.fecController?.scheme ?? { mode: 'sw', ...sw })
            : FEC_OFF;
    session.fecSender = new FecSender({ scheme, maxPayloadBytes: FEC_SHARD_BYTES_MAX - 2 });
    // The receiver takes sliding-window shards whatever the mode negotiated (a client's one sender serves every relay).
    session.fecReceiver = new FecReceiver({ maxPayloadBytes: FEC_SHARD_BYTES_MAX - 2, slidingWindow: slidingWindowReceiverSettings(sw) });
    this.fecSessions.add(session);
  }

  /** The {@link Timer.Fec} deadline passed: runs the sessions whose own FEC deadline has. */
  handleFecTimeout(nowMs: number): void {
    const timers = this.ctx.timers;
    timers.stop(Timer.Fec);
    for (const session of this.fecSessions) {
      // Only sessions whose own deadline has passed do work; the rest cost a
      // comparison, so one busy session's hold timer does not run every other's.
      if (nowMs < session.fecDeadlineMs) {
        timers.lower(Timer.Fec, session.fecDeadlineMs);
        continue;
      }
      session.fecReceiver!.handleTimeout(nowMs);
      this.drainFecReceiver(session);
      session.fecSender!.handleTimeout(nowMs);
      this.drainFecSender(session);
      this.noteFecDeadline(session);
    }
  }

  private drainFecSender(session: TunnelSession): void {
    const sender = session.fecSender!;
    const h = this.packets.outHeader;
    for (let tx = sender.pollTransmit(this.fecScratch); tx !== undefined; tx = sender.pollTransmit(this.fecScratch)) {
      setShardHeader(h, tx, session.idHigh, session.idLow);
      h.flags = tx.kind === 2 ? 0x01 : 0;
      const out = this.slabs.view(HEADER_BYTES + tx.length);
      writeTunnelHeader(h, out);
      out.set(this.fecScratch.subarray(0, tx.length), HEADER_BYTES);
      this.ctx.out.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, out);
    }
  }

  private drainFecReceiver(session: TunnelSession): void {
    const receiver = session.fecReceiver!;
    for (let n = receiver.pollDelivered(this.fecScratch); n >= 0; n = receiver.pollDelivered(this.fecScratch)) {
      const delivered = this.slabs.view(n);
      delivered.set(this.fecScratch.subarray(0, n));
      this.toOrigin(session, delivered);
    }
    // The upstream receiver's interval stats go back to the client: its FEC sender's
    // controller follows the loss of the direction it sends on (the last mile up).
    for (let e = receiver.pollEvent(); e !== undefined; e = receiver.pollEvent()) {
      if (e.stats.wirePackets === 0 && e.stats.received === 0) continue;
      this.ctx.out.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, this.packets.controlPacket(PacketType.Control, session.idHigh, session.idLow, encodeControl(fecStatsMessage(e.stats))));
    }
  }

  private noteFecDeadline(session: TunnelSession): void {
    const a = session.fecSender!.pollTimeout() ?? Number.POSITIVE_INFINITY;
    // The receiver's group expiry needs no wakeup of its own (see FecReceiver.nextOutputMs):
    // about half the relay's timeouts at game rates, each one a scan of the sessions.
    const b = session.fecReceiver!.nextOutputMs() ?? Number.POSITIVE_INFINITY;
    session.fecDeadlineMs = a < b ? a : b;
    this.ctx.timers.lower(Timer.Fec, session.fecDeadlineMs);
  }

  /** Ends `session` (idempotent); with `code`, the client is told why in an authenticated Close. */
  close(nowMs: number, session: TunnelSession, reason: string, code: ErrorCodeValue | undefined): void {
    if (session.closed) return;
    session.closed = true;
    const ctx = this.ctx;
    unlinkChained(this.byLow, session.idLow, session);
    this.byId.delete(session.id);
    if (session.fecReceiver) this.fecRecoveredClosed += session.fecReceiver.totals.recovered;
    if (session.fecSender) {
      this.fecDataBytesClosed += session.fecSender.counters.dataBytes;
      this.fecRedundantBytesClosed += session.fecSender.counters.parityBytes + session.fecSender.counters.duplicateBytes;
    }
    this.fecSessions.delete(session);
    this.forwarded.delete(session);
    session.source.sessions--;
    this.stats.sessionsActive--;
    if (code !== undefined && ctx.tunnelOpen) {
      // Tell the client why, so the SDK can show it (and stop sending); MACed with the
      // session key, so that a spoofed Close cannot end a client's session.
      const reasonBytes = encodeControl({ type: 'sessionReject', reason: code, message: reason });
      const body = new Uint8Array(reasonBytes.length + CLOSE_MAC_BYTES);
      body.set(reasonBytes);
      body.set(relayCloseMac(session.key, session.idHigh, session.idLow, reasonBytes), reasonBytes.length);
      ctx.out.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, this.packets.controlPacket(PacketType.Close, session.idHigh, session.idLow, body));
    }
    if (session.upstreamOpen) ctx.closeSocket(session.id, 'upstream', 'udp');
    ctx.out.event({
      type: 'sessionEnd',
      kind: 'tunnel',
      id: session.idHex,
      rule: 'tunnel',
      client: endpointText(session.clientAddress, session.clientPort),
      origin: endpointText(session.originAddress, session.originPort),
      reason,
      totals: sessionTotals(nowMs, session),
    });
  }

  /** Ends every session (shutdown, tunnel disabled); with `code`, each client is told in an authenticated Close. */
  closeAll(nowMs: number, reason: string, code?: ErrorCodeValue): void {
    for (const session of [...this.byId.values()]) this.close(nowMs, session, reason, code);
  }

  /** A reload's limits: live sessions take the tighter of the new config caps and their ticket's. */
  applyLimits(limits: LimitsSpec): void {
    for (const session of this.byId.values()) {
      const pps = sessionRate(limits.sessionPacketsPerSecond, session.ticketPacketsPerSecond);
      const bps = sessionRate(limits.sessionBytesPerSecond, session.ticketBytesPerSecond);
      session.upBucket.setRates(pps, bps, limits.burstMs);
      session.downBucket.setRates(pps, bps, limits.burstMs);
    }
  }

  /** Closes idle sessions (at most `budget`) and forgets stale path challenges; returns the budget left, or -1 when it ran out. */
  sweep(nowMs: number, budget: number): number {
    const tunnelIdleMs = this.ctx.config.tunnel?.idleTimeoutMs ?? Number.POSITIVE_INFINITY;
    for (const session of this.byId.values()) {
      if (nowMs - session.lastActiveMs >= tunnelIdleMs) {
        if (budget-- === 0) return -1;
        this.close(nowMs, session, 'idle', ErrorCode.SessionIdle);
      } else if (session.challenges !== undefined) this.paths.expireChallenges(nowMs, session);
    }
    return budget;
  }
}
