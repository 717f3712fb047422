/**
 * The relay's forwarding logic as one sans-IO state machine (quinn-proto / str0m
 * style). It never touches a socket, a timer or a clock: the driver (real sockets in
 * `relay/src/relay.ts`, virtual ones in `relay/src/sim-driver.ts`) feeds it and drains
 * it.
 *
 * Inputs: {@link RelayCore.handleDatagram}, {@link RelayCore.handleTimeout}, the TCP
 * admission calls, health-check results, and app commands ({@link RelayCore.reconfigure},
 * {@link RelayCore.revoke}, {@link RelayCore.drain}, {@link RelayCore.close}).
 *
 * Outputs, in this order after every input (the str0m rule):
 * 1. drain {@link RelayCore.pollEvent} until undefined — it announces the sockets to
 *    open before any datagram is sent on them, and session starts/ends for the log;
 * 2. drain {@link RelayCore.pollTransmit} until undefined — datagrams to send, each as
 *    `prefix` (optional) followed by `bytes`, both views the driver must not modify;
 * 3. arm one timer for {@link RelayCore.pollTimeout}.
 *
 * Sockets are numbered by the core. Kinds: `listener` (L4 UDP/TCP listen ports),
 * `upstream` (one origin-facing UDP socket per L4 flow or tunnel session: a flow keeps
 * its socket, and so its source port at the origin, for its whole life), `tunnel` (the
 * tunnel port) and `health` (UDP health checks).
 *
 * Abuse protection on the hot path: the stateless header check runs before any
 * lookup; per-source and per-session token buckets; replies to unauthenticated
 * packets never exceed the packet's size (checked in one place, `RelayOutput.sendUnauthenticated`);
 * session caps in total and per source; CIDR allow/deny; origins only from config or
 * from a ticket that names one the config allows.
 *
 * ## Exit relays
 * A ticket may name an exit relay (id and tunnel address, under the coordinator's
 * signature). The relay that finds its own id there is the session's **exit**: it holds
 * the one origin-facing socket, the FEC and the downstream numbering. Any other relay
 * is an **entry**: it verifies the ticket as always (so it never forwards for anyone
 * the coordinator did not admit, and only to the address the coordinator signed), opens
 * no origin socket, and passes the session's datagrams to the exit and back unchanged,
 * so FEC and sequence numbers run end to end between the SDK and the exit. The origin
 * sees one source address:port whichever entry the player uses.
 *
 * Authentication between relays: the exit treats an entry exactly as it treats a
 * client's new address — a packet from an unknown address is answered with a path
 * challenge, and the address joins the session only after a response MACed with the
 * session key, which every fleet relay unseals from the ticket with the fleet seal key.
 * We chose this over a fleet-MACed forward header because it adds no secret and no
 * per-packet MAC to the data path, reuses the challenge machinery and its
 * anti-amplification rule (a 40-byte challenge only for a ≥ 40-byte trigger; nothing
 * else for unvalidated senders), and gives an entry no more power than the player
 * itself has: it can reach only this session's origin. The cost is that validated
 * paths are then trusted by source address, as client addresses already are. An exit
 * session keeps up to {@link EXIT_PATHS_MAX} validated paths (current and backup entry,
 * the client if it talks to the exit directly); downstream goes to the path that carried
 * the latest upstream data.
 *
 * If the exit stops answering (see `ExitLinks.handleTimeout` in tunnel/exit-link.ts), the entry opens its
 * own origin socket and serves the session: the one case in which the origin sees a
 * new source address. Without an exit in the ticket nothing here changes.
 *
 * ## Rooms
 * This class is a thin composer (str0m's `Rtc`): it hands each datagram to the
 * sub-machine that owns its socket, runs the {@link Timer} that expired, and drains one
 * output queue. Each sub-machine lives in its own file and is given the narrow
 * {@link RelayContext} once, at construction:
 * - `output.ts` — the output queues, drop counters and the one anti-amplification gate;
 * - `timers.ts` — the named timers ({@link pollTimeout} is their earliest);
 * - `sources.ts` — the per-source front door shared by every mode;
 * - `origins.ts` — origin groups, hashing and health checks;
 * - `l4-rules.ts`, `l4-udp.ts`, `l4-tcp.ts` — L4 port mapping;
 * - `tunnel/endpoint.ts` (junk, probes, opens, tickets, revocation), `tunnel/session.ts`
 *   (forwarding, FEC, Close), `tunnel/paths.ts` (migration and an exit's validated
 *   entries), `tunnel/exit-link.ts` (the entry role).
 *
 * The records they share (rule counters, per-source entries and what flows and sessions
 * have in common in `session-base.ts`; origins, listeners and flows in `l4-state.ts`;
 * sessions, their paths and exit links in `tunnel/state.ts`) are leaves below the
 * context: the context imports no sub-machine, so the import graph has no circle.
 */
