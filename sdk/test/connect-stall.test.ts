/**
 * `connect()`'s driver after a stall of its process: a repair that reached the socket
 * while the process was blocked is read before the late timer gives its packet up, so
 * the packet is rebuilt and delivered. A scripted relay on loopback answers probes and
 * opens and sends sliding-window FEC shards (proto's encoder); the process is blocked
 * by a synchronous child (`spawnSync`) that sends the repair from the relay's own
 * address (SO_REUSEPORT) and returns after the packet's give-up deadline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeControl } from '../../proto/src/control.js';
import { FecSender, setShardHeader, FecShardKind } from '../../proto/src/fec/sender.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader, writeHeader } from '../../proto/src/header.js';
import { buildControlPacket } from '../../proto/src/wire.js';
import { SLIDING_WINDOW_RECEIVER_WAIT_MS_MIN } from '../../proto/src/fec/receiver.js';
import { connect } from '../src/connect.js';
import { freePort } from '../../kit/free-port.js';

const HIGH = 0x01234567;
const LOW = 0x89abcdef;
const grant = { sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: new Uint8Array(32) };

/** A TCP port on 127.0.0.1 nothing listens on (it was free a moment ago). */
const closedPort = (): Promise<number> => freePort('tcp');

interface Shard {
  readonly bytes: Uint8Array;
  /** A source's seq, or a repair's first and last covered seqs. */
  readonly first: number;
  readonly last: number;
  readonly repair: boolean;
}

/** Sources `p0`…`p7` and their repairs (one per source, over the last 8), as the relay would send them. */
function shards(): Shard[] {
  const sender = new FecSender({ scheme: { mode: 'sw', repairsPerSource: 1, repairSpacingMs: 1, windowPackets: 8, windowMs: 200 } });
  const out: Shard[] = [];
  const payload = new Uint8Array(sender.maxShardBytes);
  const h = new PacketHeader();
  const drain = (): void => {
    for (let tx = sender.pollTransmit(payload); tx !== undefined; tx = sender.pollTransmit(payload)) {
      setShardHeader(h, tx, HIGH, LOW);
      h.flags = 0;
      const bytes = new Uint8Array(HEADER_BYTES + tx.length);
      writeHeader(h, bytes);
      bytes.set(payload.subarray(0, tx.length), HEADER_BYTES);
      const repair = tx.kind !== FecShardKind.Data;
      out.push({ bytes, first: tx.groupId, last: repair ? tx.groupId + tx.k - 1 : tx.groupId, repair });
    }
  };
  for (let i = 0; i < 8; i++) {
    sender.push(i * 16, new TextEncoder().encode(`p${i}`));
    drain();
    sender.handleTimeout(i * 16 + 5);
    drain();
  }
  return out;
}

test('a repair queued while the process was blocked past its packet\'s deadline still rebuilds the packet', async () => {
  const relay = dgram.createSocket({ type: 'udp4', reusePort: true });
  await new Promise<void>((resolve) => relay.bind(0, '127.0.0.1', resolve));
  const relayPort = relay.address().port;
  const h = new PacketHeader();
  let player: { address: string; port: number } | undefined;
  relay.on('message', (msg, from) => {
    player = { address: from.address, port: from.port };
    parseHeader(msg, h);
    if (h.type === PacketType.Probe) {
      const reply = Buffer.from(msg);
      reply[2] = PacketType.ProbeReply;
      relay.send(reply, from.port, from.address);
    } else if (h.type === PacketType.Control) {
      const m = decodeControl(msg.subarray(HEADER_BYTES));
      if (m.ok && m.message.type === 'sessionOpen') relay.send(buildControlPacket(HIGH, LOW, { type: 'sessionAccept', sessionId: grant.sessionId, fecMode: 'sw' }), from.port, from.address);
    }
  });
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-connect-stall-'));
  const cacheFile = join(dir, 'cache.json');
  const coordinator = `http://127.0.0.1:${await closedPort()}`;
  const endpoint = { address: '127.0.0.1', port: relayPort };
  writeFileSync(cacheFile, JSON.stringify({ coordinator, origin: 'game', savedAtMs: 0, candidates: [{ id: 'r', tunnel: endpoint, probe: endpoint }] }));
  const conn = await connect({ coordinator, origin: 'game', cacheFile, ticket: grant, coordinatorTimeoutMs: 500, connectTimeoutMs: 5000, bindAddress: '127.0.0.1' });
  try {
    const got = new Set<string>();
    const waiters: { text: string; resolve: () => void }[] = [];
    conn.on('message', (bytes: Uint8Array) => {
      const text = new TextDecoder().decode(bytes);
      got.add(text);
      for (const w of waiters.filter((x) => x.text === text)) w.resolve();
    });
    const received = (text: string, ms: number): Promise<boolean> =>
      got.has(text) ? Promise.resolve(true) : new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        waiters.push({ text, resolve: () => { clearTimeout(timer); resolve(true); } });
      });
    const all = shards();
    const p5At = all.findIndex((s) => !s.repair && s.first === 5);
    // Everything up to source 5, but source 4 and every repair covering it: the player learns p4 is missing.
    for (const s of all.slice(0, p5At + 1)) if (!(s.first <= 4 && s.last >= 4)) relay.send(s.bytes, player!.port, player!.address);
    assert.ok(await received('p5', 3000), 'p5 arrived');
    assert.ok(!got.has('p4'));
    const learntAt = Date.now();
    // The first repair after p5 covers p4 (and p5, which the player has): it alone rebuilds p4.
    const repair = all.slice(p5At + 1).find((s) => s.repair && s.first <= 4 && s.last >= 5)!;
    assert.ok(repair !== undefined);
    // Block this process (player and relay alike) past p4's give-up deadline; meanwhile the repair reaches the player's socket.
    // The block sits in the check phase (setImmediate), where the driver's timer, due by then, runs before the socket is read again:
    // a process starved of CPU after a timer woke it sees the same order.
    const until = learntAt + SLIDING_WINDOW_RECEIVER_WAIT_MS_MIN + 80;
    const child = `const s = require('node:dgram').createSocket({ type: 'udp4', reusePort: true });
s.bind(${relayPort}, '127.0.0.1', () => s.send(Buffer.from('${Buffer.from(repair.bytes).toString('base64')}', 'base64'), ${player!.port}, '${player!.address}', () => {
  s.close();
  while (Date.now() < ${until});
}));`;
    const run = await new Promise<ReturnType<typeof spawnSync>>((resolve) => setImmediate(() => resolve(spawnSync(process.execPath, ['-e', child], { timeout: 10_000 }))));
    assert.equal(run.status, 0, String(run.stderr));
    assert.ok(Date.now() >= until, 'the process was blocked past the deadline');
    assert.ok(await received('p4', 2000), 'p4 was rebuilt from the repair that waited in the socket, not given up');
  } finally {
    conn.close();
    relay.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
