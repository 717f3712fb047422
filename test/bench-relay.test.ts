/**
 * `slipstream bench relay` end to end, CI-sized (`--quick`, latency rows only): it starts
 * a real relay and the minimal forwarder, and its output keeps the documented shape —
 * the JSON contract of bench/relay.ts with the per-round p99 ratio, and in text the
 * tables followed by every target checked. Figures are not judged here (tests check
 * behaviour, not timing): only that each is a measured number.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './support/run-cli.js';
import { addedP99Ratio } from '../bench/relay.js';
import { findNginx } from '../bench/relay-nginx.js';

/** About 8 s on a quiet machine; generous, for a CI machine running other test files beside it. */
const BENCH_TIMEOUT_MS = 180_000;

describe('slipstream bench relay', () => {
  test('a round\'s p99 ratio: relay over baseline added p99; a relay path faster than direct (noise) counts as 0; no ratio without a baseline figure', () => {
    assert.equal(addedP99Ratio(300, 200), 1.5);
    assert.equal(addedP99Ratio(-37, 100), 0, 'a CI run once printed p99Ratio -0.37');
    for (const baseline of [0, -5, Number.NaN]) assert.ok(Number.isNaN(addedP99Ratio(50, baseline)), `baseline ${baseline}`);
  });

  test('--json: latency rows for L4 and tunnel, each with both forwarders and a p99 ratio', async () => {
    const r = await runCli(['bench', 'relay', '--quick', '--json', '--skip-tcp', '--skip-throughput'], BENCH_TIMEOUT_MS);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { latency: Record<string, number>[]; tunnel: { latency: Record<string, number>[]; udp: unknown[] }; udp: unknown[]; tcp: unknown[]; nginx: { available: boolean; note?: string } };
    assert.deepEqual([result.udp, result.tcp, result.tunnel.udp], [[], [], []], 'skipped rows are empty');
    // nginx with the stream module is detected, never required: rows carry its figures when it ran, and a note says why when not.
    const nginxInstalled = findNginx().ok;
    assert.equal(result.nginx.available, nginxInstalled, JSON.stringify(result.nginx));
    if (!nginxInstalled) assert.match(result.nginx.note!, /^nginx rows absent: /);
    for (const rows of [result.latency, result.tunnel.latency]) {
      assert.deepEqual(rows.map((row) => row.sizeBytes), [100, 1200]);
      for (const row of rows) {
        for (const key of ['relayP50AddedUs', 'relayP99AddedUs', 'baselineP50AddedUs', 'baselineP99AddedUs']) assert.equal(typeof row[key], 'number', key);
        if (nginxInstalled) assert.equal(typeof row.nginxP99AddedUs, 'number', 'nginxP99AddedUs');
        else assert.equal('nginxP99AddedUs' in row, false, 'no nginx figures without nginx');
        assert.ok(row.p99Ratio === null || (typeof row.p99Ratio === 'number' && row.p99Ratio >= 0), `p99Ratio ${row.p99Ratio}`);
        for (const key of ['relayEchoLossFraction', 'baselineEchoLossFraction']) assert.ok(row[key]! >= 0 && row[key]! <= 1, `${key} ${row[key]}`);
      }
    }
  });

  test('text: the tables, then every target checked (ok, ABOVE with the ratio, or n/a)', async () => {
    const r = await runCli(['bench', 'relay', '--quick', '--skip-tcp', '--skip-throughput'], BENCH_TIMEOUT_MS);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /UDP forwarding/, 'skipped tables are not printed');
    assert.match(r.stdout, /Tunnel mode round-trip latency added at 10,000 packets\/s\n {2}size B .* p99 ratio\n/);
    const targets = r.stdout.slice(r.stdout.indexOf('Targets')).split('\n').filter((l) => l.startsWith('  '));
    assert.equal(targets.length, 4, r.stdout);
    for (const line of targets) assert.match(line, /^ {2}((ok {3}|ABOVE) (L4|tunnel) (100|1200) B: p99 added latency ratio \d+\.\d{3} \(target ≤ 1\.5\)|n\/a {3}(L4|tunnel) (100|1200) B: no p99 ratio .*)$/);
  });
});
