/**
 * The coordinator's sans-IO core: registry with leases, smoothed measurements,
 * revocation log, per-relay history and ranking behind one object. The HTTP driver
 * (coordinator/src/server.ts) and the simulator tests drive the same class.
 *
 * Inputs: `register`, `heartbeat`, `relayReport`, `clientReport`, `revoke`, the
 * `apply*` family (records from other replicas via the store), and
 * `handleTimeout(nowMs)`. Outputs: `pollEvent()` (relay health transitions) and
 * `pollTimeout()`. Queries: `route`, `fleet`, `origin`. After each input the driver
 * drains `pollEvent()` and re-arms its timer at `pollTimeout()`.
 *
 * Time: `nowMs` on one consistent timeline. The HTTP driver passes wall-clock epoch
 * ms, because replicas on different machines compare heartbeat times through the
 * store; the simulator passes virtual ms.
 */
import { ClientReportAggregator, type ClientReportRules } from './client-reports.js';
import { HISTORY_INTERVAL_MS_DEFAULT, SESSION_MEMORY_MAX, STORE_PRUNE_INTERVAL_MS } from './constants.js';
import { RelayHistory } from './history.js';
import { MeasurementTable, node, type MeasurementRecord, type MeasurementTableInit, type PathFigures, type PathSample } from './measurements.js';
import { rankRoutes, DEFAULT_WEIGHTS, type RankingWeights, type RouteClient, type RouteRanking } from './ranking.js';
import { Registry, type RegistryEvent, type RegistryInit, type RelayInfo, type RelayLoad, type RelayRecord } from './registry.js';
import { RevocationLog, type ReceivedRevocation, type Revocation } from './revocations.js';
import type { FleetRelay, FleetView, OriginInfo } from '../../../proto/src/api/contract.js';
export type { FleetRelay, FleetView, OriginInfo };

/** Options of a {@link CoordinatorCore}. */
export interface CoordinatorCoreInit extends RegistryInit, MeasurementTableInit {
  /** Origins declared in config. Default none (origins are then learned from relay reports). */
  origins?: readonly Omit<OriginInfo, 'source'>[];
  /** Ranking weights. Default {@link DEFAULT_WEIGHTS}. */
  weights?: RankingWeights;
  /** Interval of the dashboard's time-series samples, ms. Default {@link HISTORY_INTERVAL_MS_DEFAULT}. */
  historyIntervalMs?: number;
  /** How client reports become a prefix's figure (core/client-reports.ts). Default: published from 1 reporter, no step bound. */
  clientReports?: ClientReportRules;
}

/**
 * Relays considered when picking an exit automatically. With no client the client leg
 * is the same flat guess for every relay, so the ranking's top is by relay→origin
 * (plus load); a few hundred covers any fleet we rank.
 */
const EXIT_CANDIDATES_MAX = 500;

/** A route question. */
export interface RouteQuery {
  /** Origin name (must be known: configured or learned). */
  readonly origin: string;
  readonly client: RouteClient;
  /** Candidates at most. */
  readonly limit?: number;
  /** Consider two-hop routes. Default true. */
  readonly twoHop?: boolean;
  /** The session's exit relay: rank entries by the path through it (see {@link RankInput.exitRelayId}). */
  readonly exitRelayId?: string;
  /** Who asks, as a reporter key (geo.ts `reporterKey`): its own client reports rank its own route. Default none. */
  readonly reporter?: string;
}

/** Relays in the dashboard's RTT matrix at most (the matrix grows with the square). */
export const FLEET_MATRIX_RELAYS_MAX = 64;

/** Result of a report: the new record, or why it was not taken. */
export type ReportResult = { ok: true; record: MeasurementRecord } | { ok: false; reason: 'unknownRelay' | 'noSamples' };

/**
 * Result of a client report: taken, with the prefix's newly published figure (undefined
 * while the path has fewer than `reportersMin` reporters) — or why it was not taken.
 */
export type ClientReportResult = { ok: true; record: MeasurementRecord | undefined; reporters: number } | { ok: false; reason: 'unknownRelay' | 'noSamples' };

/** See the module comment. */
export class CoordinatorCore {
  /** Relays and leases. */
  readonly registry: Registry;
  /** Smoothed figures. */
  readonly measurements: MeasurementTable;
  /** Revoked sessions. */
  readonly revocations = new RevocationLog();
  /** Dashboard series. */
  readonly history = new RelayHistory();
  /** Ranking weights in force. */
  readonly weights: RankingWeights;
  /** Per-reporter client figures and their robust aggregate. */
  readonly clientReports: ClientReportAggregator;
  private readonly origins = new Map<string, OriginInfo>();
  private readonly sessionExpiry = new Map<string, number>();
  private readonly historyIntervalMs: number;
  private nextHistoryMs: number | undefined = undefined;
  private nextPruneMs: number | undefined = undefined;
  private readonly events: RegistryEvent[] = [];

