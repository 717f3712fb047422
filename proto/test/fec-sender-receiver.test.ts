/**
 * FecSender / FecReceiver: wire behaviour (immediate data, parity at fill or hold,
 * interleaving, spaced copies), exactly-once delivery under arbitrary loss, rebuilds
 * whenever a group lost ≤ r shards, stats, bad input as counters, and no leaks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FecReceiver } from '../src/fec/receiver.js';
import { ReedSolomon } from '../src/fec/rs.js';
import type { FecScheme } from '../src/fec/scheme.js';
import { FecSender, FecShardKind } from '../src/fec/sender.js';
import { SequenceTracker, SequenceVerdict } from '../src/fec/sequence.js';
import { drainTransmits, numberedPacket, sendThrough, type WireShard } from './support/fec-wire.js';

const codec = new ReedSolomon();
const TIME_LIMIT_MS = 10000;

function deliveredOf(receiver: FecReceiver): Uint8Array[] {
  const out = new Uint8Array(receiver.maxShardBytes);
  const got: Uint8Array[] = [];
  for (let n = receiver.pollDelivered(out); n >= 0; n = receiver.pollDelivered(out)) got.push(out.slice(0, n));
  return got;
}

function packet(n: number, length: number): Uint8Array {
  return numberedPacket(n, length, 7);
}

/** Sends `count` packets `gapMs` apart through a sender for `scheme`, running its timers; returns the wire in order. */
function sendAll(scheme: FecScheme, count: number, gapMs: number, length: (n: number) => number): { wire: WireShard[]; sender: FecSender; sent: Uint8Array[] } {
  const sender = new FecSender({ codec, scheme, maxPayloadBytes: 600 });
  return { ...sendThrough(sender, count, gapMs, (n) => packet(n, length(n))), sender };
}

test('off: one group per packet, no redundancy, data leaves in push', () => {
  const sender = new FecSender({ codec });
  const wire: WireShard[] = [];
  sender.push(0, packet(1, 50));
  drainTransmits(sender, 0, wire);
  assert.equal(wire.length, 1);
  assert.deepEqual([wire[0].k, wire[0].r, wire[0].index, wire[0].kind], [1, 0, 0, FecShardKind.Data]);
  assert.equal(sender.pollTimeout(), undefined);
  assert.equal(sender.buffersInUse, 0);
});

test('rs: parity follows when the group fills, or at the hold time with r scaled to the packets held', () => {
  const scheme: FecScheme = { mode: 'rs', k: 4, r: 2, interleave: 1, holdMs: 8 };
  const sender = new FecSender({ codec, scheme });
  const wire: WireShard[] = [];
  for (let n = 0; n < 4; n++) {
    sender.push(n, packet(n, 10 + n));
    drainTransmits(sender, n, wire);
  }
  assert.deepEqual(wire.map((w) => w.kind), [0, 0, 0, 0, 1, 1]);
  assert.deepEqual(wire.slice(4).map((w) => [w.index, w.k, w.r, w.length]), [[4, 4, 2, 15], [5, 4, 2, 15]]);
  assert.deepEqual(wire.map((w) => w.seq), [0, 1, 2, 3, 4, 5]);
  // A lone packet: nothing but the data until the hold expires, then ⌈2·1/4⌉ = 1 parity.
  wire.length = 0;
  sender.push(100, packet(9, 30));
  drainTransmits(sender, 100, wire);
  assert.equal(wire.length, 1);
  assert.equal(sender.pollTimeout(), 108);
  sender.handleTimeout(108);
  drainTransmits(sender, 108, wire);
  assert.deepEqual(wire.slice(1).map((w) => [w.kind, w.index, w.k, w.r]), [[FecShardKind.Parity, 1, 1, 1]]);
  assert.equal(sender.counters.groupsClosedByHold, 1);
  assert.equal(sender.buffersInUse, 0);
});

test('interleave: consecutive packets go to different groups and parity is interleaved too', () => {
  const { wire } = sendAll({ mode: 'rs', k: 2, r: 1, interleave: 3, holdMs: 1000 }, 6, 1, () => 20);
  assert.deepEqual(wire.map((w) => `${w.kind}:${w.groupId}:${w.index}`), ['0:0:0', '0:1:0', '0:2:0', '0:0:1', '0:1:1', '0:2:1', '1:0:2', '1:1:2', '1:2:2']);
});

test('duplicate: copies follow spacingMs apart with the same group and index', () => {
  const { wire, sender } = sendAll({ mode: 'duplicate', copies: 2, spacingMs: 5 }, 3, 10, () => 40);
  const copies = wire.filter((w) => w.kind === FecShardKind.Duplicate);
  assert.equal(copies.length, 6);
  assert.deepEqual(wire.filter((w) => w.groupId === 0).map((w) => w.atMs), [0, 5, 10]);
  assert.equal(sender.counters.duplicateBytes, 6 * 40);
  assert.equal(sender.buffersInUse, 0);
});

