/**
 * The simulator agrees with reality (issue #13, item 5): one scenario run both ways —
 * in virtual time on the real cores (`ScenarioRun`, the code path of `slipstream sim
 * run`) and as real processes on 127.0.0.x (coordinator, three relays, `slipstream
 * connect`, an echo origin, a game-like client; bench/qoe-fleet.ts) with the player's
 * last mile as one `sim proxy` shared link — and the delivered loss and RTT percentiles
 * compared within the tolerance stated below (and in sim/README.md, "Agreement with
 * real processes").
 *
 * The scenario: one player whose last mile (its access link; in reality the shared
 * link every relay path, probe and the direct path cross) loses 30 % of packets at
 * random each way with 10 ms one way; three relays and the origin beyond it at no extra
 * delay (loopback); 60 datagrams/s of 100 bytes each way, sent both straight to the
 * origin and through Slipstream at the same instants. 30 % rather than a gentler loss
 * because the adaptive sliding window leaves almost nothing below that (at 20 %: 0 of
 * 10,801 simulated round trips lost — nothing to compare), while above 25 % the path
 * looks congested and the controller quarters its redundancy (one repair per packet at
 * 60 packets/s of 100 B, each way): about 0.1–0.15 % is lost (≈ 2 round trips in 30 s,
 * in bunches), and the p99 (~170 ms) is set by the late rebuilds — both figures the FEC
 * controller, the coder and the loss model decide together.
 *
 * Both origins answer only the first copy of each datagram (as the simulator's game
 * server does): copies through the backup relay must not stand in for a lost answer on
 * one side only.
 *
 * Tolerance, per path (direct, Slipstream):
 * - round-trip loss (answers that never came back ÷ datagrams sent) within a factor of
 *   2, or within 0.05 percentage points, or — when FEC leaves only a handful of losses
 *   in the real window (≈ 0.15 % here, 2–3 of 1,800) — a real count that the
 *   simulator's own 30 s windows give with two-sided probability ≥ 0.001. Not a
 *   Poisson draw at the simulated rate: FEC losses come in bunches (a sliding window
 *   the loss outruns gives up every packet it still covered: 5–15 consecutive round
 *   trips in 200 ms), so the simulator's per-window counts vary five to six times more
 *   than their mean (seeds 1–6, 40 windows each: mean 1.9, variance 12.5, a window of 22).
 *   The windows' count is compared with a negative binomial of the simulated windows'
 *   mean and variance (Poisson when they show no excess): it fits the simulated
 *   windows (8 seeds × 20 windows: ≥ 13 in 2.5 % of them, 3.0 % modelled; ≥ 22: 0.6 %,
 *   0.5 %); with the pooled seeds' spread a real window of up to ~25–33 agrees, 45 of
 *   1,800 does not;
 * - RTT p50 and p99 within 5 ms — where the real run may be slower by what the host
 *   itself added in the same window: the direct path is the link model and nothing
 *   else, so its real p50/p99 minus the simulated ones is the host's share (scheduling,
 *   timers; the simulator models none), allowed on top of the 5 ms for Slipstream. The
 *   real run may never be faster than the model by more than 5 ms. For the p99 both
 *   sides' sampling error counts too: the p99s agree when their distribution-free 99.9 %
 *   confidence intervals (order statistics), widened by that tolerance, meet — a p99 of
 *   1,800 round trips on the steep tail of late rebuilds moves by tens of ms between
 *   windows of the same path (140 ms and 173 ms measured, simulated 138 ms).
 *
 * Both sides send 3 s of traffic before measuring (the FEC controllers adapt to the
 * loss from the receivers' reports of data), and 1 s after the measured window (see
 * COOLDOWN_S). The simulated side measures 1,200 s of virtual time for each of three
 * seeds (120 windows of the real run's length; about 9 s of CPU), so its rate and the
 * spread of its windows are known well enough.
 *
 * The host: the simulator models the network, not the machine. When the real window
 * had a host stall (the direct path's p99 more than 15 ms above the model's), the
 * real run is measured once more and the quieter window compared; both are printed.
 * Why: on the shared 2-core machine, windows with a stall (direct p99 +30 ms) lost
 * 1.7 % through Slipstream against the simulator's 0.8 %, while windows without one
 * lost 0.83–0.89 % — a stall delays repairs past their deadline and can make the SDK
 * judge a backup session dead and reopen it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { startQoeFleet } from '../bench/qoe-fleet.js';
import { ChildRegistry } from '../bench/qoe-processes.js';
import { PACKET_BYTES, PATH_DIRECT, PATH_SLIPSTREAM, quantile, runGame, startEchoOrigin, type PathRecord } from '../bench/qoe-traffic.js';
import { PATH_DIRECT as SIM_PATH_DIRECT, PATH_TUNNEL as SIM_PATH_TUNNEL, type PathLog } from '../sim/src/deployment/deployment.js';
import { parseScenario } from '../sim/src/scenario/load.js';
import { ScenarioRun } from '../sim/src/scenario/run.js';

/** The last mile: random loss each way, and its one-way delay, ms. */
const LOSS = 0.3;
const DELAY_MS = 10;
const PACKETS_PER_SECOND = 60;
/** Measured traffic of the real run, s (1800 datagrams per path). */
const REAL_SECONDS = 30;
/** Measured traffic of each simulated run, virtual s: {@link SIM_SECONDS} / {@link REAL_SECONDS} windows of the real run's length. */
const SIM_SECONDS = 1200;
/**
 * Traffic sent before measuring, on both sides, s: the FEC controllers adapt to the
 * loss from the receivers' reports of data, so the first seconds of traffic lose more
 * (in the simulator 4–20 datagrams in the first 2 s, then about one every 2 s).
 */
