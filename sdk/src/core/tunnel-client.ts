/**
 * The client side of a tunnel session as one sans-IO state machine: probing,
 * selection (through {@link RelaySelector}), session opens on the current relay and a
 * warm backup, FEC both ways, liveness and failover, upstream through the backup while
 * the current relay is silent, path challenges (NAT rebinding), keepalives and path
 * reports. It never touches a socket, a timer or a clock.
 *
 * Inputs: {@link TunnelClient.setCandidates}, {@link TunnelClient.handleDatagram},
 * {@link TunnelClient.handleTimeout}; app commands {@link TunnelClient.send},
 * {@link TunnelClient.close}. Outputs, drained after every input (the str0m rule):
 * {@link TunnelClient.pollEvent} until undefined, {@link TunnelClient.pollTransmit}
 * until undefined, then one timer at {@link TunnelClient.pollTimeout}. Every datagram
 * goes out of one local socket. A client given an asynchronous HMAC (WebCrypto, in a
 * browser) also drains {@link TunnelClient.pollMacJob} and hands each MAC back with
 * {@link TunnelClient.handleMacResult} (see `tunnel/session-macs.ts`); with Node's
 * synchronous one there are never any.
 *
 * ## One session, several relays
 * The ticket is not bound to a relay, so the same session id is opened on the current
 * relay and on the backup; each relay keeps its own origin-facing socket for it.
 * Upstream, one FEC sender numbers every shard, whichever relay carries it, so the
 * sequence stays continuous across a failover. Each shard goes through one relay, and
 * a copy or repair only to the relay that carried every source it covers: each relay
 * forwards to the origin from its own socket, so a datagram that two relays deliver
 * (or one delivers and the other rebuilds) reaches an unmodified origin twice.
 * Downstream, each relay numbers its own packets, so each has its own FEC receiver.
 *
 * ## Liveness and failover
 * The current relay is probed every {@link TunnelClientInit.probeCurrentIntervalMs};
 * any packet from it (probe reply, data, accept) proves it alive. Silence for
 * `max(150 ms, 1.5 probe periods + SRTT + 4 RTTVAR)` makes it suspect: the backup is
 * probed at once, and once it has answered since the silence began, new upstream
 * shards go to the backup (whose session is already open) instead, so traffic flows
 * again within about one backup RTT; when the current relay answers again, they go
 * back to it (a tentative failover). Silence for `max(450 ms, 2 × suspect)`
 * judges it dead: {@link RelaySelector.markSilent} promotes the backup, which needs no
 * handshake, if it has answered since, and a new backup is opened; if nothing has (the
 * client's own link went dark), the relay stays current with its session, every relay
 * is re-probed from 250 ms on, and traffic resumes with the link. Downstream loss does
 * not send upstream through the backup: the player's last mile is one channel, so a
 * copy to the backup dies in the same burst as the original; loss is FEC's job.
 *
 * ## FEC
 * The relay chooses the downstream mode (its `tunnel.fec` config) from the modes the
 * client offers. Each side's receiver sends its interval stats to the other side in a
 * `fecStats` control message, and each side's sender runs an adaptive
 * {@link FecController} fed by the far side's report, so protection follows the loss
 * of the direction it protects (upload and download last miles often differ). Until
 * the relay's first report the client protects with one spaced copy.
 *
 * ## Keepalive
 * A session idle for `C.KEEPALIVE_MS` gets its `sessionOpen` again rather than a
 * bare keepalive: any packet from the session's address refreshes the relay's idle timer
 * and the NAT mapping, and a repeated open also re-creates the session when the relay
 * restarted or swept it (a bare keepalive would only learn that from a Close, one round
 * trip later), and it is large enough (≥ 40 bytes) to earn a path challenge after a NAT
 * rebinding. The relay charges it to the session, not to the per-source unauthenticated
 * bucket, so many players behind one CGNAT address do not starve each other. Cost: one
 * ~250-byte datagram per 10 s of silence; `fecStats` reports also count as traffic.
 *
 * ## Rooms
 * This class is a thin composer (as quinn-proto's `Connection`): it parses each
 * datagram once and hands it to the room for its kind, runs every room's timers in a
 * fixed order, applies the selector's decisions, and returns the earliest deadline. The
 * rooms, in `tunnel/`, share one {@link TunnelContext} built in the constructor:
 * `relay-link.ts` (per-relay session state: open with the ticket, accept, refusal,
 * Close, reopen, keepalive, linger), `liveness.ts` (suspect and dead silence, the
 * session check after an outage, duplication holds, path challenges), `data-path.ts`
 * (upstream and downstream datagrams, FEC sender and receivers), `probing.ts` (probe
 * schedule, RTT and loss samples for the selector, reports) and `timer-table.ts` (the
 * one-of-a-kind deadlines, keyed by purpose). The per-relay record the context's relay
 * table holds is the leaf `relay-link-state.ts`: the context imports no room, so the
 * import graph has no circle.
 */