import { ErrorCode } from '../../../proto/src/errors.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import { kindBudget, SessionBudgets, SessionKind } from './budgets.js';
import type { RelayCoreConfig } from './config-types.js';
import { SWEEP_INTERVAL_MS } from './constants.js';
import { RelayContext, type RelayCoreComponents } from './context.js';
import { L4Rules } from './l4-rules.js';
import { L4Tcp, type TcpAdmission, type TcpSide } from './l4-tcp.js';
import { L4Udp } from './l4-udp.js';
import { OriginGroups } from './origins.js';
import type { DropReasonValue, RelayEvent, Transmit } from './output.js';
import { DropReason } from './output.js';
import { endpointText, RuleStats } from './session-base.js';
import { SourceTable } from './sources.js';
import { Timer } from './timers.js';
import type { OpenGate } from './tunnel/cookie.js';
import { TunnelEndpoint, type SignalingVerdict } from './tunnel/endpoint.js';
import { ExitLinks } from './tunnel/exit-link.js';
import { TunnelPackets } from './tunnel/packets.js';
import { TunnelPaths } from './tunnel/paths.js';
import { TunnelSessions } from './tunnel/session.js';

import { FleetStatus, type StatusTally } from './fleet-status.js';
import type { RelayStatus } from '../../../proto/src/api/contract.js';
export { DropReason, dropReasonNames, Transmit, type DropReasonValue, type RelayEvent, type SessionTotals, type SocketKind } from './output.js';
export type { RelayCoreComponents } from './context.js';
export { RuleStats } from './session-base.js';
export type { TcpAdmission, TcpSide } from './l4-tcp.js';
export type { SignalingVerdict } from './tunnel/endpoint.js';
export { TRANSPORT_PORT_BASE } from './constants.js';

/** Most idle closes per sweep call. */
const SWEEP_CLOSES_MAX = 32;
/** Delay before an unfinished sweep continues, ms. */
const SWEEP_CONTINUE_MS = 5;

/** The relay state machine. See the module comment for the polling order. */
export class RelayCore {
  /** Packets dropped, indexed by {@link DropReason}. */
  readonly drops: Float64Array;
  /** Counters per rule name (the tunnel is `tunnel`). */
  readonly ruleStats = new Map<string, RuleStats>();

  private readonly ctx: RelayContext;
  private readonly budgets: SessionBudgets;
  private readonly sources: SourceTable;
  private readonly origins: OriginGroups;
  private readonly rules: L4Rules;
  private readonly udp: L4Udp;
  private readonly tcp: L4Tcp;
  private readonly sessions: TunnelSessions;
  private readonly exits: ExitLinks;
  private readonly tunnel: TunnelEndpoint;
  private started = false;
  private readonly status = new FleetStatus();

  /**
   * @param config validated configuration (see relay/src/config.ts)
   * @param components wall clock and randomness
   */
  constructor(config: RelayCoreConfig, components: RelayCoreComponents) {
    const ctx = (this.ctx = new RelayContext(config, components));
    this.drops = ctx.out.drops;
    // Built once: the budgets read the counts and shed through these, with no allocation per call.
    this.budgets = new SessionBudgets(
      () => ctx.config.limits,
      this,
      { unrepliedCount: () => this.udp.unrepliedCount, shedOldestUnreplied: (nowMs, rule, forNewFlow) => this.udp.shedOldestUnreplied(nowMs, rule, forNewFlow) },
    );
    this.sources = new SourceTable(ctx, this.budgets);
    this.origins = new OriginGroups(ctx);
    this.rules = new L4Rules(ctx, this.ruleStats);
    this.udp = new L4Udp(ctx, this.sources, this.origins);
    this.tcp = new L4Tcp(ctx, this.sources, this.origins);
    const packets = new TunnelPackets(ctx);
    const paths = new TunnelPaths(ctx, this.sources, packets);
    this.sessions = new TunnelSessions(ctx, packets, paths);
    this.exits = new ExitLinks(ctx, this.sessions, packets);
    this.tunnel = new TunnelEndpoint(ctx, this.sources, packets, paths, this.sessions, this.exits, this.budgets, this.ruleStats);
  }

