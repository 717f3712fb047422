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
import { FEC_HOLD_MS_MAX, FEC_OFF, FEC_SPACING_MS_MAX, formatScheme, sameScheme, schemeOverhead, type FecScheme } from './scheme.js';

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
}

/** Default residual target: 0.1 %, an order below what players notice as "packet loss". */
export const FEC_TARGET_RESIDUAL_DEFAULT = 0.001;
/** Default bandwidth cap: 100 % extra (one full copy's worth). */
export const FEC_OVERHEAD_MAX_DEFAULT = 1;
/** Default latency budget: 20 ms, about one frame at 60 Hz. */
export const FEC_LATENCY_BUDGET_MS_DEFAULT = 20;

/** Protection switches on only when estimated loss exceeds the target by this factor. */
const ENABLE_FACTOR = 1.5;
/** How many standard deviations the fast window must exceed the slow one by to count as a change. */
const CHANGE_SIGMAS = 3;
/** Fewer judged wire packets than this in the slow window: too little evidence to act. */
const EVIDENCE_PACKETS_MIN = 20;
/** Most packets placed between copies that duplication candidates try. */
const COPY_DISTANCE_PACKETS_MAX = 16;
/** Margin added to a copy's spacing so it lands after the packet it must follow, ms. */
const SPACING_MARGIN_MS = 1;
/** Recent payload sizes kept to predict parity size (parity is as long as its group's longest packet). */
const SIZE_SAMPLES = 256;
const K_CANDIDATES = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20];
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

  private current: FecScheme = FEC_OFF;
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
  private ratePps = 0;
  private decision: FecDecision | undefined;
  private readonly sizes = new Uint16Array(SIZE_SAMPLES);
  private sizeCount = 0;
  private sizeNext = 0;
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
    this.targetResidual = init.targetResidual ?? FEC_TARGET_RESIDUAL_DEFAULT;
    this.overheadMax = init.overheadMax ?? FEC_OVERHEAD_MAX_DEFAULT;
    this.latencyBudgetMs = Math.min(init.latencyBudgetMs ?? FEC_LATENCY_BUDGET_MS_DEFAULT, FEC_HOLD_MS_MAX, FEC_SPACING_MS_MAX);
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
    if (!Number.isNaN(this.lastRateSampleMs) && now > this.lastRateSampleMs) {
      const sample = (this.packetsSinceReport * 1000) / (now - this.lastRateSampleMs);
      this.ratePps = this.ratePps === 0 ? sample : 0.5 * this.ratePps + 0.5 * sample;
    }
    this.lastRateSampleMs = now;
    this.packetsSinceReport = 0;

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
    if (long.judged < EVIDENCE_PACKETS_MIN) return;
    // The long window's estimate stands unless a shorter window differs from it by
    // more than chance allows: a real change, not noise. Falls show up in the slow
    // window, rises already in the fast one.
    let chosen = long;
    if (slow.judged >= EVIDENCE_PACKETS_MIN && significantlyDifferent(slow, long)) chosen = slow;
    if (fast.judged >= EVIDENCE_PACKETS_MIN && fast.lost / fast.judged > chosen.lost / chosen.judged && significantlyDifferent(fast, chosen)) chosen = fast;
    const loss = chosen.lost / chosen.judged;
    const burst = chosen.bursts > 0 ? chosen.lost / chosen.bursts : long.bursts > 0 ? long.lost / long.bursts : 1;
    const fit = fitGilbert(loss, burst);
    this.parityInflation();

    const currentResidual = this.residualOf(this.current, fit, this.ratePps);
    const currentOk = currentResidual <= this.targetResidual * ENABLE_FACTOR;
    const choice = this.current.mode === 'off' && currentOk ? undefined : this.choose(loss, burst, this.ratePps);
    let switchTo: Candidate | undefined;
    if (choice && !sameScheme(choice.scheme, this.current)) {
      if (currentOk) {
        // The current scheme is good enough: move only to a cheaper one that meets the
        // target with margin, after the hold-down (longer on long RTTs, since reports
        // describe the path as it was that long ago).
        const cheaper = choice.overhead < this.overheadOf(this.current);
        const held = now - this.lastChangeMs >= Math.max(this.lowerHoldMs, 4 * this.rttMs);
        if (cheaper && held && choice.residual <= this.targetResidual / ENABLE_FACTOR) switchTo = choice;
      } else if (choice.residual <= this.targetResidual || choice.residual * ENABLE_FACTOR < currentResidual) {
        // The current scheme misses the target: replace it at once by one that meets
        // it, or (when nothing can) by a clearly better one.
        switchTo = choice;
      }
    }
    if (switchTo) {
      this.current = switchTo.scheme;
      this.lastChangeMs = now;
    }
    this.decision = {
      atMs: now,
      lossRate: loss,
      meanBurstPackets: burst,
      packetRatePps: this.ratePps,
      modelResidual: switchTo ? switchTo.residual : currentResidual,
      scheme: this.current,
    };
  }

  /** Expected extra bytes per data byte of `scheme` (parity inflated by mixed sizes). */
  private overheadOf(scheme: FecScheme): number {
    if (scheme.mode === 'rs') return (scheme.r / scheme.k) * (scheme.k < this.inflation.length ? this.inflation[scheme.k] : 1);
    return schemeOverhead(scheme);
  }

  /** Modelled residual of `scheme` on the fitted path at this packet rate. */
  private residualOf(scheme: FecScheme, fit: GilbertFit, ratePps: number): number {
    // `sw` has no residual model yet (the controller never chooses it): rated as unprotected.
    if (scheme.mode === 'off' || scheme.mode === 'sw') return stationaryLoss(fit);
    if (scheme.mode === 'duplicate') {
      const between = ratePps > 0 ? Math.floor((scheme.spacingMs * ratePps) / 1000) : 0;
      return residualDuplicate(fit, scheme.copies, 1 + (1 + scheme.copies) * between);
    }
    return residualReedSolomon(fit, scheme.k, scheme.r, scheme.interleave);
  }

  /** Human-readable summary of the last decision, for logs. */
  describe(): string {
    const d = this.decision;
    if (!d) return `fec ${formatScheme(this.current)} (no reports yet)`;
    return `fec ${formatScheme(this.current)} loss=${(d.lossRate * 100).toFixed(2)}% burst=${d.meanBurstPackets.toFixed(2)} rate=${d.packetRatePps.toFixed(0)}pps model=${(d.modelResidual * 100).toFixed(3)}%`;
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
  private choose(loss: number, burst: number, ratePps: number): Candidate {
    const kTop = K_CANDIDATES[K_CANDIDATES.length - 1];
    const key = `${loss > 0 ? Math.round(Math.log(loss) * 10) : 'z'}|${Math.round(burst * 4)}|${ratePps > 0 ? Math.round(Math.log(ratePps) * 10) : 'z'}|${Math.round(this.inflation[kTop] * 20)}`;
    if (key === this.cacheKey && this.cacheChoice) return this.cacheChoice;
    const fit = fitGilbert(loss, burst);
    const cap = loss > this.congestionLossRate ? this.overheadMax / 4 : this.overheadMax;
    const budgetMs = this.latencyBudgetMs;
    const gapMs = ratePps > 0 ? 1000 / ratePps : Number.POSITIVE_INFINITY;
    let best: Candidate = { scheme: FEC_OFF, residual: loss, overhead: 0, latencyMs: 0 };
    const consider = (c: Candidate): void => {
      if (c.overhead > cap + 1e-9 || c.latencyMs > budgetMs + 1e-9) return;
      best = better(c, best, this.targetResidual) ? c : best;
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
          });
        }
      }
    }
    const choice = best;
    // Reuse the current scheme object when the choice is equal, so `scheme` identity
    // only changes with the decision.
    if (sameScheme(choice.scheme, this.current)) choice.scheme = this.current;
    this.cacheKey = key;
    this.cacheChoice = choice;
    return choice;
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
      return;
    }
    const sizes = this.sizes;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += sizes[i];
    const mean = Math.max(1, sum / n);
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

/**
 * Whether `a` beats `b`: meeting the target beats missing it; among those meeting it,
 * less overhead, then less latency; among those missing it, lower residual (ties within
 * 5 % go to less overhead).
 */
function better(a: Candidate, b: Candidate, target: number): boolean {
  const aMeets = a.residual <= target;
  const bMeets = b.residual <= target;
  if (aMeets !== bMeets) return aMeets;
  if (aMeets) {
    if (a.overhead !== b.overhead) return a.overhead < b.overhead;
    return a.latencyMs < b.latencyMs;
  }
  if (a.residual * RESIDUAL_TIE_FACTOR < b.residual) return true;
  if (b.residual * RESIDUAL_TIE_FACTOR < a.residual) return false;
  if (a.overhead !== b.overhead) return a.overhead < b.overhead;
  return a.latencyMs < b.latencyMs;
}
