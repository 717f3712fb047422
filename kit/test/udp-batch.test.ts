/**
 * The udp-batch addon on loopback: batches received with `recvmmsg` and sent with
 * `sendmmsg`, address ids (stable per peer, reassigned when the table is full), IPv6
 * and dual-stack sockets, connected sends, UDP GSO runs, and a reuseport BPF program
 * steering by payload. Runs wherever the addon is built (Linux with a toolchain: `.ci/run` installs
 * one); skipped only off Linux or when SLIPSTREAM_UDP_IO=dgram says it is unavailable.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { release } from 'node:os';
import { loadUdpBatch, UdpBatch, udpIoModeFromEnv, type UdpBatchAddon } from '../udp-batch.js';
import { until } from '../../test/support/wait.js';

const skip = process.platform !== 'linux' ? 'Linux only' : udpIoModeFromEnv() === 'dgram' ? 'SLIPSTREAM_UDP_IO=dgram' : false;

function addon(): UdpBatchAddon {
  const loaded = loadUdpBatch();
  if ('error' in loaded) assert.fail(`the udp-batch addon does not load: ${loaded.error}`);
  return loaded.addon;
}

interface Received {
  socketId: number;
  address: string;
  port: number;
  text: string;
}

/** A UdpBatch recording what it receives (bytes as text) and the size of each batch. */
function recorder(): { io: UdpBatch; got: Received[]; batches: number[] } {
  const got: Received[] = [];
  const batches: number[] = [];
  let inBatch = 0;
  const io = new UdpBatch(
    addon(),
    (socketId, from, bytes) => {
      inBatch++;
      got.push({ socketId, address: from.address, port: from.port, text: Buffer.from(bytes).toString() });
    },
    () => {
      batches.push(inBatch);
      inBatch = 0;
    },
  );
  return { io, got, batches };
}

function udpClient(type: 'udp4' | 'udp6', address: string): Promise<dgram.Socket & { received: string[] }> {
  const socket = Object.assign(dgram.createSocket(type), { received: [] as string[] });
  socket.on('message', (m) => socket.received.push(m.toString()));
  return new Promise((resolve) => socket.bind(0, address, () => resolve(socket)));
}

const opened: (() => void)[] = [];
after(() => {
  for (const close of opened) close();
});

