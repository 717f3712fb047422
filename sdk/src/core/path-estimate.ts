/**
 * What the SDK knows about the path to one relay, from its own probes: smoothed RTT
 * and RTT variation (RFC 6298 §2: SRTT with gain 1/8, RTTVAR with gain 1/4, which is
 * what our "jitter" means here), and loss over the last {@link LOSS_WINDOW_PROBES}
 * probes. Sans-IO: results come in with their time; nothing reads a clock.
 */

/** Probes remembered for the loss estimate. */
export const LOSS_WINDOW_PROBES = 64;
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
  private lastAnswered: number | undefined = undefined;

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
    if (this.outcomeCount === LOSS_WINDOW_PROBES) this.lostInWindow -= this.outcomes[this.outcomeNext]!;
    else this.outcomeCount++;
    this.outcomes[this.outcomeNext] = lost;
    this.lostInWindow += lost;
    this.outcomeNext = (this.outcomeNext + 1) % LOSS_WINDOW_PROBES;
  }

  /** Standard error per unit of sample deviation: 1/√n while the average is a plain mean, then the EWMA's. */
  private errorScale(): number {
    return Math.max(STABLE_STANDARD_ERROR, 1 / Math.sqrt(Math.max(1, this.answered)));
  }

  /** The current figures. */
  figures(): PathFigures {
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
      lastAnsweredMs: this.lastAnswered,
    };
  }
}
