/**
 * Robust client figures: how anonymous SDK reports (`POST /v1/reports`) become the
 * figure a whole prefix (/24, /48) is routed by, so that no single reporter — nor a
 * few — can move what the prefix's other clients get.
 *
 * - Each reporter (an IPv4 address, an IPv6 /64: see `reporterKey` in geo.ts) keeps
 *   its own smoothed figure per (prefix, relay) path; a reporter's reports only ever
 *   replace its own figure, so repeating a report adds no weight.
 * - The prefix's figure is the median, figure by figure (RTT, jitter, loss), of the
 *   fresh reporters' figures, and is published only once at least `reportersMin`
 *   distinct reporters have one. With three or more, the median always lies within
 *   the range of the *other* reporters' figures: one reporter can move it at most to
 *   its neighbour's value, whatever it reports.
 * - Each publication moves the previous published figure toward the median by at most
 *   the step bound: RTT and jitter by max(`stepRttMs`, `stepRttFraction` × current),
 *   loss by `stepLossFraction`; so even a majority of liars walks, not jumps.
 *
 * A reporter's own figures steer that reporter's own routes (`own`): that misleads no
 * one else, and a lone client in its prefix keeps the benefit of its own probes.
 *
 * Memory is bounded: at most {@link CLIENT_REPORTERS_PER_PATH_MAX} reporters per path
 * (least recently reporting forgotten) and {@link CLIENT_REPORT_ENTRIES_MAX} entries
 * in all (least recently reported path forgotten whole). Reporter keys live only in
 * this process's memory; the store and replicas see only the published prefix figure.
 *
 * Sans-IO: every method takes `nowMs` from the caller.
 */
import { CLIENT_REPORT_ENTRIES_MAX, CLIENT_REPORTERS_PER_PATH_MAX } from './constants.js';
import { foldSample, type FoldRules, type MeasurementRecord, type PathFigures, type PathSample } from './measurements.js';

/** The step bound of one publication (see the module comment). */
export interface ClientReportStep {
  /** RTT and jitter move by at most the larger of this, ms… */
  readonly rttMs: number;
  /** …and this fraction of the current published value. */
  readonly rttFraction: number;
  /** Loss moves by at most this (a fraction of probes: 0.05 = 5 points). */
  readonly lossFraction: number;
}

/** Rules of a {@link ClientReportAggregator}. */
export interface ClientReportRules {
  /** Distinct fresh reporters a path needs before its figure is published. Default 1 (the service passes its config, default 3). */
  readonly reportersMin?: number;
  /** Step bound per publication. Default none (the service passes its config). */
  readonly step?: ClientReportStep;
  /** Reporters remembered per path. Default {@link CLIENT_REPORTERS_PER_PATH_MAX}. */
  readonly reportersPerPathMax?: number;
  /** (path, reporter) entries remembered in all. Default {@link CLIENT_REPORT_ENTRIES_MAX}. */
  readonly entriesMax?: number;
}

/** What a report did: the figure to publish, or how many reporters the path has so far. */
export type ClientAggregate = { readonly publish: PathFigures & { readonly samples: number }; readonly reporters: number } | { readonly publish: undefined; readonly reporters: number };

/** See the module comment. */
export class ClientReportAggregator {
  /** Distinct fresh reporters needed before a path's figure is published. */
  readonly reportersMin: number;
  /** Step bound per publication, if any. */
  readonly step: ClientReportStep | undefined;
  private readonly reportersPerPathMax: number;
  private readonly entriesMax: number;
  private readonly fold: FoldRules;
  /** Per path (`from\0to`), least recently reported first: per reporter, least recently reporting first. */
  private readonly paths = new Map<string, Map<string, MeasurementRecord>>();
  /** The same entries by (`from\0reporter`) and then by `to`: a reporter's own figures, for its own routes. */
  private readonly byReporter = new Map<string, Map<string, MeasurementRecord>>();
  private entries = 0;

  constructor(fold: FoldRules, rules: ClientReportRules = {}) {
    this.fold = fold;
    this.reportersMin = Math.max(1, Math.floor(rules.reportersMin ?? 1));
    this.step = rules.step;
    this.reportersPerPathMax = Math.max(1, rules.reportersPerPathMax ?? CLIENT_REPORTERS_PER_PATH_MAX);
    this.entriesMax = Math.max(1, rules.entriesMax ?? CLIENT_REPORT_ENTRIES_MAX);
  }

