/**
 * The TCP impairment proxy: toxiproxy's toxics, per direction — delay and jitter,
 * bandwidth, slicing (small writes with pauses), stalls (forward nothing for a while)
 * and resets (RST after N bytes, or on demand). Impairments apply per connection, as
 * toxiproxy's do, and to data read after a change; data already queued keeps its
 * release time. Byte order is always kept (TCP is a stream), so jitter never reorders.
 *
 * Each connection direction is a FIFO of chunks with release times served by one
 * re-armed timer. The proxy stops reading a sender when more than
 * {@link TCP_QUEUE_BYTES_HIGH} wait, so a slow or stalled direction pushes back on the
 * sender the way a slow network does, instead of buffering without bound.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Rng } from '../../../proto/src/rng.js';
import { DELIVERY_SLACK_MS, TCP_CONNECTIONS_MAX, TCP_QUEUE_BYTES_HIGH, TCP_QUEUE_BYTES_LOW } from './constants.js';
import type { Direction, HostPort, TcpImpairment } from './definition.js';

/** Counters of one direction, over all connections. */
export class TcpDirectionStats {
  /** Bytes read from the sender. */
  bytesIn = 0;
  /** Bytes written to the receiver. */
  bytesOut = 0;
  /** Connections reset because `resetAfterBytes` was reached in this direction. */
  resets = 0;

  /** Plain JSON for the API. */
  toJSON(): Record<string, number> {
    return { bytesIn: this.bytesIn, bytesOut: this.bytesOut, resets: this.resets };
  }
}

/** One direction of one connection: reads `source`, writes `dest` as the impairment allows. */
class TcpShaper {
  private readonly chunks: Buffer[] = [];
  private readonly releaseAtMs: number[] = [];
  /** Index in `chunks` of the reset marker (an empty chunk), or -1. */
  private resetIndex = -1;
  private head = 0;
  private queuedBytes = 0;
  /** Bytes admitted from the source so far (for `resetAfterBytes`). */
  private admittedBytes = 0;
  /** When the bottleneck has finished serializing everything admitted, ms. */
  private linkFreeAtMs = Number.NEGATIVE_INFINITY;
  /** Release time of the last admitted chunk: the floor that keeps byte order. */
  private lastReleaseMs = Number.NEGATIVE_INFINITY;
  private pausedByUs = false;
  private destBlocked = false;
  private sourceEnded = false;
  private ended = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAtMs = Number.POSITIVE_INFINITY;
  private readonly onTimerBound = (): void => {
    this.timer = undefined;
    this.timerAtMs = Number.POSITIVE_INFINITY;
    this.pump();
  };
  private readonly onDrainBound = (): void => {
    this.destBlocked = false;
    this.pump();
  };

  constructor(
    private readonly connection: TcpConnection,
    private readonly direction: Direction,
    private readonly source: Socket,
    private readonly dest: Socket,
  ) {
    source.on('data', (chunk: Buffer) => this.admit(chunk));
    source.on('end', () => {
      this.sourceEnded = true;
      this.pump();
    });
  }

  private admit(chunk: Buffer): void {
    if (this.resetIndex !== -1 || this.connection.closed) return;
    const proxy = this.connection.proxy;
    const impairment = proxy.impairment(this.direction);
    const stats = proxy.stats(this.direction);
    stats.bytesIn += chunk.length;
    const nowMs = proxy.clock();
    let data = chunk;
    let resetAfter = false;
    if (impairment.resetAfterBytes !== undefined && this.admittedBytes + data.length >= impairment.resetAfterBytes) {
      data = data.subarray(0, Math.max(0, impairment.resetAfterBytes - this.admittedBytes));
      resetAfter = true;
      // Nothing more is forwarded once the reset is decided.
      this.source.pause();
    }
    this.admittedBytes += data.length;
    const sliceBytes = impairment.sliceBytes ?? data.length;
    const sliceDelayMs = impairment.sliceBytes !== undefined ? (impairment.sliceDelayMs ?? 0) : 0;
    const rateKbps = impairment.rateKbps ?? 0;
    const delayMs = impairment.delayMs ?? 0;
    const jitterMs = impairment.jitterMs ?? 0;
    for (let offset = 0; offset < data.length; offset += sliceBytes) {
      const piece = data.subarray(offset, Math.min(data.length, offset + sliceBytes));
      let readyMs = nowMs;
      if (rateKbps > 0) {
        // kbit/s = bits per ms.
        this.linkFreeAtMs = Math.max(this.linkFreeAtMs, nowMs) + (piece.length * 8) / rateKbps;
        readyMs = this.linkFreeAtMs;
      }
      let releaseMs = readyMs + delayMs + (jitterMs > 0 ? jitterMs * (2 * proxy.rng.nextFloat() - 1) : 0);
      if (releaseMs < readyMs) releaseMs = readyMs;
      const floorMs = this.lastReleaseMs + sliceDelayMs;
      if (releaseMs < floorMs) releaseMs = floorMs;
      this.push(piece, releaseMs);
    }
    if (resetAfter) {
      this.resetIndex = this.chunks.length;
      this.push(Buffer.alloc(0), this.lastReleaseMs === Number.NEGATIVE_INFINITY ? nowMs : this.lastReleaseMs);
    }
    if (this.queuedBytes > TCP_QUEUE_BYTES_HIGH && !this.pausedByUs) {
      this.pausedByUs = true;
      this.source.pause();
    }
    this.pump();
  }

