/**
 * L4 UDP port mapping: a client flow (listener, client address and port) keeps its
 * origin-facing socket, and so its source port at the origin, and its origin for its
 * whole life; a flow whose origin went down or was removed moves at its next packet.
 * The origin-facing socket answers only its origin. Optional PROXY v2 / SPP prefix.
 * The flow record ({@link Flow}) is in l4-state.ts.
 *
 * Unreplied flows (conntrack's term): a flow is made by one datagram from any address,
 * spoofed or not, so until its origin answers it is cheap to make and cheap to lose. It
 * has a short idle timeout (`limits.unrepliedIdleTimeoutMs`), is the first shed when a
 * budget is full (budgets.ts; oldest first), and logs nothing of its own: its
 * `sessionStart` waits for the origin's first answer, and one that ends without an
 * answer is a `flowUnreplied` event, which the driver counts into one aggregated line
 * per interval (a flood of spoofed datagrams must not write two log lines each).
 *
 * A flow shed to make room for a new flow of the same origin group hands its
 * origin-facing socket to it instead of closing it: under a spoofed flood every
 * datagram sheds one flow and opens another, and a kernel socket made, bound, connected
 * and closed for each cost the relay about 58 µs of CPU per datagram (measured at
 * 10,000 packets/s), which starved live players of it. The cost: an answer the origin
 * sends late to the shed flow's datagram (it had sent none before the flow was shed)
 * reaches the new flow's client.
 */
import { encodeProxyV2, encodeSpp } from '../../../proto/src/proxy-protocol.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import { RateBucket } from './bucket.js';
import type { LimitsSpec } from './config-types.js';
import { DATAGRAM_BYTES_MAX, UNREPLIED_IDLE_TIMEOUT_MS_DEFAULT } from './constants.js';
import type { RelayContext } from './context.js';
import { Flow, type Listener, type OriginGroup, type OriginState } from './l4-state.js';
import type { OriginGroups } from './origins.js';
import { DropReason } from './output.js';
import { admitDown, endpointText, sessionTotals, unlinkChained, type RuleStats } from './session-base.js';
import type { SourceTable } from './sources.js';

/** See the module comment. */
export class L4Udp {
  /** Flows by id (= their origin-facing socket id). */
  readonly flows = new Map<number, Flow>();
  /** Flows whose origin has not answered yet, oldest first (a Set keeps insertion order). */
  private readonly unreplied = new Set<Flow>();
  /** The same, by the rule they were opened on (for a full per-rule budget). */
  private readonly unrepliedByRule = new Map<RuleStats, Set<Flow>>();
  /** The origin-facing socket of a flow just shed for a new flow, which takes it over (see the module comment). */
  private spare: { socketId: number; group: OriginGroup; bindAddress: string } | undefined = undefined;

  constructor(
    private readonly ctx: RelayContext,
    private readonly sources: SourceTable,
    private readonly origins: OriginGroups,
  ) {}

  /** A datagram from a client on a UDP listener. */
  onListenerDatagram(nowMs: number, listener: Listener, from: Endpoint, bytes: Uint8Array): void {
    const stats = listener.rule.stats;
    stats.packetsUp++;
    stats.bytesUp += bytes.length;
    let flow = listener.flowsByPort.get(from.port);
    while (flow !== undefined && flow.clientAddress !== from.address) flow = flow.nextInChain;
    if (flow === undefined) {
      flow = this.openFlow(nowMs, listener, from);
      if (flow === undefined) return;
    }
    const drops = this.ctx.out.drops;
    const length = bytes.length;
    if (!flow.upBucket.take(nowMs, length)) {
      drops[DropReason.RateLimitedSession]++;
      return;
    }
    if (!flow.source.bucket.take(nowMs, length)) {
      drops[DropReason.RateLimitedSource]++;
      return;
    }
    const prefix = flow.prefix;
    if (prefix !== undefined && prefix.length + length > DATAGRAM_BYTES_MAX) {
      drops[DropReason.TooLarge]++;
      return;
    }
    flow.lastActiveMs = nowMs;
    flow.packetsUp++;
    flow.bytesUp += length;
    let origin = flow.origin;
    if (!origin.healthy || origin.retired) origin = this.moveFlow(flow);
    this.ctx.out.push(flow.id, origin.address, flow.originPort, prefix, bytes);
  }

