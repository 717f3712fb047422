/**
 * The players' per-interval series folded into one line per path, readable for one
 * player or fifty: per interval, the mean loss over the players that sent in it, and
 * the median and p99 over players of each player's median round trip (with up to 50
 * players p99 is the worst player). Pure; the report's own series stay as they are.
 */
import type { QoeReport } from '../scenario/run.js';
import { percentile } from '../scenario/qoe.js';

/** One path's folded series; every array has one entry per interval, null where no player sent. */
export interface PathAggregate {
  /** Mean over players of the interval's loss, fraction 0–1. */
  readonly loss: (number | null)[];
  /** Median over players of their median round trip, ms. */
  readonly latencyP50Ms: (number | null)[];
  /** p99 (nearest rank) over players of their median round trip, ms. */
  readonly latencyP99Ms: (number | null)[];
}

/** Both paths folded. */
export interface AggregateSeries {
  /** Interval length, ms (the report's, 1000). */
  readonly intervalMs: number;
  /** Number of intervals. */
  readonly count: number;
  readonly direct: PathAggregate;
  readonly slipstream: PathAggregate;
}

function aggregatePath(losses: readonly (readonly (number | null)[])[], rtts: readonly (readonly (number | null)[])[], count: number): PathAggregate {
  const loss: (number | null)[] = [];
  const p50: (number | null)[] = [];
  const p99: (number | null)[] = [];
  for (let i = 0; i < count; i++) {
    let sum = 0;
    let n = 0;
    for (const l of losses) {
      const v = l[i];
      if (v === null || v === undefined) continue;
      sum += v;
      n++;
    }
    loss.push(n === 0 ? null : sum / n);
    const values: number[] = [];
    for (const r of rtts) {
      const v = r[i];
      if (v !== null && v !== undefined) values.push(v);
    }
    const sorted = Float64Array.from(values).sort();
    p50.push(percentile(sorted, 0.5));
    p99.push(percentile(sorted, 0.99));
  }
  return { loss, latencyP50Ms: p50, latencyP99Ms: p99 };
}

/** Folds `report`'s per-player series (see the module comment). */
export function aggregateSeries(report: QoeReport): AggregateSeries {
  const intervalMs = report.clients[0]?.series.intervalMs ?? 1000;
  const count = Math.max(0, ...report.clients.map((c) => Math.max(c.series.direct.loss.length, c.series.slipstream.loss.length)));
  return {
    intervalMs,
    count,
    direct: aggregatePath(
      report.clients.map((c) => c.series.direct.loss),
      report.clients.map((c) => c.series.direct.latencyMs),
      count,
    ),
    slipstream: aggregatePath(
      report.clients.map((c) => c.series.slipstream.loss),
      report.clients.map((c) => c.series.slipstream.latencyMs),
      count,
    ),
  };
}
