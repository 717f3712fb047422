/**
 * Aggregated log lines (relay/src/log-aggregator.ts): whatever arrives, a reason writes
 * at most one line per interval — the first of a quiet reason at once, then one summary
 * per interval with the count and the first sample — and a quiet reason starts over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogAggregator, type AggregatedLine } from '../src/log-aggregator.js';

/** Runs the aggregator as the driver does (one timer at pollTimeout) up to `toMs`; returns the lines. */
function runTo(aggregator: LogAggregator, toMs: number): AggregatedLine[] {
  const lines: AggregatedLine[] = [];
  for (let deadline = aggregator.pollTimeout(); deadline !== undefined && deadline <= toMs; deadline = aggregator.pollTimeout()) lines.push(...aggregator.handleTimeout(deadline));
  return lines;
}

test('a burst of 50,000 refusals over 15 s writes at most one line per reason per interval, and the counts add up', () => {
  const aggregator = new LogAggregator(1000);
  const lines: { atMs: number; line: AggregatedLine }[] = [];
  let sent = 0;
  for (let i = 0; i < 50_000; i++) {
    const t = i * 0.3;
    for (const line of runTo(aggregator, t)) lines.push({ atMs: t, line });
    const reason = sent % 3 === 0 ? 'SLIP_ERR_TICKET_FORGED' : 'SLIP_ERR_TICKET_EXPIRED';
    const now = aggregator.record(t, 'session_refused', reason, { client: `203.0.113.${sent % 250}:1`, n: sent });
    if (now !== undefined) lines.push({ atMs: t, line: now });
    sent++;
  }
  for (const line of runTo(aggregator, 100_000)) lines.push({ atMs: 100_000, line });
  assert.equal(sent, 50_000);
  for (const reason of ['SLIP_ERR_TICKET_FORGED', 'SLIP_ERR_TICKET_EXPIRED']) {
    const mine = lines.filter((l) => l.line.reason === reason);
    assert.ok(mine.length <= 16, `${reason}: ${mine.length} lines for 15 s at 1 s intervals`);
    assert.equal(mine[0]!.line.count, 1, 'the first is logged at once');
    assert.equal(mine[0]!.atMs, reason === 'SLIP_ERR_TICKET_FORGED' ? 0 : 0.3);
    assert.deepEqual(mine[1]!.line.sample, reason === 'SLIP_ERR_TICKET_FORGED' ? { client: '203.0.113.3:1', n: 3 } : { client: '203.0.113.2:1', n: 2 }, 'a summary carries its first sample');
    const total = mine.reduce((sum, l) => sum + l.line.count, 0);
    assert.equal(total, aggregator.totals.get(`session_refused/${reason}`));
  }
  assert.equal((aggregator.totals.get('session_refused/SLIP_ERR_TICKET_FORGED') ?? 0) + (aggregator.totals.get('session_refused/SLIP_ERR_TICKET_EXPIRED') ?? 0), 50_000);
  assert.equal(aggregator.pollTimeout(), undefined, 'every window closed once quiet');
});

test('a reason quiet for an interval logs its next occurrence at once again', () => {
  const aggregator = new LogAggregator(1000);
  assert.equal(aggregator.record(0, 'e', 'r', { a: 1 })?.count, 1);
  assert.equal(aggregator.record(10, 'e', 'r', { a: 2 }), undefined);
  assert.deepEqual(runTo(aggregator, 1000).map((l) => [l.count, l.sample]), [[1, { a: 2 }]]);
  assert.deepEqual(runTo(aggregator, 2000), [], 'nothing counted: no line, the window closes');
  assert.equal(aggregator.pollTimeout(), undefined);
  assert.equal(aggregator.record(5000, 'e', 'r', { a: 3 })?.count, 1);
});