  private push(piece: Buffer, releaseMs: number): void {
    this.chunks.push(piece);
    this.releaseAtMs.push(releaseMs);
    this.queuedBytes += piece.length;
    this.lastReleaseMs = releaseMs;
  }

  /** Writes every chunk that is due, unless stalled or the receiver pushes back. */
  pump(): void {
    if (this.connection.closed) return;
    const proxy = this.connection.proxy;
    const nowMs = proxy.clock();
    const stallEndMs = proxy.stallEndMs(this.direction, nowMs);
    if (stallEndMs > nowMs) {
      if (Number.isFinite(stallEndMs)) this.arm(stallEndMs);
      return;
    }
    const stats = proxy.stats(this.direction);
    while (this.head < this.chunks.length) {
      if (this.destBlocked) return;
      const dueMs = this.releaseAtMs[this.head]!;
      if (dueMs > nowMs + DELIVERY_SLACK_MS) {
        this.arm(dueMs);
        return;
      }
      if (this.head === this.resetIndex) {
        stats.resets++;
        this.connection.reset(`resetAfterBytes reached on ${this.direction}`);
        return;
      }
      const piece = this.chunks[this.head]!;
      this.chunks[this.head] = EMPTY;
      this.head++;
      this.queuedBytes -= piece.length;
      stats.bytesOut += piece.length;
      if (!this.dest.write(piece)) {
        this.destBlocked = true;
        this.dest.once('drain', this.onDrainBound);
      }
    }
    // Everything written: reclaim the arrays.
    this.chunks.length = 0;
    this.releaseAtMs.length = 0;
    this.head = 0;
    if (this.resetIndex !== -1) this.resetIndex = -1;
    if (this.pausedByUs && this.queuedBytes < TCP_QUEUE_BYTES_LOW) {
      this.pausedByUs = false;
      this.source.resume();
    }
    if (this.sourceEnded && !this.ended && !this.destBlocked) {
      this.ended = true;
      this.dest.end();
    }
  }

  private arm(atMs: number): void {
    if (atMs >= this.timerAtMs && this.timer !== undefined) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAtMs = atMs;
    this.timer = setTimeout(this.onTimerBound, Math.max(0, Math.ceil(atMs - DELIVERY_SLACK_MS - this.connection.proxy.clock())));
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * RST a socket. Only an open socket can be reset; one still connecting or already
 * half-closed is destroyed instead (resetting those can leave Node's handle cleanup
 * spinning at process exit).
 */
function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.readyState === 'open') socket.resetAndDestroy();
  else socket.destroy();
}

/** A client connection and its upstream connection. */
class TcpConnection {
  closed = false;
  readonly up: TcpShaper;
  readonly down: TcpShaper;

  constructor(
    readonly proxy: TcpProxy,
    readonly client: Socket,
    readonly upstream: Socket,
  ) {
    this.up = new TcpShaper(this, 'uplink', client, upstream);
    this.down = new TcpShaper(this, 'downlink', upstream, client);
    let closedSockets = 0;
    const onClose = (): void => {
      if (++closedSockets === 2) this.finish();
    };
    for (const [socket, peer] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      socket.on('close', onClose);
      socket.on('error', (error: NodeJS.ErrnoException) => {
        // Pass a reset on as a reset, anything else as a close.
        if (error.code === 'ECONNRESET') resetSocket(peer);
        else peer.destroy();
      });
    }
  }

  /** Sends RST to both sides. */
  reset(why: string): void {
    if (this.closed) return;
    this.proxy.logger.debug({ event: 'tcp_reset', proxy: this.proxy.name, why }, 'connection reset');
    this.finish();
    resetSocket(this.client);
    resetSocket(this.upstream);
  }

  /** Closes both sides without a reset (the proxy is going away). */
  close(): void {
    if (this.closed) return;
    this.finish();
    this.client.destroy();
    this.upstream.destroy();
  }

  /** Wakes both directions (after an impairment change or the end of a stall). */
  wake(): void {
    this.up.pump();
    this.down.pump();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.up.stop();
    this.down.stop();
    this.proxy.forget(this);
  }
}

/** What a TCP proxy needs from its owner. */
export interface TcpProxyInit {
  readonly name: string;
  readonly listen: HostPort;
  /** Resolved upstream (an IP address). */
  readonly upstream: HostPort;
  readonly uplink: TcpImpairment;
  readonly downlink: TcpImpairment;
  readonly rng: Rng;
  readonly clock: () => number;
  readonly logger: Logger;
}

