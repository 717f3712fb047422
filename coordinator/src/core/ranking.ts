/**
 * Route ranking: orders candidate relays for one client and one origin by the
 * estimated whole path, client→relay + relay→origin (or client→entry→exit→origin),
 * penalised by jitter, loss and load.
 *
 * Each leg comes from the best source available, in this order:
 * - client→relay: SDK reports for the client's prefix (`measured`), else great-circle
 *   distance from the client's coordinates (`geography`), else its region hint
 *   (`region`), else a flat guess (`unknown`) that is the same for every relay;
 * - relay→origin: the relay's own probes of the origin, else geography, else region;
 * - relay→relay (two-hop only): the mesh probes; two-hop routes are offered only
 *   from measured mesh figures, and only where they beat the entry's direct route by
 *   at least `twoHopGainMsMin`.
 *
 * Cost (ms) = RTT + jitterWeight·jitter + lossPenaltyMsPerPercent·loss% + load
 * penalty (+ a hop penalty per extra relay). Path jitter adds in quadrature, loss
 * compounds (1 − Π(1 − pᵢ)). Every candidate carries its legs with source,
 * confidence and age (for the SDK's hysteresis) and a reason string.
 *
 * Answers are a pure function of the inputs; sans-IO. The fast path (issue #17 item 5:
 * a route cache miss must stay cheap at thousands of routes per second) ranks exactly
 * like {@link rankRoutesPlain}, the straightforward ranking kept as its specification,
 * and is tested against it over random fleets (`ranking-equivalence.test.ts`), by:
 * - relay→origin legs held between requests per origin (origin-view.ts: they do not
 *   depend on the client; load and health are read fresh);
 * - short lists (top `limit`, best 8 entries) instead of sorting all; the best 8 exits
 *   (by relay→origin leg, which does not depend on the client) chosen first from plain
 *   numbers, so the distance floor below need not wait for an exits list to fill;
 * - the short lists hold plain figures while the loop runs; legs and scored objects are
 *   built at the end, only for the relays still on a list;
 * - health, load and position come from the registry's contiguous arrays
 *   (`Registry.figures()`), so a skipped relay's objects are never touched;
 * - a distance floor: once the lists are full, a relay whose chord-distance lower bound
 *   already puts it behind all of them is skipped before its exact great-circle
 *   distance, its objects or its reason are worked out (most of a 500-relay fleet);
 * - mesh figures looked up once per entry and exit, not per pair.
 */
import {
  GEO_CONFIDENCE,
  HOP_PENALTY_MS_DEFAULT,
  JITTER_WEIGHT_DEFAULT,
  LOAD_KNEE_FRACTION_DEFAULT,
  LOAD_PENALTY_MS_AT_FULL_DEFAULT,
  LOSS_PENALTY_MS_PER_PERCENT_DEFAULT,
  REGION_CONFIDENCE,
  REGION_OTHER_RTT_MS,
  REGION_SAME_RTT_MS,
  ROUTE_LIMIT_DEFAULT,
  TWO_HOP_CANDIDATES,
  TWO_HOP_GAIN_MS_MIN_DEFAULT,
  UNKNOWN_RTT_MS,
} from './constants.js';
import { geoRttFloorMs, geoRttMs, greatCircleKm, greatCircleKmRad } from './geo.js';
import { node, type MeasurementRecord, type MeasurementTable } from './measurements.js';
import { originView } from './origin-view.js';
import type { RankingWeights } from './ranking-weights.js';
import type { Registry, RelayRecord } from './registry.js';
import type { ExcludedRelay, LegEstimate, LegSource, RouteCandidate, RouteOrigin, RouteRanking } from '../../../proto/src/api/contract.js';
export type { ExcludedRelay, LegEstimate, LegSource, RouteCandidate, RouteOrigin, RouteRanking };

/** What is known about the client asking. */
export interface RouteClient {
  /** Coarse prefix (`/24`, `/48`) of the client's address. */
  readonly prefix?: string;
  /** Coordinates the client supplied, degrees. */
  readonly latitude?: number;
  /** Coordinates the client supplied, degrees. */
  readonly longitude?: number;
  /** Region hint the client supplied. */
  readonly region?: string;
}

export type { RankingWeights } from './ranking-weights.js';

/** The default {@link RankingWeights}. */
export const DEFAULT_WEIGHTS: RankingWeights = Object.freeze({
  lossPenaltyMsPerPercent: LOSS_PENALTY_MS_PER_PERCENT_DEFAULT,
  jitterWeight: JITTER_WEIGHT_DEFAULT,
  loadKneeFraction: LOAD_KNEE_FRACTION_DEFAULT,
  loadPenaltyMsAtFull: LOAD_PENALTY_MS_AT_FULL_DEFAULT,
  hopPenaltyMs: HOP_PENALTY_MS_DEFAULT,
  twoHopGainMsMin: TWO_HOP_GAIN_MS_MIN_DEFAULT,
});

