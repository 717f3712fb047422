/**
 * The fast route ranking (short lists, distance floor that skips far relays, mesh
 * lookups once per relay) against the straightforward one (every relay scored, every
 * list fully sorted): over random fleets, measurements and clients, the answers must be
 * identical, candidate for candidate, reasons and figures included.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MeasurementTable, node, type MeasurementRecord } from '../src/core/measurements.js';
import { DEFAULT_WEIGHTS, rankRoutes, rankRoutesPlain, type RankInput, type RankingWeights } from '../src/core/ranking.js';
import { Registry } from '../src/core/registry.js';

const NOW_MS = 1_000_000;
const LEASE_MS = 3000;
const STALE_MS = 30_000;

/** A position: usually anywhere, sometimes on a coarse grid (so relays and clients coincide and costs tie). */
const position = fc.oneof(
  fc.record({ latitude: fc.double({ min: -89, max: 89, noNaN: true }), longitude: fc.double({ min: -180, max: 180, noNaN: true }) }),
  fc.record({ latitude: fc.integer({ min: -2, max: 2 }).map((x) => x * 30), longitude: fc.integer({ min: -3, max: 3 }).map((x) => x * 60) }),
);
const figures = fc.record({
  rttMs: fc.oneof(fc.double({ min: 1, max: 300, noNaN: true }), fc.constantFrom(10, 20, 50)),
  jitterMs: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 20, noNaN: true })),
  lossFraction: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.2, noNaN: true })),
  samples: fc.integer({ min: 1, max: 50 }),
  /** How old the figure is at NOW_MS, ms (past STALE_MS: stale, must be ignored). */
  ageMs: fc.constantFrom(0, 1000, STALE_MS - 1, STALE_MS + 1),
});
const relay = fc.record({
  where: position,
  region: fc.constantFrom('eu', 'us', 'ap'),
  capacitySessions: fc.constantFrom(0, 10, 100),
  sessions: fc.constantFrom(0, 5, 9, 10, 50),
  cpuFraction: fc.double({ min: 0, max: 1, noNaN: true }),
  draining: fc.boolean(),
  /** Since its last heartbeat at NOW_MS, ms (LEASE_MS or more: unhealthy). */
  silentMs: fc.constantFrom(0, 0, 0, 100, LEASE_MS),
  originProbe: fc.option(figures, { freq: 3 }),
  clientFigure: fc.option(figures, { freq: 2 }),
  ownFigure: fc.option(figures, { freq: 4 }),
});
const weights: fc.Arbitrary<RankingWeights> = fc.oneof(
  fc.constant(DEFAULT_WEIGHTS),
  fc.record({
    lossPenaltyMsPerPercent: fc.double({ min: 0, max: 100, noNaN: true }),
    jitterWeight: fc.double({ min: 0, max: 5, noNaN: true }),
    loadKneeFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    loadPenaltyMsAtFull: fc.double({ min: 0, max: 500, noNaN: true }),
    hopPenaltyMs: fc.double({ min: 0, max: 50, noNaN: true }),
    twoHopGainMsMin: fc.double({ min: 0, max: 30, noNaN: true }),
  }),
);
const scenario = fc.record({
  relays: fc.array(relay, { minLength: 0, maxLength: 60 }),
  /** Mesh probes as (from index, to index, figures). */
  mesh: fc.array(fc.tuple(fc.nat(), fc.nat(), figures), { maxLength: 80 }),
  client: fc.record({ where: fc.option(position, { freq: 4 }), region: fc.option(fc.constantFrom('eu', 'us', 'ap', ''), { freq: 2 }), prefix: fc.boolean() }),
  origin: fc.record({ where: fc.option(position, { freq: 4 }), region: fc.option(fc.constantFrom('eu', 'us', 'ap'), { freq: 2 }) }),
  limit: fc.oneof(fc.integer({ min: 1, max: 10 }), fc.constant(64)),
  twoHop: fc.option(fc.boolean()),
  /** Index of the session's exit relay (modulo the fleet), or none. */
  exit: fc.option(fc.nat(), { freq: 4 }),
  /** Rank by a reporter's own figures laid over the prefix's. */
  ownFigures: fc.boolean(),
  weights,
});

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

