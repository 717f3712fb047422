/** The coordinator's choice of a session's exit relay (`POST /v1/session` `exitRelay`), on the sans-IO core. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinatorCore } from '../src/core/coordinator-core.js';

const relay = (relayId: string, capacitySessions = 100) => ({ relayId, region: 'eu', latitude: 50, longitude: 8, tunnelAddress: `10.0.0.${relayId.length}:4433`, probeAddress: `10.0.0.${relayId.length}:4434`, capacitySessions });
const idle = { sessions: 0, packetsPerSecond: 0, cpuFraction: 0, draining: false };
const sample = (rttMs: number, lossFraction = 0) => ({ rttMs, jitterMs: 0, lossFraction, samples: 50 });

test('pickExit: a named healthy relay, or with auto the one with the cheapest relay→origin leg; refusals are typed', () => {
  const core = new CoordinatorCore({ leaseMs: 5000, origins: [{ name: 'game', latitude: 50, longitude: 8 }] });
  for (const id of ['near', 'far', 'lossy']) {
    core.register(0, relay(id));
    core.heartbeat(0, id, idle);
  }
  core.relayReport(0, 'near', { origin: 'game' }, sample(2));
  core.relayReport(0, 'far', { origin: 'game' }, sample(40));
  // Faster but losing 5 %: the loss penalty puts it behind `near`.
  core.relayReport(0, 'lossy', { origin: 'game' }, sample(1, 0.05));
  assert.deepEqual(core.pickExit(100, 'game', 'auto'), { ok: true, relayId: 'near', address: '10.0.0.4:4433' });
  assert.deepEqual(core.pickExit(100, 'game', 'far'), { ok: true, relayId: 'far', address: '10.0.0.3:4433' });
  assert.deepEqual(core.pickExit(100, 'game', 'nobody'), { ok: false, reason: 'noRelay' });
  assert.deepEqual(core.pickExit(100, 'atlantis', 'auto'), { ok: false, reason: 'unknownOrigin' });
  // A relay whose lease ran out is never named; when none is left, auto says so.
  assert.deepEqual(core.pickExit(60_000, 'game', 'near'), { ok: false, reason: 'noRelay' });
  assert.deepEqual(core.pickExit(60_000, 'game', 'auto'), { ok: false, reason: 'noRelay' });
});
