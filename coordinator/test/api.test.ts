/**
 * The HTTP API on a real `slipstream coordinator` process on 127.0.0.1: start-up with
 * no flags, the relay/SDK/backend flows through CoordinatorClient, tickets that proto
 * verifies, revocations reaching a follower, and bad input answered with 4xx JSON
 * naming the field — plus fast-check driving the handlers with arbitrary requests.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { pino } from 'pino';
import { openSessionKey, ticketVerifyKeyFromRaw, verifyTicket } from '../../proto/src/ticket.js';
import { runCli } from '../../test/support/run-cli.js';
import { CoordinatorApiError, CoordinatorClient, type RevocationEntry } from '../../kit/coordinator-client.js';
import { ConfigReader } from '../../kit/config.js';
import { loadSettings } from '../src/config.js';
import { CoordinatorService } from '../src/service.js';
import { MemoryStore } from '../src/store/index.js';
import { freePort, startCoordinatorProcess, testKeys, waitFor, writeConfig, type CoordinatorProcess } from './support.js';

const ORIGINS = `origins:
  - name: eu-game
    address: 10.9.0.1:27015
    region: eu-central
    latitude: 50.1
    longitude: 8.7
`;

const relayInfo = (relayId: string, latitude = 50, longitude = 8) => ({ relayId, region: 'eu-central', latitude, longitude, tunnelAddress: '127.0.0.1:4433', probeAddress: '127.0.0.1:4434', capacitySessions: 100 });
const load = { sessions: 1, packetsPerSecond: 10, cpuFraction: 0.1, draining: false };

async function raw(url: string, method: string, path: string, body?: string, authorization?: string): Promise<{ status: number; json: { error?: { code: string; field?: string; reason: string } } & Record<string, unknown> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (authorization !== undefined) headers.authorization = authorization;
  const res = await fetch(`${url}${path}`, { method, headers, body });
  return { status: res.status, json: (await res.json()) as never };
}

describe('slipstream coordinator process', () => {
  test('with no flags it starts on embedded defaults, prints where it listens and warns about generated keys', async () => {
    const port = 7400;
    // The embedded default address; nothing else on the CI machine uses it.
    const coordinator = await startCoordinatorProcess([]);
    try {
      assert.equal(coordinator.url, `http://127.0.0.1:${port}`);
      assert.match(coordinator.stderr(), /WARNING: development keys generated/);
      assert.match(coordinator.stderr(), /ticket public key \(relays verify tickets with it\): [A-Za-z0-9+/]{43}=/);
      const health = await new CoordinatorClient({ baseUrl: coordinator.url }).health();
      assert.equal(health.status, 'ok');
      assert.ok(coordinator.stdout().split('\n').some((l) => l.includes('"event":"listening"')), 'pino JSON log line');
    } finally {
      await coordinator.stop();
    }
  });

  test('config errors exit 2 naming file, line and key; bad flags exit 2', async () => {
    const { path, cleanup } = writeConfig(testKeys(), 'leaseMs: 10\n');
    try {
      const r = await runCli(['coordinator', '--config', path]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /coordinator\.yaml:\d+: leaseMs: 10 is out of range; expected an integer from 500 to 600000 ms/);
      writeFileSync(path, 'keys:\n  sealKey: c2hvcnQ=\n');
      const short = await runCli(['coordinator', '--config', path]);
      assert.equal(short.code, 2);
      assert.match(short.stderr, /:2: keys\.sealKey: decodes to 5 bytes; expected exactly 32 bytes/);
      const flag = await runCli(['coordinator', '--lease-ms', '1']);
      assert.equal(flag.code, 2);
      assert.match(flag.stderr, /--lease-ms: 1 is out of range/);
      const help = await runCli(['coordinator', '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /--store memory\|redis/);
    } finally {
      cleanup();
    }
  });

  describe('API', () => {
    const keys = testKeys();
    let config: { path: string; cleanup: () => void };
    let coordinator: CoordinatorProcess;
    let relay: CoordinatorClient;
    let backend: CoordinatorClient;
    let sdk: CoordinatorClient;
    before(async () => {
      config = writeConfig(keys, `${ORIGINS}allowedRelayIds: [fra-1, fra-2, ams-1]\n`);
      coordinator = await startCoordinatorProcess(['--config', config.path, '--listen', `127.0.0.1:${await freePort()}`, '--lease-ms', '2000']);
      relay = new CoordinatorClient({ baseUrl: coordinator.url, fleetSecret: keys.fleetSecret });
      backend = new CoordinatorClient({ baseUrl: coordinator.url, apiKey: keys.apiKey });
      sdk = new CoordinatorClient({ baseUrl: coordinator.url });
    });
    after(async () => {
      await coordinator?.stop();
      config?.cleanup();
    });

    test('configured keys are used: no warning', () => {
      assert.doesNotMatch(coordinator.stderr(), /WARNING/);
    });

    test('relays register, heartbeat and report; the SDK gets a ranked route with figures and reasons', async () => {
      const reg = await relay.register(relayInfo('fra-1'));
      assert.equal(reg.leaseMs, 2000);
      assert.equal(reg.heartbeatIntervalMs, 666);
      await relay.register(relayInfo('ams-1', 52.4, 4.9));
      await relay.heartbeat('fra-1', load);
      const rep = await relay.reportRelayPaths('fra-1', [
        { origin: 'eu-game', rttMs: 3, jitterMs: 0.2, lossFraction: 0, samples: 20 },
        { targetRelayId: 'ams-1', rttMs: 8, jitterMs: 0.3, lossFraction: 0, samples: 20 },
        { targetRelayId: 'nope', rttMs: 8, jitterMs: 0.3, lossFraction: 0, samples: 20 },
      ]);
      assert.equal(rep.taken, 2);
      assert.match(rep.skipped[0]!.reason, /not registered/);
      await relay.reportRelayPaths('ams-1', [{ origin: 'eu-game', rttMs: 9, jitterMs: 2, lossFraction: 0.02, samples: 20 }]);
      const mine = await sdk.reportClientPaths([{ relayId: 'fra-1', rttMs: 20, jitterMs: 1, lossFraction: 0, samples: 30 }, { relayId: 'ams-1', rttMs: 15, jitterMs: 1, lossFraction: 0, samples: 30 }]);
      assert.equal(mine.clientPrefix, '127.0.0.0/24');
      const route = await sdk.route({ origin: 'eu-game', region: 'eu-central', twoHop: false });
      assert.equal(route.clientPrefix, '127.0.0.0/24');
      assert.deepEqual(route.candidates.map((c) => c.relayId), ['fra-1', 'ams-1']);
      const [best, second] = route.candidates;
      assert.equal(best!.legs.clientToRelay.source, 'measured');
      assert.ok(best!.legs.clientToRelay.ageMs! >= 0 && best!.legs.clientToRelay.confidence > 0);
      assert.equal(best!.rttMs, 23);
      assert.match(best!.reason, /lowest estimated whole-path cost/);
      assert.match(second!.reason, /behind #1, mostly more loss/);
      // With two-hop routes, ams-1's clients do better through fra-1 (15 + 8 + 3 ms) than direct (lossy, 9 ms).
      const twoHop = await sdk.route({ origin: 'eu-game' });
      assert.deepEqual(twoHop.candidates.map((c) => [c.kind, c.relayId, c.exitRelayId]), [['direct', 'fra-1', undefined], ['twoHop', 'ams-1', 'fra-1'], ['direct', 'ams-1', undefined]]);
      const geo = await sdk.route({ origin: 'eu-game', latitude: 52.4, longitude: 4.9, limit: 1 });
      assert.equal(geo.candidates.length, 1);
      const fleet = await sdk.fleet();
      assert.deepEqual(fleet.relays.map((r) => r.relayId), ['ams-1', 'fra-1']);
      assert.deepEqual(fleet.mesh.rttMs[1], [8, null]);
    });

    test('a draining relay gets no new clients; a silent one leaves within its lease', async () => {
      await relay.register(relayInfo('fra-2'));
      await relay.heartbeat('fra-2', { ...load, draining: true });
      const route = await sdk.route({ origin: 'eu-game' });
      assert.ok(!route.candidates.some((c) => c.relayId === 'fra-2'));
      assert.match(route.excluded.find((e) => e.relayId === 'fra-2')!.reason, /draining/);
      // fra-1 and ams-1 stop heartbeating (lease 2 s): bounded wait for them to leave.
      assert.ok(await waitFor(async () => (await sdk.route({ origin: 'eu-game' })).candidates.length === 0, 5000, 100), 'relays never left');
      // fra-2 heartbeated last, so its lease ends last: wait for all three (bounded), as the
      // others may have left before fra-2 even registered when earlier tests ran slowly.
      assert.ok(await waitFor(async () => (await sdk.health()).relays.unhealthy === 3, 5000, 100), `unhealthy: ${(await sdk.health()).relays.unhealthy} of 3`);
    });

    test('tickets verify with proto and open with the seal key; revocations reach a follower', async () => {
      const issued = await backend.issueSession({ origin: 'eu-game', ttlS: 60, limits: { packetsPerSecond: 100 } });
      const publicKey = await sdk.ticketPublicKey();
      const verified = verifyTicket(new Uint8Array(Buffer.from(issued.ticket, 'base64')), ticketVerifyKeyFromRaw(publicKey), Date.now());
      assert.ok(verified.ok, JSON.stringify(verified));
      assert.equal(verified.claims.sessionId, issued.sessionId);
      assert.equal(verified.claims.origin, 'eu-game');
      assert.deepEqual(verified.claims.limits, { packetsPerSecond: 100, bytesPerSecond: 2_000_000 });
      assert.equal(verified.claims.expiresAtMs - verified.claims.issuedAtMs, 60_000);
      const key = openSessionKey(verified.claims, new Uint8Array(Buffer.from(keys.sealKey, 'base64')));
      assert.deepEqual(Buffer.from(key!).toString('base64'), issued.sessionKey);
      assert.equal(verified.claims.playerId, undefined, 'no player id unless asked for');
      // A player id is signed into the ticket (relays give it to the origin).
      const withPlayer = await backend.issueSession({ origin: 'eu-game', playerId: 'steam:76561197960287930' });
      assert.equal(withPlayer.playerId, 'steam:76561197960287930');
      const v2 = verifyTicket(new Uint8Array(Buffer.from(withPlayer.ticket, 'base64')), ticketVerifyKeyFromRaw(publicKey), Date.now());
      assert.ok(v2.ok && v2.claims.playerId === 'steam:76561197960287930');

      const got: RevocationEntry[] = [];
      const follower = relay.followRevocations((list) => got.push(...list), { waitMs: 10_000 });
      try {
        await new Promise((r) => setTimeout(r, 100)); // let the long poll start
        const revoked = await backend.revokeSession(issued.sessionId);
        assert.equal(revoked.alreadyRevoked, false);
        assert.ok(await waitFor(() => got.length === 1, 10_000), 'the follower did not hear the revocation within 10 s');
        assert.equal(got[0]!.sessionId, issued.sessionId);
        assert.equal((await backend.revokeSession(issued.sessionId)).alreadyRevoked, true);
      } finally {
        follower.close();
        await follower.done;
      }
      const page = await relay.revocations(0, 0);
      assert.deepEqual(page.revocations.map((r) => r.sessionId), [issued.sessionId]);
    });

    test('bad input gets a 4xx JSON error naming the field and the reason', async () => {
      const url = coordinator.url;
      const fleet = `Bearer ${keys.fleetSecret}`;
      const api = `Bearer ${keys.apiKey}`;
      const cases: [string, string, string | undefined, string | undefined, number, string, string | undefined][] = [
        ['POST', '/v1/relays/register', '{"relayId": ', fleet, 400, 'bad_json', '<body>'],
        ['POST', '/v1/relays/register', '[1,2]', fleet, 400, 'invalid_field', '<body>'],
        ['POST', '/v1/relays/register', JSON.stringify({ ...relayInfo('fra-1'), latitude: 'north' }), fleet, 400, 'invalid_field', 'latitude'],
        ['POST', '/v1/relays/register', JSON.stringify({ ...relayInfo('fra-1'), latitude: 91 }), fleet, 400, 'invalid_field', 'latitude'],
        ['POST', '/v1/relays/register', JSON.stringify({ ...relayInfo('fra-1'), extra: 1 }), fleet, 400, 'invalid_field', 'extra'],
        ['POST', '/v1/relays/register', JSON.stringify(relayInfo('stranger')), fleet, 403, 'relay_not_allowed', 'relayId'],
        ['POST', '/v1/relays/register', JSON.stringify(relayInfo('fra-1')), undefined, 401, 'unauthorized', 'authorization'],
        ['POST', '/v1/relays/register', JSON.stringify(relayInfo('fra-1')), 'Bearer wrong-secret', 403, 'forbidden', 'authorization'],
        ['POST', '/v1/relays/heartbeat', JSON.stringify({ relayId: 'ghost', ...load }), fleet, 404, 'unknown_relay', 'relayId'],
        ['POST', '/v1/relays/heartbeat', JSON.stringify({ relayId: 'fra-1', ...load, sessions: -1 }), fleet, 400, 'invalid_field', 'sessions'],
        ['POST', '/v1/relays/reports', JSON.stringify({ relayId: 'fra-1', reports: [{ origin: 'eu-game', rttMs: -1, jitterMs: 0, lossFraction: 0, samples: 1 }] }), fleet, 400, 'invalid_field', 'reports[0].rttMs'],
        ['POST', '/v1/relays/reports', JSON.stringify({ relayId: 'fra-1', reports: [{ rttMs: 1, jitterMs: 0, lossFraction: 0, samples: 1 }] }), fleet, 400, 'invalid_field', 'reports[0]'],
        ['POST', '/v1/reports', JSON.stringify({ reports: [{ relayId: 'fra-1', rttMs: 1, jitterMs: 0, lossFraction: 2, samples: 1 }] }), undefined, 400, 'invalid_field', 'reports[0].lossFraction'],
        ['GET', '/v1/route?origin=atlantis', undefined, undefined, 404, 'unknown_origin', 'origin'],
        ['GET', '/v1/route', undefined, undefined, 400, 'invalid_field', 'origin'],
        ['GET', '/v1/route?origin=eu-game&lat=10', undefined, undefined, 400, 'invalid_field', 'lon'],
        ['GET', '/v1/route?origin=eu-game&limit=0', undefined, undefined, 400, 'invalid_field', 'limit'],
        ['GET', '/v1/route?origin=eu-game&colour=red', undefined, undefined, 400, 'invalid_field', 'colour'],
        ['POST', '/v1/session', JSON.stringify({ origin: 'eu-game' }), undefined, 401, 'unauthorized', 'authorization'],
        ['POST', '/v1/session', JSON.stringify({ origin: 'eu-game' }), 'Bearer nope', 403, 'forbidden', 'authorization'],
        ['POST', '/v1/session', JSON.stringify({ origin: 'eu-game' }), fleet, 403, 'forbidden', 'authorization'],
        ['POST', '/v1/session', JSON.stringify({ origin: 'atlantis' }), api, 404, 'unknown_origin', 'origin'],
        ['POST', '/v1/session', JSON.stringify({ origin: 42 }), api, 400, 'invalid_field', 'origin'],
        ['POST', '/v1/session', JSON.stringify({ origin: 'eu-game', ttlS: 1e9 }), api, 400, 'invalid_field', 'ttlS'],
        ['POST', '/v1/session', JSON.stringify({ origin: 'eu-game', playerId: 'has space' }), api, 400, 'invalid_field', 'playerId'],
        ['POST', '/v1/session', 'not json', api, 400, 'bad_json', '<body>'],
        ['DELETE', '/v1/session/xyz', undefined, api, 400, 'invalid_field', 'sessionId'],
        ['DELETE', '/v1/session/0123456789abcdef', undefined, undefined, 401, 'unauthorized', 'authorization'],
        ['GET', '/v1/revocations?sinceMs=abc', undefined, fleet, 400, 'invalid_field', 'sinceMs'],
        ['GET', '/v1/revocations', undefined, undefined, 401, 'unauthorized', 'authorization'],
        ['PUT', '/v1/route', undefined, undefined, 405, 'method_not_allowed', undefined],
        ['GET', '/v2/anything', undefined, undefined, 404, 'not_found', undefined],
      ];
      for (const [method, path, body, auth, status, code, field] of cases) {
        const r = await raw(url, method, path, body, auth);
        const where = `${method} ${path} ${body?.slice(0, 60) ?? ''}`;
        assert.equal(r.status, status, `${where}: ${JSON.stringify(r.json)}`);
        assert.equal(r.json.error?.code, code, where);
        assert.equal(r.json.error?.field, field, where);
        assert.ok((r.json.error?.reason.length ?? 0) > 5, where);
      }
      const big = await fetch(`${url}/v1/reports`, { method: 'POST', body: 'x'.repeat(300 * 1024) });
      assert.equal(big.status, 413);
      await assert.rejects(backend.issueSession({ origin: 'atlantis' }), (e: unknown) => e instanceof CoordinatorApiError && e.status === 404 && e.field === 'origin');
      assert.equal((await sdk.health()).status, 'ok', 'still alive after bad input');
    });

    test('/metrics speaks Prometheus text', async () => {
      const text = await (await fetch(`${coordinator.url}/metrics`)).text();
      assert.match(text, /slipstream_coordinator_http_requests_total\{route="GET \/v1\/route",status="200"\} \d+/);
      assert.match(text, /slipstream_coordinator_relays\{health="unhealthy"\} \d+/);
      assert.match(text, /slipstream_coordinator_sessions_issued_total 2/);
      assert.match(text, /slipstream_coordinator_store_up 1/);
    });
  });
});

describe('request handlers under fast-check', () => {
  test('arbitrary methods, paths, queries, headers and bodies never crash and never 5xx', async () => {
    const keys = testKeys();
    const settings = loadSettings(new ConfigReader('<test>', `keys:\n  fleetSecret: ${keys.fleetSecret}\n  apiKeys: [${keys.apiKey}]\n${ORIGINS}`), { listen: '127.0.0.1:0' });
    const store = new MemoryStore();
    const service = new CoordinatorService({ settings, store, logger: pino({ level: 'silent' }) });
    try {
      service.core.register(Date.now(), relayInfo('fra-1'));
      const paths = ['/', '/health', '/v1/keys', '/v1/origins', '/v1/fleet', '/v1/relays/register', '/v1/relays/heartbeat', '/v1/relays/reports', '/v1/revocations', '/v1/reports', '/v1/route', '/v1/session', '/v1/session/0123456789abcdef', '/v1/session/%E0%A4%A', '/nope'];
      const json = fc.jsonValue({ maxDepth: 4 });
      const shaped = fc.oneof(
        fc.record({ relayId: fc.oneof(fc.constant('fra-1'), fc.string()), region: fc.string(), latitude: fc.double(), longitude: fc.double(), tunnelAddress: fc.string(), probeAddress: fc.string(), capacitySessions: fc.oneof(fc.integer(), fc.double()) }, { requiredKeys: [] }),
        fc.record({ relayId: fc.constant('fra-1'), reports: fc.array(fc.record({ origin: fc.oneof(fc.constant('eu-game'), fc.string()), targetRelayId: fc.string(), rttMs: fc.double(), jitterMs: fc.double(), lossFraction: fc.double(), samples: fc.integer() }, { requiredKeys: [] }), { maxLength: 4 }) }, { requiredKeys: [] }),
        fc.record({ origin: fc.oneof(fc.constant('eu-game'), fc.string()), ttlS: fc.oneof(fc.integer(), fc.double(), fc.string()), limits: json }, { requiredKeys: [] }),
      );
      const body = fc.oneof(
        json.map((v) => Buffer.from(JSON.stringify(v) ?? '')),
        shaped.map((v) => Buffer.from(JSON.stringify(v))),
        fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
        fc.string().map((s) => Buffer.from(s)),
      );
      const query = fc.array(fc.tuple(fc.constantFrom('origin', 'lat', 'lon', 'limit', 'twoHop', 'region', 'sinceMs', 'waitMs', 'x'), fc.oneof(fc.string(), fc.constant('eu-game'), fc.double().map(String))), { maxLength: 4 });
      const auth = fc.oneof(fc.constant(undefined), fc.constant(`Bearer ${keys.fleetSecret}`), fc.constant(`Bearer ${keys.apiKey}`), fc.string());
      await fc.assert(
        fc.asyncProperty(fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH'), fc.constantFrom(...paths), query, auth, body, async (method, path, q, authorization, bytes) => {
          const search = new URLSearchParams();
          for (const [k, v] of q) search.append(k, v);
          if (search.has('waitMs')) search.set('waitMs', '0');
          else search.set('waitMs', '0');
          const res = await service.handle({ method, path, query: search, authorization, body: bytes, remoteAddress: '203.0.113.9' });
          assert.ok(res.status < 500, `${method} ${path}?${search} → ${res.status} ${JSON.stringify(res.json)}`);
          if (res.status >= 400) {
            const e = (res.json as { error: { code: string; reason: string } }).error;
            assert.ok(typeof e.code === 'string' && typeof e.reason === 'string' && e.reason.length > 0);
          }
        }),
        { numRuns: 3000, interruptAfterTimeLimit: 20_000 },
      );
    } finally {
      service.close();
      await store.close();
    }
  });
});
