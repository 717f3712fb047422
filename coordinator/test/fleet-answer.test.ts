/**
 * `GET /v1/fleet` as the dashboard reads it, on a service with a hand-moved wall clock:
 * a relay whose last heartbeat (or origin figure) is older than the lease is `stale`
 * while a heartbeating one is not, and the recent events keep the last
 * FLEET_EVENTS_MAX, oldest first. A heartbeat's `status` (players per origin, L4 rules)
 * is offered at registration, kept and shown; a bad one is a 400 naming the field, and
 * the relay's previous figures stay.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ConfigReader } from '../../kit/config.js';
import { FLEET_EVENTS_MAX, RELAY_STATUS_ORIGINS_MAX, type FleetAnswer, type RelayStatus } from '../../proto/src/api/contract.js';
import { loadSettings } from '../src/config.js';
import { CoordinatorService } from '../src/service.js';
import { MemoryStore } from '../src/store/index.js';
import { testKeys } from './support.js';

describe('fleet answer', () => {
  const keys = testKeys();
  const leaseMs = 2000;
  let now = 1_000_000;
  const service = (): CoordinatorService => {
    const settings = loadSettings(new ConfigReader('<test>', `leaseMs: ${leaseMs}\nkeys:\n  fleetSecret: ${keys.fleetSecret}\n  apiKeys: [${keys.apiKey}]\n`), { listen: '127.0.0.1:0' });
    return new CoordinatorService({ settings, store: new MemoryStore(), logger: pino({ level: 'silent' }), wallNowMs: () => now });
  };
  const post = async (svc: CoordinatorService, path: string, body: unknown): Promise<void> => {
    const res = await svc.handle({ method: 'POST', path, query: new URLSearchParams(), authorization: `Bearer ${keys.fleetSecret}`, body: Buffer.from(JSON.stringify(body)), remoteAddress: '127.0.0.1' });
    assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.json)}`);
  };
  const register = (svc: CoordinatorService, relayId: string): Promise<void> =>
    post(svc, '/v1/relays/register', { relayId, region: 'eu', latitude: 50, longitude: 8, tunnelAddress: '127.0.0.1:4433', probeAddress: '127.0.0.1:4434', capacitySessions: 10 });
  const heartbeat = (svc: CoordinatorService, relayId: string): Promise<void> => post(svc, '/v1/relays/heartbeat', { relayId, sessions: 3, packetsPerSecond: 100, cpuFraction: 0.1, draining: false });
  const fleet = async (svc: CoordinatorService): Promise<FleetAnswer> => {
    const res = await svc.handle({ method: 'GET', path: '/v1/fleet', query: new URLSearchParams(), body: new Uint8Array(), remoteAddress: '127.0.0.1' });
    assert.equal(res.status, 200);
    return res.json as FleetAnswer;
  };

  test('figures older than the lease are stale, with their age; fresh ones are not', async () => {
    const svc = service();
    try {
      await register(svc, 'dead-1');
      await register(svc, 'live-1');
      await post(svc, '/v1/relays/reports', { relayId: 'live-1', reports: [{ origin: 'eu-game', rttMs: 10, jitterMs: 1, lossFraction: 0, samples: 20 }] });
      now += leaseMs + 500;
      await heartbeat(svc, 'live-1');
      const view = await fleet(svc);
      assert.equal(view.leaseMs, leaseMs);
      const dead = view.relays.find((r) => r.relayId === 'dead-1')!;
      const live = view.relays.find((r) => r.relayId === 'live-1')!;
      assert.deepEqual([dead.stale, dead.health, dead.lastHeartbeatAgeMs], [true, 'unhealthy', leaseMs + 500]);
      assert.deepEqual([live.stale, live.health, live.lastHeartbeatAgeMs], [false, 'healthy', 0]);
      assert.deepEqual(live.origins.map((o) => [o.origin, o.ageMs, o.stale]), [['eu-game', leaseMs + 500, true]], 'an origin figure not renewed within the lease is stale');
    } finally {
      svc.close();
    }
  });

  test(`the recent events keep the last ${FLEET_EVENTS_MAX}, oldest first`, async () => {
    const svc = service();
    try {
      const n = FLEET_EVENTS_MAX + 20;
      const ids = Array.from({ length: n }, (_, i) => `r-${String(i).padStart(3, '0')}`);
      for (const id of ids) {
        now += 10;
        await register(svc, id);
      }
      const events = (await fleet(svc)).events;
      assert.equal(events.length, FLEET_EVENTS_MAX);
      assert.deepEqual(
        events.map((e) => [e.type, e.relayId]),
        ids.slice(n - FLEET_EVENTS_MAX).map((id) => ['relayUp', id]),
      );
      assert.ok(events.every((e, i) => i === 0 || e.atMs > events[i - 1]!.atMs), 'oldest first, each with the time it was noticed');
    } finally {
      svc.close();
    }
  });

  test('a heartbeat status (players per origin, L4 rules) is kept and shown; a bad one is a 400 naming the field and changes nothing', async () => {
    const svc = service();
    try {
      const reg = await svc.handle({ method: 'POST', path: '/v1/relays/register', query: new URLSearchParams(), authorization: `Bearer ${keys.fleetSecret}`, body: Buffer.from(JSON.stringify({ relayId: 'fra-1', region: 'eu', latitude: 50, longitude: 8, tunnelAddress: '127.0.0.1:4433', probeAddress: '127.0.0.1:4434', capacitySessions: 10 })), remoteAddress: '127.0.0.1' });
      assert.equal((reg.json as { heartbeatStatus?: boolean }).heartbeatStatus, true, 'the registration answer says status is accepted');
      const status: RelayStatus = {
        origins: [{ origin: 'eu-game', players: 2, backups: 1, fecRecovered: 7, lossBeforeFec: 0.05, lossAfterFec: 0.001, downLossBeforeFec: 0.08, downLossAfterFec: 0.002 }],
        otherPlayers: 0,
        otherBackups: 0,
        rules: [{ rule: 'game-udp', protocol: 'udp', listen: '0.0.0.0:27015', group: 'game', sessions: 3, origins: [{ origin: '10.0.1.10:27015', healthy: true }, { origin: '10.0.1.11:27015', healthy: false }] }],
      };
      const load = { sessions: 3, packetsPerSecond: 100, cpuFraction: 0.1, draining: false };
      await post(svc, '/v1/relays/heartbeat', { relayId: 'fra-1', ...load, status });
      const shown = (await fleet(svc)).relays.find((r) => r.relayId === 'fra-1')!;
      assert.deepEqual(shown.load.status, status);

      const tooMany = { ...status, origins: Array.from({ length: RELAY_STATUS_ORIGINS_MAX + 1 }, (_, i) => ({ ...status.origins[0]!, origin: `o-${i}` })) };
      const cases: [unknown, string, RegExp][] = [
        [{ ...status, origins: [{ ...status.origins[0]!, lossBeforeFec: 1.5 }] }, 'status.origins[0].lossBeforeFec', /1\.5 is out of range/],
        [{ ...status, origins: [{ ...status.origins[0]!, players: -1 }] }, 'status.origins[0].players', /out of range/],
        [{ ...status, origins: [{ ...status.origins[0]!, downLossBeforeFec: 2 }] }, 'status.origins[0].downLossBeforeFec', /2 is out of range/],
        [{ ...status, origins: [{ ...status.origins[0]!, downLossAfterFec: -0.1 }] }, 'status.origins[0].downLossAfterFec', /out of range/],
        [{ ...status, origins: [{ ...status.origins[0]!, downLossAfterFec: '1 %' }] }, 'status.origins[0].downLossAfterFec', /not a number/],
        [{ ...status, origins: [{ ...status.origins[0]!, players: 1.5 }] }, 'status.origins[0].players', /not an integer/],
        [tooMany, 'status.origins', new RegExp(`has ${RELAY_STATUS_ORIGINS_MAX + 1} items; expected at most ${RELAY_STATUS_ORIGINS_MAX}`)],
        [{ ...status, rules: [{ ...status.rules[0]!, protocol: 'sctp' }] }, 'status.rules[0].protocol', /"udp" or "tcp"/],
        [{ ...status, rules: [{ ...status.rules[0]!, origins: [{ origin: 'x', healthy: 'yes' }] }] }, 'status.rules[0].origins[0].healthy', /not true or false/],
        [{ ...status, extra: 1 }, 'status.extra', /unknown field/],
        [{ origins: [] }, 'status.otherPlayers', /missing/],
        [null, 'status', /not an object/],
        ['lots', 'status', /not an object/],
      ];
      for (const [bad, field, reason] of cases) {
        const res = await svc.handle({ method: 'POST', path: '/v1/relays/heartbeat', query: new URLSearchParams(), authorization: `Bearer ${keys.fleetSecret}`, body: Buffer.from(JSON.stringify({ relayId: 'fra-1', ...load, sessions: 9, status: bad })), remoteAddress: '127.0.0.1' });
        const error = (res.json as { error: { code: string; field: string; reason: string } }).error;
        assert.equal(res.status, 400, `${field}: ${JSON.stringify(res.json)}`);
        assert.deepEqual([error.code, error.field], ['invalid_field', field]);
        assert.match(error.reason, reason);
      }
      const after = (await fleet(svc)).relays.find((r) => r.relayId === 'fra-1')!;
      assert.equal(after.load.sessions, 3, 'a refused heartbeat changed nothing');
      assert.deepEqual(after.load.status, status);
      // A status without the downstream figures (a relay before them) is accepted as it is.
      const { downLossBeforeFec: _before, downLossAfterFec: _after, ...upOnly } = status.origins[0]!;
      await post(svc, '/v1/relays/heartbeat', { relayId: 'fra-1', ...load, status: { ...status, origins: [upOnly] } });
      assert.deepEqual((await fleet(svc)).relays.find((r) => r.relayId === 'fra-1')!.load.status?.origins, [upOnly]);
      // A heartbeat without status (an older relay) is still accepted, and its figures replace the old ones.
      await post(svc, '/v1/relays/heartbeat', { relayId: 'fra-1', ...load });
      assert.equal((await fleet(svc)).relays.find((r) => r.relayId === 'fra-1')!.load.status, undefined);
    } finally {
      svc.close();
    }
  });
});