  /** (path, reporter) entries held (at most `entriesMax`). */
  get size(): number {
    return this.entries;
  }

  /** Paths held. */
  get pathCount(): number {
    return this.paths.size;
  }

  /**
   * Folds `sample` into `reporter`'s own figure for (from, to) and returns the median
   * over the path's fresh reporters when there are at least `reportersMin` of them.
   * A sample with no samples changes nothing (reporters 0, nothing to publish).
   */
  add(nowMs: number, from: string, to: string, reporter: string, sample: PathSample): ClientAggregate {
    if (!(sample.samples > 0)) return { publish: undefined, reporters: 0 };
    const key = `${from}\0${to}`;
    let reporters = this.paths.get(key);
    if (reporters) this.paths.delete(key); // re-inserted below: most recent last
    else reporters = new Map();
    this.paths.set(key, reporters);
    const previous = reporters.get(reporter);
    if (previous) this.forget(reporters, reporter, previous);
    // Forget stale reporters (their figures no longer count), then make room.
    for (const [r, e] of reporters) if (nowMs - e.updatedAtMs >= this.fold.staleMs) this.forget(reporters, r, e);
    while (reporters.size >= this.reportersPerPathMax) {
      const [r, e] = reporters.entries().next().value as [string, MeasurementRecord];
      this.forget(reporters, r, e);
    }
    while (this.entries >= this.entriesMax && this.paths.size > 1) {
      const [oldestKey, oldest] = this.paths.entries().next().value as [string, Map<string, MeasurementRecord>];
      for (const [r, e] of oldest) this.forget(oldest, r, e);
      this.paths.delete(oldestKey);
    }
    const record = foldSample(nowMs, previous, from, to, sample, this.fold)!;
    reporters.set(reporter, record);
    const ownKey = `${from}\0${reporter}`;
    let own = this.byReporter.get(ownKey);
    if (!own) {
      own = new Map();
      this.byReporter.set(ownKey, own);
    }
    own.set(to, record);
    this.entries++;
    if (reporters.size < this.reportersMin) return { publish: undefined, reporters: reporters.size };
    const figures = [...reporters.values()];
    let samples = 0;
    for (const f of figures) samples += f.samples;
    return {
      publish: { rttMs: median(figures.map((f) => f.rttMs)), jitterMs: median(figures.map((f) => f.jitterMs)), lossFraction: median(figures.map((f) => f.lossFraction)), samples },
      reporters: reporters.size,
    };
  }

  /**
   * `reporter`'s own figures measured from `from` (a `client:` node), by measured end:
   * what its own routes may use, since they can mislead no one else. Stale ones are
   * included (ranking skips them by age). Undefined when it has none.
   */
  own(from: string, reporter: string): ReadonlyMap<string, MeasurementRecord> | undefined {
    return this.byReporter.get(`${from}\0${reporter}`);
  }

  /** Drops `reporter`'s entry `e` from its path's `reporters` and from the reporter index. */
  private forget(reporters: Map<string, MeasurementRecord>, reporter: string, e: MeasurementRecord): void {
    reporters.delete(reporter);
    this.entries--;
    const ownKey = `${e.from}\0${reporter}`;
    const own = this.byReporter.get(ownKey);
    if (own) {
      own.delete(e.to);
      if (own.size === 0) this.byReporter.delete(ownKey);
    }
  }

  /** `target` as published after `current` under the step bound (the target itself when there is no bound or no current figure). */
  stepToward(current: PathFigures | undefined, target: PathFigures): PathFigures {
    const step = this.step;
    if (!step || !current) return { rttMs: target.rttMs, jitterMs: target.jitterMs, lossFraction: target.lossFraction };
    return {
      rttMs: clampStep(current.rttMs, target.rttMs, Math.max(step.rttMs, step.rttFraction * current.rttMs)),
      jitterMs: clampStep(current.jitterMs, target.jitterMs, Math.max(step.rttMs, step.rttFraction * current.jitterMs)),
      lossFraction: clampStep(current.lossFraction, target.lossFraction, step.lossFraction),
    };
  }
}

/** `from` moved toward `to` by at most `maxStep`. */
function clampStep(from: number, to: number, maxStep: number): number {
  return from + Math.max(-maxStep, Math.min(maxStep, to - from));
}

/** Median of a non-empty list (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  values.sort((a, b) => a - b);
  const mid = values.length >> 1;
  return values.length % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}
