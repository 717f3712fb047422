/**
 * The cheaper per-request path of the coordinator's HTTP driver (issue #17 item 5,
 * coordinator/README.md "Scale"), checked against what it replaced:
 * - `parseTarget` takes plain request targets apart without a WHATWG URL parse; for
 *   any target (fast-check, tricky characters included) it gives the path and query
 *   `new URL(target, base)` gives;
 * - `RequestMetrics` counts requests and durations in plain arrays; its Prometheus text
 *   is prom-client's Counter and Histogram text for the same observations, line for line.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as prom from 'prom-client';
import { parseTarget } from '../src/http.js';
import { REQUEST_DURATION_BUCKETS_S, RequestMetrics } from '../src/request-metrics.js';

function viaUrl(target: string): { path: string; query: [string, string][] } | undefined {
  try {
    const url = new URL(target, 'http://coordinator');
    return { path: url.pathname, query: [...url.searchParams] };
  } catch {
    return undefined;
  }
}

function viaParseTarget(target: string): { path: string; query: [string, string][] } | undefined {
  const t = parseTarget(target);
  return t === undefined ? undefined : { path: t.path, query: [...t.query] };
}

describe('parseTarget', () => {
  test('plain targets: path and query as new URL gives them', () => {
    for (const target of ['/', '/v1/route', '/v1/route?origin=game&lat=48.5&lon=-2', '/v1/route/', '/v1/session/0123456789abcdef', '/v1/route?origin=a+b&x=%41%zz&&y', '/v1/route?', '/v1/route??origin=x', '/metrics?a="b"']) {
      assert.deepEqual(viaParseTarget(target), viaUrl(target), target);
    }
  });

  test('targets that are not plain go through new URL: dot segments, escapes, double slashes, fragments, spaces', () => {
    for (const target of ['//evil/v1/route', '/v1/../v1/route?origin=x', '/v1/./route', '/v1/%72oute', '/v1/route?origin=x#frag', '/a b', '/v1/route?origin=é', 'http://other/v1/route?origin=x', '*']) {
      assert.deepEqual(viaParseTarget(target), viaUrl(target), target);
    }
  });

  test('any target (fast-check): the same path and query as new URL', () => {
    const piece = fc.constantFrom('/', 'v1', 'route', '.', '..', '?', '&', '=', '#', '%', '%41', '%zz', '+', ' ', '"', 'é', '→', '\\', ':', '@', 'a', 'Z', '9', '-', '_', '~', '[', ']', '\t', '//');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const target = `/${pieces.join('')}`;
        assert.deepEqual(viaParseTarget(target), viaUrl(target), JSON.stringify(target));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('RequestMetrics', () => {
  test("its exposition is prom-client's Counter and Histogram text for the same requests (fast-check)", async () => {
    const route = fc.constantFrom('GET /v1/route', 'POST /v1/relays/heartbeat', 'GET /v1/revocations', 'unmatched');
    const request = fc.record({ route, status: fc.constantFrom(200, 400, 404, 429), durationS: fc.option(fc.oneof(fc.constantFrom(...REQUEST_DURATION_BUCKETS_S), fc.double({ min: 0, max: 3, noNaN: true })), { nil: undefined }) });
    await fc.assert(
      fc.asyncProperty(fc.array(request, { maxLength: 60 }), async (requests) => {
        const ours = new prom.Registry();
        const metrics = new RequestMetrics(ours, 'x_');
        const theirs = new prom.Registry();
        const counter = new prom.Counter({ name: 'x_http_requests_total', help: 'HTTP requests by route template and status', labelNames: ['route', 'status'], registers: [theirs] });
        const histogram = new prom.Histogram({ name: 'x_http_request_duration_seconds', help: 'Time to answer, by route template (long polls excluded)', labelNames: ['route'], buckets: [...REQUEST_DURATION_BUCKETS_S], registers: [theirs] });
        for (const r of requests) {
          metrics.record(r.route, r.status, r.durationS);
          counter.inc({ route: r.route, status: String(r.status) });
          if (r.durationS !== undefined) histogram.observe({ route: r.route }, r.durationS);
        }
        const lines = async (registry: prom.Registry): Promise<string[]> => (await registry.metrics()).split('\n').sort();
        assert.deepEqual(await lines(ours), await lines(theirs));
      }),
      { numRuns: 200 },
    );
  });
});
