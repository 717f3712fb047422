/**
 * The fleet in the swarm: relays join, lose their lease when they crash and re-join when
 * they restart, through the production fleet core (relay/src/core/fleet-agent.ts) against
 * the real coordinator core, over a small seed range (the full range runs in
 * swarm.test.ts, whose invariants include these). Any failure prints the command that
 * replays it. And what the swarm does not reach: a coordinator that forgot the relay
 * answers its heartbeat `unknown_relay`, and the relay registers again; a session
 * revoked at the coordinator ends at the relay through the revocation feed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinatorCore } from '../../coordinator/src/core/coordinator-core.js';
import { CoordinatorSimDriver } from '../src/drivers/coordinator-driver.js';
import { Rng } from '../../proto/src/rng.js';
import { fleetKeys, SIM_COORDINATOR_PORT, SIM_LEASE_MS, SIM_ORIGIN_PORT, SIM_WALL_EPOCH_MS, simFleetSpec, simRelayConfig, startSimFleetAgent } from '../src/deployment/fleet.js';
import { SCENARIO_RELAY_FEC, SdkScenario } from '../src/deployment/scenario.js';
import { ErrorCode } from '../../proto/src/errors.js';
import { SimNetwork } from '../src/core/network.js';
import { ScenarioRun } from '../src/scenario/run.js';
import { checkFleetInvariants, SWARM_FLEET_JOIN_LEASES, watchFleet } from '../src/swarm/fleet-invariants.js';
import { planSwarm, replayCommand, runSwarmSeed } from '../src/swarm/swarm.js';

/** Seeds: 1 … SEEDS (about 0.35 s each). */
const SEEDS = 30;

test(`swarm fleet: seeds 1–${SEEDS}, every relay joins and re-joins after a restart within ${SWARM_FLEET_JOIN_LEASES} leases; a crashed relay's lease expires and it is routed to no one`, (t) => {
  const failures: string[] = [];
  let joins = 0;
  let rejoins = 0;
  let leaseChecks = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const result = runSwarmSeed(seed);
    joins += result.fleet.joins;
    rejoins += result.fleet.rejoins;
    leaseChecks += result.fleet.leaseChecks;
    const fleet = result.violations.filter((v) => v.invariant === 'fleet-join' || v.invariant === 're-join' || v.invariant === 'lease-expiry');
    if (fleet.length > 0) failures.push(`seed ${seed}: ${fleet.map((v) => `${v.invariant}: ${v.detail}`).join('; ')}\n  replay: ${replayCommand(seed)}`);
  }
  t.diagnostic(`${SEEDS} seeds: ${joins} relay starts registered in time (${rejoins} re-joins after a restart), ${leaseChecks} crashed relays seen unhealthy and unrouted after their lease`);
  assert.deepEqual(failures, [], failures.join('\n'));
  assert.ok(rejoins > 0 && leaseChecks > 0, 'the seed range crashes and restarts relays');
});

