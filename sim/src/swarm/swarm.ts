/**
 * Swarm testing (after TigerBeetle's VOPR and FoundationDB's simulation): one seed
 * picks a random deployment (regions, origins, relays with random session caps,
 * players with random traffic, random links) and a random fault schedule, which runs
 * on the real cores in two phases:
 *
 * 1. **safety** — faults on: link loss spikes, blackouts, relay crashes (some restart
 *    during the phase), the coordinator cut off, players cut off from relays;
 * 2. **liveness** — every fault healed at {@link SwarmPlan.healMs} (partitions and
 *    link changes end, crashed relays restart); the system must converge.
 *
 * Invariants, checked on every seed (see {@link checkInvariants}):
 * - no packet of a session reaches an origin other than the one its ticket names;
 * - no duplicate delivery to the game: an origin never gets the same packet twice,
 *   through the same relay or through two (the SDK sends each datagram, and each FEC
 *   copy or repair, through one relay: see "What the game server sees" in
 *   sdk/README.md), and the SDK never hands the player the same packet twice;
 * - every player recovers: from {@link SWARM_RECOVERY_BOUND_MS} after healing to the
 *   end, its longest silence through Slipstream stays under {@link SWARM_GAP_MS_MAX};
 * - no relay exceeds its limits: tunnel sessions ≤ `sessionsMax` and its per-source
 *   table ≤ 2 × `sessionsMax` + 1024, sampled every 100 ms;
 * - the fleet holds together (fleet-invariants.ts): every relay start — the first, and a
 *   restart after a crash, with the same relay id — is registered within a few leases;
 *   a crashed relay's lease expires and the coordinator stops routing to it;
 * - the run makes progress: no simulated second takes more than
 *   {@link SWARM_EVENTS_PER_SECOND_MAX} events (a livelock — a timer re-armed at the same
 *   instant forever, an event storm — is reported with the event that repeats and its
 *   host, instead of hanging).
 *
 * Everything is a pure function of the seed.
 */
import { Rng } from '../../../proto/src/rng.js';
import { defaultRelayLimits } from '../deployment/fleet.js';
import { PATH_TUNNEL, type TrafficSpec } from '../deployment/deployment.js';
import type { LinkModelSpec } from '../core/link.js';
import { samplePath } from '../scenario/qoe.js';
import { ScenarioRun } from '../scenario/run.js';
import { SimLivelockError } from '../core/event-budget.js';
import { checkFleetInvariants, watchFleet, type FleetCounts } from './fleet-invariants.js';
import { SCENARIO_DEFAULT_LINK, type DirectedPair, type Scenario, type ScenarioClientGroup, type ScenarioEvent, type ScenarioHost, type ScenarioLinkEntry, type ScenarioRelaySpec } from '../scenario/schema.js';

/** When players start, ms. */
export const SWARM_CLIENT_START_MS = 3000;
/** When faults may begin, ms (players have picked a relay by then). */
export const SWARM_FAULTS_FROM_MS = 5000;
/** Length of the safety phase, ms from {@link SWARM_FAULTS_FROM_MS}. */
export const SWARM_SAFETY_MS = 15_000;
/** Length of the liveness phase after healing, ms. */
export const SWARM_LIVENESS_MS = 12_000;
/**
 * Players must be back within this long of healing, ms. Failover takes under a second;
 * a player cut off from every relay re-finds them through probes of the other
 * candidates, which go every 5 s (the SDK's PROBE_OTHER_INTERVAL_MS_DEFAULT).
 */
export const SWARM_RECOVERY_BOUND_MS = 7000;
/** Longest silence a recovered player may see, ms. */
export const SWARM_GAP_MS_MAX = 1000;
/**
 * Livelock guard of a seed, events per simulated second: a seed's busiest second takes
 * about 2,000 (seeds 1–40), so 250 × that is no normal run, and a livelock is caught
 * after well under a second of CPU.
 */
