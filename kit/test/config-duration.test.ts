import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigReader, parseDurationText } from '../config.js';
import { ConfigError } from '../../proto/src/errors.js';

test('duration strings read as scenario files write them', () => {
  assert.equal(parseDurationText('500ms'), 500);
  assert.equal(parseDurationText('60s'), 60_000);
  assert.equal(parseDurationText('1.5s'), 1500);
  assert.equal(parseDurationText('2m'), 120_000);
  assert.equal(parseDurationText('60'), undefined);
  assert.equal(parseDurationText('60 seconds'), undefined);
  assert.equal(parseDurationText('-1s'), undefined);
});

test('a key in ms takes 60s or 500ms; a bare number keeps its documented unit', () => {
  const r = new ConfigReader('x.yaml', 'a: 60s\nb: 500ms\nc: 250\nd: 2m\ne: 1.5s\n');
  const ms = { min: 0, max: 600_000, integer: true, unit: 'ms' };
  assert.equal(r.number(['a'], ms), 60_000);
  assert.equal(r.number(['b'], ms), 500);
  assert.equal(r.number(['c'], ms), 250);
  assert.equal(r.number(['d'], { ...ms, unit: 'ms (0 = never)' }), 120_000);
  assert.equal(r.number(['e'], { min: 0, max: 10, unit: 's' }), 1.5);
  assert.equal(r.number(['c'], { min: 0, max: 1000, unit: 's' }), 250);
});

test('a duration out of range, not a duration, or on a key that is not a duration is an error naming what is accepted', () => {
  const r = new ConfigReader('x.yaml', 'a: 10m\nb: 60 seconds\nc: 60s\nd: 1.5s\n');
  const ms = { min: 0, max: 60_000, integer: true, unit: 'ms' };
  assert.throws(() => r.number(['a'], ms), (e: ConfigError) => e.message === 'x.yaml:1: a: 600000 is out of range; expected an integer from 0 to 60000 ms');
  assert.throws(() => r.number(['b'], ms), (e: ConfigError) => e.message === "x.yaml:2: b: '60 seconds' is not a duration; expected an integer from 0 to 60000 ms, or a duration such as 500ms, 60s or 2m");
  assert.throws(() => r.number(['c'], { min: 0, max: 100, unit: 'packets' }), /c: "60s" is not a number; expected a number from 0 to 100 packets$/);
  assert.throws(() => r.number(['d'], { min: 1, max: 100, integer: true, unit: 's' }), /d: 1\.5 is not an integer; expected an integer from 1 to 100 s, or a duration/);
});
