/**
 * End-to-end: L4 TCP through the real `slipstream relay` process on 127.0.0.x.
 * Half-closes pass through both ways without losing a byte (sha256 of 10 MB each way),
 * a connection ends in the log and the metrics however it ends, byte metrics move while
 * a connection is open, and SIGTERM does not wait for connections that are over. A
 * fast-check property runs the same half-close exchange over shutdown orders and chunk
 * sizes against an in-process relay (smaller sizes, a handful of runs).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { loadRelayConfig } from '../relay/src/config.js';
import { Relay } from '../relay/src/relay.js';
import { signalIfRunning } from '../kit/child-signal.js';
import { JsonLogProcess } from './support/json-lines.js';
import { CLI_PATH } from './support/run-cli.js';
import { until } from './support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-relay-tcp-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const children = new Set<JsonLogProcess>();
after(() => {
  for (const p of children) signalIfRunning(p.child, 'SIGKILL');
});

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

interface Addresses {
  rules: Record<string, { address: string; port: number }[]>;
  metrics?: { port: number };
  tunnel?: { port: number };
}

/** Starts `slipstream relay` on `yaml` and waits for its `relay started` line. */
async function startRelay(yaml: string, name: string): Promise<{ relay: JsonLogProcess; addresses: Addresses }> {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, yaml);
  const relay = new JsonLogProcess(spawn(process.execPath, [CLI_PATH, 'relay', '--config', path], { stdio: ['ignore', 'pipe', 'pipe'] }));
  children.add(relay);
  const started = await relay.waitLog((l) => l.msg === 'relay started', 15_000, 'relay started');
  return { relay, addresses: started.addresses as Addresses };
}

/** Writes `data` to `socket` in `chunkBytes` pieces, respecting backpressure; resolves when all is handed to the kernel. */
async function writeChunked(socket: net.Socket, data: Buffer, chunkBytes: number): Promise<void> {
  for (let at = 0; at < data.length; at += chunkBytes) {
    if (!socket.write(data.subarray(at, Math.min(data.length, at + chunkBytes)))) {
      await new Promise<void>((resolve, reject) => {
        socket.once('drain', resolve);
        socket.once('close', () => reject(new Error('socket closed while writing')));
      });
    }
  }
}