export const SWARM_EVENTS_PER_SECOND_MAX = 500_000;

/** A generated run: the scenario and when its faults heal. */
export interface SwarmPlan {
  readonly seed: number;
  readonly scenario: Scenario;
  /** Every fault is over at this time, ms. */
  readonly healMs: number;
}

/** One broken invariant. */
export interface SwarmViolation {
  readonly invariant: 'wrong-origin' | 'duplicate-delivery' | 'recovery' | 'relay-limits' | 'livelock' | 'fleet-join' | 're-join' | 'lease-expiry';
  readonly detail: string;
}

/** The outcome of one seed. */
export interface SwarmResult {
  readonly seed: number;
  readonly players: number;
  readonly relays: number;
  readonly faults: number;
  readonly violations: readonly SwarmViolation[];
  /** Upstream packets the origin got again through a second relay (a `duplicate-delivery` violation each player it happens to). */
  readonly crossRelayDuplicates: number;
  /** Virtual ms simulated. */
  readonly simulatedMs: number;
  /** What the fleet invariants checked (see fleet-invariants.ts). */
  readonly fleet: FleetCounts;
}

/** The command that replays one seed. */
export function replayCommand(seed: number): string {
  return `slipstream sim swarm --seeds 1 --from ${seed}`;
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.nextInt(items.length)]!;
const between = (rng: Rng, lo: number, hi: number): number => lo + rng.nextInt(hi - lo + 1);