  constructor(init: CoordinatorCoreInit = {}) {
    this.registry = new Registry(init);
    this.measurements = new MeasurementTable(init);
    this.clientReports = new ClientReportAggregator(this.measurements, init.clientReports);
    this.weights = init.weights ?? DEFAULT_WEIGHTS;
    this.historyIntervalMs = init.historyIntervalMs ?? HISTORY_INTERVAL_MS_DEFAULT;
    for (const origin of init.origins ?? []) this.origins.set(origin.name, { ...origin, source: 'config' });
  }

  /** Registers a relay (see {@link Registry.register}); `fleetSecretId` is {@link RelayRecord.fleetSecretId}. */
  register(nowMs: number, info: RelayInfo, fleetSecretId?: string): RelayRecord {
    const record = this.registry.register(nowMs, info, fleetSecretId);
    this.afterInput();
    return record;
  }

  /** A heartbeat; undefined when the relay is not registered. `fleetSecretId` as in {@link register}. */
  heartbeat(nowMs: number, relayId: string, load: RelayLoad, fleetSecretId?: string): RelayRecord | undefined {
    const record = this.registry.heartbeat(nowMs, relayId, load, fleetSecretId);
    this.afterInput();
    return record;
  }

  /** A relay's probe result toward another relay (`{ relayId }`) or an origin (`{ origin }`); an origin reported this way becomes known. */
  relayReport(nowMs: number, relayId: string, target: { relayId: string } | { origin: string }, sample: PathSample): ReportResult {
    if (!this.registry.get(relayId)) return { ok: false, reason: 'unknownRelay' };
    let to: string;
    if ('relayId' in target) {
      if (!this.registry.get(target.relayId)) return { ok: false, reason: 'unknownRelay' };
      to = node.relay(target.relayId);
    } else {
      this.learnOrigin(target.origin);
      to = node.origin(target.origin);
    }
    const record = this.measurements.report(nowMs, node.relay(relayId), to, sample);
    return record ? { ok: true, record } : { ok: false, reason: 'noSamples' };
  }

  /**
   * An SDK's probe result toward a relay, keyed by the client's coarse prefix and
   * filed under `reporter` (an address or IPv6 /64, see `reporterKey` in geo.ts;
   * default: the prefix itself, one reporter). The prefix's figure is the robust
   * aggregate of core/client-reports.ts, published once enough reporters agree.
   */
  clientReport(nowMs: number, prefix: string, relayId: string, sample: PathSample, reporter: string = prefix): ClientReportResult {
    if (!this.registry.get(relayId)) return { ok: false, reason: 'unknownRelay' };
    if (!(sample.samples > 0)) return { ok: false, reason: 'noSamples' };
    const from = node.client(prefix);
    const to = node.relay(relayId);
    const aggregate = this.clientReports.add(nowMs, from, to, reporter, sample);
    if (!aggregate.publish) return { ok: true, record: undefined, reporters: aggregate.reporters };
    const previous = this.measurements.fresh(nowMs, from, to);
    const figures = this.clientReports.stepToward(previous, aggregate.publish);
    const record: MeasurementRecord = { from, to, ...figures, samples: aggregate.publish.samples, reports: (previous?.reports ?? 0) + 1, updatedAtMs: Math.max(nowMs, previous?.updatedAtMs ?? nowMs) };
    this.measurements.replace(record);
    return { ok: true, record, reporters: aggregate.reporters };
  }

  /** Remembers a session's ticket expiry so that a revocation lives exactly as long as needed (bounded memory). */
  noteSession(sessionId: string, expiresAtMs: number): void {
    if (this.sessionExpiry.size >= SESSION_MEMORY_MAX) {
      const oldest = this.sessionExpiry.keys().next();
      if (!oldest.done) this.sessionExpiry.delete(oldest.value);
    }
    this.sessionExpiry.set(sessionId, expiresAtMs);
  }

  /** The remembered ticket expiry of a session issued by this replica, ms. */
  sessionExpiresAtMs(sessionId: string): number | undefined {
    return this.sessionExpiry.get(sessionId);
  }

  /** Revokes a session; returns the new entry, or undefined if it was already revoked (or already expired). */
  revoke(nowMs: number, revocation: Revocation): ReceivedRevocation | undefined {
    return this.revocations.add(nowMs, revocation);
  }

