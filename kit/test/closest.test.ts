import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closestMatch, editDistance } from '../closest.js';

test('edit distance counts a swap of neighbours as one edit, case-insensitively', () => {
  assert.equal(editDistance('listen', 'listen'), 0);
  assert.equal(editDistance('lsiten', 'listen'), 1);
  assert.equal(editDistance('idleTimoutMs', 'idleTimeoutMs'), 1);
  assert.equal(editDistance('IdleTimeoutMS', 'idleTimeoutMs'), 0);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('kitten', 'sitting'), 3);
});

test('a close typo gets the nearest accepted name; a different word gets none', () => {
  const keys = ['listen', 'idleTimeoutMs', 'sessionsMax', 'host', 'port'];
  assert.equal(closestMatch('idleTimoutMs', keys), 'idleTimeoutMs');
  assert.equal(closestMatch('lisen', keys), 'listen');
  assert.equal(closestMatch('sessionMax', keys), 'sessionsMax');
  assert.equal(closestMatch('prot', keys), 'port');
  assert.equal(closestMatch('colour', keys), undefined);
  assert.equal(closestMatch('hose', ['port']), undefined);
  assert.equal(closestMatch('anything', []), undefined);
});
