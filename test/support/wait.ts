/**
 * Polling waits for end-to-end tests, where the thing awaited (a log line, an echo, a
 * coordinator's view) happens in another process or on a socket.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Checks `predicate` every 10 ms; resolves once it holds, fails the test (an assertion
 * error naming `what`) after `timeoutMs`.
 */
export async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  for (let waited = 0; waited < timeoutMs; waited += 10) {
    if (predicate()) return;
    await sleep(10);
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * Calls `probe` (which may be async, e.g. an HTTP request) every 50 ms until it returns
 * something other than undefined, and returns that; throws naming `what` once
 * `timeoutMs` has passed.
 */
export async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const start = performance.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
