/**
 * Statistical and behavioural tests of the link models (issue 2, "How we will know").
 * Fixed seeds; every assertion message names its seed so a failure can be replayed with
 * `slipstream sim link --seed S …`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimConfigError } from '../../proto/src/errors.js';
import { Rng } from '../../proto/src/rng.js';
import { runLinkExperiment } from '../src/core/link-experiment.js';
import { DropReason, LinkDirection, validateLinkModel, type LinkModelSpec } from '../src/core/link.js';

const SEED = 20240611;
const N = 200_000;

function within(actual: number, expected: number, tolerance: number, what: string, seed = SEED): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: measured ${actual}, expected ${expected} ± ${tolerance} (seed ${seed})`);
}

describe('loss models', () => {
  it('Bernoulli 5 %: 200k packets lose 5 % ± 0.3 %', () => {
    const report = runLinkExperiment({ seed: SEED, packets: N, pps: 1000, model: { loss: { model: 'bernoulli', p: 0.05 } } });
    assert.equal(report.sent, N);
    within(report.lossRate, 0.05, 0.003, 'loss rate');
    assert.equal(report.drops.loss, report.lost);
    // Independent losses: mean run 1/(1-p).
    within(report.meanBurstLength, 1 / 0.95, 0.02, 'mean burst');
  });

  it('Gilbert-Elliott for 5 % loss and mean burst 3: burst 3 ± 10 %, loss 5 % ± 0.5 %', () => {
    // Bad state loses everything, good state nothing: mean burst = 1/r, loss = p/(p+r).
    const r = 1 / 3;
    const p = (0.05 * r) / 0.95;
    const report = runLinkExperiment({ seed: SEED, packets: N, pps: 1000, model: { loss: { model: 'gilbert-elliott', p, r, lossBad: 1, lossGood: 0 } } });
    within(report.meanBurstLength, 3, 0.3, 'mean burst');
    within(report.lossRate, 0.05, 0.005, 'loss rate');
  });

  it('Gilbert-Elliott with partial loss in each state matches its stationary loss', () => {
    const spec = { model: 'gilbert-elliott', p: 0.01, r: 0.1, lossBad: 0.5, lossGood: 0.01 } as const;
    const piBad = spec.p / (spec.p + spec.r);
    const expected = piBad * spec.lossBad + (1 - piBad) * spec.lossGood;
    const report = runLinkExperiment({ seed: SEED, packets: N, pps: 1000, model: { loss: spec } });
    within(report.lossRate, expected, 0.1 * expected, 'loss rate');
  });

  it('4-state: loss rate matches the stationary distribution of the chain', () => {
    const [p13, p31, p32, p23, p14] = [0.02, 0.3, 0.2, 0.1, 0.01];
    // Balance equations: π3·p31 = π1·p13, π2·p23 = π3·p32, π4 = π1·p14.
    const pi3 = p13 / p31;
    const pi2 = (pi3 * p32) / p23;
    const pi4 = p14;
    const expected = (pi3 + pi4) / (1 + pi2 + pi3 + pi4);
    const report = runLinkExperiment({ seed: SEED, packets: N, pps: 1000, model: { loss: { model: '4-state', p13, p31, p32, p23, p14 } } });
    within(report.lossRate, expected, 0.1 * expected, 'loss rate');
    assert.ok(report.maxBurstLength > 3, `bursts exist (max ${report.maxBurstLength}, seed ${SEED})`);
  });

  it('4-state with only isolated losses (p13 = 0) never loses two in a row', () => {
    const p14 = 0.1;
    const report = runLinkExperiment({ seed: SEED, packets: 50_000, pps: 1000, model: { loss: { model: '4-state', p13: 0, p31: 0, p32: 0, p23: 0, p14 } } });
    assert.equal(report.maxBurstLength, 1, `seed ${SEED}`);
    // State 4 always returns to state 1: loss = p14 / (1 + p14).
    within(report.lossRate, p14 / (1 + p14), 0.01, 'loss rate');
  });
});

describe('delay and jitter', () => {
  it('normal jitter: p50 and p99 match delay and delay + 2.326·J within 10 %', () => {
    const delayMs = 20;
    const jitterMs = 5;
    const report = runLinkExperiment({ seed: SEED, packets: N, pps: 1000, model: { delayMs, jitterMs, jitterDist: 'normal' } });
    within(report.latencyMs.p50, delayMs, 0.1 * delayMs, 'p50');
    const p99 = delayMs + 2.326 * jitterMs;
    within(report.latencyMs.p99, p99, 0.1 * p99, 'p99');
    within(report.latencyMs.mean, delayMs, 0.05, 'mean');
  });

  it('uniform jitter stays within delay ± J', () => {
    const report = runLinkExperiment({ seed: SEED, packets: 50_000, pps: 1000, model: { delayMs: 20, jitterMs: 5, jitterDist: 'uniform' } });
    assert.ok(report.latencyMs.min >= 15 && report.latencyMs.max <= 25, `range ${report.latencyMs.min}..${report.latencyMs.max} (seed ${SEED})`);
    within(report.latencyMs.p50, 20, 0.1, 'p50');
    within(report.latencyMs.p90, 24, 0.1, 'p90');
  });

  it('pareto jitter never goes below the fixed delay and has a heavy right tail', () => {
    const report = runLinkExperiment({ seed: SEED, packets: N, pps: 1000, model: { delayMs: 20, jitterMs: 4, jitterDist: 'pareto' } });
    assert.ok(report.latencyMs.min >= 20, `min ${report.latencyMs.min} (seed ${SEED})`);
    // Lomax(α = 3, scale J): median J·(2^(1/3) − 1), p99 J·(100^(1/3) − 1).
    within(report.latencyMs.p50, 20 + 4 * (Math.cbrt(2) - 1), 0.1, 'p50');
    within(report.latencyMs.p99, 20 + 4 * (Math.cbrt(100) - 1), 0.1 * (4 * (Math.cbrt(100) - 1)), 'p99');
  });

  it('jitter reorders (as netem does), and keepOrder yields zero reordered packets', () => {
    const model: LinkModelSpec = { delayMs: 20, jitterMs: 5, jitterDist: 'normal', loss: { model: 'bernoulli', p: 0.05 } };
    const loose = runLinkExperiment({ seed: SEED, packets: 50_000, pps: 2000, model });
    assert.ok(loose.reordered > 1000, `without keepOrder: ${loose.reordered} reordered (seed ${SEED})`);
    const ordered = runLinkExperiment({ seed: SEED, packets: 50_000, pps: 2000, model: { ...model, keepOrder: true } });
    assert.equal(ordered.reordered, 0, `seed ${SEED}`);
    assert.equal(ordered.lost, loose.lost, 'keepOrder changes arrival times, not which packets are lost');
  });

  it('reorder: a fraction of packets skips the delay and overtakes earlier ones', () => {
    const report = runLinkExperiment({ seed: SEED, packets: 50_000, pps: 1000, model: { delayMs: 20, reorderProbability: 0.1 } });
    assert.equal(report.latencyMs.min, 0, `seed ${SEED}`);
    assert.ok(report.reordered > 0, `seed ${SEED}`);
    // 10 % skip the 20 ms delay, so the 10th percentile sits at 0 and the rest at 20 ms.
    assert.equal(report.latencyMs.p50, 20);
    const link = new LinkDirection({ delayMs: 20, reorderProbability: 1 }, new Rng(SEED));
    assert.equal(link.offer(5, 100), 1);
    assert.equal(link.deliverAtMs[0], 5);
    assert.equal(link.lastReordered, true);
  });
});

describe('rate limit, queue, MTU, blackout, duplication, corruption', () => {
  it('a rate limit holds throughput within 2 % of the configured rate and tail-drops the excess', () => {
    const rateKbps = 1000;
    // 200 B at 1000 pps offers 1600 kbit/s: 60 % over the bottleneck.
    const report = runLinkExperiment({ seed: SEED, packets: 20_000, pps: 1000, sizeBytes: 200, model: { delayMs: 10, rateKbps, queuePackets: 50 } });
    within(report.throughputKbps, rateKbps, 0.02 * rateKbps, 'throughput kbit/s');
    assert.ok(report.drops.queueFull > 0, `queue-full drops (seed ${SEED})`);
    within(report.lossRate, 1 - rateKbps / report.offeredKbps, 0.01, 'tail-drop rate');
    // Worst case: wait behind a full queue, then serialize (1.6 ms per packet) and propagate.
    const txMs = (200 * 8) / rateKbps;
    assert.ok(report.latencyMs.max <= 10 + 50 * txMs + 1e-9, `max latency ${report.latencyMs.max} (seed ${SEED})`);
  });

  it('under the rate, nothing queues and latency is delay + serialization', () => {
    const report = runLinkExperiment({ seed: SEED, packets: 1000, pps: 100, sizeBytes: 125, model: { delayMs: 5, rateKbps: 1000 } });
    assert.equal(report.lost, 0);
    assert.equal(report.latencyMs.max, 6); // 1000 bits at 1000 bit/ms
  });

  it('drops packets above the MTU', () => {
    const link = new LinkDirection({ mtuBytes: 1200 }, new Rng(SEED));
    assert.equal(link.offer(0, 1200), 1);
    assert.equal(link.offer(0, 1201), 0);
    assert.equal(link.lastDropReason, DropReason.Mtu);
    const report = runLinkExperiment({ seed: SEED, packets: 10, pps: 10, sizeBytes: 1500, model: { mtuBytes: 1400 } });
    assert.equal(report.drops.mtu, 10);
  });

  it('drops every packet offered inside a blackout window, and only those', () => {
    // 1000 pps: packet i leaves at i ms; [100, 200) covers packets 100..199.
    const report = runLinkExperiment({ seed: SEED, packets: 1000, pps: 1000, model: { delayMs: 5, blackouts: [{ startMs: 100, endMs: 200 }] } });
    assert.equal(report.drops.blackout, 100);
    assert.equal(report.lost, 100);
    assert.equal(report.maxBurstLength, 100);
    const link = new LinkDirection({ blackouts: [{ startMs: 10, endMs: 20 }] }, new Rng(SEED));
    assert.equal(link.offer(9.999, 10), 1);
    assert.equal(link.offer(10, 10), 0);
    assert.equal(link.lastDropReason, DropReason.Blackout);
    assert.equal(link.offer(20, 10), 1);
  });

  it('duplicates the configured fraction; each copy has its own delay', () => {
    const report = runLinkExperiment({ seed: SEED, packets: 100_000, pps: 1000, model: { delayMs: 10, jitterMs: 2, dupProbability: 0.1 } });
    within(report.duplicated / report.sent, 0.1, 0.005, 'duplicate fraction');
    assert.equal(report.lost, 0);
    const link = new LinkDirection({ delayMs: 10, jitterMs: 2, dupProbability: 1 }, new Rng(SEED));
    assert.equal(link.offer(0, 100), 2);
    assert.notEqual(link.deliverAtMs[0], link.deliverAtMs[1]);
  });

  it('corrupts the configured fraction', () => {
    const report = runLinkExperiment({ seed: SEED, packets: 100_000, pps: 1000, model: { corruptProbability: 0.02 } });
    within(report.corrupted / report.sent, 0.02, 0.002, 'corrupt fraction');
  });

  it('setModel applies to later packets and keeps the Gilbert-Elliott state', () => {
    const rng = new Rng(SEED);
    const link = new LinkDirection({ delayMs: 10 }, rng);
    assert.equal(link.offer(0, 100), 1);
    assert.equal(link.deliverAtMs[0], 10);
    link.setModel({ delayMs: 50, loss: { model: 'bernoulli', p: 1 } });
    assert.equal(link.offer(1, 100), 0);
    assert.equal(link.lastDropReason, DropReason.Loss);
    link.setModel({ delayMs: 50 });
    assert.equal(link.offer(2, 100), 1);
    assert.equal(link.deliverAtMs[0], 52);
    assert.throws(() => link.setModel({ delayMs: -1 }), SimConfigError);
    assert.equal(link.model.delayMs, 50, 'a rejected model leaves the old one in force');
  });

  it('a shrunk queue limit drops new packets but keeps the ones accepted', () => {
    const link = new LinkDirection({ rateKbps: 8, queuePackets: 10 }, new Rng(SEED)); // 1 byte per ms
    for (let i = 0; i < 10; i++) assert.equal(link.offer(0, 100), 1);
    assert.equal(link.offer(0, 100), 0);
    assert.equal(link.lastDropReason, DropReason.QueueFull);
    link.setModel({ rateKbps: 8, queuePackets: 2 });
    assert.equal(link.queuedPackets(0), 10);
    assert.equal(link.offer(850, 100), 0, 'two packets still wait at 850 ms');
    assert.equal(link.offer(900, 100), 1, 'one waits at 900 ms');
    assert.equal(link.deliverAtMs[0], 1100);
  });
});

describe('validateLinkModel', () => {
  const bad: [LinkModelSpec, string, RegExp][] = [
    [{ loss: { model: 'bernoulli', p: 1.5 } }, 'link.loss.p', /from 0 to 1/],
    [{ delayMs: -1 }, 'link.delayMs', /from 0 to 3600000/],
    [{ jitterMs: Number.NaN }, 'link.jitterMs', /not a number/],
    [{ rateKbps: 0 }, 'link.rateKbps', /greater than 0/],
    [{ rateKbps: 100, queuePackets: 1.5 }, 'link.queuePackets', /integer/],
    [{ mtuBytes: 70_000 }, 'link.mtuBytes', /1 to 65535/],
    [{ dupProbability: 2 }, 'link.dupProbability', /from 0 to 1/],
    [{ blackouts: [{ startMs: 10, endMs: 10 }] }, 'link.blackouts[0].endMs', /greater than 10/],
    [{ loss: { model: '4-state', p13: 0.6, p31: 0.1, p32: 0.1, p23: 0.1, p14: 0.5 } }, 'link.loss.p14', /at most 1/],
    [{ loss: { model: 'gilbert-elliott', p: 0.1, r: 0.2, lossBad: 1 } as never }, 'link.loss.lossGood', /not a number/],
    [{ delay: 5 } as never, 'link.delay', /unknown parameter/],
    [{ jitterDist: 'gamma' } as never, 'link.jitterDist', /uniform, normal, pareto/],
  ];
  for (const [spec, parameter, message] of bad) {
    it(`rejects ${JSON.stringify(spec)} naming ${parameter}`, () => {
      assert.throws(
        () => validateLinkModel(spec),
        (error: unknown) => error instanceof SimConfigError && error.parameter === parameter && message.test(error.message) && error.message.startsWith(parameter),
      );
    });
  }

  it('accepts a full model and names the link in messages', () => {
    validateLinkModel({ delayMs: 20, jitterMs: 5, jitterDist: 'pareto', keepOrder: true, loss: { model: 'gilbert-elliott', p: 0.01, r: 0.3, lossBad: 1, lossGood: 0 }, dupProbability: 0.01, reorderProbability: 0.01, corruptProbability: 0.001, rateKbps: 5000, queuePackets: 100, mtuBytes: 1500, blackouts: [{ startMs: 0, endMs: 1 }] });
    assert.throws(() => validateLinkModel({ delayMs: -1 }, 'link a→b'), /^SimConfigError: link a→b\.delayMs/);
  });
});

describe('determinism', () => {
  const model: LinkModelSpec = { delayMs: 20, jitterMs: 5, jitterDist: 'normal', loss: { model: 'gilbert-elliott', p: 0.02, r: 0.3, lossBad: 0.9, lossGood: 0.001 }, dupProbability: 0.01, reorderProbability: 0.01, corruptProbability: 0.01, rateKbps: 2000, queuePackets: 20 };
  it('the same seed gives the same report; another seed differs', () => {
    const a = runLinkExperiment({ seed: 7, packets: 20_000, pps: 1500, model });
    const b = runLinkExperiment({ seed: 7, packets: 20_000, pps: 1500, model });
    const c = runLinkExperiment({ seed: 8, packets: 20_000, pps: 1500, model });
    assert.deepEqual(a, b);
    assert.notDeepEqual({ ...a, seed: 0 }, { ...c, seed: 0 });
  });
});
