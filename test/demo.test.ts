import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './support/run-cli.js';

test('slipstream demo --json: FEC lowers the loss players see, clean paths pay nothing, same seed same output', async () => {
  const first = await runCli(['demo', '--json', '--seconds', '30', '--seed', '7']);
  assert.equal(first.code, 0, first.stderr);
  const report = JSON.parse(first.stdout) as { players: { player: string; lossRaw: number; lossAfterFec: number; fecOverhead: number }[]; loss: { raw: number; afterFec: number } };
  assert.equal(report.players.length, 4);
  assert.ok(report.loss.afterFec < report.loss.raw / 2, `after FEC ${report.loss.afterFec} vs raw ${report.loss.raw}`);
  const fibre = report.players.find((p) => p.player === 'fibre')!;
  assert.equal(fibre.lossRaw, 0);
  assert.ok(fibre.fecOverhead < 0.05, `clean path overhead ${fibre.fecOverhead}`);
  const again = await runCli(['demo', '--json', '--seconds', '30', '--seed', '7']);
  assert.equal(again.stdout, first.stdout);
});

test('slipstream demo prints a table, and a bad flag exits 2', async () => {
  const table = await runCli(['demo', '--seconds', '10']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /with Slipstream's adaptive FEC/);
  const bad = await runCli(['demo', '--seconds', '0']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--seconds/);
});
