/**
 * `slipstream bench coordinator` runs end to end and keeps its JSON contract. The scale
 * figures themselves (500 relays heartbeating every second plus 2,000 route requests/s,
 * p99 route latency) come from the full benchmark and are published in
 * coordinator/README.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../../test/support/run-cli.js';

interface Result {
  store: string;
  routeCacheMs: number;
  cacheHitFraction: number | null;
  routeRpsAchieved: number;
  heartbeatRpsAchieved: number;
  errors: number;
  routeLatencyMs: { p50: number; p99: number; max: number };
  candidatesPerRoute: number;
  coordinatorCpuUsPerRoute: number | null;
}

test('slipstream bench coordinator --json: the contract, route cache off then on, every request answered, routes carry candidates', async () => {
  // Behaviour only: latency and achieved rates are the benchmark's to report (see
  // coordinator/README.md), not a test's to assert on a shared, noisy machine.
  // 10 client networks at 200 routes/s: each asks 20 times a second, so with a 1 s cache most answers are hits.
  const r = await runCli(['bench', 'coordinator', '--store', 'memory', '--relays', '100', '--heartbeat-ms', '1000', '--route-rps', '200', '--duration-s', '2', '--warmup-s', '1', '--client-prefixes', '10', '--json'], 120_000);
  assert.equal(r.code, 0, r.stderr);
  const results = (JSON.parse(r.stdout) as { clientPrefixes: number; results: Result[] }).results;
  assert.deepEqual(results.map((x) => [x.store, x.routeCacheMs]), [['memory', 0], ['memory', 1000]]);
  assert.equal(results[0]!.cacheHitFraction, null, 'no cache, no hit fraction');
  assert.ok(results[1]!.cacheHitFraction! > 0 && results[1]!.cacheHitFraction! <= 1, `hit fraction ${results[1]!.cacheHitFraction}`);
  for (const memory of results) {
    assert.equal(memory.errors, 0);
    assert.ok(memory.routeRpsAchieved > 0 && memory.heartbeatRpsAchieved > 0);
    assert.ok(memory.candidatesPerRoute > 0);
    assert.ok(memory.coordinatorCpuUsPerRoute !== null && memory.coordinatorCpuUsPerRoute > 0, `coordinator CPU per route ${memory.coordinatorCpuUsPerRoute}`);
    for (const value of [memory.routeLatencyMs.p50, memory.routeLatencyMs.p99, memory.routeLatencyMs.max]) assert.ok(Number.isFinite(value) && value >= 0);
    assert.ok(memory.routeLatencyMs.p50 <= memory.routeLatencyMs.p99 && memory.routeLatencyMs.p99 <= memory.routeLatencyMs.max);
  }
});
