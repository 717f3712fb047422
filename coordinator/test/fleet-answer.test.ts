/**
 * `GET /v1/fleet` as the dashboard reads it, on a service with a hand-moved wall clock:
 * a relay whose last heartbeat (or origin figure) is older than the lease is `stale`
 * while a heartbeating one is not, and the recent events keep the last
 * FLEET_EVENTS_MAX, oldest first.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ConfigReader } from '../../kit/config.js';
import { FLEET_EVENTS_MAX, type FleetAnswer } from '../../proto/src/api/contract.js';
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
});
