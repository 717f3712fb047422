/**
 * The open-file limit check (fd-limit.ts): parsing `/proc/self/limits`, the session cap
 * kept under the soft limit, the start warning, and log lines that a storm of the same
 * error (EMFILE per refused socket) cannot multiply.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino, type Logger } from 'pino';
import { checkFdLimit, FD_RESERVE, readOpenFileLimit, sessionsMaxWithinFdLimit } from '../src/fd-limit.js';

const LIMITS = ['Limit                     Soft Limit           Hard Limit           Units     ', 'Max cpu time              unlimited            unlimited            seconds   ', 'Max open files            1024                 524288               files     ', ''].join('\n');

/** A pino logger whose lines land in `lines`. */
function captured(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger: Logger = pino({ level: 'info' }, { write: (text: string) => void lines.push(JSON.parse(text) as Record<string, unknown>) });
  return { logger, lines };
}

test('readOpenFileLimit reads the soft and hard "Max open files" (unlimited as Infinity; unknown text: undefined)', () => {
  assert.deepEqual(readOpenFileLimit(LIMITS), { soft: 1024, hard: 524288 });
  assert.deepEqual(readOpenFileLimit('Max open files            unlimited            unlimited            files\n'), { soft: Infinity, hard: Infinity });
  assert.equal(readOpenFileLimit('nothing here'), undefined);
  assert.ok(readOpenFileLimit() === undefined || readOpenFileLimit()!.soft > 0, 'this process (Linux: /proc/self/limits)');
});

test('sessionsMax is kept under the soft limit less the reserve, and a warning says what to raise', () => {
  const limit = { soft: 1024, hard: 524288 };
  assert.equal(sessionsMaxWithinFdLimit(500, limit), 500);
  assert.equal(sessionsMaxWithinFdLimit(100_000, limit), 1024 - FD_RESERVE);
  assert.equal(sessionsMaxWithinFdLimit(100_000, undefined), 100_000);
  const { logger, lines } = captured();
  assert.equal(checkFdLimit(logger, 100_000, false, limit), 1024 - FD_RESERVE);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.event, 'fd_limit');
  assert.match(String(lines[0]!.msg), /soft limit is 1024: raise the soft limit \(up to the hard limit 524288/);
  // TCP connections hold two descriptors: a cap that fits UDP still warns with TCP rules.
  assert.equal(checkFdLimit(logger, 600, true, limit), 600);
  assert.equal(lines.length, 2);
  assert.equal(checkFdLimit(logger, 400, true, limit), 400);
  assert.equal(lines.length, 2, 'no warning when it fits');
});
