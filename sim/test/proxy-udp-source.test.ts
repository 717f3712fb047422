/**
 * The UDP impairment proxy must survive any datagram: one from source port 0 (which
 * cannot be answered, and on which `send` throws) once crashed the proxy process.
 *
 * Node cannot send a datagram from port 0 (binding to 0 picks an ephemeral port, and
 * raw sockets are not available), so these tests run a real {@link UdpProxy} in this
 * process and deliver the datagram to its listen socket's `message` handler directly,
 * with the `RemoteInfo` the kernel would report for such a sender.
 */
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { Rng } from '../../proto/src/rng.js';
import { UdpProxy } from '../src/proxy/udp-proxy.js';
import { udpEcho } from './proxy-harness.js';

async function startProxy(upstreamPort: number, delayMs = 0): Promise<UdpProxy> {
  return UdpProxy.start({
    name: 'p0',
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { host: '127.0.0.1', port: upstreamPort },
    idleTimeoutMs: 10_000,
    impairment: { uplink: { delayMs }, downlink: { delayMs } },
    rng: new Rng(1),
    clock: () => performance.now(),
    logger: pino({ level: 'silent' }),
  });
}

/** The proxy's listen socket, to hand it a datagram as the kernel would. */
function listenSocket(proxy: UdpProxy): Socket {
  return (proxy as unknown as { socket: Socket }).socket;
}

describe('UDP proxy and unanswerable senders', () => {
  it('drops a datagram from source port 0 instead of crashing, and keeps forwarding', async () => {
    const echo = await udpEcho();
    const proxy = await startProxy(echo.port, 5);
    try {
      const from: RemoteInfo = { address: '127.0.0.1', family: 'IPv4', port: 0, size: 4 };
      // Before the fix: a flow opened for port 0, the echo's reply was sent to port 0 and `send` threw in a socket callback.
      assert.doesNotThrow(() => listenSocket(proxy).emit('message', Buffer.from('ping'), from));
      assert.equal(proxy.badSourceDropped, 1);
      assert.equal(proxy.flowsOpen, 0, 'no flow for an unanswerable sender');
      // An ordinary client still gets its echo through the proxy.
      const client = createSocket('udp4');
      try {
        const reply = new Promise<Buffer>((resolve) => client.once('message', resolve));
        client.send(Buffer.from('hello'), proxy.listen.port, '127.0.0.1');
        const got = await Promise.race([reply, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000).unref())]);
        assert.equal(got?.toString(), 'hello');
      } finally {
        client.close();
      }
    } finally {
      await proxy.close();
      await echo.close();
    }
  });

  it('a send that throws (port 0, closed socket) is counted and dropped, not thrown', async () => {
    const echo = await udpEcho();
    const proxy = await startProxy(echo.port);
    try {
      const flow = { clientAddress: '127.0.0.1', clientPort: 0, closed: false, socket: createSocket('udp4') };
      flow.socket.close();
      // Downlink to port 0, uplink on a closed socket: both throw inside dgram.
      assert.doesNotThrow(() => proxy.transmit(flow as never, 1, Buffer.from('x')));
      assert.doesNotThrow(() => proxy.transmit(flow as never, 0, Buffer.from('x')));
      assert.equal(proxy.sendErrors, 2);
      assert.equal(proxy.downlinkStats.delivered + proxy.uplinkStats.delivered, 0, 'failed sends are not counted as delivered');
    } finally {
      await proxy.close();
      await echo.close();
    }
  });
});
