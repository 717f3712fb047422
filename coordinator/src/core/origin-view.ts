/**
 * What the route ranking knows of every relay's leg to one origin, kept between
 * requests: the relay→origin figures (the relay's probes, else geography, else region)
 * and their cost do not depend on the client asking, so they are worked out once and
 * reused until something they depend on changes — a relay added, forgotten, moved or
 * re-regioned (`Registry.membershipVersion`), a relay figure added, replaced or
 * dropped (`MeasurementTable.relayFiguresVersion`), a probe going stale (the view ends
 * when its first probe does), other weights or another origin description. Heartbeats
 * (load, health) change none of it: the ranking reads those from the registry on each
 * request.
 *
 * Sans-IO: `nowMs` is passed in.
 */
import { REGION_OTHER_RTT_MS, REGION_SAME_RTT_MS, UNKNOWN_RTT_MS } from './constants.js';
import { geoRttMs, greatCircleKmRad } from './geo.js';
import { node, type MeasurementRecord, type MeasurementTable } from './measurements.js';
import type { Registry } from './registry.js';
import type { RouteOrigin } from '../../../proto/src/api/contract.js';
import type { RankingWeights } from './ranking-weights.js';

/** Relay→origin legs of every relay, by its index in `Registry.entryArray()`. */
export interface OriginView {
  /** The relay's fresh probe of the origin (then the figures below are its), or undefined. */
  readonly probed: readonly (MeasurementRecord | undefined)[];
  /** Leg RTT, ms. */
  readonly rttMs: Float64Array;
  /** Leg jitter, ms. */
  readonly jitterMs: Float64Array;
  /** Leg loss, 0..1. */
  readonly lossFraction: Float64Array;
  /** RTT + jitterWeight·jitter + lossPenaltyMsPerPercent·loss%, ms: the ranking's origin leg cost. */
  readonly legCostMs: Float64Array;
}

interface HeldView extends OriginView {
  readonly measurements: MeasurementTable;
  readonly origin: RouteOrigin;
  readonly weights: RankingWeights;
  readonly membership: number;
  readonly relayFigures: number;
  readonly builtAtMs: number;
  /** The first instant a probe it uses is stale, ms. */
  readonly validUntilMs: number;
}

/** Origins whose views are held per registry; beyond it they start over. */
const VIEWS_PER_REGISTRY_MAX = 64;
const held = new WeakMap<Registry, Map<string, HeldView>>();

function sameOrigin(a: RouteOrigin, b: RouteOrigin): boolean {
  return a === b || (a.name === b.name && Object.is(a.latitude, b.latitude) && Object.is(a.longitude, b.longitude) && a.region === b.region);
}

/**
 * The relay→origin legs for `origin` at `nowMs`, indexed like `registry.entryArray()`:
 * held from an earlier call while still valid (see the module comment), else worked
 * out now. The figures are those the ranking would compute itself, to the bit.
 */
export function originView(nowMs: number, registry: Registry, measurements: MeasurementTable, origin: RouteOrigin, w: RankingWeights): OriginView {
  let views = held.get(registry);
  if (views === undefined) held.set(registry, (views = new Map()));
  const v = views.get(origin.name);
  if (
    v !== undefined &&
    v.measurements === measurements &&
    v.membership === registry.membershipVersion &&
    v.relayFigures === measurements.relayFiguresVersion &&
    nowMs >= v.builtAtMs &&
    nowMs < v.validUntilMs &&
    v.weights === w &&
    sameOrigin(v.origin, origin)
  ) {
    return v;
  }
  if (views.size >= VIEWS_PER_REGISTRY_MAX) views.clear();
  const view = build(nowMs, registry, measurements, origin, w);
  views.set(origin.name, view);
  return view;
}

function build(nowMs: number, registry: Registry, measurements: MeasurementTable, origin: RouteOrigin, w: RankingWeights): HeldView {
  const entries = registry.entryArray();
  const n = entries.length;
  const originNode = node.origin(origin.name);
  const hasGeo = typeof origin.latitude === 'number' && typeof origin.longitude === 'number' && Number.isFinite(origin.latitude) && Number.isFinite(origin.longitude);
  const rad = Math.PI / 180;
  const oLatRad = hasGeo ? origin.latitude! * rad : 0;
  const oLonRad = hasGeo ? origin.longitude! * rad : 0;
  const oCos = Math.cos(oLatRad);
  const originRegion = origin.region !== undefined && origin.region !== '' ? origin.region : undefined;
  const probedList: (MeasurementRecord | undefined)[] = new Array<MeasurementRecord | undefined>(n);
  const rttMs = new Float64Array(n);
  const jitterMs = new Float64Array(n);
  const lossFraction = new Float64Array(n);
  const legCostMs = new Float64Array(n);
  let validUntilMs = Number.POSITIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const entry = entries[i]!;
    let probed = measurements.from(entry.nodeName)?.get(originNode);
    if (probed !== undefined && nowMs - probed.updatedAtMs >= measurements.staleMs) probed = undefined;
    if (probed !== undefined) validUntilMs = Math.min(validUntilMs, probed.updatedAtMs + measurements.staleMs);
    const oRtt = probed ? probed.rttMs : hasGeo ? geoRttMs(greatCircleKmRad(entry.latitudeRad, entry.longitudeRad, entry.cosLatitude, oLatRad, oLonRad, oCos)) : originRegion !== undefined ? (originRegion === entry.record.region ? REGION_SAME_RTT_MS : REGION_OTHER_RTT_MS) : UNKNOWN_RTT_MS;
    const oJit = probed ? probed.jitterMs : 0;
    const oLoss = probed ? probed.lossFraction : 0;
    probedList[i] = probed;
    rttMs[i] = oRtt;
    jitterMs[i] = oJit;
    lossFraction[i] = oLoss;
    legCostMs[i] = oRtt + w.jitterWeight * oJit + w.lossPenaltyMsPerPercent * oLoss * 100;
  }
  return { probed: probedList, rttMs, jitterMs, lossFraction, legCostMs, measurements, origin, weights: w, membership: registry.membershipVersion, relayFigures: measurements.relayFiguresVersion, builtAtMs: nowMs, validUntilMs };
}
