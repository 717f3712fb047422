/**
 * The relay's revocation-feed follower, driven directly (sans-IO): the cursor, the rewind
 * after a failure, the backoff and the duplicate filter of relay/src/core/revocation-feed.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REVOCATION_FEED_BACKOFF_MS_MAX, REVOCATION_FEED_BACKOFF_MS_MIN, RevocationFeedCore, type RevocationFeedEvent, type RevocationFeedRequest } from '../src/core/revocation-feed.js';

const entry = (sessionId: string, expiresAtMs = 2e12) => ({ sessionId, revokedAtMs: 1.7e12, expiresAtMs });
const down = { ok: false as const, failure: { status: undefined, code: undefined, message: 'fetch failed' } };

function next(core: RevocationFeedCore): RevocationFeedRequest {
  const r = core.pollRequest();
  assert.ok(r, 'a poll');
  return r;
}

function events(core: RevocationFeedCore): RevocationFeedEvent[] {
  const out: RevocationFeedEvent[] = [];
  for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) out.push(e);
  return out;
}

test('polls from the cursor, moves it to each page\'s, and asks again at once', () => {
  const core = new RevocationFeedCore({ sinceMs: 5, waitMs: 1000 });
  core.start();
  const first = next(core);
  assert.deepEqual({ sinceMs: first.sinceMs, waitMs: first.waitMs }, { sinceMs: 5, waitMs: 0 }, 'the first poll does not wait');
  core.handleResponse(0, 1.7e12, first.id, { ok: true, body: { cursorMs: 40_000, revocations: [entry('00000000000000aa')] } });
  assert.deepEqual(events(core), [
    { type: 'revoked', revocations: [entry('00000000000000aa')] },
    { type: 'answered', wallNowMs: 1.7e12, cursorMs: 40_000 },
  ]);
  const second = next(core);
  assert.deepEqual({ sinceMs: second.sinceMs, waitMs: second.waitMs }, { sinceMs: 40_000, waitMs: 1000 }, 'later polls long-poll');
  assert.equal(core.pollTimeout(), undefined);
});

test('a failed poll rewinds the cursor by the overlap and retries after a backoff from 200 ms doubling to 5 s; the rewind reports nothing twice', () => {
  const core = new RevocationFeedCore({ cursorOverlapMs: 10_000 });
  core.start();
  core.handleResponse(0, 1.7e12, next(core).id, { ok: true, body: { cursorMs: 50_000, revocations: [entry('00000000000000aa')] } });
  events(core);
  let now = 0;
  const waits: number[] = [];
  for (let i = 0; i < 7; i++) {
    core.handleResponse(now, 1.7e12, next(core).id, down);
    const at = core.pollTimeout()!;
    waits.push(at - now);
    now = at;
    core.handleTimeout(now);
  }
  assert.deepEqual(waits, [REVOCATION_FEED_BACKOFF_MS_MIN, 400, 800, 1600, 3200, REVOCATION_FEED_BACKOFF_MS_MAX, REVOCATION_FEED_BACKOFF_MS_MAX]);
  assert.deepEqual(events(core)[0], { type: 'failed', reason: 'fetch failed' });
  const retry = next(core);
  assert.equal(retry.sinceMs, 0, 'rewound (never below 0)');
  assert.equal(retry.waitMs, 0, 'the first poll after a failure does not wait: the relay learns at once that its list is current');
  core.handleResponse(now, 1.7e12, retry.id, { ok: true, body: { cursorMs: 60_000, revocations: [entry('00000000000000aa'), entry('00000000000000bb')] } });
  assert.deepEqual(events(core), [{ type: 'revoked', revocations: [entry('00000000000000bb')] }, { type: 'answered', wallNowMs: 1.7e12, cursorMs: 60_000 }], 'aa was reported before');
  core.handleResponse(now, 1.7e12, next(core).id, down);
  assert.equal(core.pollTimeout(), now + REVOCATION_FEED_BACKOFF_MS_MIN, 'a success resets the backoff');
});

test('a session is reported again once its earlier revocation expired; stop ignores late answers', () => {
  const core = new RevocationFeedCore();
  core.start();
  core.handleResponse(0, 1000, next(core).id, { ok: true, body: { cursorMs: 1, revocations: [entry('00000000000000aa', 2000)] } });
  events(core);
  core.handleResponse(0, 3000, next(core).id, { ok: true, body: { cursorMs: 2, revocations: [entry('00000000000000aa', 9000)] } });
  assert.equal(events(core).filter((e) => e.type === 'revoked').length, 1);
  const late = next(core);
  core.stop();
  core.handleResponse(0, 3000, late.id, { ok: true, body: { cursorMs: 3, revocations: [entry('00000000000000cc')] } });
  assert.deepEqual(events(core), []);
  assert.equal(core.pollRequest(), undefined);
});
