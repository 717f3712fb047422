/**
 * One Store compliance suite, run against MemoryStore and against RedisStore on a real
 * redis-server this test starts on a free port (and stops by PID). Each case opens
 * handles on one backend, as replicas would.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { MeasurementRecord } from '../src/core/measurements.js';
import type { RelayRecord } from '../src/core/registry.js';
import { MemoryBackend, MemoryStore, RedisStore, type Store, type StoreChange } from '../src/store/index.js';
import { startRedis, waitFor, type RedisProcess } from './support.js';

interface Harness {
  readonly name: string;
  /** A new handle on this suite's backend (call with a fresh `namespace` for an empty backend). */
  open(namespace: string): Promise<Store>;
}

function relayRecord(relayId: string, atMs: number): RelayRecord {
  return {
    relayId,
    region: 'eu-west',
    latitude: 53.3,
    longitude: -6.2,
    tunnelAddress: '198.51.100.1:4433',
    probeAddress: '198.51.100.1:4434',
    capacitySessions: 500,
    load: { sessions: 3, packetsPerSecond: 120.5, cpuFraction: 0.25, draining: false },
    registeredAtMs: atMs,
    lastHeartbeatAtMs: atMs,
  };
}

function measurement(from: string, to: string, atMs: number, rttMs = 12.5): MeasurementRecord {
  return { from, to, rttMs, jitterMs: 1.25, lossFraction: 0.01, samples: 40, reports: 2, updatedAtMs: atMs };
}

