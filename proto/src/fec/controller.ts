/**
 * Adaptive FEC controller: picks the protection for one flow from what the receiver
 * measures. Sans-IO: inputs are {@link FecController.handlePacket} (every packet the
 * sender sends, for the packet rate) and {@link FecController.handleStats} (the
 * receiver's interval stats, relayed back by the tunnel, plus the RTT); the output is
 * {@link FecController.scheme}, read after each input (the {@link FecSender} does this
 * when it is given the controller).
 *
 * How it decides, at each report:
 * 1. Estimates wire loss and mean burst length over a long window (~30 s), overridden
 *    by a slow one (~5 s) when that differs significantly, and by a fast one (~1 s)
 *    when that is significantly worse: protection rises within about a second of a
 *    change, falls a few seconds after the path is clean, and does not chase noise on
 *    a steady path.
 * 2. Fits a Gilbert-Elliott chain (see `model.ts`) and evaluates every candidate —
 *    off, duplication with several spacings, Reed-Solomon (k, r) with interleave depths
 *    — for residual loss, extra bandwidth and added latency (how long a rebuilt packet
 *    waits: the spacing, or the time to fill a stripe at the measured packet rate).
 * 3. Keeps candidates within the latency budget and the bandwidth cap, and picks the
 *    cheapest whose modelled residual meets the target; when none does, the one with
 *    the lowest residual. At game packet rates this comes out as duplication or tiny
 *    groups; at media rates as interleaved groups.
 * 4. Hysteresis, so it does not flap: while the current scheme's modelled residual is
 *    within half again of the target it is kept, unless a cheaper scheme meets the
 *    target with the same margin and the hold-down since the last change has passed
 *    (longer on long RTTs, since reports are that much older). A scheme that misses
 *    the target is replaced at once.
 *
 * The bandwidth cap is what keeps redundancy from feeding the congestion it fights
 * (UDPspeeder users saw loss climb from 0.02 % to 41 % as FEC traffic grew): overhead
 * never exceeds `overheadMax`, and on a path losing more than `congestionLossRate` —
 * which looks like congestion, not last-mile noise — the cap shrinks to a quarter.
 */
import { fitGilbert, residualDuplicate, residualReedSolomon, stationaryLoss, type GilbertFit } from './model.js';
import type { FecIntervalStats } from './receiver.js';
import { FEC_LENGTH_PREFIX_BYTES } from './rs.js';
import { FEC_HOLD_MS_MAX, FEC_OFF, FEC_SPACING_MS_MAX, formatScheme, sameScheme, schemeOverhead, type FecScheme, type FecSchemeSlidingWindow } from './scheme.js';
import { SLIDING_WINDOW_MS_MAX } from './sliding-window-encoder.js';
import { slidingWindowOutcome } from './sliding-window-model.js';

/** Options for {@link FecController}; every field has a default. */
export interface FecControllerInit {
  /** Residual loss (fraction) to aim for. Default {@link FEC_TARGET_RESIDUAL_DEFAULT}. */
  readonly targetResidual?: number;
  /** Largest extra bandwidth as a fraction of the data (1 = 100 %). Default {@link FEC_OVERHEAD_MAX_DEFAULT}. */
  readonly overheadMax?: number;
  /** Longest a rebuilt or copied packet may be delayed, in ms. Default {@link FEC_LATENCY_BUDGET_MS_DEFAULT}. */
  readonly latencyBudgetMs?: number;
  /** Fast estimation window, in ms (how quickly protection rises). Default 1000. */
  readonly fastWindowMs?: number;
  /** Slow estimation window, in ms (how long protection outlives loss). Default 5000. */
  readonly slowWindowMs?: number;
  /** Long estimation window, in ms: the steady-state estimate, stable against noise. Default 30000. */
  readonly longWindowMs?: number;
  /** Minimum time between a change and a lowering of protection, in ms (raised to 4 × RTT). Default 3000. */
  readonly lowerHoldMs?: number;
  /** Loss rate (fraction) above which the path is treated as congested and the cap quartered. Default 0.25. */
  readonly congestionLossRate?: number;
  /** Largest k considered. Default 20. */
  readonly kMax?: number;
  /** Largest interleave depth considered. Default 8. */
  readonly interleaveMax?: number;
  /**
   * Which schemes the controller chooses among: `block` (off, duplication, Reed-Solomon
   * groups: any session) or `sw` (sliding-window repairs: a session that negotiated
   * mode `sw`, whose sender stays `sw` for life). Default `block`.
   */
  readonly family?: FecFamily;
  /**
   * Extra bytes per second a flow may spend on redundancy whatever `overheadMax` says,
   * so that a small game flow (60 packets/s of 100 bytes is 6 kB/s) can afford the
   * copies a bursty last mile needs; quartered with the cap on a congested path.
   * Default {@link FEC_SMALL_FLOW_EXTRA_BYTES_PER_SECOND_DEFAULT}.
   */
  readonly smallFlowExtraBytesPerSecond?: number;
}

/**
 * Repairs a small `sw` flow keeps even on a clean path, extra bytes/s at most: the
 * insurance against loss that starts before the estimate has seen it (a path clean for
 * 30 s needs ~5 s of 1 % loss before the change is significant; without repairs those
 * seconds lose ~0.5 % of the game's packets). 1 repair per 4 packets of a 60 packets/s
 * game is 1.5 kB/s; a flow too big for the smallest floor rate gets none.
 */
