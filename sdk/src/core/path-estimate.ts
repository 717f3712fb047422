/**
 * What the SDK knows about the path to one relay, from its own probes: smoothed RTT
 * and RTT variation (RFC 6298 §2: SRTT with gain 1/8, RTTVAR with gain 1/4, which is
 * what our "jitter" means here), and loss over the last {@link LOSS_WINDOW_PROBES}
 * probes with what it takes to put a confidence interval on it (the number of loss
 * bursts, hence an effective sample size; see {@link lossInterval}). Sans-IO: results
 * come in with their time; nothing reads a clock.
 */

/**
 * Probes remembered for the loss estimate: 25.6 s of the current relay at its 100 ms
 * probe period, 64 s of the backup at 250 ms. Long enough that 3 % loss is told from
 * 0 % with confidence (≈ 7.7 expected losses), short enough to follow a path that turned lossy.
 */
export const LOSS_WINDOW_PROBES = 256;
/** The loss window is cut into this many blocks of consecutive slots for the batch-means variance (32 probes each). */
export const LOSS_BLOCKS = 8;
const LOSS_BLOCK_SHIFT = Math.log2(LOSS_WINDOW_PROBES / LOSS_BLOCKS);
/** SRTT gain (RFC 6298's alpha). */
const RTT_GAIN = 1 / 8;
/** RTTVAR gain (RFC 6298's beta). */
const RTTVAR_GAIN = 1 / 4;
/**
 * Gain of the slow estimates that relay selection compares. RFC 6298's gains follow
 * a path closely, which suits timeouts but makes two equal paths with 20 ms of jitter
 * look different by 10 ms or more for seconds at a time; at 1/64 the noise in the
 * comparison falls to a third, and a real change still shows within seconds (64 samples).
 */
const STABLE_GAIN = 1 / 64;
/**
 * Standard error of the slow RTT average per unit of RTT standard deviation: an EWMA
 * with gain a has variance a/(2−a) of its input's.
 */
const STABLE_STANDARD_ERROR = Math.sqrt(STABLE_GAIN / (2 - STABLE_GAIN));
/** Standard deviation per unit of mean change between consecutive samples, for independent normal noise (E|X₁−X₂| = 2σ/√π). */
const SD_PER_MEAN_DEVIATION = Math.sqrt(Math.PI) / 2;
/** Standard deviation of |X| per unit of its mean, for normal X (√(π/2 − 1)): the jitter samples' own spread. */
const ABS_SD_PER_MEAN = Math.sqrt(Math.PI / 2 - 1);

/** A snapshot of one path's figures. */
export interface PathFigures {
  /** Smoothed round-trip time, ms (undefined before the first answered probe). */
  readonly rttMs: number | undefined;
  /** Smoothed RTT variation, ms. */
  readonly jitterMs: number;
  /** Slowly smoothed RTT (gain 1/64), ms: what selection compares. */
  readonly stableRttMs: number | undefined;
  /** Slowly smoothed jitter (mean change between consecutive RTT samples, gain 1/64), ms. */
  readonly stableJitterMs: number;
  /** Standard error of {@link stableRttMs}, ms: how far noise alone may move it. */
  readonly stableRttErrorMs: number;
  /** Standard error of {@link stableJitterMs}, ms. */
  readonly stableJitterErrorMs: number;
  /** Lost fraction of the probes in the window, 0..1. */
  readonly loss: number;
  /** Probe outcomes in the window (answered or lost). */
  readonly samples: number;
  /** Lost probes in the window. */
  readonly lost: number;
  /** Loss bursts in the window: runs of consecutive lost probes (an isolated loss is a run of one). */
  readonly lossBursts: number;
  /**
   * Probe outcomes worth as many independent ones, for the loss estimate's confidence
   * (binomial variance `p(1 − p)/n` ⇒ `n = p(1 − p)/variance`). The smaller of two
   * estimates, so that loss that comes in bursts or in spells builds less confidence
   * than the same loss spread evenly:
   * - bursts: `samples / (2 × mean burst length − 1)`: for a two-state (Gilbert) loss
   *   process the variance of the loss fraction over n outcomes is `p(1 − p)/n ×
   *   (1 + ρ)/(1 − ρ)`, and ρ, the correlation of consecutive outcomes, is about
   *   `1 − 1/mean burst`, so the factor is `2B − 1`;
   * - batch means: the window's {@link LOSS_BLOCKS} blocks of 32 consecutive probes
   *   give an empirical variance of the loss fraction, `B/(B − 1) × Σ (n_b/N)² (f_b −
   *   p)²` (the clustered-sample estimator), which also catches spells longer than a
   *   burst (a path lossy for seconds, then clean for a minute). Used with ≥ 2 blocks.
   * Equal to `samples` when losses are isolated and even.
   */
  readonly lossEffectiveSamples: number;
  /** Time of the last answered probe, ms (undefined if none). */
  readonly lastAnsweredMs: number | undefined;
}

