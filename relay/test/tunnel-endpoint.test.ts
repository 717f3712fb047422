/**
 * The tunnel endpoint's answers outside an open session: data for a session the
 * relay does not hold is answered with a Close saying SLIP_ERR_UNKNOWN_SESSION (so a
 * client whose relay restarted reopens at once), never larger than the data and
 * within the stateless limit for unauthenticated senders; and the Close the relay
 * sends to end a session it holds is MACed with that session's key, so a client can
 * tell it from a spoofed one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeControl } from '../../proto/src/control.js';
import { ErrorCode } from '../../proto/src/errors.js';
import { HEADER_BYTES, PacketType } from '../../proto/src/header.js';
import { Rng } from '../../proto/src/rng.js';
import { buildPacket, openRelayClose } from '../../proto/src/wire.js';
import { baseConfig, Harness, mintTicket, openLimits, openPacket, typeOf } from './support.js';

const client = { address: '198.51.100.77', port: 4000 };

test('data for an unknown session is answered with Close SLIP_ERR_UNKNOWN_SESSION (header-only when the data is smaller), never larger than the data', () => {
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

test('answers to unknown-session data go through the stateless limiter', () => {
  const h = new Harness(baseConfig({ limits: { ...openLimits, unauthenticatedPacketsPerSecond: 5 } }));
  const s = mintTicket(new Rng(8));
  let answers = 0;
  for (let i = 0; i < 40; i++) answers += h.deliver(h.tunnelId, client, buildPacket(PacketType.Data, s.high, s.low, i, new Uint8Array(200))).length;
  assert.equal(answers, 5);
});

test('the relay MACs its Close for an open session with the session key', () => {
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