export const FEC_SW_FLOOR_BYTES_PER_SECOND = 8_000;
/** Floor repair rates tried, largest first (see {@link FEC_SW_FLOOR_BYTES_PER_SECOND}). */
const SW_FLOOR_RATES = [0.25, 0.2, 0.1];
/**
 * The loss an `sw` choice is rated against when the reports show less: the floor's
 * repairs are insurance against a loss the estimate has not seen yet, so their window
 * is the one that would rebuild most at 1 % random loss. Rated against the measured
 * ~0 %, every window loses nothing, and the shortest won: one repair per 4 packets
 * over the last 2 left half the packets uncovered, and a game moving from a clean path
 * to 1 % loss lost its first packets (2 of 3,600 round trips in `bench qoe`).
 */
const SW_INSURANCE_LOSS = 0.01;

/** The scheme families of {@link FecControllerInit.family}. */
export type FecFamily = 'block' | 'sw';

/** Default small-flow allowance: 32 kB/s (256 kbit/s) of redundancy, whatever the ratio. */
export const FEC_SMALL_FLOW_EXTRA_BYTES_PER_SECOND_DEFAULT = 32_000;
/**
 * Default residual target of the `sw` family: 0.01 %. Lower than the block family's,
 * because a sliding window reaches it without waiting for groups to fill: on a game
 * path at 1–10 % loss a player then loses nothing in a minute of play.
 */
export const FEC_SW_TARGET_RESIDUAL_DEFAULT = 0.0001;
/**
 * Default latency budget of the `sw` family: 10 ms. Repairs follow their source within
 * a few ms, so this is what a player notices at p99, and it is kept by
 * {@link FEC_SW_LATE_FRACTION_MAX}.
 */
export const FEC_SW_LATENCY_BUDGET_MS_DEFAULT = 10;
/**
 * Most packets (fraction) an `sw` choice may rebuild later than the latency budget:
 * 0.3 % per direction, so a round trip (two directions, each estimated from a noisy
 * loss rate) stays under 1 % late and its p99 inside the budget. At 0.5 % a path losing
 * 9.5 % got 1.5 repairs per packet, both directions ~0.5 % late, and real round trips
 * a p99 one packet interval over the budget.
 */
export const FEC_SW_LATE_FRACTION_MAX = 0.003;
/**
 * Shortest `sw` window, ms: a packet rebuilt after the budget is late, not lost, until
 * the window lets it go (the window is 3 budgets, at least this). A longer window costs
 * no bandwidth. 200, not 100: the encoder drops sources older than the window by its own
 * clock, so on a busy host a repair held back a packet interval or two no longer covers
 * the packet it was for — with 100 ms, real processes at 1 % loss lost about one round
 * trip in 4,000 where the model gives 1 in 50,000 (part of it the floor's window, see SW_INSURANCE_LOSS).
 */
export const FEC_SW_TAIL_WINDOW_MS_MIN = 200;
/**
 * Redundancy an `sw` flow may spend per unit of loss it fights: extra bytes at most this
 * many times the loss rate the evidence cannot rule out × mean burst (1 % random loss,
 * measured over a few thousand packets: about 33 %; 10 %: about 290 %;
 * 5 % in bursts of 2: about 275 %). One loss in a hundred does not buy a copy of everything;
 * long bursts, which only many repairs outlast, buy more. Applied with the bandwidth cap
 * and the small-flow allowance, whichever is lower.
 */
export const FEC_SW_REDUNDANCY_PER_LOSS = 25;

/** Default residual target: 0.1 %, an order below what players notice as "packet loss". */
export const FEC_TARGET_RESIDUAL_DEFAULT = 0.001;
/** Default bandwidth cap: 100 % extra (one full copy's worth). */
export const FEC_OVERHEAD_MAX_DEFAULT = 1;
/** Default latency budget: 20 ms, about one frame at 60 Hz. */
export const FEC_LATENCY_BUDGET_MS_DEFAULT = 20;

/** Window of the packet-rate estimate, ms: the median of the rates between reports in it (see `FecController.updateRate`). */
const RATE_WINDOW_MS = 2000;
/** Protection switches on only when estimated loss exceeds the target by this factor. */
const ENABLE_FACTOR = 1.5;
/** How many standard deviations the fast window must exceed the slow one by to count as a change. */
const CHANGE_SIGMAS = 3;
/** Fewer judged wire packets than this in the long window: too little evidence for an `sw` flow to leave its start. */
const SW_EVIDENCE_PACKETS_MIN = 300;
/** Fewer judged wire packets than this in the slow window: too little evidence to act. */
const EVIDENCE_PACKETS_MIN = 20;
/** Most packets placed between copies that duplication candidates try. */
const COPY_DISTANCE_PACKETS_MAX = 16;
/** Margin added to a copy's spacing so it lands after the packet it must follow, ms. */
const SPACING_MARGIN_MS = 1;
/** Recent payload sizes kept to predict parity size (parity is as long as its group's longest packet). */
const SIZE_SAMPLES = 256;
const K_CANDIDATES = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20];
/** Repair rates (repairs per source) the `sw` family tries; 0 is no repairs. */
const SW_REPAIR_RATES = [0, 0.1, 0.2, 0.25, 1 / 3, 0.4, 0.45, 0.5, 2 / 3, 0.75, 1, 1.5, 2, 3, 4, 5, 6];
/**
 * Spacing of an `sw` flow's repairs, ms: the i-th repair of a packet leaves i ms after
 * it. Short, because every ms is added to each rebuilt packet (and real timers add
 * their own: measured on real processes, 2 ms spacing cost a round trip's p99 about
 * 4 ms per lossy direction beyond the simulator's figure), yet not zero, so a fade
 * shorter than the spacing does not take a packet and all its repairs.
 */
