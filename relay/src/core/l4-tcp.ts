/**
 * L4 TCP: admission, origin choice and failover at connect time, byte-rate limits
 * (per connection and per rule), and the connection's lifetime policy — idle timeout
 * and half-close — while the bytes themselves flow in the driver. The driver reports
 * what happens (connected, data, a side closed, connect failed, closed); the core
 * decides when a connection ends and says so with a `tcpEnd` event or a return value.
 */
import { encodeProxyV2 } from '../../../proto/src/proxy-protocol.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import { RateBucket } from './bucket.js';
import type { RelayCoreConfig } from './config-types.js';
import { TCP_CONNECT_TIMEOUT_MS_DEFAULT, TCP_EARLY_BYTES_MAX } from './constants.js';
import type { RelayContext } from './context.js';
import type { L4Rules } from './l4-rules.js';
import type { Listener, OriginState, RuleRuntime } from './l4-state.js';
import type { OriginGroups } from './origins.js';
import { DropReason, type DropReasonValue } from './output.js';
import { endpointText, type RuleStats, type SourceState } from './session-base.js';
import type { SourceTable } from './sources.js';

/** Where a TCP connection should go, from `RelayCore.admitTcp`. */
export interface TcpAdmission {
  /** Id to report back with. */
  readonly connId: number;
  readonly address: string;
  readonly port: number;
  /** PROXY v2 header to write first, or undefined. */
  readonly prefix: Uint8Array | undefined;
  /** A connect to the origin not done after this long counts as failed (`RelayCore.tcpConnectFailed`), ms. */
  readonly connectTimeoutMs: number;
  /** Client bytes to hold while the origin connects; beyond them stop reading the client until the connect, bytes. */
  readonly earlyBytesMax: number;
  /** The rule's counters (a connection's bytes are added when it closes: see `RelayCore.tcpClosed`). */
  readonly stats: RuleStats;
}

/** One side of a TCP connection. */
export type TcpSide = 'client' | 'origin';

class TcpConn {
  readonly tried: OriginState[] = [];
  /** Byte buckets of this connection (rule key `connectionBytesPerSecond`), client → origin and back. */
  readonly upBucket: RateBucket;
  readonly downBucket: RateBucket;
  /** The origin connect succeeded: the idle timeout runs from here. */
  connected = false;
  /** Last bytes either way (or the connect), ms. */
  lastActiveMs: number;
  /** The side that closed first, '' while both are open. */
  firstClosed: TcpSide | '' = '';
  /** A `tcpEnd` was asked for (not asked twice while the driver closes). */
  ending = false;
  constructor(
    readonly id: number,
    readonly rule: RuleRuntime,
    readonly listener: Listener,
    readonly source: SourceState,
    readonly clientAddress: string,
    readonly clientPort: number,
    public origin: OriginState,
    readonly openedMs: number,
    burstMs: number,
  ) {
    const rate = rule.spec.connectionBytesPerSecond ?? 0;
    this.upBucket = new RateBucket(0, rate, burstMs, openedMs);
    this.downBucket = new RateBucket(0, rate, burstMs, openedMs);
    this.lastActiveMs = openedMs;
  }
}

/** A TCP rule's shared byte buckets (`bytesPerSecond`), kept by rule name across reloads. */
class TcpRuleBuckets {
  readonly up: RateBucket;
  readonly down: RateBucket;
  constructor(rate: number, burstMs: number, nowMs: number) {
    this.up = new RateBucket(0, rate, burstMs, nowMs);
    this.down = new RateBucket(0, rate, burstMs, nowMs);
  }
}

/** See the module comment. */
export class L4Tcp {
  readonly conns = new Map<number, TcpConn>();
  private readonly ruleBuckets = new Map<string, TcpRuleBuckets>();
  /** TCP reads paused by a byte-rate limit (each {@link tcpData} call that asked for a pause). */
  throttles = 0;

  constructor(
    private readonly ctx: RelayContext,
    private readonly sources: SourceTable,
    private readonly origins: OriginGroups,
  ) {}