/** Running estimate of one path. */
export class PathEstimate {
  private srttMs: number | undefined = undefined;
  private rttvarMs = 0;
  private stableRtt: number | undefined = undefined;
  private stableJitter = 0;
  private answered = 0;
  private previousRtt = 0;
  private readonly outcomes = new Uint8Array(LOSS_WINDOW_PROBES);
  private outcomeCount = 0;
  private outcomeNext = 0;
  private lostInWindow = 0;
  /** Runs of consecutive losses in the window. */
  private lossRuns = 0;
  /** Outcomes and losses per block of slots. */
  private readonly blockCount = new Uint16Array(LOSS_BLOCKS);
  private readonly blockLost = new Uint16Array(LOSS_BLOCKS);
  private lastAnswered: number | undefined = undefined;
  /**
   * The figures since the last outcome, or undefined: they change only when a probe
   * outcome comes in, while the SDK reads them after every input (liveness deadlines,
   * selection), so one snapshot serves every read in between.
   */
  private snapshot: PathFigures | undefined = undefined;

  /** Smoothed round-trip time, ms (undefined before the first answered probe): {@link PathFigures.rttMs} without a snapshot. */
  get rttMs(): number | undefined {
    return this.srttMs;
  }

  /** Smoothed RTT variation, ms: {@link PathFigures.jitterMs} without a snapshot. */
  get jitterMs(): number {
    return this.srttMs === undefined ? 0 : this.rttvarMs;
  }

  /** Records an answered probe with its round-trip time (ms) at `nowMs`. */
  addAnswered(nowMs: number, rttMs: number): void {
    this.answered++;
    if (this.srttMs === undefined || this.stableRtt === undefined) {
      this.srttMs = rttMs;
      this.rttvarMs = rttMs / 2;
      this.stableRtt = rttMs;
      this.stableJitter = 0;
      this.previousRtt = rttMs;
    } else {
      // A plain mean (gain 1/n) until n reaches 1/STABLE_GAIN, so that the first
      // samples do not weigh for minutes, as a fixed-gain average started at the
      // first sample would make them.
      const gain = Math.max(1 / this.answered, STABLE_GAIN);
      // Jitter as RFC 3550 §6.4.1 measures it: the mean change between consecutive
      // samples. Unlike the deviation from the average, a step change of the path's
      // delay counts once instead of for as long as the average lags behind it.
      this.stableJitter += Math.max(1 / (this.answered - 1), STABLE_GAIN) * (Math.abs(rttMs - this.previousRtt) - this.stableJitter);
      this.stableRtt += gain * (rttMs - this.stableRtt);
      this.previousRtt = rttMs;
      this.rttvarMs += RTTVAR_GAIN * (Math.abs(this.srttMs - rttMs) - this.rttvarMs);
      this.srttMs += RTT_GAIN * (rttMs - this.srttMs);
    }
    this.lastAnswered = nowMs;
    this.addOutcome(0);
  }

  /** Records a probe that got no answer in time. */
  addLost(): void {
    this.addOutcome(1);
  }

  private addOutcome(lost: 0 | 1): void {
    this.snapshot = undefined;
    const newest = this.outcomeCount === 0 ? 0 : this.outcomes[(this.outcomeNext + LOSS_WINDOW_PROBES - 1) % LOSS_WINDOW_PROBES]!;
    if (this.outcomeCount === LOSS_WINDOW_PROBES) {
      // The oldest outcome leaves. A lost one ends its run unless the next is lost too
      // (the run then starts one later). With a full window the oldest slot is the next one.
      const oldest = this.outcomes[this.outcomeNext]!;
      this.lostInWindow -= oldest;
      this.blockLost[this.outcomeNext >> LOSS_BLOCK_SHIFT]! -= oldest;
      if (oldest === 1 && this.outcomes[(this.outcomeNext + 1) % LOSS_WINDOW_PROBES] === 0) this.lossRuns--;
    } else {
      this.outcomeCount++;
      this.blockCount[this.outcomeNext >> LOSS_BLOCK_SHIFT]!++;
    }
    // A loss after an answer (or into an empty window) starts a run. (When the window is
    // full, the slot just vacated was the oldest; "newest" was read before it changed.)
    if (lost === 1 && (newest === 0 || this.outcomeCount === 1)) this.lossRuns++;
    this.outcomes[this.outcomeNext] = lost;
    this.lostInWindow += lost;
    this.blockLost[this.outcomeNext >> LOSS_BLOCK_SHIFT]! += lost;
    this.outcomeNext = (this.outcomeNext + 1) % LOSS_WINDOW_PROBES;
  }