export const FEC_SW_REPAIR_SPACING_MS = 1;
/** Most sources an `sw` window the controller picks covers (receivers track twice this). */
export const FEC_SW_WINDOW_PACKETS_MAX = 32;
/** Candidates whose residuals are within this factor count as equal; the cheaper wins. */
const RESIDUAL_TIE_FACTOR = 1.05;

/** What the controller last concluded, for logs, the benchmark and tests. */
export interface FecDecision {
  /** When (ms). */
  readonly atMs: number;
  /** Estimated wire loss (fraction). */
  readonly lossRate: number;
  /** Estimated mean burst length (packets). */
  readonly meanBurstPackets: number;
  /** Estimated packet rate (packets/s). */
  readonly packetRatePps: number;
  /** Modelled residual loss of the chosen scheme (fraction). */
  readonly modelResidual: number;
  /** Modelled fraction of packets rebuilt later than the latency budget (`sw`; 0 for the block family). */
  readonly modelLate: number;
  /** The chosen scheme. */
  readonly scheme: FecScheme;
}

interface WindowCounts {
  judged: number;
  lost: number;
  bursts: number;
}

/**
 * Whether two loss estimates differ by more than CHANGE_SIGMAS standard deviations of
 * `a`'s binomial count around `b`'s rate, the variance inflated by the burst length
 * (losses come in runs, so a window holds fewer independent events).
 */
function significantlyDifferent(a: WindowCounts, b: WindowCounts): boolean {
  const pa = a.lost / a.judged;
  const pb = b.lost / b.judged;
  const p = Math.max(pb, 1 / a.judged);
  const burst = b.bursts > 0 ? b.lost / b.bursts : 1;
  const sigma = Math.sqrt((p * (1 - p) * burst) / a.judged);
  return Math.abs(pa - pb) > CHANGE_SIGMAS * sigma;
}

interface Candidate {
  scheme: FecScheme;
  residual: number;
  overhead: number;
  latencyMs: number;
  /** Packets (fraction) rebuilt later than the latency budget (`sw` only; 0 otherwise). */
  late: number;
}

/** The adaptive controller for one flow. See the module comment. */
export class FecController {
  private readonly targetResidual: number;
  private readonly overheadMax: number;
  private readonly latencyBudgetMs: number;
  private readonly fastWindowMs: number;
  private readonly slowWindowMs: number;
  private readonly longWindowMs: number;
  private readonly lowerHoldMs: number;
  private readonly congestionLossRate: number;
  private readonly kMax: number;
  private readonly interleaveMax: number;
  private readonly family: FecFamily;
  private readonly smallFlowExtraBytesPerSecond: number;

  private current: FecScheme;
  private lastChangeMs = Number.NEGATIVE_INFINITY;
  private rttMs = 0;
  /** Recent reports: [endMs, judged, lost, bursts] per report, oldest first, from {@link historyHead}. */
  private history: number[] = [];
  private historyHead = 0;
  private readonly fastCounts: WindowCounts = { judged: 0, lost: 0, bursts: 0 };
  private readonly slowCounts: WindowCounts = { judged: 0, lost: 0, bursts: 0 };
  private readonly longCounts: WindowCounts = { judged: 0, lost: 0, bursts: 0 };
  private packetsSinceReport = 0;
  private lastRateSampleMs = Number.NaN;
  /** The rate between consecutive reports over the last {@link RATE_WINDOW_MS}: [reportMs, packets/s] pairs, oldest first. */
  private readonly rateSamples: number[] = [];
  /** Scratch of {@link updateRate}'s median. */
  private readonly rateScratch: number[] = [];
  private ratePps = 0;
  private decision: FecDecision | undefined;
  private readonly sizes = new Uint16Array(SIZE_SAMPLES);
  private sizeCount = 0;
  private sizeNext = 0;
  /** Mean payload of the recent packets, bytes (for the small-flow allowance). */
  private meanSizeBytes = 0;
  /** Parity bytes per data byte of a (k, k) group, by k (see {@link parityInflation}). */
  private readonly inflation = new Float64Array(K_CANDIDATES[K_CANDIDATES.length - 1] + 1);
  /** Whether {@link sizes} changed since {@link inflation} was computed. */
  private inflationStale = true;
  /** Scratch of the sliding-window maximum: indexes into {@link sizes}. */
  private readonly maxDeque = new Int32Array(SIZE_SAMPLES);
  private cacheKey = '';
  private cacheChoice: Candidate | undefined;