/** Inputs of {@link rankRoutes}. */
export interface RankInput {
  readonly nowMs: number;
  readonly registry: Registry;
  readonly measurements: MeasurementTable;
  readonly origin: RouteOrigin;
  readonly client: RouteClient;
  /** Candidates returned at most. Default {@link ROUTE_LIMIT_DEFAULT}. */
  readonly limit?: number;
  /** Whether to consider two-hop routes. Default true. */
  readonly twoHop?: boolean;
  /**
   * The session's exit relay, when its ticket names one: every entry is then ranked by
   * client→entry→exit→origin (the exit itself by its direct route), since that is the
   * path the session takes whichever entry the client picks. `twoHop` is ignored.
   * Default none.
   */
  readonly exitRelayId?: string;
  /** Default {@link DEFAULT_WEIGHTS}. */
  readonly weights?: RankingWeights;
  /**
   * The client→relay figures to rank by, keyed by relay node name (stale ones are
   * skipped), when the caller knows better ones than the prefix's (the client's own
   * reports). Default: the figures measured from the client's prefix.
   */
  readonly clientFigures?: ReadonlyMap<string, MeasurementRecord>;
}

const UNKNOWN_LEG: LegEstimate = Object.freeze({ rttMs: UNKNOWN_RTT_MS, jitterMs: 0, lossFraction: 0, source: 'unknown', confidence: 0 });

function measuredLeg(nowMs: number, measurements: MeasurementTable, r: MeasurementRecord): LegEstimate {
  return { rttMs: r.rttMs, jitterMs: r.jitterMs, lossFraction: r.lossFraction, source: 'measured', confidence: measurements.confidence(nowMs, r), ageMs: Math.max(0, nowMs - r.updatedAtMs), samples: r.samples };
}

function hasCoordinates(x: { latitude?: number; longitude?: number }): x is { latitude: number; longitude: number } {
  return typeof x.latitude === 'number' && typeof x.longitude === 'number' && Number.isFinite(x.latitude) && Number.isFinite(x.longitude);
}

function geoLeg(a: { latitude: number; longitude: number }, b: { latitude: number; longitude: number }): LegEstimate {
  return geoLegOf(geoRttMs(greatCircleKm(a.latitude, a.longitude, b.latitude, b.longitude)));
}

function geoLegOf(rttMs: number): LegEstimate {
  return { rttMs, jitterMs: 0, lossFraction: 0, source: 'geography', confidence: GEO_CONFIDENCE };
}

function regionLeg(same: boolean): LegEstimate {
  return { rttMs: same ? REGION_SAME_RTT_MS : REGION_OTHER_RTT_MS, jitterMs: 0, lossFraction: 0, source: 'region', confidence: REGION_CONFIDENCE };
}

/** client→relay leg. */
export function clientLeg(nowMs: number, measurements: MeasurementTable, client: RouteClient, relay: RelayRecord): LegEstimate {
  if (client.prefix !== undefined) {
    const record = measurements.fresh(nowMs, node.client(client.prefix), node.relay(relay.relayId));
    if (record) return measuredLeg(nowMs, measurements, record);
  }
  if (hasCoordinates(client)) return geoLeg(client, relay);
  if (client.region !== undefined && client.region !== '') return regionLeg(client.region === relay.region);
  return UNKNOWN_LEG;
}

/** relay→origin leg. */
export function originLeg(nowMs: number, measurements: MeasurementTable, relay: RelayRecord, origin: RouteOrigin): LegEstimate {
  const record = measurements.fresh(nowMs, node.relay(relay.relayId), node.origin(origin.name));
  if (record) return measuredLeg(nowMs, measurements, record);
  if (hasCoordinates(origin)) return geoLeg(relay, origin);
  if (origin.region !== undefined && origin.region !== '') return regionLeg(origin.region === relay.region);
  return UNKNOWN_LEG;
}

/** relay→relay leg from the mesh (either direction; RTT is symmetric), or undefined when not measured. */
export function meshLeg(nowMs: number, measurements: MeasurementTable, from: string, to: string): LegEstimate | undefined {
  const record = measurements.fresh(nowMs, node.relay(from), node.relay(to)) ?? measurements.fresh(nowMs, node.relay(to), node.relay(from));
  return record ? measuredLeg(nowMs, measurements, record) : undefined;
}