  // ------------------------------------------------------------------ getters

  /** Sessions open now: L4 UDP flows, TCP connections and tunnel sessions. */
  get sessionCount(): number {
    return this.udp.flows.size + this.tcp.conns.size + this.sessions.byId.size;
  }
  /** L4 UDP flows open now. */
  get udpFlowCount(): number {
    return this.udp.flows.size;
  }
  /** L4 UDP flows whose origin has not answered yet (the first shed under pressure; see budgets.ts). */
  get unrepliedFlowCount(): number {
    return this.udp.unrepliedCount;
  }
  /** Unreplied L4 UDP flows ended to make room for another session, since start. */
  get shedFlowCount(): number {
    return this.budgets.shed;
  }
  /**
   * Sessions that hold capacity: every session but unreplied L4 UDP flows, which are
   * shed on demand. What the relay reports to the coordinator as its load, so a spoofed
   * flood does not make it look full while it still admits every kind of player.
   */
  get loadSessionCount(): number {
    return this.sessionCount - this.udp.unrepliedCount;
  }
  /**
   * The session count the relay reports to the coordinator, measured against the
   * tunnel's budget (`fleet.capacitySessions` defaults to `limits.tunnelSessionsMax`):
   * the tunnel sessions, or what the sessions that hold capacity
   * ({@link loadSessionCount}) leave of the overall ceiling, whichever is tighter. It
   * reaches the tunnel budget exactly when a new tunnel session would be refused, and a
   * flood of unreplied flows (shed on demand) does not move it.
   */
  get fleetLoadSessionCount(): number {
    const limits = this.ctx.config.limits;
    const tunnelBudget = kindBudget(limits, SessionKind.Tunnel);
    return Math.max(this.sessions.byId.size, this.loadSessionCount - (limits.sessionsMax - tunnelBudget));
  }
  /** TCP connections open now. */
  get tcpConnectionCount(): number {
    return this.tcp.conns.size;
  }
  /** Tunnel sessions open now. */
  get tunnelSessionCount(): number {
    return this.sessions.byId.size;
  }
  /** Per-source entries held (bounded: idle ones are swept). */
  get sourceCount(): number {
    return this.sources.size;
  }
  /** Whether {@link drain} was called. */
  get isDraining(): boolean {
    return this.ctx.draining;
  }
  /** Packets rebuilt by FEC over the relay's life. */
  get fecRecovered(): number {
    return this.sessions.fecRecovered;
  }
  /** Downstream FEC payload bytes sent over the relay's life: the game's data and the redundancy (parity, repairs, copies). */
  get fecSentBytes(): { readonly data: number; readonly redundant: number } {
    return this.sessions.fecSentBytes;
  }
  /** Probes answered. */
  get probesAnswered(): number {
    return this.tunnel.probesAnswered;
  }
  /** Ticket verifications, session-open cookies handed out, invalid cookies and budget drops (tunnel/cookie.ts). */
  get openGate(): Pick<OpenGate, 'verifications' | 'cookieReplies' | 'cookiesInvalid' | 'budgetDrops'> {
    return this.tunnel.openGate;
  }
  /** Bytes received from senders not (yet) authenticated: the anti-amplification ledger's income. */
  get unauthenticatedBytesIn(): number {
    return this.ctx.out.unauthenticatedBytesIn;
  }
  /** Bytes sent to senders not (yet) authenticated; never more than {@link unauthenticatedBytesIn}. */
  get unauthenticatedBytesOut(): number {
    return this.ctx.out.unauthenticatedBytesOut;
  }
  /** TCP reads paused by a byte-rate limit (each {@link tcpData} call that asked for a pause). */
  get tcpThrottles(): number {
    return this.tcp.throttles;
  }
  /** TCP connections refused by a per-source cap (`tcp.connectionsPerSourceMax`, `tcp.silentPerSourceMax`). */
  get tcpSourceCapRefusals(): number {
    return this.tcp.sourceCapRefusals;
  }
  /** TCP connections ended for moving no byte within `tcp.firstByteTimeoutMs` of their origin connect. */
  get tcpFirstByteTimeouts(): number {
    return this.tcp.firstByteTimeouts;
  }
  /** Origins by group with their health, for the health endpoint and metrics. */
  originHealth(): { group: string; origin: string; healthy: boolean }[] {
    return this.origins.originHealth();
  }
  /**
   * The players per origin (a warm backup not counted as a player), FEC figures and L4
   * rules with their origins' health since the previous call, for the heartbeat's
   * `status` (fleet-status.ts): call once per heartbeat.
   * @param otherWorkers the relay's other workers' tallies ({@link fleetStatusTally}), added in (default none)
   */
  fleetStatus(otherWorkers: readonly StatusTally[] = []): RelayStatus {
    return this.status.snapshot(this.sessions.byId.values(), this.ctx.config.rules, this.ruleStats, this.origins.originHealth(), otherWorkers);
  }
  /** This worker's players, FEC counters and L4 flows since the previous call, for the primary worker's {@link fleetStatus} (a relay worker thread's side). */
  fleetStatusTally(): StatusTally {
    return this.status.tally(this.sessions.byId.values(), this.ruleStats);
  }
  /** Where a tunnel session's client is now (`address:port`), or undefined: for tests and tooling. */
  tunnelSessionClient(sessionIdHex: string): string | undefined {
    for (const session of this.sessions.byId.values()) if (session.idHex === sessionIdHex) return endpointText(session.clientAddress, session.clientPort);
    return undefined;
  }
  /** Total drops over every reason. */
  get dropTotal(): number {
    let sum = 0;
    for (const n of this.drops) sum += n;
    return sum;
  }

