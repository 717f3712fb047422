/**
 * Log lines an attacker cannot inflate. Events a sender can cause at will, one per
 * datagram (a refused ticket, a spoofed flow that never got an answer), are counted
 * here by key (the event and its reason, from a fixed set: never a string the sender
 * chose) and logged as at most one line per key per interval:
 *
 * - the first occurrence of a quiet key is logged at once (count 1, with its sample),
 *   so a single refusal still shows up when it happens, and opens a window;
 * - occurrences inside the window are only counted; when it ends, one line gives their
 *   count and the first one's sample, and a new window opens;
 * - a window that ends with nothing counted closes, and the key is quiet again.
 *
 * So a key writes at most one line per `intervalMs` whatever arrives. Sans-IO: the
 * time comes in as `nowMs` (monotonic), and the driver arms one timer for
 * {@link LogAggregator.pollTimeout}. Memory is bounded by the number of keys.
 */

/** One line to log. */
export interface AggregatedLine {
  /** The event (`session_refused`, `udp_flow_unreplied`, …). */
  readonly event: string;
  /** Its reason (an error code, an end reason). */
  readonly reason: string;
  /** Occurrences this line stands for (1 for the first of a quiet key). */
  readonly count: number;
  /** The fields of the first occurrence it stands for. */
  readonly sample: Readonly<Record<string, unknown>>;
  /** How long the counted occurrences span at most, ms (0 for the first of a quiet key). */
  readonly intervalMs: number;
}

/** A key's open window. */
interface Window {
  readonly event: string;
  readonly reason: string;
  endMs: number;
  count: number;
  sample: Readonly<Record<string, unknown>> | undefined;
}

/** See the module comment. */
export class LogAggregator {
  private readonly windows = new Map<string, Window>();
  /** Occurrences recorded since start, by `event/reason` (for the metrics). */
  readonly totals = new Map<string, number>();

  /** @param intervalMs the window of each key, ms (at most one line per key per window) */
  constructor(public intervalMs: number) {}

  /**
   * Records one occurrence of `event` for `reason` with its fields. Returns the line to
   * log now (the first of a quiet key), or undefined when it is counted into the
   * window's summary. `sample` is kept by reference (not copied) when it is the first of its line.
   */
  record(nowMs: number, event: string, reason: string, sample: Readonly<Record<string, unknown>>): AggregatedLine | undefined {
    const key = `${event}/${reason}`;
    this.totals.set(key, (this.totals.get(key) ?? 0) + 1);
    const window = this.windows.get(key);
    if (window === undefined) {
      this.windows.set(key, { event, reason, endMs: nowMs + this.intervalMs, count: 0, sample: undefined });
      return { event, reason, count: 1, sample, intervalMs: 0 };
    }
    if (window.count === 0) window.sample = sample;
    window.count++;
    return undefined;
  }

  /** When to call {@link handleTimeout} next (monotonic ms), or undefined when no window is open. */
  pollTimeout(): number | undefined {
    let earliest: number | undefined;
    for (const window of this.windows.values()) if (earliest === undefined || window.endMs < earliest) earliest = window.endMs;
    return earliest;
  }

  /** Ends the windows due by `nowMs`: one summary line for each that counted anything. */
  handleTimeout(nowMs: number): AggregatedLine[] {
    const lines: AggregatedLine[] = [];
    for (const [key, window] of this.windows) {
      if (window.endMs > nowMs) continue;
      if (window.count === 0) {
        this.windows.delete(key);
        continue;
      }
      lines.push({ event: window.event, reason: window.reason, count: window.count, sample: window.sample ?? {}, intervalMs: this.intervalMs });
      window.count = 0;
      window.sample = undefined;
      window.endMs = nowMs + this.intervalMs;
    }
    return lines;
  }
}