/** Load fraction of a relay: max of sessions/capacity and CPU, 0..∞ (capacity 0 counts as full). */
export function loadFraction(record: RelayRecord): number {
  const bySessions = record.capacitySessions > 0 ? record.load.sessions / record.capacitySessions : 1;
  return Math.max(bySessions, record.load.cpuFraction);
}

function loadPenaltyMs(fraction: number, w: RankingWeights): number {
  if (fraction <= w.loadKneeFraction) return 0;
  const over = Math.min(1, (fraction - w.loadKneeFraction) / Math.max(1e-9, 1 - w.loadKneeFraction));
  return over * w.loadPenaltyMsAtFull;
}

/** Working state per scored route, before the top ones are turned into candidates. */
interface Scored {
  entry: RelayRecord;
  exit: RelayRecord | undefined;
  client: LegEstimate;
  mesh: LegEstimate | undefined;
  origin: LegEstimate;
  rttMs: number;
  jitterMs: number;
  lossFraction: number;
  jitterPenalty: number;
  lossPenalty: number;
  loadPenalty: number;
  hopPenalty: number;
  costMs: number;
  loadFraction: number;
  /** Cost of the client leg alone (RTT + jitter and loss penalties), ms: picks two-hop entries. */
  clientLegCost: number;
  /** Cost of the origin leg alone, ms: picks two-hop exits. */
  originLegCost: number;
}

/** The cost formula, on plain numbers: the one place it is written (the hot loop and {@link score} both use it, so they agree to the bit). */
function pathCost(cRtt: number, cJit: number, cLoss: number, mRtt: number, mJit: number, mLoss: number, oRtt: number, oJit: number, oLoss: number, loadPenalty: number, hopPenalty: number, w: RankingWeights): number {
  const rttMs = cRtt + mRtt + oRtt;
  const jitterMs = Math.sqrt(cJit ** 2 + mJit ** 2 + oJit ** 2);
  const lossFraction = 1 - (1 - cLoss) * (1 - mLoss) * (1 - oLoss);
  return rttMs + w.jitterWeight * jitterMs + w.lossPenaltyMsPerPercent * lossFraction * 100 + loadPenalty + hopPenalty;
}

function score(entry: RelayRecord, exit: RelayRecord | undefined, client: LegEstimate, mesh: LegEstimate | undefined, origin: LegEstimate, w: RankingWeights): Scored {
  const rttMs = client.rttMs + (mesh?.rttMs ?? 0) + origin.rttMs;
  const jitterMs = Math.sqrt(client.jitterMs ** 2 + (mesh?.jitterMs ?? 0) ** 2 + origin.jitterMs ** 2);
  const lossFraction = 1 - (1 - client.lossFraction) * (1 - (mesh?.lossFraction ?? 0)) * (1 - origin.lossFraction);
  const entryLoad = loadFraction(entry);
  const exitLoad = exit ? loadFraction(exit) : 0;
  const jitterPenalty = w.jitterWeight * jitterMs;
  const lossPenalty = w.lossPenaltyMsPerPercent * lossFraction * 100;
  const loadPenalty = loadPenaltyMs(entryLoad, w) + (exit ? loadPenaltyMs(exitLoad, w) : 0);
  const hopPenalty = exit ? w.hopPenaltyMs : 0;
  return {
    entry,
    exit,
    client,
    mesh,
    origin,
    rttMs,
    jitterMs,
    lossFraction,
    jitterPenalty,
    lossPenalty,
    loadPenalty,
    hopPenalty,
    costMs: pathCost(client.rttMs, client.jitterMs, client.lossFraction, mesh?.rttMs ?? 0, mesh?.jitterMs ?? 0, mesh?.lossFraction ?? 0, origin.rttMs, origin.jitterMs, origin.lossFraction, loadPenalty, hopPenalty, w),
    loadFraction: Math.max(entryLoad, exitLoad),
    clientLegCost: client.rttMs + w.jitterWeight * client.jitterMs + w.lossPenaltyMsPerPercent * client.lossFraction * 100,
    originLegCost: origin.rttMs + w.jitterWeight * origin.jitterMs + w.lossPenaltyMsPerPercent * origin.lossFraction * 100,
  };
}

const f1 = (x: number): string => x.toFixed(1);

function legText(name: string, leg: LegEstimate): string {
  const age = leg.ageMs !== undefined ? `, ${f1(leg.ageMs / 1000)} s old` : '';
  return `${name} ${f1(leg.rttMs)} ms (${leg.source}${age})`;
}

