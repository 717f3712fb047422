/**
 * Adaptive controller decisions on synthetic receiver reports (virtual time), and the
 * residual model behind them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FEC_SW_TAIL_WINDOW_MS_MIN, FecController, type FecControllerInit } from '../src/fec/controller.js';
import { bernoulliResidual, fitGilbert, residualDuplicate, residualReedSolomon, stationaryLoss } from '../src/fec/model.js';
import type { FecIntervalStats } from '../src/fec/receiver.js';
import { schemeOverhead, type FecScheme } from '../src/fec/scheme.js';
import { FecSender } from '../src/fec/sender.js';
import { Rng } from '../src/rng.js';

const REPORT_MS = 250;

/** Drives a controller with reports of a path losing `loss` in bursts of `burst`, for `durationMs`. */
class Driver {
  now = 0;
  changes = 0;
  readonly controller: FecController;
  private readonly rng = new Rng(7);
  constructor(
    readonly ratePps: number,
    init: FecControllerInit = {},
  ) {
    this.controller = new FecController(init);
  }
  run(durationMs: number, loss: number, burst: number): FecScheme[] {
    const seen: FecScheme[] = [];
    const end = this.now + durationMs;
    while (this.now < end) {
      const packets = (this.ratePps * REPORT_MS) / 1000;
      for (let i = 0; i < packets; i++) this.controller.handlePacket(this.now + (i * REPORT_MS) / packets, 100 + ((i * 37) % 60));
      this.now += REPORT_MS;
      const wire = Math.round(packets * (1 + schemeOverhead(this.controller.scheme)));
      let lost = 0;
      for (let i = 0; i < wire; i++) if (this.rng.chance(loss)) lost++;
      const bursts = lost === 0 ? 0 : Math.max(1, Math.round(lost / burst));
      const stats: FecIntervalStats = {
        startMs: this.now - REPORT_MS, endMs: this.now, received: packets, recovered: 0, unrecoverable: 0, duplicates: 0, parityReceived: 0,
        wirePackets: wire, wireLost: lost, lossBursts: bursts, lossRate: wire ? lost / wire : 0, meanBurstPackets: bursts ? lost / bursts : 0,
      };
      const before = this.controller.scheme;
      this.controller.handleStats(this.now, stats, 40);
      if (this.controller.scheme !== before) this.changes++;
      seen.push(this.controller.scheme);
    }
    return seen;
  }
}

test('stays off on a clean path', () => {
  const d = new Driver(60);
  const seen = d.run(30_000, 0, 1);
  assert.ok(seen.every((s) => s.mode === 'off'));
});

test('protects within about a second of loss appearing, and falls back to off once it is gone', () => {
  for (const rate of [60, 500]) {
    const d = new Driver(rate);
    d.run(10_000, 0, 1);
    const onset = d.run(1250, 0.1, 1);
    assert.notEqual(onset[onset.length - 1].mode, 'off', `${rate} pps: protected after 1.25 s of 10 % loss`);
    d.run(20_000, 0.1, 1);
    const after = d.run(12_000, 0, 1);
    const offAt = after.findIndex((s) => s.mode === 'off');
    assert.ok(offAt >= 0 && offAt * REPORT_MS <= 9000, `${rate} pps: off within 9 s of a clean path (was ${offAt * REPORT_MS} ms)`);
    assert.equal(after[after.length - 1].mode, 'off');
  }
});

test('does not flap on a steady noisy path', () => {
  for (const rate of [60, 500]) {
    const d = new Driver(rate);
    d.run(5000, 0.02, 1);
    const changesBefore = d.changes;
    d.run(120_000, 0.02, 1);
    assert.ok(d.changes - changesBefore <= 6, `${rate} pps: ${d.changes - changesBefore} changes in 2 minutes of steady 2 % loss`);
  }
});

test('game rates get duplication or tiny groups within the latency budget; media rates get groups', () => {
  const game = new Driver(60);
  const g = game.run(20_000, 0.05, 2).at(-1)!;
  assert.ok(g.mode === 'duplicate' || (g.mode === 'rs' && g.k * g.interleave <= 2), JSON.stringify(g));
  if (g.mode === 'duplicate') assert.ok(g.spacingMs * g.copies <= 20);
  const media = new Driver(500);
  const m = media.run(20_000, 0.05, 2).at(-1)!;
  assert.equal(m.mode, 'rs', JSON.stringify(m));
  const decision = media.controller.lastDecision!;
  assert.ok(decision.modelResidual <= 0.002, `model residual ${decision.modelResidual}`);
});

test('never exceeds the bandwidth cap, and quarters it on a congested-looking path', () => {
  const d = new Driver(500, { overheadMax: 0.5 });
  for (const s of d.run(20_000, 0.1, 2)) assert.ok(schemeOverhead(s) <= 0.5 + 1e-9, JSON.stringify(s));
  const c = new Driver(500);
  const congested = c.run(20_000, 0.4, 1).at(-1)!;
  assert.ok(schemeOverhead(congested) <= 0.25 + 1e-9, JSON.stringify(congested));
});

