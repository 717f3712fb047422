/**
 * Anonymous measurement reports (`POST /v1/reports`) on a real `slipstream coordinator`
 * process: reporters are distinct source addresses over 127.0.0.0/8 (IPv6 ones through
 * `X-Forwarded-For` from a trusted proxy on 127.0.0.1), and what is checked is the
 * client→relay leg another client of the same prefix gets from `GET /v1/route`.
 * Issue #14 row 7: one report used to move a whole /24 from 150 ms to 3,471 ms / 62 %.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { ClientReportAggregator, median } from '../src/core/client-reports.js';
import { freePort, startCoordinatorProcess, testKeys, writeConfig, type CoordinatorProcess } from './support.js';

const keys = testKeys();
/** Small budgets so that every refusal is reached with a bounded handful of requests. */
const CONFIG = `leaseMs: 600000
trustForwardedFor: true
trustedProxies: [127.0.0.1]
origins:
  - name: game
    latitude: 50
    longitude: 8
clientReports:
  reporterBurst: 5
  reporterPerSecond: 0.001
  prefixBurst: 60
  prefixPerSecond: 0.001
`;
const RELAY = { relayId: 'r1', region: 'eu', latitude: 50, longitude: 8, tunnelAddress: '127.0.0.1:4433', probeAddress: '127.0.0.1:4434', capacitySessions: 100 };

interface Answer {
  status: number;
  json: Record<string, unknown> & { error?: { code: string; field?: string; reason: string } };
  text: string;
}

let coordinator: CoordinatorProcess;
let cleanup: () => void;

