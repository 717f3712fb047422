import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ErrorCode } from '../src/errors.js';
import { Rng } from '../src/rng.js';
import { issueTicket, openSessionKey, rawPublicKey, ticketSigningKeyFromSeed, ticketVerifyKeyFromRaw, verifyTicket, type TicketInput } from '../src/ticket.js';

const rng = new Rng(2026);
const signingKey = ticketSigningKeyFromSeed(rng.fillBytes(new Uint8Array(32)));
const verifyKey = ticketVerifyKeyFromRaw(rawPublicKey(signingKey));
const otherKey = ticketVerifyKeyFromRaw(rawPublicKey(ticketSigningKeyFromSeed(rng.fillBytes(new Uint8Array(32)))));
const sealKey = rng.fillBytes(new Uint8Array(32));
const NOW = 1_795_000_000_000;

function input(overrides: Partial<TicketInput> = {}): TicketInput {
  return {
    sessionId: '0123456789abcdef',
    origin: 'eu-game-1:27015',
    issuedAtMs: NOW,
    expiresAtMs: NOW + 60_000,
    limits: { packetsPerSecond: 500, bytesPerSecond: 1_000_000 },
    sessionKey: rng.fillBytes(new Uint8Array(32)),
    sealNonce: rng.fillBytes(new Uint8Array(12)),
    ...overrides,
  };
}

test('a ticket verifies, carries its claims, and unseals its session key', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[0-9a-f]{16}$/), fc.string({ minLength: 1, maxLength: 100 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (sessionId, origin, sessionKey) => {
      const ticket = issueTicket(input({ sessionId, origin, sessionKey }), signingKey, sealKey);
      const result = verifyTicket(ticket, verifyKey, NOW + 1000);
      assert.ok(result.ok, result.ok ? '' : result.detail);
      assert.equal(result.claims.sessionId, sessionId);
      assert.equal(result.claims.origin, origin);
      assert.deepEqual(openSessionKey(result.claims, sealKey), sessionKey);
    }),
    { numRuns: 200 },
  );
});

test('expired, forged, tampered and foreign-key tickets are refused with typed codes', () => {
  const ticket = issueTicket(input(), signingKey, sealKey);
  const expired = verifyTicket(ticket, verifyKey, NOW + 60_000 + 31_000);
  assert.equal(expired.ok, false);
  assert.equal(!expired.ok && expired.code, ErrorCode.TicketExpired);
  // Within the clock-skew tolerance it still verifies.
  assert.equal(verifyTicket(ticket, verifyKey, NOW + 60_000 + 29_000).ok, true);
  assert.equal((verifyTicket(ticket, otherKey, NOW) as { code: string }).code, ErrorCode.TicketForged);
  for (let i = 0; i < ticket.length; i += 7) {
    const tampered = ticket.slice();
    tampered[i]! ^= 0x01;
    const result = verifyTicket(tampered, verifyKey, NOW);
    assert.equal(result.ok, false, `flipping byte ${i} must not verify`);
    assert.equal(!result.ok && result.code, ErrorCode.TicketForged);
  }
});

test('the sealed key does not open under another fleet key', () => {
  const result = verifyTicket(issueTicket(input(), signingKey, sealKey), verifyKey, NOW);
  assert.ok(result.ok);
  assert.equal(openSessionKey(result.claims, new Uint8Array(32)), undefined);
});

test('arbitrary bytes never throw and never verify', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const result = verifyTicket(bytes, verifyKey, NOW);
      assert.equal(result.ok, false);
    }),
    { numRuns: 3000 },
  );
});

test('a ticket issued further in the future than the clock skew is refused (TicketForged, with detail)', () => {
  const ticket = issueTicket(input({ issuedAtMs: NOW + 120_000, expiresAtMs: NOW + 600_000 }), signingKey, sealKey);
  const refused = verifyTicket(ticket, verifyKey, NOW, 30_000);
  assert.equal(refused.ok, false);
  assert.equal((refused as { code: string }).code, ErrorCode.TicketForged);
  assert.match((refused as { detail: string }).detail, /120 s in the future/);
  // Within the skew (an issuer clock a little ahead) it verifies.
  assert.equal(verifyTicket(issueTicket(input({ issuedAtMs: NOW + 20_000, expiresAtMs: NOW + 600_000 }), signingKey, sealKey), verifyKey, NOW, 30_000).ok, true);
});