const WARMUP_S = 3;
/**
 * Traffic sent after the measured window, on both sides, s: the last packets of a flow
 * that stops have no later repairs to rebuild them (a sliding window's tail; the
 * simulator loses them too, at the end of its run), which a game in play never has.
 * Measured: real windows that ended with the traffic lost 23 round trips in their last
 * 10 datagrams over 21 windows (≈ 1 a window, where the body's rate gives 0.06).
 */
const COOLDOWN_S = 1;
/** When the simulated player starts, s (relays register and measure first). */
const SIM_START_S = 3;
/**
 * Seeds of the simulated runs, pooled: 3 × 40 windows. One seed's 40 windows put the
 * variance of a window's count anywhere from 4.9 to 24.8 (mean 1.2–3.5; seeds 1–6);
 * three pooled, 7.5–13.3.
 */
const SIM_SEEDS = [1, 2, 3];
/** `sim proxy --seed` of the real run. */
const PROXY_SEED = 13;
/** Loss agreement: a factor of 2, or this absolute difference (0.05 percentage points), or a count the simulated windows give at this two-sided probability. */
const LOSS_FACTOR = 2;
const LOSS_ABSOLUTE = 0.0005;
const LOSS_WINDOW_P_MIN = 0.001;
/** RTT agreement, ms. */
const RTT_TOLERANCE_MS = 5;
/**
 * A host stall: the host's share of the direct path's p99 RTT (real minus simulated;
 * the direct path is the link model and nothing else) above this, ms. Real processes
 * on a shared machine stall now and then (the simulator models no host), and a stall
 * costs the tunnel more than the direct path (late FEC repairs, a backup session
 * judged dead and reopened): a window with one is measured once more.
 */
const HOST_STALL_P99_MS = 15;
/** Real measurements at most (the quietest is compared). */
const REAL_RUNS_MAX = 2;
/** Everything: processes starting, one or two windows of traffic, the simulation. About 40 s on a quiet 2-core machine, 75 s with a second window. */
const TEST_TIMEOUT_MS = 180_000;

const IMPAIRMENT = { delayMs: DELAY_MS, loss: { model: 'bernoulli', p: LOSS } };

