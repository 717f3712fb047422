/** Tickets that name an exit relay: the claim round-trips, is covered by the signature, and tickets without one are unchanged. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { decodeControl, encodeControl } from '../src/control.js';
import { Rng } from '../src/rng.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed, ticketVerifyKeyFromRaw, verifyTicket, type TicketInput } from '../src/ticket.js';

const rng = new Rng(12);
const signing = ticketSigningKeyFromSeed(rng.fillBytes(new Uint8Array(32)));
const verifyKey = ticketVerifyKeyFromRaw(rawPublicKey(signing));
const seal = rng.fillBytes(new Uint8Array(32));
const input = (): TicketInput => ({ sessionId: '0123456789abcdef', origin: 'game', issuedAtMs: 1000, expiresAtMs: 60_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: new Uint8Array(32).fill(1), sealNonce: new Uint8Array(12).fill(2) });

test('the exit claim round-trips and is signed; a ticket without one carries none', () => {
  const withExit = issueTicket({ ...input(), exit: { relayId: 'fra-exit', address: '203.0.113.7:4433' } }, signing, seal);
  const v = verifyTicket(withExit, verifyKey, 2000);
  assert.ok(v.ok);
  assert.deepEqual(v.claims.exit, { relayId: 'fra-exit', address: '203.0.113.7:4433' });
  const without = verifyTicket(issueTicket(input(), signing, seal), verifyKey, 2000);
  assert.ok(without.ok);
  assert.equal(without.claims.exit, undefined);
  // Changing the exit breaks the signature: an entry forwards only where the coordinator said.
  const claimsLength = (withExit[0]! << 8) | withExit[1]!;
  const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
  const claims = packr.unpack(withExit.subarray(2, 2 + claimsLength)) as Record<string, unknown>;
  const forgedClaims = packr.pack({ ...claims, xaddr: '198.51.100.66:53' });
  const forged = new Uint8Array(2 + forgedClaims.length + 64);
  forged[0] = forgedClaims.length >> 8;
  forged[1] = forgedClaims.length & 0xff;
  forged.set(forgedClaims, 2);
  forged.set(withExit.subarray(2 + claimsLength), 2 + forgedClaims.length);
  assert.equal(verifyTicket(forged, verifyKey, 2000).ok, false);
});

test('invalid exits are refused when issuing', () => {
  for (const exit of [{ relayId: '', address: '1.2.3.4:5' }, { relayId: 'a b', address: '1.2.3.4:5' }, { relayId: 'x', address: '' }, { relayId: 'x'.repeat(65), address: '1.2.3.4:5' }]) {
    assert.throws(() => issueTicket({ ...input(), exit }, signing, seal), RangeError, JSON.stringify(exit));
  }
});

test('sessionAccept carries an optional exit relay id', () => {
  const m = decodeControl(encodeControl({ type: 'sessionAccept', sessionId: '0123456789abcdef', fecMode: 'dup', exit: 'fra-exit' }));
  assert.ok(m.ok && m.message.type === 'sessionAccept' && m.message.exit === 'fra-exit');
  const plain = decodeControl(encodeControl({ type: 'sessionAccept', sessionId: '0123456789abcdef', fecMode: 'dup' }));
  assert.ok(plain.ok && plain.message.type === 'sessionAccept' && plain.message.exit === undefined);
  assert.throws(() => encodeControl({ type: 'sessionAccept', sessionId: '0123456789abcdef', fecMode: 'dup', exit: 'no spaces' }), RangeError);
});