test('a relay the coordinator forgot (cut off beyond its retention) is answered unknown_relay and re-joins with the same relay id', () => {
  const net = new SimNetwork({ seed: 3 });
  const relayAddress = '10.1.0.1';
  const coordinatorAddress = '10.9.0.1';
  const relayHost = net.addHost(relayAddress);
  const coordinatorHost = net.addHost(coordinatorAddress);
  net.addHost('10.8.0.1');
  net.setDefaultLink({ delayMs: 10 });
  // Forgotten 2 s after its lease ran out.
  const core = new CoordinatorCore({ leaseMs: SIM_LEASE_MS, retentionMs: SIM_LEASE_MS + 2000, origins: [{ name: 'origin-1', address: `10.8.0.1:${SIM_ORIGIN_PORT}` }] });
  new CoordinatorSimDriver(core, coordinatorHost.bind(SIM_COORDINATOR_PORT), net, (callback) => {
    const timer = net.createTimer(callback);
    return { set: (at: number) => timer.set(at) };
  });
  const config = simRelayConfig(relayAddress, fleetKeys(new Rng(1)), new Map([['origin-1', { address: '10.8.0.1', port: SIM_ORIGIN_PORT }]]), SCENARIO_RELAY_FEC);
  const agent = startSimFleetAgent(net, relayHost, simFleetSpec('relay-1', 'r1', relayAddress), { address: coordinatorAddress, port: SIM_COORDINATOR_PORT }, config, () => undefined);

  net.runUntil(2000);
  assert.equal(agent.events.filter((e) => e.type === 'registered').length, 1);
  assert.equal(core.registry.health(net.now(), core.registry.get('relay-1')!), 'healthy');

  const cut = net.partition([relayAddress], [coordinatorAddress]);
  net.runUntil(12_000);
  assert.equal(core.registry.get('relay-1'), undefined, 'forgotten');
  assert.equal(agent.core.accepted, false);
  net.heal(cut);
  const healedAtMs = net.now();
  net.runUntil(healedAtMs + SWARM_FLEET_JOIN_LEASES * SIM_LEASE_MS);

  const rejoining = agent.events.find((e) => e.type === 'rejoining');
  assert.ok(rejoining !== undefined && rejoining.atMs > healedAtMs, 'a heartbeat after healing was answered unknown_relay');
  const registered = agent.events.filter((e) => e.type === 'registered');
  assert.equal(registered.length, 2);
  assert.ok(registered[1]!.atMs - healedAtMs < SWARM_FLEET_JOIN_LEASES * SIM_LEASE_MS);
  assert.equal(core.registry.health(net.now(), core.registry.get('relay-1')!), 'healthy', 'listed again under the same relay id');
  assert.equal(agent.core.accepted, true);
  agent.stop();
});

test('the fleet invariants bite: a relay that never registered, and a crashed relay the coordinator still hears from, are violations', () => {
  // Seed 11 crashes relay-2 at 6.4 s and restarts it only at healing (20 s).
  const plan = planSwarm(11);
  const crash = plan.scenario.events.find((e) => e.kind === 'crash');
  assert.ok(crash !== undefined && crash.kind === 'crash');
  const run = new ScenarioRun(plan.scenario, plan.seed, { directPath: false, replay: replayCommand(plan.seed) });
  const watch = watchFleet(plan.scenario, run);
  const dep = run.deployment;
  // A heartbeat "from" the crashed relay just before the lease check: a coordinator that would keep it.
  dep.network.schedule(crash.atMs + SIM_LEASE_MS, (now) => dep.coordinator.heartbeat(now, crash.relay, { sessions: 0, packetsPerSecond: 0, cpuFraction: 0, draining: false }));
  run.run();
  const silent = [...dep.relays.values()].find((r) => r.spec.id !== crash.relay)!;
  silent.agents[0]!.events.length = 0;
  const { violations } = checkFleetInvariants(plan.scenario, run, watch);
  assert.ok(violations.some((v) => v.invariant === 'lease-expiry' && v.detail.startsWith(`${crash.relay} crashed at ${crash.atMs} ms and is still healthy`)), JSON.stringify(violations));
  assert.ok(violations.some((v) => v.invariant === 'fleet-join' && v.detail.startsWith(`${silent.spec.id} (start 1 at 0 ms) never registered`)), JSON.stringify(violations));
});

test('a session revoked at the coordinator ends at the relay within a second, through the relay\'s revocation feed (a long poll)', () => {
  const s = new SdkScenario({ seed: 9, relays: [{ id: 'a', clientDelayMs: 10, originDelayMs: 10 }, { id: 'b', clientDelayMs: 30, originDelayMs: 10 }] });
  s.startTraffic(30);
  s.runUntil(s.nowMs + 3000);
  assert.ok(s.client.core.isOpen);
  const revokedAtMs = s.nowMs;
  s.coordinatorDriver.revoke(s.sessionId, SIM_WALL_EPOCH_MS + revokedAtMs, SIM_WALL_EPOCH_MS + 3_600_000);
  s.runUntil(revokedAtMs + 1000);
  const failed = s.client.events.find((e) => e.type === 'failed');
  assert.ok(failed !== undefined && failed.type === 'failed' && failed.code === ErrorCode.TicketRevoked, JSON.stringify(failed));
  assert.ok(failed.atMs - revokedAtMs < 1000, `ended ${failed.atMs - revokedAtMs} ms after the revocation`);
  for (const [id, r] of s.relays) assert.equal(r.agent.feed?.cursor !== undefined && r.agent.feed.cursor > 0, true, `relay ${id} follows the feed`);
});