  /** @param init thresholds and limits; see {@link FecControllerInit} for defaults */
  constructor(init: FecControllerInit = {}) {
    this.family = init.family ?? 'block';
    if (this.family !== 'block' && this.family !== 'sw') throw new RangeError(`FecController family: '${String(this.family)}' is not one of block, sw`);
    this.targetResidual = init.targetResidual ?? (this.family === 'sw' ? FEC_SW_TARGET_RESIDUAL_DEFAULT : FEC_TARGET_RESIDUAL_DEFAULT);
    this.smallFlowExtraBytesPerSecond = init.smallFlowExtraBytesPerSecond ?? FEC_SMALL_FLOW_EXTRA_BYTES_PER_SECOND_DEFAULT;
    this.overheadMax = init.overheadMax ?? FEC_OVERHEAD_MAX_DEFAULT;
    this.latencyBudgetMs = Math.min(init.latencyBudgetMs ?? (init.family === 'sw' ? FEC_SW_LATENCY_BUDGET_MS_DEFAULT : FEC_LATENCY_BUDGET_MS_DEFAULT), FEC_HOLD_MS_MAX, FEC_SPACING_MS_MAX);
    this.fastWindowMs = init.fastWindowMs ?? 1000;
    this.slowWindowMs = init.slowWindowMs ?? 5000;
    this.longWindowMs = init.longWindowMs ?? 30_000;
    this.lowerHoldMs = init.lowerHoldMs ?? 3000;
    this.congestionLossRate = init.congestionLossRate ?? 0.25;
    this.kMax = init.kMax ?? 20;
    this.interleaveMax = init.interleaveMax ?? 8;
    if (!(this.targetResidual > 0 && this.targetResidual < 1)) throw new RangeError(`FecController targetResidual: ${this.targetResidual} is out of range; expected a fraction between 0 and 1`);
    if (!(this.overheadMax >= 0 && this.overheadMax <= 4)) throw new RangeError(`FecController overheadMax: ${this.overheadMax} is out of range; expected 0 to 4 (fraction of the data)`);
    if (!(this.latencyBudgetMs >= 0)) throw new RangeError(`FecController latencyBudgetMs: ${this.latencyBudgetMs} is out of range; expected ≥ 0 ms`);
    if (!(this.smallFlowExtraBytesPerSecond >= 0)) throw new RangeError(`FecController smallFlowExtraBytesPerSecond: ${this.smallFlowExtraBytesPerSecond} is out of range; expected ≥ 0`);
    // An `sw` flow starts with one repair per source over the widest window, until the first reports say more.
    this.current = this.family === 'sw' ? slidingWindowScheme(1, this.swTailWindowMs(), FEC_SW_WINDOW_PACKETS_MAX) : FEC_OFF;
  }

  /** The longest `sw` window the controller uses, ms: 3 budgets, at least {@link FEC_SW_TAIL_WINDOW_MS_MIN}. */
  private swTailWindowMs(): number {
    return Math.min(SLIDING_WINDOW_MS_MAX, Math.max(FEC_SW_TAIL_WINDOW_MS_MIN, 3 * this.latencyBudgetMs));
  }

  /** The protection to apply now. The same object until the decision changes. */
  get scheme(): FecScheme {
    return this.current;
  }

  /** The last evaluation (estimates and choice), or undefined before the first report. */
  get lastDecision(): FecDecision | undefined {
    return this.decision;
  }

  /** Input: the sender sent an application packet (for the packet rate and the parity-size estimate). */
  handlePacket(_now: number, payloadBytes: number): void {
    this.packetsSinceReport++;
    const at = this.sizeNext;
    const before = this.sizes[at];
    this.sizes[at] = payloadBytes;
    // Steady packet sizes (game traffic) leave the estimate as it was.
    if (this.sizes[at] !== before || this.sizeCount < SIZE_SAMPLES) this.inflationStale = true;
    this.sizeNext = (at + 1) % SIZE_SAMPLES;
    if (this.sizeCount < SIZE_SAMPLES) this.sizeCount++;
  }