  /** Standard error per unit of sample deviation: 1/√n while the average is a plain mean, then the EWMA's. */
  private errorScale(): number {
    return Math.max(STABLE_STANDARD_ERROR, 1 / Math.sqrt(Math.max(1, this.answered)));
  }

  /** See {@link PathFigures.lossEffectiveSamples}. */
  private effectiveSamples(): number {
    const n = this.outcomeCount;
    if (this.lossRuns === 0) return n;
    let effective = n / Math.max(1, (2 * this.lostInWindow) / this.lossRuns - 1);
    const p = this.lostInWindow / n;
    let blocks = 0;
    let sum = 0;
    for (let b = 0; b < LOSS_BLOCKS; b++) {
      const nb = this.blockCount[b]!;
      if (nb === 0) continue;
      blocks++;
      const d = (nb / n) * (this.blockLost[b]! / nb - p);
      sum += d * d;
    }
    if (blocks >= 2 && sum > 0) effective = Math.min(effective, (p * (1 - p)) / ((blocks / (blocks - 1)) * sum));
    return Math.max(1, Math.min(n, effective));
  }

  /** The current figures (the same object until the next outcome; treat it as read-only). */
  figures(): PathFigures {
    return (this.snapshot ??= this.computeFigures());
  }

  private computeFigures(): PathFigures {
    // Before the first RTT sample, RTTVAR is meaningless; after it, the RFC 6298
    // initialisation (R/2) decays towards the real variation.
    return {
      rttMs: this.srttMs,
      jitterMs: this.srttMs === undefined ? 0 : this.rttvarMs,
      stableRttMs: this.stableRtt,
      stableJitterMs: this.stableJitter,
      stableRttErrorMs: this.stableJitter * SD_PER_MEAN_DEVIATION * this.errorScale(),
      stableJitterErrorMs: this.stableJitter * ABS_SD_PER_MEAN * this.errorScale(),
      loss: this.outcomeCount === 0 ? 0 : this.lostInWindow / this.outcomeCount,
      samples: this.outcomeCount,
      lost: this.lostInWindow,
      lossBursts: this.lossRuns,
      lossEffectiveSamples: this.effectiveSamples(),
      lastAnsweredMs: this.lastAnswered,
    };
  }
}

/** A two-sided confidence interval on a loss fraction. */
export interface LossInterval {
  /** Lower bound, 0..1. */
  readonly low: number;
  /** Upper bound, 0..1. */
  readonly high: number;
}

/**
 * Wilson score interval (Wilson 1927) on a loss fraction `p` measured over `n`
 * (effective) independent probes, at `z` standard normal deviates (2 ≈ 95 % two-sided).
 * Unlike the normal approximation it stays inside [0, 1] and is sensible for p = 0 or
 * small n: 0 losses in 16 probes gives [0, 0.2] at z = 2. With no samples: [0, 1].
 */
export function lossInterval(p: number, n: number, z: number): LossInterval {
  if (!(n > 0)) return { low: 0, high: 1 };
  const z2n = (z * z) / n;
  const centre = (p + z2n / 2) / (1 + z2n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2n / (4 * n))) / (1 + z2n);
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/**
 * Confidence interval on the difference of two loss fractions `a − b` by Newcombe's
 * hybrid score method (Newcombe 1998, method 10): each fraction's Wilson interval at
 * `z`, combined. `a` and `b` are `[p, n]` (loss fraction, effective samples).
 */
export function lossDifferenceInterval(a: readonly [number, number], b: readonly [number, number], z: number): LossInterval {
  const ia = lossInterval(a[0], a[1], z);
  const ib = lossInterval(b[0], b[1], z);
  const d = a[0] - b[0];
  return {
    low: d - Math.sqrt((a[0] - ia.low) ** 2 + (ib.high - b[0]) ** 2),
    high: d + Math.sqrt((ia.high - a[0]) ** 2 + (b[0] - ib.low) ** 2),
  };
}