test('the receiver delivers each packet once, rebuilds from parity, and reports it', () => {
  const { wire, sent } = sendAll({ mode: 'rs', k: 4, r: 2, interleave: 1, holdMs: 50 }, 8, 1, (n) => 20 + n * 13);
  const receiver = new FecReceiver({ codec, maxPayloadBytes: 600, statsIntervalMs: 100 });
  // Lose two data packets of the first group and one of the second.
  const lost = new Set([0, 2, 7]);
  const got: Uint8Array[] = [];
  for (let i = 0; i < wire.length; i++) {
    if (lost.has(i)) continue;
    const w = wire[i];
    receiver.handleShard(i, w.seq, w.groupId, w.index, w.k, w.r, w.bytes);
    got.push(...deliveredOf(receiver));
    // Every copy after the first is a duplicate (a copy has its own wire sequence number).
    receiver.handleShard(i, w.seq + 100, w.groupId, w.index, w.k, w.r, w.bytes);
    assert.equal(deliveredOf(receiver).length, 0);
  }
  assert.equal(got.length, 8);
  assert.deepEqual([...got].sort((a, b) => a[1] - b[1]), sent);
  receiver.handleTimeout(1000);
  const event = receiver.pollEvent();
  assert.ok(event);
  assert.equal(event.stats.recovered, 3);
  assert.equal(event.stats.received, 5);
  assert.equal(event.stats.unrecoverable, 0);
  // Copies of the 5 data packets that arrived, and of data rebuilt before its copy came.
  assert.ok(event.stats.duplicates >= 5);
  receiver.handleTimeout(5000);
  while (receiver.pollEvent()) {
    // drain
  }
  assert.equal(receiver.buffersInUse, 0);
  assert.equal(receiver.openGroups, 0);
});

