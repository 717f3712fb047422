/**
 * Fleet-secret rotation on the coordinator: `keys.fleetSecretsPrevious` (config shape,
 * errors naming file, line and key), a real `slipstream coordinator` process on
 * 127.0.0.1 that accepts relays on the current and on a previous secret and reports the
 * latter (`/health` fleetSecrets, `/v1/fleet`, the metric, the log), then — restarted
 * without the old secret, as deploy/README.md's procedure does — refuses a relay still
 * using it with a 403 that says why. And two replicas on one store: a relay that
 * authenticated at one is classified at the other.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { ConfigReader } from '../../kit/config.js';
import { ConfigError } from '../../proto/src/errors.js';
import { runCli } from '../../test/support/run-cli.js';
import { until } from '../../test/support/wait.js';
import { CoordinatorApiError, CoordinatorClient } from '../../kit/coordinator-client.js';
import { FLEET_SECRETS_PREVIOUS_MAX, loadSettings } from '../src/config.js';
import { CoordinatorService, fleetSecretId } from '../src/service.js';
import { MemoryBackend, MemoryStore } from '../src/store/index.js';
import { freePort, startCoordinatorProcess, testKeys, waitFor, writeConfig } from './support.js';

const secret = (): string => randomBytes(32).toString('base64');
const relayInfo = (relayId: string) => ({ relayId, region: 'eu-central', latitude: 50, longitude: 8, tunnelAddress: '127.0.0.1:4433', probeAddress: '127.0.0.1:4433', capacitySessions: 100 });
const load = { sessions: 0, packetsPerSecond: 0, cpuFraction: 0.1, draining: false };

function settingsFrom(yaml: string) {
  return loadSettings(new ConfigReader('coordinator.yaml', yaml), { listen: '127.0.0.1:0' });
}

function configError(yaml: string): ConfigError {
  try {
    settingsFrom(yaml);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail('expected a ConfigError');
}

describe('keys.fleetSecretsPrevious (config)', () => {
  test('absent: none; the single keys.fleetSecret works as before', () => {
    const current = secret();
    const s = settingsFrom(`keys:\n  fleetSecret: ${current}\n`);
    assert.equal(s.keys.fleetSecret, current);
    assert.deepEqual(s.keys.fleetSecretsPrevious, []);
    assert.deepEqual(settingsFrom('{}').keys.fleetSecretsPrevious, []);
  });

  test('a list of earlier secrets is taken in order', () => {
    const [current, old1, old2] = [secret(), secret(), secret()];
    const s = settingsFrom(`keys:\n  fleetSecret: ${current}\n  fleetSecretsPrevious:\n    - ${old1}\n    - ${old2}\n`);
    assert.equal(s.keys.fleetSecret, current);
    assert.deepEqual(s.keys.fleetSecretsPrevious, [old1, old2]);
    assert.deepEqual(s.keys.generated, ['ticketSigningSeed', 'sealKey', 'apiKeys']);
  });

  test('bad values are refused naming the file, the line and the key', () => {
    const [current, old] = [secret(), secret()];
    const cases: [string, RegExp][] = [
      [`keys:\n  fleetSecretsPrevious: [${old}]\n`, /^coordinator\.yaml:2: keys\.fleetSecretsPrevious: given without keys\.fleetSecret; set keys\.fleetSecret to the new secret/],
      [`keys:\n  fleetSecret: ${current}\n  fleetSecretsPrevious: [${current}]\n`, /^coordinator\.yaml:3: keys\.fleetSecretsPrevious\[0\]: is keys\.fleetSecret itself/],
      [`keys:\n  fleetSecret: ${current}\n  fleetSecretsPrevious:\n    - ${old}\n    - ${old}\n`, /^coordinator\.yaml:5: keys\.fleetSecretsPrevious\[1\]: is listed twice/],
      [`keys:\n  fleetSecret: ${current}\n  fleetSecretsPrevious: [c2hvcnQ=]\n`, /^coordinator\.yaml:3: keys\.fleetSecretsPrevious\[0\]: decodes to 5 bytes; expected at least 16 bytes/],
      [`keys:\n  fleetSecret: ${current}\n  fleetSecretsPrevious: ['not base64!']\n`, /^coordinator\.yaml:3: keys\.fleetSecretsPrevious\[0\]: 'not base64!' is not accepted; expected base64 text/],
      [`keys:\n  fleetSecret: ${current}\n  fleetSecretsPrevious: ${old}\n`, /^coordinator\.yaml:3: keys\.fleetSecretsPrevious: expected a list/],
      [`keys:\n  fleetSecret: ${current}\n  fleetSecretsPrevious: [${Array.from({ length: FLEET_SECRETS_PREVIOUS_MAX + 1 }, secret).join(', ')}]\n`, new RegExp(`^coordinator\\.yaml:3: keys\\.fleetSecretsPrevious: has ${FLEET_SECRETS_PREVIOUS_MAX + 1} items; expected at most ${FLEET_SECRETS_PREVIOUS_MAX}`)],
      [`keys:\n  fleetSecret: ${current}\n  fleetSecretPrevious: [${old}]\n`, /^coordinator\.yaml:3: keys\.fleetSecretPrevious: unknown key/],
    ];
    for (const [yaml, expected] of cases) assert.match(configError(yaml).message, expected, yaml);
  });

  test('the CLI exits 2 with the same line', async () => {
    const keys = testKeys();
    const { path, cleanup } = writeConfig(keys, `  fleetSecretsPrevious: [${keys.fleetSecret}]\n`);
    try {
      const r = await runCli(['coordinator', '--config', path]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /coordinator\.yaml:\d+: keys\.fleetSecretsPrevious\[0\]: is keys\.fleetSecret itself; list only earlier secrets here/);
    } finally {
      cleanup();
    }
  });
});

describe('fleet-secret rotation on a real coordinator process', () => {
  test('accepts relays on the new and the old secret and reports the old ones; without the old secret, refuses them with 403 and a reason', async () => {
    const keys = testKeys();
    const oldSecret = keys.fleetSecret;
    const newSecret = secret();
    const port = await freePort();
    // Step 1 of the procedure: the new secret is keys.fleetSecret, the old one is kept.
    const rotating = writeConfig({ ...keys, fleetSecret: newSecret }, `  fleetSecretsPrevious: [${oldSecret}]\n`);
    let coordinator = await startCoordinatorProcess(['--config', rotating.path, '--listen', `127.0.0.1:${port}`, '--lease-ms', '3000']);
    try {
      // The line is written at start; under load the pipe may deliver it a moment after the URL.
      await until(() => coordinator.stdout().includes('"event":"fleetSecretsPrevious"'), 10_000, `the fleetSecretsPrevious line (stdout so far: ${coordinator.stdout()})`);
      const onOld = new CoordinatorClient({ baseUrl: coordinator.url, fleetSecret: oldSecret });
      const onNew = new CoordinatorClient({ baseUrl: coordinator.url, fleetSecret: newSecret });
      const sdk = new CoordinatorClient({ baseUrl: coordinator.url });
      // Every relay route takes either secret.
      await onOld.register(relayInfo('old-1'));
      await onNew.register(relayInfo('new-1'));
      await onOld.heartbeat('old-1', load);
      await onNew.heartbeat('new-1', load);
      assert.equal((await onOld.reportRelayPaths('old-1', [{ targetRelayId: 'new-1', rttMs: 1, jitterMs: 0, lossFraction: 0, samples: 5 }])).taken, 1);
      await onOld.revocations(0, 0);
      await onNew.revocations(0, 0);

      const health = await sdk.health();
      assert.deepEqual(health.fleetSecrets, { accepted: 2, relays: { current: 1, previous: 1, unknown: 0, identity: 0 }, relaysOnPrevious: [{ relayId: 'old-1', health: 'healthy', previousIndex: 1 }], relaysOnUnknown: [] });
      const fleet = await sdk.fleet();
      assert.deepEqual(fleet.relays.map((r) => [r.relayId, r.health, r.fleetSecret]), [['new-1', 'healthy', 'current'], ['old-1', 'healthy', 'previous']]);
      const metrics = await (await fetch(`${coordinator.url}/metrics`)).text();
      assert.match(metrics, /slipstream_coordinator_relays_by_fleet_secret\{secret="current"\} 1/);
      assert.match(metrics, /slipstream_coordinator_relays_by_fleet_secret\{secret="previous"\} 1/);
      // The log says it once, when the relay was first seen on the old secret. The line
      // reaches our pipe after the HTTP reply does, so wait (bounded) for it.
      assert.ok(await waitFor(() => coordinator.stdout().includes('"event":"relayOnPreviousFleetSecret"'), 10_000), coordinator.stdout());
      const warned = coordinator.stdout().split('\n').filter((l) => l.includes('"event":"relayOnPreviousFleetSecret"'));
      assert.equal(warned.length, 1, coordinator.stdout());
      assert.match(warned[0]!, /"relayId":"old-1"/);

      // The relay moves to the new secret (restarted with it): reported as current, logged once.
      const moved = new CoordinatorClient({ baseUrl: coordinator.url, fleetSecret: newSecret });
      await moved.register(relayInfo('old-1'));
      assert.deepEqual((await sdk.health()).fleetSecrets.relaysOnPrevious, []);
      assert.ok(await waitFor(() => coordinator.stdout().includes('"event":"relayOnCurrentFleetSecret"'), 10_000), coordinator.stdout());
      // …and a straggler still on the old secret is listed again until it moves too.
      await onOld.register(relayInfo('straggler-1'));
      assert.deepEqual((await sdk.health()).fleetSecrets.relaysOnPrevious.map((r) => r.relayId), ['straggler-1']);
      await coordinator.stop();

      // Step 3: the old secret removed (restart without it). A relay still holding it is refused.
      const done = writeConfig({ ...keys, fleetSecret: newSecret });
      try {
        coordinator = await startCoordinatorProcess(['--config', done.path, '--listen', `127.0.0.1:${port}`, '--lease-ms', '3000']);
        for (const call of [() => onOld.register(relayInfo('straggler-1')), () => onOld.heartbeat('straggler-1', load), () => onOld.revocations(0, 0)]) {
          const refused = await call().then(() => undefined, (e: unknown) => e);
          assert.ok(refused instanceof CoordinatorApiError, String(refused));
          assert.equal(refused.status, 403);
          assert.equal(refused.code, 'forbidden');
          assert.equal(refused.field, 'authorization');
          assert.match(refused.reason, /does not match the fleet secret \(keys\.fleetSecret\) configured on this coordinator; a relay holding a retired or wrong secret must be given the current one/);
        }
        await onNew.register(relayInfo('new-1'));
        const after = await sdk.health();
        assert.deepEqual(after.fleetSecrets, { accepted: 1, relays: { current: 1, previous: 0, unknown: 0, identity: 0 }, relaysOnPrevious: [], relaysOnUnknown: [] });
        // The refusal is logged once a minute per address and claimed relay id: the
        // register and the heartbeat (both claim straggler-1) make one line, the revocation
        // poll (no id) another.
        assert.ok(await waitFor(() => coordinator.stdout().includes('"event":"fleetSecretRefused"'), 10_000));
        const refusals = coordinator.stdout().split('\n').filter((l) => l.includes('"event":"fleetSecretRefused"'));
        assert.equal(refusals.length, 2, refusals.join('\n'));
        assert.match(refusals[0]!, /"path":"\/v1\/relays\/register","claimedRelayId":"straggler-1"/);
        assert.doesNotMatch(refusals[1]!, /claimedRelayId/);
        assert.doesNotMatch(coordinator.stdout(), new RegExp(oldSecret.replace(/[+/=]/g, '\\$&')), 'the secret never reaches the log');
      } finally {
        done.cleanup();
      }
    } finally {
      await coordinator.stop();
      rotating.cleanup();
    }
  });

  test('a 403 with previous secrets configured says how many are accepted', async () => {
    const keys = testKeys();
    const config = writeConfig(keys, `  fleetSecretsPrevious: [${secret()}, ${secret()}]\n`);
    const coordinator = await startCoordinatorProcess(['--config', config.path, '--listen', `127.0.0.1:${await freePort()}`]);
    try {
      const refused = await new CoordinatorClient({ baseUrl: coordinator.url, fleetSecret: secret() }).register(relayInfo('x-1')).then(() => undefined, (e: unknown) => e);
      assert.ok(refused instanceof CoordinatorApiError && refused.status === 403, String(refused));
      assert.match(refused.reason, /does not match the fleet secret \(keys\.fleetSecret\) or the 2 previous one\(s\) \(keys\.fleetSecretsPrevious\)/);
      // The API key is no fleet secret, and a fleet secret no API key.
      const asApi = await new CoordinatorClient({ baseUrl: coordinator.url, fleetSecret: keys.apiKey }).register(relayInfo('x-1')).then(() => undefined, (e: unknown) => e);
      assert.ok(asApi instanceof CoordinatorApiError && asApi.status === 403);
      const asFleet = await new CoordinatorClient({ baseUrl: coordinator.url, apiKey: keys.fleetSecret }).issueSession({ origin: 'x' }).then(() => undefined, (e: unknown) => e);
      assert.ok(asFleet instanceof CoordinatorApiError && asFleet.status === 403);
    } finally {
      await coordinator.stop();
      config.cleanup();
    }
  });
});

describe('replicas sharing a store', () => {
  test("a relay's secret is classified at every replica: previous where that replica keeps it, unknown where it does not", async () => {
    const keys = testKeys();
    const [oldSecret, newSecret] = [keys.fleetSecret, secret()];
    // Two handles on one backend: what two replicas on one Redis see (changes delivered asynchronously).
    const backend = new MemoryBackend();
    const stores = [new MemoryStore(backend), new MemoryStore(backend)] as const;
    const logger = pino({ level: 'silent' });
    const rotated = new CoordinatorService({ settings: settingsFrom(`keys:\n  fleetSecret: ${newSecret}\n  fleetSecretsPrevious: [${oldSecret}]\n`), store: stores[0], logger });
    const notYet = new CoordinatorService({ settings: settingsFrom(`keys:\n  fleetSecret: ${oldSecret}\n`), store: stores[1], logger });
    try {
      const call = (service: CoordinatorService, path: string, token: string, body: unknown) =>
        service.handle({ method: 'POST', path, query: new URLSearchParams(), authorization: `Bearer ${token}`, body: Buffer.from(JSON.stringify(body)), remoteAddress: '127.0.0.1' });
      assert.equal((await call(rotated, '/v1/relays/register', oldSecret, relayInfo('fra-1'))).status, 200);
      assert.equal((await call(rotated, '/v1/relays/register', newSecret, relayInfo('fra-2'))).status, 200);
      // The record carries a fingerprint of the secret (never the secret) through the store.
      assert.ok(await waitFor(() => notYet.core.registry.get('fra-2') !== undefined, 1000));
      assert.equal(notYet.core.registry.get('fra-1')?.fleetSecretId, fleetSecretId(oldSecret));
      assert.ok(!JSON.stringify([...notYet.core.registry.list()]).includes(oldSecret));
      const health = async (s: CoordinatorService) => ((await s.handle({ method: 'GET', path: '/health', query: new URLSearchParams(), body: new Uint8Array(), remoteAddress: '127.0.0.1' })).json as { fleetSecrets: { relays: unknown; relaysOnUnknown: { relayId: string }[] } }).fleetSecrets;
      assert.deepEqual((await health(rotated)).relays, { current: 1, previous: 1, unknown: 0, identity: 0 });
      // The replica not restarted yet holds the old secret as its current one; the new one it does not know.
      assert.deepEqual((await health(notYet)).relays, { current: 1, previous: 0, unknown: 1, identity: 0 });
      assert.deepEqual((await health(notYet)).relaysOnUnknown.map((r) => r.relayId), ['fra-2']);
      // The not-yet-rotated replica refuses the new secret: why coordinators go first.
      assert.equal((await call(notYet, '/v1/relays/heartbeat', newSecret, { relayId: 'fra-2', ...load })).status, 403);
    } finally {
      rotated.close();
      notYet.close();
      for (const store of stores) await store.close();
    }
  });
});