  /** A connection arrived on listener `socketId`: where to connect, or why not. */
  admit(nowMs: number, socketId: number, from: Endpoint): TcpAdmission | DropReasonValue {
    const ctx = this.ctx;
    const entry = ctx.sockets.get(socketId);
    if (entry === undefined || entry.kind !== 'listener' || ctx.closed) return DropReason.Draining;
    const listener = entry.listener;
    const rule = listener.rule;
    const source = this.sources.admit(nowMs, from.address, rule.spec.allow, rule.spec.deny, rule);
    if (source === undefined) return ctx.draining ? DropReason.Draining : DropReason.SessionCap;
    const origin = this.origins.pickOrigin(rule.group, this.origins.clientHashFor(rule.spec, from.address, from.port), undefined);
    if (origin === undefined) return DropReason.SessionCap;
    const conn = new TcpConn(ctx.allocateId(), rule, listener, source, from.address, from.port, origin, nowMs, ctx.config.limits.burstMs);
    conn.tried.push(origin);
    this.conns.set(conn.id, conn);
    source.sessions++;
    rule.stats.sessionsActive++;
    rule.stats.sessionsOpened++;
    ctx.out.event({ type: 'sessionStart', kind: 'tcp', id: String(conn.id), rule: rule.spec.name, client: endpointText(from.address, from.port), origin: endpointText(origin.address, origin.portFor(listener.portOffset)) });
    return this.admission(conn);
  }

  private admission(conn: TcpConn): TcpAdmission {
    const spec = conn.rule.spec;
    const port = conn.origin.portFor(conn.listener.portOffset);
    const prefix = spec.proxyProtocol === 'v2' ? encodeProxyV2('tcp', { address: conn.clientAddress, port: conn.clientPort }, { address: spec.listenAddress, port: conn.listener.port }) : undefined;
    return {
      connId: conn.id,
      address: conn.origin.address,
      port,
      prefix,
      connectTimeoutMs: spec.connectTimeoutMs ?? TCP_CONNECT_TIMEOUT_MS_DEFAULT,
      earlyBytesMax: TCP_EARLY_BYTES_MAX,
      stats: conn.rule.stats,
    };
  }

  /** Bytes were read on `connId` and handed on: charges the buckets; returns how long to stop reading that side, ms. */
  data(nowMs: number, connId: number, direction: 'up' | 'down', bytes: number): number {
    const conn = this.conns.get(connId);
    if (conn === undefined) return 0;
    conn.lastActiveMs = nowMs;
    const up = direction === 'up';
    let waitMs = (up ? conn.upBucket : conn.downBucket).spend(nowMs, bytes);
    const shared = this.ruleBuckets.get(conn.rule.spec.name);
    if (shared !== undefined) {
      const ruleWaitMs = (up ? shared.up : shared.down).spend(nowMs, bytes);
      if (ruleWaitMs > waitMs) waitMs = ruleWaitMs;
    }
    if (waitMs > 0) this.throttles++;
    return waitMs;
  }

  /** The origin connection is up (a passing health signal; the idle timeout starts). */
  connected(nowMs: number, connId: number): void {
    const conn = this.conns.get(connId);
    if (!conn) return;
    conn.origin.lastReplyMs = nowMs;
    conn.connected = true;
    conn.lastActiveMs = nowMs;
  }

  /**
   * Connecting failed: the origin is charged a failed check, and the next origin by the
   * hash (not yet tried) is returned; with none left the connection ends here
   * (`no origin reachable`) and undefined is returned.
   */
  connectFailed(nowMs: number, connId: number): TcpAdmission | undefined {
    const conn = this.conns.get(connId);
    if (!conn) return undefined;
    const group = conn.rule.group;
    if (group.health.mode !== 'none') this.origins.recordCheck(group, conn.origin, false);
    const next = this.origins.pickOrigin(group, this.origins.clientHashFor(conn.rule.spec, conn.clientAddress, conn.clientPort), conn.tried);
    if (next === undefined) {
      this.closed(nowMs, connId, 'no origin reachable');
      return undefined;
    }
    conn.tried.push(next);
    conn.origin = next;
    return this.admission(conn);
  }

