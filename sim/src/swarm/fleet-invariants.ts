/**
 * The swarm's fleet invariants: relays join the fleet through the production fleet core
 * (relay/src/core/fleet-agent.ts, driven by sim/src/drivers/fleet-driver.ts) against the real
 * coordinator core, whatever the faults.
 *
 * - **join / re-join**: every start of a relay (the first, and each restart after a
 *   crash, with the same relay id) is registered within {@link SWARM_FLEET_JOIN_LEASES}
 *   leases, not counting time the coordinator was cut off from everyone (a partition of
 *   the coordinator delays registration by its length), unless the relay crashed again
 *   or the run ended first;
 * - **lease expiry**: {@link SIM_LEASE_MS} plus {@link SWARM_LEASE_SLACK_MS} after a crash
 *   (unless the relay was restarted meanwhile), the coordinator holds the relay unhealthy
 *   and routes no player to it.
 *
 * The lease checks run during the run (they look at the coordinator at one instant), so
 * {@link watchFleet} schedules them before the run starts; {@link checkFleetInvariants}
 * reads the agents' events afterwards.
 */
import { SIM_LEASE_MS } from '../deployment/fleet.js';
import type { ScenarioRun } from '../scenario/run.js';
import type { Scenario } from '../scenario/schema.js';

/** A relay start must be registered within this many leases (plus coordinator partitions). */
export const SWARM_FLEET_JOIN_LEASES = 4;
/**
 * Slack on the lease of a crashed relay, ms: a heartbeat sent just before the crash is
 * still on the wire (one-way delays reach ~100 ms in the swarm's plans).
 */
export const SWARM_LEASE_SLACK_MS = 250;

/** One broken fleet invariant (a {@link SwarmViolation} of swarm.ts). */
export interface FleetViolation {
  readonly invariant: 'fleet-join' | 're-join' | 'lease-expiry';
  readonly detail: string;
}

/** What the fleet checks saw. */
export interface FleetWatch {
  readonly violations: FleetViolation[];
  /** Crashes whose lease expiry was checked. */
  leaseChecks: number;
}

/** What {@link checkFleetInvariants} counted. */
export interface FleetCounts {
  /** Relay starts registered in time (first joins and re-joins). */
  readonly joins: number;
  /** Of those, restarts (same relay id) registered in time. */
  readonly rejoins: number;
  /** Crashes whose lease was seen to expire. */
  readonly leaseChecks: number;
}

/** Schedules the lease-expiry checks of `scenario`'s crashes on `run`'s network; call before `run.run()`. */
export function watchFleet(scenario: Scenario, run: ScenarioRun): FleetWatch {
  const watch: FleetWatch = { violations: [], leaseChecks: 0 };
  const dep = run.deployment;
  const events = scenario.events;
  for (const crash of events) {
    if (crash.kind !== 'crash') continue;
    const checkAtMs = crash.atMs + SIM_LEASE_MS + SWARM_LEASE_SLACK_MS;
    if (events.some((e) => e.kind === 'restart' && e.relay === crash.relay && e.atMs >= crash.atMs && e.atMs <= checkAtMs)) continue;
    if (checkAtMs > scenario.durationMs) continue;
    dep.network.schedule(checkAtMs, (now) => {
      watch.leaseChecks++;
      const record = dep.coordinator.registry.get(crash.relay);
      const health = record === undefined ? 'unhealthy' : dep.coordinator.registry.health(now, record);
      if (health !== 'unhealthy') watch.violations.push({ invariant: 'lease-expiry', detail: `${crash.relay} crashed at ${crash.atMs} ms and is still ${health} at ${now} ms (lease ${SIM_LEASE_MS} ms)` });
      for (const c of dep.clients) {
        const route = dep.route(c);
        if (!(route instanceof Error) && route.some((candidate) => candidate.id === crash.relay)) {
          watch.violations.push({ invariant: 'lease-expiry', detail: `${crash.relay} crashed at ${crash.atMs} ms and is still offered to ${c.spec.id} at ${now} ms` });
          break;
        }
      }
    }, { what: 'swarm lease check' });
  }
  return watch;
}

/** The join and re-join invariants over a finished run of `scenario`, with the lease checks `watch` made. */
export function checkFleetInvariants(scenario: Scenario, run: ScenarioRun, watch: FleetWatch): { violations: FleetViolation[]; counts: FleetCounts } {
  const violations = [...watch.violations];
  const boundMs = SWARM_FLEET_JOIN_LEASES * SIM_LEASE_MS;
  const events = scenario.events;
  const cuts = events.flatMap((e) => (e.kind === 'partition' && e.a.includes('coordinator') ? [{ fromMs: e.atMs, toMs: e.atMs + (e.forMs ?? scenario.durationMs) }] : []));
  let joins = 0;
  let rejoins = 0;
  for (const r of run.deployment.relays.values()) {
    r.agents.forEach((agent, start) => {
      const startedAtMs = r.startedAtMs[start]!;
      // Time the coordinator was cut off in the window stretches the bound.
      let deadlineMs = startedAtMs + boundMs;
      for (const c of cuts) if (c.toMs > startedAtMs && c.fromMs < deadlineMs) deadlineMs += Math.min(c.toMs, deadlineMs) - Math.max(c.fromMs, startedAtMs);
      const registered = agent.events.find((e) => e.type === 'registered');
      const crashedAtMs = events.find((e) => e.kind === 'crash' && e.relay === r.spec.id && e.atMs >= startedAtMs)?.atMs ?? Number.POSITIVE_INFINITY;
      if (registered !== undefined && registered.atMs <= deadlineMs) {
        joins++;
        if (start > 0) rejoins++;
        return;
      }
      if (crashedAtMs <= deadlineMs || deadlineMs > scenario.durationMs) return;
      const what = start === 0 ? 'fleet-join' : 're-join';
      violations.push({ invariant: what, detail: `${r.spec.id} (start ${start + 1} at ${startedAtMs} ms) ${registered === undefined ? 'never registered' : `registered only at ${registered.atMs.toFixed(0)} ms`}; bound ${deadlineMs.toFixed(0)} ms (${SWARM_FLEET_JOIN_LEASES} leases plus coordinator partitions)` });
    });
  }
  return { violations, counts: { joins, rejoins, leaseChecks: watch.leaseChecks } };
}
