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
  const again = await runCli(['demo', '--json'], 60_000);
  assert.equal(again.stdout, first.stdout);
});

test('slipstream demo prints the story and a summary, and a bad flag exits 2', async () => {
  const table = await runCli(['demo', '--seconds', '12'], 60_000);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /Summary: chosenRelay ams-1 \(expected ams-1\)/);
  const bad = await runCli(['demo', '--seconds', '0']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--seconds/);
});