/** Draws the deployment and the fault schedule of `seed`. */
export function planSwarm(seed: number): SwarmPlan {
  const rng = new Rng(seed);
  const regions = ['r1', 'r2', 'r3'].slice(0, between(rng, 1, 3));
  const hosts: ScenarioHost[] = [{ name: 'coordinator', kind: 'coordinator', region: regions[0] }];
  const origins = Array.from({ length: between(rng, 1, 2) }, (_, i) => ({ name: `origin-${i + 1}`, region: pick(rng, regions) }));
  for (const o of origins) hosts.push({ name: o.name, kind: 'origin', region: o.region });

  const playerCount = between(rng, 2, 5);
  const relayCount = between(rng, 2, 4);
  const relays: ScenarioRelaySpec[] = [];
  let capacity = 0;
  for (let i = 0; i < relayCount; i++) {
    // Some relays are small, so that the cap is reached and sessions are refused.
    let sessionsMax = rng.nextInt(10) < 3 ? between(rng, 1, playerCount - 1) : between(rng, playerCount, 3 * playerCount);
    // Every player needs a current and a backup session somewhere once healed.
    if (i === relayCount - 1 && capacity + sessionsMax < 2 * playerCount + 2) sessionsMax = 2 * playerCount + 2 - capacity;
    capacity += sessionsMax;
    relays.push({ name: `relay-${i + 1}`, region: pick(rng, regions), limits: { ...defaultRelayLimits(), sessionsMax }, fec: undefined });
  }
  for (const r of relays) hosts.push({ name: r.name, kind: 'relay', region: r.region });

  const clients: ScenarioClientGroup[] = [];
  for (let i = 0; i < playerCount; i++) {
    const name = `player-${i + 1}`;
    const traffic: TrafficSpec = rng.nextInt(5) === 0 ? { kind: 'media', bitrateKbps: between(rng, 50, 200), framesPerSecond: 15, keyframeIntervalFrames: 30, keyframeScale: 4, packetBytesMax: 1000 } : { kind: 'game', packetsPerSecond: between(rng, 10, 40), payloadBytes: between(rng, 20, 300) };
    const region = pick(rng, regions);
    clients.push({ name, region, members: [name], origin: pick(rng, origins).name, startMs: SWARM_CLIENT_START_MS, traffic });
    hosts.push({ name, kind: 'client', region });
  }

  // Links: every pair both ways, delay by region distance plus noise; players' last miles lose a little.
  const links: ScenarioLinkEntry[] = [];
  const names = hosts.map((h) => h.name);
  const regionOf = new Map(hosts.map((h) => [h.name, h.region]));
  for (let a = 0; a < names.length; a++) {
    for (let b = a + 1; b < names.length; b++) {
      const x = names[a]!;
      const y = names[b]!;
      const far = regionOf.get(x) !== regionOf.get(y);
      const model: LinkModelSpec = { delayMs: (far ? 30 : 3) + rng.nextInt(far ? 60 : 20), jitterMs: rng.nextInt(4), keepOrder: true };
      if (x.startsWith('player') || y.startsWith('player')) model.loss = { model: 'bernoulli', p: rng.nextInt(30) / 1000 };
      links.push({ pairs: [[x, y], [y, x]], model });
    }
  }

  // Faults, each over by healMs.
  const healMs = SWARM_FAULTS_FROM_MS + SWARM_SAFETY_MS;
  const events: ScenarioEvent[] = [];
  const players = clients.map((c) => c.name);
  const relayNames = relays.map((r) => r.name);
  const down = new Set<string>();
  const faults = between(rng, 2, 7);
  for (let f = 0; f < faults; f++) {
    const atMs = SWARM_FAULTS_FROM_MS + rng.nextInt(SWARM_SAFETY_MS - 3000);
    const forMs = Math.min(healMs - atMs, between(rng, 300, 6000));
    const kind = rng.nextInt(6);
    const player = pick(rng, players);
    const relay = pick(rng, relayNames);
    const both = (x: string, y: string): DirectedPair[] => [
      [x, y],
      [y, x],
    ];
    if (kind === 0) events.push({ kind: 'set', atMs, pairs: both(player, relay), access: [], set: { loss: { model: 'bernoulli', p: between(rng, 5, 40) / 100 } }, forMs });
    else if (kind === 1) events.push({ kind: 'blackout', atMs, pairs: both(player, pick(rng, [relay, ...relayNames])), access: [], durationMs: forMs });
    else if (kind === 2 && !down.has(relay) && down.size < relayNames.length - 1) {
      // Crash; sometimes back during the safety phase, else at healing.
      down.add(relay);
      events.push({ kind: 'crash', atMs, relay });
      if (rng.nextInt(2) === 0 && atMs + forMs < healMs) {
        events.push({ kind: 'restart', atMs: atMs + forMs, relay });
        down.delete(relay);
      }
    } else if (kind === 3) events.push({ kind: 'partition', atMs, a: ['coordinator'], b: names.filter((n) => n !== 'coordinator'), forMs });
    else if (kind === 4) events.push({ kind: 'partition', atMs, a: [player], b: [relay], forMs });
    else events.push({ kind: 'blackout', atMs, pairs: both(relay, pick(rng, origins).name), access: [], durationMs: forMs });
  }
  for (const relay of down) events.push({ kind: 'restart', atMs: healMs, relay });
  events.sort((a, b) => a.atMs - b.atMs);

  const scenario: Scenario = {
    file: `swarm seed ${seed}`,
    name: `swarm-${seed}`,
    description: 'generated by slipstream sim swarm',
    durationMs: healMs + SWARM_LIVENESS_MS,
    warmupMs: 2000,
    seed,
    defaultLink: SCENARIO_DEFAULT_LINK,
    regions,
    hosts,
    origins,
    relays,
    clients,
    links,
    // Per-pair last-mile loss as before, so swarm seeds replay as they did (the swarm checks invariants, not loss figures).
    access: [],
    events,
  };
  return { seed, scenario, healMs };
}

/**
 * Runs one seed and checks the invariants.
 * @param options `maxEventsPerSecond`: the livelock guard's budget (default {@link SWARM_EVENTS_PER_SECOND_MAX}; tests lower it)
 */
