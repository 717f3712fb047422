/**
 * The route cache (coordinator/src/route-cache.ts, issue #17 item 5): `GET /v1/route`
 * answers kept per client prefix and query for `routeCacheMs`. On a service with a
 * hand-moved wall clock (no timing): a second request of the same prefix gets the same
 * answer, another prefix its own, the answer expires within the TTL; a relay that starts
 * draining is dropped at once (the fleet event empties the cache), and one whose lease
 * runs out is never offered from the cache longer than the TTL. Plus the cache itself
 * on a passed-in clock.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ConfigReader } from '../../kit/config.js';
import { loadSettings } from '../src/config.js';
import { RouteCache, routeCacheKey } from '../src/route-cache.js';
import { CoordinatorService } from '../src/service.js';
import { MemoryStore } from '../src/store/index.js';
import { testKeys } from './support.js';

interface RouteAnswer {
  generatedAtMs: number;
  clientPrefix: string | null;
  candidates: { relayId: string }[];
}

describe('route cache', () => {
  const keys = testKeys();
  const leaseMs = 4000;
  const ttlMs = 1000;
  let now = 1_000_000;
  const service = (routeCacheMs = ttlMs): CoordinatorService => {
    const yaml = `leaseMs: ${leaseMs}\nrouteCacheMs: ${routeCacheMs}\norigins:\n  - name: game\n    latitude: 50\n    longitude: 8\nkeys:\n  fleetSecret: ${keys.fleetSecret}\n  apiKeys: [${keys.apiKey}]\n`;
    const settings = loadSettings(new ConfigReader('<test>', yaml), { listen: '127.0.0.1:0' });
    return new CoordinatorService({ settings, store: new MemoryStore(), logger: pino({ level: 'silent' }), wallNowMs: () => now });
  };
  const post = async (svc: CoordinatorService, path: string, body: unknown): Promise<void> => {
    const res = await svc.handle({ method: 'POST', path, query: new URLSearchParams(), authorization: `Bearer ${keys.fleetSecret}`, body: Buffer.from(JSON.stringify(body)), remoteAddress: '127.0.0.1' });
    assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.json)}`);
  };
  const register = (svc: CoordinatorService, relayId: string, latitude: number): Promise<void> =>
    post(svc, '/v1/relays/register', { relayId, region: 'eu', latitude, longitude: 8, tunnelAddress: '127.0.0.1:4433', probeAddress: '127.0.0.1:4434', capacitySessions: 10 });
  const heartbeat = (svc: CoordinatorService, relayId: string, draining = false): Promise<void> => post(svc, '/v1/relays/heartbeat', { relayId, sessions: 1, packetsPerSecond: 10, cpuFraction: 0.1, draining });
  const route = async (svc: CoordinatorService, remoteAddress: string): Promise<RouteAnswer> => {
    const res = await svc.handle({ method: 'GET', path: '/v1/route', query: new URLSearchParams('origin=game&lat=48&lon=2'), body: new Uint8Array(), remoteAddress });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return res.json as RouteAnswer;
  };
  const ids = (answer: RouteAnswer): string[] => answer.candidates.map((c) => c.relayId).sort();
  const fleet = async (svc: CoordinatorService): Promise<void> => {
    await register(svc, 'near', 49);
    await register(svc, 'far', 20);
    await heartbeat(svc, 'near');
    await heartbeat(svc, 'far');
  };

  test('the same prefix gets the same answer for at least half the TTL; another prefix its own; after the TTL it is ranked afresh', async () => {
    const svc = service();
    try {
      await fleet(svc);
      const first = await route(svc, '203.0.113.9');
      assert.deepEqual(ids(first), ['far', 'near']);
      // An answer lives at least half the TTL (lifetimes are spread over (½, 1] × routeCacheMs).
      now += ttlMs / 2;
      const again = await route(svc, '203.0.113.77'); // another host of the same /24
      assert.deepEqual(again, first, 'served from the cache: the very same answer, generatedAtMs included');
      const other = await route(svc, '198.51.100.1');
      assert.equal(other.clientPrefix, '198.51.100.0/24');
      assert.equal(other.generatedAtMs, now, 'another prefix is ranked for itself');
      now += ttlMs / 2;
      const expired = await route(svc, '203.0.113.9');
      assert.equal(expired.generatedAtMs, now, 'after routeCacheMs the answer is ranked again');
    } finally {
      await svc.close();
    }
  });

  test('a relay that starts draining is dropped from cached answers at once (the fleet event empties the cache)', async () => {
    const svc = service();
    try {
      await fleet(svc);
      assert.deepEqual(ids(await route(svc, '203.0.113.9')), ['far', 'near']);
      now += 10;
      await heartbeat(svc, 'far', true);
      const after = await route(svc, '203.0.113.9');
      assert.deepEqual(ids(after), ['near']);
      assert.equal(after.generatedAtMs, now);
    } finally {
      await svc.close();
    }
  });

  test('a relay whose lease ran out is not offered from the cache longer than the TTL', async () => {
    const svc = service();
    try {
      await fleet(svc);
      // Just before `far`'s lease ends, an answer with it is cached…
      now += leaseMs - 100;
      await heartbeat(svc, 'near');
      const cached = await route(svc, '203.0.113.9');
      assert.deepEqual(ids(cached), ['far', 'near']);
      // …and once the lease is over plus one TTL, no answer offers it, whatever the sweep timer did meanwhile.
      now += ttlMs;
      const later = await route(svc, '203.0.113.9');
      assert.deepEqual(ids(later), ['near']);
    } finally {
      await svc.close();
    }
  });

  test('routeCacheMs: 0 ranks every request', async () => {
    const svc = service(0);
    try {
      await fleet(svc);
      const first = await route(svc, '203.0.113.9');
      now += 1;
      assert.equal((await route(svc, '203.0.113.9')).generatedAtMs, first.generatedAtMs + 1);
    } finally {
      await svc.close();
    }
  });

  test('RouteCache: hit until its lifetime on the passed-in clock (spread over half to all the TTL), filed by prefix, cleared whole or by prefix, bounded, off at 0', () => {
    const cache = new RouteCache<string>(100, 2);
    const key = routeCacheKey({ origin: 'game', prefix: '203.0.113.0/24', reporter: undefined, region: undefined, lat: 48, lon: 2, limit: 8, twoHop: undefined, exit: undefined });
    assert.notEqual(key, routeCacheKey({ origin: 'game', prefix: '203.0.113.0/24', reporter: '203.0.113.9', region: undefined, lat: 48, lon: 2, limit: 8, twoHop: undefined, exit: undefined }), 'a reporter with its own figures has its own entry');
    const prefix = '203.0.113.0/24';
    cache.set(0, prefix, key, 'a');
    assert.equal(cache.get(50, prefix, key), 'a');
    assert.equal(cache.get(99, '198.51.100.0/24', key), undefined, 'filed by prefix');
    assert.equal(cache.get(100, prefix, key), undefined);
    cache.set(100, prefix, key, 'b');
    cache.clear();
    assert.equal(cache.get(101, prefix, key), undefined);
    cache.set(100, prefix, key, 'c');
    cache.clearPrefix(prefix);
    assert.equal(cache.get(101, prefix, key), undefined);
    assert.equal(cache.size, 0);
    for (const k of ['x', 'y', 'z']) cache.set(200, prefix, k, k);
    assert.equal(cache.size, 2);
    assert.equal(cache.get(201, prefix, 'x'), undefined, 'the oldest entry made room');
    assert.equal(cache.get(201, prefix, 'z'), 'z');
    // Lifetimes are spread: of 8 answers made at once, the ones that expire before the TTL do so at different times, none before half of it.
    const spread = new RouteCache<string>(1000);
    for (let i = 0; i < 8; i++) spread.set(0, prefix, `k${i}`, 'v');
    const expiry = Array.from({ length: 8 }, (_, i) => [...Array(1001).keys()].find((t) => spread.get(t, prefix, `k${i}`) === undefined)!);
    assert.ok(expiry.every((t) => t > 500 && t <= 1000), `expiries ${expiry.join(' ')}`);
    assert.equal(new Set(expiry).size, 8, `expiries ${expiry.join(' ')}`);
    const off = new RouteCache<string>(0);
    off.set(0, prefix, key, 'a');
    assert.equal(off.get(0, prefix, key), undefined);
  });
});
