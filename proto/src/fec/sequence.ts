/**
 * Loss and burst measurement over a stream of u32 serial numbers (wire sequence
 * numbers or FEC group ids), tolerant of reordering and duplication.
 *
 * A number is judged once it is `reorderSlack` behind the highest seen: received or
 * lost. A loss burst is a run of consecutive lost numbers, so lost / bursts is the mean
 * burst length the Gilbert-Elliott fit needs. Serial arithmetic as RFC 1982 (u32).
 */

/** Result of {@link SequenceTracker.record}. */
export const SequenceVerdict = {
  /** First sighting, in time to be counted as received. */
  New: 0,
  /** Seen before (a duplicate on the wire or a repeated copy). */
  Duplicate: 1,
  /** Older than the judged horizon: it was already counted as lost. */
  Late: 2,
} as const;

/** One of the {@link SequenceVerdict} values. */
export type SequenceVerdictValue = (typeof SequenceVerdict)[keyof typeof SequenceVerdict];

/** Counts received and lost serial numbers and loss bursts. Counters accumulate until {@link resetCounters}. */
export class SequenceTracker {
  /** Numbers judged (received + lost) since the last reset. */
  judged = 0;
  /** Numbers judged lost since the last reset. */
  lost = 0;
  /** Loss runs that started since the last reset. */
  bursts = 0;
  /** Numbers that arrived after being judged lost, since the last reset. */
  late = 0;

  private readonly ring: Uint8Array;
  private readonly mask: number;
  private readonly slack: number;
  private started = false;
  private highest = 0;
  /** Every number ≤ this (serially) has been judged. */
  private judgedThrough = 0;
  private previousLost = false;

  /**
   * @param reorderSlack how far (in numbers) behind the highest a number may arrive and
   *   still count as received; larger tolerates more reordering but reports later
   * @param windowSize ring size, a power of two larger than reorderSlack
   */
  constructor(reorderSlack: number, windowSize = 1024) {
    if ((windowSize & (windowSize - 1)) !== 0 || windowSize <= reorderSlack) {
      throw new RangeError(`SequenceTracker: window ${windowSize} must be a power of two above the slack ${reorderSlack}`);
    }
    this.ring = new Uint8Array(windowSize);
    this.mask = windowSize - 1;
    this.slack = reorderSlack;
  }

  /** Zeroes the counters (not the window): called at the start of each stats interval. */
  resetCounters(): void {
    this.judged = 0;
    this.lost = 0;
    this.bursts = 0;
    this.late = 0;
  }

  /** Records a sighting of `n` (u32). */
  record(n: number): SequenceVerdictValue {
    n >>>= 0;
    if (!this.started) {
      this.started = true;
      this.highest = n;
      this.judgedThrough = (n - 1) >>> 0;
      this.ring[n & this.mask] = 1;
      return SequenceVerdict.New;
    }
    const ahead = (n - this.highest) | 0;
    if (ahead > 0) {
      if (ahead > this.ring.length - this.slack - 1) {
        // A jump beyond the window (an outage): judge what is pending, then count the
        // gap in bulk as one burst.
        this.judgeThrough(this.highest);
        const gap = ahead - 1;
        if (gap > 0) {
          this.judged += gap;
          this.lost += gap;
          if (!this.previousLost) this.bursts++;
          this.previousLost = true;
        }
        this.judgedThrough = (n - 1) >>> 0;
      }
      this.highest = n;
      this.ring[n & this.mask] = 1;
      this.judgeThrough((n - this.slack) >>> 0);
      return SequenceVerdict.New;
    }
    if (((n - this.judgedThrough) | 0) <= 0) {
      this.late++;
      return SequenceVerdict.Late;
    }
    if (this.ring[n & this.mask] === 1) return SequenceVerdict.Duplicate;
    this.ring[n & this.mask] = 1;
    return SequenceVerdict.New;
  }

  private judgeThrough(limit: number): void {
    while (((limit - this.judgedThrough) | 0) > 0) {
      const n = (this.judgedThrough + 1) >>> 0;
      const slot = n & this.mask;
      const lost = this.ring[slot] === 0;
      this.ring[slot] = 0;
      this.judged++;
      if (lost) {
        this.lost++;
        if (!this.previousLost) this.bursts++;
      }
      this.previousLost = lost;
      this.judgedThrough = n;
    }
  }
}