test('a sender with a controller follows its decisions', () => {
  const controller = new FecController();
  const sender = new FecSender({ controller });
  assert.equal(sender.scheme.mode, 'off');
  const out = new Uint8Array(sender.maxShardBytes);
  for (let t = 0; t < 3000; t += 250) {
    for (let i = 0; i < 15; i++) {
      sender.push(t + i * 16, new Uint8Array(100));
      while (sender.pollTransmit(out));
    }
    sender.handleFeedback(t + 250, { startMs: t, endMs: t + 250, received: 14, recovered: 0, unrecoverable: 1, duplicates: 0, parityReceived: 0, wirePackets: 15, wireLost: 2, lossBursts: 2, lossRate: 2 / 15, meanBurstPackets: 1 }, 40);
  }
  assert.notEqual(sender.scheme.mode, 'off');
  assert.equal(sender.scheme, controller.scheme);
});

test('model: a Gilbert-Elliott fit with Bernoulli bursts reproduces the MDS bound; bursts hurt; spacing helps', () => {
  for (const [k, r, p] of [[4, 2, 0.05], [10, 3, 0.1], [20, 10, 0.2]] as const) {
    const fit = fitGilbert(p, 1 / (1 - p));
    assert.ok(Math.abs(stationaryLoss(fit) - p) < 1e-12);
    const model = residualReedSolomon(fit, k, r, 1);
    assert.ok(Math.abs(model - bernoulliResidual(k, r, p)) < 1e-12, `(${k},${r}) at ${p}`);
  }
  // Anchors from DESIGN.md: (4,2) at 5 % → 0.113 %, (10,3) at 10 % → 1.11 %.
  assert.ok(Math.abs(bernoulliResidual(4, 2, 0.05) - 0.00113) < 0.000005);
  assert.ok(Math.abs(bernoulliResidual(10, 3, 0.1) - 0.0111) < 0.00005);
  const bursty = fitGilbert(0.05, 2);
  assert.ok(residualReedSolomon(bursty, 4, 2, 1) > 10 * bernoulliResidual(4, 2, 0.05));
  assert.ok(residualReedSolomon(bursty, 4, 2, 4) < residualReedSolomon(bursty, 4, 2, 1) / 5);
  assert.ok(residualDuplicate(bursty, 1, 11) < residualDuplicate(bursty, 1, 1) / 5);
});

/** The repair rate of an `sw` scheme (0 for anything else). */
function repairs(s: FecScheme): number {
  return s.mode === 'sw' ? s.repairsPerSource : 0;
}

test('sw family: starts with a repair per packet, drops to the small-flow floor on a clean path (none for a big flow), and only ever answers sw', () => {
  const d = new Driver(60, { family: 'sw' });
  assert.equal(d.controller.scheme.mode, 'sw');
  assert.equal(repairs(d.controller.scheme), 1);
  const seen = d.run(30_000, 0, 1);
  assert.ok(seen.every((s) => s.mode === 'sw'));
  // A game flow keeps 1 repair per 4 packets (~1.9 kB/s here): insurance while a new loss is not yet significant.
  assert.equal(repairs(seen[seen.length - 1]), 0.25);
  // A media flow (2,000 packets/s of ~130 B): the floor would cost more than its budget, so none.
  const media = new Driver(2000, { family: 'sw' });
  const mediaSeen = media.run(30_000, 0, 1);
  assert.equal(repairs(mediaSeen[mediaSeen.length - 1]), 0);
  assert.throws(() => new FecController({ family: 'rs' as never }), /family/);
});

test('sw family at game rates: the repairs follow loss and burstiness within the budget, the cap and the loss-bought redundancy', () => {
  const at = (loss: number, burst: number, init: FecControllerInit = {}): { scheme: FecScheme; late: number; residual: number } => {
    const d = new Driver(60, { family: 'sw', ...init });
    d.run(40_000, loss, burst);
    const decision = d.controller.lastDecision!;
    return { scheme: d.controller.scheme, late: decision.modelLate, residual: decision.modelResidual };
  };
  // 1 % random: fewer than half a repair per packet (the redundancy 1 % loss buys), nothing lost; the repairs of
  // a packet lost between two repairs come a packet later, so some arrive after the 10 ms budget.
  const light = at(0.01, 1);
  assert.ok(repairs(light.scheme) > 0 && repairs(light.scheme) < 0.5, `1 %: ${JSON.stringify(light.scheme)}`);
  assert.ok(light.residual <= 0.0001, `1 %: residual ${light.residual}`);
  // 10 % random: enough repairs right behind each packet that ≤ 0.5 % are rebuilt after the budget.
  const heavy = at(0.1, 1);
  assert.ok(repairs(heavy.scheme) >= 2, `10 %: ${JSON.stringify(heavy.scheme)}`);
  assert.ok(heavy.late <= 0.005 && heavy.residual <= 0.0001, `10 %: late ${heavy.late} residual ${heavy.residual}`);
  // The same loss in bursts of 2 buys more repairs than random loss does.
  const random5 = at(0.05, 1);
  const bursty5 = at(0.05, 2);
  assert.ok(repairs(bursty5.scheme) > repairs(random5.scheme), `5 %: random ${JSON.stringify(random5.scheme)}, bursty ${JSON.stringify(bursty5.scheme)}`);
  // A tighter budget costs more repairs; a looser one fewer.
  assert.ok(repairs(at(0.1, 1, { latencyBudgetMs: 30 }).scheme) < repairs(heavy.scheme));
  // A bandwidth cap and no small-flow allowance bound the repairs.
  assert.ok(repairs(at(0.1, 1, { overheadMax: 0.5, smallFlowExtraBytesPerSecond: 0 }).scheme) <= 0.5);
  // Every window is the tail window (FEC_SW_TAIL_WINDOW_MS_MIN at the default budget) or a budget multiple below it.
  for (const s of [light.scheme, heavy.scheme, bursty5.scheme]) assert.ok(s.mode === 'sw' && [10, 20, FEC_SW_TAIL_WINDOW_MS_MIN].includes(s.windowMs) && s.repairSpacingMs <= 2, JSON.stringify(s));
});

