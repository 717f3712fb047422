/** The sans-IO relay identity core: which enrollment wins, and the replay guard (window, nonces, bound). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RelayIdentities } from '../src/core/relay-identities.js';

const key = (n: number): string => Buffer.alloc(32, n).toString('base64');
const nonce = (n: number): string => n.toString(16).padStart(32, '0');

test('the latest enrollment wins; a revocation of it wins over it; an older record changes nothing', () => {
  const ids = new RelayIdentities();
  assert.equal(ids.apply({ relayId: 'a', publicKey: key(1), enrolledAtMs: 100 }), true);
  assert.equal(ids.apply({ relayId: 'a', publicKey: key(1), enrolledAtMs: 100 }), false, 'the same record again');
  assert.equal(ids.apply({ relayId: 'a', publicKey: key(9), enrolledAtMs: 50 }), false, 'an older enrollment');
  assert.equal(ids.apply({ relayId: 'a', publicKey: key(1), enrolledAtMs: 100, revokedAtMs: 150 }), true);
  assert.equal(ids.apply({ relayId: 'a', publicKey: key(1), enrolledAtMs: 100 }), false, 'an unrevoked copy does not undo the revocation');
  assert.equal(ids.get('a')?.revokedAtMs, 150);
  assert.equal(ids.apply({ relayId: 'a', publicKey: key(2), enrolledAtMs: 200 }), true, 're-enrolled with a new token and key');
  assert.equal(ids.get('a')?.revokedAtMs, undefined);
  assert.deepEqual(ids.list().map((i) => i.relayId), ['a']);
});

test('replay guard: the window both ways, each nonce once per relay, a bounded nonce table that frees itself as the window moves', () => {
  const ids = new RelayIdentities(60_000, 3);
  const now = 1_000_000;
  assert.deepEqual(ids.admit(now, 'a', now - 60_001, nonce(1)), { ok: false, refusal: 'stale' });
  assert.deepEqual(ids.admit(now, 'a', now + 60_001, nonce(1)), { ok: false, refusal: 'stale' });
  assert.deepEqual(ids.admit(now, 'a', now - 60_000, nonce(1)), { ok: true });
  assert.deepEqual(ids.admit(now, 'a', now, nonce(1)), { ok: false, refusal: 'replayed' });
  assert.deepEqual(ids.admit(now, 'b', now, nonce(1)), { ok: true }, 'nonces are per relay');
  assert.deepEqual(ids.admit(now, 'a', now, nonce(2)), { ok: true });
  assert.deepEqual(ids.admit(now, 'a', now, nonce(3)), { ok: true });
  assert.deepEqual(ids.admit(now, 'a', now, nonce(4)), { ok: false, refusal: 'busy' });
  // Once the window has moved past them, old nonces are forgotten and room is made.
  const later = now + 120_001;
  assert.deepEqual(ids.admit(later, 'a', later, nonce(4)), { ok: true });
  // A forgotten nonce can no longer pass the window: its old timestamp is stale now.
  assert.deepEqual(ids.admit(later, 'a', now, nonce(1)), { ok: false, refusal: 'stale' });
});