  private openFlow(nowMs: number, listener: Listener, from: Endpoint): Flow | undefined {
    const rule = listener.rule;
    const spec = rule.spec;
    const source = this.sources.admit(nowMs, from.address, spec.allow, spec.deny, rule);
    // A socket the admission freed (by shedding a flow) goes to this flow, or is closed.
    const spare = this.spare;
    this.spare = undefined;
    const ctx = this.ctx;
    const reuse = spare !== undefined && spare.group === rule.group && spare.bindAddress === ctx.config.upstreamBindAddress;
    if (spare !== undefined && !reuse) ctx.closeSocket(spare.socketId, 'upstream', 'udp');
    const clientHash = source === undefined ? 0 : this.origins.clientHashFor(spec, from.address, from.port);
    const origin = source === undefined ? undefined : this.origins.pickOrigin(rule.group, clientHash, undefined);
    if (source === undefined || origin === undefined) {
      if (reuse) ctx.closeSocket(spare.socketId, 'upstream', 'udp');
      return undefined;
    }
    const limits = ctx.config.limits;
    let prefix: Uint8Array | undefined;
    const local = { address: spec.listenAddress, port: listener.port };
    if (spec.proxyProtocol === 'v2') prefix = encodeProxyV2('udp', from, local);
    else if (spec.proxyProtocol === 'spp') prefix = encodeSpp(from, local);
    const id = reuse ? spare.socketId : ctx.allocateId();
    const flow = new Flow(
      id,
      source,
      from.address,
      from.port,
      new RateBucket(limits.sessionPacketsPerSecond, limits.sessionBytesPerSecond, limits.burstMs, nowMs),
      new RateBucket(limits.sessionPacketsPerSecond, limits.sessionBytesPerSecond, limits.burstMs, nowMs),
      nowMs,
      listener,
      origin,
      prefix,
      clientHash,
      rule.stats,
    );
    flow.originPort = origin.portFor(listener.portOffset);
    flow.nextInChain = listener.flowsByPort.get(from.port);
    listener.flowsByPort.set(from.port, flow);
    this.flows.set(id, flow);
    this.unreplied.add(flow);
    let ofRule = this.unrepliedByRule.get(rule.stats);
    if (ofRule === undefined) this.unrepliedByRule.set(rule.stats, (ofRule = new Set()));
    ofRule.add(flow);
    source.sessions++;
    rule.stats.sessionsActive++;
    rule.stats.sessionsOpened++;
    if (reuse) ctx.sockets.set(id, { kind: 'upstream', flow, session: undefined });
    else ctx.openSocket(id, { kind: 'upstream', flow, session: undefined }, 'udp', ctx.config.upstreamBindAddress, 0, spec.name);
    return flow;
  }

  /** Unreplied flows open now, over every rule. */
  get unrepliedCount(): number {
    return this.unreplied.size;
  }

  /**
   * Ends the oldest unreplied flow of `rule` (of any rule when undefined); false when
   * there is none. With `forNewFlow`, its socket is kept for the new flow being admitted
   * (which takes it over or closes it: {@link openFlow}).
   */
  shedOldestUnreplied(nowMs: number, rule: RuleStats | undefined, forNewFlow: boolean): boolean {
    const set = rule === undefined ? this.unreplied : this.unrepliedByRule.get(rule);
    const oldest = set?.values().next().value;
    if (oldest === undefined) return false;
    const keep = forNewFlow && this.spare === undefined;
    if (keep) this.spare = { socketId: oldest.id, group: oldest.listener.rule.group, bindAddress: this.ctx.config.upstreamBindAddress };
    this.closeFlow(nowMs, oldest, 'shed', keep);
    return true;
  }

  /** The origin answered `flow` for the first time: it is established, and its start is logged now. */
  private markReplied(flow: Flow): void {
    flow.replied = true;
    this.forgetUnreplied(flow);
    this.ctx.out.event({ type: 'sessionStart', kind: 'udp', id: String(flow.id), rule: flow.stats.name, client: endpointText(flow.clientAddress, flow.clientPort), origin: endpointText(flow.origin.address, flow.originPort) });
  }

  private forgetUnreplied(flow: Flow): void {
    this.unreplied.delete(flow);
    const ofRule = this.unrepliedByRule.get(flow.stats);
    if (ofRule === undefined) return;
    ofRule.delete(flow);
    if (ofRule.size === 0) this.unrepliedByRule.delete(flow.stats);
  }

