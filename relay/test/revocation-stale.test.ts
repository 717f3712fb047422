/**
 * The tunnel endpoint's rule for a stale revocation list (tunnel.revocationMaxAgeMs),
 * driven directly: a relay that follows a coordinator feed and holds no list newer than
 * the limit refuses new sessions with SLIP_ERR_RELAY_REVOCATIONS_STALE (policy `refuse`)
 * or admits and counts them (policy `admit`); a list the feed confirmed (or a persisted
 * one) within the limit admits; without a feed the list never goes stale.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode } from '../../proto/src/errors.js';
import { Rng } from '../../proto/src/rng.js';
import { baseConfig, controlOf, Harness, mintTicket, openPacket, tunnelSpec, WALL_EPOCH_MS } from './support.js';

const client = { address: '198.51.100.9', port: 4000 };

/** The answer to an open with a fresh ticket: `accept` or the refusal's code. */
function openWith(h: Harness, rng: Rng): string {
  const sent = h.deliver(h.tunnelId, client, openPacket(mintTicket(rng, { expiresInMs: 3_600_000 })));
  const message = sent.map((s) => controlOf(s.bytes)).find((m) => m !== undefined);
  assert.ok(message, 'an answer');
  return message.type === 'sessionAccept' ? 'accept' : (message as { reason: string }).reason;
}

test('with policy refuse, a relay with no current list refuses opens until the feed answers, and again once the list is older than maxAgeMs', () => {
  const h = new Harness(baseConfig({ tunnel: tunnelSpec({ revocationFeed: { maxAgeMs: 10_000, stalePolicy: 'refuse' } }) }));
  const rng = new Rng(3);
  assert.equal(openWith(h, rng), ErrorCode.RelayRevocationsStale, 'no list yet');
  assert.deepEqual({ stale: h.core.revocationFeedState.stale, ageMs: h.core.revocationFeedState.ageMs }, { stale: true, ageMs: Number.POSITIVE_INFINITY });
  h.core.setRevocationsCurrent(WALL_EPOCH_MS + h.nowMs);
  assert.equal(openWith(h, rng), 'accept', 'the feed answered');
  h.advance(10_000);
  assert.equal(openWith(h, rng), 'accept', 'exactly maxAgeMs old is still current');
  h.advance(10_001);
  assert.equal(openWith(h, rng), ErrorCode.RelayRevocationsStale, 'older than maxAgeMs');
  h.core.setRevocationsCurrent(WALL_EPOCH_MS);
  assert.equal(h.core.revocationFeedState.stale, true, 'the time never moves back');
  assert.deepEqual({ refused: h.core.revocationFeedState.staleRefused, admitted: h.core.revocationFeedState.staleAdmitted }, { refused: 2, admitted: 0 });
});

test('with policy admit, a stale relay admits and counts; a revoked ticket stays refused either way', () => {
  const h = new Harness(baseConfig({ tunnel: tunnelSpec({ revocationFeed: { maxAgeMs: 10_000, stalePolicy: 'admit' } }) }));
  const rng = new Rng(4);
  assert.equal(openWith(h, rng), 'accept');
  assert.equal(h.core.revocationFeedState.staleAdmitted, 1);
  const revoked = mintTicket(rng, { expiresInMs: 3_600_000 });
  h.core.revoke(h.nowMs, [revoked.hex], WALL_EPOCH_MS + 3_600_000);
  const answer = h.deliver(h.tunnelId, client, openPacket(revoked)).map((s) => controlOf(s.bytes)).find((m) => m !== undefined);
  assert.equal((answer as { reason: string }).reason, ErrorCode.TicketRevoked);
});

test('without a feed (no tunnel.coordinatorUrl) the list never goes stale', () => {
  const h = new Harness();
  assert.equal(openWith(h, new Rng(5)), 'accept');
  assert.equal(h.core.revocationFeedState.stale, false);
  assert.equal(h.core.revocationFeedState.followed, false);
});