function complianceSuite(harness: () => Harness): void {
  const ns = (): string => randomBytes(4).toString('hex');

  test('relay records: put, list, replace, expiry', async () => {
    const h = harness();
    const store = await h.open(ns());
    try {
      const now = Date.now();
      await store.putRelay(relayRecord('r1', now), now + 60_000);
      await store.putRelay(relayRecord('r2', now), now + 60_000);
      await store.putRelay(relayRecord('gone', now - 10_000), now - 1);
      await store.putRelay({ ...relayRecord('r1', now + 5), load: { sessions: 9, packetsPerSecond: 1, cpuFraction: 0.5, draining: true } }, now + 60_000);
      const listed = (await store.listRelays(now)).sort((a, b) => a.relayId.localeCompare(b.relayId));
      assert.deepEqual(listed.map((r) => r.relayId), ['r1', 'r2']);
      assert.deepEqual(listed[0], { ...relayRecord('r1', now + 5), load: { sessions: 9, packetsPerSecond: 1, cpuFraction: 0.5, draining: true } });
      assert.deepEqual(listed[1], relayRecord('r2', now));
    } finally {
      await store.close();
    }
  });

  test('measurements: keyed by (from, to), replaced, expired', async () => {
    const h = harness();
    const store = await h.open(ns());
    try {
      const now = Date.now();
      await store.putMeasurement(measurement('relay:a', 'origin:g', now, 10), now + 1000);
      await store.putMeasurement(measurement('relay:a', 'origin:g', now + 1, 11), now + 1000);
      await store.putMeasurement(measurement('relay:a', 'relay:b', now), now + 1000);
      await store.putMeasurement(measurement('client:203.0.113.0/24', 'relay:a', now), now + 1000);
      await store.putMeasurement(measurement('relay:old', 'relay:a', now - 5000), now - 1);
      const listed = await store.listMeasurements(now);
      assert.equal(listed.length, 3);
      assert.equal(listed.find((m) => m.to === 'origin:g')!.rttMs, 11);
      assert.deepEqual(listed.find((m) => m.from.startsWith('client:')), measurement('client:203.0.113.0/24', 'relay:a', now));
      assert.deepEqual(await store.listMeasurements(now + 1000), []);
    } finally {
      await store.close();
    }
  });

  test('revocations: one per session, expire with the ticket', async () => {
    const h = harness();
    const store = await h.open(ns());
    try {
      const now = Date.now();
      await store.putRevocation({ sessionId: '0123456789abcdef', revokedAtMs: now, expiresAtMs: now + 60_000 });
      await store.putRevocation({ sessionId: '0123456789abcdef', revokedAtMs: now + 1, expiresAtMs: now + 60_000 });
      await store.putRevocation({ sessionId: 'fedcba9876543210', revokedAtMs: now, expiresAtMs: now + 10 });
      const listed = await store.listRevocations(now);
      assert.equal(listed.length, 2);
      assert.deepEqual((await store.listRevocations(now + 10)).map((r) => r.sessionId), ['0123456789abcdef']);
    } finally {
      await store.close();
    }
  });

  test('prune deletes expired entries and keeps the rest', async () => {
    const h = harness();
    const store = await h.open(ns());
    try {
      const now = Date.now();
      await store.putRelay(relayRecord('keep', now), now + 60_000);
      await store.putRelay(relayRecord('drop', now), now + 5);
      await store.putMeasurement(measurement('relay:keep', 'origin:g', now), now + 60_000);
      await store.putMeasurement(measurement('relay:drop', 'origin:g', now), now + 5);
      await store.putRevocation({ sessionId: '00000000000000aa', revokedAtMs: now, expiresAtMs: now + 5 });
      assert.equal(await store.prune(now + 10), 3);
      assert.equal(await store.prune(now + 10), 0);
      assert.deepEqual((await store.listRelays(now)).map((r) => r.relayId), ['keep']);
      assert.equal((await store.listMeasurements(now)).length, 1);
      assert.equal((await store.listRevocations(now)).length, 0);
    } finally {
      await store.close();
    }
  });

  test("changes reach other handles' subscribers, not the writer's own", async () => {
    const h = harness();
    const namespace = ns();
    const a = await h.open(namespace);
    const b = await h.open(namespace);
    try {
      const seenByA: StoreChange[] = [];
      const seenByB: StoreChange[] = [];
      a.subscribe((c) => seenByA.push(c));
      const unsubscribe = b.subscribe((c) => seenByB.push(c));
      // Redis subscriptions are asynchronous: wait until a probe write is seen.
      const now = Date.now();
      assert.ok(
        await waitFor(async () => {
          await a.putRelay(relayRecord('probe', now), now + 60_000);
          return seenByB.some((c) => c.kind === 'relay');
        }, 5000, 50),
        'b never saw a change made through a',
      );
      seenByB.length = 0;
      await a.putRelay(relayRecord('r1', now), now + 60_000);
      await a.putMeasurement(measurement('relay:r1', 'origin:g', now), now + 60_000);
      await a.putRevocation({ sessionId: '1111111111111111', revokedAtMs: now, expiresAtMs: now + 60_000 });
      assert.ok(await waitFor(() => seenByB.length >= 3, 5000), `b saw ${seenByB.length} of 3 changes`);
      assert.deepEqual(seenByB.map((c) => c.kind), ['relay', 'measurement', 'revocation']);
      assert.deepEqual(seenByB[0], { kind: 'relay', record: relayRecord('r1', now) });
      assert.deepEqual(seenByB[2], { kind: 'revocation', revocation: { sessionId: '1111111111111111', revokedAtMs: now, expiresAtMs: now + 60_000 } });
      assert.equal(seenByA.filter((c) => c.kind !== 'resync').length, 0, 'a must not hear its own writes');
      // b's view of the backend is the same as a's.
      assert.deepEqual((await b.listRelays(now)).map((r) => r.relayId).sort(), ['probe', 'r1']);
      unsubscribe();
      await a.putRelay(relayRecord('r2', now), now + 60_000);
      await b.putRelay(relayRecord('r3', now), now + 60_000);
      assert.ok(await waitFor(() => seenByA.some((c) => c.kind === 'relay' && c.record.relayId === 'r3'), 5000));
      assert.equal(seenByB.length, 3, 'an unsubscribed listener hears nothing more');
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('join tokens: taken once of many concurrent takes across handles, never after expiry, pruned', async () => {
    const h = harness();
    const namespace = ns();
    const a = await h.open(namespace);
    const b = await h.open(namespace);
    try {
      const now = Date.now();
      await a.putJoinToken({ tokenHash: 'aa'.repeat(32), relayId: 'relay-1', expiresAtMs: now + 60_000 });
      await a.putJoinToken({ tokenHash: 'bb'.repeat(32), relayId: 'relay-2', expiresAtMs: now - 1 });
      // Eight takes at once, through two handles (two replicas): exactly one gets the token.
      const takes = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).takeJoinToken('aa'.repeat(32), now)));
      assert.deepEqual(
        takes.filter((t) => t !== undefined),
        [{ tokenHash: 'aa'.repeat(32), relayId: 'relay-1', expiresAtMs: now + 60_000 }],
      );
      assert.equal(await b.takeJoinToken('aa'.repeat(32), now), undefined, 'a taken token is gone');
      assert.equal(await b.takeJoinToken('bb'.repeat(32), now), undefined, 'an expired token is not taken');
      assert.equal(await a.takeJoinToken('cc'.repeat(32), now), undefined, 'an unknown token is not taken');
      await a.putJoinToken({ tokenHash: 'dd'.repeat(32), relayId: 'relay-3', expiresAtMs: now + 10 });
      assert.ok((await a.prune(now + 20)) >= 1);
      assert.equal(await a.takeJoinToken('dd'.repeat(32), now), undefined, 'pruned');
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('relay identities: put, replaced, listed by every handle, and published to the others', async () => {
    const h = harness();
    const namespace = ns();
    const a = await h.open(namespace);
    const b = await h.open(namespace);
    const seenByB: StoreChange[] = [];
    b.subscribe((c) => seenByB.push(c));
    try {
      const now = Date.now();
      const identity = { relayId: 'relay-1', publicKey: Buffer.alloc(32, 1).toString('base64'), enrolledAtMs: now };
      assert.ok(
        await waitFor(async () => {
          await a.putIdentity(identity);
          return seenByB.some((c) => c.kind === 'identity');
        }, 5000, 50),
        'b never saw an identity written through a',
      );
      await a.putIdentity({ ...identity, revokedAtMs: now + 1 });
      await a.putIdentity({ relayId: 'relay-2', publicKey: Buffer.alloc(32, 2).toString('base64'), enrolledAtMs: now });
      assert.ok(await waitFor(() => seenByB.filter((c) => c.kind === 'identity').length >= 3, 5000));
      assert.deepEqual(seenByB.filter((c) => c.kind === 'identity').at(-2), { kind: 'identity', identity: { ...identity, revokedAtMs: now + 1 } });
      const listed = (await b.listIdentities()).sort((x, y) => x.relayId.localeCompare(y.relayId));
      assert.deepEqual(listed, [{ ...identity, revokedAtMs: now + 1 }, { relayId: 'relay-2', publicKey: Buffer.alloc(32, 2).toString('base64'), enrolledAtMs: now }]);
      assert.equal(await a.prune(now + 10 * 365 * 86_400_000), 0, 'identities do not expire');
      assert.equal((await a.listIdentities()).length, 2);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('status is ok, close is idempotent', async () => {
    const h = harness();
    const store = await h.open(ns());
    const status = store.status();
    assert.equal(status.ok, true, status.detail);
    assert.equal(status.pendingWrites, 0);
    assert.equal(status.kind, store.kind);
    await store.close();
    await store.close();
  });
}

describe('Store compliance: MemoryStore', () => {
  const backends = new Map<string, MemoryBackend>();
  complianceSuite(() => ({
    name: 'memory',
    async open(namespace) {
      let backend = backends.get(namespace);
      if (!backend) backends.set(namespace, (backend = new MemoryBackend()));
      return new MemoryStore(backend);
    },
  }));
});

describe('Store compliance: RedisStore on a real redis-server', () => {
  let redis: RedisProcess;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });
  complianceSuite(() => ({
    name: 'redis',
    open: (namespace) => RedisStore.open({ url: redis.url, keyPrefix: `test-${namespace}:` }),
  }));

  test('an outage: writes queue, status says so, replay and resync when Redis returns', async () => {
    const store = await RedisStore.open({ url: redis.url, keyPrefix: 'outage:' });
    const changes: StoreChange[] = [];
    store.subscribe((c) => changes.push(c));
    try {
      const now = Date.now();
      await store.putRelay(relayRecord('before', now), now + 60_000);
      await redis.kill();
      assert.ok(await waitFor(() => !store.status().ok, 5000), 'status never went down');
      assert.match(store.status().detail, /unreachable/);
      assert.ok(store.status().downSinceMs !== undefined);
      await store.putRelay(relayRecord('during', now), now + 60_000);
      await store.putRevocation({ sessionId: '2222222222222222', revokedAtMs: now, expiresAtMs: now + 60_000 });
      assert.equal(store.status().pendingWrites, 2);
      await assert.rejects(store.listRelays(now), /unavailable/);
      await redis.restart(); // empty: no persistence
      assert.ok(await waitFor(() => store.status().ok, 10_000), `status never came back: ${store.status().detail}`);
      assert.ok(changes.some((c) => c.kind === 'resync'), 'subscribers were not told to resync');
      assert.equal(store.status().pendingWrites, 0);
      assert.deepEqual((await store.listRelays(now)).map((r) => r.relayId), ['during']);
      assert.deepEqual((await store.listRevocations(now)).map((r) => r.sessionId), ['2222222222222222']);
    } finally {
      await store.close();
    }
  });
});
