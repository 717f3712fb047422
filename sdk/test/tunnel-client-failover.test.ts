/**
 * The sans-IO {@link TunnelClient} in virtual time against two scripted relays: after a
 * failover, the datagrams the old relay still sends (in flight, held in a stalled
 * last-mile queue, or the origin's answers it forwards once back from a stall) are
 * delivered once they arrive, for {@link LINGER_MS}, and the old session's Close waits
 * for that drain's end. UDP would deliver them late; a game prefers late data to none.
 * And the upstream sliding-window encoder restarts its window on a move, so the first
 * sources to the new relay are protected like any.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeControl } from '../../proto/src/control.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../../proto/src/header.js';
import { buildControlPacket, buildPacket, nodeHmacSha256 } from '../../proto/src/wire.js';
import type { Endpoint } from '../../proto/src/transport.js';
import { LINGER_MS } from '../src/core/constants.js';
import { TunnelClient, type TunnelClientEvent } from '../src/core/tunnel-client.js';

const HIGH = 0x01234567;
const LOW = 0x89abcdef;
const RELAYS: Record<string, Endpoint> = { A: { address: '10.0.0.1', port: 4433 }, B: { address: '10.0.0.2', port: 4433 } };

test('after a failover, data the old relay already sent is still delivered while its session lingers, and not after', () => {
  const c = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: new Uint8Array(32).fill(7), hmac: nodeHmacSha256, fecModes: ['off'] });
  const events: TunnelClientEvent[] = [];
  const h = new PacketHeader();
  const dead = new Set<string>();
  const closesTo: string[] = [];
  const idOf = (to: Endpoint): string => Object.keys(RELAYS).find((id) => RELAYS[id].address === to.address)!;
  /** Drains the client; live relays answer probes and opens at once (a 0 ms path). */
  const pump = (now: number): void => {
    for (let i = 0; i < 1000; i++) {
      for (let e = c.pollEvent(); e; e = c.pollEvent()) events.push(e);
      const t = c.pollTransmit();
      if (t === undefined) return;
      const id = idOf(t.to);
      parseHeader(t.bytes, h);
      if (h.type === PacketType.Close) closesTo.push(id);
      if (dead.has(id)) continue;
      if (h.type === PacketType.Probe) {
        const r = new Uint8Array(t.bytes);
        r[2] = PacketType.ProbeReply;
        c.handleDatagram(now, RELAYS[id], r);
      } else if (h.type === PacketType.Control) {
        const m = decodeControl(t.bytes.subarray(HEADER_BYTES));
        if (m.ok && m.message.type === 'sessionOpen') c.handleDatagram(now, RELAYS[id], buildControlPacket(HIGH, LOW, { type: 'sessionAccept', sessionId: '0123456789abcdef', fecMode: 'off' }));
      }
    }
  };
  const messages = (): string[] => events.flatMap((e) => (e.type === 'message' ? [new TextDecoder().decode(e.bytes)] : []));
  let seq = 0;
  const fromRelay = (now: number, id: string, text: string): void => {
    c.handleDatagram(now, RELAYS[id], buildPacket(PacketType.Data, HIGH, LOW, ++seq, new TextEncoder().encode(text)));
    pump(now);
  };

  c.setCandidates(0, [
    { id: 'A', tunnel: RELAYS.A, probe: RELAYS.A },
    { id: 'B', tunnel: RELAYS.B, probe: RELAYS.B },
  ]);
  let now = 0;
  pump(now);
  // Both relays answer for a while: the client opens a session, picks a current relay and warms the other as its backup.
  for (; now <= 5000; now += 5) {
    c.handleTimeout(now);
    pump(now);
  }
  assert.ok(c.isOpen, 'the session opened');
  const old = c.current!;
  const other = old === 'A' ? 'B' : 'A';
  fromRelay(now, old, 'before');
  assert.deepEqual(messages(), ['before']);

  // The current relay falls silent (its last-mile queue stalls); the backup keeps answering.
  dead.add(old);
  const failover = (): boolean => events.some((e) => e.type === 'path' && e.info.reason === 'failover');
  for (const until = now + 3000; now <= until && !failover(); now += 5) {
    c.handleTimeout(now);
    pump(now);
  }
  assert.ok(failover(), 'the client failed over');
  assert.equal(c.current, other);
  assert.ok(!closesTo.includes(old), 'no Close yet: the old relay still forwards the origin\'s answers to what it carried');

  // The stalled queue releases what the old relay sent (and the relay, back, forwards the answers it still gets).
  for (let i = 0; i < 28; i++) fromRelay(now + i, old, `in flight ${i}`);
  assert.equal(messages().filter((m) => m.startsWith('in flight')).length, 28, 'every in-flight datagram of the old relay is delivered');

  // Once the linger is over, the old session is gone: nothing from it is delivered.
  const after = now + LINGER_MS + 100;
  for (now += 30; now <= after; now += 5) {
    c.handleTimeout(now);
    pump(now);
  }
  assert.ok(closesTo.includes(old), 'the old session was closed at the relay once the drain ended');
  fromRelay(now, old, 'stale');
  assert.ok(!messages().includes('stale'), 'data after the linger is dropped');
  fromRelay(now, other, 'new');
  assert.ok(messages().includes('new'), 'the new relay delivers');
});