  /** Takes a relay record from the store or another replica. */
  applyRelay(nowMs: number, record: RelayRecord): boolean {
    const taken = this.registry.apply(nowMs, record);
    this.afterInput();
    return taken;
  }

  /** Takes a measurement from the store or another replica. */
  applyMeasurement(record: MeasurementRecord): boolean {
    if (record.to.startsWith('origin:') && record.from.startsWith('relay:')) this.learnOrigin(record.to.slice('origin:'.length));
    return this.measurements.apply(record);
  }

  /** Takes a revocation from the store or another replica; returns the entry when it is new here. */
  applyRevocation(nowMs: number, revocation: Revocation): ReceivedRevocation | undefined {
    return this.revocations.add(nowMs, revocation);
  }

  /** A known origin by name (configured or learned), or undefined. */
  origin(name: string): OriginInfo | undefined {
    return this.origins.get(name);
  }

  /** Every known origin. */
  originList(): OriginInfo[] {
    return [...this.origins.values()];
  }

  /**
   * The exit relay for a session to `originName` (it holds the session's one
   * origin-facing socket; entries forward to it, so the origin keeps seeing one source
   * address when the player changes entry). `relayId` names one (it must be healthy);
   * `auto` takes the healthy relay with the cheapest relay→origin leg, the same leg
   * figures (measured, else geography, else region) and penalties the two-hop ranking
   * picks exits by. Undefined origin → `unknownOrigin`; no such healthy relay → `noRelay`.
   */
  pickExit(nowMs: number, originName: string, relayId: string): { ok: true; relayId: string; address: string } | { ok: false; reason: 'unknownOrigin' | 'noRelay' } {
    const origin = this.origins.get(originName);
    if (!origin) return { ok: false, reason: 'unknownOrigin' };
    if (relayId !== 'auto') {
      const record = this.registry.get(relayId);
      if (!record || this.registry.health(nowMs, record) !== 'healthy') return { ok: false, reason: 'noRelay' };
      return { ok: true, relayId: record.relayId, address: record.tunnelAddress };
    }
    const ranking = rankRoutes({ nowMs, registry: this.registry, measurements: this.measurements, origin, client: {}, limit: EXIT_CANDIDATES_MAX, twoHop: false, weights: this.weights });
    let best: { relayId: string; address: string; costMs: number } | undefined;
    for (const c of ranking.candidates) {
      const leg = c.legs.relayToOrigin;
      const costMs = leg.rttMs + this.weights.jitterWeight * leg.jitterMs + this.weights.lossPenaltyMsPerPercent * leg.lossFraction * 100;
      if (best === undefined || costMs < best.costMs) best = { relayId: c.relayId, address: c.tunnelAddress, costMs };
    }
    return best === undefined ? { ok: false, reason: 'noRelay' } : { ok: true, relayId: best.relayId, address: best.address };
  }

  /** Ranks relays for a client and a known origin; undefined when the origin is unknown. */
  route(nowMs: number, query: RouteQuery): RouteRanking | undefined {
    const origin = this.origins.get(query.origin);
    if (!origin) return undefined;
    const clientFigures = this.clientFiguresFor(query.client.prefix, query.reporter);
    return rankRoutes({ nowMs, registry: this.registry, measurements: this.measurements, origin, client: query.client, limit: query.limit, twoHop: query.twoHop, ...(query.exitRelayId !== undefined ? { exitRelayId: query.exitRelayId } : {}), ...(clientFigures ? { clientFigures } : {}), weights: this.weights });
  }
  /** Whether `reporter` (of client prefix `prefix`) has figures of its own, which its own routes are ranked by (so its answers are its own, not its prefix's). */
  hasOwnFigures(prefix: string, reporter: string): boolean {
    return this.clientReports.own(node.client(prefix), reporter) !== undefined;
  }
  /** The prefix's published figures with `reporter`'s own laid over them; undefined when it has none (rank by the prefix's). */
  private clientFiguresFor(prefix: string | undefined, reporter: string | undefined): ReadonlyMap<string, MeasurementRecord> | undefined {
    if (prefix === undefined || reporter === undefined) return undefined;
    const from = node.client(prefix);
    const own = this.clientReports.own(from, reporter);
    if (!own) return undefined;
    const merged = new Map(this.measurements.from(from) ?? []);
    for (const [to, record] of own) merged.set(to, record);
    return merged;
  }


