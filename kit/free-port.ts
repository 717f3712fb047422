/**
 * A port on 127.0.0.1 that was free a moment ago: bound to port 0, read and closed
 * again (awaited), for a process started next to listen on. Used by the benchmarks
 * and the end-to-end tests, which start real processes on loopback.
 */
import dgram from 'node:dgram';
import net from 'node:net';

/** A free `protocol` port on 127.0.0.1 (default TCP). Another process may take it before the caller does; callers start at once. */
export async function freePort(protocol: 'udp' | 'tcp' = 'tcp'): Promise<number> {
  if (protocol === 'tcp') {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}