test('sliding-window FEC upstream: after a move to another relay, the first sources sent there are covered by as many repairs as any', () => {
  const c = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: new Uint8Array(32).fill(7), hmac: nodeHmacSha256, fecModes: ['sw'] });
  const h = new PacketHeader();
  const dead = new Set<string>();
  /** Upstream sw shards each relay received: sources by seq, repairs by covered range. */
  const got: Record<string, { sources: number[]; repairs: [number, number][] }> = { A: { sources: [], repairs: [] }, B: { sources: [], repairs: [] } };
  const idOf = (to: Endpoint): string => Object.keys(RELAYS).find((id) => RELAYS[id].address === to.address)!;
  const pump = (now: number): void => {
    for (let i = 0; i < 1000; i++) {
      for (let e = c.pollEvent(); e; e = c.pollEvent());
      const t = c.pollTransmit();
      if (t === undefined) return;
      const id = idOf(t.to);
      if (dead.has(id)) continue;
      parseHeader(t.bytes, h);
      if (h.type === PacketType.Probe) {
        const r = new Uint8Array(t.bytes);
        r[2] = PacketType.ProbeReply;
        c.handleDatagram(now, RELAYS[id], r);
      } else if (h.type === PacketType.Control) {
        const m = decodeControl(t.bytes.subarray(HEADER_BYTES));
        if (m.ok && m.message.type === 'sessionOpen') c.handleDatagram(now, RELAYS[id], buildControlPacket(HIGH, LOW, { type: 'sessionAccept', sessionId: '0123456789abcdef', fecMode: 'sw' }));
      } else if (h.type === PacketType.Data && h.fecIndex === 0 && h.fecDataCount === 1) {
        got[id].sources.push(h.fecGroup);
      } else if (h.type === PacketType.Parity && h.fecIndex === 255) {
        got[id].repairs.push([h.fecGroup, h.fecGroup + h.fecDataCount - 1]);
      }
    }
  };
  c.setCandidates(0, [
    { id: 'A', tunnel: RELAYS.A, probe: RELAYS.A },
    { id: 'B', tunnel: RELAYS.B, probe: RELAYS.B },
  ]);
  let now = 0;
  let n = 0;
  /** Runs `ms` of a 60 datagrams/s game. */
  const play = (ms: number): void => {
    for (const until = now + ms; now < until; now += 1) {
      if (now % 16 === 0 && c.isOpen) c.send(now, new Uint8Array([n++ & 255, 1, 2, 3]));
      c.handleTimeout(now);
      pump(now);
    }
  };
  play(3000);
  assert.ok(c.isOpen);
  const old = c.current!;
  const other = old === 'A' ? 'B' : 'A';
  const before = got[other].sources.length;
  dead.add(old);
  play(3000);
  assert.equal(c.current, other, 'the client failed over');
  const moved = got[other].sources.slice(before);
  assert.ok(moved.length > 100, `${moved.length} sources went to the new relay`);
  // Repairs covering each source sent there (a straddling repair is never sent): the first
  // sources after the move must be protected like any other, not by 1, 2, 3… repairs.
  const coverage = moved.map((seq) => got[other].repairs.filter(([first, last]) => first <= seq && seq <= last).length);
  const steady = coverage[Math.floor(moved.length / 2)];
  assert.ok(steady >= 2, `a source in mid-run is covered by ${steady} repairs`);
  const weak = coverage.slice(0, moved.length - 40).map((k, i) => ({ seq: moved[i], k })).filter((x) => x.k < steady / 2);
  assert.deepEqual(weak, [], `sources covered by fewer than half the ${steady} repairs of a mid-run source`);
});