import { decodeControl } from '../../../proto/src/control.js';
import { ErrorCode } from '../../../proto/src/errors.js';
import { HEADER_BYTES, PacketType, parseHeader, sessionIdFromHex } from '../../../proto/src/header.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import { fecStatsFromMessage } from '../../../proto/src/wire-frames.js';
import { LINGER_MS } from './constants.js';
import { RelaySelector, type SelectionEvent } from './relay-selector.js';
import { TunnelContext } from './tunnel/context.js';
import { DataPath } from './tunnel/data-path.js';
import { Liveness } from './tunnel/liveness.js';
import { Probing } from './tunnel/probing.js';
import { RelayLinks } from './tunnel/relay-link.js';
import type { RelayLink } from './tunnel/relay-link-state.js';
import { ClientTimer } from './tunnel/timer-table.js';
import type { ClientTransmit, MacJob, TunnelCandidate, TunnelClientEvent, TunnelClientInit, TunnelStats } from './tunnel/types.js';

export type { ClientTransmit, MacJob, PathInfo, PathReport, TunnelCandidate, TunnelClientEvent, TunnelClientInit, TunnelStats } from './tunnel/types.js';

/** The client state machine; see the module comment. */
export class TunnelClient {
  private readonly ctx: TunnelContext;
  private readonly links: RelayLinks;
  private readonly liveness: Liveness;
  private readonly data: DataPath;
  private readonly probing: Probing;
  /**
   * Relays by tunnel and probe address: the index a datagram is demultiplexed by. Kept
   * up by the relay link room, which is lent it; held here under the name the spec
   * "relays that leave the candidate list leave no endpoint entries behind" reads.
   */
  private readonly byEndpoint = new Map<string, RelayLink>();
  private closed = false;
  /** When the first candidates came, ms (the connect timeout counts from then). */
  private startedMs: number | undefined = undefined;
  private switchCount = 0;
  private failoverCount = 0;
  /** Time of the latest input, ms. */
  private lastNowMs = Number.NEGATIVE_INFINITY;

  constructor(init: TunnelClientInit) {
    const id = sessionIdFromHex(init.sessionId);
    if (id === undefined) throw new RangeError(`TunnelClient: sessionId '${init.sessionId}' is not 16 hex digits`);
    if (init.sessionKey.length !== 32) throw new RangeError(`TunnelClient: sessionKey must be 32 bytes, got ${init.sessionKey.length}`);
    this.ctx = new TunnelContext(init, id[0], id[1], new RelaySelector(init.selector));
    this.links = new RelayLinks(this.ctx, this.byEndpoint);
    this.liveness = new Liveness(this.ctx, this.links);
    this.data = new DataPath(this.ctx, this.liveness);
    this.probing = new Probing(this.ctx, this.links, this.liveness);
  }

  // ------------------------------------------------------------------ getters

  /** The relay carrying traffic now. */
  get current(): string | undefined {
    return this.ctx.currentId;
  }
  /** The warm backup. */
  get backup(): string | undefined {
    return this.ctx.backupId;
  }
  /** Whether a session has opened (the connection is usable). */
  get isOpen(): boolean {
    return this.ctx.opened && !this.ctx.failed && !this.closed;
  }
  /** The selector (for its figures). */
  get relaySelector(): RelaySelector {
    return this.ctx.selector;
  }