/** One HTTP request to the coordinator from `localAddress` (a 127.x address), optionally with X-Forwarded-For. */
function call(method: string, path: string, localAddress: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const url = new URL(path, coordinator.url);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, localAddress, headers: { 'content-type': 'application/json', ...headers }, timeout: 10_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          let json: Answer['json'] = {};
          try {
            json = JSON.parse(text) as Answer['json'];
          } catch {
            // not JSON (metrics)
          }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

/** A v4 reporter is its source address; a v6 one arrives through the trusted proxy on 127.0.0.1. */
function from(address: string): { local: string; headers: Record<string, string> } {
  return address.includes(':') ? { local: '127.0.0.1', headers: { 'x-forwarded-for': address } } : { local: address, headers: {} };
}

function report(address: string, rttMs: number, lossFraction: number): Promise<Answer> {
  const f = from(address);
  return call('POST', '/v1/reports', f.local, { reports: [{ relayId: 'r1', rttMs, jitterMs: 2, lossFraction, samples: 100 }] }, f.headers);
}

/** The client→relay leg of r1 that a client at `address` is routed by. */
async function leg(address: string): Promise<{ rttMs: number; lossFraction: number; source: string }> {
  const f = from(address);
  const a = await call('GET', '/v1/route?origin=game&twoHop=false', f.local, undefined, f.headers);
  assert.equal(a.status, 200, a.text);
  const candidates = a.json.candidates as { relayId: string; legs: { clientToRelay: { rttMs: number; lossFraction: number; source: string } } }[];
  const c = candidates.find((x) => x.relayId === 'r1');
  assert.ok(c, a.text);
  return c.legs.clientToRelay;
}

/** Sends reports from `address` until one is refused (at most `max`); returns the statuses. */
async function untilRefused(address: string, rttMs: number, lossFraction: number, max = 10): Promise<Answer[]> {
  const out: Answer[] = [];
  for (let i = 0; i < max; i++) {
    const a = await report(address, rttMs, lossFraction);
    out.push(a);
    if (a.status !== 200) break;
  }
  return out;
}

async function refusedCount(budget: string): Promise<number> {
  const m = await call('GET', '/metrics', '127.0.0.1');
  const line = new RegExp(`^slipstream_coordinator_client_reports_refused_total\\{budget="${budget}"\\} (\\d+)`, 'm').exec(m.text);
  assert.ok(line, `no refused_total{budget="${budget}"} in /metrics`);
  return Number(line[1]);
}

before(async () => {
  const config = writeConfig(keys, CONFIG);
  cleanup = config.cleanup;
  coordinator = await startCoordinatorProcess(['--config', config.path, '--listen', `127.0.0.1:${await freePort()}`, '--log-level', 'warn']);
  const reg = await call('POST', '/v1/relays/register', '127.0.0.1', RELAY, { authorization: `Bearer ${keys.fleetSecret}` });
  assert.equal(reg.status, 200, reg.text);
});

after(async () => {
  await coordinator?.stop();
  cleanup?.();
});

describe('client measurement reports are bounded and robust (issue #14 row 7)', () => {
  test('one reporter alone moves nothing another client of its /24 is routed by, and is refused over its budget', async () => {
    const before = await leg('127.0.1.200');
    assert.notEqual(before.source, 'measured');
    const first = await report('127.0.1.66', 3_471, 0.62);
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(await leg('127.0.1.200'), before, 'the issue: one report moved the whole /24 to 3,471 ms / 62 % loss');
    const own = await leg('127.0.1.66');
    assert.equal(own.source, 'measured', 'its own report still ranks its own route');
    assert.equal(own.rttMs, 3_471);
    const refusedBefore = await refusedCount('reporter');
    const rest = await untilRefused('127.0.1.66', 3_471, 0.62);
    assert.deepEqual(rest.map((a) => a.status), [200, 200, 200, 200, 429], 'a burst of 5 per reporter');
    const refused = rest[rest.length - 1]!;
    assert.equal(refused.json.error?.code, 'rate_limited');
    assert.equal(refused.json.error?.field, 'clientAddress');
    assert.match(refused.json.error!.reason, /this reporter/);
    assert.deepEqual(await leg('127.0.1.200'), before);
    assert.equal(await refusedCount('reporter'), refusedBefore + 1, 'the refusal is counted');
  });

  test('a handful of liars in a /24 stay within the honest reporters’ range; honest reports still move it; the prefix budget refuses with a count', async () => {
    const honest = Array.from({ length: 9 }, (_, i) => `127.0.2.${10 + i}`);
    for (const [i, a] of honest.entries()) assert.equal((await report(a, 145 + i, 0.01)).status, 200);
    const baseline = await leg('127.0.2.200');
    assert.equal(baseline.source, 'measured');
    assert.ok(baseline.rttMs >= 145 && baseline.rttMs <= 153, `baseline ${baseline.rttMs}`);
    // Four liars from the same /24, each until its own budget refuses it.
    for (const liar of ['127.0.2.60', '127.0.2.61', '127.0.2.62', '127.0.2.63']) {
      const statuses = (await untilRefused(liar, 5_000, 1)).map((a) => a.status);
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429], liar);
      const now = await leg('127.0.2.200');
      // The stated bound: with ≥ 3 reporters the figure stays within the other reporters' range.
      assert.ok(now.rttMs >= 145 && now.rttMs <= 153, `after ${liar}: ${now.rttMs} ms`);
      assert.ok(now.lossFraction <= 0.01 + 1e-9, `after ${liar}: loss ${now.lossFraction}`);
    }
    // The path really gets worse: the honest majority moves the figure (in bounded steps).
    for (let round = 0; round < 2; round++) for (const [i, a] of honest.entries()) assert.equal((await report(a, 300 + i, 0.02)).status, 200);
    const learned = await leg('127.0.2.200');
    assert.ok(learned.rttMs >= 250 && learned.rttMs <= 320, `learned ${learned.rttMs} ms`);
    // 9 + 20 + 18 = 47 of the prefix's 60 spent: fresh addresses of the /24 run into the prefix budget.
    const refusedBefore = await refusedCount('prefix');
    const statuses: number[] = [];
    let refusal: Answer | undefined;
    for (let i = 0; i < 20 && refusal === undefined; i++) {
      const a = await report(`127.0.2.${100 + i}`, 300, 0.02);
      statuses.push(a.status);
      if (a.status !== 200) refusal = a;
    }
    assert.deepEqual(statuses, [...new Array<number>(13).fill(200), 429]);
    assert.equal(refusal!.json.error?.code, 'rate_limited');
    assert.equal(refusal!.json.error?.field, 'clientPrefix');
    assert.match(refusal!.json.error!.reason, /prefix 127\.0\.2\.0\/24/);
    assert.equal(await refusedCount('prefix'), refusedBefore + 1);
  });

  test('IPv6: many addresses of one /64 are one reporter and cannot outvote three honest ones in the /48', async () => {
    const honest = ['2001:db8:1:10::1', '2001:db8:1:11::1', '2001:db8:1:12::1'];
    for (const [i, a] of honest.entries()) assert.equal((await report(a, 80 + i, 0)).status, 200);
    const baseline = await leg('2001:db8:1:99::1');
    assert.equal(baseline.source, 'measured');
    assert.ok(baseline.rttMs >= 80 && baseline.rttMs <= 82, `baseline ${baseline.rttMs}`);
    const statuses: number[] = [];
    for (let i = 1; i <= 6; i++) statuses.push((await report(`2001:db8:1:66::${i}`, 5_000, 1)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429], 'one budget for the whole /64');
    const now = await leg('2001:db8:1:99::1');
    assert.ok(now.rttMs >= 80 && now.rttMs <= 82, `after the /64: ${now.rttMs} ms`);
    assert.equal(now.lossFraction, 0);
  });
});