  /**
   * Input: one receiver report. `rttMs`, when given, updates the RTT estimate (it
   * lengthens the hold-down, since reports describe the path as it was ~RTT ago).
   */
  handleStats(now: number, stats: FecIntervalStats, rttMs?: number): void {
    if (rttMs !== undefined && rttMs >= 0) this.rttMs = rttMs;
    this.updateRate(now);

    const history = this.history;
    history.push(now, stats.wirePackets, stats.wireLost, stats.lossBursts);
    while (history.length - this.historyHead > 4 && history[this.historyHead] <= now - this.longWindowMs) this.historyHead += 4;
    if (this.historyHead >= 256 && this.historyHead * 2 >= history.length) {
      this.history = history.slice(this.historyHead);
      this.historyHead = 0;
    }
    const fast = this.window(now - this.fastWindowMs, this.fastCounts);
    const slow = this.window(now - this.slowWindowMs, this.slowCounts);
    const long = this.window(now - this.longWindowMs, this.longCounts);
    // An `sw` flow keeps its starting repairs until there is evidence enough to judge a rate of a few in a thousand.
    if (long.judged < (this.family === 'sw' ? SW_EVIDENCE_PACKETS_MIN : EVIDENCE_PACKETS_MIN)) return;
    // The long window's estimate stands unless a shorter window differs from it by
    // more than chance allows: a real change, not noise. Falls show up in the slow
    // window, rises already in the fast one.
    let chosen = long;
    if (slow.judged >= EVIDENCE_PACKETS_MIN && significantlyDifferent(slow, long)) chosen = slow;
    if (fast.judged >= EVIDENCE_PACKETS_MIN && fast.lost / fast.judged > chosen.lost / chosen.judged && significantlyDifferent(fast, chosen)) chosen = fast;
    const loss = chosen.lost / chosen.judged;
    const burst = chosen.bursts > 0 ? chosen.lost / chosen.bursts : long.bursts > 0 ? long.lost / long.bursts : 1;
    // What the `sw` cap is sized on: the loss the evidence cannot rule out (two standard
    // deviations up), so a window that happened to lose little does not starve the flow.
    const lossUpper = Math.min(1, loss + 2 * Math.sqrt((Math.max(loss, 1 / chosen.judged) * Math.max(1, burst)) / chosen.judged));
    const fit = fitGilbert(loss, burst);
    this.parityInflation();

    const now_ = this.evaluate(this.current, fit, this.ratePps);
    // An `sw` scheme that spends more than the loss now buys is replaced like one that misses.
    // (With the hysteresis margin: the cap moves with the loss estimate.)
    const overCap = this.current.mode === 'sw' && this.overheadOf(this.current) > ENABLE_FACTOR * this.swOverheadCapWithFloor(lossUpper, burst, this.ratePps) + 1e-9;
    const currentOk = !overCap && this.meets(now_, ENABLE_FACTOR);
    const choice = isUnprotected(this.current) && currentOk ? undefined : this.choose(loss, burst, this.ratePps, lossUpper);
    let switchTo: Candidate | undefined;
    if (choice && !sameScheme(choice.scheme, this.current)) {
      if (currentOk) {
        // The current scheme is good enough: move only to a cheaper one that meets the
        // target with margin, after the hold-down (longer on long RTTs, since reports
        // describe the path as it was that long ago).
        const cheaper = choice.overhead < this.overheadOf(this.current);
        const held = now - this.lastChangeMs >= Math.max(this.lowerHoldMs, 4 * this.rttMs);
        if (cheaper && held && this.meets(choice, 1 / ENABLE_FACTOR)) switchTo = choice;
      } else if (overCap || this.meets(choice, 1) || this.deliversWhereCurrentDoesNot(choice, now_) || shortfall(choice) * ENABLE_FACTOR < shortfall(now_)) {
        // The current scheme misses the target: replace it at once by one that meets
        // it, or (when nothing can) by a clearly better one.
        switchTo = choice;
      }
    }
    if (switchTo) {
      this.current = switchTo.scheme;
      this.lastChangeMs = now;
    }
    const modelled = switchTo ?? now_;
    this.decision = {
      atMs: now,
      lossRate: loss,
      meanBurstPackets: burst,
      packetRatePps: this.ratePps,
      modelResidual: modelled.residual,
      modelLate: modelled.late,
      scheme: this.current,
    };
  }

  /**
   * The packet rate: the median of the rates between consecutive reports (packets sent
   * in between ÷ time in between) over the last {@link RATE_WINDOW_MS}. A median because
   * each interval's count moves with the host's timing: after a stall of a few hundred
   * ms the backlog is sent and reported at once, and the rate over one interval read
   * 127 packets/s for a 60 packets/s game (35 after a lull), twice in a row when
   * averaged. The small-flow allowance follows the rate, so the controller dropped to
   * half a repair per packet on a path losing 30 % and lost round trips in bunches, or
   * climbed past its cap and stayed. A stall disturbs one or two intervals; the median
   * of the eight or so in the window ignores them, and a real change of rate shows
   * within half the window.
   */
  private updateRate(now: number): void {
    if (!Number.isNaN(this.lastRateSampleMs) && now <= this.lastRateSampleMs) return; // no time has passed: count these packets in the next interval
    if (!Number.isNaN(this.lastRateSampleMs)) this.rateSamples.push(now, (this.packetsSinceReport * 1000) / (now - this.lastRateSampleMs));
    this.lastRateSampleMs = now;
    this.packetsSinceReport = 0;
    const samples = this.rateSamples;
    let drop = 0;
    while (samples.length - drop > 2 && samples[drop] <= now - RATE_WINDOW_MS) drop += 2;
    if (drop > 0) samples.splice(0, drop);
    const n = samples.length / 2;
    if (n === 0) return;
    const rates = this.rateScratch;
    rates.length = 0;
    for (let i = 1; i < samples.length; i += 2) rates.push(samples[i]);
    rates.sort((a, b) => a - b);
    this.ratePps = n % 2 === 1 ? rates[(n - 1) / 2] : (rates[n / 2 - 1] + rates[n / 2]) / 2;
  }

  /**
   * The most extra bytes per data byte an `sw` flow may spend: the redundancy its loss
   * buys ({@link FEC_SW_REDUNDANCY_PER_LOSS}), or the bandwidth cap (`overheadMax`, or
   * the small-flow allowance when that is more) when lower; a quarter on a congested path.
   */
  private swOverheadCap(loss: number, burst: number, ratePps: number): number {
    const dataBytesPerSecond = this.meanSizeBytes * ratePps;
    const bandwidthCap = Math.max(this.overheadMax, dataBytesPerSecond > 0 ? this.smallFlowExtraBytesPerSecond / dataBytesPerSecond : 0);
    const cap = Math.min(FEC_SW_REDUNDANCY_PER_LOSS * loss * Math.max(1, burst), bandwidthCap);
    return loss > this.congestionLossRate ? cap / 4 : cap;
  }