/** The scenario, as `slipstream sim run` would read it from a file. */
const SCENARIO = `version: 1
name: agreement
description: One player behind a last mile losing ${LOSS * 100} % each way at ${DELAY_MS} ms one way; three relays and the origin on loopback.
duration: ${SIM_START_S + WARMUP_S + SIM_SECONDS + COOLDOWN_S}s
warmup: ${WARMUP_S}s
defaultLink: { delayMs: 0 }
regions: [local]
coordinator: { region: local }
origins:
  - { name: game, region: local }
relays:
  - { name: relay-1, region: local }
  - { name: relay-2, region: local }
  - { name: relay-3, region: local }
clients:
  - name: player
    region: local
    start: ${SIM_START_S}s
    traffic: { kind: game, packetsPerSecond: ${PACKETS_PER_SECOND}, bytes: ${PACKET_BYTES} }
    access:
      both: { delayMs: ${DELAY_MS}, loss: ${LOSS} }
`;

/** One path's figures, measured the same way on both sides. */
interface Figures {
  readonly sent: number;
  /** Datagrams whose answer never came back ÷ sent. */
  readonly loss: number;
  /** Datagrams that never reached the origin ÷ sent (reported, not compared: a handful either way). */
  readonly uplinkLoss: number;
  readonly rttP50Ms: number;
  readonly rttP99Ms: number;
  /**
   * A distribution-free confidence interval for the p99 (order statistics, ±3.3 standard
   * deviations of the binomial count above it): with 1,800 round trips the p99 is the
   * 18th largest, and on a steep tail (late rebuilds at 30 % loss) the 5th and the 31st
   * largest can be tens of ms apart.
   */
  readonly rttP99LowMs: number;
  readonly rttP99HighMs: number;
  /** Lost round trips per window of {@link REAL_SECONDS}: their mean and (sample) variance (the simulated run's; the real run is one window). */
  readonly windowLostMean: number;
  readonly windowLostVariance: number;
  /** The simulated run's largest window count. */
  readonly windowLostMax: number;
}

function figures(sent: number, reachedOrigin: number, rttsMs: readonly number[], windowLost: readonly number[] = [sent - rttsMs.length]): Figures {
  const round = (x: number, digits: number): number => Number(x.toFixed(digits));
  const sorted = [...rttsMs].sort((a, b) => a - b);
  const n = sorted.length;
  const spread = 3.3 * Math.sqrt(n * 0.99 * 0.01);
  const at = (rank: number): number => (n === 0 ? Number.NaN : sorted[Math.min(n - 1, Math.max(0, Math.round(rank)))]!);
  return {
    sent,
    loss: round(1 - rttsMs.length / sent, 5),
    uplinkLoss: round(1 - reachedOrigin / sent, 5),
    rttP50Ms: round(quantile(rttsMs, 0.5), 2),
    rttP99Ms: round(quantile(rttsMs, 0.99), 2),
    rttP99LowMs: round(at(0.99 * n - spread), 2),
    rttP99HighMs: round(at(0.99 * n + spread), 2),
    ...windowStats(windowLost),
  };
}

/** Mean, sample variance (0 for one window) and largest of per-window loss counts. */
function windowStats(counts: readonly number[]): { windowLostMean: number; windowLostVariance: number; windowLostMax: number } {
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  const variance = counts.length > 1 ? counts.reduce((a, b) => a + (b - mean) ** 2, 0) / (counts.length - 1) : 0;
  return { windowLostMean: Number(mean.toFixed(3)), windowLostVariance: Number(variance.toFixed(3)), windowLostMax: Math.max(...counts) };
}

/** What the simulator saw of one path: datagrams sent, reaching the origin, RTTs, and lost round trips per {@link REAL_SECONDS} window. */
interface SimCounts {
  sent: number;
  reached: number;
  readonly rtts: number[];
  readonly windowLost: number[];
}

