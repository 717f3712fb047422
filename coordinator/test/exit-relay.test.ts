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

test('route with an exit: entries are ranked by client→entry→exit→origin, the exit itself by its direct route', () => {
  const core = new CoordinatorCore({ leaseMs: 5000, origins: [{ name: 'game', latitude: 50, longitude: 8 }] });
  for (const id of ['a', 'bb', 'exit']) {
    core.register(0, relay(id));
    core.heartbeat(0, id, idle);
  }
  // The client: a is near, bb a little farther, the exit far. Direct, a's route to the origin is poor.
  core.clientReport(0, '203.0.113.0/24', 'a', sample(10));
  core.clientReport(0, '203.0.113.0/24', 'bb', sample(14));
  core.clientReport(0, '203.0.113.0/24', 'exit', sample(80));
  core.relayReport(0, 'a', { origin: 'game' }, sample(60));
  core.relayReport(0, 'bb', { origin: 'game' }, sample(30));
  core.relayReport(0, 'exit', { origin: 'game' }, sample(2));
  core.relayReport(0, 'a', { relayId: 'exit' }, sample(20));
  core.relayReport(0, 'bb', { relayId: 'exit' }, sample(30));
  const client = { prefix: '203.0.113.0/24' };
  const direct = core.route(100, { origin: 'game', client, twoHop: false })!;
  assert.deepEqual(direct.candidates.map((c) => c.relayId), ['bb', 'a', 'exit']);
  const viaExit = core.route(100, { origin: 'game', client, exitRelayId: 'exit' })!;
  assert.deepEqual(viaExit.candidates.map((c) => [c.relayId, c.kind, c.exitRelayId]), [['a', 'twoHop', 'exit'], ['bb', 'twoHop', 'exit'], ['exit', 'direct', undefined]]);
  const a = viaExit.candidates[0]!;
  assert.equal(a.rttMs, 10 + 20 + 2);
  assert.equal(a.legs.relayToRelay?.source, 'measured');
  // An exit that is not healthy leaves the direct ranking (entries serve such sessions themselves).
  assert.deepEqual(core.route(60_000, { origin: 'game', client, exitRelayId: 'nobody' })!.candidates.map((c) => c.relayId), core.route(60_000, { origin: 'game', client, twoHop: false })!.candidates.map((c) => c.relayId));
});