  // ------------------------------------------------------------------ lifecycle

  /** App command: open the configured sockets. Call once, before any other input. */
  start(nowMs: number): void {
    if (this.started) return;
    this.started = true;
    this.ctx.timers.set(Timer.Sweep, nowMs + SWEEP_INTERVAL_MS);
    this.apply(nowMs, this.ctx.config);
  }

  /**
   * App command (SIGHUP): adopt a new configuration. Listeners whose protocol, address
   * and port are unchanged keep their sockets and flows; rules get their new group,
   * ACLs and timeouts; limits apply to existing buckets at once; origins removed from a
   * group see their flows move at the next packet. Removed listeners end their flows.
   */
  reconfigure(nowMs: number, config: RelayCoreConfig): void {
    this.ctx.config = config;
    this.apply(nowMs, config);
  }

  /** App command (SIGTERM): take no new sessions; live ones continue. */
  drain(): void {
    this.ctx.draining = true;
  }

  /**
   * App command: end every session and close every socket; idempotent. Each tunnel
   * client is told in an authenticated Close (`SLIP_ERR_RELAY_DRAINING`), so that its SDK
   * moves to another relay at once rather than after its silence timeout (a drain that
   * reached its deadline, a stop).
   * @param reason the `sessionEnd` reason; default `shutdown`
   */
  close(nowMs: number, reason = 'shutdown'): void {
    if (this.ctx.closed) return;
    this.udp.closeAll(nowMs, reason);
    this.sessions.closeAll(nowMs, reason, ErrorCode.RelayDraining);
    this.tcp.closeAll(nowMs, reason);
    this.rules.close();
    this.tunnel.close();
    this.origins.close();
    this.ctx.closed = true;
  }

  private apply(nowMs: number, config: RelayCoreConfig): void {
    this.origins.apply(nowMs, config);
    this.rules.apply(config, this.origins, (listener) => this.udp.closeFlowsOf(nowMs, listener, 'rule removed'));
    // Limits apply to every live bucket now, not only to new sessions.
    this.sources.applyLimits(config.limits);
    this.udp.applyLimits(config.limits);
    this.tcp.apply(nowMs, config, this.rules);
    this.origins.applyHealthSocket(config);
    this.tunnel.apply(nowMs, config);
  }

  // ------------------------------------------------------------------ inputs

