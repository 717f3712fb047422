import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigReader } from '../kit/config.js';
import { ConfigError } from '../proto/src/errors.js';

const text = ['listen: 0.0.0.0:4000', 'rules:', '  - protocol: udp', '    idleTimeoutMs: 5', '  - protocol: tcp', '    idleTimoutMs: 60000', ''].join('\n');

function error(run: () => unknown): ConfigError {
  try {
    run();
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e;
  }
  assert.fail('expected a ConfigError');
}

test('errors name the file, the line, the key path and the accepted range', () => {
  const config = new ConfigReader('relay.yaml', text);
  const e = error(() => config.number(['rules', 0, 'idleTimeoutMs'], { min: 30_000, max: 3_600_000, integer: true, unit: 'ms' }));
  assert.equal(e.message, 'relay.yaml:4: rules[0].idleTimeoutMs: 5 is out of range; expected an integer from 30000 to 3600000 ms');
  assert.equal(e.line, 4);
  const typo = error(() => config.rejectUnknownKeys(['rules', 1], ['protocol', 'idleTimeoutMs']));
  assert.match(typo.message, /^relay\.yaml:6: rules\[1\]\.idleTimoutMs: unknown key \(did you mean 'idleTimeoutMs'\?\); expected one of protocol, idleTimeoutMs$/);
  assert.match(error(() => config.string(['rules', 0, 'protocol'], { choices: ['tcp'] })).message, /rules\[0\]\.protocol: 'udp' is not accepted; expected one of tcp/);
  assert.match(error(() => config.string(['missing'])).message, /missing: missing; expected a string/);
});

test('defaults apply to absent keys, and values read back', () => {
  const config = new ConfigReader('relay.yaml', text);
  assert.equal(config.string(['listen']), '0.0.0.0:4000');
  assert.equal(config.number(['absent'], { min: 0, max: 10, default: 7 }), 7);
  assert.equal(config.boolean(['absent'], { default: false }), false);
  assert.equal(config.sequenceLength(['rules']), 2);
  assert.deepEqual(config.mapKeys(['rules', 0]), ['protocol', 'idleTimeoutMs']);
});

test('syntax errors and unreadable files are ConfigErrors with a line or the file', () => {
  assert.match(error(() => new ConfigReader('bad.yaml', 'a: [1, 2\nb: c')).message, /^bad\.yaml(:\d+)?: <syntax>: not valid YAML/);
  assert.match(error(() => new ConfigReader('dup.yaml', 'a: 1\na: 2')).message, /<syntax>/);
  assert.match(error(() => ConfigReader.fromFile('/nonexistent/relay.yaml')).message, /^\/nonexistent\/relay\.yaml: <file>: cannot read the file: ENOENT/);
});