  /** Runs whatever is due: lease sweep, expiry of figures and revocations, history samples. */
  handleTimeout(nowMs: number): void {
    const sweep = this.registry.pollTimeout();
    if (sweep !== undefined && sweep <= nowMs) this.registry.handleTimeout(nowMs);
    if (this.nextPruneMs === undefined || this.nextPruneMs <= nowMs) {
      this.measurements.expire(nowMs);
      this.revocations.expire(nowMs);
      for (const [id, expiresAtMs] of this.sessionExpiry) if (expiresAtMs <= nowMs) this.sessionExpiry.delete(id);
      this.nextPruneMs = nowMs + STORE_PRUNE_INTERVAL_MS;
    }
    if (this.nextHistoryMs === undefined || this.nextHistoryMs <= nowMs) {
      for (const record of this.registry.list()) this.history.sample(nowMs, record.relayId, this.relayFigures(nowMs, record.relayId));
      this.nextHistoryMs = nowMs + this.historyIntervalMs;
    }
    this.afterInput();
  }

  /** When {@link handleTimeout} should run next, ms. */
  pollTimeout(): number | undefined {
    let next: number | undefined = this.registry.pollTimeout();
    for (const t of [this.nextPruneMs, this.nextHistoryMs]) if (t !== undefined && (next === undefined || t < next)) next = t;
    return next;
  }

  /** The next relay health transition, or undefined. */
  pollEvent(): RegistryEvent | undefined {
    return this.events.shift();
  }

  /** The dashboard's view. */
  fleet(nowMs: number): FleetView {
    const relays: FleetRelay[] = [];
    const all = [...this.registry.list()].sort((a, b) => (a.relayId < b.relayId ? -1 : 1));
    for (const r of all) {
      const origins: FleetRelay['origins'] = [];
      for (const [to, rec] of this.measurements.from(node.relay(r.relayId)) ?? []) {
        if (!to.startsWith('origin:')) continue;
        const view = this.measurements.view(nowMs, rec);
        if (view) origins.push({ origin: to.slice('origin:'.length), rttMs: view.rttMs, jitterMs: view.jitterMs, lossFraction: view.lossFraction, ageMs: view.ageMs });
      }
      relays.push({
        relayId: r.relayId,
        region: r.region,
        latitude: r.latitude,
        longitude: r.longitude,
        tunnelAddress: r.tunnelAddress,
        probeAddress: r.probeAddress,
        ...(r.webrtcUrl !== undefined ? { webrtcUrl: r.webrtcUrl } : {}),
        capacitySessions: r.capacitySessions,
        health: this.registry.health(nowMs, r),
        load: r.load,
        lastHeartbeatAgeMs: Math.max(0, nowMs - r.lastHeartbeatAtMs),
        origins,
        history: this.history.series(r.relayId),
      });
    }
    const ids = all.slice(0, FLEET_MATRIX_RELAYS_MAX).map((r) => r.relayId);
    const rttMs: (number | null)[][] = [];
    const lossFraction: (number | null)[][] = [];
    for (const from of ids) {
      const row: (number | null)[] = [];
      const lossRow: (number | null)[] = [];
      for (const to of ids) {
        const view = from === to ? undefined : this.measurements.get(nowMs, node.relay(from), node.relay(to));
        row.push(view ? Math.round(view.rttMs * 10) / 10 : null);
        lossRow.push(view ? view.lossFraction : null);
      }
      rttMs.push(row);
      lossFraction.push(lossRow);
    }
    return { nowMs, leaseMs: this.registry.leaseMs, relays, origins: this.originList(), mesh: { relayIds: ids, rttMs, lossFraction }, revocations: this.revocations.size };
  }

  /** Mean figures of a relay's paths to origins (else to other relays), for the graphs. */
  private relayFigures(nowMs: number, relayId: string): PathFigures | undefined {
    const paths = this.measurements.from(node.relay(relayId));
    if (!paths) return undefined;
    for (const prefix of ['origin:', 'relay:']) {
      let n = 0;
      let rtt = 0;
      let jitter = 0;
      let loss = 0;
      for (const [to, rec] of paths) {
        if (!to.startsWith(prefix) || !this.measurements.view(nowMs, rec)) continue;
        n++;
        rtt += rec.rttMs;
        jitter += rec.jitterMs;
        loss += rec.lossFraction;
      }
      if (n > 0) return { rttMs: rtt / n, jitterMs: jitter / n, lossFraction: loss / n };
    }
    return undefined;
  }

  private learnOrigin(name: string): void {
    if (!this.origins.has(name)) this.origins.set(name, { name, source: 'learned' });
  }

  private afterInput(): void {
    for (let e = this.registry.pollEvent(); e; e = this.registry.pollEvent()) {
      if (e.type === 'relayForgotten') {
        this.measurements.forget(node.relay(e.relayId));
        this.history.forget(e.relayId);
      }
      this.events.push(e);
    }
  }
}
