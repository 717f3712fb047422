/**
 * End-to-end, real processes on 127.0.0.1: a coordinator and two relays with a `fleet`
 * section. The relays register and heartbeat on their own, probe each other (the mesh)
 * and their origin, and report; a killed relay goes unhealthy within the lease; a
 * SIGTERM is seen as draining before the relay exits. A reload moves the membership: a new
 * relay id registers from the same process, a removed `fleet` section leaves the fleet.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { CliProcess } from './support/cli-process.js';
import { fleetKeys, fleetRelayYaml, startCoordinator } from './support/local-fleet.js';
import { eventually } from './support/wait.js';

const LEASE_MS = 1500;
const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-fleet-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('relays join the fleet on their own', () => {
  test('two relays register and heartbeat, the relay-to-relay matrix and origin figures fill, a killed relay goes unhealthy within the lease, SIGTERM shows as draining', async () => {
    const seed = randomBytes(32);
    const sealKey = randomBytes(32);
    const fleetSecret = randomBytes(24).toString('base64');
    // The origin: a TCP listener (the relays' origin probe is a TCP connect).
    const origin = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const originPort = (origin.address() as net.AddressInfo).port;
    after(() => origin.close());

    const coordinatorPath = join(dir, 'coordinator.yaml');
    writeFileSync(
      coordinatorPath,
      ['listen: 127.0.0.1:0', 'store: memory', 'logLevel: warn', `leaseMs: ${LEASE_MS}`, 'origins:', `  - { name: game, address: 127.0.0.1:${originPort} }`, 'keys:', `  ticketSigningSeed: ${seed.toString('base64')}`, `  sealKey: ${sealKey.toString('base64')}`, `  fleetSecret: ${fleetSecret}`].join('\n'),
    );
    const coordinator = CliProcess.start(['coordinator', '--config', coordinatorPath]);
    const url = await eventually(() => /listening on (http:\/\/\S+)/.exec(coordinator.output)?.[1], 15_000, 'the coordinator to listen');
    const fleet = new CoordinatorClient({ baseUrl: url });

    const relays = new Map<string, CliProcess>();
    for (const [id, lat, lon] of [
      ['fra-1', 50.1, 8.7],
      ['ams-1', 52.4, 4.9],
    ] as const) {
      const path = join(dir, `${id}.yaml`);
      const fleetKeys = ['capacitySessions: 500', 'heartbeatIntervalMs: 300', 'probeIntervalMs: 100', 'reportIntervalMs: 500', 'meshRefreshMs: 500'];
      writeFileSync(path, fleetRelayYaml({ relayId: id, latitude: lat, longitude: lon, seed, sealKeyBase64: sealKey.toString('base64'), originPort, coordinatorUrl: url, fleetSecret: { inline: fleetSecret }, fleetKeys }));
      relays.set(id, CliProcess.start(['relay', '--config', path]));
    }

    // Both appear, healthy, with the addresses they bound and the capacity configured.
    const view = await eventually(
      async () => {
        const f = await fleet.fleet();
        return f.relays.length === 2 && f.relays.every((r) => r.health === 'healthy') ? f : undefined;
      },
      15_000,
      'both relays healthy in /v1/fleet',
    );
    for (const r of view.relays) {
      assert.match(r.tunnelAddress, /^127\.0\.0\.1:\d+$/);
      assert.equal(r.probeAddress, r.tunnelAddress);
      assert.equal(r.capacitySessions, 500);
      assert.equal(r.region, 'eu-central');
    }

    // The relay-to-relay matrix fills both ways, and each relay reports its origin.
    const filled = await eventually(
      async () => {
        const f = await fleet.fleet();
        const m = f.mesh;
        const ok = m.relayIds.length === 2 && m.rttMs[0]![1] !== null && m.rttMs[1]![0] !== null && f.relays.every((r) => r.origins.some((o) => o.origin === 'game'));
        return ok ? f : undefined;
      },
      15_000,
      'the mesh matrix and origin figures',
    );
    for (const row of filled.mesh.rttMs) for (const cell of row) if (cell !== null) assert.ok(cell >= 0 && cell < 100, `loopback mesh RTT ${cell} ms`);
    for (const row of filled.mesh.lossFraction) for (const cell of row) if (cell !== null) assert.ok(cell < 0.5, `loopback mesh loss ${cell}`);
    for (const r of filled.relays) {
      const game = r.origins.find((o) => o.origin === 'game')!;
      assert.ok(game.rttMs >= 0 && game.rttMs < 100 && game.lossFraction < 0.5, JSON.stringify(game));
    }
    process.stdout.write(`# mesh RTT ms ${JSON.stringify(filled.mesh.rttMs)}; origin RTT ms ${filled.relays.map((r) => `${r.relayId}:${r.origins[0]!.rttMs}`).join(' ')}\n`);

    // Heartbeats carry load: the relay's own CPU fraction is a number in [0, 1].
    for (const r of filled.relays) assert.ok(r.load.cpuFraction >= 0 && r.load.cpuFraction <= 1 && r.lastHeartbeatAgeMs < LEASE_MS);

    // A crash (SIGKILL by PID): heartbeats stop; unhealthy within the lease (plus a poll's slack).
    const killed = relays.get('ams-1')!;
    const killedAt = performance.now();
    killed.child.kill('SIGKILL');
    await killed.exited;
    await eventually(
      async () => ((await fleet.fleet()).relays.find((r) => r.relayId === 'ams-1')?.health === 'unhealthy' ? true : undefined),
      LEASE_MS + 1500,
      'the killed relay to go unhealthy',
    );
    const tookMs = performance.now() - killedAt;
    process.stdout.write(`# killed relay unhealthy after ${tookMs.toFixed(0)} ms (lease ${LEASE_MS} ms)\n`);
    assert.ok(tookMs <= LEASE_MS + 1000, `unhealthy after ${tookMs} ms`);

    // SIGTERM: the coordinator hears "draining" before the relay exits 0.
    const survivor = relays.get('fra-1')!;
    survivor.child.kill('SIGTERM');
    assert.equal(await survivor.exited, 0, survivor.output);
    const after1 = (await fleet.fleet()).relays.find((r) => r.relayId === 'fra-1');
    assert.equal(after1?.health, 'draining');
    assert.equal(after1?.load.draining, true);
    coordinator.child.kill('SIGTERM');
    await coordinator.exited;
  });

  test('a reload moves the membership: a new relay id registers from the same process (the old one leaves with its lease), a removed fleet section leaves', async () => {
    const keys = fleetKeys();
    const origin = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    after(() => origin.close());
    const originPort = (origin.address() as net.AddressInfo).port;
    const coordinator = await startCoordinator(dir, keys, originPort);
    const fleet = new CoordinatorClient({ baseUrl: coordinator.url });
    const healthOf = async (): Promise<Record<string, string>> => Object.fromEntries((await fleet.fleet()).relays.map((r) => [r.relayId, r.health]));
    const path = join(dir, 'moving.yaml');
    const yaml = (relayId: string): string => fleetRelayYaml({ relayId, latitude: 50.1, longitude: 8.7, seed: keys.seed, sealKeyBase64: keys.sealKey.toString('base64'), originPort, coordinatorUrl: coordinator.url, fleetSecret: { inline: keys.fleetSecret }, fleetKeys: ['heartbeatIntervalMs: 300'] });
    writeFileSync(path, yaml('mover-1'));
    const relay = CliProcess.start(['relay', '--config', path]);
    await eventually(async () => ((await healthOf())['mover-1'] === 'healthy' ? true : undefined), 15_000, 'mover-1 healthy');

    writeFileSync(path, yaml('mover-2'));
    relay.child.kill('SIGHUP');
    assert.match(await eventually(() => /"event":"fleet_changed"[^\n]*/.exec(relay.output)?.[0], 10_000, 'fleet_changed'), /"relayId":"mover-2"[^\n]*"secretChanged":false/);
    await eventually(async () => {
      const health = await healthOf();
      return health['mover-2'] === 'healthy' && health['mover-1'] === 'unhealthy' ? true : undefined;
    }, 15_000, 'mover-2 healthy and mover-1 gone unhealthy (its heartbeats stopped)');

    // Without the fleet section: the relay goes on forwarding, outside the fleet.
    writeFileSync(path, yaml('mover-2').slice(0, yaml('mover-2').indexOf('fleet:')));
    relay.child.kill('SIGHUP');
    assert.match(await eventually(() => /"event":"fleet_changed"[^\n]*"left":true[^\n]*/.exec(relay.output)?.[0], 10_000, 'fleet_changed, left'), /left the fleet/);
    await eventually(async () => ((await healthOf())['mover-2'] === 'unhealthy' ? true : undefined), 15_000, 'mover-2 unhealthy once it left');
    assert.equal(relay.child.exitCode, null, 'the same relay process throughout');
    assert.doesNotMatch(relay.output, /reload_needs_restart/);
    await relay.stop();
    await coordinator.proc.stop();
  });
});
