/**
 * The sliding-window residual model (`sliding-window-model.ts`) against the real code:
 * the `sw` FecSender and FecReceiver run over a Gilbert-Elliott channel that steps
 * once per wire shard, as the model assumes; the measured residual and late fractions
 * must agree with the model's. The model ignores GF(2⁸) rank deficiency and losses
 * before the packet it follows, so agreement is asked within a stated tolerance, not
 * exactly. On long bursts the model is pessimistic about the residual: a repair that no
 * longer covers a packet can still free it by solving the packets entangled with it,
 * which the model does not follow; those count as late in the code. So the packets not
 * on time (lost or late) must agree, and the model may not be optimistic about either.
 * Each case names its seed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitGilbert, FecReceiver, FecSender, slidingWindowOutcome, type GilbertFit } from '../src/fec/index.js';

/** xorshift32 in [0, 1): the test's own seeded randomness. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

interface Measured {
  residual: number;
  late: number;
  sources: number;
}

/**
 * Sends `sources` packets `gapMs` apart through an `sw` sender with the given settings,
 * each shard crossing a Gilbert-Elliott chain (lossBad 1, lossGood 0) and arriving at
 * once; returns the fraction of sources never delivered and delivered later than
 * `budgetMs` after they were sent.
 */
function measure(fit: GilbertFit, settings: { repairsPerSource: number; repairSpacingMs: number; windowPackets: number; windowMs: number }, gapMs: number, budgetMs: number, sources: number, seed: number): Measured {
  const random = prng(seed);
  const sender = new FecSender({ maxPayloadBytes: 64, scheme: { mode: 'sw', ...settings } });
  const receiver = new FecReceiver({ maxPayloadBytes: 64, slidingWindow: { windowPackets: 128, windowMs: 10_000 } });
  const shard = new Uint8Array(sender.maxShardBytes);
  const out = new Uint8Array(64);
  const deliveredAt = new Float64Array(sources).fill(Number.NaN);
  let bad = random() < fit.p / (fit.p + fit.r);
  const send = (nowMs: number): void => {
    for (let tx = sender.pollTransmit(shard); tx !== undefined; tx = sender.pollTransmit(shard)) {
      bad = bad ? random() >= fit.r : random() < fit.p;
      if (bad) continue;
      receiver.handleShard(nowMs, tx.seq, tx.groupId, tx.index, tx.k, tx.r, shard.subarray(0, tx.length));
      for (let n = receiver.pollDelivered(out); n >= 0; n = receiver.pollDelivered(out)) {
        const i = out[0] | (out[1] << 8) | (out[2] << 16);
        if (Number.isNaN(deliveredAt[i])) deliveredAt[i] = nowMs;
      }
    }
  };
  const payload = new Uint8Array(40);
  for (let i = 0; i < sources; i++) {
    const t = i * gapMs;
    // Repairs due before this source go out at their own time.
    for (let due = sender.pollTimeout(); due !== undefined && due <= t; due = sender.pollTimeout()) {
      sender.handleTimeout(due);
      send(due);
    }
    payload[0] = i & 0xff;
    payload[1] = (i >> 8) & 0xff;
    payload[2] = (i >> 16) & 0xff;
    sender.push(t, payload);
    send(t);
  }
  for (let due = sender.pollTimeout(); due !== undefined; due = sender.pollTimeout()) {
    sender.handleTimeout(due);
    send(due);
  }
  // The last window's sources have fewer repairs after them than the model assumes: leave them out.
  const judged = sources - Math.ceil(settings.windowMs / gapMs) - 2;
  let lost = 0;
  let late = 0;
  for (let i = 0; i < judged; i++) {
    if (Number.isNaN(deliveredAt[i])) lost++;
    else if (deliveredAt[i] - i * gapMs > budgetMs + 1e-9) late++;
  }
  return { residual: lost / judged, late: late / judged, sources: judged };
}

/** Whether a measured fraction agrees with the model's: within `factor`, or within `slack` absolute (a binomial's noise at these counts). */
function agrees(measured: number, modelled: number, slack: number, factor: number): boolean {
  return Math.abs(measured - modelled) <= slack || (measured <= factor * modelled && modelled <= factor * measured);
}