  /**
   * Input: one datagram received on socket `socketId` from `from`. `bytes` is only
   * read during the call or handed on as a view in a {@link Transmit}: the driver must
   * not reuse its memory (Node's dgram allocates each message anew).
   */
  handleDatagram(nowMs: number, socketId: number, from: Endpoint, bytes: Uint8Array): void {
    const entry = this.ctx.sockets.get(socketId);
    if (entry === undefined || this.ctx.closed) return;
    if (from.port === 0) {
      // Before anything else: nothing may be sent back to port 0 (the send would fail), and no state is made for it.
      this.drops[DropReason.SourcePortZero]++;
      return;
    }
    switch (entry.kind) {
      case 'listener':
        this.udp.onListenerDatagram(nowMs, entry.listener, from, bytes);
        return;
      case 'upstream':
        if (entry.flow !== undefined) this.udp.onFlowReply(nowMs, entry.flow, from, bytes);
        else if (entry.session !== undefined) this.sessions.onReply(nowMs, entry.session, from, bytes);
        return;
      case 'tunnel':
        this.tunnel.onDatagram(nowMs, from, bytes);
        return;
      case 'health':
        this.origins.onHealthReply(nowMs, from);
        return;
    }
  }

  /** Input: a deadline from {@link pollTimeout} has passed. */
  handleTimeout(nowMs: number): void {
    if (this.ctx.closed) return;
    const timers = this.ctx.timers;
    if (timers.isExpired(Timer.Sweep, nowMs)) {
      // A sweep that hit its budget continues shortly instead of stalling live traffic.
      timers.set(Timer.Sweep, nowMs + (this.sweep(nowMs) ? SWEEP_INTERVAL_MS : SWEEP_CONTINUE_MS));
    }
    if (timers.isExpired(Timer.Health, nowMs)) this.origins.handleTimeout(nowMs);
    if (timers.isExpired(Timer.ExitCheck, nowMs)) this.exits.handleTimeout(nowMs);
    if (timers.isExpired(Timer.Fec, nowMs)) this.sessions.handleFecTimeout(nowMs);
  }

  /** Input: the result of a `tcpCheck` event. */
  handleCheckResult(_nowMs: number, checkId: number, ok: boolean): void {
    this.origins.handleCheckResult(checkId, ok);
  }

  /**
   * App command: checks the ticket of a WebRTC signaling request from `address` (the
   * requester's real IP) before any ICE/DTLS work: the refusals and budgets of a
   * session open, without creating state (see `TunnelEndpoint.checkSignaling`).
   */
  checkSignaling(nowMs: number, address: string, ticket: Uint8Array): SignalingVerdict {
    return this.tunnel.checkSignaling(nowMs, address, ticket);
  }

  /**
   * App command: the driver transport at endpoint port `port` (≥ TRANSPORT_PORT_BASE, a
   * WebRTC peer connection) reaches the player at `remote` (its selected ICE candidate
   * pair's remote address); undefined forgets it (the transport closed). A tunnel
   * origin header (`tunnel.proxyProtocol`) says this address, never the synthetic port.
   */
  setTransportRemote(port: number, remote: Endpoint | undefined): void {
    if (remote === undefined) this.ctx.transportRemotes.delete(port);
    else this.ctx.transportRemotes.set(port, { address: remote.address, port: remote.port });
  }

  /** App command: sessions with these ids (16 hex digits) are revoked; live ones end now with `SLIP_ERR_TICKET_REVOKED`. The set replaces the previous one. */
  setRevoked(nowMs: number, sessionIds: ReadonlySet<string>): void {
    this.tunnel.setRevoked(nowMs, sessionIds);
  }

  /**
   * App command: add revocations (a pushed feed) without forgetting earlier ones.
   * @param forgetAfterWallMs when the entries may be dropped (the tickets' expiry, Unix ms); default one day from now
   */
  revoke(nowMs: number, sessionIds: Iterable<string>, forgetAfterWallMs?: number): void {
    this.tunnel.revoke(nowMs, sessionIds, forgetAfterWallMs);
  }

  /**
   * App command: the revocation feed's list is complete as of `wallMs` (Unix ms): the
   * feed answered then, or a persisted list says so. Never moves back. With
   * `tunnel.revocationFeed` set, new sessions are refused (or admitted and counted) while
   * this is older than its `maxAgeMs`.
   */
  setRevocationsCurrent(wallMs: number): void {
    this.tunnel.setRevocationsCurrent(wallMs);
  }

  /**
   * The revocation feed's state: whether one is followed (`tunnel.revocationFeed`), the
   * list's age (ms since the feed's last answer; Infinity before any) and whether it is
   * stale (always false without a feed), with opens refused and admitted while stale since start.
   */
  get revocationFeedState(): { readonly followed: boolean; readonly ageMs: number; readonly stale: boolean; readonly staleRefused: number; readonly staleAdmitted: number } {
    const feed = this.ctx.config.tunnel?.revocationFeed;
    const t = this.tunnel;
    return { followed: feed !== undefined, ageMs: t.revocationsAgeMs(), stale: feed !== undefined && t.revocationsStale(feed.maxAgeMs), staleRefused: t.staleRefused, staleAdmitted: t.staleAdmitted };
  }

