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
import type { RelayCoreConfig, TcpLimitsSpec } from './config-types.js';
import { TCP_CONNECT_TIMEOUT_MS_DEFAULT, TCP_CONNECTIONS_PER_SOURCE_MAX_DEFAULT, TCP_EARLY_BYTES_MAX, TCP_FIRST_BYTE_TIMEOUT_MS_DEFAULT, TCP_SILENT_PER_SOURCE_MAX_DEFAULT } from './constants.js';
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
  /** The rule's counters (a connection's bytes are added as they move: see `RelayCore.tcpData`). */
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
  /** No byte has moved either way yet (counted in its source's `silent`). */
  silent = true;
  /** Bytes handed on so far, client → origin and back (the `sessionEnd` totals). */
  bytesUp = 0;
  bytesDown = 0;
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

/** The `tcp:` caps when a config built in code has none. */
const TCP_LIMITS_DEFAULT: TcpLimitsSpec = {
  connectionsPerSourceMax: TCP_CONNECTIONS_PER_SOURCE_MAX_DEFAULT,
  silentPerSourceMax: TCP_SILENT_PER_SOURCE_MAX_DEFAULT,
  firstByteTimeoutMs: TCP_FIRST_BYTE_TIMEOUT_MS_DEFAULT,
};

/** One source address's TCP connections, for the per-source caps (`tcp:` in the config). */
interface TcpSourceCount {
  conns: number;
  /** Of them, those that have not moved a byte yet. */
  silent: number;
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
  /** Connections refused by a per-source cap (`tcp.connectionsPerSourceMax` or `silentPerSourceMax`). */
  sourceCapRefusals = 0;
  /** Connections ended for sending nothing within `tcp.firstByteTimeoutMs`. */
  firstByteTimeouts = 0;
  /** Per source address with a connection open; an address leaves with its last connection. */
  private readonly perSource = new Map<string, TcpSourceCount>();

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
    // Per-source caps first, so that a refusal spends none of the shared budgets: idle
    // connections from a few addresses must not lock everyone else out.
    const limits = ctx.config.tcp ?? TCP_LIMITS_DEFAULT;
    const counts = this.perSource.get(from.address);
    if (counts !== undefined && (counts.conns >= limits.connectionsPerSourceMax || counts.silent >= limits.silentPerSourceMax)) {
      this.sourceCapRefusals++;
      return DropReason.SessionCap;
    }
    const source = this.sources.admit(nowMs, from.address, rule.spec.allow, rule.spec.deny, rule);
    if (source === undefined) return ctx.draining ? DropReason.Draining : DropReason.SessionCap;
    const origin = this.origins.pickOrigin(rule.group, this.origins.clientHashFor(rule.spec, from.address, from.port), undefined);
    if (origin === undefined) return DropReason.SessionCap;
    const conn = new TcpConn(ctx.allocateId(), rule, listener, source, from.address, from.port, origin, nowMs, ctx.config.limits.burstMs);
    conn.tried.push(origin);
    this.conns.set(conn.id, conn);
    if (counts === undefined) this.perSource.set(from.address, { conns: 1, silent: 1 });
    else {
      counts.conns++;
      counts.silent++;
    }
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
    if (conn.silent && bytes > 0) {
      conn.silent = false;
      this.perSource.get(conn.clientAddress)!.silent--;
    }
    const up = direction === 'up';
    // Counted as they move, so that a long transfer shows in the metrics while it runs.
    const stats = conn.rule.stats;
    if (up) {
      conn.bytesUp += bytes;
      stats.bytesUp += bytes;
    } else {
      conn.bytesDown += bytes;
      stats.bytesDown += bytes;
    }
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
   * One side of a connected connection sent its FIN (a half-close). The driver passes it
   * on to the other side, whose bytes keep flowing back; once both sides have sent theirs
   * returns the reason the connection ends with (`client closed` / `origin closed`, the
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

  /**
   * The connection ended, however it ended (both sides closed, a reset, an error, idle,
   * refused, shutdown): it leaves the table and its `sessionEnd` carries the bytes
   * counted by {@link data} (already in its rule's counters).
   */
  closed(nowMs: number, connId: number, reason: string): void {
    const conn = this.conns.get(connId);
    if (!conn) return;
    this.conns.delete(connId);
    const counts = this.perSource.get(conn.clientAddress)!;
    if (conn.silent) counts.silent--;
    if (--counts.conns === 0) this.perSource.delete(conn.clientAddress);
    conn.source.sessions--;
    conn.rule.stats.sessionsActive--;
    this.ctx.out.event({
      type: 'sessionEnd',
      kind: 'tcp',
      id: String(connId),
      rule: conn.rule.spec.name,
      client: endpointText(conn.clientAddress, conn.clientPort),
      origin: endpointText(conn.origin.address, conn.origin.portFor(conn.listener.portOffset)),
      reason,
      totals: { packetsUp: 0, bytesUp: conn.bytesUp, packetsDown: 0, bytesDown: conn.bytesDown, durationMs: nowMs - conn.openedMs },
    });
  }

  /** Ends every connection (the core is closing). */
  closeAll(nowMs: number, reason: string): void {
    for (const conn of [...this.conns.values()]) this.closed(nowMs, conn.id, reason);
  }

  /**
   * Idle connections (connected, no bytes either way for their rule's `idleTimeoutMs`)
   * and silent ones (connected, no byte yet for `tcp.firstByteTimeoutMs`) are asked to
   * end with a `tcpEnd` event, once each; the driver closes both sockets and reports
   * {@link closed}. Run by the sweep, so the timeouts have a second of slack: idle
   * timeouts are ≥ 30 s, first-byte ones ≥ 1 s, and one coarse tick (undici's approach)
   * costs nothing per chunk.
   */
  sweep(nowMs: number): void {
    const firstByteMs = (this.ctx.config.tcp ?? TCP_LIMITS_DEFAULT).firstByteTimeoutMs;
    for (const conn of this.conns.values()) {
      if (!conn.connected || conn.ending) continue;
      // While silent, lastActiveMs is the connect.
      const silentTooLong = conn.silent && firstByteMs > 0 && nowMs - conn.lastActiveMs >= firstByteMs;
      if (!silentTooLong && nowMs - conn.lastActiveMs < conn.rule.spec.idleTimeoutMs) continue;
      conn.ending = true;
      if (silentTooLong) this.firstByteTimeouts++;
      this.ctx.out.event({ type: 'tcpEnd', connId: conn.id, reason: silentTooLong ? 'no first byte' : 'idle' });
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