describe('udp-batch addon', { skip }, () => {
  test('a burst sent with one sendmmsg arrives as batches of up to 64, every datagram intact and in order', async () => {
    const { io, got, batches } = recorder();
    const rx = io.open('127.0.0.1', 0, { receiveBufferBytes: 1 << 20 });
    const tx = io.open('127.0.0.1', 0);
    opened.push(() => io.close(rx.id), () => io.close(tx.id));
    for (let i = 0; i < 150; i++) assert.equal(io.queue(tx.id, '127.0.0.1', rx.port, undefined, Buffer.from(`d${i}`)), true);
    io.commit();
    await until(() => got.length === 150, 5000, '150 datagrams');
    assert.deepEqual(
      got.map((g) => g.text),
      Array.from({ length: 150 }, (_, i) => `d${i}`),
    );
    for (const g of got) assert.deepEqual([g.socketId, g.address, g.port], [rx.id, '127.0.0.1', tx.port]);
    // All were queued in the kernel before the first read: full batches.
    assert.deepEqual(batches.slice(0, 2), [64, 64]);
  });

  test('UDP GSO: runs of one size to one peer leave as one message each and arrive as the datagrams queued, intact and in order', async () => {
    const { io } = recorder();
    const tx = io.open('127.0.0.1', 0);
    opened.push(() => io.close(tx.id));
    // Plain dgram receivers (no UDP_GRO): the kernel hands them each datagram alone.
    const peers = await Promise.all([0, 1].map(async () => {
      const socket = Object.assign(dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 }), { got: [] as Buffer[] });
      socket.on('message', (m) => socket.got.push(m));
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      opened.push(() => socket.close());
      return socket;
    }));
    const expected: Buffer[][] = [[], []];
    const queue = (peer: number, size: number): void => {
      const bytes = Buffer.alloc(size, 0x61 + (expected[peer]!.length % 26));
      if (size >= 4) bytes.writeUInt32BE(expected[peer]!.length);
      expected[peer]!.push(bytes);
      assert.equal(io.queue(tx.id, '127.0.0.1', peers[peer]!.address().port, undefined, bytes), true);
    };
    const sizes = [
      ...Array<number>(10).fill(100), 37, // a run, ended by a shorter datagram (its last segment)
      ...Array<number>(5).fill(100), ...Array<number>(3).fill(200), // a longer one starts a new run
      0, 0, 5, // empty datagrams are never segments
      ...Array<number>(70).fill(10), // more than 64 segments: two messages
      ...Array<number>(61).fill(1000), // more than 60,000 bytes: two messages
    ];
    // The other peer's datagrams between runs: a run is of consecutive datagrams to one destination.
    sizes.forEach((size, i) => {
      if (i === 0 || size > sizes[i - 1]!) queue(1, 300);
      queue(0, size);
    });
    const before = io.stats();
    io.commit();
    await until(() => peers.every((p, i) => p.got.length >= expected[i]!.length), 5000, 'every datagram');
    peers.forEach((p, i) => assert.deepEqual(p.got, expected[i]));
    const after = io.stats();
    assert.equal(after.sendErrors, before.sendErrors);
    // UDP GSO is in Linux since 4.18: here it is used (fewer messages than datagrams).
    const gsoDatagrams = after.gsoDatagrams - before.gsoDatagrams;
    const gsoMessages = after.gsoMessages - before.gsoMessages;
    if (Number(release().split('.')[0]) >= 5) assert.ok(gsoDatagrams > 2 * gsoMessages && gsoMessages >= 6, `GSO used: ${gsoMessages} messages for ${gsoDatagrams} datagrams`);
    // A dual-stack socket's run to an IPv4 peer (an IPv4-mapped destination) arrives the same.
    const dual = io.open('::', 0);
    opened.push(() => io.close(dual.id));
    peers[0]!.got.length = 0;
    for (let i = 0; i < 20; i++) io.queue(dual.id, '127.0.0.1', peers[0]!.address().port, undefined, Buffer.from(`dual-${String(i).padStart(2, '0')}`));
    io.commit();
    await until(() => peers[0]!.got.length >= 20, 5000, 'the dual-stack run');
    assert.deepEqual(
      peers[0]!.got.map((m) => m.toString()),
      Array.from({ length: 20 }, (_, i) => `dual-${String(i).padStart(2, '0')}`),
    );
    assert.equal(io.stats().sendErrors, before.sendErrors);
  });

  test('echo: a prefix and the bytes leave as one datagram to the sender; unsendable addresses are counted, not thrown', async () => {
    const io: UdpBatch = new UdpBatch(
      addon(),
      (socketId, from, bytes) => io.queue(socketId, from.address, from.port, Buffer.from('re:'), bytes),
      () => io.commit(),
    );
    const server = io.open('127.0.0.1', 0);
    opened.push(() => io.close(server.id));
    const client = await udpClient('udp4', '127.0.0.1');
    opened.push(() => client.close());
    for (let i = 0; i < 20; i++) client.send(`m${i}`, server.port, '127.0.0.1');
    await until(() => client.received.length === 20, 5000, '20 echoes');
    assert.deepEqual(client.received.sort(), Array.from({ length: 20 }, (_, i) => `re:m${i}`).sort());
    assert.equal(io.queue(server.id, 'not-an-ip', 1000, undefined, Buffer.from('x')), false);
    assert.equal(io.queueErrors, 1);
  });

  test('address ids: one per address and port, its text as dgram gives it; a full table reassigns ids and says so', async () => {
    const a = addon();
    const ctx = a.createContext(() => {}, 1, 2048, 4, 65536);
    const rx = a.open(ctx.handle, '127.0.0.1', 0, 0, 0, 0);
    opened.push(() => a.close(ctx.handle, rx.id));
    const clients = await Promise.all(Array.from({ length: 6 }, () => udpClient('udp4', '127.0.0.1')));
    opened.push(() => clients.forEach((c) => c.close()));
    const seen = new Map<number, number>(); // port → id
    const assigned = (): number[] => Array.from({ length: ctx.recvMeta[4]! }, (_, k) => ctx.recvMeta[5 + k]!);
    const receiveOne = async (): Promise<{ id: number; port: number; assigned: number[] }> => {
      let n = 0;
      await until(() => (n = a.recv(ctx.handle, rx.id)) > 0, 5000, 'a datagram');
      assert.equal(n, 1);
      return { id: ctx.recvMeta[2]!, port: ctx.recvMeta[3]!, assigned: assigned() };
    };
    for (const [i, c] of clients.slice(0, 4).entries()) {
      c.send(`x${i}`, rx.port, '127.0.0.1');
      const r = await receiveOne();
      assert.equal(r.port, c.address().port);
      assert.deepEqual(r.assigned, [r.id], 'a new peer is announced');
      assert.equal(a.addressText(ctx.handle, r.id), '127.0.0.1');
      assert.equal(a.addressId(ctx.handle, '127.0.0.1', r.port), r.id, 'the send side finds the same id');
      seen.set(r.port, r.id);
      a.send(ctx.handle, 0); // ends the epoch: ids of earlier batches may be evicted
    }
    assert.equal(new Set(seen.values()).size, 4);
    clients[0]!.send('again', rx.port, '127.0.0.1');
    const again = await receiveOne();
    assert.deepEqual([again.id, again.assigned], [seen.get(clients[0]!.address().port), []], 'a known peer keeps its id');
    a.send(ctx.handle, 0);
    // A fifth and sixth peer: the 4-entry table evicts and reassigns, announcing the ids.
    for (const c of clients.slice(4)) {
      c.send('new', rx.port, '127.0.0.1');
      const r = await receiveOne();
      assert.deepEqual(r.assigned, [r.id]);
      assert.equal(r.port, c.address().port);
      a.send(ctx.handle, 0);
    }
    assert.equal(a.stats(ctx.handle).addressEvictions, 2);
    assert.equal(a.addressId(ctx.handle, 'nonsense', 1), -1);
    assert.equal(a.addressId(ctx.handle, '127.0.0.1', 70000), -1);
  });

  test('IPv6: a ::1 socket sees ::1 peers; a dual-stack :: socket sees IPv4 peers as ::ffff:a.b.c.d and sends back to them', async () => {
    const { io, got } = recorder();
    const v6 = io.open('::1', 0);
    const dual = io.open('::', 0);
    opened.push(() => io.close(v6.id), () => io.close(dual.id));
    assert.equal(v6.family, 6);
    const c6 = await udpClient('udp6', '::1');
    const c4 = await udpClient('udp4', '127.0.0.1');
    opened.push(() => c6.close(), () => c4.close());
    c6.send('six', v6.port, '::1');
    c4.send('four', dual.port, '127.0.0.1');
    await until(() => got.length === 2, 5000, 'two datagrams');
    const six = got.find((g) => g.text === 'six')!;
    const four = got.find((g) => g.text === 'four')!;
    assert.deepEqual([six.address, six.port], ['::1', c6.address().port]);
    assert.deepEqual([four.address, four.port], ['::ffff:127.0.0.1', c4.address().port]);
    // Replies: to the mapped text, and to the plain IPv4 text (mapped by the addon).
    io.queue(dual.id, four.address, four.port, undefined, Buffer.from('back1'));
    io.queue(dual.id, '127.0.0.1', four.port, undefined, Buffer.from('back2'));
    io.queue(v6.id, '::1', six.port, undefined, Buffer.from('back6'));
    io.commit();
    await until(() => c4.received.length === 2 && c6.received.length === 1, 5000, 'replies');
    assert.deepEqual(c4.received.sort(), ['back1', 'back2']);
    assert.deepEqual(c6.received, ['back6']);
  });

  test('connected sends reach the peer; a new peer reconnects the socket, and only that peer is heard', async () => {
    const { io, got } = recorder();
    const s = io.open('127.0.0.1', 0);
    opened.push(() => io.close(s.id));
    const p1 = await udpClient('udp4', '127.0.0.1');
    const p2 = await udpClient('udp4', '127.0.0.1');
    opened.push(() => p1.close(), () => p2.close());
    io.queue(s.id, '127.0.0.1', p1.address().port, undefined, Buffer.from('to1'), true);
    io.queue(s.id, '127.0.0.1', p2.address().port, undefined, Buffer.from('to2'), true);
    io.commit();
    await until(() => p1.received.length === 1 && p2.received.length === 1, 5000, 'both peers');
    // Connected to p2 now: p1's datagrams are not delivered, p2's are.
    // p1's goes first (loopback delivers in the sender's call): had it passed, it would be in first.
    await new Promise<void>((resolve) => p1.send('from1', s.port, '127.0.0.1', () => resolve()));
    p2.send('from2', s.port, '127.0.0.1');
    await until(() => got.length >= 1, 5000, 'a datagram from p2');
    assert.deepEqual(
      got.map((g) => g.text),
      ['from2'],
    );
  });

  test('a reuseport BPF program steers datagrams to the group socket its payload names', async () => {
    const { io, got } = recorder();
    const first = io.open('127.0.0.1', 0, { reusePort: true });
    const second = io.open('127.0.0.1', first.port, { reusePort: true });
    opened.push(() => io.close(first.id), () => io.close(second.id));
    // A = payload[0]; A &= 1; return A — the socket index in bind order.
    io.attachReuseportCbpf(first.id, [
      { code: 0x30, jt: 0, jf: 0, k: 0 },
      { code: 0x54, jt: 0, jf: 0, k: 1 },
      { code: 0x16, jt: 0, jf: 0, k: 0 },
    ]);
    const client = await udpClient('udp4', '127.0.0.1');
    opened.push(() => client.close());
    for (let i = 0; i < 20; i++) client.send(Buffer.from([i, 0x41]), first.port, '127.0.0.1');
    await until(() => got.length === 20, 5000, '20 datagrams');
    for (const g of got) assert.equal(g.socketId, g.text.charCodeAt(0) % 2 === 0 ? first.id : second.id);
    assert.throws(() => io.attachReuseportCbpf(first.id, []), /instructions/);
    // An invalid program (no return) is refused by the kernel with its errno.
    assert.throws(() => io.attachReuseportCbpf(first.id, [{ code: 0x30, jt: 0, jf: 0, k: 0 }]), { code: 'EINVAL' });
  });

  test('bind errors carry the errno name', () => {
    const { io } = recorder();
    const s = io.open('127.0.0.1', 0);
    opened.push(() => io.close(s.id));
    assert.throws(() => io.open('127.0.0.1', s.port), { code: 'EADDRINUSE' });
    assert.throws(() => io.open('999.1.1.1', 0), /IP literal/);
  });
});
