/**
 * The production driver of the sans-IO {@link RevocationFeedCore}: it carries the core's
 * long polls to the coordinator with {@link CoordinatorClient.revocations}, feeds the
 * answers back with the wall clock, arms one timer for the retry after a failure, and
 * hands revoked sessions to the relay. The cursor, the rewind after a failure, the backoff
 * and the duplicate filter are the core's.
 */
import { performance } from 'node:perf_hooks';
import type { RevocationEntry } from '../../proto/src/api/contract.js';
import { CoordinatorApiError, type CoordinatorClient } from '../../kit/coordinator-client.js';
import { RevocationFeedCore, type RevocationFeedInit } from './core/revocation-feed.js';

/** A running revocation follower. */
export interface RevocationFeedFollower {
  /** Stops following; idempotent. */
  close(): void;
}

/**
 * Follows the coordinator's revocation feed until closed, calling `onRevoked` with each
 * batch of sessions not reported before and `onError` with the reason of each failed
 * poll (the follower retries with backoff), and `onAnswered` after each answer (the list
 * is complete as of `wallNowMs`, Unix ms, up to the feed's `cursorMs`). A handler that
 * throws is reported through `onError` and the feed goes on.
 */
export function followRevocationFeed(
  client: CoordinatorClient,
  onRevoked: (revocations: readonly RevocationEntry[]) => void,
  onError: (reason: string) => void,
  init: RevocationFeedInit = {},
  onAnswered: (wallNowMs: number, cursorMs: number) => void = () => {},
): RevocationFeedFollower {
  const core = new RevocationFeedCore(init);
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const flush = (): void => {
    if (closed) return;
    for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) {
      // A handler that throws must not stop the feed (this runs inside a request's
      // promise callback, where a throw would end the process as an unhandled rejection).
      try {
        if (e.type === 'revoked') onRevoked(e.revocations);
        else if (e.type === 'answered') onAnswered(e.wallNowMs, e.cursorMs);
        else onError(e.reason);
      } catch (error) {
        if (e.type !== 'failed') reportHandlerFailure(onError, error);
      }
    }
    for (let r = core.pollRequest(); r !== undefined; r = core.pollRequest()) {
      const id = r.id;
      client.revocations(r.sinceMs, r.waitMs, controller.signal).then(
        (page) => {
          core.handleResponse(performance.now(), Date.now(), id, { ok: true, body: page });
          flush();
        },
        (error: unknown) => {
          if (closed) return;
          const failure = error instanceof CoordinatorApiError ? { status: error.status, code: error.code, message: error.message } : { status: undefined, code: undefined, message: error instanceof Error ? error.message : String(error) };
          core.handleResponse(performance.now(), Date.now(), id, { ok: false, failure });
          flush();
        },
      );
    }
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const deadline = core.pollTimeout();
    if (deadline !== undefined) {
      timer = setTimeout(() => {
        timer = undefined;
        core.handleTimeout(performance.now());
        flush();
      }, Math.max(0, deadline - performance.now()));
      timer.unref();
    }
  };
  core.start();
  flush();
  return {
    close: () => {
      if (closed) return;
      closed = true;
      core.stop();
      controller.abort();
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}

/** Tells `onError` that the revocation handler threw (and swallows a throw of `onError` itself). */
function reportHandlerFailure(onError: (reason: string) => void, error: unknown): void {
  try {
    onError(`revocation handler failed: ${error instanceof Error ? error.message : String(error)}`);
  } catch {
    // nothing left to tell
  }
}
