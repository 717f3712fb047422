/**
 * Two `slipstream coordinator` processes on one real redis-server (started here on a
 * free port, killed and restarted by PID): a relay registered through one is ranked by
 * the other; a revocation made through one reaches a relay following the other; when
 * Redis dies both keep serving, say so in /health and logs, and catch up when it returns.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinatorClient, type RevocationEntry } from '../../kit/coordinator-client.js';
import { freePort, startCoordinatorProcess, startRedis, testKeys, waitFor, writeConfig, type CoordinatorProcess, type RedisProcess } from './support.js';

const relayInfo = (relayId: string) => ({ relayId, region: 'eu', latitude: 50, longitude: 8, tunnelAddress: '127.0.0.1:4433', probeAddress: '127.0.0.1:4434', capacitySessions: 100 });
const load = { sessions: 0, packetsPerSecond: 0, cpuFraction: 0.1, draining: false };

describe('two coordinator replicas on one Redis', () => {
  const keys = testKeys();
  let redis: RedisProcess;
  let config: { path: string; cleanup: () => void };
  let a: CoordinatorProcess;
  let b: CoordinatorProcess;
  let relayA: CoordinatorClient;
  let relayB: CoordinatorClient;
  let sdkA: CoordinatorClient;
  let sdkB: CoordinatorClient;

  before(async () => {
    redis = await startRedis();
    config = writeConfig(keys, 'origins:\n  - name: game\n    latitude: 50\n    longitude: 8\n');
    const args = async (): Promise<string[]> => ['--config', config.path, '--store', redis.url, '--listen', `127.0.0.1:${await freePort()}`, '--lease-ms', '5000'];
    [a, b] = await Promise.all([startCoordinatorProcess(await args()), startCoordinatorProcess(await args())]);
    relayA = new CoordinatorClient({ baseUrl: a.url, fleetSecret: keys.fleetSecret });
    relayB = new CoordinatorClient({ baseUrl: b.url, fleetSecret: keys.fleetSecret });
    sdkA = new CoordinatorClient({ baseUrl: a.url });
    sdkB = new CoordinatorClient({ baseUrl: b.url });
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
    config?.cleanup();
  });

  test('a relay registered through one replica is ranked by the other', async () => {
    assert.equal((await sdkA.health()).store.kind, 'redis');
    await relayA.register(relayInfo('via-a'));
    await relayA.reportRelayPaths('via-a', [{ origin: 'game', rttMs: 5, jitterMs: 0.5, lossFraction: 0, samples: 20 }]);
    assert.ok(await waitFor(async () => (await sdkB.route({ origin: 'game' })).candidates.some((c) => c.relayId === 'via-a' && c.legs.relayToOrigin.source === 'measured'), 5000), 'replica b never ranked the relay registered through a');
    // Heartbeats through b keep it alive for a too.
    await relayB.heartbeat('via-a', { ...load, sessions: 7 });
    assert.ok(await waitFor(async () => (await sdkA.fleet()).relays.find((r) => r.relayId === 'via-a')?.load.sessions === 7, 5000));
  });

  test('a revocation made through one replica reaches a relay following the other', async () => {
    const backendA = new CoordinatorClient({ baseUrl: a.url, apiKey: keys.apiKey });
    const session = await backendA.issueSession({ origin: 'game', ttlS: 120 });
    const got: RevocationEntry[] = [];
    const follower = relayB.followRevocations((list) => got.push(...list), { waitMs: 10_000, sinceMs: Date.now() - 1000 });
    try {
      await new Promise((r) => setTimeout(r, 100));
      const started = Date.now();
      await backendA.revokeSession(session.sessionId);
      assert.ok(await waitFor(() => got.some((r) => r.sessionId === session.sessionId), 10_000), 'revocation did not reach the follower of b within 10 s');
      console.log(`# revocation through a reached a follower of b in ${Date.now() - started} ms`);
    } finally {
      follower.close();
      await follower.done;
    }
  });

  test('Redis dies: both keep serving and say so; when it returns they catch up', async () => {
    await relayA.register(relayInfo('steady'));
    assert.ok(await waitFor(async () => (await sdkB.route({ origin: 'game' })).candidates.some((c) => c.relayId === 'steady'), 5000));
    await redis.kill();
    assert.ok(await waitFor(async () => (await sdkA.health()).status === 'degraded', 5000), 'a never reported the outage');
    assert.ok(await waitFor(async () => (await sdkB.health()).status === 'degraded', 5000), 'b never reported the outage');
    assert.match((await sdkA.health()).reason!, /store unreachable/);
    assert.ok(await waitFor(() => a.stdout().includes('"event":"storeDown"'), 2000), 'no storeDown log line');
    // Still serving from local state: routes, registrations, heartbeats, tickets, revocations.
    assert.ok((await sdkB.route({ origin: 'game' })).candidates.some((c) => c.relayId === 'steady'));
    await relayA.register(relayInfo('during-outage'));
    const backendA = new CoordinatorClient({ baseUrl: a.url, apiKey: keys.apiKey });
    const session = await backendA.issueSession({ origin: 'game', ttlS: 120 });
    await backendA.revokeSession(session.sessionId);
    assert.ok((await sdkA.health()).store.pendingWrites >= 2);

    await redis.restart(); // empty: everything must come back from the replicas
    const heartbeats = async (): Promise<void> => {
      await relayA.heartbeat('during-outage', load);
      await relayA.heartbeat('steady', load);
    };
    assert.ok(await waitFor(async () => (await sdkA.health()).status === 'ok' && (await sdkB.health()).status === 'ok', 10_000, 100), 'replicas never reconnected');
    assert.ok(await waitFor(() => a.stdout().includes('"event":"storeUp"'), 2000), 'no storeUp log line');
    assert.ok(
      await waitFor(async () => {
        await heartbeats();
        return (await sdkB.route({ origin: 'game' })).candidates.some((c) => c.relayId === 'during-outage');
      }, 10_000, 200),
      'b never learned of the relay registered through a during the outage',
    );
    assert.ok(
      await waitFor(async () => (await relayB.revocations(0, 0)).revocations.some((r) => r.sessionId === session.sessionId), 5000, 100),
      'b never learned of the revocation made through a during the outage',
    );
  });
});