function inputOf(s: Scenario): RankInput {
  const registry = new Registry({ leaseMs: LEASE_MS });
  const measurements = new MeasurementTable({ staleMs: STALE_MS });
  const prefix = '203.0.113.0/24';
  const own = new Map<string, MeasurementRecord>();
  const record = (from: string, to: string, f: (typeof s.mesh)[number][2]): MeasurementRecord => ({ from, to, rttMs: f.rttMs, jitterMs: f.jitterMs, lossFraction: f.lossFraction, samples: f.samples, reports: 1, updatedAtMs: NOW_MS - f.ageMs });
  s.relays.forEach((r, i) => {
    const relayId = `relay-${String(i).padStart(2, '0')}`;
    const at = NOW_MS - r.silentMs;
    registry.register(at, { relayId, region: r.region, ...r.where, tunnelAddress: `${relayId}:4433`, probeAddress: `${relayId}:4434`, capacitySessions: r.capacitySessions });
    registry.heartbeat(at, relayId, { sessions: r.sessions, packetsPerSecond: 0, cpuFraction: r.cpuFraction, draining: r.draining });
    if (r.originProbe) measurements.replace(record(node.relay(relayId), node.origin('game'), r.originProbe));
    if (r.clientFigure) measurements.replace(record(node.client(prefix), node.relay(relayId), r.clientFigure));
    if (r.ownFigure) own.set(node.relay(relayId), record(node.client(prefix), node.relay(relayId), r.ownFigure));
  });
  const n = s.relays.length;
  if (n > 0) for (const [a, b, f] of s.mesh) measurements.replace(record(node.relay(`relay-${String(a % n).padStart(2, '0')}`), node.relay(`relay-${String(b % n).padStart(2, '0')}`), f));
  const c = s.client;
  const o = s.origin;
  return {
    nowMs: NOW_MS,
    registry,
    measurements,
    origin: { name: 'game', ...(o.where ?? {}), ...(o.region !== null ? { region: o.region } : {}) },
    client: { ...(c.prefix ? { prefix } : {}), ...(c.where ?? {}), ...(c.region !== null ? { region: c.region } : {}) },
    limit: s.limit,
    ...(s.twoHop !== null ? { twoHop: s.twoHop } : {}),
    ...(s.exit !== null && n > 0 ? { exitRelayId: `relay-${String(s.exit % n).padStart(2, '0')}` } : {}),
    ...(s.ownFigures ? { clientFigures: own } : {}),
    weights: s.weights,
  };
}

