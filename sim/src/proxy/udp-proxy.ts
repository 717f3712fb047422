/**
 * The UDP impairment proxy: a thin driver around the simulator's link core. Each
 * datagram goes through `LinkDirection.offer(nowMs, size)` with a real monotonic clock,
 * and the copies it returns are sent when due, from one event heap (the simulator's
 * `EventQueue`, here keyed by real ms) served by one re-armed timer.
 *
 * Each client address gets its own upstream socket, so the server sees one flow per
 * client as it would without the proxy; replies arriving on that socket go back to
 * that client. A flow closes after `idleTimeoutMs` without traffic.
 *
 * All flows of a proxy share its two `LinkDirection`s, as all traffic of an interface
 * shares a netem qdisc: the rate limit, queue and loss-model state are per direction
 * of the proxy, not per client. A proxy that crosses a {@link SharedLink} uses that
 * link's two directions instead of its own, so several proxies (one per upstream) share
 * one loss process, delay line and queue per direction: a player's one last mile.
 *
 * Per datagram: no closures, no objects beyond what `dgram` itself hands us; the
 * received Buffer is what gets sent on (a duplicate is the only copy made).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { ipLiteralLookup } from '../../../kit/udp-lookup.js';
import type { Rng } from '../../../proto/src/rng.js';
import { EventQueue, type SimEventHandler } from '../core/event-queue.js';
import { DropReason, dropReasonName, LinkDirection, type LinkModelSpec } from '../core/link.js';
import { DELIVERY_SLACK_MS, UDP_FLOWS_MAX, UDP_RECV_BUFFER_BYTES } from './constants.js';
import { formatHostPort, type HostPort } from './definition.js';
import { shiftBlackouts, type SharedLink } from './shared-link.js';

/** Event kinds: which way a queued datagram goes. */
const UPLINK = 0;
const DOWNLINK = 1;

/** Counters of one direction. */
export class UdpDirectionStats {
  /** Datagrams that entered the direction. */
  packets = 0;
  /** Their bytes. */
  bytes = 0;
  /** Copies sent on (duplicates count twice). */
  delivered = 0;
  /** Extra copies made by duplication. */
  duplicated = 0;
  /** Copies sent with a flipped bit. */
  corrupted = 0;
  /** Drops by reason, indexed by `DropReason` value. */
  readonly drops = new Float64Array(dropReasonName.length);

  /** Adds `other`'s counts to these (a shared link's view sums its members'). */
  add(other: UdpDirectionStats): void {
    this.packets += other.packets;
    this.bytes += other.bytes;
    this.delivered += other.delivered;
    this.duplicated += other.duplicated;
    this.corrupted += other.corrupted;
    for (let i = 0; i < this.drops.length; i++) this.drops[i]! += other.drops[i]!;
  }

  /** Plain JSON for the API. */
  toJSON(): Record<string, unknown> {
    return {
      packets: this.packets,
      bytes: this.bytes,
      delivered: this.delivered,
      duplicated: this.duplicated,
      corrupted: this.corrupted,
      dropped: { loss: this.drops[DropReason.Loss], blackout: this.drops[DropReason.Blackout], queueFull: this.drops[DropReason.QueueFull], mtu: this.drops[DropReason.Mtu] },
    };
  }
}

/** One client's flow: its address and its own upstream socket. */
class UdpFlow implements SimEventHandler {
  lastActiveMs: number;
  closed = false;

  constructor(
    private readonly proxy: UdpProxy,
    readonly clientAddress: string,
    readonly clientPort: number,
    readonly socket: Socket,
    nowMs: number,
  ) {
    this.lastActiveMs = nowMs;
  }

  /** Sends one due datagram (called by the event heap, or at once when due now). */
  handleEvent(kind: number, payload: unknown): void {
    if (this.closed) return;
    this.proxy.transmit(this, kind, payload as Buffer);
  }
}

/** What a UDP proxy needs from its owner. */
export interface UdpProxyInit {
  readonly name: string;
  readonly listen: HostPort;
  /** Resolved upstream (an IP address). */
  readonly upstream: HostPort;
  readonly idleTimeoutMs: number;
  /** The proxy's own impairments, or the shared link it crosses instead (see {@link SharedLink}). */
  readonly impairment: { readonly uplink: LinkModelSpec; readonly downlink: LinkModelSpec } | { readonly shared: SharedLink };
  /** This proxy's random stream; each direction of its own forks one (corruption draws from it). */
  readonly rng: Rng;
  /** Monotonic ms. */
  readonly clock: () => number;
  readonly logger: Logger;
}

/** A running UDP proxy. Create with {@link UdpProxy.start}. */
export class UdpProxy {
  readonly name: string;
  readonly upstream: HostPort;
  readonly idleTimeoutMs: number;
  readonly uplinkStats = new UdpDirectionStats();
  readonly downlinkStats = new UdpDirectionStats();
  /** Datagrams dropped because {@link UDP_FLOWS_MAX} flows were open. */
  flowsRefused = 0;
  /** Flows opened since start. */
  flowsOpened = 0;
  /** Datagrams dropped because their source cannot be answered (port 0). */
  badSourceDropped = 0;
  /** Sends that failed synchronously (bad address, socket gone); the datagram is lost, the proxy goes on. */
  sendErrors = 0;

