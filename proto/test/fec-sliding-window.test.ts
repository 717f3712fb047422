/**
 * Sliding-window random linear FEC: the encoder's schedule and windows, the decoder's
 * exactly-once delivery, and the code's capacity. The property tests compare the
 * decoder with a reference solver written here from scratch (dense Gaussian
 * elimination over the lost sources): a lost source must be rebuilt exactly when the
 * received repairs determine it, every delivered packet must be byte-exact, and no
 * packet may be delivered twice.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { gfInv, gfMul } from '../src/fec/gf256.js';
import { Rng } from '../src/rng.js';
import { SlidingWindowCodec, slidingWindowCoefficient, sourceVectorPayloadLength } from '../src/fec/sliding-window-code.js';
import { SlidingWindowDecoder, type SlidingWindowDecoderInit } from '../src/fec/sliding-window-decoder.js';
import { SlidingWindowEncoder, SlidingWindowShardKind, type SlidingWindowEncoderInit } from '../src/fec/sliding-window-encoder.js';

const TIME_LIMIT_MS = 2500;
const MAX_PAYLOAD = 1400;

/** One shard as it left the encoder. */
interface Shard {
  readonly kind: number;
  readonly seq: number;
  readonly count: number;
  readonly seed: number;
  readonly payload: Uint8Array;
  readonly atMs: number;
}

/** One packet as the decoder delivered it. */
interface Delivered {
  readonly seq: number;
  readonly payload: Uint8Array;
  readonly rebuilt: boolean;
  readonly atMs: number;
}

/** Runs the encoder over sources sent at `timesMs`, obeying its timeouts, and returns the wire in order. */
function encodeStream(init: SlidingWindowEncoderInit, payloads: readonly Uint8Array[], timesMs: readonly number[]): { shards: Shard[]; encoder: SlidingWindowEncoder } {
  const encoder = new SlidingWindowEncoder({ maxPayloadBytes: MAX_PAYLOAD, ...init });
  const out = new Uint8Array(encoder.maxShardBytes);
  const shards: Shard[] = [];
  const drain = (atMs: number): void => {
    for (let t = encoder.pollTransmit(out); t; t = encoder.pollTransmit(out)) {
      shards.push({ kind: t.kind, seq: t.seq, count: t.count, seed: t.seed, payload: out.slice(0, t.length), atMs });
    }
  };
  const runTimers = (untilMs: number): void => {
    for (let due = encoder.pollTimeout(); due !== undefined && due <= untilMs; due = encoder.pollTimeout()) {
      encoder.handleTimeout(due);
      drain(due);
    }
  };
  for (let i = 0; i < payloads.length; i++) {
    runTimers(timesMs[i]);
    encoder.push(timesMs[i], payloads[i]);
    drain(timesMs[i]);
  }
  runTimers(Number.POSITIVE_INFINITY);
  return { shards, encoder };
}

/** A decoder with a receive helper that records every delivery. */
function makeDecoder(init: SlidingWindowDecoderInit): { decoder: SlidingWindowDecoder; delivered: Delivered[]; receive: (shard: Shard, atMs: number) => void; tick: (atMs: number) => void } {
  const decoder = new SlidingWindowDecoder({ maxPayloadBytes: MAX_PAYLOAD, ...init });
  const out = new Uint8Array(MAX_PAYLOAD);
  const delivered: Delivered[] = [];
  const drain = (atMs: number): void => {
    for (let d = decoder.pollDelivered(out); d; d = decoder.pollDelivered(out)) delivered.push({ seq: d.seq, payload: out.slice(0, d.length), rebuilt: d.rebuilt, atMs });
  };
  return {
    decoder,
    delivered,
    receive(shard, atMs) {
      if (shard.kind === SlidingWindowShardKind.Source) decoder.handleSource(atMs, shard.seq, shard.payload);
      else decoder.handleRepair(atMs, shard.seq, shard.count, shard.seed, shard.payload);
      drain(atMs);
    },
    tick(atMs) {
      decoder.handleTimeout(atMs);
      drain(atMs);
    },
  };
}