function reasonFor(s: Scored, rank: number, best: Scored): string {
  const legs = [legText('client→relay', s.client)];
  if (s.mesh && s.exit) legs.push(legText(`relay→${s.exit.relayId}`, s.mesh));
  legs.push(legText('relay→origin', s.origin));
  const parts = [`est. ${f1(s.costMs)} ms = RTT ${f1(s.rttMs)} [${legs.join(', ')}]`];
  if (s.jitterPenalty > 0.05) parts.push(`jitter +${f1(s.jitterPenalty)}`);
  if (s.lossPenalty > 0.05) parts.push(`loss ${(s.lossFraction * 100).toFixed(2)} % +${f1(s.lossPenalty)}`);
  if (s.loadPenalty > 0.05) parts.push(`load ${Math.round(s.loadFraction * 100)} % +${f1(s.loadPenalty)}`);
  if (s.hopPenalty > 0) parts.push(`extra hop +${f1(s.hopPenalty)}`);
  let text = `#${rank}: ${parts.join(' + ')}`;
  if (rank === 1) return `${text}; lowest estimated whole-path cost`;
  const deltas: [string, number][] = [
    ['longer RTT', s.rttMs - best.rttMs],
    ['more jitter', s.jitterPenalty - best.jitterPenalty],
    ['more loss', s.lossPenalty - best.lossPenalty],
    ['more load', s.loadPenalty - best.loadPenalty],
    ['extra hop', s.hopPenalty - best.hopPenalty],
  ];
  deltas.sort((a, b) => b[1] - a[1]);
  text += `; ${f1(s.costMs - best.costMs)} ms behind #1, mostly ${deltas[0]![0]} (+${f1(deltas[0]![1])} ms)`;
  return text;
}

function toCandidate(s: Scored, rank: number, best: Scored): RouteCandidate {
  const legs: RouteCandidate['legs'] = s.mesh ? { clientToRelay: s.client, relayToRelay: s.mesh, relayToOrigin: s.origin } : { clientToRelay: s.client, relayToOrigin: s.origin };
  const confidence = Math.min(s.client.confidence, s.origin.confidence, s.mesh?.confidence ?? 1);
  return {
    rank,
    kind: s.exit ? 'twoHop' : 'direct',
    relayId: s.entry.relayId,
    ...(s.exit ? { exitRelayId: s.exit.relayId } : {}),
    region: s.entry.region,
    tunnelAddress: s.entry.tunnelAddress,
    probeAddress: s.entry.probeAddress,
    ...(s.entry.webrtcUrl !== undefined ? { webrtcUrl: s.entry.webrtcUrl } : {}),
    costMs: s.costMs,
    rttMs: s.rttMs,
    jitterMs: s.jitterMs,
    lossFraction: s.lossFraction,
    legs,
    penaltiesMs: { jitter: s.jitterPenalty, loss: s.lossPenalty, load: s.loadPenalty, hop: s.hopPenalty },
    load: { sessions: s.entry.load.sessions, capacitySessions: s.entry.capacitySessions, cpuFraction: s.entry.load.cpuFraction, loadFraction: loadFraction(s.entry) },
    confidence,
    reason: reasonFor(s, rank, best),
  };
}

function byCost(a: Scored, b: Scored): number {
  return a.costMs - b.costMs || (a.entry.relayId < b.entry.relayId ? -1 : a.entry.relayId > b.entry.relayId ? 1 : 0) || (a.exit?.relayId ?? '').localeCompare(b.exit?.relayId ?? '');
}

/** Inserts `s` into `best` (sorted by `order`, at most `k` long) if it belongs there: top-k in O(N·k) without sorting everything. */
/** Entries considered when ranking through a fixed exit (every eligible relay of any fleet we rank). */
const EXIT_ROUTE_POOL = 10_000;

/**
 * Rounding margin of the distance floor, ms: costs are sums of a few terms below 10⁶ ms,
 * so their rounding errors are below 10⁻⁹ ms; the floor is lowered by this much more
 * than that before a relay is ruled out by it.
 */
const FLOOR_MARGIN_MS = 1e-6;

/**
 * Ranking for a session with a fixed exit: each eligible entry's client leg (as the
 * direct ranking finds it), plus entry→exit (mesh probes, else the relays' geography),
 * plus the exit's origin leg. An exit that is not healthy leaves the direct ranking as
 * it is: the entries will serve such sessions themselves.
 */
