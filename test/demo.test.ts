import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './support/run-cli.js';
import type { DemoReport } from '../cli/demo.js';

test('slipstream demo --json: picks the best whole path, fails over in under a second, FEC lowers loss; same seed same output', async (t) => {
  const first = await runCli(['demo', '--json'], 60_000);
  assert.equal(first.code, 0, first.stderr);
  const report = JSON.parse(first.stdout) as DemoReport;
  t.diagnostic(`chosen ${report.chosenRelay} (expected ${report.expectedBestRelay}) after ${report.pickMs} ms; failover ${report.failover.fromRelay} → ${report.failover.toRelay} gap ${report.failover.gapMs.toFixed(0)} ms; loss raw ${(report.loss.raw * 100).toFixed(2)} % → ${(report.loss.afterFec * 100).toFixed(2)} %`);
  assert.equal(report.chosenRelay, report.expectedBestRelay);
  assert.ok(report.failover.fromRelay !== undefined && report.failover.toRelay !== undefined && report.failover.toRelay !== report.failover.fromRelay);
  assert.ok(report.failover.gapMs > 0 && report.failover.gapMs < 1000, `gap ${report.failover.gapMs}`);
  assert.ok(report.loss.afterFec < report.loss.raw, `after FEC ${report.loss.afterFec} vs raw ${report.loss.raw}`);
  // The direct route measured beside Slipstream, with per-second series of both and the relay in use.
  const player = report.qoe.clients[0]!;
  for (const series of [player.series.direct.loss, player.series.direct.latencyMs, player.series.slipstream.loss, player.series.slipstream.latencyMs, player.series.slipstream.relay]) assert.equal(series.length, report.seconds);
  assert.deepEqual([...new Set(player.series.slipstream.relay)], [report.failover.fromRelay, report.failover.toRelay]);
  assert.ok(report.qoe.slipstream.loss < report.qoe.direct.loss, `loss direct ${report.qoe.direct.loss} vs Slipstream ${report.qoe.slipstream.loss}`);
  assert.deepEqual(report.marks.map((m) => [m.kind, m.relay]), [['crash', report.failover.fromRelay]]);
  const again = await runCli(['demo', '--json'], 60_000);
  assert.equal(again.stdout, first.stdout);
});

test('slipstream demo prints the story and a summary; a bad flag exits 2, an unwritable --html path 1', async () => {
  const table = await runCli(['demo', '--seconds', '12'], 60_000);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /Summary: chosenRelay ams-1 \(expected ams-1\)/);
  const bad = await runCli(['demo', '--seconds', '0']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--seconds/);
  // An --html path that cannot be written: one line, exit 1, before anything runs.
  const unwritable = await runCli(['demo', '--html', '/nonexistent-dir-slipstream/demo.html']);
  assert.equal(unwritable.code, 1, unwritable.stderr);
  assert.equal(unwritable.stdout, '');
  assert.match(unwritable.stderr, /^slipstream: --html \/nonexistent-dir-slipstream\/demo\.html: cannot write the report: the directory \/nonexistent-dir-slipstream does not exist\n$/);
});
