/**
 * Origin groups and their health: which origins each group has (state kept by label
 * across reloads), rendezvous hashing of a client onto a healthy origin, and the health
 * checks (UDP probes on the one health socket, TCP connects run by the driver) that
 * move an origin down after `failuresToDown` misses and up after `successesToUp` answers.
 * Traffic an origin answers counts as an answer to a pending check.
 */
import type { Endpoint } from '../../../proto/src/transport.js';
import { hashString, rendezvousScore } from './addr.js';
import type { HealthCheckSpec, OriginGroupSpec, RelayCoreConfig, RuleSpec } from './config-types.js';
import { HEALTH_SOCKET_ID, type RelayContext } from './context.js';
import { endpointText } from './session-base.js';
import { Timer } from './timers.js';

/** One origin of a group, with its health. */
export class OriginState {
  healthy = true;
  failures = 0;
  successes = 0;
  lastReplyMs = Number.NEGATIVE_INFINITY;
  checkPending = false;
  checkSentMs = 0;
  checkId = 0;
  retired = false;
  readonly hash: number;
  readonly label: string;
  constructor(
    readonly address: string,
    readonly port: number,
    readonly portEnd: number,
  ) {
    this.label = endpointText(address, port);
    this.hash = hashString(this.label);
  }
  /** The port to use for a listener `offset` ports into its range. */
  portFor(offset: number): number {
    return this.portEnd > this.port ? this.port + offset : this.port;
  }
}

/** A named origin group and its check schedule. */
export class OriginGroup {
  nextCheckMs = 0;
  checkDeadlineMs = Number.POSITIVE_INFINITY;
  constructor(
    readonly name: string,
    public origins: OriginState[],
    public health: HealthCheckSpec,
  ) {}
}

/** See the module comment. */
export class OriginGroups {
  private readonly groups = new Map<string, OriginGroup>();
  private readonly originsByLabel = new Map<string, OriginState[]>();
  private readonly tcpChecks = new Map<number, OriginState>();
  private healthOpen = false;

  constructor(private readonly ctx: RelayContext) {}

  /** The group named `name` (rules name only configured groups). */
  group(name: string): OriginGroup {
    return this.groups.get(name)!;
  }

  /** Origins by group with their health, for the health endpoint and metrics. */
  originHealth(): { group: string; origin: string; healthy: boolean }[] {
    const out: { group: string; origin: string; healthy: boolean }[] = [];
    for (const group of this.groups.values()) for (const origin of group.origins) out.push({ group: group.name, origin: origin.label, healthy: origin.healthy });
    return out;
  }

  /** Adopts `config`'s groups: each origin keeps its state (health, flows pointing at it) by label; removed ones are retired. */
  apply(nowMs: number, config: RelayCoreConfig): void {
    const previousByLabel = new Map<string, OriginState>();
    for (const group of this.groups.values()) for (const origin of group.origins) previousByLabel.set(`${group.name}/${origin.label}/${origin.portEnd}`, origin);
    const kept = new Set<OriginState>();
    this.groups.clear();
    this.originsByLabel.clear();
    for (const spec of config.groups) this.groups.set(spec.name, this.buildGroup(nowMs, spec, previousByLabel, kept));
    for (const origin of previousByLabel.values()) if (!kept.has(origin)) origin.retired = true;
    this.armTimer();
  }

  /** Opens or closes the health socket: one for every UDP check of `config`. */
  applyHealthSocket(config: RelayCoreConfig): void {
    const needHealth = config.groups.some((g) => g.healthCheck.mode === 'udp');
    if (needHealth && !this.healthOpen) {
      this.healthOpen = true;
      this.ctx.openSocket(HEALTH_SOCKET_ID, { kind: 'health' }, 'udp', config.upstreamBindAddress, 0, '');
    } else if (!needHealth && this.healthOpen) {
      this.healthOpen = false;
      this.ctx.closeSocket(HEALTH_SOCKET_ID, 'health', 'udp');
    }
  }

  /** Closes the health socket (the core is closing). */
  close(): void {
    if (this.healthOpen) this.ctx.closeSocket(HEALTH_SOCKET_ID, 'health', 'udp');
    this.healthOpen = false;
  }

  private buildGroup(nowMs: number, spec: OriginGroupSpec, previous: Map<string, OriginState>, kept: Set<OriginState>): OriginGroup {
    const origins = spec.origins.map((o) => {
      const label = endpointText(o.address, o.port);
      const old = previous.get(`${spec.name}/${label}/${o.portEnd}`);
      const origin = old ?? new OriginState(o.address, o.port, o.portEnd);
      if (old) kept.add(old);
      if (spec.healthCheck.mode === 'none' && !origin.healthy) origin.healthy = true;
      let list = this.originsByLabel.get(origin.label);
      if (!list) this.originsByLabel.set(origin.label, (list = []));
      list.push(origin);
      return origin;
    });
    const group = new OriginGroup(spec.name, origins, spec.healthCheck);
    group.nextCheckMs = nowMs;
    return group;
  }