/** Adds the simulator's counts of one path over the packets sent in `[fromMs, toMs)` to `into`. */
function addSimCounts(into: SimCounts, log: PathLog, fromMs: number, toMs: number): void {
  const answerAtMs = new Map<number, number>();
  for (let d = 0; d < log.echoOf.length; d++) answerAtMs.set(log.echoOf[d]!, log.clientAtMs[d]!);
  const windowLost = new Array<number>(Math.floor((toMs - fromMs) / (REAL_SECONDS * 1000))).fill(0);
  for (let seq = 0; seq < log.sentAtMs.length; seq++) {
    const t = log.sentAtMs[seq]!;
    if (t < fromMs || t >= toMs) continue;
    into.sent++;
    if (!Number.isNaN(log.originAtMs[seq]!)) into.reached++;
    const at = answerAtMs.get(seq);
    if (at !== undefined && !Number.isNaN(at)) into.rtts.push(at - t);
    else {
      const w = Math.floor((t - fromMs) / (REAL_SECONDS * 1000));
      if (w < windowLost.length) windowLost[w]!++;
    }
  }
  into.windowLost.push(...windowLost);
}

/** The simulated figures of both paths, every seed of {@link SIM_SEEDS} pooled. */
function runSimulated(): { direct: Figures; slipstream: Figures } {
  const direct: SimCounts = { sent: 0, reached: 0, rtts: [], windowLost: [] };
  const slipstream: SimCounts = { sent: 0, reached: 0, rtts: [], windowLost: [] };
  const fromMs = (SIM_START_S + WARMUP_S) * 1000;
  const toMs = fromMs + SIM_SECONDS * 1000;
  for (const seed of SIM_SEEDS) {
    const run = new ScenarioRun(parseScenario('agreement.yaml', SCENARIO), seed);
    run.run();
    const client = run.deployment.clients[0]!;
    addSimCounts(direct, client.logs[SIM_PATH_DIRECT], fromMs, toMs);
    addSimCounts(slipstream, client.logs[SIM_PATH_TUNNEL], fromMs, toMs);
  }
  const of = (c: SimCounts): Figures => figures(c.sent, c.reached, c.rtts, c.windowLost);
  return { direct: of(direct), slipstream: of(slipstream) };
}

/** Real figures of both paths. */
interface RealRun {
  readonly direct: Figures;
  readonly slipstream: Figures;
}

/**
 * Starts the deployment once and measures with `measure(caseNumber)` (warm-up excluded)
 * as often as `again` asks, at most {@link REAL_RUNS_MAX} times; returns every run.
 */
