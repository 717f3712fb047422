/**
 * The FEC queues' rings: ShardRing keeps first-in first-out order and every entry's
 * header fields across wrap-around and growth; doubledRing unwraps a full ring to head 0.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { doubledRing, ShardRing } from '../src/fec/ring.js';

test('ShardRing: entries leave in the order they came, with their fields, across wrap-around and growth', () => {
  const ring = new ShardRing(4);
  let next = 0;
  let expected = 0;
  for (let round = 0; round < 6; round++) {
    // Push more than is taken each round, so the ring wraps and then doubles.
    for (let i = 0; i < 3 + round; i++, next++) ring.push(next, next * 10, next * 10 + 1, 0xffffffff, next % 256, next & 1);
    for (let i = 0; i < 2; i++, expected++) {
      assert.equal(ring.shift(), expected);
      assert.deepEqual([0, 1, 2, 3, 4].map((f) => ring.takenField(f)), [expected * 10, expected * 10 + 1, 0xffffffff, expected % 256, expected & 1]);
    }
  }
  while (ring.size > 0) {
    assert.equal(ring.shift(), expected);
    assert.equal(ring.takenField(0), expected * 10);
    expected++;
  }
  assert.equal(expected, next);
  assert.equal(ring.shift(), -1);
});

test('doubledRing: a wrapped ring comes back twice as long, oldest first at index 0, same element type', () => {
  const ring = Uint16Array.of(30, 40, 10, 20);
  const grown = doubledRing(ring, 2, 4);
  assert.ok(grown instanceof Uint16Array);
  assert.deepEqual([...grown], [10, 20, 30, 40, 0, 0, 0, 0]);
});