function rankViaExit(input: RankInput, exitRelayId: string, rankDirect: (input: RankInput) => RouteRanking): RouteRanking {
  const w = input.weights ?? DEFAULT_WEIGHTS;
  const limit = input.limit ?? ROUTE_LIMIT_DEFAULT;
  const { nowMs, registry, measurements } = input;
  const direct = rankDirect({ ...input, exitRelayId: undefined, twoHop: false, limit: EXIT_ROUTE_POOL });
  const exit = registry.get(exitRelayId);
  if (exit === undefined || registry.health(nowMs, exit) !== 'healthy') return { ...direct, candidates: direct.candidates.slice(0, limit) };
  const exitOrigin = originLeg(nowMs, measurements, exit, input.origin);
  const scored: Scored[] = [];
  for (const c of direct.candidates) {
    const entry = registry.get(c.relayId)!;
    if (c.relayId === exitRelayId) scored.push(score(entry, undefined, c.legs.clientToRelay, undefined, c.legs.relayToOrigin, w));
    else scored.push(score(entry, exit, c.legs.clientToRelay, meshLeg(nowMs, measurements, c.relayId, exitRelayId) ?? geoLeg(entry, exit), exitOrigin, w));
  }
  scored.sort(byCost);
  const top = scored.slice(0, limit);
  const best = top[0];
  return { candidates: best ? top.map((s, i) => toCandidate(s, i + 1, best)) : [], excluded: direct.excluded.slice(0, limit), excludedCount: direct.excludedCount };
}

/**
 * Two-hop routes: each of the best entries (by client leg) through each of the best
 * exits (by origin leg) where the mesh measured entry↔exit, kept in `top` when it beats
 * the entry's direct route by `twoHopGainMsMin`. Each relay's mesh figures are looked up
 * once, not once per pair.
 */
function addTwoHops(nowMs: number, measurements: MeasurementTable, entries: readonly Scored[], exits: readonly Scored[], top: Scored[], limit: number, w: RankingWeights): void {
  const staleMs = measurements.staleMs;
  const exitNodes = exits.map((x) => node.relay(x.entry.relayId));
  const exitFroms = exitNodes.map((n) => measurements.from(n));
  for (const e of entries) {
    const entryNode = node.relay(e.entry.relayId);
    const entryFrom = measurements.from(entryNode);
    for (let i = 0; i < exits.length; i++) {
      const x = exits[i]!;
      if (e.entry === x.entry) continue;
      // meshLeg's lookup: entry→exit, else exit→entry (RTT is symmetric).
      let record = entryFrom?.get(exitNodes[i]!);
      if (record !== undefined && nowMs - record.updatedAtMs >= staleMs) record = undefined;
      if (record === undefined) {
        record = exitFroms[i]?.get(entryNode);
        if (record !== undefined && nowMs - record.updatedAtMs >= staleMs) record = undefined;
      }
      if (record === undefined) continue;
      const s = score(e.entry, x.entry, e.client, measuredLeg(nowMs, measurements, record), x.origin, w);
      if (s.costMs <= e.costMs - w.twoHopGainMsMin) keepBest(top, s, limit, byCost);
    }
  }
}

function keepBest<T>(best: T[], s: T, k: number, order: (a: T, b: T) => number): void {
  if (best.length === k && order(s, best[k - 1]!) >= 0) return;
  let i = best.length === k ? k - 1 : best.length;
  if (best.length < k) best.push(s);
  for (; i > 0 && order(s, best[i - 1]!) < 0; i--) best[i] = best[i - 1]!;
  best[i] = s;
}

/**
 * Ranks every eligible relay (healthy, not draining, not full) for `client` and
 * `origin`. Deterministic: ties break by relay id.
 */