  /** The origin of `group` for a client (rendezvous hashing), healthy if any is; `exclude` skips origins already tried. */
  pickOrigin(group: OriginGroup, clientHash: number, exclude: readonly OriginState[] | undefined): OriginState | undefined {
    let best: OriginState | undefined;
    let bestScore = -1;
    let fallback: OriginState | undefined;
    let fallbackScore = -1;
    for (const origin of group.origins) {
      if (exclude !== undefined && exclude.includes(origin)) continue;
      const score = rendezvousScore(clientHash, origin.hash);
      if (origin.healthy && score > bestScore) {
        best = origin;
        bestScore = score;
      }
      if (score > fallbackScore) {
        fallback = origin;
        fallbackScore = score;
      }
    }
    // With every origin down, keep forwarding by the hash: sending to a possibly-dead
    // origin beats dropping everything while health checks may be wrong.
    return best ?? fallback;
  }

  /** The hash a rule places a client by (`hashKey`: its address, or address and port). */
  clientHashFor(rule: RuleSpec, address: string, port: number): number {
    const h = hashString(address);
    return rule.hashKey === 'ip' ? h : rendezvousScore(h, port * 2654435761);
  }

  // ------------------------------------------------------------------ health

  /** Runs the checks that are due (the {@link Timer.Health} deadline passed) and re-arms it. */
  handleTimeout(nowMs: number): void {
    for (const group of this.groups.values()) this.runHealth(nowMs, group);
    this.armTimer();
  }

  /** The result of a `tcpCheck` event. */
  handleCheckResult(checkId: number, ok: boolean): void {
    const origin = this.tcpChecks.get(checkId);
    if (!origin) return;
    this.tcpChecks.delete(checkId);
    if (!origin.checkPending || origin.checkId !== checkId) return;
    origin.checkPending = false;
    const group = this.groupOf(origin);
    if (group) this.recordCheck(group, origin, ok || origin.lastReplyMs >= origin.checkSentMs);
  }

  /** A datagram on the health socket: an answer from every origin at that address. */
  onHealthReply(nowMs: number, from: Endpoint): void {
    const list = this.originsByLabel.get(endpointText(from.address, from.port));
    if (!list) return;
    for (const origin of list) {
      origin.lastReplyMs = nowMs;
      if (!origin.checkPending) continue;
      origin.checkPending = false;
      const group = this.groupOf(origin);
      if (group) this.recordCheck(group, origin, true);
    }
  }

  /** One check of `origin` passed or failed (a failed TCP connect of a live connection counts too). */
  recordCheck(group: OriginGroup, origin: OriginState, ok: boolean): void {
    if (ok) {
      origin.failures = 0;
      origin.successes++;
      if (!origin.healthy && origin.successes >= group.health.successesToUp) {
        origin.healthy = true;
        this.ctx.out.event({ type: 'originHealth', group: group.name, origin: origin.label, healthy: true });
      }
    } else {
      origin.successes = 0;
      origin.failures++;
      if (origin.healthy && origin.failures >= group.health.failuresToDown) {
        origin.healthy = false;
        this.ctx.out.event({ type: 'originHealth', group: group.name, origin: origin.label, healthy: false });
      }
    }
  }

  private groupOf(origin: OriginState): OriginGroup | undefined {
    for (const group of this.groups.values()) if (group.origins.includes(origin)) return group;
    return undefined;
  }

  /** {@link Timer.Health}: the earliest check to send or to time out over every checked group. */
  private armTimer(): void {
    let deadline = Number.POSITIVE_INFINITY;
    for (const group of this.groups.values()) {
      if (group.health.mode === 'none') continue;
      if (group.nextCheckMs < deadline) deadline = group.nextCheckMs;
      if (group.checkDeadlineMs < deadline) deadline = group.checkDeadlineMs;
    }
    this.ctx.timers.set(Timer.Health, deadline);
  }

  private runHealth(nowMs: number, group: OriginGroup): void {
    const health = group.health;
    if (health.mode === 'none') return;
    if (nowMs >= group.checkDeadlineMs) {
      group.checkDeadlineMs = Number.POSITIVE_INFINITY;
      for (const origin of group.origins) {
        if (!origin.checkPending) continue;
        origin.checkPending = false;
        // Traffic answered by the origin since the check went out counts as an answer.
        this.recordCheck(group, origin, origin.lastReplyMs >= origin.checkSentMs);
      }
    }
    if (nowMs < group.nextCheckMs) return;
    group.nextCheckMs = nowMs + health.intervalMs;
    group.checkDeadlineMs = nowMs + health.timeoutMs;
    for (const origin of group.origins) {
      origin.checkPending = true;
      origin.checkSentMs = nowMs;
      origin.checkId = this.ctx.allocateId();
      if (health.mode === 'udp') {
        this.ctx.out.push(HEALTH_SOCKET_ID, origin.address, origin.port, undefined, health.udpPayload);
      } else {
        this.tcpChecks.set(origin.checkId, origin);
        this.ctx.out.event({ type: 'tcpCheck', checkId: origin.checkId, address: origin.address, port: origin.port, timeoutMs: health.timeoutMs });
      }
    }
  }
}
