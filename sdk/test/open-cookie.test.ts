/**
 * The SDK's side of a relay's stateless retry: a `sessionRetry {cookie}` answering an
 * open makes the client send its open again at once with the cookie (which the relay
 * then verifies); opens carry no cookie unless a relay asked (older relays refuse the
 * field); spoofed retries cannot make the client flood the relay; after the accept,
 * keepalives carry no cookie.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeControl, type ControlMessageFields } from '../../proto/src/control.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../../proto/src/header.js';
import { buildControlPacket, nodeHmacSha256 } from '../../proto/src/wire.js';
import { KEEPALIVE_MS } from '../src/core/constants.js';
import { TunnelClient } from '../src/core/tunnel-client.js';

const HIGH = 0x01234567;
const LOW = 0x89abcdef;
const A = { address: '10.0.0.1', port: 4433 };
const COOKIE = new Uint8Array(16).fill(0xc0);

/** The opens `c` has queued, in order (other packets: probes answered, the rest dropped). */
function drainOpens(c: TunnelClient, now: number): ControlMessageFields['sessionOpen'][] {
  const h = new PacketHeader();
  const opens: ControlMessageFields['sessionOpen'][] = [];
  for (let i = 0; i < 1000; i++) {
    for (let e = c.pollEvent(); e; e = c.pollEvent());
    const t = c.pollTransmit();
    if (t === undefined) break;
    parseHeader(t.bytes, h);
    if (h.type === PacketType.Probe) {
      const r = new Uint8Array(t.bytes);
      r[2] = PacketType.ProbeReply;
      c.handleDatagram(now, A, r);
    } else if (h.type === PacketType.Control) {
      const m = decodeControl(t.bytes.subarray(HEADER_BYTES));
      if (m.ok && m.message.type === 'sessionOpen') opens.push(m.message);
    }
  }
  return opens;
}

const retry = (cookie: Uint8Array): Uint8Array => buildControlPacket(HIGH, LOW, { type: 'sessionRetry', cookie });
const accept = (): Uint8Array => buildControlPacket(HIGH, LOW, { type: 'sessionAccept', sessionId: '0123456789abcdef', fecMode: 'off' });

test('a sessionRetry makes the client open again at once with the cookie; spoofed retries cannot make it flood; keepalives carry no cookie', () => {
  const c = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: new Uint8Array(32).fill(7), hmac: nodeHmacSha256, fecModes: ['off'], warmBackup: false });
  c.setCandidates(0, [{ id: 'A', tunnel: A, probe: A }]);
  let now = 0;
  let first: ControlMessageFields['sessionOpen'] | undefined;
  for (; now <= 3000 && first === undefined; now += 5) {
    c.handleTimeout(now);
    first = drainOpens(c, now)[0];
  }
  assert.ok(first !== undefined, 'an open went out');
  assert.equal(first.cookie, undefined, 'no cookie unless a relay asked');

  // The relay is under load: it answers with a cookie, and the open goes again at once, with it.
  c.handleDatagram(now, A, retry(COOKIE));
  const echoed = drainOpens(c, now);
  assert.equal(echoed.length, 1);
  assert.deepEqual(echoed[0]!.cookie, COOKIE);

  // 100 more retries in the same instant (a spoofer's): not one open more.
  for (let i = 0; i < 100; i++) c.handleDatagram(now, A, retry(new Uint8Array(16).fill(i)));
  assert.equal(drainOpens(c, now).length, 0);

  // The relay accepts the open with the cookie; later keepalive opens carry none.
  c.handleDatagram(now, A, accept());
  drainOpens(c, now);
  assert.ok(c.isOpen);
  let keepalive: ControlMessageFields['sessionOpen'] | undefined;
  for (const until = now + 2 * KEEPALIVE_MS; now <= until && keepalive === undefined; now += 100) {
    c.handleTimeout(now);
    keepalive = drainOpens(c, now)[0];
  }
  assert.ok(keepalive !== undefined, 'a keepalive open went out');
  assert.equal(keepalive.cookie, undefined);
});
