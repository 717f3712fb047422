/**
 * End-to-end, real processes on 127.0.0.x: a coordinator that requires relay identities
 * (`fleet.requireRelayIdentity: true`) and two relays that have only a key file path (the
 * key is generated at first start) and a one-time join token from
 * `slipstream coordinator token`. Both enroll, register and heartbeat signed; a restart
 * with the token already spent registers again with the stored key; the key of one
 * relay cannot drain the other; a relay rotates its key by a reload (new key file, new
 * token, SIGHUP); revoking one relay's identity takes that relay out and leaves the
 * other healthy.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorApiError, CoordinatorClient, rawPublicKeyBase64 } from '../kit/coordinator-client.js';
import { rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { CliProcess } from './support/cli-process.js';
import { runCli } from './support/run-cli.js';
import { eventually } from './support/wait.js';

const LEASE_MS = 1500;
const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-identity-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('relays with their own keys', () => {
  test('enroll with a join token, register signed, survive a restart; one cannot drain the other; revoking one leaves the other', async () => {
    const seed = randomBytes(32);
    const sealKey = randomBytes(32).toString('base64');
    const fleetSecret = randomBytes(24).toString('base64');
    const adminKey = randomBytes(24).toString('base64');
    const adminKeyFile = join(dir, 'admin.key');
    writeFileSync(adminKeyFile, adminKey, { mode: 0o600 });
    const origin = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const originPort = (origin.address() as net.AddressInfo).port;
    after(() => origin.close());

    const coordinatorPath = join(dir, 'coordinator.yaml');
    writeFileSync(
      coordinatorPath,
      [
        'listen: 127.0.0.1:0',
        'logLevel: info',
        `leaseMs: ${LEASE_MS}`,
        'origins:',
        `  - { name: game, address: 127.0.0.1:${originPort} }`,
        'fleet: { requireRelayIdentity: true }',
        'keys:',
        `  ticketSigningSeed: ${seed.toString('base64')}`,
        `  sealKey: ${sealKey}`,
        `  fleetSecret: ${fleetSecret}`,
        `  adminKeys: [${adminKey}]`,
      ].join('\n'),
    );
    const coordinator = CliProcess.start(['coordinator', '--config', coordinatorPath]);
    const url = await eventually(() => /listening on (http:\/\/\S+)/.exec(coordinator.output)?.[1], 15_000, 'the coordinator to listen');
    const fleet = new CoordinatorClient({ baseUrl: url });

    const relayYaml = (id: string, address: string, tokenLine: string): string =>
      [
        `upstreamBindAddress: ${address}`,
        'metrics: { listen: "off" }',
        'drain: { timeoutMs: 200 }',
        'tunnel:',
        `  listen: ${address}:0`,
        `  ticketPublicKey: ${Buffer.from(rawPublicKey(ticketSigningKeyFromSeed(seed))).toString('base64')}`,
        `  sealKey: ${sealKey}`,
        `  origins: { game: 127.0.0.1:${originPort} }`,
        `  coordinatorUrl: ${url}`,
        `  coordinatorIdentityKeyFile: ${join(dir, `${id}.key`)}`,
        tokenLine,
        'fleet:',
        `  relayId: ${id}`,
        '  region: eu-central',
        '  latitude: 50',
        '  longitude: 8',
        '  heartbeatIntervalMs: 300',
      ].join('\n');
    const token = async (id: string): Promise<string> => {
      const r = await runCli(['coordinator', 'token', '--relay-id', id, '--url', url, '--admin-key-file', adminKeyFile]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    };
    // One relay has the token inline, the other in a file.
    writeFileSync(join(dir, 'relay-b.token'), await token('relay-b'));
    const configs = {
      'relay-a': relayYaml('relay-a', '127.0.0.2', `  coordinatorJoinToken: ${await token('relay-a')}`),
      'relay-b': relayYaml('relay-b', '127.0.0.3', `  coordinatorJoinTokenFile: ${join(dir, 'relay-b.token')}`),
    };
    const relays = new Map<string, CliProcess>();
    for (const [id, yaml] of Object.entries(configs)) {
      writeFileSync(join(dir, `${id}.yaml`), yaml);
      relays.set(id, CliProcess.start(['relay', '--config', join(dir, `${id}.yaml`)]));
    }
    const bothHealthy = async (): Promise<true | undefined> => {
      const f = await fleet.fleet();
      return f.relays.length === 2 && f.relays.every((r) => r.health === 'healthy' && r.fleetSecret === 'identity') ? true : undefined;
    };
    await eventually(bothHealthy, 15_000, 'both relays registered with their own keys');
    for (const id of ['relay-a', 'relay-b']) {
      assert.equal(statSync(join(dir, `${id}.key`)).mode & 0o777, 0o600, `${id}.key is private`);
      assert.match(relays.get(id)!.output, /"event":"fleet_enrolled"/);
    }

    // Restart relay-a with the same config: its token is spent, its key is enrolled.
    const first = relays.get('relay-a')!;
    first.kill('SIGTERM');
    assert.equal(await first.exited, 0, first.output);
    const restarted = CliProcess.start(['relay', '--config', join(dir, 'relay-a.yaml')]);
    relays.set('relay-a', restarted);
    await restarted.waitFor(/"event":"fleet_registered"/, 'stdout', 15_000);
    assert.doesNotMatch(restarted.output, /fleet_enrolled/);
    await eventually(bothHealthy, 15_000, 'both relays healthy after the restart');

    // Whoever holds relay-a's key (the relay itself, or someone who took it) cannot drain relay-b.
    const aKey = createPrivateKey(readFileSync(join(dir, 'relay-a.key'), 'utf8'));
    const asA = new CoordinatorClient({ baseUrl: url, identity: { relayId: 'relay-a', privateKey: aKey } });
    await assert.rejects(asA.heartbeat('relay-b', { sessions: 0, packetsPerSecond: 0, cpuFraction: 0, draining: true }), (e: unknown) => e instanceof CoordinatorApiError && e.status === 403);
    // Nor can the fleet secret.
    await assert.rejects(new CoordinatorClient({ baseUrl: url, fleetSecret }).heartbeat('relay-b', { sessions: 0, packetsPerSecond: 0, cpuFraction: 0, draining: true }), (e: unknown) => e instanceof CoordinatorApiError && e.code === 'identity_required');
    assert.equal((await fleet.fleet()).relays.find((r) => r.relayId === 'relay-b')?.load.draining, false);

    // Rotate relay-b's key by a reload, as deploy/README.md says: the key file moved aside, a
    // new token, SIGHUP. The relay generates a new key, enrolls it and re-registers from the
    // same process; the old key no longer speaks for relay-b.
    const oldB = createPrivateKey(readFileSync(join(dir, 'relay-b.key'), 'utf8'));
    renameSync(join(dir, 'relay-b.key'), join(dir, 'relay-b.key.old'));
    writeFileSync(join(dir, 'relay-b.token'), await token('relay-b'));
    const relayB = relays.get('relay-b')!;
    relayB.kill('SIGHUP');
    await eventually(() => (relayB.output.match(/"event":"fleet_enrolled"/g)?.length === 2 ? true : undefined), 15_000, 'relay-b enrolled its new key');
    const newB = createPrivateKey(readFileSync(join(dir, 'relay-b.key'), 'utf8'));
    assert.notEqual(rawPublicKeyBase64(newB), rawPublicKeyBase64(oldB));
    await eventually(bothHealthy, 15_000, 'both relays healthy after relay-b rotated its key');
    const withOldKey = new CoordinatorClient({ baseUrl: url, identity: { relayId: 'relay-b', privateKey: oldB } });
    await assert.rejects(withOldKey.heartbeat('relay-b', { sessions: 0, packetsPerSecond: 0, cpuFraction: 0, draining: true }), (e: unknown) => e instanceof CoordinatorApiError && e.code === 'identity_key_mismatch');

    // Revoke relay-a: it goes unhealthy (its heartbeats are refused); relay-b stays healthy throughout.
    const revoked = await runCli(['coordinator', 'identities', '--revoke', 'relay-a', '--url', url, '--admin-key-file', adminKeyFile]);
    assert.equal(revoked.code, 0, revoked.stderr);
    await eventually(
      async () => {
        const f = await fleet.fleet();
        const a = f.relays.find((r) => r.relayId === 'relay-a');
        const b = f.relays.find((r) => r.relayId === 'relay-b');
        assert.equal(b?.health, 'healthy', 'relay-b stays healthy while relay-a is revoked');
        return a?.health === 'unhealthy' ? true : undefined;
      },
      LEASE_MS + 5_000,
      'relay-a unhealthy after its identity was revoked',
    );
    await restarted.waitFor(/identity_revoked/, 'stdout', 5_000);
    const b = (await fleet.fleet()).relays.find((r) => r.relayId === 'relay-b');
    assert.ok(b !== undefined && b.health === 'healthy' && b.lastHeartbeatAgeMs < LEASE_MS, JSON.stringify(b));

    for (const relay of relays.values()) await relay.stop();
    await coordinator.stop();
  });
});
