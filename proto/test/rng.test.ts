import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Rng } from '../src/rng.js';

test('the same seed gives the same sequence; different seeds differ', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 53 - 1 }), (seed) => {
      const a = new Rng(seed);
      const b = new Rng(seed);
      const c = new Rng(seed + 1);
      const xs = Array.from({ length: 8 }, () => a.nextUint32());
      assert.deepEqual(xs, Array.from({ length: 8 }, () => b.nextUint32()));
      assert.notDeepEqual(xs, Array.from({ length: 8 }, () => c.nextUint32()));
    }),
  );
});

test('nextFloat is uniform in [0, 1) and nextNormal has mean 0 and sd 1 (seed 7)', () => {
  const rng = new Rng(7);
  const n = 200_000;
  let sum = 0;
  let below = 0;
  for (let i = 0; i < n; i++) {
    const x = rng.nextFloat();
    assert.ok(x >= 0 && x < 1);
    sum += x;
    if (x < 0.1) below++;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.005, `mean ${sum / n}`);
  assert.ok(Math.abs(below / n - 0.1) < 0.005, `P[x<0.1] = ${below / n}`);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const z = rng.nextNormal();
    s1 += z;
    s2 += z * z;
  }
  assert.ok(Math.abs(s1 / n) < 0.01, `normal mean ${s1 / n}`);
  assert.ok(Math.abs(Math.sqrt(s2 / n) - 1) < 0.01, `normal sd ${Math.sqrt(s2 / n)}`);
});

test('nextInt stays in range and fork gives an independent, reproducible stream', () => {
  const rng = new Rng(11);
  for (let i = 0; i < 10_000; i++) {
    const v = rng.nextInt(6);
    assert.ok(Number.isInteger(v) && v >= 0 && v < 6);
  }
  const f1 = new Rng(3).fork();
  const f2 = new Rng(3).fork();
  assert.equal(f1.nextUint32(), f2.nextUint32());
  const bytes = new Rng(5).fillBytes(new Uint8Array(7));
  assert.deepEqual(bytes, new Rng(5).fillBytes(new Uint8Array(7)));
});