  /** A snapshot of the counters. */
  stats(): TunnelStats {
    const ctx = this.ctx;
    const data = this.data;
    const current = ctx.currentId === undefined ? undefined : ctx.relays.get(ctx.currentId);
    const judged = data.delivered + data.unrecoverable;
    return {
      relayId: ctx.currentId,
      backupId: ctx.backupId,
      rttMs: ctx.currentId === undefined ? undefined : ctx.selector.figures(ctx.currentId)?.rttMs,
      fecMode: current?.sessionState === 'open' ? current.fecMode : undefined,
      upstreamScheme: data.upstreamScheme,
      upstreamFecBytes: data.upstreamFecBytes,
      packetsSent: data.packetsSent,
      packetsReceived: data.packetsReceived,
      wirePackets: data.wirePackets,
      wireLost: data.wireLost,
      lossBeforeFec: data.wirePackets === 0 ? 0 : data.wireLost / data.wirePackets,
      lossAfterFec: judged === 0 ? 0 : data.unrecoverable / judged,
      recovered: data.recovered,
      switches: this.switchCount,
      failovers: this.failoverCount,
      viaBackup: this.liveness.upstreamBackup(this.lastNowMs) !== undefined,
      pathChallenges: this.liveness.pathChallenges,
    };
  }

  // ------------------------------------------------------------------ inputs

  /**
   * Input: the coordinator's candidates, best first. Only the first
   * `C.PROBED_CANDIDATES_MAX` are probed. Relays in use are kept even when the
   * list drops them (a coordinator outage or a stale list must not end a session).
   */
  setCandidates(nowMs: number, candidates: readonly TunnelCandidate[]): void {
    const ctx = this.ctx;
    if (this.closed || ctx.failed) return;
    if (this.startedMs === undefined) {
      this.startedMs = nowMs;
      ctx.timers.set(ClientTimer.ConnectGiveUp, nowMs + ctx.connectTimeoutMs);
    }
    this.links.mergeCandidates(nowMs, candidates);
    ctx.selector.setCandidates(
      nowMs,
      [...ctx.relays.values()].map((l) => ({ id: l.id, estimateMs: l.estimateMs, restMs: l.restMs })),
    );
    if (!ctx.timers.isArmed(ClientTimer.Report)) ctx.timers.set(ClientTimer.Report, nowMs + ctx.reportIntervalMs);
    this.afterInput(nowMs);
  }

  /** Input: one datagram received on the client's socket. `bytes` is read during the call only. */
  handleDatagram(nowMs: number, from: Endpoint, bytes: Uint8Array): void {
    const ctx = this.ctx;
    if (this.closed || ctx.failed) return;
    const h = ctx.header;
    if (parseHeader(bytes, h) !== 0) return;
    if (h.sessionIdHigh !== ctx.sessionIdHigh || h.sessionIdLow !== ctx.sessionIdLow) return;
    if (h.type === PacketType.ProbeReply) {
      this.probing.onProbeReply(nowMs, from, bytes);
      this.afterInput(nowMs);
      return;
    }
    const link = this.links.linkAt(from);
    if (link === undefined) return;
    this.liveness.heardFrom(nowMs, link);
    switch (h.type) {
      case PacketType.Data:
      case PacketType.Parity:
        this.data.onData(nowMs, link, bytes);
        break;
      case PacketType.Control:
        this.onControl(nowMs, link, bytes.subarray(HEADER_BYTES));
        break;
      case PacketType.PathChallenge:
        this.liveness.answerPathChallenge(link, bytes.subarray(HEADER_BYTES));
        break;
      case PacketType.Close:
        this.links.onRelayClose(nowMs, link, bytes.subarray(HEADER_BYTES));
        break;
      default:
        break;
    }
    this.afterInput(nowMs);
  }

  /** Input: the deadline from {@link pollTimeout} has passed (early calls are harmless). */
  handleTimeout(nowMs: number): void {
    const ctx = this.ctx;
    if (this.closed || ctx.failed) return;
    this.probing.expireProbes(nowMs);
    this.probing.sendProbes(nowMs);
    this.links.runOpens(nowMs);
    this.liveness.checkLiveness(nowMs);
    this.liveness.checkSessionAfterOutage(nowMs);
    for (const link of ctx.relays.values()) {
      this.data.advanceReceiver(nowMs, link);
      this.links.expireLinger(nowMs, link);
      this.links.keepAlive(nowMs, link);
    }
    this.data.advanceSender(nowMs);
    if (ctx.timers.isExpired(ClientTimer.Report, nowMs)) {
      ctx.timers.set(ClientTimer.Report, nowMs + ctx.reportIntervalMs);
      this.probing.emitReport();
    }
    if (ctx.timers.isExpired(ClientTimer.ConnectGiveUp, nowMs)) {
      const tried = [...ctx.relays.keys()].join(', ') || 'none';
      this.links.fail(ErrorCode.NoRelay, `no relay opened a session within ${ctx.connectTimeoutMs} ms (candidates probed: ${tried}); check that the relays' tunnel ports are reachable over UDP`);
      return;
    }
    ctx.selector.handleTimeout(nowMs);
    this.afterInput(nowMs);
  }

