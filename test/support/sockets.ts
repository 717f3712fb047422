/**
 * Loopback sockets for end-to-end tests: free ports for a process under test to bind,
 * and UDP sockets (an echo origin among them) that are closed in a root-level `after`
 * hook of the test file that imports this module, even when an assertion fails (an
 * open socket would keep the test process alive). Closing one earlier is fine.
 */
import dgram from 'node:dgram';
import { after } from 'node:test';
export { freePort } from '../../kit/free-port.js';

const sockets = new Set<dgram.Socket>();
after(() => {
  for (const socket of sockets) {
    try {
      socket.close();
    } catch {
      // already closed
    }
  }
});

/** A new IPv4 UDP socket, closed after the test file if the test has not closed it. */
export function udpSocket(): dgram.Socket {
  const socket = dgram.createSocket('udp4');
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
  return socket;
}

/** A client socket from {@link udpClient} and what it has received so far, in order. */
export interface UdpClient<T> {
  readonly socket: dgram.Socket;
  readonly replies: T[];
}

/** Binds a {@link udpSocket} on 127.0.0.1 that keeps every datagram it receives, as `read` turns it (the bytes by default). */
export async function udpClient<T = Buffer>(read: (message: Buffer) => T = (message) => message as T): Promise<UdpClient<T>> {
  const socket = udpSocket();
  const replies: T[] = [];
  socket.on('message', (message) => replies.push(read(message)));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, replies };
}

/** A UDP echo origin on 127.0.0.1 (see `udpEchoOrigin`). */
export interface UdpEchoOrigin {
  readonly socket: dgram.Socket;
  readonly port: number;
  /** Datagrams received, by source `address:port`. */
  readonly sources: Map<string, number>;
}

/** Binds a UDP socket on 127.0.0.1 that sends every datagram back to where it came from. */
export async function udpEchoOrigin(): Promise<UdpEchoOrigin> {
  const socket = udpSocket();
  const sources = new Map<string, number>();
  socket.on('message', (m, from) => {
    const key = `${from.address}:${from.port}`;
    sources.set(key, (sources.get(key) ?? 0) + 1);
    socket.send(m, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, port: socket.address().port, sources };
}