/** Collects everything `socket` reads until its peer's FIN; rejects on a reset or error. */
function readAll(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

/** Which side sends its FIN first (the other sends all it has, then its FIN). */
type Order = 'client-first' | 'origin-first' | 'both';

/**
 * An origin that, per connection, reads until the client's FIN while sending `reply`
 * (for `origin-first`/`both` at once, for `client-first` only after the client's FIN),
 * then ends. What each connection received is recorded.
 */
async function halfCloseOrigin(reply: () => { data: Buffer; order: Order; chunkBytes: number }): Promise<{ server: net.Server; port: number; received: Promise<Buffer>[] }> {
  const received: Promise<Buffer>[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    const { data, order, chunkBytes } = reply();
    const got = readAll(socket);
    received.push(got);
    const send = (): void => void writeChunked(socket, data, chunkBytes).then(() => socket.end(), () => undefined);
    if (order === 'client-first') void got.then(send, () => undefined);
    else send();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port, received };
}

/**
 * One exchange through the relay at `port`: the client sends `up` and its FIN, the
 * origin sends its data and its FIN, in `order`. Resolves with what the client read.
 */
async function exchange(port: number, localAddress: string, up: Buffer, order: Order, chunkBytes: number, originGotFin: () => Promise<unknown>): Promise<Buffer> {
  const client = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  const got = readAll(client);
  if (order === 'origin-first') {
    // Keep sending after the origin's FIN reached us: the relay must keep the way up open.
    await got;
  }
  await writeChunked(client, up, chunkBytes);
  client.end();
  const down = await got;
  await originGotFin();
  await new Promise<void>((resolve) => (client.closed ? resolve() : client.once('close', () => resolve())));
  return down;
}

async function metricValue(port: number, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && labels.split(',').every((label) => l.includes(label)));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** This process's soft open-file limit (from /proc; Infinity where there is none). */
function openFilesSoftLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

describe('L4 TCP through a relay process', () => {
  test('2,000 idle TCP connections from 10 source addresses do not lock out a new player\'s TCP connection or a UDP flow', async () => {
    // The test holds every client socket and the origin's side of each admitted one: stay well inside the fd limit.
    const count = Math.min(2000, Math.floor((openFilesSoftLimit() - 400) / 2));
    assert.ok(count >= 500, `needs an open-file limit of at least 1,400 (ulimit -n); have ${openFilesSoftLimit()}`);
    const sessionsMax = Math.floor(count / 2);
    const held = new Set<net.Socket>();
    const tcpOrigin = net.createServer((socket) => {
      held.add(socket);
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => tcpOrigin.listen(0, '127.0.0.1', resolve));
    const udpOrigin = dgram.createSocket('udp4');
    udpOrigin.on('message', (m, from) => udpOrigin.send(m, from.port, from.address));
    await new Promise<void>((resolve) => udpOrigin.bind(0, '127.0.0.1', resolve));
    const { relay, addresses } = await startRelay(
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: 127.0.0.1:0 }',
        // A shared cap the idle connections could fill, and no new-connection rate limit to slow the attack down.
        `limits: { sessionsMax: ${sessionsMax}, newSessionsPerSourcePerSecond: 0 }`,
        'rules:',
        `  - { name: lobby, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${(tcpOrigin.address() as net.AddressInfo).port}] }`,
        `  - { name: game, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:${udpOrigin.address().port}] }`,
      ].join('\n'),
      'slowloris',
    );
    const clients: net.Socket[] = [];
    let closed = 0;
    try {
      const port = addresses.rules.lobby![0]!.port;
      const metricsPort = addresses.metrics!.port;
      // The attack: idle connections from 127.0.0.40–49, opened in bounded batches (the listen backlog is finite).
      for (let batch = 0; batch < count; batch += 100) {
        const opened: Promise<void>[] = [];
        for (let i = batch; i < Math.min(count, batch + 100); i++) {
          const socket = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${40 + (i % 10)}` });
          socket.on('error', () => undefined);
          socket.once('close', () => closed++);
          clients.push(socket);
          opened.push(new Promise((resolve) => {
            socket.once('connect', () => resolve());
            socket.once('close', () => resolve());
          }));
        }
        await Promise.all(opened);
      }
      // Settled: every connection was either taken into the table or refused (closed by the relay).
      const tcpConnections = async (): Promise<number> => ((await (await fetch(`http://127.0.0.1:${metricsPort}/health`)).json()) as { tcpConnections: number }).tcpConnections;
      for (let waited = 0; ; waited += 50) {
        if (closed + (await tcpConnections()) === count) break;
        assert.ok(waited < 30_000, `the relay did not settle: ${closed} refused, ${await tcpConnections()} held of ${count}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const holding = await tcpConnections();
      process.stdout.write(`# ${count} idle connections from 10 addresses: ${holding} held, ${closed} refused (sessionsMax ${sessionsMax})\n`);
      assert.ok(closed > 0, 'the per-source caps refused some');
      // A new player still gets through, on TCP …
      const player = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.60' });
      player.on('error', () => undefined);
      const echoed = await new Promise<string>((resolve) => {
        let text = '';
        player.once('connect', () => player.write('hello'));
        player.on('data', (d: Buffer) => {
          text += String(d);
          if (text.length >= 5) resolve(text);
        });
        player.once('close', () => resolve(`closed after '${text}'`));
      });
      player.destroy();
      assert.equal(echoed, 'hello', 'a new player\'s TCP connection is served');
      // … and on UDP.
      const udpPlayer = dgram.createSocket('udp4');
      let udpReplies = 0;
      udpPlayer.on('message', () => udpReplies++);
      await new Promise<void>((resolve) => udpPlayer.bind(0, '127.0.0.61', resolve));
      try {
        for (let tries = 0; tries < 50 && udpReplies === 0; tries++) {
          udpPlayer.send('ping', addresses.rules.game![0]!.port, '127.0.0.1');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.ok(udpReplies > 0, 'a new UDP flow is served');
      } finally {
        udpPlayer.close();
      }
      assert.equal(await metricValue(metricsPort, 'slipstream_relay_tcp_source_cap_refused_total', ''), closed, 'each refusal is counted');
    } finally {
      for (const socket of clients) socket.destroy();
      for (const socket of held) socket.destroy();
      signalIfRunning(relay.child, 'SIGKILL');
      tcpOrigin.close();
      udpOrigin.close();
    }
  });


  test('idle connections closed by the first-byte timeout log one aggregated session_end line per reason, counted one by one in /metrics; a connection that carried bytes keeps its own line', async () => {
    const origin = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const { relay, addresses } = await startRelay(
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: 127.0.0.1:0 }',
        // One interval covers the whole run: every end after the first is only counted.
        'logAggregateIntervalMs: 600000',
        'limits: { newSessionsPerSourcePerSecond: 0 }',
        'tcp: { firstByteTimeoutMs: 1000, silentPerSourceMax: 16 }',
        'rules:',
        `  - { name: lobby, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${(origin.address() as net.AddressInfo).port}] }`,
      ].join('\n'),
      'first-byte-log',
    );
    const IDLE = 48;
    const clients: net.Socket[] = [];
    try {
      const port = addresses.rules.lobby![0]!.port;
      // A slowloris from 3 addresses (16 silent connections each): the relay closes each after 1 s without a byte.
      const closed: Promise<void>[] = [];
      for (let i = 0; i < IDLE; i++) {
        const socket = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${70 + (i % 3)}` });
        socket.on('error', () => undefined);
        clients.push(socket);
        closed.push(new Promise((resolve) => socket.once('close', () => resolve())));
      }
      // A player: bytes both ways, then it leaves.
      const player = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.75' });
      player.on('error', () => undefined);
      const echoed = await new Promise<string>((resolve) => {
        player.once('connect', () => player.write('hello'));
        player.once('data', (d: Buffer) => resolve(String(d)));
        player.once('close', () => resolve('closed'));
      });
      assert.equal(echoed, 'hello');
      const playerPort = player.localPort;
      player.end();
      await Promise.all(closed);
      const metricsPort = addresses.metrics!.port;
      let counted = 0;
      for (let waited = 0; counted < IDLE && waited < 10_000; waited += 100) {
        counted = await metricValue(metricsPort, 'slipstream_relay_events_total', 'event="session_end",reason="no first byte"');
        if (counted < IDLE) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(counted, IDLE, 'every first-byte timeout is counted in /metrics');
      const playerEnd = await relay.waitLog((l) => l.event === 'session_end' && l.client === `127.0.0.75:${playerPort}`, 10_000, 'the player\'s session_end');
      assert.equal(playerEnd.bytesUp, 5);
      assert.equal(playerEnd.count, undefined, 'a session that carried bytes is a line of its own');
      const silentLines = relay.lines.filter((l) => l.event === 'session_end' && l.reason === 'no first byte');
      process.stdout.write(`# ${IDLE} first-byte timeouts: ${silentLines.length} session_end line(s) for them\n`);
      assert.equal(silentLines.length, 1, `one line for the first (at once), the rest counted into the interval's summary; got ${silentLines.length}`);
      assert.equal(silentLines[0]!.count, 1);
      assert.equal(silentLines[0]!.rule, 'lobby', 'the line carries the first end\'s fields');
    } finally {
      for (const socket of clients) socket.destroy();
      signalIfRunning(relay.child, 'SIGKILL');
      origin.close();
    }
  });

  test('half-closed 10 MB transfers both ways are byte-exact; each connection ends in the log; SIGTERM then exits at once', async () => {
    const TEN_MB = 10 * 1024 * 1024 + 512 * 1024;
    const orders: Order[] = ['client-first', 'origin-first'];
    const downs = orders.map(() => randomBytes(TEN_MB));
    let served = 0;
    const origin = await halfCloseOrigin(() => ({ data: downs[served]!, order: orders[served++]!, chunkBytes: 64 * 1024 }));
    const { relay, addresses } = await startRelay(
      ['upstreamBindAddress: 127.0.0.1', 'metrics: { listen: 127.0.0.1:0 }', 'drain: { timeoutMs: 600000 }', 'rules:', `  - { name: bulk, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${origin.port}] }`].join('\n'),
      'half-close',
    );
    try {
      const port = addresses.rules.bulk![0]!.port;
      for (const [i, order] of orders.entries()) {
        const up = randomBytes(TEN_MB);
        const down = await exchange(port, `127.0.0.${2 + i}`, up, order, 64 * 1024, () => origin.received[i]!);
        assert.equal(down.length, TEN_MB, `${order}: the client read all the origin sent`);
        assert.equal(sha256(down), sha256(downs[i]!), `${order}: origin → client byte-exact`);
        const atOrigin = await origin.received[i]!;
        assert.equal(sha256(atOrigin), sha256(up), `${order}: client → origin byte-exact`);
        const end = await relay.waitLog((l) => l.event === 'session_end' && String(l.client).startsWith(`127.0.0.${2 + i}:`), 10_000, `${order}: session_end`);
        assert.equal(end.bytesUp, TEN_MB, `${order}: session_end counts the bytes up`);
        assert.equal(end.bytesDown, TEN_MB, `${order}: session_end counts the bytes down`);
        assert.equal(end.reason, order === 'client-first' ? 'client closed' : 'origin closed');
      }
      const health = (await (await fetch(`http://127.0.0.1:${addresses.metrics!.port}/health`)).json()) as { tcpConnections: number };
      assert.equal(health.tcpConnections, 0, 'no connection is left in the table');
      assert.equal(await metricValue(addresses.metrics!.port, 'slipstream_relay_bytes_total', 'rule="bulk",direction="upstream"'), 2 * TEN_MB);
      // The drain deadline is 10 minutes: the relay stops at once because nothing is left.
      relay.child.kill('SIGTERM');
      const exited = await Promise.race([relay.exited, new Promise<undefined>((resolve) => setTimeout(resolve, 20_000, undefined))]);
      assert.deepEqual(exited, { code: 0, signal: null }, 'SIGTERM did not wait for the drain deadline');
      const stopped = await relay.waitLog((l) => l.event === 'stopped', 100, 'stopped').catch(() => relay.lines.find((l) => l.event === 'stopped'));
      assert.equal(stopped?.sessionsCut, 0);
    } finally {
      signalIfRunning(relay.child, 'SIGKILL');
      origin.server.close();
    }
  });

  test('byte metrics count a connection while it is open; a reset connection ends in the log and resets the other side', async () => {
    let originSocket: net.Socket | undefined;
    let originBytes = 0;
    const origin = net.createServer((socket) => {
      originSocket = socket;
      socket.on('error', () => undefined);
      socket.on('data', (c: Buffer) => (originBytes += c.length));
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const { relay, addresses } = await startRelay(
      ['upstreamBindAddress: 127.0.0.1', 'metrics: { listen: 127.0.0.1:0 }', 'rules:', `  - { name: live, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${(origin.address() as net.AddressInfo).port}] }`].join('\n'),
      'live-bytes',
    );
    try {
      const client = net.connect({ port: addresses.rules.live![0]!.port, host: '127.0.0.1', localAddress: '127.0.0.9' });
      const clientClosed = new Promise<boolean>((resolve) => client.once('close', resolve));
      client.on('error', () => undefined);
      await new Promise<void>((resolve) => client.once('connect', resolve));
      const MB = 1024 * 1024;
      await writeChunked(client, randomBytes(MB), 16 * 1024);
      await until(() => originBytes === MB, 10_000, 'the origin read 1 MiB');
      const metricsPort = addresses.metrics!.port;
      assert.equal(await metricValue(metricsPort, 'slipstream_relay_bytes_total', 'rule="live",direction="upstream"'), MB, 'the open connection\'s bytes are counted');
      // The origin aborts: the client is reset (not a clean EOF after partial data) and the connection ends.
      originSocket!.resetAndDestroy();
      const hadError = await clientClosed;
      assert.equal(hadError, true, 'the client saw a reset');
      const end = await relay.waitLog((l) => l.event === 'session_end' && l.rule === 'live', 10_000, 'session_end after the reset');
      assert.equal(end.reason, 'origin reset');
      assert.equal(end.bytesUp, MB);
    } finally {
      signalIfRunning(relay.child, 'SIGKILL');
      origin.close();
    }
  });

  test('property: any shutdown order and chunk size passes every byte both ways and ends the connection (in-process relay)', async () => {
    let current: { data: Buffer; order: Order; chunkBytes: number } = { data: Buffer.alloc(0), order: 'both', chunkBytes: 1 };
    const origin = await halfCloseOrigin(() => current);
    const path = join(dir, 'property.yaml');
    writeFileSync(path, ['upstreamBindAddress: 127.0.0.1', 'metrics: { listen: "off" }', 'rules:', `  - { name: prop, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${origin.port}] }`].join('\n'));
    const relay = await Relay.start({ config: loadRelayConfig(path), logger: pino({ level: 'silent' }) });
    try {
      const port = relay.addresses().rules.prop![0]!.port;
      let runs = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom<Order>('client-first', 'origin-first', 'both'),
          fc.integer({ min: 0, max: 300_000 }),
          fc.integer({ min: 0, max: 300_000 }),
          fc.constantFrom(512, 1460, 16_384, 65_536),
          fc.constantFrom(512, 1460, 16_384, 65_536),
          async (order, upBytes, downBytes, upChunkBytes, downChunkBytes) => {
            const up = randomBytes(upBytes);
            current = { data: randomBytes(downBytes), order, chunkBytes: downChunkBytes };
            const index = runs++;
            const down = await exchange(port, '127.0.0.30', up, order, upChunkBytes, () => origin.received[index]!);
            assert.equal(sha256(down), sha256(current.data));
            assert.equal(sha256(await origin.received[index]!), sha256(up));
            await until(() => relay.core.tcpConnectionCount === 0, 10_000, 'the connection left the table');
          },
        ),
        { numRuns: 8, seed: 14 },
      );
    } finally {
      relay.close();
      origin.server.close();
    }
  });
});