async function runReal(progress: (line: string) => void, again: (run: RealRun) => boolean): Promise<RealRun[]> {
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-agreement-'));
  const children = new ChildRegistry();
  const origin = await startEchoOrigin('first');
  try {
    // The last mile is lossy from the start, as the simulated player's access link is,
    // and the direct path crosses it too, as in the simulator.
    const fleet = await startQoeFleet({ dir, children, originPort: origin.port, seed: PROXY_SEED, progress, directLastMile: 'shared', impairment: IMPAIRMENT });
    const runs: RealRun[] = [];
    for (let caseNumber = 1; caseNumber <= REAL_RUNS_MAX; caseNumber++) {
      const run = await runGame({ directPort: fleet.directPort, slipstreamPort: fleet.connectPort, caseNumber, seconds: WARMUP_S + REAL_SECONDS + COOLDOWN_S, packetsPerSecond: PACKETS_PER_SECOND, drainMs: 1000 });
      const firstSeq = WARMUP_S * PACKETS_PER_SECOND;
      const endSeq = firstSeq + REAL_SECONDS * PACKETS_PER_SECOND;
      const real = (record: PathRecord, tag: number): Figures => {
        const measured = (seq: number): boolean => seq >= firstSeq && seq < endSeq;
        const reached = [...origin.counts(caseNumber, tag).arrivals.keys()].filter(measured).length;
        return figures(Math.min(record.sent, endSeq) - firstSeq, reached, [...record.rttMsBySeq].filter(([seq]) => measured(seq)).map(([, rtt]) => rtt));
      };
      runs.push({ direct: real(run.direct, PATH_DIRECT), slipstream: real(run.slipstream, PATH_SLIPSTREAM) });
      if (!again(runs[runs.length - 1]!)) break;
    }
    return runs;
  } finally {
    await children.stopAll();
    await origin.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * P[X ≤ k] and P[X ≥ k] for X of mean `mean` and variance `variance`: negative binomial
 * when the variance exceeds the mean (counts that come in bunches), else Poisson.
 */
function countTails(k: number, mean: number, variance: number): { atMost: number; atLeast: number } {
  if (mean <= 0) return { atMost: 1, atLeast: k <= 0 ? 1 : 0 };
  // Poisson: p(i+1) = p(i)·λ/(i+1). Negative binomial with r = mean²/(variance − mean),
  // q = mean/variance: p(0) = q^r, p(i+1) = p(i)·(i + r)/(i + 1)·(1 − q).
  const overdispersed = variance > mean * (1 + 1e-9);
  const r = overdispersed ? (mean * mean) / (variance - mean) : 0;
  const q = overdispersed ? mean / variance : 0;
  let term = overdispersed ? Math.pow(q, r) : Math.exp(-mean);
  let below = 0; // P[X ≤ k − 1]
  for (let i = 0; i < k; i++) {
    below += term;
    term *= overdispersed ? ((i + r) / (i + 1)) * (1 - q) : mean / (i + 1);
  }
  return { atMost: Math.min(1, below + term), atLeast: Math.max(0, 1 - below) };
}

/**
 * Whether a real loss fraction (`real`, of `sent` datagrams: one window) agrees with the
 * simulated one (`sim`, over many windows of the same length: its expectation, with the
 * mean and variance of its per-window counts) within the stated tolerance.
 */
function lossAgrees(real: number, sim: number, sent: number, simWindows: { mean: number; variance: number }): boolean {
  if (Math.abs(real - sim) <= LOSS_ABSOLUTE) return true;
  const low = Math.min(real, sim);
  if (low > 0 && Math.max(real, sim) / low <= LOSS_FACTOR) return true;
  const tails = countTails(Math.round(real * sent), simWindows.mean, simWindows.variance);
  return 2 * Math.min(tails.atMost, tails.atLeast) >= LOSS_WINDOW_P_MIN;
}

describe('the simulator agrees with real processes through sim proxy', () => {
  test('lossAgrees: a factor of 2, 0.05 points, or a count the simulated windows give', () => {
    const poisson = (mean: number): { mean: number; variance: number } => ({ mean, variance: mean });
    // Large counts: the factor decides (190 against 100 of 10,000 agrees, 210 does not: the count test would pass neither).
    assert.ok(lossAgrees(0.019, 0.01, 10_000, poisson(100)));
    assert.ok(!lossAgrees(0.021, 0.01, 10_000, poisson(100)));
    assert.ok(lossAgrees(0, 0.0004, 1800, poisson(0.72)), 'both near zero');
    // A handful, independent losses: 0 of 1,800 against 0.25 % (4.5 expected) happens 1 % of the time; 45 of 1,800 never.
    assert.ok(lossAgrees(0, 0.0025, 1800, poisson(4.5)));
    assert.ok(!lossAgrees(0.025, 0.0025, 1800, poisson(4.5)), 'tenfold');
    assert.ok(!lossAgrees(0, 0.01, 1800, poisson(18)), 'zero against 18 expected');
    // Losses in bunches (the simulator's windows: mean 2.4, variance 14.5): 13 in a window happens (1 window in 35; 4 of 160 simulated) where Poisson says 1 in 650,000; 45 still does not (1 in 20,000).
    assert.ok(!lossAgrees(13 / 1800, 2.4 / 1800, 1800, poisson(2.4)), 'thirteen against 2.4, independent');
    assert.ok(lossAgrees(13 / 1800, 2.4 / 1800, 1800, { mean: 2.4, variance: 14.5 }), 'thirteen against 2.4 in bunches');
    assert.ok(!lossAgrees(45 / 1800, 2.4 / 1800, 1800, { mean: 2.4, variance: 14.5 }), 'forty-five against 2.4 in bunches');
    assert.ok(!lossAgrees(0, 0.01, 1800, { mean: 18, variance: 30 }), 'zero against 18 expected, mildly bunched');
  });

  test(`${LOSS * 100} % random loss each way on a ${DELAY_MS} ms last mile, three relays: loss within a factor of ${LOSS_FACTOR}, RTT p50/p99 within ${RTT_TOLERANCE_MS} ms`, { timeout: TEST_TIMEOUT_MS }, async (t: TestContext) => {
    const sim = runSimulated();
    // What the host added on the direct path (the link model and nothing else) in a window.
    const hostShare = (real: RealRun): { p50Ms: number; p99Ms: number } => ({ p50Ms: Math.max(0, real.direct.rttP50Ms - sim.direct.rttP50Ms), p99Ms: Math.max(0, real.direct.rttP99Ms - sim.direct.rttP99Ms) });
    const runs = await runReal(
      (line) => t.diagnostic(line),
      (run) => hostShare(run).p99Ms > HOST_STALL_P99_MS,
    );
    // The quietest window: the simulator models the network, not a stalled host.
    const real = runs.reduce((best, run) => (hostShare(run).p99Ms < hostShare(best).p99Ms ? run : best));
    const { p50Ms: hostP50Ms, p99Ms: hostP99Ms } = hostShare(real);
    const summary = `simulated (seeds ${SIM_SEEDS.join(', ')}, ${SIM_SECONDS} s each): ${JSON.stringify(sim)}; real (proxy seed ${PROXY_SEED}, ${REAL_SECONDS} s, quietest of ${runs.length} run(s)): ${JSON.stringify(real)}; host's share of the direct path's RTT: p50 +${hostP50Ms.toFixed(2)} ms, p99 +${hostP99Ms.toFixed(2)} ms`;
    for (const run of runs) t.diagnostic(`real run: ${JSON.stringify(run)}, host's share p99 +${hostShare(run).p99Ms.toFixed(2)} ms`);
    t.diagnostic(summary);
    for (const path of ['direct', 'slipstream'] as const) {
      const r = real[path];
      const s = sim[path];
      assert.ok(r.sent >= REAL_SECONDS * PACKETS_PER_SECOND * 0.99 && s.sent >= SIM_SECONDS * PACKETS_PER_SECOND * 0.99, `every datagram was sent: ${summary}`);
      assert.ok(
        lossAgrees(r.loss, s.loss, r.sent, { mean: s.windowLostMean, variance: s.windowLostVariance }),
        `${path}: round-trip loss real ${(r.loss * 100).toFixed(3)} % vs simulated ${(s.loss * 100).toFixed(3)} %, beyond a factor of ${LOSS_FACTOR}, ${LOSS_ABSOLUTE * 100} points and a count the simulated ${REAL_SECONDS} s windows give (mean ${s.windowLostMean}, variance ${s.windowLostVariance}, largest ${s.windowLostMax}): ${summary}`,
      );
      const allowP50 = path === 'direct' ? 0 : hostP50Ms;
      const allowP99 = path === 'direct' ? Number.POSITIVE_INFINITY : hostP99Ms;
      assert.ok(r.rttP50Ms >= s.rttP50Ms - RTT_TOLERANCE_MS && r.rttP50Ms <= s.rttP50Ms + allowP50 + RTT_TOLERANCE_MS, `${path}: RTT p50 real ${r.rttP50Ms} ms vs simulated ${s.rttP50Ms} ms (host's share ${allowP50.toFixed(2)} ms): ${summary}`);
      // The p99s agree when their confidence intervals, widened by the tolerance (and the host's share), meet.
      assert.ok(
        r.rttP99HighMs >= s.rttP99LowMs - RTT_TOLERANCE_MS && r.rttP99LowMs <= s.rttP99HighMs + allowP99 + RTT_TOLERANCE_MS,
        `${path}: RTT p99 real ${r.rttP99Ms} ms (interval ${r.rttP99LowMs}–${r.rttP99HighMs}) vs simulated ${s.rttP99Ms} ms (${s.rttP99LowMs}–${s.rttP99HighMs}), host's share ${allowP99.toFixed(2)} ms: ${summary}`,
      );
    }
  });
});
