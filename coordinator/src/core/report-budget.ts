/**
 * The client report budget: how much the unauthenticated `POST /v1/reports` may move
 * the coordinator's figures. Two limits:
 * - a token bucket per key — the service keeps one instance keyed by reporter (IPv4
 *   address, IPv6 /64) and one keyed by client prefix (/24, /48), each with its own limits:
 *   {@link CLIENT_REPORTS_BURST} at once, refilled at {@link CLIENT_REPORTS_PER_SECOND};
 *   the buckets live in one insertion-ordered map, least recently used first, and the
 *   oldest is forgotten beyond {@link CLIENT_REPORT_SOURCES_MAX} (a forgotten source
 *   starts again with a full bucket, which is no more than a new address gets);
 * - the samples one report counts for, clamped to {@link CLIENT_REPORT_SAMPLES_MAX}, so
 *   one client never outweighs a history for long (relay reports are not clamped).
 *
 * Sans-IO: every method takes `nowMs` from the caller.
 */
import { CLIENT_REPORT_SAMPLES_MAX, CLIENT_REPORT_SOURCES_MAX, CLIENT_REPORTS_BURST, CLIENT_REPORTS_PER_SECOND } from './constants.js';

/** Limits of a {@link ReportBudget}; every field defaults to the constant it names. */
export interface ReportBudgetInit {
  /** Reports a source may send at once, before it is refused. Default {@link CLIENT_REPORTS_BURST}. */
  readonly burst?: number;
  /** Sustained reports per second a source may send. Default {@link CLIENT_REPORTS_PER_SECOND}. */
  readonly perSecond?: number;
  /** Sources remembered; beyond it the least recently seen is forgotten. Default {@link CLIENT_REPORT_SOURCES_MAX}. */
  readonly sourcesMax?: number;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

/** See the module comment. */
export class ReportBudget {
  /** Reports a source may send at once. */
  readonly burst: number;
  /** Sustained reports per second a source may send. */
  readonly perSecond: number;
  private readonly sourcesMax: number;
  /** Token buckets by source address, least recently used first (bounded by `sourcesMax`). */
  private readonly buckets = new Map<string, Bucket>();

  constructor(init: ReportBudgetInit = {}) {
    this.burst = init.burst ?? CLIENT_REPORTS_BURST;
    this.perSecond = init.perSecond ?? CLIENT_REPORTS_PER_SECOND;
    this.sourcesMax = init.sourcesMax ?? CLIENT_REPORT_SOURCES_MAX;
  }

  /** Sources currently remembered. */
  get size(): number {
    return this.buckets.size;
  }

  /** Spends one report of `source` at `nowMs` (ms, any consistent timeline); false when this one is over its rate. */
  take(nowMs: number, source: string): boolean {
    const bucket = this.buckets.get(source);
    let tokens = this.burst;
    if (bucket) {
      tokens = Math.min(this.burst, bucket.tokens + (Math.max(0, nowMs - bucket.atMs) / 1000) * this.perSecond);
      this.buckets.delete(source);
    } else {
      while (this.buckets.size >= this.sourcesMax) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    const ok = tokens >= 1;
    this.buckets.set(source, { tokens: ok ? tokens - 1 : tokens, atMs: nowMs });
    return ok;
  }
}

/** The probe samples one client report counts for: `samples`, at most {@link CLIENT_REPORT_SAMPLES_MAX}. */
export function clientReportSamples(samples: number): number {
  return Math.min(samples, CLIENT_REPORT_SAMPLES_MAX);
}
