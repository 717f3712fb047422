/**
 * Regression tests for the defects a code review found in the relay core; each test
 * is named after its defect.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeControl } from '../../proto/src/control.js';
import { ErrorCode } from '../../proto/src/errors.js';
import { HEADER_BYTES, PacketType } from '../../proto/src/header.js';
import { Rng } from '../../proto/src/rng.js';
import { DropReason } from '../src/core/relay-core.js';
import { buildControlPacket, buildPacket, buildProbe, openRelayClose } from '../../proto/src/wire.js';
import { baseConfig, controlOf, Harness, mintTicket, openLimits, typeOf } from './support.js';

const client = { address: '198.51.100.77', port: 4000 };

function openPacket(s: { high: number; low: number; ticket: Uint8Array }): Uint8Array {
  return buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'] });
}

test('defect 1: a datagram from source port 0 is dropped before anything else, on every socket', () => {
  const h = new Harness();
  const zero = { address: '198.51.100.5', port: 0 };
  assert.deepEqual(h.deliver(h.tunnelId, zero, buildProbe(1, 2, 0, 0)), []);
  assert.deepEqual(h.deliver(h.listenerIds.get(27015)!, zero, Uint8Array.of(1, 2, 3)), []);
  const s = mintTicket(new Rng(3));
  assert.deepEqual(h.deliver(h.tunnelId, zero, openPacket(s)), []);
  assert.equal(h.core.sessionCount, 0);
  assert.equal(h.core.sourceCount, 0);
  assert.equal(h.core.drops[DropReason.SourcePortZero], 3);
});

test('defect 4: spoofed probes and opens from many addresses hold no per-source state; a valid ticket still opens a session', () => {
  const h = new Harness(baseConfig({ limits: { ...openLimits, sessionsMax: 1000 } }));
  const limit = 1000 * 2 + 1024;
  const bogus = mintTicket(new Rng(9));
  for (let i = 0; i < limit + 10; i++) {
    const from = { address: `203.0.${i >> 8}.${i & 255}`, port: 1000 };
    h.deliver(h.tunnelId, from, buildProbe(1, 2, 0, 0));
    // An open with a ticket for another session id: refused after verification, no entry made.
    const wrong = buildControlPacket(bogus.high ^ 1, bogus.low, { type: 'sessionOpen', ticket: bogus.ticket, fecModes: ['off'] });
    h.deliver(h.tunnelId, from, wrong);
  }
  assert.equal(h.core.sourceCount, 0, 'unauthenticated senders cost no per-source entry');
  const s = mintTicket(new Rng(5));
  const answer = h.deliver(h.tunnelId, client, openPacket(s));
  assert.equal(answer.length, 1);
  assert.equal(controlOf(answer[0]!.bytes)?.type, 'sessionAccept');
  assert.equal(h.core.tunnelSessionCount, 1);
  assert.equal(h.core.sourceCount, 1);
});

test('defect 4: a full per-source table evicts idle entries (least recently seen first) instead of refusing', () => {
  // sessionsMax 2 → a table of 2 × 2 + 1024 entries. One L4 flow opens; the other
  // senders hit the session cap but leave idle entries behind until the sweep.
  const limits = { ...openLimits, sessionsMax: 2 };
  const h = new Harness(baseConfig({ limits }));
  const listener = h.listenerIds.get(27015)!;
  for (let i = 0; i < 1100; i++) h.deliver(listener, { address: `203.0.${i >> 8}.${i & 255}`, port: 1000 }, Uint8Array.of(1));
  assert.equal(h.core.udpFlowCount, 2);
  // Removing the rule ends both flows: every entry is now idle, and the table is full.
  h.core.reconfigure(h.nowMs, baseConfig({ limits, rules: [] }));
  h.drain();
  assert.equal(h.core.sessionCount, 0);
  assert.equal(h.core.sourceCount, 2 * 2 + 1024, 'the table is full');
  const s = mintTicket(new Rng(6));
  const answer = h.deliver(h.tunnelId, client, openPacket(s));
  assert.equal(controlOf(answer[0]!.bytes)?.type, 'sessionAccept');
});

test('defect 4: unauthenticated packets are rate-limited statelessly, per keyed-hash bucket', () => {
  const h = new Harness(baseConfig({ limits: { ...openLimits, unauthenticatedPacketsPerSecond: 10 } }));
  let answered = 0;
  for (let i = 0; i < 50; i++) answered += h.deliver(h.tunnelId, client, buildProbe(1, 2, i, 0)).length;
  assert.equal(answered, 10, 'one second of burst at 10/s');
  assert.equal(h.core.sourceCount, 0);
  h.advance(h.nowMs + 1000);
  assert.equal(h.deliver(h.tunnelId, client, buildProbe(1, 2, 99, 0)).length, 1, 'the bucket refills');
});

test('defect 5: data for an unknown session is answered with Close SLIP_ERR_UNKNOWN_SESSION (header-only when the data is smaller), never larger than the data', () => {
  const h = new Harness();
  const s = mintTicket(new Rng(7));
  const big = h.deliver(h.tunnelId, client, buildPacket(PacketType.Data, s.high, s.low, 1, new Uint8Array(200)));
  assert.equal(big.length, 1);
  assert.equal(typeOf(big[0]!.bytes), PacketType.Close);
  assert.ok(big[0]!.bytes.length <= HEADER_BYTES + 200);
  const decoded = decodeControl(big[0]!.bytes.subarray(HEADER_BYTES));
  assert.ok(decoded.ok && decoded.message.type === 'sessionReject' && decoded.message.reason === ErrorCode.UnknownSession);
  // Packets too small for that Close (a bare header; 8 bytes of game input) get a
  // header-only Close: the same meaning in 24 bytes, never more than they were.
  for (const payloadBytes of [0, 8]) {
    const small = h.deliver(h.tunnelId, client, buildPacket(PacketType.Data, s.high, s.low, 2, new Uint8Array(payloadBytes)));
    assert.equal(small.length, 1, `${payloadBytes}-byte payload`);
    assert.equal(typeOf(small[0]!.bytes), PacketType.Close);
    assert.equal(small[0]!.bytes.length, HEADER_BYTES);
  }
  assert.ok(h.core.unauthenticatedBytesOut <= h.core.unauthenticatedBytesIn);
  assert.equal(h.core.sourceCount, 0);
});

test('defect 5: answers to unknown-session data go through the stateless limiter', () => {
  const h = new Harness(baseConfig({ limits: { ...openLimits, unauthenticatedPacketsPerSecond: 5 } }));
  const s = mintTicket(new Rng(8));
  let answers = 0;
  for (let i = 0; i < 40; i++) answers += h.deliver(h.tunnelId, client, buildPacket(PacketType.Data, s.high, s.low, i, new Uint8Array(200))).length;
  assert.equal(answers, 5);
});

test('defect 6: the relay MACs its Close for an open session with the session key', () => {
  const h = new Harness();
  const s = mintTicket(new Rng(10));
  h.deliver(h.tunnelId, client, openPacket(s));
  assert.equal(h.core.tunnelSessionCount, 1);
  h.core.setRevoked(h.nowMs, new Set([s.hex]));
  const close = h.drain().find((x) => typeOf(x.bytes) === PacketType.Close)!;
  const body = close.bytes.subarray(HEADER_BYTES);
  const reason = openRelayClose(s.key, s.high, s.low, body);
  assert.ok(reason !== undefined, 'verifies with the session key');
  const decoded = decodeControl(reason);
  assert.ok(decoded.ok && decoded.message.type === 'sessionReject' && decoded.message.reason === ErrorCode.TicketRevoked);
  const other = mintTicket(new Rng(11));
  assert.equal(openRelayClose(other.key, s.high, s.low, body), undefined, 'another key does not verify it');
  const tampered = body.slice();
  tampered[0] = tampered[0]! ^ 1;
  assert.equal(openRelayClose(s.key, s.high, s.low, tampered), undefined, 'a changed reason does not verify');
});
