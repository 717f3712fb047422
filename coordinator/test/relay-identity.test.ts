/**
 * Per-relay identity (issue 14 row 6) on a real `slipstream coordinator` process on
 * 127.0.0.1: relays enroll their own Ed25519 keys with one-time join tokens minted by
 * `slipstream coordinator token`, and then a relay with its own key cannot drain,
 * impersonate or report for another; the fleet secret cannot speak for an enrolled
 * relay (and, with `fleet.requireRelayIdentity`, for none); a captured request cannot be
 * replayed; revoking one identity stops that relay only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../test/support/run-cli.js';
import { CoordinatorApiError, CoordinatorClient, rawPublicKeyBase64 } from '../../kit/coordinator-client.js';
import { API_PATHS, type FleetAnswer } from '../../proto/src/api/contract.js';
import { signRelayRequest } from '../../proto/src/api/relay-identity.js';
import { freePort, startCoordinatorProcess, testKeys, writeConfig, type CoordinatorProcess } from './support.js';

const relayInfo = (relayId: string, host = '127.0.0.1') => ({ relayId, region: 'eu-central', latitude: 50, longitude: 8, tunnelAddress: `${host}:4433`, probeAddress: `${host}:4434`, capacitySessions: 100 });
const load = { sessions: 0, packetsPerSecond: 0, cpuFraction: 0.1, draining: false };

/** The API error a call rejects with (fails the test when it resolves). */
async function refusal(call: Promise<unknown>): Promise<CoordinatorApiError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof CoordinatorApiError, String(error));
    return error;
  }
  assert.fail('expected the coordinator to refuse');
}

interface Harness {
  coordinator: CoordinatorProcess;
  /** Starts another coordinator process on the same config and port (stop the first one before). */
  restart(): Promise<CoordinatorProcess>;
  fleetSecret: string;
  adminKeyFile: string;
  admin: CoordinatorClient;
  cleanup(): Promise<void>;
}