test('under arbitrary loss: exactly-once, exact bytes, and every group that lost ≤ r shards is whole', () => {
  const schemeArb = fc.oneof(
    fc.record({ mode: fc.constant('off' as const) }),
    fc.record({ mode: fc.constant('duplicate' as const), copies: fc.integer({ min: 1, max: 3 }), spacingMs: fc.integer({ min: 0, max: 30 }) }),
    fc.record({ mode: fc.constant('rs' as const), k: fc.integer({ min: 1, max: 12 }), r: fc.integer({ min: 1, max: 6 }), interleave: fc.integer({ min: 1, max: 5 }), holdMs: fc.integer({ min: 0, max: 40 }) }),
  );
  fc.assert(
    fc.property(schemeArb, fc.integer({ min: 1, max: 80 }), fc.integer({ min: 1, max: 20 }), fc.array(fc.boolean(), { minLength: 400, maxLength: 400 }), fc.integer({ min: 0, max: 3 }), (scheme, count, gapMs, fates, lossEvery) => {
      const { wire, sent, sender } = sendAll(scheme as FecScheme, count, gapMs, (n) => 2 + ((n * 37) % 300));
      assert.equal(sender.buffersInUse, 0);
      const receiver = new FecReceiver({ codec, maxPayloadBytes: 600 });
      const lostByGroup = new Map<number, number>();
      const got: Uint8Array[] = [];
      wire.forEach((w, i) => {
        const lose = lossEvery > 0 && fates[i % fates.length] && i % lossEvery === 0;
        if (lose) {
          lostByGroup.set(w.groupId, (lostByGroup.get(w.groupId) ?? 0) + 1);
          return;
        }
        receiver.handleShard(w.atMs, w.seq, w.groupId, w.index, w.k, w.r, w.bytes);
        got.push(...deliveredOf(receiver));
      });
      const ids = got.map((p) => (p[0] << 8) | p[1]);
      assert.equal(new Set(ids).size, ids.length, 'each packet is delivered once');
      for (const p of got) assert.deepEqual(p, sent[(p[0] << 8) | p[1]]);
      if (scheme.mode === 'rs') {
        // Groups are identified by the data shards' group ids; a group is whole when
        // it lost at most its parity count.
        const groupOf = new Map<number, { r: number; members: number[] }>();
        for (const w of wire) {
          const g = groupOf.get(w.groupId) ?? { r: 0, members: [] };
          if (w.kind === FecShardKind.Parity) g.r = w.r;
          else g.members.push((w.bytes[0] << 8) | w.bytes[1]);
          groupOf.set(w.groupId, g);
        }
        const delivered = new Set(ids);
        for (const [groupId, g] of groupOf) {
          if ((lostByGroup.get(groupId) ?? 0) <= g.r) for (const n of g.members) assert.ok(delivered.has(n), `packet ${n} of group ${groupId} is rebuilt`);
        }
      }
      receiver.handleTimeout(1e9);
      assert.equal(receiver.buffersInUse, 0);
    }),
    { numRuns: 200, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
});

test('bad header fields and oversize payloads are counted, never thrown', () => {
  const receiver = new FecReceiver({ codec, maxPayloadBytes: 100 });
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
      fc.uint8Array({ maxLength: 200 }),
      (seq, groupId, index, k, r, payload) => {
        receiver.handleShard(0, seq, groupId, index, k, r, payload);
        deliveredOf(receiver);
      },
    ),
    { numRuns: 2000, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
  assert.ok(receiver.totals.malformed > 0);
});

test('sequence tracker: loss, bursts, duplicates and reordering', () => {
  const t = new SequenceTracker(4, 64);
  const arrivals = [0, 1, 2, 5, 4, 6, 9, 10, 11, 12, 13, 14, 15, 16, 17];
  for (const n of arrivals) t.record(n);
  assert.equal(t.record(16), SequenceVerdict.Duplicate);
  assert.equal(t.record(3), SequenceVerdict.Late);
  // Judged through 13: lost 3, 7, 8 in two bursts.
  assert.equal(t.judged, 14);
  assert.equal(t.lost, 3);
  assert.equal(t.bursts, 2);
  // A jump beyond the window counts the gap as one burst.
  t.record(17 + 500);
  assert.equal(t.lost, 3 + 499);
  assert.equal(t.bursts, 3);
  // Serial numbers wrap.
  const w = new SequenceTracker(2, 16);
  for (const n of [0xfffffffe, 0xffffffff, 0, 2, 3, 4]) w.record(n);
  assert.equal(w.lost, 1);
});

test('steady state allocates no new buffers', () => {
  const sender = new FecSender({ codec, scheme: { mode: 'rs', k: 4, r: 2, interleave: 2, holdMs: 10 } });
  const receiver = new FecReceiver({ codec });
  const out = new Uint8Array(sender.maxShardBytes);
  const rx = new Uint8Array(receiver.maxShardBytes);
  const run = (from: number, to: number): void => {
    for (let n = from; n < to; n++) {
      sender.push(n, packet(n, 100));
      for (let t = sender.pollTransmit(out); t !== undefined; t = sender.pollTransmit(out)) {
        if (t.seq % 5 !== 0) receiver.handleShard(n, t.seq, t.groupId, t.index, t.k, t.r, out.subarray(0, t.length));
        while (receiver.pollDelivered(rx) >= 0);
        while (receiver.pollEvent());
      }
    }
  };
  run(0, 2000);
  const poolSizes = [(sender as unknown as { pool: { buffers: unknown[] } }).pool.buffers.length, (receiver as unknown as { pool: { buffers: unknown[] } }).pool.buffers.length];
  run(2000, 6000);
  assert.deepEqual([(sender as unknown as { pool: { buffers: unknown[] } }).pool.buffers.length, (receiver as unknown as { pool: { buffers: unknown[] } }).pool.buffers.length], poolSizes);
});

test('receiver group table: ids that share a slot (and more groups alive than slots) each deliver once, and copies are duplicates', () => {
  const rx = new FecReceiver({ groupTimeoutMs: 10_000 });
  const out = new Uint8Array(2000);
  // 600 live one-packet groups whose ids collide in the 256-slot table (stride 256) and overflow it.
  const ids: number[] = [];
  for (let i = 0; i < 300; i++) ids.push((i * 256) >>> 0, (0xffffff00 + i * 256 + 7) >>> 0);
  let seq = 0;
  let delivered = 0;
  for (const id of ids) {
    rx.handleShard(1, seq++, id, 0, 1, 0, Uint8Array.of(id & 0xff, 1, 2));
    while (rx.pollDelivered(out) >= 0) delivered++;
  }
  assert.equal(delivered, ids.length);
  assert.equal(rx.openGroups, ids.length);
  for (const id of ids) {
    rx.handleShard(2, seq++, id, 0, 1, 0, Uint8Array.of(id & 0xff, 1, 2));
    assert.equal(rx.pollDelivered(out), -1, `group ${id}: a copy must not be delivered again`);
  }
  assert.equal(rx.totals.duplicates, ids.length);
  // Expiry forgets them all, whichever table they sat in.
  rx.handleTimeout(20_000);
  assert.equal(rx.openGroups, 0);
  assert.equal(rx.buffersInUse, 0);
});

test('receiver nextOutputMs: the stats deadline, without group expiry; pollTimeout has both', () => {
  const rx = new FecReceiver({ groupTimeoutMs: 100, statsIntervalMs: 250 });
  assert.equal(rx.nextOutputMs(), undefined);
  rx.handleShard(10, 0, 5, 0, 1, 0, Uint8Array.of(1));
  assert.equal(rx.pollTimeout(), 110);
  assert.equal(rx.nextOutputMs(), 260);
  // Waking only at the stats deadline retires the expired group first and counts nothing lost.
  rx.handleTimeout(260);
  assert.equal(rx.openGroups, 0);
  const e = rx.pollEvent();
  assert.equal(e?.stats.received, 1);
  assert.equal(e?.stats.unrecoverable, 0);
  assert.equal(rx.nextOutputMs(), 510);
});
