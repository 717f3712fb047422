/**
 * The timer table cores keep their one-of-a-kind deadlines in: a stopped timer is never
 * expired, pending or the earliest; `lower` only moves a deadline sooner; `earliest`
 * can skip deadlines that are not later than a given instant.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TimerTable } from '../src/timer-table.js';

test('every key starts stopped: not armed, never expired or pending, and the earliest is +∞', () => {
  const timers = new TimerTable(3);
  for (const key of [0, 1, 2]) {
    assert.equal(timers.isArmed(key), false);
    assert.equal(timers.isExpired(key, 1e12), false);
    assert.equal(timers.isPending(key, 0), false);
    assert.equal(timers.get(key), Number.POSITIVE_INFINITY);
  }
  assert.equal(timers.earliest(), Number.POSITIVE_INFINITY);
});

test('an armed key is pending before its deadline and expired from it on; stop and set(undefined) disarm', () => {
  const timers = new TimerTable(2);
  timers.set(1, 100);
  assert.equal(timers.isPending(1, 99), true);
  assert.equal(timers.isExpired(1, 99), false);
  assert.equal(timers.isExpired(1, 100), true);
  assert.equal(timers.isPending(1, 100), false);
  timers.stop(1);
  assert.equal(timers.isArmed(1), false);
  timers.set(0, 5);
  timers.set(0, undefined);
  assert.equal(timers.isArmed(0), false);
});

test('lower only moves a deadline sooner; earliest is the soonest armed deadline, optionally after an instant', () => {
  const timers = new TimerTable(3);
  timers.lower(0, 50);
  timers.lower(0, 80);
  assert.equal(timers.get(0), 50);
  timers.set(1, 30);
  timers.set(2, 70);
  assert.equal(timers.earliest(), 30);
  assert.equal(timers.earliest(30), 50, 'a deadline at the instant itself is not after it');
  assert.equal(timers.earliest(70), Number.POSITIVE_INFINITY);
});