async function startHarness(requireRelayIdentity: boolean, fleetExtra = ''): Promise<Harness> {
  const keys = testKeys();
  const adminKey = randomBytes(24).toString('base64');
  const dir = mkdtempSync(join(tmpdir(), 'slip-ident-'));
  const adminKeyFile = join(dir, 'admin.key');
  writeFileSync(adminKeyFile, `${adminKey}\n`, { mode: 0o600 });
  const config = writeConfig(keys, `  adminKeys: [${adminKey}]\nfleet:\n  requireRelayIdentity: ${requireRelayIdentity}\n${fleetExtra}`);
  const args = ['--config', config.path, '--listen', `127.0.0.1:${await freePort()}`, '--lease-ms', '5000'];
  const coordinator = await startCoordinatorProcess(args);
  return {
    coordinator,
    restart: () => startCoordinatorProcess(args),
    fleetSecret: keys.fleetSecret,
    adminKeyFile,
    admin: new CoordinatorClient({ baseUrl: coordinator.url, adminKey }),
    async cleanup() {
      await coordinator.stop();
      config.cleanup();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A relay's own key pair and a client that signs with it. */
function ownKey(url: string, relayId: string): { privateKey: KeyObject; publicKey: string; client: CoordinatorClient } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey: rawPublicKeyBase64(privateKey), client: new CoordinatorClient({ baseUrl: url, identity: { relayId, privateKey } }) };
}

/** Mints a token with the real CLI (`slipstream coordinator token`) and returns it. */
async function cliToken(h: Harness, relayId: string): Promise<string> {
  const r = await runCli(['coordinator', 'token', '--relay-id', relayId, '--url', h.coordinator.url, '--admin-key-file', h.adminKeyFile]);
  assert.equal(r.code, 0, r.stderr);
  const token = r.stdout.trim();
  assert.match(token, /^sjt_[A-Za-z0-9_-]{43}$/);
  return token;
}

describe('relay identity on a real coordinator (fleet.requireRelayIdentity: true)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(true);
  });
  after(async () => {
    await h.cleanup();
  });

  test('a relay with its own key cannot drain, impersonate or report for another; revoking one stops only that one', async () => {
    const url = h.coordinator.url;
    const a = ownKey(url, 'relay-a');
    const b = ownKey(url, 'relay-b');
    await a.client.enroll({ relayId: 'relay-a', publicKey: a.publicKey, token: await cliToken(h, 'relay-a') });
    await b.client.enroll({ relayId: 'relay-b', publicKey: b.publicKey, token: (await h.admin.mintJoinToken({ relayId: 'relay-b' })).token });
    await a.client.register(relayInfo('relay-a', '127.0.0.2'));
    await b.client.register(relayInfo('relay-b', '127.0.0.3'));
    await b.client.reportRelayPaths('relay-b', [{ targetRelayId: 'relay-a', rttMs: 5, jitterMs: 0.5, lossFraction: 0, samples: 20 }]);

    // A drains B: refused, and B stays healthy.
    const drain = await refusal(a.client.heartbeat('relay-b', { ...load, draining: true }));
    assert.equal(drain.status, 403);
    assert.equal(drain.code, 'forbidden');
    assert.match(drain.reason, /signed by relay 'relay-a', which may speak only for itself, not for 'relay-b'/);
    // A re-registers as B with its own addresses: refused, B's addresses unchanged.
    const impersonate = await refusal(a.client.register(relayInfo('relay-b', '127.0.0.66')));
    assert.equal(impersonate.status, 403);
    // A registers a new relay id it holds no key for: refused.
    assert.equal((await refusal(a.client.register(relayInfo('relay-fake', '127.0.0.66')))).status, 403);
    // A reports measurements as B: refused.
    assert.equal((await refusal(a.client.reportRelayPaths('relay-b', [{ targetRelayId: 'relay-a', rttMs: 3000, jitterMs: 900, lossFraction: 0.9, samples: 1000 }]))).status, 403);

    const fleet = await h.admin.fleet();
    const relayB = fleet.relays.find((r) => r.relayId === 'relay-b');
    assert.ok(relayB, JSON.stringify(fleet.relays));
    assert.equal(relayB.health, 'healthy');
    assert.equal(relayB.load.draining, false);
    assert.equal(relayB.tunnelAddress, '127.0.0.3:4433');
    assert.equal(relayB.fleetSecret, 'identity');
    assert.deepEqual(fleet.relays.map((r) => r.relayId).sort(), ['relay-a', 'relay-b']);
    assert.deepEqual(fleet.mesh.relayIds, ['relay-a', 'relay-b']);
    assert.equal(fleet.mesh.rttMs[1]![0], 5, 'B→A keeps the figure B reported, not A’s forgery');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /slipstream_coordinator_relay_auth_refusals_total\{reason="not_self"\} 4\n/, 'the four attempts are counted');

    // The fleet secret speaks for nobody here.
    const secret = new CoordinatorClient({ baseUrl: url, fleetSecret: h.fleetSecret });
    const bySecret = await refusal(secret.heartbeat('relay-b', { ...load, draining: true }));
    assert.equal(bySecret.status, 401);
    assert.equal(bySecret.code, 'identity_required');
    assert.equal((await refusal(secret.register(relayInfo('relay-c')))).code, 'identity_required');
    assert.equal((await refusal(secret.revocations(0, 0))).code, 'identity_required');
    const bare = await fetch(`${url}${API_PATHS.relayHeartbeat}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ relayId: 'relay-b', ...load, draining: true }) });
    assert.equal(bare.status, 401);
    assert.match(await bare.text(), /"code":"identity_required"/);
    // The relay's own key reads the revocation feed.
    assert.deepEqual((await a.client.revocations(0, 0)).revocations, []);

    // Revoke A: A is refused from now on; B is untouched.
    const revoked = await runCli(['coordinator', 'identities', '--revoke', 'relay-a', '--url', url, '--admin-key-file', h.adminKeyFile]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /relay 'relay-a': identity revoked/);
    const afterRevoke = await refusal(a.client.heartbeat('relay-a', load));
    assert.equal(afterRevoke.status, 403);
    assert.equal(afterRevoke.code, 'identity_revoked');
    // The dashboard's recent events name the revocation, once (a second revoke changes nothing).
    assert.equal((await runCli(['coordinator', 'identities', '--revoke', 'relay-a', '--url', url, '--admin-key-file', h.adminKeyFile])).code, 0);
    const events = ((await (await fetch(`${url}${API_PATHS.fleet}`)).json()) as FleetAnswer).events;
    assert.deepEqual(events.filter((e) => e.type === 'relayIdentityRevoked').map((e) => e.relayId), ['relay-a'], JSON.stringify(events));
    assert.deepEqual(events.filter((e) => e.type === 'relayUp').map((e) => e.relayId).sort(), ['relay-a', 'relay-b']);
    await b.client.heartbeat('relay-b', load);
    await b.client.register(relayInfo('relay-b', '127.0.0.3'));
    const listed = await runCli(['coordinator', 'identities', '--json', '--url', url, '--admin-key-file', h.adminKeyFile]);
    assert.equal(listed.code, 0, listed.stderr);
    const identities = (JSON.parse(listed.stdout) as { identities: { relayId: string; publicKey: string; revokedAtMs?: number }[] }).identities;
    assert.deepEqual(
      identities.map((i) => [i.relayId, i.publicKey, i.revokedAtMs !== undefined]),
      [
        ['relay-a', a.publicKey, true],
        ['relay-b', b.publicKey, false],
      ],
    );
  });

  test('a join token works once, only for the relay id it names, and not without an admin key', async () => {
    const url = h.coordinator.url;
    const c = ownKey(url, 'relay-c');
    const tokenC = await cliToken(h, 'relay-c');
    // Used for another relay id: refused, and spent.
    const d = ownKey(url, 'relay-d');
    const wrongId = await refusal(d.client.enroll({ relayId: 'relay-d', publicKey: d.publicKey, token: tokenC }));
    assert.equal(wrongId.status, 403);
    assert.equal(wrongId.code, 'invalid_token');
    assert.equal((await refusal(c.client.enroll({ relayId: 'relay-c', publicKey: c.publicKey, token: tokenC }))).code, 'invalid_token');
    // A fresh token enrolls once; the second use (say, an attacker's key) is refused and the first key still speaks.
    const token2 = await cliToken(h, 'relay-c');
    await c.client.enroll({ relayId: 'relay-c', publicKey: c.publicKey, token: token2 });
    const thief = ownKey(url, 'relay-c');
    assert.equal((await refusal(thief.client.enroll({ relayId: 'relay-c', publicKey: thief.publicKey, token: token2 }))).code, 'invalid_token');
    await c.client.register(relayInfo('relay-c'));
    assert.equal((await refusal(thief.client.heartbeat('relay-c', load))).code, 'identity_key_mismatch');
    // A relay whose key was never enrolled is told so.
    const stranger = ownKey(url, 'relay-e');
    assert.equal((await refusal(stranger.client.register(relayInfo('relay-e')))).code, 'unknown_identity');
    // Minting needs an admin key: the fleet secret and the API key do not do.
    const notAdmin = new CoordinatorClient({ baseUrl: url, adminKey: h.fleetSecret });
    assert.equal((await refusal(notAdmin.mintJoinToken({ relayId: 'relay-x' }))).status, 403);
    const noKey = await runCli(['coordinator', 'token', '--relay-id', 'relay-x', '--url', url]);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /needs an admin key/);
  });

  test('a captured signed request cannot be replayed, nor sent with an old timestamp or another body', async () => {
    const url = h.coordinator.url;
    const f = ownKey(url, 'relay-f');
    await f.client.enroll({ relayId: 'relay-f', publicKey: f.publicKey, token: (await h.admin.mintJoinToken({ relayId: 'relay-f' })).token });
    await f.client.register(relayInfo('relay-f'));
    const send = (body: string, authorization: string): Promise<Response> =>
      fetch(`${url}${API_PATHS.relayHeartbeat}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body });
    const body = JSON.stringify({ relayId: 'relay-f', ...load, draining: true });
    const parts = { method: 'POST', pathAndQuery: API_PATHS.relayHeartbeat, timestampMs: Date.now(), nonce: randomBytes(16).toString('hex'), relayId: 'relay-f' };
    const auth = signRelayRequest(f.privateKey, parts, Buffer.from(body));
    assert.equal((await send(body, auth)).status, 200);
    const replay = await send(body, auth);
    assert.equal(replay.status, 401);
    assert.match(await replay.text(), /already used: a replayed request/);
    const old = { ...parts, timestampMs: Date.now() - 120_000, nonce: randomBytes(16).toString('hex') };
    const stale = await send(body, signRelayRequest(f.privateKey, old, Buffer.from(body)));
    assert.equal(stale.status, 401);
    assert.match(await stale.text(), /more than 60 s from the coordinator's clock/);
    const fresh = { ...parts, nonce: randomBytes(16).toString('hex') };
    const altered = await send(JSON.stringify({ relayId: 'relay-f', ...load }), signRelayRequest(f.privateKey, fresh, Buffer.from(body)));
    assert.equal(altered.status, 401);
    assert.match(await altered.text(), /does not verify/);
  });
});