describe('ClientReportAggregator (sans-IO)', () => {
  const fold = { staleMs: 60_000, smoothingSamples: 20, halfLifeMs: 15_000 };
  const sample = (rttMs: number) => ({ rttMs, jitterMs: 0, lossFraction: 0, samples: 100 });

  test('memory is bounded per path and in all; stale reporters stop counting', () => {
    const agg = new ClientReportAggregator(fold, { reportersMin: 3, reportersPerPathMax: 4, entriesMax: 10 });
    for (let i = 0; i < 50; i++) agg.add(i, 'client:p', 'relay:a', `r${i}`, sample(10));
    assert.equal(agg.size, 4, 'reporters per path capped');
    assert.equal(agg.own('client:p', 'r0'), undefined, 'an evicted reporter leaves no own figures behind');
    assert.equal(agg.own('client:p', 'r49')?.get('relay:a')?.rttMs, 10);
    for (let p = 0; p < 50; p++) agg.add(100 + p, `client:${p}`, 'relay:a', 'x', sample(10));
    assert.ok(agg.size <= 10, `entries ${agg.size}`);
    assert.ok(agg.pathCount <= 10);
    assert.equal(agg.own('client:p', 'r49'), undefined, 'a path forgotten whole takes its reporters\' own figures with it');
    const late = new ClientReportAggregator(fold, { reportersMin: 2 });
    late.add(0, 'client:q', 'relay:a', 'old', sample(10));
    assert.equal(late.add(fold.staleMs, 'client:q', 'relay:a', 'new', sample(10)).publish, undefined, 'a stale reporter does not make the quorum');
  });

  test('the step bound and the median', () => {
    const agg = new ClientReportAggregator(fold, { step: { rttMs: 25, rttFraction: 0.25, lossFraction: 0.05 } });
    assert.deepEqual(agg.stepToward({ rttMs: 150, jitterMs: 0, lossFraction: 0 }, { rttMs: 3_471, jitterMs: 2, lossFraction: 0.62 }), { rttMs: 187.5, jitterMs: 2, lossFraction: 0.05 });
    assert.deepEqual(agg.stepToward({ rttMs: 40, jitterMs: 0, lossFraction: 0.5 }, { rttMs: 1, jitterMs: 0, lossFraction: 0 }), { rttMs: 15, jitterMs: 0, lossFraction: 0.45 });
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });
});
