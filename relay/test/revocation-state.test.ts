/**
 * The revocation state file (relay/src/revocation-state.ts): what is written reads back;
 * expired entries are dropped; a missing file is "no state", and a corrupt, oversized or
 * unreadable one is a clear reason (the relay logs it and starts with no list), never a throw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatRevocationState, parseRevocationState, readRevocationState, writeRevocationState, writeRevocationStateSync } from '../src/revocation-state.js';

const NOW = 1_795_000_000_000;

test('a written state reads back, without the entries expired since', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'slip-revstate-'));
  try {
    const file = join(dir, 'state.json');
    const revocations = new Map([
      ['00000000000000aa', NOW + 60_000],
      ['00000000000000bb', NOW - 1],
    ]);
    await writeRevocationState(file, { cursorMs: 1234, currentAtMs: NOW - 5000, revocations });
    const read = readRevocationState(file, NOW);
    assert.ok(read.ok && read.state);
    assert.deepEqual({ cursorMs: read.state.cursorMs, currentAtMs: read.state.currentAtMs, revocations: [...read.state.revocations] }, { cursorMs: 1234, currentAtMs: NOW - 5000, revocations: [['00000000000000aa', NOW + 60_000]] });
    writeRevocationStateSync(file, { cursorMs: 1, currentAtMs: NOW, revocations: new Map() });
    assert.deepEqual(readdirSync(dir), ['state.json'], 'no temporary file left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing file is no state; a corrupt, wrong or unreadable one is a reason, never a throw', () => {
  const dir = mkdtempSync(join(tmpdir(), 'slip-revstate-'));
  try {
    assert.deepEqual(readRevocationState(join(dir, 'none.json'), NOW), { ok: true, state: undefined });
    const cases: [string, RegExp][] = [
      ['{"version":1,"cursorMs":', /not JSON/],
      ['[]', /version/],
      ['{"version":2,"cursorMs":0,"currentAtMs":0,"revocations":[]}', /version 2; expected 1/],
      ['{"version":1,"cursorMs":-1,"currentAtMs":0,"revocations":[]}', /cursorMs/],
      ['{"version":1,"cursorMs":0,"currentAtMs":0,"revocations":{}}', /revocations is not an array/],
      ['{"version":1,"cursorMs":0,"currentAtMs":0,"revocations":[["XYZ",1]]}', /revocations\[0\]/],
    ];
    for (const [text, reason] of cases) {
      const file = join(dir, 'bad.json');
      writeFileSync(file, text);
      const read = readRevocationState(file, NOW);
      assert.ok(!read.ok, text);
      assert.match(read.reason, reason, text);
    }
    mkdirSync(join(dir, 'a-directory'));
    assert.deepEqual(readRevocationState(join(dir, 'a-directory'), NOW), { ok: false, reason: 'not a regular file' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('format and parse round trip', () => {
  const state = { cursorMs: 5, currentAtMs: NOW, revocations: new Map([['0123456789abcdef', NOW + 1]]) };
  const back = parseRevocationState(formatRevocationState(state), NOW);
  assert.deepEqual([...back.revocations], [...state.revocations]);
});