describe('relay identity during the migration (fleet.requireRelayIdentity: false)', () => {
  test('the fleet secret still serves relays without an identity, but cannot speak for an enrolled one', async () => {
    const h = await startHarness(false);
    try {
      const url = h.coordinator.url;
      const secret = new CoordinatorClient({ baseUrl: url, fleetSecret: h.fleetSecret });
      await secret.register(relayInfo('legacy-1'));
      await secret.heartbeat('legacy-1', load);
      const a = ownKey(url, 'relay-a');
      await a.client.enroll({ relayId: 'relay-a', publicKey: a.publicKey, token: (await h.admin.mintJoinToken({ relayId: 'relay-a' })).token });
      await a.client.register(relayInfo('relay-a', '127.0.0.2'));
      const drain = await refusal(secret.heartbeat('relay-a', { ...load, draining: true }));
      assert.equal(drain.status, 403);
      assert.equal(drain.code, 'identity_required');
      assert.equal((await refusal(secret.register(relayInfo('relay-a', '127.0.0.66')))).code, 'identity_required');
      assert.equal((await refusal(secret.reportRelayPaths('relay-a', [{ origin: 'x', rttMs: 1, jitterMs: 0, lossFraction: 0, samples: 1 }]))).code, 'identity_required');
      // …and an enrolled relay cannot use its key for the legacy one either.
      assert.equal((await refusal(a.client.heartbeat('legacy-1', { ...load, draining: true }))).code, 'forbidden');
      const health = (await h.admin.health()).fleetSecrets;
      assert.deepEqual(health.relays, { current: 1, previous: 0, unknown: 0, identity: 1 });
      const relayA = (await h.admin.fleet()).relays.find((r) => r.relayId === 'relay-a');
      assert.equal(relayA?.load.draining, false);
      assert.equal(relayA?.tunnelAddress, '127.0.0.2:4433');
    } finally {
      await h.cleanup();
    }
  });
});

describe('relay identities across a coordinator restart (store: memory)', () => {
  test('with fleet.identitiesFile an enrolled relay registers again after the restart, and a revoked one stays revoked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'slip-ident-file-'));
    const file = join(dir, 'identities.json');
    const h = await startHarness(true, `  identitiesFile: ${file}\n`);
    let second: CoordinatorProcess | undefined;
    try {
      const url = h.coordinator.url;
      const a = ownKey(url, 'relay-a');
      const b = ownKey(url, 'relay-b');
      for (const r of [a, b] as const) {
        const relayId = r === a ? 'relay-a' : 'relay-b';
        await r.client.enroll({ relayId, publicKey: r.publicKey, token: (await h.admin.mintJoinToken({ relayId })).token });
        await r.client.register(relayInfo(relayId));
      }
      await h.admin.revokeRelayIdentity('relay-b');
      await h.coordinator.stop();
      second = await h.restart();
      assert.equal(second.url, url);
      await a.client.register(relayInfo('relay-a'));
      await a.client.heartbeat('relay-a', load);
      assert.equal((await refusal(b.client.register(relayInfo('relay-b')))).code, 'identity_revoked');
    } finally {
      await second?.stop();
      await h.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