  private readonly socket: Socket;
  private readonly uplink: LinkDirection;
  private readonly downlink: LinkDirection;
  /** The shared link crossed instead of own directions, if any. */
  readonly shared: SharedLink | undefined;
  private readonly rng: Rng;
  private readonly clock: () => number;
  private readonly logger: Logger;
  private readonly upstreamFamily: 'udp4' | 'udp6';
  /** Flows by client address, then port: no key string built per datagram. */
  private readonly flows = new Map<string, Map<number, UdpFlow>>();
  private flowCount = 0;
  private readonly queue = new EventQueue();
  private timer: NodeJS.Timeout | undefined;
  private timerAtMs = Number.POSITIVE_INFINITY;
  private readonly sweepTimer: NodeJS.Timeout;
  private closed = false;
  private readonly onTimerBound = (): void => this.onTimer();

  private constructor(init: UdpProxyInit, socket: Socket) {
    this.name = init.name;
    this.upstream = init.upstream;
    this.idleTimeoutMs = init.idleTimeoutMs;
    this.rng = init.rng;
    this.clock = init.clock;
    this.logger = init.logger;
    this.socket = socket;
    this.upstreamFamily = isIP(init.upstream.host) === 6 ? 'udp6' : 'udp4';
    const now = this.clock();
    if ('shared' in init.impairment) {
      this.shared = init.impairment.shared;
      this.uplink = this.shared.uplink;
      this.downlink = this.shared.downlink;
    } else {
      this.shared = undefined;
      this.uplink = new LinkDirection(shiftBlackouts(init.impairment.uplink, now), this.rng.fork());
      this.downlink = new LinkDirection(shiftBlackouts(init.impairment.downlink, now), this.rng.fork());
    }
    socket.on('message', (bytes: Buffer, from: RemoteInfo) => this.fromClient(bytes, from));
    // Sweeping a quarter of the timeout at a time keeps the idle bound within 25 %.
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(250, this.idleTimeoutMs / 4));
    this.sweepTimer.unref();
  }

  /** Binds the listening socket and starts forwarding. Rejects when the address cannot be bound. */
  static async start(init: UdpProxyInit): Promise<UdpProxy> {
    const socket = createSocket({ type: isIP(init.listen.host) === 6 ? 'udp6' : 'udp4', lookup: ipLiteralLookup });
    await new Promise<void>((resolveBind, rejectBind) => {
      socket.once('error', rejectBind);
      socket.bind(init.listen.port, init.listen.host, () => {
        socket.off('error', rejectBind);
        resolveBind();
      });
    });
    try {
      socket.setRecvBufferSize(UDP_RECV_BUFFER_BYTES);
    } catch {
      // The kernel caps it at net.core.rmem_max; the default still works at test rates.
    }
    const proxy = new UdpProxy(init, socket);
    socket.on('error', (error) => proxy.logger.warn({ event: 'socket_error', proxy: proxy.name, err: error.message }, 'listen socket error'));
    return proxy;
  }

  /** The bound listen address. */
  get listen(): HostPort {
    const address = this.socket.address();
    return { host: address.address, port: address.port };
  }

  /** Open client flows. */
  get flowsOpen(): number {
    return this.flowCount;
  }

  /** The model in force in a direction (blackouts on the proxy's clock). */
  model(direction: 'uplink' | 'downlink'): Readonly<LinkModelSpec> {
    return (direction === 'uplink' ? this.uplink : this.downlink).model;
  }

  /**
   * Replaces a direction's model for datagrams that arrive from now on (datagrams in
   * flight keep their times). Blackout windows in `spec` are relative to now. On a
   * proxy that crosses a shared link this changes the shared link, for every member.
   */
  setModel(direction: 'uplink' | 'downlink', spec: LinkModelSpec): void {
    (direction === 'uplink' ? this.uplink : this.downlink).setModel(shiftBlackouts(spec, this.clock()));
  }

  private fromClient(bytes: Buffer, from: RemoteInfo): void {
    // Port 0 cannot be replied to (and `send` throws on it): such a sender gets no flow.
    if (from.port === 0) {
      this.badSourceDropped++;
      return;
    }
    const nowMs = this.clock();
    const byPort = this.flows.get(from.address);
    let flow = byPort?.get(from.port);
    if (flow === undefined) {
      flow = this.openFlow(from, nowMs, byPort);
      if (flow === undefined) return;
    }
    flow.lastActiveMs = nowMs;
    this.carry(this.uplink, this.uplinkStats, flow, UPLINK, bytes, nowMs);
  }

  private fromUpstream(flow: UdpFlow, bytes: Buffer): void {
    const nowMs = this.clock();
    flow.lastActiveMs = nowMs;
    this.carry(this.downlink, this.downlinkStats, flow, DOWNLINK, bytes, nowMs);
  }

  /** The per-datagram path: the link model decides, then send now or queue for later. */
  private carry(link: LinkDirection, stats: UdpDirectionStats, flow: UdpFlow, kind: number, bytes: Buffer, nowMs: number): void {
    stats.packets++;
    stats.bytes += bytes.length;
    const copies = link.offer(nowMs, bytes.length);
    if (copies === 0) {
      stats.drops[link.lastDropReason]++;
      return;
    }
    // The duplicate is a clean clone, as in netem: copy before corrupting the original.
    const duplicate = copies === 2 ? Buffer.from(bytes) : undefined;
    if (link.lastCorrupted && bytes.length > 0) {
      const bit = this.rng.nextInt(bytes.length * 8);
      bytes[bit >>> 3] = bytes[bit >>> 3]! ^ (1 << (bit & 7));
      stats.corrupted++;
    }
    this.schedule(link.deliverAtMs[0]!, flow, kind, bytes, nowMs);
    if (duplicate !== undefined) {
      stats.duplicated++;
      this.schedule(link.deliverAtMs[1]!, flow, kind, duplicate, nowMs);
    }
  }

  private schedule(atMs: number, flow: UdpFlow, kind: number, bytes: Buffer, nowMs: number): void {
    if (atMs <= nowMs + DELIVERY_SLACK_MS) {
      this.transmit(flow, kind, bytes);
      return;
    }
    this.queue.schedule(atMs, flow, kind, bytes);
    if (atMs < this.timerAtMs) this.arm(atMs);
  }

  /** Sends a datagram on its way (called by flows). */
  transmit(flow: UdpFlow, kind: number, bytes: Buffer): void {
    // `send` throws synchronously on a bad port or a closed socket; here that would be
    // inside a socket or timer callback and take the whole process down.
    try {
      if (kind === UPLINK) {
        flow.socket.send(bytes, this.upstream.port, this.upstream.host);
        this.uplinkStats.delivered++;
      } else {
        this.socket.send(bytes, flow.clientPort, flow.clientAddress);
        this.downlinkStats.delivered++;
      }
    } catch (error) {
      this.sendErrors++;
      if (this.sendErrors <= 10 || this.sendErrors % 1000 === 0) this.logger.warn({ event: 'send_error', proxy: this.name, client: formatHostPort({ host: flow.clientAddress, port: flow.clientPort }), errors: this.sendErrors, err: (error as Error).message }, 'send failed; datagram dropped');
    }
  }

  private arm(atMs: number): void {
    if (this.closed) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAtMs = atMs;
    // Node rounds timeouts to whole ms; ceil means "not before", and the slack lets the
    // handler take what is due within half a millisecond.
    this.timer = setTimeout(this.onTimerBound, Math.max(0, Math.ceil(atMs - DELIVERY_SLACK_MS - this.clock())));
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAtMs = Number.POSITIVE_INFINITY;
    this.queue.runUntil(this.clock() + DELIVERY_SLACK_MS);
    if (this.queue.size > 0) this.arm(this.queue.peekTimeMs());
  }

  private openFlow(from: RemoteInfo, nowMs: number, byPort: Map<number, UdpFlow> | undefined): UdpFlow | undefined {
    if (this.closed) return undefined;
    if (this.flowCount >= UDP_FLOWS_MAX) {
      this.flowsRefused++;
      return undefined;
    }
    const socket = createSocket({ type: this.upstreamFamily, lookup: ipLiteralLookup });
    const flow = new UdpFlow(this, from.address, from.port, socket, nowMs);
    socket.on('message', (bytes: Buffer) => this.fromUpstream(flow, bytes));
    socket.on('error', (error) => this.logger.debug({ event: 'flow_socket_error', proxy: this.name, client: `${from.address}:${from.port}`, err: error.message }, 'upstream socket error'));
    socket.bind(0);
    let ports = byPort;
    if (ports === undefined) {
      ports = new Map();
      this.flows.set(from.address, ports);
    }
    ports.set(from.port, flow);
    this.flowCount++;
    this.flowsOpened++;
    this.logger.debug({ event: 'flow_open', proxy: this.name, client: formatHostPort({ host: from.address, port: from.port }) }, 'flow opened');
    return flow;
  }

  private closeFlow(flow: UdpFlow): void {
    if (flow.closed) return;
    flow.closed = true;
    flow.socket.close();
    const ports = this.flows.get(flow.clientAddress);
    ports?.delete(flow.clientPort);
    if (ports?.size === 0) this.flows.delete(flow.clientAddress);
    this.flowCount--;
  }

  private sweep(): void {
    const idleBeforeMs = this.clock() - this.idleTimeoutMs;
    for (const ports of [...this.flows.values()]) {
      for (const flow of [...ports.values()]) {
        if (flow.lastActiveMs < idleBeforeMs) this.closeFlow(flow);
      }
    }
  }

  /** Stops forwarding and closes every socket; idempotent. Datagrams still queued are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    clearInterval(this.sweepTimer);
    for (const ports of [...this.flows.values()]) for (const flow of [...ports.values()]) this.closeFlow(flow);
    await new Promise<void>((resolveClose) => this.socket.close(() => resolveClose()));
  }
}