/**
 * Reference: which lost sources (offsets from `firstSeq`) the received repairs
 * determine. Dense Gauss-Jordan over the lost sources; a source is determined when its
 * pivot row has no other non-zero entry.
 */
function determinedByReference(firstSeq: number, lost: readonly number[], repairs: readonly Shard[]): Set<number> {
  const column = new Map<number, number>(lost.map((offset, c) => [offset, c]));
  const rows: number[][] = [];
  for (const r of repairs) {
    const row = new Array<number>(lost.length).fill(0);
    for (let j = 0; j < r.count; j++) {
      const seq = (r.seq + j) >>> 0;
      const c = column.get((seq - firstSeq) >>> 0);
      if (c !== undefined) row[c] = slidingWindowCoefficient(r.seed, seq);
    }
    if (row.some((v) => v !== 0)) rows.push(row);
  }
  const pivotOfRow: number[] = [];
  let rank = 0;
  for (let c = 0; c < lost.length && rank < rows.length; c++) {
    const p = rows.findIndex((row, i) => i >= rank && row[c] !== 0);
    if (p < 0) continue;
    [rows[rank], rows[p]] = [rows[p], rows[rank]];
    const inv = gfInv(rows[rank][c]);
    rows[rank] = rows[rank].map((v) => gfMul(v, inv));
    for (let i = 0; i < rows.length; i++) {
      if (i === rank || rows[i][c] === 0) continue;
      const f = rows[i][c];
      rows[i] = rows[i].map((v, k) => v ^ gfMul(f, rows[rank][k]));
    }
    pivotOfRow[rank] = c;
    rank++;
  }
  const determined = new Set<number>();
  for (let i = 0; i < rank; i++) if (rows[i].filter((v) => v !== 0).length === 1) determined.add(lost[pivotOfRow[i]]);
  return determined;
}

/** Whether every lost source can be matched to a distinct received repair that covers it (Hall's condition: the counting bound of the code's capacity). */
function withinCountingCapacity(firstSeq: number, lost: readonly number[], repairs: readonly Shard[]): boolean {
  const covers = lost.map((offset) => repairs.map((r, i) => (((firstSeq + offset - r.seq) >>> 0) < r.count ? i : -1)).filter((i) => i >= 0));
  const matchOf = new Array<number>(repairs.length).fill(-1);
  const augment = (s: number, seen: boolean[]): boolean => {
    for (const r of covers[s]) {
      if (seen[r]) continue;
      seen[r] = true;
      if (matchOf[r] < 0 || augment(matchOf[r], seen)) {
        matchOf[r] = s;
        return true;
      }
    }
    return false;
  };
  return lost.every((_, s) => augment(s, new Array<boolean>(repairs.length).fill(false)));
}

function assertExactlyOnceAndExact(delivered: readonly Delivered[], firstSeq: number, payloads: readonly Uint8Array[]): Set<number> {
  const seen = new Set<number>();
  for (const d of delivered) {
    const offset = (d.seq - firstSeq) >>> 0;
    assert.ok(offset < payloads.length, `delivered seq ${d.seq} was never sent`);
    assert.ok(!seen.has(offset), `seq ${d.seq} delivered twice`);
    seen.add(offset);
    assert.deepEqual(d.payload, payloads[offset], `seq ${d.seq} (${d.rebuilt ? 'rebuilt' : 'received'}) is not byte-exact`);
  }
  return seen;
}

/** Random payloads of up to `maxLen` bytes. */
function payloadsFor(rng: Rng, n: number, maxLen: number): Uint8Array[] {
  return Array.from({ length: n }, () => rng.fillBytes(new Uint8Array(rng.nextInt(maxLen + 1))));
}