  /** {@link swOverheadCap}, never below what the floor rate costs. */
  private swOverheadCapWithFloor(loss: number, burst: number, ratePps: number): number {
    return Math.max(this.swOverheadCap(loss, burst, ratePps), this.swFloorRate(ratePps) * this.inflationAtMost(FEC_SW_WINDOW_PACKETS_MAX));
  }

  /** The smallest repair rate an `sw` flow keeps at this packet rate: the largest floor rate within {@link FEC_SW_FLOOR_BYTES_PER_SECOND}, or 0. */
  private swFloorRate(ratePps: number): number {
    const bytesPerRepair = Math.max(1, this.meanSizeBytes) * ratePps;
    if (!(bytesPerRepair > 0)) return 0;
    for (const rate of SW_FLOOR_RATES) if (rate * bytesPerRepair <= FEC_SW_FLOOR_BYTES_PER_SECOND) return rate;
    return 0;
  }

  /** Parity inflation of the largest k candidate ≤ `packets` (a repair is as long as its window's longest packet). */
  private inflationAtMost(packets: number): number {
    let k = 1;
    for (const candidate of K_CANDIDATES) if (candidate <= packets) k = candidate;
    return this.inflation[k];
  }

  /** Whether `choice` meets the residual target (if late) and the current scheme misses it by the hysteresis margin. */
  private deliversWhereCurrentDoesNot(choice: { residual: number }, current: { residual: number }): boolean {
    return choice.residual <= this.targetResidual && current.residual > this.targetResidual * ENABLE_FACTOR;
  }

  /** Whether `c` meets the residual target and (for `sw`) the late limit, each scaled by `factor`. */
  private meets(c: { residual: number; late: number }, factor: number): boolean {
    return c.residual <= this.targetResidual * factor && c.late <= FEC_SW_LATE_FRACTION_MAX * factor;
  }

  /** Expected extra bytes per data byte of `scheme` (parity inflated by mixed sizes). */
  private overheadOf(scheme: FecScheme): number {
    if (scheme.mode === 'rs') return (scheme.r / scheme.k) * (scheme.k < this.inflation.length ? this.inflation[scheme.k] : 1);
    if (scheme.mode === 'sw') return scheme.repairsPerSource * this.inflationAtMost(scheme.windowPackets);
    return schemeOverhead(scheme);
  }

  /** Modelled residual (and late fraction) of `scheme` on the fitted path at this packet rate. */
  private evaluate(scheme: FecScheme, fit: GilbertFit, ratePps: number): { residual: number; late: number } {
    if (scheme.mode === 'off') return { residual: stationaryLoss(fit), late: 0 };
    if (scheme.mode === 'sw') return this.swOutcome(scheme, fit, ratePps);
    if (scheme.mode === 'duplicate') {
      const between = ratePps > 0 ? Math.floor((scheme.spacingMs * ratePps) / 1000) : 0;
      return { residual: residualDuplicate(fit, scheme.copies, 1 + (1 + scheme.copies) * between), late: 0 };
    }
    return { residual: residualReedSolomon(fit, scheme.k, scheme.r, scheme.interleave), late: 0 };
  }

  private swOutcome(scheme: FecSchemeSlidingWindow, fit: GilbertFit, ratePps: number): { residual: number; late: number } {
    return slidingWindowOutcome(fit, {
      repairsPerSource: scheme.repairsPerSource,
      repairSpacingMs: scheme.repairSpacingMs,
      windowPackets: scheme.windowPackets,
      windowMs: scheme.windowMs,
      sourceGapMs: ratePps > 0 ? 1000 / ratePps : Number.POSITIVE_INFINITY,
      latencyBudgetMs: this.latencyBudgetMs,
    });
  }

  /** Human-readable summary of the last decision, for logs. */
  describe(): string {
    const d = this.decision;
    if (!d) return `fec ${formatScheme(this.current)} (no reports yet)`;
    return `fec ${formatScheme(this.current)} loss=${(d.lossRate * 100).toFixed(2)}% burst=${d.meanBurstPackets.toFixed(2)} rate=${d.packetRatePps.toFixed(0)}pps model=${(d.modelResidual * 100).toFixed(3)}%${this.family === 'sw' ? ` late=${(d.modelLate * 100).toFixed(3)}%` : ''}`;
  }

  /**
   * Sums the reports that ended after `sinceMs` into `out`. Reports come in time order
   * (the clock is monotonic), so the scan runs from the newest and stops at the first
   * older one.
   */
  private window(sinceMs: number, out: WindowCounts): WindowCounts {
    const history = this.history;
    let judged = 0;
    let lost = 0;
    let bursts = 0;
    for (let i = history.length - 4; i >= this.historyHead; i -= 4) {
      if (history[i] <= sinceMs) break;
      judged += history[i + 1];
      lost += history[i + 2];
      bursts += history[i + 3];
    }
    out.judged = judged;
    out.lost = lost;
    out.bursts = bursts;
    return out;
  }