const CASES = [
  { name: '10 % random, 1 repair per source', loss: 0.1, burst: 1 / 0.9, settings: { repairsPerSource: 1, repairSpacingMs: 2, windowPackets: 7, windowMs: 100 }, seed: 101 },
  { name: '10 % random, 2 repairs per source', loss: 0.1, burst: 1 / 0.9, settings: { repairsPerSource: 2, repairSpacingMs: 2, windowPackets: 7, windowMs: 100 }, seed: 102 },
  { name: '5 % in bursts of 2, 3 repairs per source', loss: 0.05, burst: 2, settings: { repairsPerSource: 3, repairSpacingMs: 2, windowPackets: 7, windowMs: 100 }, seed: 103 },
  { name: '5 % random, one repair per 2 sources, short window', loss: 0.05, burst: 1 / 0.95, settings: { repairsPerSource: 0.5, repairSpacingMs: 2, windowPackets: 3, windowMs: 20 }, seed: 104 },
  { name: '5 % in bursts of 4, 1 repair per source', loss: 0.05, burst: 4, settings: { repairsPerSource: 1, repairSpacingMs: 2, windowPackets: 7, windowMs: 100 }, seed: 105 },
];

test('the sliding-window model agrees with the real sender and receiver over a Gilbert-Elliott channel (residual and late packets)', (t) => {
  const gapMs = 1000 / 60;
  const budgetMs = 10;
  const sources = 60_000;
  for (const c of CASES) {
    const fit = fitGilbert(c.loss, c.burst);
    const model = slidingWindowOutcome(fit, { ...c.settings, sourceGapMs: gapMs, latencyBudgetMs: budgetMs });
    const got = measure(fit, c.settings, gapMs, budgetMs, sources, c.seed);
    t.diagnostic(`${c.name} (seed ${c.seed}): residual model ${(model.residual * 100).toFixed(3)} % measured ${(got.residual * 100).toFixed(3)} %; late model ${(model.late * 100).toFixed(3)} % measured ${(got.late * 100).toFixed(3)} % (${got.sources} sources)`);
    // Three standard deviations of a binomial count at the modelled rate, at least 2 packets' worth.
    const slack = (p: number): number => Math.max(2 / got.sources, 3 * Math.sqrt(Math.max(p, 1 / got.sources) / got.sources));
    const notOnTime = model.residual + model.late;
    assert.ok(agrees(got.residual + got.late, notOnTime, slack(notOnTime), 1.5), `${c.name} (seed ${c.seed}): lost or late measured ${got.residual + got.late} vs model ${notOnTime}`);
    assert.ok(got.residual <= 2 * model.residual + slack(model.residual), `${c.name} (seed ${c.seed}): residual measured ${got.residual}, model only ${model.residual}`);
    assert.ok(got.late <= 2 * model.late + slack(model.late), `${c.name} (seed ${c.seed}): late measured ${got.late}, model only ${model.late}`);
  }
});

test('the model: no repairs leaves the path loss; a clean path loses nothing; more repairs never lose more', () => {
  const fit = fitGilbert(0.05, 2);
  const base = { repairSpacingMs: 2, windowPackets: 7, windowMs: 100, sourceGapMs: 1000 / 60, latencyBudgetMs: 10 };
  assert.ok(Math.abs(slidingWindowOutcome(fit, { ...base, repairsPerSource: 0 }).residual - 0.05) < 1e-9);
  assert.deepEqual(slidingWindowOutcome(fitGilbert(0, 1), { ...base, repairsPerSource: 1 }), { residual: 0, late: 0 });
  let previous = Number.POSITIVE_INFINITY;
  for (const rate of [0.25, 0.5, 1, 2, 3, 4]) {
    const o = slidingWindowOutcome(fit, { ...base, repairsPerSource: rate });
    assert.ok(o.residual + o.late <= previous + 1e-12, `${rate} repairs per source: ${o.residual + o.late} > ${previous}`);
    previous = o.residual + o.late;
  }
});
