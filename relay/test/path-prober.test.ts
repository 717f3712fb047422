/**
 * The fleet path prober, driven directly (sans-IO): virtual time, replies built by
 * hand as a far relay's probe responder would build them.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HEADER_BYTES, PacketType } from '../../proto/src/header.js';
import { PathProber, type PathReport, type ProbeTarget } from '../src/core/path-prober.js';

const relayB: ProbeTarget = { kind: 'relay', id: 'b', address: '10.0.0.2', port: 4433 };
const originG: ProbeTarget = { kind: 'origin', id: 'game', address: '10.0.0.9', port: 7777 };

/** The far relay's answer to `probe`: same bytes, type ProbeReply, its receive/send times. */
function replyTo(probe: Uint8Array, heldMs: number): Uint8Array {
  const reply = probe.slice();
  reply[2] = PacketType.ProbeReply;
  const view = new DataView(reply.buffer, reply.byteOffset + HEADER_BYTES);
  view.setFloat64(8, 1000);
  view.setFloat64(16, 1000 + heldMs);
  return reply;
}

/** Runs the prober to `untilMs` in 1 ms steps; `answer` decides each relay probe's fate (RTT ms or undefined = lost) and origin probes'. */
function run(prober: PathProber, fromMs: number, untilMs: number, answer: (n: number) => number | undefined): PathReport[][] {
  const reports: PathReport[][] = [];
  const pendingReplies: { atMs: number; bytes?: Uint8Array; probeId?: number }[] = [];
  let n = 0;
  for (let now = fromMs; now <= untilMs; now++) {
    for (const p of pendingReplies.filter((x) => x.atMs <= now)) {
      pendingReplies.splice(pendingReplies.indexOf(p), 1);
      if (p.bytes) assert.ok(prober.handleDatagram(now, { address: relayB.address, port: relayB.port }, p.bytes));
      else prober.handleConnectResult(now, p.probeId!, true);
    }
    const deadline = prober.pollTimeout();
    if (deadline !== undefined && deadline <= now) prober.handleTimeout(now);
    for (let e = prober.pollEvent(); e !== undefined; e = prober.pollEvent()) {
      if (e.type === 'report') reports.push(e.reports);
      else {
        const rtt = answer(n++);
        if (rtt !== undefined) pendingReplies.push({ atMs: now + rtt, probeId: e.probeId });
      }
    }
    for (let tx = prober.pollTransmit(); tx !== undefined; tx = prober.pollTransmit()) {
      assert.equal(tx.bytes.length, HEADER_BYTES + 24, 'probes are small');
      const rtt = answer(n++);
      if (rtt !== undefined) pendingReplies.push({ atMs: now + rtt + 3, bytes: replyTo(tx.bytes, 3) });
    }
  }
  return reports;
}

describe('PathProber', () => {
  test('relay RTT excludes the far relay hold time; jitter and loss per window; probes spread at the interval', () => {
    const prober = new PathProber({ probeIntervalMs: 100, probeTimeoutMs: 200, reportIntervalMs: 1000 });
    prober.setTargets(0, [relayB]);
    // RTT alternates 10 / 14 ms, every 5th probe lost.
    const reports = run(prober, 0, 3000, (n) => (n % 5 === 4 ? undefined : n % 2 === 0 ? 10 : 14));
    assert.ok(reports.length >= 2);
    const r = reports[1]!.find((x) => x.targetRelayId === 'b')!;
    assert.equal(r.samples, 10, 'ten probes judged per second at 100 ms');
    assert.ok(r.rttMs >= 10 && r.rttMs <= 14, `median RTT ${r.rttMs} excludes the 3 ms hold`);
    assert.ok(r.jitterMs > 2 && r.jitterMs <= 4, `jitter ${r.jitterMs}`);
    assert.ok(Math.abs(r.lossFraction - 0.2) <= 0.1, `loss ${r.lossFraction}`);
    assert.equal(prober.probesSent, 30);
  });

  test('an origin that never answers is not reported (unmeasurable, not lost); once it answers, its losses count', () => {
    const prober = new PathProber({ probeIntervalMs: 100, probeTimeoutMs: 150, reportIntervalMs: 1000 });
    prober.setTargets(0, [originG]);
    assert.deepEqual(run(prober, 0, 2100, () => undefined).flat(), []);
    const later = run(prober, 2101, 4100, (n) => (n % 2 === 0 ? 5 : undefined)).flat();
    const last = later.filter((x) => x.origin === 'game').at(-1)!;
    assert.ok(last.lossFraction > 0.3 && last.lossFraction < 0.7 && Math.abs(last.rttMs - 5) < 1.01, JSON.stringify(last));
  });

  test('a relay that stops answering reports loss 1; removed targets stop being probed; foreign datagrams are refused', () => {
    const prober = new PathProber({ probeIntervalMs: 100, probeTimeoutMs: 150, reportIntervalMs: 1000 });
    prober.setTargets(0, [relayB]);
    const reports = run(prober, 0, 2100, () => undefined).flat();
    assert.ok(reports.some((x) => x.targetRelayId === 'b' && x.lossFraction === 1 && x.samples >= 9));
    assert.equal(prober.handleDatagram(2200, { address: '10.0.0.2', port: 1 }, new Uint8Array(48)), false);
    prober.setTargets(2200, []);
    const sent = prober.probesSent;
    run(prober, 2200, 3500, () => 1);
    assert.equal(prober.probesSent, sent);
  });
});
