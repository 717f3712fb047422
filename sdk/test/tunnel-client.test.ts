/**
 * The sans-IO {@link TunnelClient} against a scripted relay (one that accepts opens and
 * answers probes): which Close and reject packets it believes (only those MACed with
 * the session key end a session; an unauthenticated SLIP_ERR_UNKNOWN_SESSION only
 * makes it reopen), which probe replies make it reopen (an UnknownSession status from
 * the probed address only), and the bounds it keeps (the queue before the first
 * session, the endpoint table as relays come and go).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeControl, encodeControl } from '../../proto/src/control.js';
import { ErrorCode } from '../../proto/src/errors.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../../proto/src/header.js';
import { buildControlPacket, buildPacket, PROBE_BODY_BYTES_WITH_STATUS, PROBE_STATUS_OFFSET, ProbeStatus, nodeHmacSha256, relayCloseMac } from '../../proto/src/wire.js';
import { TunnelClient, type TunnelClientEvent } from '../src/core/tunnel-client.js';

const HIGH = 0x01234567;
const LOW = 0x89abcdef;
const KEY = new Uint8Array(32).fill(7);
const A = { address: '10.0.0.1', port: 4433 };

/** One client against one scripted relay that accepts opens and answers probes. */
function openClient(): { c: TunnelClient; events: TunnelClientEvent[]; pump: (now: number) => { type: number; bytes: Uint8Array }[] } {
  const c = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: KEY, hmac: nodeHmacSha256, fecModes: ['off'], warmBackup: false });
  const events: TunnelClientEvent[] = [];
  const h = new PacketHeader();
  const pump = (now: number): { type: number; bytes: Uint8Array }[] => {
    const out: { type: number; bytes: Uint8Array }[] = [];
    for (let i = 0; i < 1000; i++) {
      for (let e = c.pollEvent(); e; e = c.pollEvent()) events.push(e);
      const t = c.pollTransmit();
      if (t === undefined) break;
      parseHeader(t.bytes, h);
      out.push({ type: h.type, bytes: t.bytes });
      if (h.type === PacketType.Probe) {
        const r = new Uint8Array(t.bytes);
        r[2] = PacketType.ProbeReply;
        c.handleDatagram(now, A, r);
      } else if (h.type === PacketType.Control) {
        const m = decodeControl(t.bytes.subarray(HEADER_BYTES));
        if (m.ok && m.message.type === 'sessionOpen') c.handleDatagram(now, A, buildControlPacket(HIGH, LOW, { type: 'sessionAccept', sessionId: '0123456789abcdef', fecMode: 'off' }));
      }
    }
    return out;
  };
  c.setCandidates(0, [{ id: 'A', tunnel: A, probe: A }]);
  pump(0);
  for (let now = 5; now <= 3000 && !c.isOpen; now += 5) {
    c.handleTimeout(now);
    pump(now);
  }
  assert.ok(c.isOpen, 'the scripted relay opened the session');
  return { c, events, pump };
}

function relayClose(reason: string, key: Uint8Array | undefined): Uint8Array {
  const body = encodeControl({ type: 'sessionReject', reason, message: 'x' });
  if (key === undefined) return buildPacket(PacketType.Close, HIGH, LOW, 0, body);
  const full = new Uint8Array(body.length + 16);
  full.set(body);
  full.set(relayCloseMac(key, HIGH, LOW, body), body.length);
  return buildPacket(PacketType.Close, HIGH, LOW, 0, full);
}

test('an unauthenticated (spoofed) Close or ticket reject for an open session is ignored; the relay-MACed Close ends it', () => {
  const { c, events, pump } = openClient();
  c.handleDatagram(3100, A, relayClose(ErrorCode.TicketRevoked, undefined));
  c.handleDatagram(3100, A, relayClose(ErrorCode.TicketRevoked, new Uint8Array(32).fill(9)));
  c.handleDatagram(3100, A, buildControlPacket(HIGH, LOW, { type: 'sessionReject', reason: ErrorCode.TicketForged, message: 'spoofed' }));
  pump(3100);
  assert.ok(c.isOpen, 'spoofs are ignored');
  assert.ok(!events.some((e) => e.type === 'failed'));
  c.handleDatagram(3200, A, relayClose(ErrorCode.TicketRevoked, KEY));
  pump(3200);
  assert.ok(!c.isOpen);
  const failed = events.find((e) => e.type === 'failed');
  assert.ok(failed && failed.type === 'failed' && failed.code === ErrorCode.TicketRevoked);
});