export function rankRoutes(input: RankInput): RouteRanking {
  if (input.exitRelayId !== undefined) return rankViaExit(input, input.exitRelayId, rankRoutes);
  const w = input.weights ?? DEFAULT_WEIGHTS;
  const limit = input.limit ?? ROUTE_LIMIT_DEFAULT;
  const { nowMs, registry, measurements, origin, client } = input;
  const excluded: ExcludedRelay[] = [];
  let excludedCount = 0;
  // Hoisted out of the per-relay loop: the client's reports, and every relay's origin leg (held between requests).
  const clientReports = input.clientFigures ?? (client.prefix !== undefined ? measurements.from(node.client(client.prefix)) : undefined);
  const view = originView(nowMs, registry, measurements, origin, w);
  const clientGeo = hasCoordinates(client) ? client : undefined;
  const rad = Math.PI / 180;
  const cLatRad = clientGeo ? clientGeo.latitude * rad : 0;
  const cLonRad = clientGeo ? clientGeo.longitude * rad : 0;
  const cCos = Math.cos(cLatRad);
  const clientRegion = client.region !== undefined && client.region !== '' ? client.region : undefined;
  const originGeo = hasCoordinates(origin) ? origin : undefined;
  const originRegion = origin.region !== undefined && origin.region !== '' ? origin.region : undefined;
  const twoHop = input.twoHop !== false;
  // The short lists hold plain figures (Lite) while the loop runs; the Scored objects,
  // with their legs, are built after it for the few relays that stay on a list.
  const topLite: Lite[] = [];
  const entriesLite: Lite[] = [];
  const list = registry.entryArray();
  // Who may take a new client, and (for two-hop) the exits' origin-leg cost threshold:
  // the TWO_HOP_CANDIDATES-th smallest among eligible relays. Exits are picked by their
  // relay→origin leg, which does not depend on the client, so they are chosen here from
  // plain numbers (objects only for the few at or under the threshold, after the loop),
  // and the loop below needs to keep only two short lists — which lets its distance
  // floor skip relays sooner.
  const eligibleFlags = eligibleScratch(list.length);
  const exitCosts: number[] = [];
  let eligible = 0;
  // Health, draining and fullness from the registry's contiguous figures (exclusionReason's
  // tests, on the same numbers); a relay's objects are read only when it is excluded.
  const fig = registry.figures();
  const leaseMs = registry.leaseMs;
  for (let i = 0; i < list.length; i++) {
    if (nowMs - fig.lastHeartbeatAtMs[i]! < leaseMs && fig.draining[i] === 0 && !(fig.sessions[i]! >= fig.capacitySessions[i]!)) {
      eligibleFlags[i] = 1;
      eligible++;
      if (twoHop) keepSmallest(exitCosts, view.legCostMs[i]!, TWO_HOP_CANDIDATES);
      continue;
    }
    const record = list[i]!.record;
    const why = exclusionReason(nowMs, registry, record);
    if (why !== undefined) {
      eligibleFlags[i] = 0;
      excludedCount++;
      if (excluded.length < limit) excluded.push({ relayId: record.relayId, reason: why });
      continue;
    }
    eligibleFlags[i] = 1;
    eligible++;
    if (twoHop) keepSmallest(exitCosts, view.legCostMs[i]!, TWO_HOP_CANDIDATES);
  }
  const exitThreshold = exitCosts.length === TWO_HOP_CANDIDATES ? exitCosts[TWO_HOP_CANDIDATES - 1]! : Number.POSITIVE_INFINITY;
  // Client position as a unit vector, for the distance floor that skips far relays.
  const cX = cCos * Math.cos(cLonRad);
  const cY = cCos * Math.sin(cLonRad);
  const cZ = Math.sin(cLatRad);
  // The floor is sound when no penalty term can be negative (config allows only ≥ 0 weights).
  const mayPrune = clientGeo !== undefined && w.jitterWeight >= 0 && w.lossPenaltyMsPerPercent >= 0;
  const exitPool: Lite[] = [];
  for (let i = 0; i < list.length; i++) {
    if (eligibleFlags[i] === 0) continue;
    // Figures as plain numbers first (loadFraction's, from the contiguous figures); objects
    // are read only for relays the floor does not skip, and built only for those that make
    // one of the short lists.
    const oRtt = view.rttMs[i]!;
    const oJit = view.jitterMs[i]!;
    const oLoss = view.lossFraction[i]!;
    const originLegCost = view.legCostMs[i]!;
    const capacity = fig.capacitySessions[i]!;
    const loadPenalty = loadPenaltyMs(Math.max(capacity > 0 ? fig.sessions[i]! / capacity : 1, fig.cpuFraction[i]!), w);
    let reported = clientReports?.get(list[i]!.nodeName);
    if (reported !== undefined && nowMs - reported.updatedAtMs >= measurements.staleMs) reported = undefined;
    const forExitPool = twoHop && originLegCost <= exitThreshold;
    if (!forExitPool && reported === undefined && mayPrune && limit > 0 && topLite.length === limit && (!twoHop || entriesLite.length === TWO_HOP_CANDIDATES)) {
      // Every list is full: a relay whose distance floor already puts it behind all of
      // them is skipped before its exact distance is computed. Its exact figures would
      // be at least these (client leg = geography RTT, no jitter or loss), so skipping
      // it cannot change the answer; the margin absorbs rounding.
      const dx = fig.unitX[i]! - cX;
      const dy = fig.unitY[i]! - cY;
      const dz = fig.unitZ[i]! - cZ;
      const cRttFloor = geoRttFloorMs(Math.sqrt(dx * dx + dy * dy + dz * dz)) - FLOOR_MARGIN_MS;
      if (cRttFloor + originLegCost + loadPenalty > topLite[limit - 1]!.costMs && (!twoHop || cRttFloor > entriesLite[TWO_HOP_CANDIDATES - 1]!.clientLegCost)) continue;
    }
    const entry = list[i]!;
    const record = entry.record;
    const cRtt = reported ? reported.rttMs : clientGeo ? geoRttMs(greatCircleKmRad(cLatRad, cLonRad, cCos, entry.latitudeRad, entry.longitudeRad, entry.cosLatitude)) : clientRegion !== undefined ? (clientRegion === record.region ? REGION_SAME_RTT_MS : REGION_OTHER_RTT_MS) : UNKNOWN_RTT_MS;
    const cJit = reported ? reported.jitterMs : 0;
    const cLoss = reported ? reported.lossFraction : 0;
    const costMs = pathCost(cRtt, cJit, cLoss, 0, 0, 0, oRtt, oJit, oLoss, loadPenalty, 0, w);
    const clientLegCost = cRtt + w.jitterWeight * cJit + w.lossPenaltyMsPerPercent * cLoss * 100;
    const forTop = topLite.length < limit || costMs <= topLite[topLite.length - 1]!.costMs;
    const forEntries = twoHop && (entriesLite.length < TWO_HOP_CANDIDATES || clientLegCost <= entriesLite[entriesLite.length - 1]!.clientLegCost);
    if (!forTop && !forEntries && !forExitPool) continue;
    const lite: Lite = { index: i, relayId: record.relayId, costMs, clientLegCost, cRtt, reported, scored: undefined };
    if (forTop) keepBest(topLite, lite, limit, liteByCost);
    if (forEntries) keepBest(entriesLite, lite, TWO_HOP_CANDIDATES, liteByClientLeg);
    if (forExitPool) exitPool.push(lite);
  }
  // The Scored objects of the relays that stayed on a list: the same legs and figures the
  // loop ranked them by (score() recomputes costMs and clientLegCost with the same formula, to the bit).
  const scoredOf = (lite: Lite): Scored => {
    if (lite.scored !== undefined) return lite.scored;
    const i = lite.index;
    const record = list[i]!.record;
    const reported = lite.reported;
    const probed = view.probed[i];
    const cLeg = reported ? measuredLeg(nowMs, measurements, reported) : clientGeo ? geoLegOf(lite.cRtt) : clientRegion !== undefined ? regionLeg(clientRegion === record.region) : UNKNOWN_LEG;
    const oLeg = probed ? measuredLeg(nowMs, measurements, probed) : originGeo ? geoLegOf(view.rttMs[i]!) : originRegion !== undefined ? regionLeg(originRegion === record.region) : UNKNOWN_LEG;
    return (lite.scored = score(record, undefined, cLeg, undefined, oLeg, w));
  };
  const top = topLite.map(scoredOf);
  if (twoHop && eligible > 1) {
    const entries = entriesLite.map(scoredOf);
    // The pool holds every eligible relay at or under the threshold (more than
    // TWO_HOP_CANDIDATES when costs tie); ties are broken as everywhere, by byCost.
    const exits = exitPool.map(scoredOf).sort((a, b) => a.originLegCost - b.originLegCost || byCost(a, b)).slice(0, TWO_HOP_CANDIDATES);
    addTwoHops(nowMs, measurements, entries, exits, top, limit, w);
  }
  const best = top[0];
  return { candidates: best ? top.map((s, i) => toCandidate(s, i + 1, best)) : [], excluded, excludedCount };
}


