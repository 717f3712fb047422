/**
 * Mode `sw` through the FecSender / FecReceiver interface the relay and the SDK drive:
 * the wire mapping (r = 255 marks the shard; a repair's seed is its wire sequence), a
 * header that parses on this build and fails the old k + r ≤ 255 check otherwise, and
 * round trips over a lossy in-memory channel: losses within the code's capacity are
 * rebuilt, nothing is delivered twice, random loss falls well below the wire's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ParseFailure } from '../src/errors.js';
import { FecReceiver } from '../src/fec/receiver.js';
import { formatScheme, schemeOverhead, validateScheme, type FecScheme } from '../src/fec/scheme.js';
import { FecSender, FecShardKind, setShardHeader } from '../src/fec/sender.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader, writeHeader } from '../src/header.js';
import { Rng } from '../src/rng.js';
import { numberedPacket, sendThrough, type WireShard } from './support/fec-wire.js';

const SW: FecScheme = { mode: 'sw', repairsPerSource: 1, repairSpacingMs: 2, windowPackets: 8, windowMs: 60 };
const PATH_DELAY_MS = 5;

/** `count` packets `gapMs` apart (sizes vary) through an sw sender; returns the wire in send order. */
function sendAll(count: number, gapMs: number): { wire: WireShard[]; sent: Uint8Array[]; sender: FecSender } {
  const sender = new FecSender({ scheme: SW, maxPayloadBytes: 600, firstSeq: 0xfffffff0, firstGroupId: 0xfffffff8 });
  return { ...sendThrough(sender, count, gapMs, (n) => numberedPacket(n, 20 + ((n * 37) % 300), 13)), sender };
}

/** Feeds the kept shards to a receiver PATH_DELAY_MS after they left (each `copies` times), running its timers; returns what it delivered. */
function receiveAll(wire: readonly WireShard[], keep: (shard: WireShard, i: number) => boolean, copies = 1): { delivered: Uint8Array[]; receiver: FecReceiver } {
  const receiver = new FecReceiver({ maxPayloadBytes: 600, slidingWindow: { windowMs: 60 } });
  const out = new Uint8Array(receiver.maxShardBytes);
  const delivered: Uint8Array[] = [];
  const take = (): void => {
    for (let n = receiver.pollDelivered(out); n >= 0; n = receiver.pollDelivered(out)) delivered.push(out.slice(0, n));
    while (receiver.pollEvent() !== undefined);
  };
  let lastMs = 0;
  wire.forEach((s, i) => {
    if (!keep(s, i)) return;
    const at = s.atMs + PATH_DELAY_MS;
    for (let t = receiver.pollTimeout(); t !== undefined && t <= at; t = receiver.pollTimeout()) {
      receiver.handleTimeout(t);
      take();
    }
    for (let c = 0; c < copies; c++) receiver.handleShard(at, s.seq, s.groupId, s.index, s.k, s.r, s.bytes);
    take();
    lastMs = at;
  });
  receiver.handleTimeout(lastMs + 1000);
  take();
  return { delivered, receiver };
}

const key = (p: Uint8Array): string => Buffer.from(p).toString('hex');

test('sw scheme: validated, described, its overhead is its repair rate', () => {
  validateScheme(SW);
  assert.throws(() => validateScheme({ ...SW, windowPackets: 0 } as FecScheme), RangeError);
  assert.throws(() => validateScheme({ ...SW, repairsPerSource: 9 } as FecScheme), RangeError);
  assert.equal(formatScheme(SW), 'sw(1×8)/2ms/60ms');
  assert.equal(schemeOverhead(SW), 1);
});

test('sw wire mapping: sources are Data (index 0, k 1, r 255, group = source seq), repairs Parity (index 255, k = window, seed = wire seq); headers round-trip', () => {
  const { wire, sender } = sendAll(40, 16);
  const sources = wire.filter((s) => s.kind === FecShardKind.Data);
  const repairs = wire.filter((s) => s.kind === FecShardKind.Parity);
  assert.equal(sources.length, 40);
  assert.equal(repairs.length, 40);
  sources.forEach((s, i) => assert.deepEqual([s.index, s.k, s.r, s.groupId], [0, 1, 255, (0xfffffff8 + i) >>> 0]));
  for (const r of repairs) {
    assert.equal(r.index, 255);
    assert.equal(r.r, 255);
    assert.ok(r.k >= 1 && r.k <= 8);
  }
  // The wire sequence counts every shard, wrapping.
  wire.forEach((s, i) => assert.equal(s.seq, (0xfffffff0 + i) >>> 0));
  assert.equal(sender.counters.dataPackets, 40);
  assert.equal(sender.counters.parityPackets, 40);
  // The window's sources stay held for repairs to come (at most windowPackets).
  assert.ok(sender.buffersInUse <= 8, `sender holds ${sender.buffersInUse}`);
  const h = new PacketHeader();
  const parsed = new PacketHeader();
  for (const s of [sources[3], repairs[3]]) {
    setShardHeader(h, s, 1, 2);
    h.flags = 0;
    const bytes = new Uint8Array(HEADER_BYTES + s.length);
    writeHeader(h, bytes);
    assert.equal(parseHeader(bytes, parsed), 0);
    assert.equal(parsed.type, s.kind === FecShardKind.Data ? PacketType.Data : PacketType.Parity);
    assert.deepEqual([parsed.sequence, parsed.fecGroup, parsed.fecIndex, parsed.fecDataCount, parsed.fecParityCount], [s.seq, s.groupId, s.index, s.k, s.r]);
  }
});