  /**
   * The best candidate for the estimates. Memoised on the estimates rounded to what
   * matters (loss to ~10 %, burst to ¼ packet, rate to ~10 %), so a steady path costs
   * one string compare per report.
   */
  private choose(loss: number, burst: number, ratePps: number, lossUpper: number): Candidate {
    const kTop = K_CANDIDATES[K_CANDIDATES.length - 1];
    const key = `${loss > 0 ? Math.round(Math.log(loss) * 10) : 'z'}|${Math.round(burst * 4)}|${ratePps > 0 ? Math.round(Math.log(ratePps) * 10) : 'z'}|${Math.round(this.inflation[kTop] * 20)}|${Math.round(this.meanSizeBytes / 8)}|${Math.round(Math.log(Math.max(lossUpper, 1e-6)) * 10)}`;
    if (key === this.cacheKey && this.cacheChoice) return this.cacheChoice;
    const fit = fitGilbert(loss, burst);
    if (this.family === 'sw') return this.remember(key, this.chooseSlidingWindow(fit, lossUpper, burst, ratePps));
    const cap = loss > this.congestionLossRate ? this.overheadMax / 4 : this.overheadMax;
    const budgetMs = this.latencyBudgetMs;
    const gapMs = ratePps > 0 ? 1000 / ratePps : Number.POSITIVE_INFINITY;
    let best: Candidate = { scheme: FEC_OFF, residual: loss, overhead: 0, latencyMs: 0, late: 0 };
    const consider = (c: Candidate): void => {
      if (c.overhead > cap + 1e-9 || c.latencyMs > budgetMs + 1e-9) return;
      best = this.better(c, best) ? c : best;
    };
    // Duplication: a copy spaced just past `between` packet gaps lands
    // 1 + (1 + copies)·between wire packets after the previous one (the originals and
    // the earlier packets' copies sent in between), which is what decorrelates bursts.
    for (let copies = 1; copies <= Math.floor(cap + 1e-9); copies++) {
      for (let between = 0; between <= COPY_DISTANCE_PACKETS_MAX; between++) {
        const spacingMs = between === 0 ? 0 : Math.ceil(between * gapMs + SPACING_MARGIN_MS);
        if (!(spacingMs * copies <= budgetMs)) break;
        consider({
          scheme: { mode: 'duplicate', copies, spacingMs },
          residual: residualDuplicate(fit, copies, 1 + (1 + copies) * between),
          overhead: copies,
          latencyMs: spacingMs * copies,
          late: 0,
        });
      }
    }
    // Reed-Solomon stripes that fill within the budget at this packet rate: a rebuilt
    // packet waits at most for the rest of its stripe. The hold sits half a packet gap
    // past the expected fill, so a stripe normally closes full, and a slowing flow
    // gets its parity early rather than at the budget.
    for (const k of K_CANDIDATES) {
      if (k > this.kMax) break;
      for (let depth = 1; depth <= this.interleaveMax; depth++) {
        const fillMs = (k * depth - 1) * gapMs;
        if (!(fillMs <= budgetMs)) break;
        const holdMs = Math.max(1, Math.min(Math.floor(budgetMs), Math.ceil(fillMs + gapMs / 2)));
        for (let r = 1; r <= 255 - k; r++) {
          const overhead = (r / k) * this.inflation[k];
          if (overhead > cap + 1e-9) break;
          consider({
            scheme: { mode: 'rs', k, r, interleave: depth, holdMs },
            residual: residualReedSolomon(fit, k, r, depth),
            overhead,
            latencyMs: fillMs,
            late: 0,
          });
        }
      }
    }
    return this.remember(key, best);
  }

  /** Memoises `choice` under `key`, reusing the current scheme object when equal (so `scheme` identity only changes with the decision). */
  private remember(key: string, choice: Candidate): Candidate {
    if (sameScheme(choice.scheme, this.current)) choice.scheme = this.current;
    this.cacheKey = key;
    this.cacheChoice = choice;
    return choice;
  }

  /**
   * The `sw` choice: every repair rate, with a window of one budget, two, and the tail
   * window (a longer window costs no bandwidth; it rebuilds more, some of it late),
   * repairs {@link FEC_SW_REPAIR_SPACING_MS} apart behind their source (closer when the
   * next source comes sooner).
   * Allowed when within the redundancy the loss buys ({@link FEC_SW_REDUNDANCY_PER_LOSS})
   * and within the bandwidth cap or the small-flow allowance; the cheapest that meets
   * the target and the late limit wins, else the one that loses least, counting a late
   * packet as half lost.
   */
  private chooseSlidingWindow(fit: GilbertFit, lossUpper: number, burst: number, ratePps: number): Candidate {
    const floor = this.swFloorRate(ratePps);
    const cap = this.swOverheadCapWithFloor(lossUpper, burst, ratePps);
    const gapMs = ratePps > 0 ? 1000 / ratePps : Number.POSITIVE_INFINITY;
    const windows = [...new Set([Math.max(1, Math.round(this.latencyBudgetMs)), Math.max(1, Math.round(2 * this.latencyBudgetMs)), this.swTailWindowMs()])];
    // Rated against at least the insurance loss (the cap still follows the measured loss).
    const rated = stationaryLoss(fit) < SW_INSURANCE_LOSS ? fitGilbert(SW_INSURANCE_LOSS, 1) : fit;
    let best: Candidate | undefined;
    for (const rate of SW_REPAIR_RATES) {
      if (rate < floor - 1e-9) continue;
      for (const windowMs of windows) {
        const windowPackets = Math.max(1, Math.min(FEC_SW_WINDOW_PACKETS_MAX, Number.isFinite(gapMs) ? Math.ceil(windowMs / gapMs) + 1 : 1));
        const spacingMs = Math.min(FEC_SW_REPAIR_SPACING_MS, Number.isFinite(gapMs) && rate > 0 ? Math.floor((10 * gapMs) / (rate + 1)) / 10 : FEC_SW_REPAIR_SPACING_MS);
        const scheme = slidingWindowScheme(rate, windowMs, windowPackets, spacingMs);
        const overhead = rate * this.inflationAtMost(windowPackets);
        if (rate > 0 && overhead > cap + 1e-9) continue;
        const outcome = this.swOutcome(scheme, rated, ratePps);
        const c: Candidate = { scheme, residual: outcome.residual, late: outcome.late, overhead, latencyMs: windowMs };
        if (best === undefined || this.better(c, best)) best = c;
        if (rate === 0) break; // no repairs: the window does not matter
      }
    }
    return best!;
  }