/** A relay on one of rankRoutes' short lists, as plain figures until it gets its Scored object. */
interface Lite {
  /** Index in `Registry.entryArray()`. */
  readonly index: number;
  readonly relayId: string;
  readonly costMs: number;
  readonly clientLegCost: number;
  /** Client leg RTT, ms (the client's figure's, or geography's, region's, the flat guess). */
  readonly cRtt: number;
  /** The client's fresh figure for this relay, if any. */
  readonly reported: MeasurementRecord | undefined;
  scored: Scored | undefined;
}

/** {@link byCost} for direct routes held as {@link Lite}: cost, then relay id. */
function liteByCost(a: Lite, b: Lite): number {
  return a.costMs - b.costMs || (a.relayId < b.relayId ? -1 : a.relayId > b.relayId ? 1 : 0);
}

/** The entries' order (client leg cost, then {@link liteByCost}). */
function liteByClientLeg(a: Lite, b: Lite): number {
  return a.clientLegCost - b.clientLegCost || liteByCost(a, b);
}

/** A reused flag array of at least `n` entries (the ranking is synchronous, so one serves every call). */
let eligibleBuffer = new Uint8Array(0);
function eligibleScratch(n: number): Uint8Array {
  if (eligibleBuffer.length < n) eligibleBuffer = new Uint8Array(Math.max(n, 2 * eligibleBuffer.length));
  return eligibleBuffer;
}

/** Inserts `x` into `smallest` (ascending, at most `k` long) if it is among the `k` smallest seen. */
function keepSmallest(smallest: number[], x: number, k: number): void {
  if (smallest.length === k && x >= smallest[k - 1]!) return;
  let i = smallest.length === k ? k - 1 : smallest.length;
  if (smallest.length < k) smallest.push(x);
  for (; i > 0 && x < smallest[i - 1]!; i--) smallest[i] = smallest[i - 1]!;
  smallest[i] = x;
}