test('sw header marker: only the two sw shapes parse; any other use of r = 255 is bad FEC fields', () => {
  const out = new PacketHeader();
  const shard = (type: number, index: number, k: number): Uint8Array => {
    const b = new Uint8Array(HEADER_BYTES);
    b[0] = 0xa5;
    b[1] = 1;
    b[2] = type;
    b[16] = 7;
    b[20] = index;
    b[21] = k;
    b[22] = 255;
    return b;
  };
  assert.equal(parseHeader(shard(PacketType.Data, 0, 1), out), 0);
  assert.equal(parseHeader(shard(PacketType.Parity, 255, 1), out), 0);
  assert.equal(parseHeader(shard(PacketType.Parity, 255, 255), out), 0);
  assert.equal(parseHeader(shard(PacketType.Data, 0, 2), out), ParseFailure.BadFecFields);
  assert.equal(parseHeader(shard(PacketType.Data, 1, 2), out), ParseFailure.BadFecFields);
  assert.equal(parseHeader(shard(PacketType.Parity, 4, 4), out), ParseFailure.BadFecFields);
  assert.equal(parseHeader(shard(PacketType.Parity, 254, 8), out), ParseFailure.BadFecFields);
});

test('sw round trip: every isolated source loss is rebuilt from the next repair; every packet delivered exactly once', () => {
  const { wire, sent } = sendAll(600, 16);
  let dropped = 0;
  const { delivered, receiver } = receiveAll(wire, (s) => {
    // Every 5th source is lost; all repairs arrive.
    const lose = s.kind === FecShardKind.Data && ((s.groupId - 0xfffffff8) >>> 0) % 5 === 2;
    if (lose) dropped++;
    return !lose;
  });
  assert.equal(dropped, 120);
  assert.equal(delivered.length, sent.length);
  assert.deepEqual(new Set(delivered.map(key)), new Set(sent.map(key)));
  assert.equal(receiver.totals.recovered, 120);
  assert.equal(receiver.totals.unrecoverable, 0);
  // The decoder keeps the sources of its tracked seqs (64 by default) for repairs to come, no more.
  assert.ok(receiver.buffersInUse <= 64, `receiver holds ${receiver.buffersInUse}`);
});

test('sw round trip over 10 % random loss, every shard duplicated by the network: delivered loss well below the wire loss, nothing twice (3 seeds)', () => {
  for (const seed of [1, 2, 3]) {
    const rng = new Rng(seed);
    const { wire, sent } = sendAll(3000, 16);
    let lost = 0;
    const { delivered, receiver } = receiveAll(
      wire,
      () => {
        const drop = rng.chance(0.1);
        if (drop) lost++;
        return !drop;
      },
      2,
    );
    const keys = delivered.map(key);
    assert.equal(new Set(keys).size, keys.length, `seed ${seed}: a packet was delivered twice`);
    const sentKeys = new Set(sent.map(key));
    for (const k of keys) assert.ok(sentKeys.has(k), `seed ${seed}: delivered a packet never sent`);
    const wireLoss = lost / wire.length;
    const deliveredLoss = 1 - delivered.length / sent.length;
    assert.ok(wireLoss > 0.08, `seed ${seed}: wire loss ${wireLoss}`);
    assert.ok(deliveredLoss < wireLoss / 4, `seed ${seed}: delivered loss ${deliveredLoss} vs wire ${wireLoss}`);
    assert.equal(receiver.totals.received + receiver.totals.recovered, delivered.length);
    assert.ok(receiver.totals.duplicates >= wire.length - lost, `seed ${seed}: network copies counted`);
  }
});

test('sw sender: new sw settings apply at once; a switch into or out of sw is refused', () => {
  const sender = new FecSender({ scheme: SW });
  sender.setScheme(0, { ...SW, repairsPerSource: 0.5 } as FecScheme);
  assert.equal(sender.scheme.mode, 'sw');
  assert.throws(() => sender.setScheme(0, { mode: 'rs', k: 4, r: 2, interleave: 1, holdMs: 8 }), RangeError);
  const rs = new FecSender({ scheme: { mode: 'duplicate', copies: 1, spacingMs: 2 } });
  assert.throws(() => rs.setScheme(0, SW), RangeError);
});