test('sw family: a sender with the controller follows it, changing repairs at run time without leaving sw', () => {
  const controller = new FecController({ family: 'sw' });
  const sender = new FecSender({ controller, maxPayloadBytes: 200 });
  assert.equal(sender.scheme.mode, 'sw');
  const out = new Uint8Array(sender.maxShardBytes);
  let now = 0;
  for (let second = 0; second < 10; second++) {
    for (let i = 0; i < 60; i++) {
      sender.push(now, new Uint8Array(100));
      while (sender.pollTransmit(out) !== undefined);
      now += 1000 / 60;
      sender.handleTimeout(now);
      while (sender.pollTransmit(out) !== undefined);
    }
    sender.handleFeedback(now, { startMs: now - 1000, endMs: now, received: 60, recovered: 0, unrecoverable: 0, duplicates: 0, parityReceived: 0, wirePackets: 180, wireLost: 18, lossBursts: 16, lossRate: 0.1, meanBurstPackets: 1.1 }, 20);
  }
  assert.equal(sender.scheme.mode, 'sw');
  assert.ok(repairs(sender.scheme) >= 2, JSON.stringify(sender.scheme));
});

test('sw family on a clean path: the floor of repairs covers every packet between two repairs (insurance against loss the reports have not shown yet)', () => {
  const d = new Driver(60, { family: 'sw' });
  d.run(40_000, 0, 1);
  const s = d.controller.scheme;
  assert.ok(s.mode === 'sw' && repairs(s) > 0, JSON.stringify(s));
  // One repair every 1/rate packets must reach back over all of them, or a loss between two repairs is never rebuilt.
  assert.ok(s.mode === 'sw' && s.windowPackets >= Math.ceil(1 / s.repairsPerSource), `window of ${s.mode === 'sw' ? s.windowPackets : 0} packets for a repair every ${(1 / repairs(s)).toFixed(1)}: ${JSON.stringify(s)}`);
});

test('sw family: host stalls do not move the protection (the packet rate is a median over 2 s, not the last report interval)', () => {
  // A 60 packets/s game of 100 B on a path losing 30 % (congested-looking: the cap is quartered, so the allowance
  // the packet rate sets binds). Every 5 s the host stalls 600 ms: the interval over the stall counts the packets
  // sent before it, the next one the backlog too (204 packets/s read for 60; once 127 in real processes).
  const controller = new FecController({ family: 'sw' });
  const rng = new Rng(11);
  let now = 0;
  let sinceReportMs = 0;
  const report = (packets: number, intervalMs: number): void => {
    for (let i = 0; i < packets; i++) controller.handlePacket(now, 100);
    now += intervalMs;
    const wire = Math.round(packets * (1 + schemeOverhead(controller.scheme)));
    let lost = 0;
    for (let i = 0; i < wire; i++) if (rng.chance(0.3)) lost++;
    controller.handleStats(now, { startMs: now - intervalMs, endMs: now, received: packets, recovered: 0, unrecoverable: 0, duplicates: 0, parityReceived: 0, wirePackets: wire, wireLost: lost, lossBursts: lost, lossRate: wire ? lost / wire : 0, meanBurstPackets: lost ? 1 : 0 }, 40);
  };
  for (let i = 0; i < 80; i++) report(15, REPORT_MS);
  const steady = controller.scheme;
  const seen = new Set<string>();
  for (let stall = 0; stall < 12; stall++) {
    report(15, REPORT_MS + 600); // the stall: the packets sent before it
    report(15 + 36, REPORT_MS); // the backlog with this interval's own
    for (sinceReportMs = 0; sinceReportMs < 4000; sinceReportMs += REPORT_MS) {
      report(15, REPORT_MS);
      seen.add(JSON.stringify(controller.scheme));
    }
  }
  assert.equal(steady.mode, 'sw');
  assert.deepEqual([...seen], [JSON.stringify(steady)], `steady ${JSON.stringify(steady)}; after stalls ${[...seen].join(', ')}`);
});