// Unbiased: fast-check's default bias toward small values would make most runs lossless or one packet long.
const scenarioArb = fc.noBias(fc.record({
  n: fc.integer({ min: 1, max: 48 }),
  windowPackets: fc.integer({ min: 1, max: 16 }),
  repairsPerSource: fc.constantFrom(0, 0.25, 0.5, 1, 1.5, 2, 3),
  repairSpacingMs: fc.constantFrom(0, 1, 2, 5),
  windowMs: fc.constantFrom(0, 10, 20, 50, 10_000),
  intervalMs: fc.constantFrom(0, 1, 5, 16.7, 33),
  firstSourceSeq: fc.constantFrom(0, 0xfffffff0, 12345),
  maxLen: fc.constantFrom(0, 1, 40, 300, MAX_PAYLOAD),
  lossRate: fc.constantFrom(0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.8),
  reorder: fc.boolean(),
  duplicateRate: fc.constantFrom(0, 0.2),
  seed: fc.integer(),
}));

test('property: the decoder rebuilds exactly the lost sources the received repairs determine, byte-exact, each once', (t) => {
  let runs = 0;
  let withinCapacity = 0;
  let withinCapacitySingular = 0;
  let rebuiltTotal = 0;
  const started = process.hrtime.bigint();
  fc.assert(
    fc.property(scenarioArb, (s) => {
      runs++;
      const rng = new Rng(s.seed);
      const payloads = payloadsFor(rng, s.n, s.maxLen);
      const times = payloads.map((_, i) => i * s.intervalMs);
      const { shards } = encodeStream({ parameters: { windowPackets: s.windowPackets, repairsPerSource: s.repairsPerSource, repairSpacingMs: s.repairSpacingMs, windowMs: s.windowMs }, firstSourceSeq: s.firstSourceSeq }, payloads, times);
      const kept = shards.filter(() => !rng.chance(s.lossRate));
      const arriving = kept.flatMap((shard) => (rng.chance(s.duplicateRate) ? [shard, shard] : [shard]));
      if (s.reorder) for (let i = arriving.length - 1; i > 0; i--) {
        const j = rng.nextInt(i + 1);
        [arriving[i], arriving[j]] = [arriving[j], arriving[i]];
      }
      // The decoder keeps everything for the whole run, so the reference sees the same equations.
      const { decoder, delivered, receive } = makeDecoder({ firstSourceSeq: s.firstSourceSeq, windowPackets: 255, windowMs: 10_000 });
      arriving.forEach((shard, i) => receive(shard, i * 0.01));
      const got = assertExactlyOnceAndExact(delivered, s.firstSourceSeq, payloads);

      const receivedSources = new Set(kept.filter((x) => x.kind === SlidingWindowShardKind.Source).map((x) => (x.seq - s.firstSourceSeq) >>> 0));
      const lost = payloads.map((_, i) => i).filter((i) => !receivedSources.has(i));
      const repairs = kept.filter((x) => x.kind === SlidingWindowShardKind.Repair);
      const determined = determinedByReference(s.firstSourceSeq, lost, repairs);
      const expected = new Set([...receivedSources, ...determined]);
      assert.deepEqual([...got].sort((a, b) => a - b), [...expected].sort((a, b) => a - b));
      assert.equal(decoder.totals.received + decoder.totals.rebuilt, expected.size);
      // In wire order every repair comes after its sources, so only lost ones are rebuilt.
      if (!s.reorder) assert.equal(decoder.totals.rebuilt, determined.size);
      assert.equal(decoder.totals.inconsistent, 0);
      rebuiltTotal += determined.size;
      if (lost.length > 0 && withinCountingCapacity(s.firstSourceSeq, lost, repairs)) {
        withinCapacity++;
        if (determined.size < lost.length) withinCapacitySingular++;
      }
    }),
    { numRuns: 400, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.diagnostic(`${runs} runs in ${ms.toFixed(0)} ms; ${rebuiltTotal} sources rebuilt; ${withinCapacity} loss patterns within the counting bound, ${withinCapacitySingular} of them singular`);
  // A random GF(2^8) system allowed by the windows is singular with probability ≈ 1/255 per coupled block.
  assert.ok(withinCapacitySingular <= Math.max(2, withinCapacity * 0.05), `${withinCapacitySingular} of ${withinCapacity} patterns within capacity were not repaired`);
});

test('property: isolated losses (one lost source per window span, its repair intact) are always repaired', (t) => {
  let runs = 0;
  fc.assert(
    fc.property(
      fc.record({ n: fc.integer({ min: 2, max: 60 }), windowPackets: fc.integer({ min: 1, max: 12 }), repairSpacingMs: fc.constantFrom(0, 2), maxLen: fc.constantFrom(0, 100, MAX_PAYLOAD), seed: fc.integer() }),
      (s) => {
        runs++;
        const rng = new Rng(s.seed);
        const payloads = payloadsFor(rng, s.n, s.maxLen);
        const { shards } = encodeStream({ parameters: { windowPackets: s.windowPackets, repairsPerSource: 1, repairSpacingMs: s.repairSpacingMs, windowMs: 10_000 } }, payloads, payloads.map((_, i) => i * 16.7));
        const lost = new Set<number>();
        for (let i = rng.nextInt(s.windowPackets); i < s.n; i += s.windowPackets + rng.nextInt(4)) lost.add(i);
        const { decoder, delivered, receive } = makeDecoder({});
        for (const shard of shards) if (!(shard.kind === SlidingWindowShardKind.Source && lost.has(shard.seq))) receive(shard, shard.atMs);
        const got = assertExactlyOnceAndExact(delivered, 0, payloads);
        assert.equal(got.size, s.n, `lost ${[...lost].join(',')}: ${s.n - got.size} not repaired`);
        assert.equal(decoder.totals.rebuilt, lost.size);
      },
    ),
    { numRuns: 200, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
  t.diagnostic(`${runs} runs`);
});

test('property: with real time limits, nothing is delivered twice or wrong, and every source ends delivered or lost', (t) => {
  let runs = 0;
  fc.assert(
    fc.property(scenarioArb, fc.integer({ min: 1, max: 64 }), fc.constantFrom(0, 5, 30), (s, decoderWindowPackets, jitterMs) => {
      runs++;
      const rng = new Rng(s.seed);
      const payloads = payloadsFor(rng, s.n, Math.min(s.maxLen, 200));
      const times = payloads.map((_, i) => i * s.intervalMs);
      const { shards } = encodeStream({ parameters: { windowPackets: s.windowPackets, repairsPerSource: s.repairsPerSource, repairSpacingMs: s.repairSpacingMs, windowMs: s.windowMs } }, payloads, times);
      const arrivals = shards.filter(() => !rng.chance(s.lossRate)).map((shard) => ({ shard, atMs: shard.atMs + 10 + rng.nextFloat() * jitterMs }));
      arrivals.sort((a, b) => a.atMs - b.atMs);
      const { decoder, delivered, receive, tick } = makeDecoder({ windowPackets: decoderWindowPackets, windowMs: Math.min(s.windowMs + jitterMs, 10_000) });
      for (const a of arrivals) {
        for (let due = decoder.pollTimeout(); due !== undefined && due <= a.atMs; due = decoder.pollTimeout()) tick(due);
        receive(a.shard, a.atMs);
      }
      tick(1e9);
      assert.equal(decoder.pollTimeout(), undefined);
      const got = assertExactlyOnceAndExact(delivered, 0, payloads);
      const tot = decoder.totals;
      assert.equal(tot.received + tot.rebuilt, got.size);
      // Every seq up to the highest one the decoder heard of is delivered or counted lost, once.
      // (The first shard to arrive sets where tracking starts; older ones are late.)
      const first = arrivals.length === 0 ? 0 : arrivals[0].shard.seq;
      const heard = arrivals.length === 0 ? 0 : Math.max(...arrivals.map((a) => (a.shard.kind === SlidingWindowShardKind.Source ? a.shard.seq : a.shard.seq + a.shard.count - 1))) + 1;
      assert.equal(tot.received + tot.rebuilt + tot.lost, heard - first, `received ${tot.received} + rebuilt ${tot.rebuilt} + lost ${tot.lost} ≠ ${heard - first} seqs tracked`);
      // A rebuilt packet never comes later than the decoder's window after the arrival that revealed the loss.
      for (const d of delivered) if (d.rebuilt) assert.ok(d.atMs <= times[d.seq] + 10 + jitterMs + s.windowMs + jitterMs + s.intervalMs * 2 + s.repairSpacingMs * 3 + 1e-6, `seq ${d.seq} rebuilt at ${d.atMs}`);
    }),
    { numRuns: 300, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
  t.diagnostic(`${runs} runs`);
});

test('property: arbitrary shard fields and bytes never throw and never deliver a packet that was not sent', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          repair: fc.boolean(),
          seq: fc.constantFrom(0, 1, 2, 3, 5, 8, 100, 0xffffffff, 0x80000000),
          count: fc.integer({ min: -1, max: 300 }),
          seed: fc.integer({ min: 0, max: 5 }),
          payload: fc.uint8Array({ maxLength: 80 }),
          atMs: fc.integer({ min: 0, max: 100 }),
        }),
        { maxLength: 40 },
      ),
      (inputs) => {
        const decoder = new SlidingWindowDecoder({ maxPayloadBytes: 64, windowPackets: 8, windowMs: 20 });
        const out = new Uint8Array(64);
        // Every payload sent under each seq: seqs this far apart wrap, so a seq may come back as a new packet.
        const sent = new Map<number, Uint8Array[]>();
        let now = 0;
        for (const x of inputs) {
          now = Math.max(now, x.atMs);
          if (x.repair) decoder.handleRepair(now, x.seq, x.count, x.seed, x.payload);
          else {
            decoder.handleSource(now, x.seq, x.payload);
            sent.set(x.seq >>> 0, [...(sent.get(x.seq >>> 0) ?? []), x.payload]);
          }
          for (let d = decoder.pollDelivered(out); d; d = decoder.pollDelivered(out)) {
            const got = out.slice(0, d.length);
            if (!d.rebuilt) assert.ok(sent.get(d.seq)?.some((p) => p.length === got.length && p.every((v, i) => v === got[i])), `seq ${d.seq} delivered bytes never sent`);
          }
          decoder.handleTimeout(now);
        }
      },
    ),
    { numRuns: 300, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
});

/** Sources every 16.7 ms (60 packets/s) of distinct lengths. */
function gameStream(n: number): { payloads: Uint8Array[]; times: number[] } {
  const rng = new Rng(7);
  const payloads = Array.from({ length: n }, (_, i) => rng.fillBytes(new Uint8Array(80 + ((i * 37) % 60))));
  return { payloads, times: payloads.map((_, i) => i * 16.7) };
}

test('an isolated loss is repaired by the next repair, not by the next source', () => {
  const { payloads, times } = gameStream(6);
  const { shards } = encodeStream({ parameters: { repairsPerSource: 1, repairSpacingMs: 2, windowPackets: 8, windowMs: 50 } }, payloads, times);
  // Wire order: S0 R S1 R S2 R …, each repair 2 ms after its source.
  assert.deepEqual(shards.map((s) => (s.kind === SlidingWindowShardKind.Source ? `S${s.seq}` : 'R')).join(' '), 'S0 R S1 R S2 R S3 R S4 R S5 R');
  const { delivered, receive } = makeDecoder({});
  for (const shard of shards) {
    if (shard.kind === SlidingWindowShardKind.Source && shard.seq === 2) continue;
    receive(shard, shard.atMs);
  }
  const rebuilt = delivered.find((d) => d.seq === 2);
  assert.ok(rebuilt?.rebuilt);
  assert.equal(rebuilt.atMs, times[2] + 2, 'rebuilt when the repair 2 ms behind it arrived');
  assert.ok(rebuilt.atMs < times[3]);
  assert.deepEqual(rebuilt.payload, payloads[2]);
  assert.deepEqual(delivered.map((d) => d.seq), [0, 1, 2, 3, 4, 5]);
});

test('a burst of b losses inside the window is repaired by b covering repairs, even when the burst takes repairs too', () => {
  const { payloads, times } = gameStream(12);
  const { shards } = encodeStream({ parameters: { repairsPerSource: 1, repairSpacingMs: 0, windowPackets: 8, windowMs: 200 } }, payloads, times);
  for (const burst of [3, 4, 5]) {
    // The burst starts at source 3 and takes 2·burst − 1 consecutive wire packets: `burst` sources and the repairs between them.
    const startAt = shards.findIndex((s) => s.kind === SlidingWindowShardKind.Source && s.seq === 3);
    const dropped = new Set(Array.from({ length: 2 * burst - 1 }, (_, i) => startAt + i));
    // The decoder waits as long as the encoder covers a source (200 ms here).
    const { decoder, delivered, receive } = makeDecoder({ windowMs: 200 });
    shards.forEach((shard, i) => {
      if (!dropped.has(i)) receive(shard, shard.atMs);
    });
    assertExactlyOnceAndExact(delivered, 0, payloads);
    assert.equal(delivered.length, 12, `burst of ${burst}`);
    assert.equal(decoder.totals.rebuilt, burst);
    assert.equal(decoder.pendingEquations, 0);
    // The last rebuilt packet came with the burst-th repair after the burst.
    const lastRebuilt = Math.max(...delivered.filter((d) => d.rebuilt).map((d) => d.atMs));
    assert.equal(lastRebuilt, times[3 + burst - 1 + burst - 1]);
  }
});

test('reordered shards and duplicated repairs and sources are harmless', () => {
  const { payloads, times } = gameStream(10);
  const { shards } = encodeStream({ parameters: { repairsPerSource: 1.5, repairSpacingMs: 3, windowPackets: 6, windowMs: 100 } }, payloads, times);
  const kept = shards.filter((s) => !(s.kind === SlidingWindowShardKind.Source && (s.seq === 4 || s.seq === 5)));
  const arriving = [...kept].reverse().flatMap((s) => [s, s]);
  const { decoder, delivered, receive } = makeDecoder({ firstSourceSeq: 0 });
  arriving.forEach((shard) => receive(shard, 0));
  assertExactlyOnceAndExact(delivered, 0, payloads);
  assert.equal(delivered.length, 10);
  // Backwards, repairs come before their sources: some sources are rebuilt before they arrive.
  assert.ok(decoder.totals.rebuilt >= 2);
  assert.equal(decoder.totals.received + decoder.totals.rebuilt, 10);
  assert.equal(decoder.totals.duplicates, 16 - decoder.totals.received);
  assert.equal(decoder.totals.lost, 0);
  assert.equal(decoder.pendingEquations, 0);
});

test('the encoder window is bounded in time: a source older than windowMs is no longer covered', () => {
  const payloads = [1, 2, 3, 4].map((v) => Uint8Array.of(v, v));
  // Sources 30 ms apart with a 20 ms window: each repair covers its own source only.
  const { shards } = encodeStream({ parameters: { repairsPerSource: 1, repairSpacingMs: 5, windowPackets: 8, windowMs: 20 } }, payloads, [0, 30, 60, 90]);
  const repairs = shards.filter((s) => s.kind === SlidingWindowShardKind.Repair);
  assert.deepEqual(repairs.map((r) => [r.seq, r.count]), [[0, 1], [1, 1], [2, 1], [3, 1]]);
  // Sources 5 ms apart: the repair at 17 ms covers sources sent at 0–15 ms; at 30 ms the one from 5 ms has left.
  const dense = encodeStream({ parameters: { repairsPerSource: 0.25, repairSpacingMs: 2, windowPackets: 8, windowMs: 20 } }, [0, 1, 2, 3, 4, 5, 6, 7].map((v) => Uint8Array.of(v)), [0, 5, 10, 15, 20, 25, 30, 35]);
  assert.deepEqual(dense.shards.filter((s) => s.kind === SlidingWindowShardKind.Repair).map((r) => [r.atMs, r.seq, r.count]), [[17, 0, 4], [37, 4, 4]]);
});

test('the decoder gives up a missing source windowMs after it learnt of it, and never delivers it afterwards', () => {
  const { payloads, times } = gameStream(4);
  const { shards } = encodeStream({ parameters: { repairsPerSource: 1, repairSpacingMs: 30, windowPackets: 4, windowMs: 100 } }, payloads, times);
  const { decoder, delivered, receive, tick } = makeDecoder({ windowMs: 25 });
  const sources = shards.filter((s) => s.kind === SlidingWindowShardKind.Source);
  const repairs = shards.filter((s) => s.kind === SlidingWindowShardKind.Repair);
  receive(sources[0], 0);
  receive(sources[2], 33.4); // source 1 is missing from here on
  const giveUpAtMs = decoder.pollTimeout();
  assert.equal(giveUpAtMs, 33.4 + 25);
  tick(giveUpAtMs - 0.1);
  assert.equal(decoder.totals.lost, 0);
  tick(giveUpAtMs);
  assert.equal(decoder.totals.lost, 1);
  assert.equal(decoder.pollTimeout(), undefined);
  // The repair covering source 1 comes too late: it may rebuild, but the packet is not delivered.
  receive(repairs[1], 60);
  receive(sources[1], 61);
  assert.deepEqual(delivered.map((d) => d.seq), [0, 2]);
  assert.equal(decoder.totals.late, 1);
  assert.equal(decoder.totals.rebuilt, 0);
});

test('after a stall, shards that arrive past a source\'s deadline but before the timeout still rebuild it (only the timeout gives up)', () => {
  const { payloads, times } = gameStream(4);
  const { shards } = encodeStream({ parameters: { repairsPerSource: 1, repairSpacingMs: 30, windowPackets: 4, windowMs: 1000 } }, payloads, times);
  const { decoder, delivered, receive, tick } = makeDecoder({ windowMs: 25 });
  const sources = shards.filter((s) => s.kind === SlidingWindowShardKind.Source);
  const repair = shards.find((s) => s.kind === SlidingWindowShardKind.Repair && s.seq <= 1 && s.seq + s.count - 1 >= 2)!;
  receive(sources[0], 0);
  receive(sources[2], 33.4); // source 1 is missing from here on; its deadline is 58.4
  // The process stalls; at 400 ms its driver feeds what the socket queued (a source, then the repair) before the late timeout.
  receive(sources[3], 400);
  receive(repair, 400);
  tick(400);
  assert.deepEqual(delivered.map((d) => d.seq).sort(), [0, 1, 2, 3]);
  assert.equal(decoder.totals.lost, 0);
});

test('a burst of sources faster than the repair spacing: every source is covered by a repair, and isolated losses are rebuilt', () => {
  // 40 sources at the same instant (a backlog released after a stall), repairs 2 ms apart, an 8-source window.
  const n = 40;
  const payloads = Array.from({ length: n }, (_, i) => new Uint8Array([i, i + 1, i + 2]));
  const { shards } = encodeStream({ parameters: { repairsPerSource: 1, repairSpacingMs: 2, windowPackets: 8, windowMs: 200 } }, payloads, new Array<number>(n).fill(1000));
  const repairs = shards.filter((s) => s.kind === SlidingWindowShardKind.Repair);
  assert.equal(repairs.length, n, 'one repair per source, as without the burst');
  const uncovered = payloads.map((_, seq) => seq).filter((seq) => !repairs.some((r) => r.seq <= seq && seq < r.seq + r.count));
  assert.deepEqual(uncovered, [], 'sources no repair covers');
  // One loss in every 8 sources: each is rebuilt.
  const { delivered, receive } = makeDecoder({ windowMs: 300 });
  for (const s of shards) if (!(s.kind === SlidingWindowShardKind.Source && s.seq % 8 === 3)) receive(s, 1000);
  assert.equal(delivered.length, n);
});

test('the decoder gives up a missing source once it leaves the tracked seqs, and drops shards older than them', () => {
  const { payloads, times } = gameStream(12);
  const { shards } = encodeStream({ parameters: { repairsPerSource: 0 } }, payloads, times);
  const { decoder, delivered, receive } = makeDecoder({ windowPackets: 4, windowMs: 10_000 });
  for (const s of shards) if (s.seq !== 1) receive(s, s.atMs);
  assert.equal(decoder.totals.lost, 1);
  receive(shards[1], 500);
  assert.equal(decoder.totals.late, 1);
  assert.equal(delivered.length, 11);
  assert.ok(decoder.buffersInUse <= 4, `${decoder.buffersInUse} buffers held for a 4-packet window`);
});

test('fractional repair rates: one repair every 1/rate sources; rate 0 sends none and sets no timer', () => {
  const { payloads, times } = gameStream(12);
  const count = (rate: number): number => encodeStream({ parameters: { repairsPerSource: rate } }, payloads, times).shards.filter((s) => s.kind === SlidingWindowShardKind.Repair).length;
  assert.equal(count(0.5), 6);
  assert.equal(count(1 / 3), 4);
  assert.equal(count(2), 24);
  assert.equal(count(0), 0);
  const encoder = new SlidingWindowEncoder({ parameters: { repairsPerSource: 0 } });
  encoder.push(0, Uint8Array.of(1));
  assert.equal(encoder.pollTimeout(), undefined);
  assert.throws(() => new SlidingWindowEncoder({ parameters: { windowPackets: 256 } }), /windowPackets: 256 is out of range/);
  assert.throws(() => encoder.setParameters({ repairsPerSource: 9, repairSpacingMs: 0, windowPackets: 4, windowMs: 10 }), /repairsPerSource/);
});

test('the WebAssembly SIMD and pure TypeScript kernels produce identical repairs', () => {
  const wasm = new SlidingWindowCodec({ backend: 'auto' });
  const js = new SlidingWindowCodec({ backend: 'js' });
  assert.equal(wasm.backend, 'wasm-simd');
  const { payloads, times } = gameStream(20);
  const a = encodeStream({ codec: wasm, parameters: { windowPackets: 10, repairsPerSource: 2 } }, payloads, times).shards;
  const b = encodeStream({ codec: js, parameters: { windowPackets: 10, repairsPerSource: 2 } }, payloads, times).shards;
  assert.deepEqual(a, b);
  // A repair over one source is that source's vector times its coefficient.
  const one = encodeStream({ parameters: { windowPackets: 1 } }, [Uint8Array.of(9, 8, 7)], [0]).shards[1];
  const c = slidingWindowCoefficient(one.seed, 0);
  assert.deepEqual([...one.payload], [0, 3, 9, 8, 7].map((v) => gfMul(c, v)));
  assert.equal(sourceVectorPayloadLength(Uint8Array.of(0, 2, 5, 6, 0, 0), 6), 2);
  assert.equal(sourceVectorPayloadLength(Uint8Array.of(0, 2, 5, 6, 0, 1), 6), -1);
  assert.equal(sourceVectorPayloadLength(Uint8Array.of(0, 9, 5), 3), -1);
});

test('coefficients are never zero and both ends agree on them', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), (seed, seq) => {
    const c = slidingWindowCoefficient(seed, seq);
    return c >= 1 && c <= 255 && c === slidingWindowCoefficient(seed, seq);
  }));
});

test('steady state: buffers stay bounded over a long lossy run (no per-packet leak)', () => {
  const rng = new Rng(3);
  const n = 3000;
  const payloads = Array.from({ length: n }, () => rng.fillBytes(new Uint8Array(100)));
  const { shards, encoder } = encodeStream({ parameters: { repairsPerSource: 1, windowPackets: 8 } }, payloads, payloads.map((_, i) => i * 16.7));
  assert.equal(encoder.buffersInUse, encoder.windowSize);
  const { decoder, delivered, receive, tick } = makeDecoder({});
  let peak = 0;
  for (const s of shards) {
    if (rng.chance(0.1)) continue;
    receive(s, s.atMs);
    tick(s.atMs);
    peak = Math.max(peak, decoder.buffersInUse);
  }
  assertExactlyOnceAndExact(delivered, 0, payloads);
  assert.ok(peak <= 64 + 64, `peak ${peak} buffers`);
  assert.ok(decoder.totals.rebuilt > 200, `${decoder.totals.rebuilt} rebuilt`);
  assert.ok(decoder.totals.lost < n * 0.01, `${decoder.totals.lost} lost of ${n} at 10 % loss with one repair per source`);
});
