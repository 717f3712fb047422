/**
 * `slipstream sim proxy` on TCP, end to end: bulk data arrives intact (sha256) under
 * delay, jitter, bandwidth and slicing; resets after N bytes and on demand; stalls.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it, type TestContext } from 'node:test';
import { callApi, createProxy, sleep, startProxyProcess, type ProxyProcess } from './proxy-harness.js';

let proxy: ProxyProcess;

before(async () => {
  proxy = await startProxyProcess(['--seed', '3']);
});

after(async () => {
  assert.equal(await proxy.stop(), 0, proxy.output());
});

interface Upstream {
  port: number;
  server: Server;
  /** Per accepted connection: bytes received, and its socket. */
  connections: { received: Buffer[]; socket: Socket; ended: Promise<void> }[];
  close(): Promise<void>;
}

/** A TCP server that keeps what it receives and, if given, sends `reply` then ends. */
async function upstream(reply?: Buffer): Promise<Upstream> {
  const connections: Upstream['connections'] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => undefined);
    const ended = new Promise<void>((resolve) => {
      socket.on('end', () => resolve());
      socket.on('close', () => resolve());
    });
    connections.push({ received, socket, ended });
    if (reply !== undefined) socket.end(reply);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    server,
    connections,
    close: async () => {
      for (const c of connections) c.socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Connects, sends `data`, half-closes, and collects everything until the other side closes. */
function exchange(port: number, data: Buffer): Promise<{ received: Buffer; error: NodeJS.ErrnoException | undefined; elapsedMs: number }> {
  return new Promise((resolve) => {
    const startMs = performance.now();
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let error: NodeJS.ErrnoException | undefined;
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e));
    socket.on('close', () => resolve({ received: Buffer.concat(chunks), error, elapsedMs: performance.now() - startMs }));
    socket.end(data);
  });
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('sim proxy: TCP', () => {
  it('moves bulk data intact both ways under delay, jitter, slicing and a bandwidth limit', async () => {
    const up = randomBytes(1_000_000);
    const down = randomBytes(500_000);
    const server = await upstream(down);
    // Uplink: 20 ms ± 5 ms and 16 Mbit/s; downlink: 20 ms, sliced into 1000-byte pieces, 8 Mbit/s.
    const port = await createProxy(proxy.api, {
      name: 'bulk',
      protocol: 'tcp',
      listen: '127.0.0.1:0',
      upstream: `127.0.0.1:${server.port}`,
      uplink: { delayMs: 20, jitterMs: 5, rateKbps: 16_000 },
      downlink: { delayMs: 20, rateKbps: 8_000, sliceBytes: 1000 },
    });
    try {
      const result = await exchange(port, up);
      await server.connections[0]!.ended;
      const received = Buffer.concat(server.connections[0]!.received);
      assert.equal(result.error, undefined);
      assert.equal(received.length, up.length, 'upstream got every byte');
      assert.equal(sha256(received), sha256(up), 'uplink sha256 matches');
      assert.equal(result.received.length, down.length, 'client got every byte');
      assert.equal(sha256(result.received), sha256(down), 'downlink sha256 matches');
      // 1 MB at 16 Mbit/s is 500 ms of serialization: the bandwidth limit was applied.
      assert.ok(result.elapsedMs >= 480, `the exchange took ${result.elapsedMs.toFixed(0)} ms; 1 MB at 16 Mbit/s needs ≥ 500 ms`);
      process.stdout.write(`# TCP bulk 1 MB up (16 Mbit/s, 20±5 ms) + 0.5 MB down (8 Mbit/s, sliced): ${result.elapsedMs.toFixed(0)} ms, sha256 match both ways\n`);
      const stats = (await callApi(proxy.api, 'GET', '/v1/proxies/bulk')).body.stats;
      assert.equal(stats.uplink.bytesOut, up.length);
      assert.equal(stats.downlink.bytesOut, down.length);
    } finally {
      await callApi(proxy.api, 'DELETE', '/v1/proxies/bulk');
      await server.close();
    }
  });

  it('resets the connection after resetAfterBytes, having forwarded exactly that many', async () => {
    const server = await upstream();
    const port = await createProxy(proxy.api, { name: 'rst', protocol: 'tcp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${server.port}`, uplink: { resetAfterBytes: 100_000 } });
    try {
      const result = await exchange(port, randomBytes(300_000));
      await server.connections[0]!.ended;
      assert.equal(result.error?.code, 'ECONNRESET', 'the client sees a reset');
      assert.equal(Buffer.concat(server.connections[0]!.received).length, 100_000, 'the upstream got exactly resetAfterBytes');
      assert.equal((await callApi(proxy.api, 'GET', '/v1/proxies/rst')).body.stats.uplink.resets, 1);
    } finally {
      await callApi(proxy.api, 'DELETE', '/v1/proxies/rst');
      await server.close();
    }
  });

  it('resets every connection on demand', async () => {
    const server = await upstream();
    const port = await createProxy(proxy.api, { name: 'rst2', protocol: 'tcp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${server.port}` });
    try {
      const socket = connect({ port, host: '127.0.0.1' });
      const closed = new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        let error: NodeJS.ErrnoException | undefined;
        socket.on('error', (e: NodeJS.ErrnoException) => (error = e));
        socket.on('close', () => resolve(error));
      });
      socket.write('hello');
      while (server.connections.length === 0) await sleep(5);
      const reset = await callApi(proxy.api, 'POST', '/v1/proxies/rst2/reset');
      assert.deepEqual(reset.body, { connectionsReset: 1 });
      assert.equal((await closed)?.code, 'ECONNRESET');
    } finally {
      await callApi(proxy.api, 'DELETE', '/v1/proxies/rst2');
      await server.close();
    }
  });

  it('stalls: nothing flows while stalled, everything arrives intact after', async (t: TestContext) => {
    const server = await upstream();
    const port = await createProxy(proxy.api, { name: 'stall', protocol: 'tcp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${server.port}`, uplink: { stalled: true } });
    try {
      const data = randomBytes(50_000);
      const socket = connect({ port, host: '127.0.0.1' });
      socket.on('error', () => undefined);
      socket.write(data);
      await sleep(300);
      while (server.connections.length === 0) await sleep(5);
      assert.equal(Buffer.concat(server.connections[0]!.received).length, 0, 'nothing forwarded while stalled');
      assert.equal((await callApi(proxy.api, 'PUT', '/v1/proxies/stall/impairments', { uplink: {} })).status, 200);
      const deadline = performance.now() + 10_000;
      while (Buffer.concat(server.connections[0]!.received).length < data.length && performance.now() < deadline) await sleep(5);
      assert.equal(sha256(Buffer.concat(server.connections[0]!.received)), sha256(data), 'everything arrives once the stall is lifted');
      // A timed stall over the API: the next write waits it out. The stall starts after
      // the request is sent, so nothing can arrive sooner than 300 ms after that (a floor,
      // not a timing figure); the ceiling only says the stall ends at all.
      const before = Buffer.concat(server.connections[0]!.received).length;
      const requestedAt = performance.now();
      const stalled = await callApi(proxy.api, 'POST', '/v1/proxies/stall/stall', { durationMs: 300, direction: 'uplink' });
      assert.equal(stalled.status, 200);
      socket.write(Buffer.alloc(1000, 7));
      while (Buffer.concat(server.connections[0]!.received).length < before + 1000 && performance.now() < requestedAt + 10_000) await sleep(5);
      const waitedMs = performance.now() - requestedAt;
      t.diagnostic(`data written during a 300 ms stall arrived ${waitedMs.toFixed(0)} ms after the stall was asked for`);
      assert.equal(Buffer.concat(server.connections[0]!.received).length, before + 1000, 'the data arrives once the stall ends');
      assert.ok(waitedMs >= 290, `data written during a 300 ms stall arrived after ${waitedMs.toFixed(0)} ms`);
      socket.destroy();
    } finally {
      await callApi(proxy.api, 'DELETE', '/v1/proxies/stall');
      await server.close();
    }
  });
});