  // ------------------------------------------------------------------ app commands

  /**
   * App command: send one datagram to the origin. Before the first session opens,
   * up to `C.QUEUE_BEFORE_OPEN_MAX` are queued (older ones dropped). Returns
   * false when it was dropped. Datagrams longer than `C.TUNNEL_PAYLOAD_BYTES_MAX`
   * go uncoded.
   */
  send(nowMs: number, payload: Uint8Array): boolean {
    if (this.closed || this.ctx.failed) return false;
    if (this.ctx.currentLink() === undefined) return this.data.enqueue(payload);
    this.data.packetsSent++;
    this.data.sendData(nowMs, payload);
    return true;
  }

  /**
   * App command: the driver's socket changed (a new local port or network). Sends a
   * keepalive to the current and backup relays at once, so their path challenges —
   * and with them the sessions' move to the new address — do not wait for traffic.
   */
  rebound(nowMs: number): void {
    const ctx = this.ctx;
    if (this.closed || ctx.failed) return;
    for (const id of [ctx.currentId, ctx.backupId]) {
      const link = id === undefined ? undefined : ctx.relays.get(id);
      if (link?.sessionState === 'open') this.links.sendOpen(nowMs, link);
    }
    this.afterInput(nowMs);
  }

  /**
   * Input: the MAC of job `id` from {@link pollMacJob} (HMAC-SHA256 of its `data` under
   * its `key`, 32 bytes), for a client given an asynchronous HMAC. Unknown ids are
   * ignored. After {@link close}, only a Close's MAC still counts (the Closes waiting for
   * it go out).
   */
  handleMacResult(nowMs: number, id: number, mac: Uint8Array): void {
    const ctx = this.ctx;
    const done = ctx.macs.complete(id, mac);
    if (done === undefined || this.closed || ctx.failed) return;
    const link = ctx.relays.get(done.relayId);
    if (link !== undefined) {
      if (done.kind === 'path') this.liveness.sendPathResponse(link, done.nonce, done.mac);
      else this.links.onRelayCloseChecked(nowMs, link, done.body, done.authentic);
    }
    this.afterInput(nowMs);
  }

  /** App command: end every session (authenticated Close to each relay); idempotent. */
  close(_nowMs: number): void {
    if (this.closed) return;
    this.links.closeAll();
    this.closed = true;
  }

  // ------------------------------------------------------------------ outputs

  /** Output: the next event, or undefined. */
  pollEvent(): TunnelClientEvent | undefined {
    return this.ctx.events.shift();
  }

  /**
   * Output: the next MAC the client needs computed, or undefined; only a client given an
   * asynchronous HMAC (WebCrypto) has any. Drain it with the other outputs; compute each
   * and hand it back with {@link handleMacResult}.
   */
  pollMacJob(): MacJob | undefined {
    return this.ctx.macs.pollJob();
  }

  /** Output: the next datagram to send, or undefined. */
  pollTransmit(): ClientTransmit | undefined {
    return this.ctx.transmits.shift();
  }

  /** Output: when to call {@link handleTimeout} next (ms), or undefined for never. */
  pollTimeout(): number | undefined {
    const ctx = this.ctx;
    if (this.closed || ctx.failed) return undefined;
    // Only future deadlines: a state that is already due (a suspect relay) was acted on
    // by the input that brought it, and must not spin the driver's timer.
    const after = this.lastNowMs;
    let at = ctx.timers.earliest(after);
    for (const link of ctx.relays.values()) {
      at = this.probing.earliestDeadline(at, link, after);
      at = this.links.earliestDeadline(at, link, after);
    }
    at = this.probing.earliestTimeout(at, after);
    at = this.data.earliestDeadline(at, after);
    // Last: it skips computing silence deadlines that cannot beat what is already due.
    at = this.liveness.earliestDeadline(at, after);
    return Number.isFinite(at) ? at : undefined;
  }

  // ------------------------------------------------------------------ composition