/** A running TCP proxy. Create with {@link TcpProxy.start}. */
export class TcpProxy {
  readonly name: string;
  readonly upstream: HostPort;
  readonly rng: Rng;
  readonly clock: () => number;
  readonly logger: Logger;
  readonly uplinkStats = new TcpDirectionStats();
  readonly downlinkStats = new TcpDirectionStats();
  /** Connections accepted since start. */
  connectionsTotal = 0;

  private readonly server: Server;
  private readonly connections = new Set<TcpConnection>();
  private uplinkImpairment: TcpImpairment;
  private downlinkImpairment: TcpImpairment;
  private uplinkStallEndMs = Number.NEGATIVE_INFINITY;
  private downlinkStallEndMs = Number.NEGATIVE_INFINITY;
  private closed = false;

  private constructor(init: TcpProxyInit, server: Server) {
    this.name = init.name;
    this.upstream = init.upstream;
    this.rng = init.rng;
    this.clock = init.clock;
    this.logger = init.logger;
    this.server = server;
    this.uplinkImpairment = init.uplink;
    this.downlinkImpairment = init.downlink;
    server.on('connection', (client: Socket) => this.accept(client));
  }

  /** Listens and starts forwarding. Rejects when the address cannot be bound. */
  static async start(init: TcpProxyInit): Promise<TcpProxy> {
    // Half-open: a client that finishes sending must still get the whole reply.
    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolveListen, rejectListen) => {
      server.once('error', rejectListen);
      server.listen(init.listen.port, init.listen.host, () => {
        server.off('error', rejectListen);
        resolveListen();
      });
    });
    const proxy = new TcpProxy(init, server);
    server.on('error', (error) => proxy.logger.warn({ event: 'server_error', proxy: proxy.name, err: error.message }, 'listen socket error'));
    return proxy;
  }

  /** The bound listen address. */
  get listen(): HostPort {
    const address = this.server.address();
    if (address === null || typeof address === 'string') return { host: '', port: 0 };
    return { host: address.address, port: address.port };
  }

  /** Open connections. */
  get connectionsOpen(): number {
    return this.connections.size;
  }

  /** The impairment in force in a direction. */
  impairment(direction: Direction): TcpImpairment {
    return direction === 'uplink' ? this.uplinkImpairment : this.downlinkImpairment;
  }

  /** Counters of a direction. */
  stats(direction: Direction): TcpDirectionStats {
    return direction === 'uplink' ? this.uplinkStats : this.downlinkStats;
  }

  /** Replaces a direction's impairment for data read from now on, and wakes every connection. */
  setImpairment(direction: Direction, impairment: TcpImpairment): void {
    if (direction === 'uplink') this.uplinkImpairment = impairment;
    else this.downlinkImpairment = impairment;
    for (const connection of this.connections) connection.wake();
  }

  /** When a direction may forward again: Infinity while `stalled` is set, a time during a timed stall, else -Infinity. */
  stallEndMs(direction: Direction, nowMs: number): number {
    if (this.impairment(direction).stalled === true) return Number.POSITIVE_INFINITY;
    const endMs = direction === 'uplink' ? this.uplinkStallEndMs : this.downlinkStallEndMs;
    return endMs > nowMs ? endMs : Number.NEGATIVE_INFINITY;
  }

  /** Stops forwarding in `directions` for `durationMs` (extends a running stall). */
  stall(directions: readonly Direction[], durationMs: number): void {
    const endMs = this.clock() + durationMs;
    for (const direction of directions) {
      if (direction === 'uplink') this.uplinkStallEndMs = Math.max(this.uplinkStallEndMs, endMs);
      else this.downlinkStallEndMs = Math.max(this.downlinkStallEndMs, endMs);
    }
  }

  /** Resets (RST) every open connection; returns how many. */
  resetAll(): number {
    const count = this.connections.size;
    for (const connection of [...this.connections]) connection.reset('reset requested over the API');
    return count;
  }

  /** Called by a connection when it is done. */
  forget(connection: TcpConnection): void {
    this.connections.delete(connection);
  }

  private accept(client: Socket): void {
    if (this.closed || this.connections.size >= TCP_CONNECTIONS_MAX) {
      client.resetAndDestroy();
      return;
    }
    this.connectionsTotal++;
    client.setNoDelay(true);
    const upstream = connect({ host: this.upstream.host, port: this.upstream.port, allowHalfOpen: true, noDelay: true });
    const connection = new TcpConnection(this, client, upstream);
    // Data the client sends before the upstream connection is up waits in the upstream socket's write buffer.
    this.connections.add(connection);
  }

  /** Stops listening and closes every connection; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const connection of [...this.connections]) connection.close();
    await new Promise<void>((resolveClose) => this.server.close(() => resolveClose()));
  }
}
