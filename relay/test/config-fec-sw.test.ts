/**
 * `tunnel.fec` and the sliding-window mode: `sw` leads the default modes (adaptive, no
 * fixed settings), fixed `tunnel.fec.sw` settings are read with their defaults and
 * ranges only when given, and `latencyBudgetMs` is checked.
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

test('tunnel.fec: sw leads the default modes, adaptive: no fixed sw settings and no relay budget unless given', () => {
  const fec = fecOf('');
  assert.deepEqual(fec.modes, ['sw', 'rs', 'dup', 'off']);
  assert.equal(fec.sw, undefined);
  assert.equal(fec.latencyBudgetMs, undefined);
  assert.equal(fecOf('  fec:\n    latencyBudgetMs: 15\n').latencyBudgetMs, 15);
  assert.throws(() => fecOf('  fec:\n    latencyBudgetMs: 5000\n'), (e: unknown) => e instanceof ConfigError && /tunnel\.fec\.latencyBudgetMs/.test(e.message));
});

test('tunnel.fec: modes may leave sw out; tunnel.fec.sw takes its defaults and checks its ranges', () => {
  assert.deepEqual(fecOf('  fec:\n    modes: [rs, dup, off]\n').modes, ['rs', 'dup', 'off']);
  assert.deepEqual(fecOf('  fec:\n    sw: {}\n').sw, SLIDING_WINDOW_PARAMETERS_DEFAULT);
  const fec = fecOf('  fec:\n    modes: [sw, off]\n    sw:\n      repairsPerSource: 0.5\n      repairSpacingMs: 4\n      windowPackets: 16\n      windowMs: 40\n');
  assert.deepEqual(fec.modes, ['sw', 'off']);
  assert.deepEqual(fec.sw, { repairsPerSource: 0.5, repairSpacingMs: 4, windowPackets: 16, windowMs: 40 });
  assert.throws(() => fecOf('  fec:\n    sw:\n      windowPackets: 300\n'), (e: unknown) => e instanceof ConfigError && /tunnel\.fec\.sw\.windowPackets/.test(e.message));
  assert.throws(() => fecOf('  fec:\n    sw:\n      window: 3\n'), (e: unknown) => e instanceof ConfigError && /unknown key/.test(e.message));
});
