/**
 * Timers for test support code that must not outlive the test file: an interval left
 * running (a heartbeat, a traffic sender) would keep the test process alive or keep
 * talking to processes being torn down after a failed test.
 */
import { after } from 'node:test';

const intervals = new Set<NodeJS.Timeout>();
after(() => {
  for (const timer of intervals) clearInterval(timer);
});

/**
 * `setInterval(fn, ms)`, also cleared in a root-level `after` hook of the test file that
 * imports this module. Clear it earlier with `clearInterval` as usual.
 */
export function fileScopedInterval(fn: () => void, ms: number): NodeJS.Timeout {
  const timer = setInterval(fn, ms);
  intervals.add(timer);
  return timer;
}
