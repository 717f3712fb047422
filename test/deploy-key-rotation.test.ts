/**
 * deploy/README.md "Key rotation", fleet secret, followed step by step with real
 * processes on 127.0.0.1 (a `slipstream coordinator` and `slipstream relay`s whose
 * `fleet` section registers them, the secret in `coordinatorFleetSecretFile` as the relay
 * role writes it):
 *   0. a fleet on the old secret;
 *   1. the coordinator restarted with the new secret as `keys.fleetSecret` and the old
 *      one in `keys.fleetSecretsPrevious`: relays on the old secret stay in `/v1/route`,
 *      `/health` lists them under `fleetSecrets.relaysOnPrevious`;
 *   2. relays rolled one at a time onto the new secret, one by a reload (the secret file
 *      rewritten, SIGHUP: the same process re-registers, and is never dropped from
 *      `/v1/route`; a mistyped secret first is refused and changes nothing), the other by a restart (the one not yet rolled is never dropped
 *      while it restarts); the list empties;
 *   3. the old secret removed: every rolled relay stays; a relay still holding the old
 *      secret is refused (403, with the reason in its own log and the coordinator's).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { CliProcess } from './support/cli-process.js';
import { fleetRelayYaml } from './support/local-fleet.js';
import { freePort } from './support/sockets.js';
import { eventually } from './support/wait.js';

const LEASE_MS = 1500;
const dir = mkdtempSync(join(tmpdir(), 'slipstream-key-rotation-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('fleet-secret rotation without an outage window (deploy/README.md "Key rotation")', () => {
  test('add the new secret to the coordinator, roll the relays, remove the old secret', async () => {
    const seed = randomBytes(32);
    const sealKey = randomBytes(32).toString('base64');
    const apiKey = randomBytes(32).toString('base64');
    const oldSecret = randomBytes(32).toString('base64');
    const newSecret = randomBytes(32).toString('base64');
    const origin = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    after(() => origin.close());
    const originPort = (origin.address() as net.AddressInfo).port;
    // A fixed port: relays keep their coordinatorUrl across the coordinator's restarts.
    const port = await freePort('tcp');
    const url = `http://127.0.0.1:${port}`;

    const coordinatorPath = join(dir, 'coordinator.yaml');
    const writeCoordinator = (current: string, previous: string[]): void =>
      writeFileSync(
        coordinatorPath,
        [
          `listen: 127.0.0.1:${port}`,
          'store: memory',
          `leaseMs: ${LEASE_MS}`,
          'allowedRelayIds: [fra-1, ams-1, straggler-1]',
          'origins:',
          `  - { name: game, address: 127.0.0.1:${originPort} }`,
          'keys:',
          `  ticketSigningSeed: ${seed.toString('base64')}`,
          `  sealKey: ${sealKey}`,
          `  fleetSecret: ${current}`,
          ...(previous.length > 0 ? [`  fleetSecretsPrevious: [${previous.join(', ')}]`] : []),
          `  apiKeys: [${apiKey}]`,
        ].join('\n'),
      );
    const startCoordinator = async (): Promise<CliProcess> => {
      const proc = CliProcess.start(['coordinator', '--config', coordinatorPath]);
      await eventually(() => (/listening on http/.test(proc.output) ? true : proc.child.exitCode !== null ? assert.fail(proc.output) : undefined), 15_000, 'the coordinator to listen');
      return proc;
    };
    const sdk = new CoordinatorClient({ baseUrl: url });

    // A relay as the relay role lays it out: the secret in its own file, read at start and at each reload.
    const writeSecret = (id: string, secret: string): string => {
      const secretFile = join(dir, `${id}.fleet.secret`);
      writeFileSync(secretFile, `${secret}\n`);
      return secretFile;
    };
    const startRelay = (id: string, secret: string, metricsPort?: number): CliProcess => {
      const secretFile = writeSecret(id, secret);
      const path = join(dir, `${id}.yaml`);
      writeFileSync(path, fleetRelayYaml({ relayId: id, latitude: 50.1, longitude: 8.7, seed, sealKeyBase64: sealKey, originPort, coordinatorUrl: url, fleetSecret: { file: secretFile }, fleetKeys: ['heartbeatIntervalMs: 300'], ...(metricsPort !== undefined ? { metricsPort } : {}) }));
      return CliProcess.start(['relay', '--config', path]);
    };
    const routed = async (): Promise<string[]> => (await sdk.route({ origin: 'game', twoHop: false })).candidates.map((c) => c.relayId).sort();
    const bothRouted = (): Promise<true | undefined> => routed().then((ids) => (ids.join() === 'ams-1,fra-1' ? true : undefined), () => undefined);

    // 0. The fleet on the old secret.
    writeCoordinator(oldSecret, []);
    let coordinator = await startCoordinator();
    // fra-1's /metrics: what the relay role's post-reload wait and the alerts read.
    const fraMetricsPort = await freePort('tcp');
    const fleetGauges = async (port: number): Promise<string> =>
      [...(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).matchAll(/^slipstream_relay_fleet_(accepted|settings_applied) (\d)$/gm)].map((m) => `${m[1]}=${m[2]}`).join(' ');
    const relays = new Map<string, CliProcess>([
      ['fra-1', startRelay('fra-1', oldSecret, fraMetricsPort)],
      ['ams-1', startRelay('ams-1', oldSecret)],
    ]);
    await eventually(bothRouted, 15_000, 'both relays in /v1/route on the old secret');

    // 1. The coordinator takes the new secret and keeps the old one.
    await coordinator.stop();
    writeCoordinator(newSecret, [oldSecret]);
    coordinator = await startCoordinator();
    await eventually(bothRouted, 15_000, 'both relays (old secret) back in /v1/route');
    const during = await sdk.health();
    assert.deepEqual(during.fleetSecrets.relaysOnPrevious.map((r) => r.relayId), ['ams-1', 'fra-1']);
    assert.deepEqual(during.fleetSecrets.relays, { current: 0, previous: 2, unknown: 0, identity: 0 });

    // 2. Roll the relays one at a time: fra-1 by a reload (what the relay role does now),
    //    ams-1 by a restart (a relay outside Ansible, or a new release). The relay not
    //    being rolled (still on the old secret) never leaves /v1/route: its heartbeats are
    //    accepted; nor does a relay being reloaded, which re-registers from the same process.
    let rolled = 0;
    for (const [id, other, how] of [['fra-1', 'ams-1', 'reload'], ['ams-1', 'fra-1', 'restart']] as const) {
      let watching = true;
      const misses: string[] = [];
      const mustStay = how === 'reload' ? [id, other] : [other];
      const watcher = (async () => {
        while (watching) {
          const ids = await routed();
          for (const stay of mustStay) if (!ids.includes(stay)) misses.push(`${stay} missing from /v1/route: ${ids.join(',')}`);
          await sleep(100);
        }
      })();
      if (how === 'reload') {
        const relay = relays.get(id)!;
        // A mistyped secret first: the coordinator refuses the new registration, so the
        // relay keeps its running membership (on the old secret) and says why.
        writeSecret(id, randomBytes(32).toString('base64'));
        relay.child.kill('SIGHUP');
        const failed = await eventually(() => /"event":"fleet_change_failed"[^\n]*/.exec(relay.output)?.[0], 15_000, `${id}'s fleet_change_failed log line`);
        assert.match(failed, /coordinator answered 403 forbidden/);
        assert.deepEqual((await sdk.health()).fleetSecrets.relays, { current: 0, previous: 2, unknown: 0, identity: 0 }, 'still on the old secret after the refused reload');
        assert.equal(await fleetGauges(fraMetricsPort), 'accepted=1 settings_applied=0', 'accepted on the old secret; the file\'s not applied');
        // Then the right one.
        writeSecret(id, newSecret);
        relay.child.kill('SIGHUP');
        const changed = await eventually(() => /"event":"fleet_changed"[^\n]*/.exec(relay.output)?.[0], 10_000, `${id}'s fleet_changed log line`);
        assert.match(changed, /"secretChanged":true/);
        assert.ok(!relay.output.includes(newSecret) && !relay.output.includes(oldSecret), 'no secret in the log');
        assert.equal(relay.child.exitCode, null, 'the reloaded relay keeps running');
        assert.equal(await fleetGauges(fraMetricsPort), 'accepted=1 settings_applied=1');
      } else {
        await relays.get(id)!.stop();
        relays.set(id, startRelay(id, newSecret));
      }
      rolled++;
      await eventually(async () => ((await sdk.health()).fleetSecrets.relays.current === rolled ? true : undefined), 15_000, `${id} registered on the new secret`);
      await eventually(bothRouted, 15_000, `${id} back in /v1/route`);
      // Longer than a lease, so a refused heartbeat would have shown.
      await sleep(LEASE_MS + 300);
      watching = false;
      await watcher;
      assert.deepEqual(misses, [], `rolling ${id}`);
      const previous = (await sdk.health()).fleetSecrets.relaysOnPrevious.map((r) => r.relayId);
      assert.deepEqual(previous, rolled === 1 ? [other] : [], `after rolling ${id}`);
    }
    assert.equal((await sdk.health()).fleetSecrets.relays.previous, 0, 'no relay on the old secret: it can go');

    // 3. Remove the old secret. The rolled relays stay; a relay still holding it is refused.
    await coordinator.stop();
    writeCoordinator(newSecret, []);
    coordinator = await startCoordinator();
    await eventually(bothRouted, 15_000, 'both rolled relays in /v1/route without the old secret');
    const stragglerMetricsPort = await freePort('tcp');
    const straggler = startRelay('straggler-1', oldSecret, stragglerMetricsPort);
    const refusal = await eventually(() => /"event":"fleet_error".*"what":"register".*/.exec(straggler.output)?.[0], 15_000, "the straggler's refused registration");
    assert.match(refusal, /coordinator answered 403 forbidden: authorization: does not match the fleet secret \(keys\.fleetSecret\) configured on this coordinator; a relay holding a retired or wrong secret must be given the current one/);
    // The straggler's revocation feed (a GET, no relay id to claim) may be refused and
    // logged before its registration: wait for the line that names it.
    await eventually(() => (/"event":"fleetSecretRefused"[^\n]*"claimedRelayId":"straggler-1"/.test(coordinator.output) ? true : undefined), 10_000, "the coordinator's refusal log line naming straggler-1");
    // What the SlipstreamRelayNotInFleet alert reads.
    assert.equal(await fleetGauges(stragglerMetricsPort), 'accepted=0 settings_applied=1');
    await sleep(LEASE_MS);
    assert.deepEqual((await sdk.fleet()).relays.map((r) => r.relayId), ['ams-1', 'fra-1'], 'the straggler never registered');
    assert.deepEqual(await routed(), ['ams-1', 'fra-1']);
    assert.deepEqual((await sdk.health()).fleetSecrets, { accepted: 1, relays: { current: 2, previous: 0, unknown: 0, identity: 0 }, relaysOnPrevious: [], relaysOnUnknown: [] });

    for (const proc of [straggler, ...relays.values()]) await proc.stop();
    await coordinator.stop();
  });
});
