/**
 * Per-request HTTP metrics of the coordinator — `…_http_requests_total{route,status}`
 * and `…_http_request_duration_seconds{route}` — counted in plain arrays and handed to
 * Prometheus only when `/metrics` is scraped. prom-client's `inc`/`observe` hash their
 * label object on every call: at 5,000 route answers a second that was a few µs per
 * request, a tenth of what a cached route answer costs in all (coordinator/README.md
 * "Scale"). The exposition is the same as prom-client's Counter and Histogram.
 */
import type * as prom from 'prom-client';

/** Upper bounds of the duration buckets, s. */
export const REQUEST_DURATION_BUCKETS_S: readonly number[] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1];

interface Series {
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

/** The metric shape prom-client's Registry formats (`get()` as its Counter and Histogram give it). */
interface MetricValue {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly metricName?: string;
}

interface CustomMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): { name: string; help: string; type: 'counter' | 'histogram'; aggregator: 'sum'; values: MetricValue[] };
}

/** See the module comment. */
export class RequestMetrics {
  private readonly counts = new Map<string, Map<number, number>>();
  private readonly durations = new Map<string, Series>();

  /** Registers both metrics in `registry` under `prefix` (e.g. `slipstream_coordinator_`). */
  constructor(registry: prom.Registry, prefix: string) {
    const counts = this.counts;
    const durations = this.durations;
    const requests: CustomMetric = {
      name: `${prefix}http_requests_total`,
      help: 'HTTP requests by route template and status',
      type: 'counter',
      aggregator: 'sum',
      get() {
        const values: MetricValue[] = [];
        for (const [route, byStatus] of counts) for (const [status, value] of byStatus) values.push({ value, labels: { route, status: String(status) } });
        return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
      },
    };
    const name = `${prefix}http_request_duration_seconds`;
    const histogram: CustomMetric = {
      name,
      help: 'Time to answer, by route template (long polls excluded)',
      type: 'histogram',
      aggregator: 'sum',
      get() {
        const values: MetricValue[] = [];
        for (const [route, s] of durations) {
          let cumulative = 0;
          for (let i = 0; i < REQUEST_DURATION_BUCKETS_S.length; i++) {
            cumulative += s.buckets[i]!;
            values.push({ value: cumulative, labels: { le: REQUEST_DURATION_BUCKETS_S[i]!, route }, metricName: `${name}_bucket` });
          }
          values.push({ value: s.count, labels: { le: '+Inf', route }, metricName: `${name}_bucket` });
          values.push({ value: s.sum, labels: { route }, metricName: `${name}_sum` });
          values.push({ value: s.count, labels: { route }, metricName: `${name}_count` });
        }
        return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
      },
    };
    registry.registerMetric(requests as unknown as prom.Metric);
    registry.registerMetric(histogram as unknown as prom.Metric);
  }

  /** Counts one answered request of `route` (a route template) with `status`; `durationS` (seconds) goes into the histogram unless undefined (long polls). */
  record(route: string, status: number, durationS: number | undefined): void {
    let byStatus = this.counts.get(route);
    if (byStatus === undefined) this.counts.set(route, (byStatus = new Map()));
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    if (durationS === undefined) return;
    let s = this.durations.get(route);
    if (s === undefined) this.durations.set(route, (s = { buckets: new Float64Array(REQUEST_DURATION_BUCKETS_S.length + 1), sum: 0, count: 0 }));
    let i = 0;
    while (i < REQUEST_DURATION_BUCKETS_S.length && durationS > REQUEST_DURATION_BUCKETS_S[i]!) i++;
    s.buckets[i]!++;
    s.sum += durationS;
    s.count++;
  }
}
