/**
 * FEC feedback between the relay core and a client (issue 4, FEC both ways): the relay
 * reports what its upstream receiver measured in `fecStats` control messages, and a
 * client's `fecStats` (its downstream receiver) drives the relay's adaptive controller.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FecSender } from '../../proto/src/fec/index.js';
import { HeaderFlag, PacketHeader, PacketType, parseHeader } from '../../proto/src/header.js';
import { Rng } from '../../proto/src/rng.js';
import { buildControlPacket } from '../../proto/src/wire.js';
import { controlOf, Harness, mintTicket, typeOf, upstreamShards, type ClientSession } from './support.js';

const client = { address: '198.51.100.20', port: 50000 };
const origin = { address: '10.0.0.9', port: 7777 };

function openRs(h: Harness, s: ClientSession): void {
  const answer = h.deliver(h.tunnelId, client, buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['rs', 'off'] }));
  assert.equal(controlOf(answer[0]!.bytes)?.type, 'sessionAccept');
}

describe('FEC feedback', () => {
  test('the relay sends its upstream receiver stats to the client as fecStats, counting what was lost on the way up', () => {
    const h = new Harness();
    const s = mintTicket(new Rng(31));
    openRs(h, s);
    const sender = new FecSender({ scheme: { mode: 'rs', k: 4, r: 2, interleave: 1, holdMs: 8 }, maxPayloadBytes: 1400 });
    const reports: NonNullable<ReturnType<typeof controlOf>>[] = [];
    let n = 0;
    for (let t = 0; t < 3000; t += 10) {
      for (const x of h.advance(t)) if (x.socketId === h.tunnelId && typeOf(x.bytes) === PacketType.Control) reports.push(controlOf(x.bytes)!);
      for (const shard of upstreamShards(s, sender, t, new Uint8Array(40).fill(n & 0xff))) {
        // Every 10th shard is lost on the way up.
        if (n++ % 10 === 9) continue;
        h.deliver(h.tunnelId, client, shard);
      }
    }
    const stats = reports.filter((r) => r.type === 'fecStats');
    assert.ok(stats.length >= 2, `fecStats reports: ${stats.length}`);
    let wire = 0;
    let lost = 0;
    for (const r of stats) {
      if (r.type !== 'fecStats') continue;
      wire += r.wirePackets;
      lost += r.wireLost;
    }
    assert.ok(wire > 100 && Math.abs(lost / wire - 0.1) < 0.04, `reported loss ${lost}/${wire}`);
  });

  test("a client's fecStats reporting heavy downstream loss raises the relay's downstream protection above the configured rs(4,2)", () => {
    const h = new Harness();
    const s = mintTicket(new Rng(32));
    openRs(h, s);
    // The session's origin-facing socket appears with its first upstream packet.
    const up = h.deliver(h.tunnelId, client, buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['rs', 'off'] }));
    assert.equal(controlOf(up[0]!.bytes)?.type, 'sessionAccept');
    const upSocket = h.events.find((e) => e.type === 'openSocket' && e.kind === 'upstream')!;
    assert.ok(upSocket.type === 'openSocket');
    const header = new PacketHeader();
    /** Extra downstream packets (parity, copies) per origin datagram over `ms` at 500 datagrams/s (groups fill within the hold). */
    const overhead = (fromMs: number, ms: number, report: boolean): number => {
      let data = 0;
      let extra = 0;
      for (let t = fromMs; t < fromMs + ms; t += 2) {
        const sent = [...h.advance(t), ...h.deliver(upSocket.socketId, origin, new Uint8Array(60).fill(1))];
        if (report && t % 500 === 0) h.deliver(h.tunnelId, client, buildControlPacket(s.high, s.low, { type: 'fecStats', intervalMs: 500, received: 210, recovered: 15, unrecoverable: 25, duplicates: 0, parityReceived: 100, wirePackets: 375, wireLost: 56, lossBursts: 50 }));
        for (const x of sent) {
          if (x.socketId !== h.tunnelId || parseHeader(x.bytes, header) !== 0) continue;
          if (header.type === PacketType.Data && (header.flags & HeaderFlag.Duplicate) === 0) data++;
          else if (header.type === PacketType.Parity || header.type === PacketType.Data) extra++;
        }
      }
      return extra / Math.max(1, data);
    };
    const before = overhead(0, 2000, false);
    assert.ok(Math.abs(before - 0.5) < 0.15, `configured rs(4,2): ${before}`);
    overhead(2000, 3000, true);
    const after = overhead(5000, 2000, true);
    assert.ok(after > before + 0.1, `protection rose from ${before.toFixed(2)} to ${after.toFixed(2)} extra packets per datagram`);
  });
});