/** Why `record` takes no new client now (no heartbeat within the lease, draining, full), or undefined when it may. */
function exclusionReason(nowMs: number, registry: Registry, record: RelayRecord): string | undefined {
  const health = registry.health(nowMs, record);
  if (health === 'unhealthy') return `no heartbeat for ${f1((nowMs - record.lastHeartbeatAtMs) / 1000)} s (lease ${f1(registry.leaseMs / 1000)} s)`;
  if (health === 'draining') return 'draining: takes no new clients';
  if (record.load.sessions >= record.capacitySessions) return `full: ${record.load.sessions} of ${record.capacitySessions} sessions`;
  return undefined;
}

/**
 * The straightforward ranking {@link rankRoutes} must agree with, answer for answer:
 * every eligible relay's legs built and scored, every list fully sorted, no short
 * lists, no distance floor. The specification of the fast path (the equivalence test
 * compares the two over random fleets and clients); not used to serve routes. Same
 * input and output as {@link rankRoutes}.
 */
export function rankRoutesPlain(input: RankInput): RouteRanking {
  if (input.exitRelayId !== undefined) return rankViaExit(input, input.exitRelayId, rankRoutesPlain);
  const w = input.weights ?? DEFAULT_WEIGHTS;
  const limit = input.limit ?? ROUTE_LIMIT_DEFAULT;
  const { nowMs, registry, measurements, origin, client } = input;
  const excluded: ExcludedRelay[] = [];
  let excludedCount = 0;
  const clientReports = input.clientFigures ?? (client.prefix !== undefined ? measurements.from(node.client(client.prefix)) : undefined);
  const rad = Math.PI / 180;
  const all: Scored[] = [];
  for (const entry of registry.listEntries()) {
    const record = entry.record;
    const why = exclusionReason(nowMs, registry, record);
    if (why !== undefined) {
      excludedCount++;
      if (excluded.length < limit) excluded.push({ relayId: record.relayId, reason: why });
      continue;
    }
    const reported = clientReports?.get(node.relay(record.relayId));
    let cLeg: LegEstimate;
    if (reported !== undefined && nowMs - reported.updatedAtMs < measurements.staleMs) cLeg = measuredLeg(nowMs, measurements, reported);
    else if (hasCoordinates(client)) cLeg = geoLegOf(geoRttMs(greatCircleKmRad(client.latitude * rad, client.longitude * rad, Math.cos(client.latitude * rad), entry.latitudeRad, entry.longitudeRad, entry.cosLatitude)));
    else if (client.region !== undefined && client.region !== '') cLeg = regionLeg(client.region === record.region);
    else cLeg = UNKNOWN_LEG;
    const probed = measurements.fresh(nowMs, node.relay(record.relayId), node.origin(origin.name));
    let oLeg: LegEstimate;
    if (probed) oLeg = measuredLeg(nowMs, measurements, probed);
    else if (hasCoordinates(origin)) oLeg = geoLegOf(geoRttMs(greatCircleKmRad(entry.latitudeRad, entry.longitudeRad, entry.cosLatitude, origin.latitude * rad, origin.longitude * rad, Math.cos(origin.latitude * rad))));
    else if (origin.region !== undefined && origin.region !== '') oLeg = regionLeg(origin.region === record.region);
    else oLeg = UNKNOWN_LEG;
    all.push(score(record, undefined, cLeg, undefined, oLeg, w));
  }
  const routes = [...all];
  if (input.twoHop !== false && all.length > 1) {
    const entries = [...all].sort((a, b) => a.clientLegCost - b.clientLegCost || byCost(a, b)).slice(0, TWO_HOP_CANDIDATES);
    const exits = [...all].sort((a, b) => a.originLegCost - b.originLegCost || byCost(a, b)).slice(0, TWO_HOP_CANDIDATES);
    for (const e of entries) {
      for (const x of exits) {
        if (e.entry === x.entry) continue;
        const mesh = meshLeg(nowMs, measurements, e.entry.relayId, x.entry.relayId);
        if (!mesh) continue;
        const s = score(e.entry, x.entry, e.client, mesh, x.origin, w);
        if (s.costMs <= e.costMs - w.twoHopGainMsMin) routes.push(s);
      }
    }
  }
  const top = routes.sort(byCost).slice(0, limit);
  const best = top[0];
  return { candidates: best ? top.map((s, i) => toCandidate(s, i + 1, best)) : [], excluded, excludedCount };
}
