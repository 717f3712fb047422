/**
 * The per-source front door every datagram passes before any mode sees it: a source
 * port of 0 is dropped first, on every socket; senders that have not authenticated
 * (probes, opens with a ticket that fails, packets of sessions the relay does not
 * hold) cost no per-source entry and share one stateless, keyed-hash rate limit; and
 * a full per-source table makes room by evicting its idle entries, least recently
 * seen first, instead of refusing newcomers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../proto/src/rng.js';
import { DropReason } from '../src/core/relay-core.js';
import { buildControlPacket, buildProbe } from '../../proto/src/wire.js';
import { baseConfig, controlOf, Harness, mintTicket, openLimits, openPacket } from './support.js';

const client = { address: '198.51.100.77', port: 4000 };

test('a datagram from source port 0 is dropped before anything else, on every socket', () => {
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

test('spoofed probes and opens from many addresses hold no per-source state; a valid ticket still opens a session', () => {
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

test('a full per-source table evicts idle entries (least recently seen first) instead of refusing', () => {
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

test('unauthenticated packets are rate-limited statelessly, per keyed-hash bucket', () => {
  const h = new Harness(baseConfig({ limits: { ...openLimits, unauthenticatedPacketsPerSecond: 10 } }));
  let answered = 0;
  for (let i = 0; i < 50; i++) answered += h.deliver(h.tunnelId, client, buildProbe(1, 2, i, 0)).length;
  assert.equal(answered, 10, 'one second of burst at 10/s');
  assert.equal(h.core.sourceCount, 0);
  h.advance(h.nowMs + 1000);
  assert.equal(h.deliver(h.tunnelId, client, buildProbe(1, 2, 99, 0)).length, 1, 'the bucket refills');
});