  /**
   * App command: the other fleet relays' addresses (IP literals), from the fleet list.
   * Like `tunnel.peerCidrs`, they are exempt from per-source caps: an entry forwarding
   * sessions to this relay as their exit is one address carrying many players. The set
   * replaces the previous one.
   */
  setPeers(addresses: Iterable<string>): void {
    this.sources.setPeers(addresses);
  }

  // ------------------------------------------------------------------ outputs

  /** Output: the next datagram to send (reused object), or undefined. */
  pollTransmit(): Transmit | undefined {
    return this.ctx.out.pollTransmit();
  }

  /** Output: the next event, or undefined. */
  pollEvent(): RelayEvent | undefined {
    return this.ctx.out.pollEvent();
  }

  /** Output: when to call {@link handleTimeout} next (monotonic ms), or undefined when closed. */
  pollTimeout(): number | undefined {
    if (this.ctx.closed || !this.started) return undefined;
    return this.ctx.timers.earliest();
  }

  // ------------------------------------------------------------------ L4 TCP (admission and policy: bytes flow in the driver)

  /**
   * Input: a TCP connection arrived on listener `socketId`. Returns where to connect,
   * or a {@link DropReason} when refused (the driver then resets the connection).
   */
  admitTcp(nowMs: number, socketId: number, from: Endpoint): TcpAdmission | DropReasonValue {
    return this.tcp.admit(nowMs, socketId, from);
  }

  /**
   * Input: `bytes` were read on TCP connection `connId`, from the client (`up`) or from
   * the origin (`down`), and handed on. Charges the connection's and the rule's byte
   * buckets and returns how long the driver should stop reading that side, ms (0: read
   * on). The bytes are never dropped: a stream is slowed, not cut. Also keeps the
   * connection from going idle.
   */
  tcpData(nowMs: number, connId: number, direction: 'up' | 'down', bytes: number): number {
    return this.tcp.data(nowMs, connId, direction, bytes);
  }

  /** Input: the origin connection of `connId` is up (counts as a passing health signal; its idle timeout starts). */
  tcpConnected(nowMs: number, connId: number): void {
    this.tcp.connected(nowMs, connId);
  }

  /**
   * Input: connecting to the origin failed. The origin is charged a failed check, and
   * the next origin by the hash (not yet tried) is returned, or undefined to give up
   * (the connection is then over: its `sessionEnd` says `no origin reachable`).
   */
  tcpConnectFailed(nowMs: number, connId: number): TcpAdmission | undefined {
    return this.tcp.connectFailed(nowMs, connId);
  }

  /**
   * Input: one side of connected TCP connection `connId` sent its FIN (the driver passes
   * it on; the other way keeps flowing). Returns the reason to end the connection with
   * once both sides have sent theirs, else undefined.
   */
  tcpSideClosed(_nowMs: number, connId: number, side: TcpSide): string | undefined {
    return this.tcp.sideClosed(connId, side);
  }

  /**
   * Input: the TCP connection ended, however it ended (both sides closed, a reset or an
   * error, idle, shutdown): it leaves the table with a `sessionEnd` carrying the bytes
   * {@link tcpData} counted (the rule's byte counters already hold them).
   */
  tcpClosed(nowMs: number, connId: number, reason: string): void {
    this.tcp.closed(nowMs, connId, reason);
  }

  // ------------------------------------------------------------------ housekeeping

  /**
   * Closes idle flows and sessions, at most {@link SWEEP_CLOSES_MAX} per call (each
   * close logs a line and closes a socket: thousands expiring together would stall
   * forwarding for milliseconds), and asks for idle TCP connections to end. Returns
   * true when the sweep is complete.
   */
  private sweep(nowMs: number): boolean {
    let budget = this.udp.sweep(nowMs, SWEEP_CLOSES_MAX);
    if (budget < 0) return false;
    budget = this.sessions.sweep(nowMs, budget);
    if (budget < 0) return false;
    this.tcp.sweep(nowMs);
    this.tunnel.sweepRevocations();
    this.sources.sweep(nowMs);
    return true;
  }
}
