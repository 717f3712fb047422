/**
 * `tunnel.fec` and the opt-in sliding-window mode: `sw` is never in the default modes,
 * its `tunnel.fec.sw` settings are read with their defaults and ranges, and a config
 * without it parses exactly as before.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigReader } from '../../kit/config.js';
import { ConfigError } from '../../proto/src/errors.js';
import { SLIDING_WINDOW_PARAMETERS_DEFAULT } from '../../proto/src/fec/index.js';
import { parseRelayConfig } from '../src/config.js';

const KEY = Buffer.alloc(32, 1).toString('base64');
const tunnel = (fec: string): string => `tunnel:\n  listen: 0.0.0.0:4433\n  ticketPublicKey: '${KEY}'\n  sealKey: '${KEY}'\n${fec}`;
const fecOf = (fec: string) => parseRelayConfig(new ConfigReader('relay.yaml', tunnel(fec))).core.tunnel!.fec;

test('tunnel.fec: sw is not a default mode, and without it no sw settings appear', () => {
  const fec = fecOf('');
  assert.deepEqual(fec.modes, ['rs', 'dup', 'off']);
  assert.equal(fec.sw, undefined);
});

test('tunnel.fec: modes may list sw; tunnel.fec.sw takes its defaults and checks its ranges', () => {
  assert.deepEqual(fecOf('  fec:\n    modes: [sw, rs, dup, off]\n').sw, SLIDING_WINDOW_PARAMETERS_DEFAULT);
  const fec = fecOf('  fec:\n    modes: [sw, off]\n    sw:\n      repairsPerSource: 0.5\n      repairSpacingMs: 4\n      windowPackets: 16\n      windowMs: 40\n');
  assert.deepEqual(fec.modes, ['sw', 'off']);
  assert.deepEqual(fec.sw, { repairsPerSource: 0.5, repairSpacingMs: 4, windowPackets: 16, windowMs: 40 });
  assert.throws(() => fecOf('  fec:\n    sw:\n      windowPackets: 300\n'), (e: unknown) => e instanceof ConfigError && /tunnel\.fec\.sw\.windowPackets/.test(e.message));
  assert.throws(() => fecOf('  fec:\n    sw:\n      window: 3\n'), (e: unknown) => e instanceof ConfigError && /unknown key/.test(e.message));
});
