/** Tickets that carry a player id: the claim round-trips and is signed; bad ids are refused when issuing and when verifying; the control open's `client` field. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { sign } from 'node:crypto';
import { decodeControl, encodeControl } from '../src/control.js';
import { ParseFailure } from '../src/errors.js';
import { Rng } from '../src/rng.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed, ticketVerifyKeyFromRaw, verifyTicket, type TicketInput } from '../src/ticket.js';

const rng = new Rng(13);
const signing = ticketSigningKeyFromSeed(rng.fillBytes(new Uint8Array(32)));
const verifyKey = ticketVerifyKeyFromRaw(rawPublicKey(signing));
const seal = rng.fillBytes(new Uint8Array(32));
const input = (): TicketInput => ({ sessionId: '0123456789abcdef', origin: 'game', issuedAtMs: 1000, expiresAtMs: 60_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: new Uint8Array(32).fill(1), sealNonce: new Uint8Array(12).fill(2) });
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** A ticket signed by the real key over `claims` as given (what a buggy issuer could sign). */
function signedWith(claims: Record<string, unknown>): Uint8Array {
  const packed = packr.pack(claims);
  const signed = Buffer.alloc(2 + packed.length);
  signed.writeUInt16BE(packed.length, 0);
  packed.copy(signed, 2);
  return new Uint8Array(Buffer.concat([signed, sign(null, signed, signing)]));
}

test('the player id round-trips signed; a ticket without one is byte-identical to before and carries none', () => {
  const v = verifyTicket(issueTicket({ ...input(), playerId: 'steam:7656119' }, signing, seal), verifyKey, 2000);
  assert.ok(v.ok);
  assert.equal(v.claims.playerId, 'steam:7656119');
  const plain = issueTicket(input(), signing, seal);
  const claims = packr.unpack(plain.subarray(2, 2 + ((plain[0]! << 8) | plain[1]!))) as Record<string, unknown>;
  assert.equal('pid' in claims, false);
  const without = verifyTicket(plain, verifyKey, 2000);
  assert.ok(without.ok);
  assert.equal(without.claims.playerId, undefined);
});

test('bad player ids: issueTicket throws RangeError; a signed ticket holding one is refused as BadShape', () => {
  for (const playerId of ['', 'a b', 'é', 'x'.repeat(129), 'tab\there']) {
    assert.throws(() => issueTicket({ ...input(), playerId }, signing, seal), RangeError, JSON.stringify(playerId));
  }
  const good = packr.unpack(issueTicket(input(), signing, seal).subarray(2, -64)) as Record<string, unknown>;
  for (const pid of ['', 'a b', 42]) {
    const v = verifyTicket(signedWith({ ...good, pid }), verifyKey, 2000);
    assert.ok(!v.ok && v.parseFailure === ParseFailure.BadShape && v.detail === 'playerId', JSON.stringify(pid));
  }
});

test("sessionOpen's client field: IP:port or [IPv6]:port, at most 64 characters", () => {
  const ticket = new Uint8Array(80);
  for (const client of ['198.51.100.7:40001', '[2001:db8::7]:1']) {
    const d = decodeControl(encodeControl({ type: 'sessionOpen', ticket, fecModes: ['off'], client }));
    assert.ok(d.ok && d.message.type === 'sessionOpen' && d.message.client === client);
  }
  for (const client of ['example.com:1', '1.2.3.4', '2001:db8::7:1', `[${'1:'.repeat(40)}]:1`]) {
    assert.throws(() => encodeControl({ type: 'sessionOpen', ticket, fecModes: ['off'], client }), RangeError, client);
  }
});
