/**
 * The production driver's TCP proxying for L4 TCP rules: connects each admitted client
 * to its origin, holds the client's early bytes while the origin connects, pipes both
 * ways under the core's byte-rate pauses, and ends connections. Every decision is the
 * core's ({@link RelayCore}: admission, failover to the next origin, when a half-closed
 * or idle connection ends); this file only moves bytes and reports what happened.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { RelayCore, TcpAdmission, TcpSide } from './core/relay-core.js';

/** One client's way to its origin across connect attempts (failover keeps the same one). */
interface TcpAttempt {
  /** Ends the connection, set while an attempt is in progress (undefined once connected: the pipes own it then). */
  finish: ((reason: string) => void) | undefined;
  /** The client closed (or sent its FIN with nothing to pass on) before its origin connected. */
  clientGone: boolean;
  /** The client sent its FIN after some bytes, before its origin connected: both are passed on at the connect. */
  clientEnded: boolean;
  readonly onEarlyEnd: () => void;
  /** Bytes the client sent before the origin connected (read so that its close is seen). */
  readonly early: Buffer[];
  earlyBytes: number;
  readonly onEarly: (chunk: Buffer) => void;
}

/** See the module comment. One per relay. */
export class TcpProxy {
  /** Every client and origin socket open, so that {@link close} can end them. */
  private readonly sockets = new Set<net.Socket>();
  /** How to end each connected connection, by the core's id (for its `tcpEnd` events: idle). */
  private readonly finishers = new Map<number, (reason: string) => void>();
  /** Pending resumes of reads paused by a byte-rate limit. */
  private readonly throttleTimers = new Set<NodeJS.Timeout>();

  /**
   * @param core the relay's state machine
   * @param flush drains the core's outputs (called after every input)
   * @param hasFdRoom whether a connection's two sockets fit under the open-file limit (else it is reset before admission)
   */
  constructor(
    private readonly core: RelayCore,
    private readonly flush: () => void,
    private readonly hasFdRoom: () => boolean = () => true,
  ) {}

  /** Client and origin sockets open now (file descriptors held). */
  get socketCount(): number {
    return this.sockets.size;
  }

  /** The core asked (`tcpEnd`) to end connection `connId`. */
  end(connId: number, reason: string): void {
    this.finishers.get(connId)?.(reason);
  }