  /**
   * One side of a connected connection closed. The driver ends the other side
   * gracefully (bytes already piped still reach it); the connection is over when both
   * have closed: returns the end reason then (`client closed` / `origin closed`, the
   * side that closed first), else undefined.
   */
  sideClosed(connId: number, side: TcpSide): string | undefined {
    const conn = this.conns.get(connId);
    if (conn === undefined) return undefined;
    if (conn.firstClosed === '') {
      conn.firstClosed = side;
      return undefined;
    }
    return `${conn.firstClosed} closed`;
  }

  /** The connection ended (either side, idle, or refused); `bytesUp`/`bytesDown` are its totals, added to its rule's counters. */
  closed(nowMs: number, connId: number, reason: string, bytesUp = 0, bytesDown = 0): void {
    const conn = this.conns.get(connId);
    if (!conn) return;
    this.conns.delete(connId);
    conn.source.sessions--;
    const stats = conn.rule.stats;
    stats.sessionsActive--;
    stats.bytesUp += bytesUp;
    stats.bytesDown += bytesDown;
    this.ctx.out.event({
      type: 'sessionEnd',
      kind: 'tcp',
      id: String(connId),
      rule: conn.rule.spec.name,
      client: endpointText(conn.clientAddress, conn.clientPort),
      origin: endpointText(conn.origin.address, conn.origin.portFor(conn.listener.portOffset)),
      reason,
      totals: { packetsUp: 0, bytesUp, packetsDown: 0, bytesDown, durationMs: nowMs - conn.openedMs },
    });
  }

  /** Ends every connection (the core is closing). */
  closeAll(nowMs: number, reason: string): void {
    for (const conn of [...this.conns.values()]) this.closed(nowMs, conn.id, reason);
  }

  /**
   * Idle connections (connected, no bytes either way for their rule's `idleTimeoutMs`)
   * are asked to end with a `tcpEnd` event, once each; the driver closes both sockets
   * and reports {@link closed}. Run by the sweep, so the timeout has a second of slack:
   * idle timeouts are ≥ 30 s, and one coarse tick (undici's approach) costs nothing per chunk.
   */
  sweep(nowMs: number): void {
    for (const conn of this.conns.values()) {
      if (!conn.connected || conn.ending || nowMs - conn.lastActiveMs < conn.rule.spec.idleTimeoutMs) continue;
      conn.ending = true;
      this.ctx.out.event({ type: 'tcpEnd', connId: conn.id, reason: 'idle' });
    }
  }

  /** TCP byte limits: a rule's shared buckets keep their tokens across reloads; live connections take their rule's new rate. */
  apply(nowMs: number, config: RelayCoreConfig, rules: L4Rules): void {
    const limits = config.limits;
    for (const spec of config.rules) {
      const rate = spec.protocol === 'tcp' ? (spec.bytesPerSecond ?? 0) : 0;
      const shared = this.ruleBuckets.get(spec.name);
      if (rate === 0) this.ruleBuckets.delete(spec.name);
      else if (shared === undefined) this.ruleBuckets.set(spec.name, new TcpRuleBuckets(rate, limits.burstMs, nowMs));
      else {
        shared.up.setRates(0, rate, limits.burstMs);
        shared.down.setRates(0, rate, limits.burstMs);
      }
    }
    for (const name of this.ruleBuckets.keys()) if (!rules.rules.has(name)) this.ruleBuckets.delete(name);
    for (const conn of this.conns.values()) {
      // A connection keeps the rule it was admitted by; a removed rule's connections keep their last rate.
      const spec = rules.rules.get(conn.rule.spec.name)?.spec ?? conn.rule.spec;
      const rate = spec.protocol === 'tcp' ? (spec.connectionBytesPerSecond ?? 0) : 0;
      conn.upBucket.setRates(0, rate, limits.burstMs);
      conn.downBucket.setRates(0, rate, limits.burstMs);
    }
  }
}
