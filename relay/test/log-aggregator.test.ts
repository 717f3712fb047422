/**
 * Aggregated log lines (relay/src/log-aggregator.ts): whatever arrives, a reason writes
 * at most one line per interval — the first of a quiet reason at once, then one summary
 * per interval with the count and the first sample — and a quiet reason starts over.
 * A slowloris's connections, ended by the real core's first-byte timeout, go through it
 * as the relay driver routes them (`isSilentTcpEnd`), while connections that carried
 * bytes keep a `session_end` line each.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RelayCore } from '../src/core/relay-core.js';
import { LogAggregator, type AggregatedLine } from '../src/log-aggregator.js';
import { isSilentTcpEnd } from '../src/relay-logs.js';
import { baseConfig, Harness, openLimits, udpRule } from './support.js';

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

test('a slowloris over 60 s of virtual time: its thousands of first-byte-timeout ends log at most one session_end line per reason per interval; connections that carried bytes keep one line each', () => {
  const INTERVAL_MS = 10_000;
  const RUN_MS = 60_000;
  const h = new Harness(baseConfig({ rules: [udpRule({ name: 'lobby', protocol: 'tcp', listenPort: 7000, listenPortEnd: 7000, idleTimeoutMs: 30_000 })], limits: openLimits, tcp: { connectionsPerSourceMax: 128, silentPerSourceMax: 16, firstByteTimeoutMs: 1000 } }));
  const listener = h.listenerIds.get(7000)!;
  const aggregator = new LogAggregator(INTERVAL_MS);
  /** What the log would hold: aggregated lines with their time, and individual session_end lines. */
  const aggregated: { atMs: number; line: AggregatedLine }[] = [];
  const individual: { reason: string; bytesUp: number }[] = [];
  let seen = 0;
  let port = 1024;
  const admit = (address: string): number | undefined => {
    const admission = h.core.admitTcp(h.nowMs, listener, { address, port: port++ });
    h.drain();
    if (typeof admission === 'number') return undefined;
    h.core.tcpConnected(h.nowMs, (admission as Exclude<ReturnType<RelayCore['admitTcp']>, number>).connId);
    return (admission as Exclude<ReturnType<RelayCore['admitTcp']>, number>).connId;
  };
  // The driver's part: close what the core asks to end, and route each sessionEnd as relay.ts does.
  const driver = (): void => {
    h.drain();
    for (; seen < h.events.length; seen++) {
      const event = h.events[seen]!;
      if (event.type === 'tcpEnd') h.core.tcpClosed(h.nowMs, event.connId, event.reason);
      if (event.type !== 'sessionEnd') continue;
      if (isSilentTcpEnd(event)) {
        const line = aggregator.record(h.nowMs, 'session_end', event.reason, { rule: event.rule, client: event.client });
        if (line !== undefined) aggregated.push({ atMs: h.nowMs, line });
      } else individual.push({ reason: event.reason, bytesUp: event.totals.bytesUp });
      h.drain();
    }
  };
  for (let t = 0; t < RUN_MS; t += 100) {
    h.advance(t);
    driver();
    for (let deadline = aggregator.pollTimeout(); deadline !== undefined && deadline <= t; deadline = aggregator.pollTimeout()) for (const line of aggregator.handleTimeout(deadline)) aggregated.push({ atMs: deadline, line });
    // The attack: 10 addresses keep as many idle connections open as the relay lets them, and some leave at once.
    for (let source = 0; source < 10; source++) while (admit(`198.51.100.${source}`) !== undefined);
    const leaver = admit('198.51.100.99');
    if (leaver !== undefined) h.core.tcpClosed(h.nowMs, leaver, 'client closed');
    // A player every second: bytes up and down, then closes.
    if (t % 1000 === 0) {
      const player = admit('192.0.2.7')!;
      h.core.tcpData(h.nowMs, player, 'up', 100);
      h.core.tcpData(h.nowMs, player, 'down', 100);
      h.core.tcpClosed(h.nowMs, player, 'client closed');
    }
    driver();
  }
  for (let deadline = aggregator.pollTimeout(); deadline !== undefined; deadline = aggregator.pollTimeout()) for (const line of aggregator.handleTimeout(deadline)) aggregated.push({ atMs: deadline, line });
  const silentEnds = h.eventsOf('sessionEnd').filter((e) => e.kind === 'tcp' && e.totals.bytesUp === 0 && e.totals.bytesDown === 0);
  assert.ok(h.core.tcpFirstByteTimeouts >= 5_000, `the core closed ${h.core.tcpFirstByteTimeouts} connections for no first byte`);
  for (const reason of ['no first byte', 'client closed']) {
    const lines = aggregated.filter((l) => l.line.reason === reason);
    // At most one line per interval (the first at once, then one per window while they keep coming), whatever the rate.
    assert.ok(lines.length >= 2 && lines.length <= RUN_MS / INTERVAL_MS + 2, `${reason}: ${lines.length} lines over ${RUN_MS / 1000} s at ${INTERVAL_MS / 1000} s intervals`);
    for (let i = 1; i < lines.length; i++) assert.ok(lines[i]!.atMs - lines[i - 1]!.atMs >= INTERVAL_MS, `${reason}: lines ${i - 1} and ${i} at ${lines[i - 1]!.atMs} and ${lines[i]!.atMs} ms`);
    assert.equal(lines.reduce((sum, l) => sum + l.line.count, 0), silentEnds.filter((e) => e.reason === reason).length, `${reason}: the counts add up to every end`);
  }
  assert.equal(individual.length, RUN_MS / 1000, 'each player that carried bytes has its own session_end line');
  assert.ok(individual.every((e) => e.reason === 'client closed' && e.bytesUp === 100));
});

test('isSilentTcpEnd: only TCP connections that moved no byte, ended by their sender or a timeout', () => {
  const end = (kind: string, reason: string, bytesUp = 0, bytesDown = 0): { kind: string; reason: string; totals: { bytesUp: number; bytesDown: number } } => ({ kind, reason, totals: { bytesUp, bytesDown } });
  for (const reason of ['no first byte', 'idle', 'client closed', 'client reset']) assert.equal(isSilentTcpEnd(end('tcp', reason)), true, reason);
  assert.equal(isSilentTcpEnd(end('tcp', 'no first byte', 0, 1)), false, 'a byte from the origin: a session');
  assert.equal(isSilentTcpEnd(end('tcp', 'client closed', 5)), false);
  assert.equal(isSilentTcpEnd(end('tcp', 'no origin reachable')), false, 'the origin\'s fault: its own line');
  assert.equal(isSilentTcpEnd(end('tcp', 'origin reset')), false);
  assert.equal(isSilentTcpEnd(end('tunnel', 'idle')), false);
  assert.equal(isSilentTcpEnd(end('udp', 'idle')), false);
});