  /** Destroys every connection now (the relay is closing; the core already ended them). */
  close(): void {
    for (const timer of this.throttleTimers) clearTimeout(timer);
    this.throttleTimers.clear();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  /** A client connected on TCP listener `socketId` (paused: `pauseOnConnect`). */
  accept(socketId: number, client: net.Socket): void {
    if (!this.hasFdRoom()) {
      client.resetAndDestroy();
      return;
    }
    const from = { address: client.remoteAddress ?? '', port: client.remotePort ?? 0 };
    const admission = this.core.admitTcp(performance.now(), socketId, from);
    this.flush();
    if (typeof admission === 'number') {
      client.resetAndDestroy();
      return;
    }
    this.sockets.add(client);
    client.on('error', () => undefined);
    // Listened for from the start: a client that leaves while its origin is still
    // connecting must free its slot now, not at the idle sweep.
    // A paused socket never sees its peer's FIN, so the client is read (into a bounded buffer) while the origin connects.
    const attempt: TcpAttempt = {
      finish: undefined,
      clientGone: false,
      clientEnded: false,
      onEarlyEnd: () => {
        // A half-close after a request (`shutdown(SHUT_WR)`) still wants the answer; a FIN
        // with nothing sent is a client that left, and frees its slot now.
        if (attempt.earlyBytes > 0) attempt.clientEnded = true;
        else {
          attempt.clientGone = true;
          attempt.finish?.('client closed');
        }
      },
      early: [],
      earlyBytes: 0,
      onEarly: (chunk: Buffer) => {
        attempt.early.push(chunk);
        attempt.earlyBytes += chunk.length;
        if (attempt.earlyBytes >= admission.earlyBytesMax) client.pause();
      },
    };
    client.once('close', () => {
      attempt.clientGone = true;
      attempt.finish?.('client closed');
    });
    client.on('data', attempt.onEarly);
    client.once('end', attempt.onEarlyEnd);
    client.resume();
    this.connect(client, admission, attempt);
  }

  private connect(client: net.Socket, admission: TcpAdmission, attempt: TcpAttempt): void {
    // allowHalfOpen: an origin's FIN must not close our side towards it (the client may still be sending).
    const upstream = net.connect({ host: admission.address, port: admission.port, noDelay: true, allowHalfOpen: true });
    let connected = false;
    let finished = false;
    const finish = (reason: string): void => {
      if (finished) return;
      finished = true;
      attempt.finish = undefined;
      this.sockets.delete(client);
      this.sockets.delete(upstream);
      this.finishers.delete(admission.connId);
      this.core.tcpClosed(performance.now(), admission.connId, reason);
      this.flush();
      client.destroy();
      upstream.destroy();
    };
    attempt.finish = finish;
    if (attempt.clientGone) {
      finish('client closed');
      return;
    }
    this.sockets.add(upstream);
    // A connect not done in time (a blackholed origin) is a failed connect: fail over.
    upstream.setTimeout(admission.connectTimeoutMs, () => {
      if (!connected) upstream.destroy(new Error('connect timeout'));
    });
    upstream.on('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      this.sockets.add(upstream);
      this.core.tcpConnected(performance.now(), admission.connId);
      client.pause();
      client.off('data', attempt.onEarly);
      client.off('end', attempt.onEarlyEnd);
      if (admission.prefix) upstream.write(admission.prefix);
      for (const chunk of attempt.early) upstream.write(chunk);
      attempt.early.length = 0;
      const earlyWaitMs = attempt.earlyBytes > 0 ? this.core.tcpData(performance.now(), admission.connId, 'up', attempt.earlyBytes) : 0;
      // The core ends it when idle (a `tcpEnd` event); it is over when both sockets closed cleanly.
      this.finishers.set(admission.connId, finish);
      let endReason = '';
      // A FIN is passed on (half-close): the other way keeps flowing until its own FIN.
      const onFin = (side: TcpSide, other: net.Socket): void => {
        other.end();
        endReason = this.core.tcpSideClosed(performance.now(), admission.connId, side) ?? endReason;
      };
      // A socket closes cleanly only once it both read the peer's FIN and wrote its own
      // (allowHalfOpen); any other close is a reset or an error, and the other side is reset
      // too, so that its peer sees an abort rather than a clean EOF after truncated data.
      const onClose = (side: TcpSide, socket: net.Socket, other: net.Socket, hadError: boolean): void => {
        if (finished) return;
        if (hadError || !socket.readableEnded || !socket.writableFinished) {
          if (!other.destroyed) other.resetAndDestroy();
          finish(`${side} reset`);
          return;
        }
        if (other.closed) finish(endReason || `${side} closed`);
      };
      client.on('close', (hadError: boolean) => onClose('client', client, upstream, hadError));
      upstream.on('close', (hadError: boolean) => onClose('origin', upstream, client, hadError));
      this.pump(client, upstream, admission.connId, 'up', earlyWaitMs, () => onFin('client', upstream));
      this.pump(upstream, client, admission.connId, 'down', 0, () => onFin('origin', client));
      // The client's FIN came while the origin connected: its bytes are written above; pass the FIN on.
      if (attempt.clientEnded) onFin('client', upstream);
      attempt.finish = undefined;
    });
    upstream.on('error', () => {
      if (connected || finished) return;
      this.sockets.delete(upstream);
      upstream.destroy();
      if (attempt.clientGone) {
        finish('client closed');
        return;
      }
      // Failover at connect time: the next origin by the hash, not yet tried (none left: the core ended the connection).
      const next = this.core.tcpConnectFailed(performance.now(), admission.connId);
      this.flush();
      finished = true;
      if (next !== undefined) return this.connect(client, next, attempt);
      attempt.finish = undefined;
      this.sockets.delete(client);
      client.resetAndDestroy();
    });
  }

  /**
   * Copies `from` → `to` as `pipe()` does (pause while `to` is full; `onEnd` when `from`
   * sends its FIN, which passes it on), and charges every chunk to the core's byte buckets: when the core asks for a
   * pause (a `connectionBytesPerSecond`/`bytesPerSecond` limit), `from` is not read for
   * that long, so TCP flow control slows the sender; nothing is dropped.
   * @param initialWaitMs pause before the first read, ms (bytes already charged)
   * @param onEnd `from`'s FIN arrived (every byte before it was handed to `to`)
   */
  private pump(from: net.Socket, to: net.Socket, connId: number, direction: 'up' | 'down', initialWaitMs: number, onEnd: () => void): void {
    let full = false;
    let throttled = false;
    const resume = (): void => {
      if (!full && !throttled && !from.destroyed) from.resume();
    };
    const throttle = (waitMs: number): void => {
      if (throttled) return;
      throttled = true;
      from.pause();
      const timer = setTimeout(() => {
        this.throttleTimers.delete(timer);
        throttled = false;
        resume();
      }, Math.ceil(waitMs));
      timer.unref();
      this.throttleTimers.add(timer);
    };
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) {
        full = true;
        from.pause();
      }
      const waitMs = this.core.tcpData(performance.now(), connId, direction, chunk.length);
      if (waitMs > 0) throttle(waitMs);
    });
    to.on('drain', () => {
      full = false;
      resume();
    });
    from.once('end', onEnd);
    if (initialWaitMs > 0) throttle(initialWaitMs);
    else from.resume();
  }
}
