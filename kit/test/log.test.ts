import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prettyLogLine } from '../log.js';

test('a pino JSON line reads as time, level, name, message and key=value fields', () => {
  const time = new Date(2026, 11, 7, 9, 5, 3, 42).getTime();
  const line = JSON.stringify({ level: 40, time, pid: 1, name: 'relay', event: 'bind_failed', rule: 'game', port: 27015, err: 'address in use', ok: false, msg: 'cannot bind' });
  assert.equal(prettyLogLine(`${line}\n`), '09:05:03.042 WARN  relay: cannot bind event=bind_failed rule=game port=27015 err="address in use" ok=false\n');
  assert.equal(prettyLogLine(JSON.stringify({ level: 30, time, name: 'coordinator', msg: 'up' })), '09:05:03.042 INFO  coordinator: up\n');
});

test('a line that is not JSON passes through unchanged', () => {
  assert.equal(prettyLogLine('plain text\n'), 'plain text\n');
});