  /**
   * Whether `a` beats `b`: meeting the target (and the late limit) beats missing it;
   * among those meeting it, less overhead, then fewer late packets, then less latency;
   * among those missing it, meeting the residual target beats missing it; both meeting
   * it (late beyond reach within the cap), less overhead; both missing it, less
   * shortfall (residual plus half the late packets), ties within 5 % to less overhead.
   */
  private better(a: Candidate, b: Candidate): boolean {
    const aMeets = this.meets(a, 1);
    const bMeets = this.meets(b, 1);
    if (aMeets !== bMeets) return aMeets;
    if (aMeets) {
      if (a.overhead !== b.overhead) return a.overhead < b.overhead;
      if (a.late !== b.late) return a.late < b.late;
      return a.latencyMs < b.latencyMs;
    }
    // Neither meets both: delivering beats delivering on time (the residual target
    // first), then fewer late packets.
    const aDelivers = a.residual <= this.targetResidual;
    const bDelivers = b.residual <= this.targetResidual;
    if (aDelivers !== bDelivers) return aDelivers;
    if (aDelivers) {
      // Both deliver but late: the late limit is out of reach within the cap, so the
      // redundancy the loss buys goes to fewer late packets (each is a p99 spike a player
      // feels), then to the cheaper.
      if (a.late * RESIDUAL_TIE_FACTOR < b.late) return true;
      if (b.late * RESIDUAL_TIE_FACTOR < a.late) return false;
      if (a.overhead !== b.overhead) return a.overhead < b.overhead;
      return a.residual < b.residual;
    }
    const sa = shortfall(a);
    const sb = shortfall(b);
    if (sa * RESIDUAL_TIE_FACTOR < sb) return true;
    if (sb * RESIDUAL_TIE_FACTOR < sa) return false;
    if (a.overhead !== b.overhead) return a.overhead < b.overhead;
    return a.latencyMs < b.latencyMs;
  }


  /**
   * Parity bytes per data byte for each k: a parity shard is 2 bytes longer than its
   * group's longest packet, so with mixed sizes r parity cost more than r/k of the
   * data. Estimated from recent sizes as E[max of k consecutive + 2] / E[size].
   */
  private parityInflation(): void {
    if (!this.inflationStale) return;
    this.inflationStale = false;
    const n = this.sizeCount;
    if (n === 0) {
      this.inflation.fill(1);
      this.meanSizeBytes = 0;
      return;
    }
    const sizes = this.sizes;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += sizes[i];
    const mean = Math.max(1, sum / n);
    this.meanSizeBytes = mean;
    const deque = this.maxDeque;
    for (const k of K_CANDIDATES) {
      // Sum of the maxima of sizes[w .. w+k) for every window start w (one window of
      // all n when n < k), by a monotonic deque: O(n) per k. Integer sums, so the
      // result does not depend on the order of additions.
      const windows = Math.max(1, n - k + 1);
      let head = 0;
      let tail = 0;
      let maxSum = 0;
      for (let j = 0; j < n; j++) {
        while (tail > head && sizes[deque[tail - 1]] <= sizes[j]) tail--;
        deque[tail++] = j;
        if (deque[head] <= j - k) head++;
        if (j >= k - 1) maxSum += sizes[deque[head]];
      }
      if (n < k) maxSum = sizes[deque[head]];
      this.inflation[k] = (maxSum / windows + FEC_LENGTH_PREFIX_BYTES) / mean;
    }
  }
}

/** A late packet counts as this much of a lost one in {@link shortfall}: worse than on time, better than never. */
const LATE_WEIGHT = 0.5;

/** How far from the target a choice that misses it is: what it loses, plus its late packets at {@link LATE_WEIGHT}. */
function shortfall(c: { residual: number; late: number }): number {
  return c.residual + LATE_WEIGHT * c.late;
}

/** Whether `scheme` adds no redundancy (`off`, or `sw` without repairs). */
function isUnprotected(scheme: FecScheme): boolean {
  return scheme.mode === 'off' || (scheme.mode === 'sw' && scheme.repairsPerSource === 0);
}

/** An `sw` scheme with these settings (repairs `spacingMs` apart, 2 ms by default). */
function slidingWindowScheme(repairsPerSource: number, windowMs: number, windowPackets: number, spacingMs: number = FEC_SW_REPAIR_SPACING_MS): FecSchemeSlidingWindow {
  return { mode: 'sw', repairsPerSource, repairSpacingMs: spacingMs, windowPackets, windowMs };
}
