/** Unit tests of the sans-IO cores: prefixes, smoothing, leases, revocations, ranking. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { clientPrefix, geoRttMs, greatCircleKm } from '../src/core/geo.js';
import { MeasurementTable, node } from '../src/core/measurements.js';
import { Registry, type RelayInfo } from '../src/core/registry.js';
import { RevocationLog } from '../src/core/revocations.js';
import { CoordinatorCore } from '../src/core/coordinator-core.js';

function relay(relayId: string, latitude = 50, longitude = 8, capacitySessions = 100, region = 'eu'): RelayInfo {
  return { relayId, region, latitude, longitude, tunnelAddress: `${relayId}:4433`, probeAddress: `${relayId}:4434`, capacitySessions };
}
const idle = { sessions: 0, packetsPerSecond: 0, cpuFraction: 0, draining: false };

describe('geo', () => {
  test('client prefixes keep only /24 or /48', () => {
    assert.equal(clientPrefix('203.0.113.77'), '203.0.113.0/24');
    assert.equal(clientPrefix('::ffff:198.51.100.9'), '198.51.100.0/24');
    assert.equal(clientPrefix('2001:db8:abcd:12::1'), '2001:db8:abcd::/48');
    assert.equal(clientPrefix('::1'), '0:0:0::/48');
    assert.equal(clientPrefix('fe80::1%eth0'), 'fe80:0:0::/48');
    for (const bad of ['', 'localhost', '1.2.3', '300.1.1.1', '1::2::3', 'gggg::1']) assert.equal(clientPrefix(bad), undefined, bad);
  });
  test('great-circle distance and its RTT', () => {
    const km = greatCircleKm(50.11, 8.68, 40.71, -74.0); // Frankfurt → New York ≈ 6200 km
    assert.ok(km > 6100 && km < 6300, String(km));
    assert.ok(geoRttMs(km) > 90 && geoRttMs(km) < 100, String(geoRttMs(km)));
  });
});

describe('MeasurementTable', () => {
  test('smooths by sample count, keeps age and confidence, expires stale figures', () => {
    const t = new MeasurementTable({ staleMs: 10_000, smoothingSamples: 20, halfLifeMs: 1e9 });
    t.report(0, 'a', 'b', { rttMs: 100, jitterMs: 2, lossFraction: 0, samples: 20 });
    const r = t.report(1000, 'a', 'b', { rttMs: 50, jitterMs: 2, lossFraction: 0.1, samples: 20 })!;
    assert.equal(r.rttMs, 75); // a 20-sample report weighs half
    assert.ok(Math.abs(r.lossFraction - 0.05) < 1e-12);
    const v = t.get(6000, 'a', 'b')!;
    assert.equal(v.ageMs, 5000);
    assert.ok(Math.abs(v.confidence - (40 / 50) * 0.5) < 1e-9, String(v.confidence));
    assert.equal(t.get(11_000, 'a', 'b'), undefined);
    assert.equal(t.expire(11_000), 1);
    assert.equal(t.size, 0);
    assert.equal(t.report(0, 'a', 'b', { rttMs: 1, jitterMs: 0, lossFraction: 0, samples: 0 }), undefined);
  });
  test('apply keeps the newer record', () => {
    const t = new MeasurementTable();
    const rec = { from: 'x', to: 'y', rttMs: 10, jitterMs: 1, lossFraction: 0, samples: 10, reports: 1, updatedAtMs: 100 };
    assert.equal(t.apply(rec), true);
    assert.equal(t.apply({ ...rec, rttMs: 99, updatedAtMs: 50 }), false);
    assert.equal(t.get(100, 'x', 'y')!.rttMs, 10);
  });
});

describe('Registry', () => {
  test('lease, draining, events, unknown relay, retention', () => {
    const reg = new Registry({ leaseMs: 3000, retentionMs: 10_000 });
    assert.equal(reg.heartbeat(0, 'nope', idle), undefined);
    const r = reg.register(0, relay('r1'));
    assert.deepEqual(reg.pollEvent(), { type: 'relayUp', relayId: 'r1', atMs: 0 });
    assert.equal(reg.health(2999, r), 'healthy');
    assert.equal(reg.health(3000, r), 'unhealthy');
    assert.equal(reg.pollTimeout(), 3000);
    reg.handleTimeout(3000);
    assert.equal(reg.pollEvent()?.type, 'relayDown');
    reg.heartbeat(4000, 'r1', { ...idle, draining: true });
    assert.equal(reg.pollEvent()?.type, 'relayDraining');
    assert.equal(reg.health(4000, reg.get('r1')!), 'draining');
    assert.equal(reg.pollTimeout(), 7000);
    reg.handleTimeout(7000);
    assert.equal(reg.pollEvent()?.type, 'relayDown');
    assert.equal(reg.pollTimeout(), 14_000);
    reg.handleTimeout(14_000);
    assert.equal(reg.pollEvent()?.type, 'relayForgotten');
    assert.equal(reg.size, 0);
  });
});

describe('RevocationLog', () => {
  test('cursor returns only newer entries; expired ones drop', () => {
    const log = new RevocationLog();
    log.add(100, { sessionId: 'aaaaaaaaaaaaaaaa', revokedAtMs: 100, expiresAtMs: 1000 });
    log.add(100, { sessionId: 'bbbbbbbbbbbbbbbb', revokedAtMs: 100, expiresAtMs: 5000 });
    log.add(200, { sessionId: 'cccccccccccccccc', revokedAtMs: 200, expiresAtMs: 5000 });
    assert.equal(log.add(300, { sessionId: 'cccccccccccccccc', revokedAtMs: 300, expiresAtMs: 5000 }), undefined);
    assert.deepEqual(log.since(300, 0).map((e) => e.sessionId[0]), ['a', 'b', 'c']);
    assert.deepEqual(log.since(300, 100).map((e) => e.sessionId[0]), ['c']);
    assert.equal(log.isRevoked(300, 'aaaaaaaaaaaaaaaa'), true);
    log.expire(1000);
    assert.equal(log.isRevoked(1000, 'aaaaaaaaaaaaaaaa'), false);
    assert.deepEqual(log.since(1000, 0).map((e) => e.sessionId[0]), ['b', 'c']);
  });
});

describe('ranking', () => {
  function core(): CoordinatorCore {
    return new CoordinatorCore({ leaseMs: 5000, origins: [{ name: 'game', latitude: 50, longitude: 8 }] });
  }
  test('a lossy relay ranks below a slightly slower clean one, with reasons', () => {
    const c = core();
    c.register(0, relay('lossy'));
    c.register(0, relay('clean'));
    c.relayReport(0, 'lossy', { origin: 'game' }, { rttMs: 40, jitterMs: 1, lossFraction: 0.03, samples: 50 });
    c.relayReport(0, 'clean', { origin: 'game' }, { rttMs: 45, jitterMs: 1, lossFraction: 0, samples: 50 });
    const ranked = c.route(10, { origin: 'game', client: { latitude: 50, longitude: 8 } })!;
    assert.deepEqual(ranked.candidates.map((x) => x.relayId), ['clean', 'lossy']);
    assert.match(ranked.candidates[1]!.reason, /behind #1, mostly more loss/);
    assert.equal(ranked.candidates[0]!.legs.relayToOrigin.source, 'measured');
    assert.equal(ranked.candidates[0]!.legs.clientToRelay.source, 'geography');
  });
  test('draining, full and silent relays are excluded with a reason', () => {
    const c = core();
    for (const id of ['ok', 'drain', 'full', 'dead']) c.register(id === 'dead' ? -6000 : 0, relay(id, 50, 8, id === 'full' ? 1 : 100));
    c.heartbeat(0, 'drain', { ...idle, draining: true });
    c.heartbeat(0, 'full', { ...idle, sessions: 1 });
    const ranked = c.route(0, { origin: 'game', client: {} })!;
    assert.deepEqual(ranked.candidates.map((x) => x.relayId), ['ok']);
    assert.deepEqual(ranked.excluded.map((x) => x.relayId).sort(), ['dead', 'drain', 'full']);
    assert.equal(ranked.excludedCount, 3);
  });
  test('client reports for the prefix beat geography; a faster mesh gives a two-hop route', () => {
    const c = core();
    c.register(0, relay('near', 10, 10));
    c.register(0, relay('far', 50, 8));
    c.clientReport(0, '203.0.113.0/24', 'near', { rttMs: 5, jitterMs: 0, lossFraction: 0, samples: 50 });
    c.clientReport(0, '203.0.113.0/24', 'far', { rttMs: 60, jitterMs: 0, lossFraction: 0, samples: 50 });
    c.relayReport(0, 'near', { origin: 'game' }, { rttMs: 100, jitterMs: 0, lossFraction: 0, samples: 50 });
    c.relayReport(0, 'far', { origin: 'game' }, { rttMs: 2, jitterMs: 0, lossFraction: 0, samples: 50 });
    c.relayReport(0, 'near', { relayId: 'far' }, { rttMs: 20, jitterMs: 0, lossFraction: 0, samples: 50 });
    const ranked = c.route(0, { origin: 'game', client: { prefix: '203.0.113.0/24' } })!;
    const best = ranked.candidates[0]!;
    assert.equal(best.kind, 'twoHop');
    assert.equal(best.relayId, 'near');
    assert.equal(best.exitRelayId, 'far');
    assert.equal(best.rttMs, 27);
    assert.equal(ranked.candidates[1]!.relayId, 'far');
    assert.equal(c.route(0, { origin: 'game', client: { prefix: '203.0.113.0/24' }, twoHop: false })!.candidates[0]!.kind, 'direct');
    assert.equal(c.route(0, { origin: 'nowhere', client: {} }), undefined);
  });
  test('the fleet view carries the mesh matrix and origin figures', () => {
    const c = core();
    c.register(0, relay('a'));
    c.register(0, relay('b'));
    c.relayReport(0, 'a', { relayId: 'b' }, { rttMs: 12, jitterMs: 1, lossFraction: 0, samples: 10 });
    c.relayReport(0, 'a', { origin: 'game' }, { rttMs: 3, jitterMs: 1, lossFraction: 0, samples: 10 });
    c.handleTimeout(0);
    const f = c.fleet(100);
    assert.deepEqual(f.mesh.relayIds, ['a', 'b']);
    assert.deepEqual(f.mesh.rttMs, [[null, 12], [null, null]]);
    assert.equal(f.relays[0]!.origins[0]!.origin, 'game');
    assert.equal(f.relays[0]!.history.rttMs[0], 3);
    assert.ok(c.measurements.get(0, node.relay('a'), node.origin('game')));
  });
});