  private moveFlow(flow: Flow): OriginState {
    const group = flow.listener.rule.group;
    const next = this.origins.pickOrigin(group, flow.clientHash, undefined) ?? flow.origin;
    if (next !== flow.origin) {
      const fromText = endpointText(flow.origin.address, flow.originPort);
      flow.origin = next;
      flow.originPort = next.portFor(flow.listener.portOffset);
      this.ctx.out.event({ type: 'sessionMoved', kind: 'udp', id: String(flow.id), rule: flow.listener.rule.spec.name, what: 'origin', from: fromText, to: endpointText(next.address, flow.originPort) });
    }
    return next;
  }

  /** A datagram on a flow's origin-facing socket. */
  onFlowReply(nowMs: number, flow: Flow, from: Endpoint, bytes: Uint8Array): void {
    // The origin-facing socket answers only its origin: otherwise it would be an open
    // door from anywhere on the Internet to the player.
    if (from.port !== flow.originPort || from.address !== flow.origin.address) {
      this.ctx.out.drops[DropReason.UnknownSource]++;
      return;
    }
    flow.origin.lastReplyMs = nowMs;
    if (!flow.replied) this.markReplied(flow);
    if (!admitDown(this.ctx.out, nowMs, flow.listener.rule.stats, flow, bytes)) return;
    this.ctx.out.push(flow.listener.socketId, flow.clientAddress, flow.clientPort, undefined, bytes);
  }

  /** Ends `flow` (idempotent): its socket closes (unless `keepSocket`: see {@link shedOldestUnreplied}) and its `sessionEnd` is logged. */
  closeFlow(nowMs: number, flow: Flow, reason: string, keepSocket = false): void {
    if (flow.closed) return;
    flow.closed = true;
    const listener = flow.listener;
    unlinkChained(listener.flowsByPort, flow.clientPort, flow);
    this.flows.delete(flow.id);
    flow.source.sessions--;
    flow.stats.sessionsActive--;
    if (!keepSocket) this.ctx.closeSocket(flow.id, 'upstream', 'udp');
    if (!flow.replied) {
      this.forgetUnreplied(flow);
      this.ctx.out.event({ type: 'flowUnreplied', rule: flow.stats.name, client: endpointText(flow.clientAddress, flow.clientPort), origin: endpointText(flow.origin.address, flow.originPort), reason });
      return;
    }
    this.ctx.out.event({
      type: 'sessionEnd',
      kind: 'udp',
      id: String(flow.id),
      rule: flow.stats.name,
      client: endpointText(flow.clientAddress, flow.clientPort),
      origin: endpointText(flow.origin.address, flow.originPort),
      reason,
      totals: sessionTotals(nowMs, flow),
    });
  }

  /** Ends the flows of a listener a reload removed. */
  closeFlowsOf(nowMs: number, listener: Listener, reason: string): void {
    for (const flow of [...this.flows.values()]) if (flow.listener === listener) this.closeFlow(nowMs, flow, reason);
  }

  /** Ends every flow (the core is closing). */
  closeAll(nowMs: number, reason: string): void {
    for (const flow of [...this.flows.values()]) this.closeFlow(nowMs, flow, reason);
  }

  /** A reload's session limits apply to every live flow now. */
  applyLimits(limits: LimitsSpec): void {
    for (const flow of this.flows.values()) {
      flow.upBucket.setRates(limits.sessionPacketsPerSecond, limits.sessionBytesPerSecond, limits.burstMs);
      flow.downBucket.setRates(limits.sessionPacketsPerSecond, limits.sessionBytesPerSecond, limits.burstMs);
    }
  }

  /**
   * Closes idle flows (unreplied ones after the shorter `limits.unrepliedIdleTimeoutMs`),
   * at most `budget`; returns the budget left, or -1 when it ran out with idle flows left.
   */
  sweep(nowMs: number, budget: number): number {
    const unrepliedMs = this.ctx.config.limits.unrepliedIdleTimeoutMs ?? UNREPLIED_IDLE_TIMEOUT_MS_DEFAULT;
    for (const flow of this.flows.values()) {
      const idleMs = flow.listener.rule.spec.idleTimeoutMs;
      if (nowMs - flow.lastActiveMs < (flow.replied ? idleMs : Math.min(idleMs, unrepliedMs))) continue;
      if (budget-- === 0) return -1;
      this.closeFlow(nowMs, flow, 'idle');
    }
    return budget;
  }
}