export function runSwarmSeed(seed: number, options: { readonly maxEventsPerSecond?: number } = {}): SwarmResult {
  const plan = planSwarm(seed);
  const run = new ScenarioRun(plan.scenario, seed, { directPath: false, maxEventsPerSecond: options.maxEventsPerSecond ?? SWARM_EVENTS_PER_SECOND_MAX, replay: replayCommand(seed) });
  const fleet = watchFleet(plan.scenario, run);
  try {
    run.run();
  } catch (error) {
    if (!(error instanceof SimLivelockError)) throw error;
    const s = plan.scenario;
    return { seed, players: s.clients.length, relays: s.relays.length, faults: s.events.length, violations: [{ invariant: 'livelock', detail: error.diagnosis }], crossRelayDuplicates: 0, simulatedMs: error.details.atMs, fleet: { joins: 0, rejoins: 0, leaseChecks: 0 } };
  }
  const result = checkInvariants(plan, run);
  const fleetResult = checkFleetInvariants(plan.scenario, run, fleet);
  return { ...result, violations: [...result.violations, ...fleetResult.violations], fleet: fleetResult.counts, seed };
}

/** The invariants of the module comment but the fleet's (fleet-invariants.ts), over a finished run. */
export function checkInvariants(plan: SwarmPlan, run: ScenarioRun): Omit<SwarmResult, 'seed' | 'fleet'> {
  const violations: SwarmViolation[] = [];
  const dep = run.deployment;
  for (const w of dep.wrongOrigin) violations.push({ invariant: 'wrong-origin', detail: `at ${w.atMs.toFixed(1)} ms origin ${w.origin} got a ${w.path} packet of ${w.client}` });
  let crossRelayDuplicates = 0;
  const fromMs = plan.healMs + SWARM_RECOVERY_BOUND_MS;
  const toMs = plan.scenario.durationMs;
  for (const c of dep.clients) {
    const log = c.logs[PATH_TUNNEL];
    crossRelayDuplicates += log.crossRelayDuplicates;
    if (log.sameRelayDuplicates > 0) violations.push({ invariant: 'duplicate-delivery', detail: `${c.spec.id}: the origin got ${log.sameRelayDuplicates} packets twice through the same relay` });
    if (log.crossRelayDuplicates > 0) violations.push({ invariant: 'duplicate-delivery', detail: `${c.spec.id}: the origin got ${log.crossRelayDuplicates} packets again through a second relay` });
    if (log.clientDuplicates > 0) violations.push({ invariant: 'duplicate-delivery', detail: `${c.spec.id}: the SDK handed the player ${log.clientDuplicates} packets twice` });
    const failed = c.tunnel?.events.find((e) => e.type === 'failed');
    const late = samplePath(log, fromMs, toMs);
    if (failed !== undefined || late.longestGapMs >= SWARM_GAP_MS_MAX) {
      const why = failed?.type === 'failed' ? `the connection failed at ${failed.atMs.toFixed(0)} ms: ${failed.code}: ${failed.message}` : `silent for ${late.longestGapMs.toFixed(0)} ms between ${fromMs / 1000} s and ${toMs / 1000} s (relay ${c.tunnel?.core.current ?? 'none'})`;
      violations.push({ invariant: 'recovery', detail: `${c.spec.id} did not recover within ${SWARM_RECOVERY_BOUND_MS} ms of healing at ${plan.healMs / 1000} s: ${why}` });
    }
  }
  for (const p of run.relayPeaks) {
    if (p.peakSessions > p.sessionsMax) violations.push({ invariant: 'relay-limits', detail: `${p.relay} held ${p.peakSessions} sessions; sessionsMax ${p.sessionsMax}` });
    if (p.peakSources > 2 * p.sessionsMax + 1024) violations.push({ invariant: 'relay-limits', detail: `${p.relay} held ${p.peakSources} per-source entries; bound ${2 * p.sessionsMax + 1024}` });
  }
  return {
    players: dep.clients.length,
    relays: dep.relays.size,
    faults: plan.scenario.events.length,
    violations,
    crossRelayDuplicates,
    simulatedMs: plan.scenario.durationMs,
  };
}