test('an unauthenticated SLIP_ERR_UNKNOWN_SESSION Close makes the client reopen (and nothing more)', () => {
  const { c, pump } = openClient();
  c.handleDatagram(3100, A, relayClose(ErrorCode.UnknownSession, undefined));
  const sent = pump(3100);
  assert.ok(sent.some((p) => p.type === PacketType.Control), 'a session open went out at once');
  assert.ok(c.isOpen, 'the scripted relay accepted it again');
});

test('a probe reply whose status says UnknownSession reopens the session only when it comes from the probed address', () => {
  const { c, pump } = openClient();
  const h = new PacketHeader();
  /** Runs the client's timers from `fromMs` until it sends a probe (left unanswered); the transmits before it are dropped. */
  const nextProbe = (fromMs: number): { nowMs: number; bytes: Uint8Array } => {
    for (let nowMs = fromMs; nowMs < fromMs + 2000; nowMs += 5) {
      c.handleTimeout(nowMs);
      for (let t = c.pollTransmit(); t !== undefined; t = c.pollTransmit()) {
        parseHeader(t.bytes, h);
        if (h.type === PacketType.Probe) return { nowMs, bytes: t.bytes };
      }
    }
    return assert.fail('no probe within 2 s');
  };
  const unknownSessionReply = (probe: Uint8Array): Uint8Array => {
    const reply = new Uint8Array(probe);
    reply[2] = PacketType.ProbeReply;
    reply[HEADER_BYTES + PROBE_STATUS_OFFSET] = ProbeStatus.UnknownSession;
    return reply;
  };
  const opensSent = (nowMs: number): number => pump(nowMs).filter((p) => p.type === PacketType.Control && decodeControl(p.bytes.subarray(HEADER_BYTES)).ok).length;
  // A forger who guessed the probe's sequence, from its own address: ignored.
  const forged = nextProbe(3100);
  assert.equal(forged.bytes.length, HEADER_BYTES + PROBE_BODY_BYTES_WITH_STATUS, 'the SDK probes with room for the status byte');
  c.handleDatagram(forged.nowMs + 1, { address: '10.9.9.9', port: A.port }, unknownSessionReply(forged.bytes));
  assert.equal(opensSent(forged.nowMs + 1), 0, 'a reply from another address does not reopen');
  // The relay itself (it restarted): the session is opened again at once.
  const real = nextProbe(forged.nowMs + 5);
  c.handleDatagram(real.nowMs + 1, A, unknownSessionReply(real.bytes));
  assert.equal(opensSent(real.nowMs + 1), 1, 'the relay\'s reply re-sends the open');
  assert.ok(c.isOpen, 'the scripted relay accepted it again');
});

test('send returns false when the queue before the first session drops a datagram', () => {
  const c = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: KEY, hmac: nodeHmacSha256, fecModes: ['off'] });
  let dropped = 0;
  for (let i = 0; i < 100; i++) if (!c.send(0, new Uint8Array(10))) dropped++;
  assert.equal(dropped, 100 - 64);
});

test('relays that leave the candidate list leave no endpoint entries behind', () => {
  const c = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: KEY, hmac: nodeHmacSha256, fecModes: ['off'] });
  for (let i = 0; i < 50; i++) c.setCandidates(i, [{ id: `r${i}`, tunnel: { address: `10.0.${i}.1`, port: 4433 }, probe: { address: `10.0.${i}.1`, port: 4434 } }]);
  const byEndpoint = (c as unknown as { byEndpoint: Map<string, unknown> }).byEndpoint;
  assert.ok(byEndpoint.size <= 2 * 2, `${byEndpoint.size} entries held`);
});