  /** A control message from `link`, handed to the room for its kind. */
  private onControl(nowMs: number, link: RelayLink, body: Uint8Array): void {
    const decoded = decodeControl(body);
    if (!decoded.ok) return;
    const m = decoded.message;
    if (m.type === 'fecStats') {
      if (link.sessionState === 'open') this.data.onFecStats(nowMs, link, fecStatsFromMessage(nowMs, m));
      return;
    }
    if (m.type === 'sessionAccept') {
      if (!this.links.onAccept(nowMs, link, m)) return;
      if (m.fecMode !== 'off') this.data.ensureSender(m.fecMode);
      if (link.id === this.ctx.currentId) this.onCurrentReady(nowMs, link);
      return;
    }
    if (m.type === 'sessionReject') this.links.onRefused(nowMs, link, m.reason, m.message);
    else if (m.type === 'sessionRetry') this.links.onRetry(nowMs, link, m.cookie);
  }

  private onCurrentReady(nowMs: number, link: RelayLink): void {
    const ctx = this.ctx;
    if (!ctx.opened) {
      ctx.opened = true;
      ctx.timers.stop(ClientTimer.ConnectGiveUp);
      ctx.events.push({ type: 'open', relayId: link.id, fecMode: link.fecMode });
    }
    link.lastRxMs = Math.max(link.lastRxMs, nowMs);
    this.data.flushQueue(nowMs);
  }

  // ------------------------------------------------------------------ selection

  private applySelection(nowMs: number, e: SelectionEvent): void {
    const ctx = this.ctx;
    const previous = ctx.currentId;
    if (e.reason === 'relay-back' && e.currentId !== undefined) this.liveness.onRelayBack(nowMs, e.currentId);
    ctx.backupId = ctx.warmBackup ? e.backupId : undefined;
    if (e.currentId !== previous) {
      ctx.currentId = e.currentId;
      if (previous !== undefined && e.currentId !== undefined) {
        this.switchCount++;
        if (e.reason === 'failover') this.failoverCount++;
      }
      const figures = e.currentId === undefined ? undefined : ctx.selector.figures(e.currentId);
      const link = e.currentId === undefined ? undefined : ctx.relays.get(e.currentId);
      if (link !== undefined) {
        this.links.ensureSession(nowMs, link);
        link.nextProbeMs = Math.min(link.nextProbeMs, nowMs);
        // A promoted backup was heard from recently; count from now so it gets a full liveness window.
        link.lastRxMs = Math.max(link.lastRxMs, nowMs);
        if (link.sessionState === 'open') this.onCurrentReady(nowMs, link);
      }
      ctx.events.push({
        type: 'path',
        info: { relayId: e.currentId, backupId: ctx.backupId, previousId: previous, reason: e.reason, rttMs: figures?.rttMs, lossFraction: figures?.loss ?? 0, fecMode: link?.sessionState === 'open' ? link.fecMode : undefined, atMs: nowMs },
      });
    }
    if (ctx.backupId !== undefined) {
      const b = ctx.relays.get(ctx.backupId);
      if (b !== undefined) {
        if (b.sessionState !== 'open') b.lastRxMs = Math.max(b.lastRxMs, nowMs);
        this.links.ensureSession(nowMs, b);
        // It was probed at the slow rate until now.
        b.nextProbeMs = Math.min(b.nextProbeMs, nowMs + ctx.probeBackupMs);
      }
    }
    for (const link of ctx.relays.values()) {
      // A relay judged dead (or every relay, while none answers) is re-probed sooner from now on.
      this.probing.hurry(nowMs, link);
      // It may also have lost our session (a crash and restart, where a keepalive would
      // re-create it under a fresh downstream numbering our receiver would reject): drop
      // ours now, so that choosing it again opens a fresh one. It drains for LINGER_MS,
      // and only then gets our Close: what it still sends (the origin's answers to what it
      // carried, held up in a stalled queue, say) is delivered — UDP would deliver it
      // late, and a game prefers late data to none.
      if (link.id !== ctx.currentId && (link.sessionState === 'open' || link.sessionState === 'opening') && ctx.selector.isUnreachable(link.id)) this.links.closeSession(link, nowMs + LINGER_MS);
    }
    this.links.lingerUnused(nowMs);
  }

  /** After every input: apply the selector's decisions and send what became due. */
  private afterInput(nowMs: number): void {
    const ctx = this.ctx;
    this.lastNowMs = Math.max(this.lastNowMs, nowMs);
    if (ctx.failed || this.closed) return;
    for (let e = ctx.selector.pollEvent(); e !== undefined; e = ctx.selector.pollEvent()) this.applySelection(nowMs, e);
    ctx.timers.set(ClientTimer.Selector, ctx.selector.pollTimeout());
    this.links.runOpens(nowMs);
    this.probing.sendProbes(nowMs);
  }
}