describe('route ranking: fast path = straightforward ranking', () => {
  test('identical answers over random fleets, measurements and clients', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const input = inputOf(s);
        assert.deepEqual(rankRoutes(input), rankRoutesPlain(input));
      }),
      { numRuns: 400 },
    );
  });

  test('identical answers on a 500-relay fleet where the distance floor skips most relays', () => {
    // Bench-like: 500 relays anywhere, every relay probing the origin, clients placed by geography.
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.array(position, { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 10 }), fc.boolean(), (seed, clients, limit, twoHop) => {
        let x = seed;
        const next = (): number => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
        const registry = new Registry({ leaseMs: LEASE_MS });
        const measurements = new MeasurementTable({ staleMs: STALE_MS });
        for (let i = 0; i < 500; i++) {
          const relayId = `relay-${i}`;
          registry.register(NOW_MS, { relayId, region: 'r', latitude: -60 + next() * 130, longitude: -180 + next() * 360, tunnelAddress: 'a:1', probeAddress: 'a:2', capacitySessions: 100 });
          registry.heartbeat(NOW_MS, relayId, { sessions: Math.floor(next() * 100), packetsPerSecond: 0, cpuFraction: next(), draining: false });
          measurements.report(NOW_MS, node.relay(relayId), node.origin('game'), { rttMs: 5 + next() * 200, jitterMs: next() * 5, lossFraction: next() * 0.02, samples: 20 });
          if (i % 7 === 0) measurements.report(NOW_MS, node.relay(relayId), node.relay(`relay-${(i * 13) % 500}`), { rttMs: 1 + next() * 50, jitterMs: 0, lossFraction: 0, samples: 20 });
        }
        for (const where of clients) {
          const input: RankInput = { nowMs: NOW_MS, registry, measurements, origin: { name: 'game', latitude: 50, longitude: 8 }, client: where, limit, twoHop };
          assert.deepEqual(rankRoutes(input), rankRoutesPlain(input));
        }
      }),
      { numRuns: 15 },
    );
  });

  test('identical answers while the fleet and its figures change between requests (held origin legs follow)', () => {
    // Operations on one registry and one table, ranking after each: what the held
    // relay→origin legs depend on (membership, positions, regions, probes, staleness,
    // expiry) and what they must not hold (load, health).
    const op = fc.oneof(
      fc.record({ kind: fc.constant('heartbeat' as const), relay: fc.nat(), sessions: fc.constantFrom(0, 50, 100), cpuFraction: fc.double({ min: 0, max: 1, noNaN: true }), draining: fc.boolean() }),
      fc.record({ kind: fc.constant('register' as const), relay: fc.nat(), where: position, region: fc.constantFrom('eu', 'us') }),
      fc.record({ kind: fc.constant('originProbe' as const), relay: fc.nat(), f: figures }),
      fc.record({ kind: fc.constant('meshProbe' as const), relay: fc.nat(), to: fc.nat(), f: figures }),
      fc.record({ kind: fc.constant('clientFigure' as const), relay: fc.nat(), f: figures }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(1, 1000, LEASE_MS, STALE_MS / 2, STALE_MS) }),
      fc.record({ kind: fc.constant('sweep' as const) }),
      fc.record({ kind: fc.constant('expire' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), fc.array(position, { minLength: 1, maxLength: 3 }), fc.option(fc.constantFrom('eu', 'us')), fc.integer({ min: 1, max: 8 }), (ops, clients, originRegion, limit) => {
        const registry = new Registry({ leaseMs: LEASE_MS, retentionMs: LEASE_MS * 2 });
        const measurements = new MeasurementTable({ staleMs: STALE_MS });
        const prefix = '198.51.100.0/24';
        const origin = { name: 'game', ...(originRegion !== null ? { region: originRegion } : { latitude: 50, longitude: 8 }) };
        let nowMs = NOW_MS;
        const id = (i: number): string => `relay-${i % 12}`;
        for (let i = 0; i < 12; i++) registry.register(nowMs, { relayId: id(i), region: i % 2 ? 'eu' : 'us', latitude: i * 7 - 40, longitude: i * 29 - 170, tunnelAddress: 'a:1', probeAddress: 'a:2', capacitySessions: 100 });
        const record = (from: string, to: string, f: { rttMs: number; jitterMs: number; lossFraction: number; samples: number; ageMs: number }): MeasurementRecord => ({ from, to, rttMs: f.rttMs, jitterMs: f.jitterMs, lossFraction: f.lossFraction, samples: f.samples, reports: 1, updatedAtMs: nowMs - f.ageMs });
        for (const o of ops) {
          if (o.kind === 'heartbeat') registry.heartbeat(nowMs, id(o.relay), { sessions: o.sessions, packetsPerSecond: 0, cpuFraction: o.cpuFraction, draining: o.draining });
          else if (o.kind === 'register') registry.register(nowMs, { relayId: id(o.relay), region: o.region, ...o.where, tunnelAddress: 'a:1', probeAddress: 'a:2', capacitySessions: 100 });
          else if (o.kind === 'originProbe') measurements.replace(record(node.relay(id(o.relay)), node.origin('game'), o.f));
          else if (o.kind === 'meshProbe') measurements.replace(record(node.relay(id(o.relay)), node.relay(id(o.to)), o.f));
          else if (o.kind === 'clientFigure') measurements.replace(record(node.client(prefix), node.relay(id(o.relay)), o.f));
          else if (o.kind === 'advance') nowMs += o.ms;
          else if (o.kind === 'sweep') registry.handleTimeout(nowMs);
          else measurements.expire(nowMs);
          for (const where of clients) {
            for (const client of [where, { ...where, prefix }]) {
              const input: RankInput = { nowMs, registry, measurements, origin, client, limit };
              assert.deepEqual(rankRoutes(input), rankRoutesPlain(input));
            }
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
