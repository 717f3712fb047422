/**
 * The real-socket driver for {@link Transport}: a `node:dgram` UDP socket. The
 * simulator's `SimUdpSocket` implements the same interface, so a core driven through
 * a Transport runs unchanged on both.
 */
import dgram from 'node:dgram';
import { isIP, isIPv6 } from 'node:net';
import { ErrorCode, SlipError } from '../../proto/src/errors.js';
import type { Endpoint, ReceiveHandler, Transport } from '../../proto/src/transport.js';
import { ipLiteralLookup } from '../../kit/udp-lookup.js';
import { bufferSocketOptions, grantedBufferSizes, type SocketBufferSizes } from './socket-buffers.js';

/** Options for {@link UdpTransport.bind}. */
export interface UdpTransportInit {
  /** Local address to bind. Default `127.0.0.1`; use `0.0.0.0` or `::` to listen on all interfaces. */
  readonly address?: string;
  /** Local port; 0 (the default) lets the OS pick one. */
  readonly port?: number;
  /** Kernel receive buffer in bytes (SO_RCVBUF); default: the OS default. Raise it on busy relays. */
  readonly receiveBufferBytes?: number;
  /** Kernel send buffer in bytes (SO_SNDBUF); default: the OS default. */
  readonly sendBufferBytes?: number;
}

/** Counters a driver exposes for metrics. */
export interface UdpTransportStats {
  /** Datagrams handed to the kernel. */
  sent: number;
  /** Datagrams received. */
  received: number;
  /** Sends that failed: refused by the kernel (EMSGSIZE, ENETUNREACH, …) or to a destination no datagram can reach (port outside 1–65535, not an IP literal). */
  sendErrors: number;
}

/** A bound UDP socket implementing {@link Transport}. Create with {@link UdpTransport.bind}. */
export class UdpTransport implements Transport {
  /** Running counters; read at any time. */
  readonly stats: UdpTransportStats = { sent: 0, received: 0, sendErrors: 0 };
  private handler: ReceiveHandler | undefined;
  private closed = false;
  private readonly onSendDone = (error: Error | null): void => {
    if (error) this.stats.sendErrors++;
  };

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly local: Endpoint,
  ) {
    socket.on('message', (message, remote) => {
      this.stats.received++;
      // rinfo already has `address` and `port`: it is an Endpoint as it is.
      this.handler?.(message, remote);
    });
    // A UDP socket reports ICMP errors from earlier sends as 'error'; they are
    // conditions of the network, not of this process, so they must never crash it.
    socket.on('error', () => {
      this.stats.sendErrors++;
    });
  }

  /** Binds a socket and resolves once it is listening. Rejects if the address is unavailable. */
  static async bind(init: UdpTransportInit = {}): Promise<UdpTransport> {
    const address = init.address ?? '127.0.0.1';
    const socket = dgram.createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4', lookup: ipLiteralLookup, ...bufferSocketOptions({ receiveBytes: init.receiveBufferBytes ?? 0, sendBytes: init.sendBufferBytes ?? 0 }) });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      socket.once('error', onError);
      socket.bind(init.port ?? 0, address, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    const bound = socket.address();
    return new UdpTransport(socket, { address: bound.address, port: bound.port });
  }

  /**
   * Sends one datagram. Throws (code `SLIP_ERR_CLOSED`) only when the transport is
   * closed; network conditions drop silently, and so does a destination no datagram
   * can reach (port outside 1–65535, an address that is not an IP literal), counted
   * in `sendErrors`: it comes from a peer or a server, not from this program's logic.
   */
  send(bytes: Uint8Array, to: Endpoint): void {
    if (this.closed) throw new SlipError(ErrorCode.Closed, `socket ${this.local.address}:${this.local.port} is closed; bind a new one to send`);
    const port = to.port;
    if (!Number.isInteger(port) || port < 1 || port > 65_535 || typeof to.address !== 'string' || isIP(to.address) === 0) {
      this.stats.sendErrors++;
      return;
    }
    this.stats.sent++;
    // dgram may queue the datagram (on EAGAIN) and read the buffer later; copying
    // keeps the Transport promise that callers can reuse their buffer at once.
    try {
      this.socket.send(Buffer.from(bytes), port, to.address, this.onSendDone);
    } catch {
      // e.g. an IPv6 destination on an IPv4 socket: dgram throws synchronously.
      this.stats.sendErrors++;
    }
  }

  onReceive(handler: ReceiveHandler): void {
    this.handler = handler;
  }

  localAddress(): Endpoint {
    return this.local;
  }

  /** The SO_RCVBUF/SO_SNDBUF sizes the kernel granted, bytes (see {@link grantedBufferSizes}); below those asked when it capped them. */
  bufferSizes(): SocketBufferSizes {
    return grantedBufferSizes(this.socket);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handler = undefined;
    this.socket.close();
  }
}
