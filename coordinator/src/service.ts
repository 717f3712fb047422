/**
 * The coordinator service: the sans-IO {@link CoordinatorCore} bound to the world —
 * wall-clock time, a timer armed at `pollTimeout()`, the {@link Store} (write-through,
 * changes from other replicas applied as they arrive), ticket signing, Prometheus
 * metrics and pino logs — plus the HTTP API as a function from request to response
 * ({@link CoordinatorService.handle}), which http.ts serves on `node:http` and the
 * property tests call directly.
 *
 * Routes (JSON; errors are `{"error":{"code","field"?,"reason","message"}}` with a 4xx):
 * - `GET /` dashboard; `GET /health`; `GET /metrics` (Prometheus text);
 * - `GET /v1/keys` ticket public key; `GET /v1/origins`; `GET /v1/fleet` (dashboard data);
 * - relays (own key, or the fleet secret; relay-auth.ts): `POST /v1/relays/register`,
 *   `POST /v1/relays/heartbeat`, `POST /v1/relays/reports`,
 *   `GET /v1/revocations?sinceMs=&waitMs=` (long poll); `POST /v1/relays/enroll` (join token);
 * - operators (admin key): `POST /v1/admin/join-tokens`, `GET /v1/admin/relay-identities`,
 *   `DELETE /v1/admin/relay-identities/:relayId`;
 * - SDKs: `POST /v1/reports` (keyed by the caller's /24 or /48, budgeted per reporter and
 *   per prefix, aggregated robustly: core/client-reports.ts), `GET /v1/route?origin=…`;
 * - game backends (API key): `POST /v1/session`, `DELETE /v1/session/:id`.
 * coordinator/README.md documents every field.
 */
import { createHash, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import * as prom from 'prom-client';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed, SESSION_KEY_BYTES, SEAL_NONCE_BYTES } from '../../proto/src/ticket.js';
import { FLEET_EVENTS_MAX, relayInfoOf, type FleetAnswer, type FleetEvent } from '../../proto/src/api/contract.js';
import {
  BODY_BYTES_MAX,
  CLIENT_PREFIXES_MAX,
  HEARTBEAT_LEASE_FRACTION,
  REVOCATION_WAIT_MS_DEFAULT,
  REVOCATION_WAIT_MS_MAX,
  STORE_PRUNE_INTERVAL_MS,
} from './constants.js';
import { CLIENT_REPORTS_RULE, decodeURIComponentSafe, fail, invalid, parseBody, parseQuery, RELAY_REPORTS_RULE, SESSION_ID, sessionRequestRule, type ApiRequest, type ApiResponse } from './api.js';
import type { CoordinatorSettings } from './config.js';
import { CoordinatorCore } from './core/coordinator-core.js';
import { FleetSecretRotation, IDENTITY_SECRET_ID, type AcceptedFleetSecret, type FleetSecretsReport } from './core/fleet-secrets.js';
import { RelayAuth, type RelayPrincipal } from './relay-auth.js';
import { RequestMetrics } from './request-metrics.js';
import { routeAnswer } from './route-answer.js';
import { RouteCache } from './route-cache.js';
import { clientPrefix, reporterKey } from './core/geo.js';
import { clientReportSamples, ReportBudget } from './core/report-budget.js';
import { TicketPolicy, type SessionRequest } from './core/ticket-policy.js';
import type { RelayInfo, RelayLoad, RelayRecord } from './core/registry.js';
import type { MeasurementRecord } from './core/measurements.js';
import type { Revocation } from './core/revocations.js';
import { dashboardHtml } from './dashboard.js';
import type { Store, StoreChange } from './store/store.js';
import { check, checkControl, checkEndpoint, checkHeartbeat, type FieldRule } from './validate.js';

export type { ApiErrorCode, ApiRequest, ApiResponse } from './api.js';

/** Everything a {@link CoordinatorService} is given. */
export interface CoordinatorServiceInit {
  readonly settings: CoordinatorSettings;
  readonly store: Store;
  readonly logger: Logger;
  /** Wall clock, epoch ms. Default `Date.now`. */
  readonly wallNowMs?: () => number;
}

interface Waiter {
  wake(): void;
}

export type { FleetSecretRole, FleetSecretsReport } from './core/fleet-secrets.js';

/**
 * A short, stable fingerprint of a fleet secret (never the secret): what relay records
 * carry (and the store shares) so every replica can tell which secret a relay holds.
 */
export function fleetSecretId(secret: string): string {
  return createHash('sha256').update('slipstream fleet secret id\0', 'utf8').update(secret, 'utf8').digest('hex').slice(0, 16);
}

/** See the module comment. */
export class CoordinatorService {
  /** The sans-IO core. */
  readonly core: CoordinatorCore;
  /** Prometheus registry of this service (not the global one, so several services share a process). */
  readonly metrics = new prom.Registry();
  /** Raw Ed25519 public key that verifies this coordinator's tickets. */
  readonly ticketPublicKey: Uint8Array;
  private readonly settings: CoordinatorSettings;
  private readonly store: Store;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly signingKey: KeyObject;
  /** Which fleet secrets are accepted and which relays are on which (core/fleet-secrets.ts). */
  private readonly fleetSecrets: FleetSecretRotation;
  /** Digests of the accepted fleet secrets, in the order of {@link FleetSecretRotation.accepted}. */
  private readonly fleetSecretDigests: readonly Buffer[];
  private readonly apiDigests: Buffer[];
  /** Relay identities: signatures, enrollment, join tokens (relay-auth.ts). */
  private readonly relayAuth: RelayAuth;
  private readonly waiters = new Set<Waiter>();
  /** `POST /v1/reports` token buckets by reporter: IPv4 address, IPv6 /64 (core/report-budget.ts). */
  private readonly reportBudget: ReportBudget;
  /** `POST /v1/reports` token buckets by client prefix (/24, /48), all its reporters together. */
  private readonly prefixReportBudget: ReportBudget;
  /** Lifetime, limits and exit of the tickets `POST /v1/session` issues (core/ticket-policy.ts). */
  private readonly ticketPolicy: TicketPolicy;
  /** Field rules of a `POST /v1/session` body, with the bounds of {@link ticketPolicy}. */
  private readonly sessionRequestRule: FieldRule;
  private readonly unsubscribe: () => void;
  private timer: NodeJS.Timeout | undefined;
  private timerAtMs = Number.POSITIVE_INFINITY;
  private pruneTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly startedAtMs: number;
  private readonly requestMetrics: RequestMetrics;
  private readonly relayEvents: prom.Counter<'type'>;
  /** The last {@link FLEET_EVENTS_MAX} relay events, oldest first, for the dashboard's list and graph marks. */
  private readonly recentEvents: FleetEvent[] = [];
  private readonly sessionsIssued: prom.Counter;
  private readonly revocationsMade: prom.Counter;
  private readonly reportsTaken: prom.Counter<'kind'>;
  private readonly clientReportsRefused: prom.Counter<'budget'>;
  /** `GET /v1/route` answers by client prefix and query (route-cache.ts); emptied on every relay health event. */
  private readonly routeCache: RouteCache<ApiResponse>;

  constructor(init: CoordinatorServiceInit) {
    this.settings = init.settings;
    this.store = init.store;
    this.logger = init.logger;
    this.now = init.wallNowMs ?? Date.now;
    this.startedAtMs = this.now();
    const s = init.settings;
    this.core = new CoordinatorCore({
      leaseMs: s.leaseMs,
      retentionMs: s.relayRetentionMs,
      staleMs: s.measurementStaleMs,
      smoothingSamples: s.measurementSmoothingSamples,
      halfLifeMs: s.measurementHalfLifeMs,
      historyIntervalMs: s.historyIntervalMs,
      origins: s.origins,
      weights: s.ranking,
      clientReports: { reportersMin: s.clientReports.reportersMin, step: { rttMs: s.clientReports.stepRttMs, rttFraction: s.clientReports.stepRttFraction, lossFraction: s.clientReports.stepLossFraction } },
    });
    this.reportBudget = new ReportBudget({ burst: s.clientReports.reporterBurst, perSecond: s.clientReports.reporterPerSecond });
    this.prefixReportBudget = new ReportBudget({ burst: s.clientReports.prefixBurst, perSecond: s.clientReports.prefixPerSecond, sourcesMax: CLIENT_PREFIXES_MAX });
    this.signingKey = ticketSigningKeyFromSeed(s.keys.ticketSigningSeed);
    this.ticketPublicKey = rawPublicKey(this.signingKey);
    const fleetSecrets = [s.keys.fleetSecret, ...s.keys.fleetSecretsPrevious];
    this.fleetSecrets = new FleetSecretRotation(fleetSecrets.map(fleetSecretId));
    this.fleetSecretDigests = fleetSecrets.map(digest);
    this.ticketPolicy = new TicketPolicy(s.sessions);
    this.sessionRequestRule = sessionRequestRule(this.ticketPolicy);
    this.apiDigests = s.keys.apiKeys.map(digest);
    const authRefusals = new prom.Counter({ name: 'slipstream_coordinator_relay_auth_refusals_total', help: 'Relay requests and enrollments refused, by reason (relay-auth.ts): not_self is a relay speaking for another', labelNames: ['reason'], registers: [this.metrics] });
    this.relayAuth = new RelayAuth({ settings: s, store: init.store, logger: init.logger, now: this.now, ticketPublicKey: Buffer.from(this.ticketPublicKey).toString('base64'), onRefusal: (reason) => authRefusals.inc({ reason }) });
    if (s.keys.fleetSecretsPrevious.length > 0) {
      this.logger.info({ event: 'fleetSecretsPrevious', previous: s.keys.fleetSecretsPrevious.length }, `accepting ${s.keys.fleetSecretsPrevious.length} previous fleet secret(s) (keys.fleetSecretsPrevious) besides keys.fleetSecret; /health fleetSecrets.relaysOnPrevious lists the relays still using one`);
    }

    const registers = [this.metrics];
    this.requestMetrics = new RequestMetrics(this.metrics, 'slipstream_coordinator_');
    this.relayEvents = new prom.Counter({ name: 'slipstream_coordinator_relay_events_total', help: 'Relay health transitions', labelNames: ['type'], registers });
    this.sessionsIssued = new prom.Counter({ name: 'slipstream_coordinator_sessions_issued_total', help: 'Tickets issued', registers });
    this.revocationsMade = new prom.Counter({ name: 'slipstream_coordinator_revocations_total', help: 'Sessions revoked through this replica', registers });
    this.reportsTaken = new prom.Counter({ name: 'slipstream_coordinator_path_reports_total', help: 'Path reports taken, by reporter kind', labelNames: ['kind'], registers });
    this.clientReportsRefused = new prom.Counter({ name: 'slipstream_coordinator_client_reports_refused_total', help: 'POST /v1/reports requests refused (429) by the budget they exceeded: reporter (address or IPv6 /64) or prefix (/24, /48)', labelNames: ['budget'], registers });
    for (const budget of ['reporter', 'prefix']) this.clientReportsRefused.inc({ budget }, 0);
    const routeCache = (this.routeCache = new RouteCache<ApiResponse>(s.routeCacheMs));
    new prom.Counter({ name: 'slipstream_coordinator_route_cache_lookups_total', help: 'GET /v1/route answers by whether they came from the route cache (routeCacheMs)', labelNames: ['result'], registers, collect() {
      this.reset();
      this.inc({ result: 'hit' }, routeCache.hits);
      this.inc({ result: 'miss' }, routeCache.misses);
    } });
    const core = this.core;
    const wallNow = this.now;
    const store = this.store;
    new prom.Gauge({
      name: 'slipstream_coordinator_relays',
      help: 'Relays by health',
      labelNames: ['health'],
      registers,
      collect() {
        const counts = { healthy: 0, draining: 0, unhealthy: 0 };
        const t = wallNow();
        for (const r of core.registry.list()) counts[core.registry.health(t, r)]++;
        for (const [health, n] of Object.entries(counts)) this.set({ health }, n);
      },
    });
    const fleetSecretsReport = (): FleetSecretsReport => this.fleetSecretsReport();
    new prom.Gauge({
      name: 'slipstream_coordinator_relays_by_fleet_secret',
      help: 'Relays held (any health) by the fleet secret they last authenticated with: current (keys.fleetSecret), previous (keys.fleetSecretsPrevious), unknown',
      labelNames: ['secret'],
      registers,
      collect() {
        for (const [secret, n] of Object.entries(fleetSecretsReport().relays)) this.set({ secret }, n);
      },
    });
    new prom.Gauge({ name: 'slipstream_coordinator_measurements', help: 'Smoothed path figures held', registers, collect() { this.set(core.measurements.size); } });
    new prom.Gauge({ name: 'slipstream_coordinator_client_report_entries', help: 'Per-reporter client figures held for the robust aggregate (bounded)', registers, collect() { this.set(core.clientReports.size); } });
    new prom.Gauge({ name: 'slipstream_coordinator_active_revocations', help: 'Revocations held', registers, collect() { this.set(core.revocations.size); } });
    new prom.Gauge({ name: 'slipstream_coordinator_store_up', help: '1 when the store backend is reachable', registers, collect() { this.set(store.status().ok ? 1 : 0); } });
    new prom.Gauge({ name: 'slipstream_coordinator_store_pending_writes', help: 'Writes queued for an unreachable store', registers, collect() { this.set(store.status().pendingWrites); } });
    prom.collectDefaultMetrics({ register: this.metrics, prefix: 'slipstream_coordinator_' });

    this.unsubscribe = this.store.subscribe((change) => this.onStoreChange(change));
    this.pruneTimer = setInterval(() => this.prune(), STORE_PRUNE_INTERVAL_MS);
    this.pruneTimer.unref();
    this.drive();
  }

  /** Loads what the store holds (call once after construction; a failure is logged and the service starts empty). */
  async loadFromStore(): Promise<void> {
    try {
      this.logger.info({ event: 'storeLoaded', ...(await this.loadAll()) }, 'loaded shared state from the store');
    } catch (error) {
      this.logger.warn({ event: 'storeLoadFailed', reason: (error as Error).message }, 'store unreachable at start: serving from local state until it returns');
    }
  }

  /** Heartbeat interval relays are asked for, ms. */
  get heartbeatIntervalMs(): number {
    return Math.max(100, Math.floor(this.settings.leaseMs * HEARTBEAT_LEASE_FRACTION));
  }

  /** Stops timers, wakes long polls, unsubscribes; idempotent. Does not close the store (its owner does). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.pruneTimer);
    this.unsubscribe();
    for (const waiter of this.waiters) waiter.wake();
    this.waiters.clear();
  }

  /** Answers one request. Never throws: an unexpected error is a logged 500. */
  async handle(req: ApiRequest): Promise<ApiResponse> {
    const startedMs = performance.now();
    let route = 'unmatched';
    let response: ApiResponse;
    try {
      const matched = this.match(req);
      route = matched.route;
      response = await matched.run();
    } catch (error) {
      this.logger.error({ event: 'handlerError', route, err: error }, 'unexpected error answering a request');
      response = { status: 500, json: { error: { code: 'internal', reason: 'unexpected error; see the coordinator log', message: 'unexpected error; see the coordinator log' } } };
    }
    this.requestMetrics.record(route, response.status, route !== 'GET /v1/revocations' ? (performance.now() - startedMs) / 1000 : undefined);
    return response;
  }

  /** Route table: path → method → handler. Built once; `/v1/session/:id` is matched by prefix. */
  private readonly routes: Readonly<Record<string, Readonly<Record<string, (req: ApiRequest) => Promise<ApiResponse> | ApiResponse>>>> = {
    '/': { GET: () => ({ status: 200, text: dashboardHtml(), contentType: 'text/html; charset=utf-8' }) },
    '/health': { GET: () => this.health() },
    '/metrics': { GET: async () => ({ status: 200, text: await this.metrics.metrics(), contentType: this.metrics.contentType }) },
    '/v1/keys': { GET: () => ({ status: 200, json: { ticketPublicKey: Buffer.from(this.ticketPublicKey).toString('base64'), algorithm: 'Ed25519' } }) },
    '/v1/origins': { GET: () => ({ status: 200, json: { origins: this.core.originList() } }) },
    '/v1/fleet': { GET: () => this.fleetView() },
    '/v1/relays/enroll': { POST: (req) => this.relayAuth.enroll(req) },
    '/v1/admin/join-tokens': { POST: (req) => this.relayAuth.mintJoinToken(req) },
    '/v1/admin/relay-identities': { GET: (req) => this.relayAuth.listIdentities(req) },
    '/v1/admin/relay-identities/:relayId': { DELETE: (req) => this.revokeIdentity(req) },
    '/v1/relays/register': { POST: (req) => this.register(req) },
    '/v1/relays/heartbeat': { POST: (req) => this.heartbeat(req) },
    '/v1/relays/reports': { POST: (req) => this.relayReports(req) },
    '/v1/revocations': { GET: (req) => this.revocationFeed(req) },
    '/v1/reports': { POST: (req) => this.clientReports(req) },
    '/v1/route': { GET: (req) => this.route(req) },
    '/v1/session': { POST: (req) => this.issueSession(req) },
    '/v1/session/:id': { DELETE: (req) => this.revokeSession(req, decodeURIComponentSafe(req.path.slice('/v1/session/'.length))) },
  };

  private match(req: ApiRequest): { route: string; run: () => Promise<ApiResponse> | ApiResponse } {
    const { method, path } = req;
    const template =
      Object.prototype.hasOwnProperty.call(this.routes, path) && !path.includes(':')
        ? path
        : path.startsWith('/v1/session/')
          ? '/v1/session/:id'
          : path.startsWith('/v1/admin/relay-identities/')
            ? '/v1/admin/relay-identities/:relayId'
            : undefined;
    const methods = template !== undefined ? this.routes[template] : undefined;
    if (template === undefined || !methods) return { route: 'unmatched', run: () => fail(404, 'not_found', `no route ${path}; see coordinator/README.md for the API`) };
    const handler = Object.prototype.hasOwnProperty.call(methods, method) ? methods[method] : undefined;
    if (!handler) return { route: template, run: () => fail(405, 'method_not_allowed', `${method} is not accepted on ${template}; use ${Object.keys(methods).join(', ')}`) };
    return { route: `${method} ${template}`, run: () => handler(req) };
  }

  // ---- auth and bodies --------------------------------------------------------------

  /** The bearer token's digest, or the 401 answer. */
  private bearer(req: ApiRequest, what: string): { ok: true; digest: Buffer } | { ok: false; response: ApiResponse } {
    const header = req.authorization;
    if (header === undefined || header === '') return { ok: false, response: fail(401, 'unauthorized', `missing; send 'Authorization: Bearer <${what}>'`, 'authorization') };
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) return { ok: false, response: fail(401, 'unauthorized', `not a bearer token; send 'Authorization: Bearer <${what}>'`, 'authorization') };
    return { ok: true, digest: digest(m[1]!) };
  }

  /** API-key routes: undefined when allowed, else the 401/403 answer. */
  private authorizeApi(req: ApiRequest): ApiResponse | undefined {
    const what = 'an API key';
    const token = this.bearer(req, what);
    if (!token.ok) return token.response;
    // Every key is compared (no early exit), so the time taken does not say which matched.
    let ok = false;
    for (const d of this.apiDigests) ok = timingSafeEqual(token.digest, d) || ok;
    return ok ? undefined : fail(403, 'forbidden', `does not match ${what} configured on this coordinator`, 'authorization');
  }

  /**
   * Relay routes: the fleet secret the request carries — keys.fleetSecret or one of
   * keys.fleetSecretsPrevious — or the 401/403 answer (a 403 is logged, at most once a
   * minute per source address and claimed relay id).
   */
  private authorizeFleet(req: ApiRequest): { ok: true; secret: AcceptedFleetSecret } | { ok: false; response: ApiResponse } {
    const token = this.bearer(req, 'the fleet secret');
    if (!token.ok) return token;
    // Every secret is compared (no early exit), so the time taken does not say which matched.
    let matched: AcceptedFleetSecret | undefined;
    for (let i = 0; i < this.fleetSecretDigests.length; i++) if (timingSafeEqual(token.digest, this.fleetSecretDigests[i]!) && matched === undefined) matched = this.fleetSecrets.accepted[i];
    if (matched) return { ok: true, secret: matched };
    const previous = this.fleetSecrets.previousCount;
    const accepted = previous === 0 ? 'the fleet secret (keys.fleetSecret)' : `the fleet secret (keys.fleetSecret) or the ${previous} previous one(s) (keys.fleetSecretsPrevious)`;
    this.logFleetRefusal(req);
    return {
      ok: false,
      response: fail(403, 'forbidden', `does not match ${accepted} configured on this coordinator; a relay holding a retired or wrong secret must be given the current one (relay tunnel.coordinatorFleetSecretFile) and reloaded (SIGHUP)`, 'authorization'),
    };
  }

  /**
   * Relay routes: the relay's own signature, or (see relay-auth.ts) the fleet secret;
   * `secret` is the fleet secret that matched, when that is how the request came.
   */
  private authorizeRelay(req: ApiRequest): { ok: true; principal: RelayPrincipal; secret?: AcceptedFleetSecret } | { ok: false; response: ApiResponse } {
    let secret: AcceptedFleetSecret | undefined;
    const auth = this.relayAuth.authenticate(req, () => {
      const fleet = this.authorizeFleet(req);
      if (fleet.ok) secret = fleet.secret;
      return fleet.ok ? { ok: true } : fleet;
    });
    if (!auth.ok) return auth;
    return { ok: true, principal: auth.principal, ...(secret !== undefined ? { secret } : {}) };
  }

  private logFleetRefusal(req: ApiRequest): void {
    // The relay id the request claims (unauthenticated: for the operator's eyes only).
    let claimed: string | undefined;
    if (req.body.length > 0 && req.body.length <= BODY_BYTES_MAX) {
      try {
        const value = JSON.parse(Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength).toString('utf8')) as { relayId?: unknown } | null;
        if (typeof value?.relayId === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(value.relayId)) claimed = value.relayId;
      } catch {
        // not JSON: no id to show
      }
    }
    if (!this.fleetSecrets.shouldLogRefusal(this.now(), `${req.remoteAddress}|${claimed ?? ''}`)) return;
    this.logger.warn(
      { event: 'fleetSecretRefused', remoteAddress: req.remoteAddress, path: req.path, ...(claimed !== undefined ? { claimedRelayId: claimed } : {}) },
      `refused a request with a fleet secret this coordinator does not accept${claimed !== undefined ? ` (relay '${claimed}')` : ''}; logged once a minute per address and relay id`,
    );
  }

  /** Logs a relay moving onto a previous secret, or off one onto the current secret. */
  private noteFleetSecret(relayId: string, before: string | undefined, secret: AcceptedFleetSecret): void {
    const move = this.fleetSecrets.move(before, secret);
    if (move?.kind === 'onPrevious') {
      this.logger.warn({ event: 'relayOnPreviousFleetSecret', relayId, previousIndex: move.previousIndex }, `relay ${relayId} authenticates with a previous fleet secret (keys.fleetSecretsPrevious[${move.previousIndex - 1}]); give it keys.fleetSecret before removing that one`);
    } else if (move?.kind === 'onCurrent') {
      this.logger.info({ event: 'relayOnCurrentFleetSecret', relayId }, `relay ${relayId} now authenticates with the current fleet secret`);
    }
  }

  /** `/health`'s `fleetSecrets` and the `…_relays_by_fleet_secret` gauge. */
  private fleetSecretsReport(): FleetSecretsReport {
    return this.fleetSecrets.report(this.now(), this.core.registry);
  }

  /** `GET /v1/fleet`: the core's view, each relay with the secret it authenticates with and whether its figures outlived the lease, the store status, recent events. */
  private fleetView(): ApiResponse {
    const view = this.core.fleet(this.now());
    const relays = view.relays.map((r) => ({
      ...r,
      fleetSecret: this.fleetSecrets.role(this.core.registry.get(r.relayId)?.fleetSecretId).role,
      stale: r.lastHeartbeatAgeMs > view.leaseMs,
      origins: r.origins.map((o) => ({ ...o, stale: o.ageMs > view.leaseMs })),
    }));
    const answer: FleetAnswer = { ...view, relays, store: this.store.status(), events: [...this.recentEvents] };
    return { status: 200, json: answer };
  }

  /** `DELETE /v1/admin/relay-identities/:relayId` (relay-auth.ts), listed as an event when it revokes. */
  private revokeIdentity(req: ApiRequest): ApiResponse {
    const relayId = decodeURIComponentSafe(req.path.slice('/v1/admin/relay-identities/'.length));
    const answer = this.relayAuth.revokeIdentity(req, relayId);
    const revokedAtMs = (answer.json as { revokedAtMs?: number } | undefined)?.revokedAtMs;
    if (answer.status === 200 && revokedAtMs !== undefined && !this.recentEvents.some((e) => e.type === 'relayIdentityRevoked' && e.relayId === relayId && e.atMs === revokedAtMs)) {
      this.noteEvent({ atMs: revokedAtMs, type: 'relayIdentityRevoked', relayId });
    }
    return answer;
  }

  private noteEvent(event: FleetEvent): void {
    this.recentEvents.push(event);
    if (this.recentEvents.length > FLEET_EVENTS_MAX) this.recentEvents.shift();
  }

  // ---- relays -------------------------------------------------------------------------

  private register(req: ApiRequest): ApiResponse {
    const auth = this.authorizeRelay(req);
    if (!auth.ok) return auth.response;
    const body = parseBody(req);
    if (!body.ok) return body.response;
    const bad = checkControl(body.value, 'relayRegister') ?? checkEndpoint(body.value.tunnelAddress, 'tunnelAddress') ?? checkEndpoint(body.value.probeAddress, 'probeAddress');
    if (bad) return invalid(bad);
    const info = body.value as unknown as RelayInfo;
    const notSelf = this.relayAuth.speaksFor(auth.principal, info.relayId);
    if (notSelf) return notSelf;
    if (this.settings.allowedRelayIds.length > 0 && !this.settings.allowedRelayIds.includes(info.relayId)) {
      this.logger.warn({ event: 'relayRefused', relayId: info.relayId }, 'refused a relay that is not in allowedRelayIds');
      return fail(403, 'relay_not_allowed', `relay '${info.relayId}' is not in this coordinator's allowedRelayIds`, 'relayId');
    }
    const before = this.core.registry.get(info.relayId);
    const isNew = before === undefined;
    const record = this.core.register(this.now(), relayInfoOf(info), auth.secret?.id ?? IDENTITY_SECRET_ID);
    if (auth.secret) this.noteFleetSecret(record.relayId, before?.fleetSecretId, auth.secret);
    if (isNew) this.logger.info({ event: 'relayRegistered', relayId: record.relayId, region: record.region, tunnelAddress: record.tunnelAddress }, 'relay registered');
    this.writeRelay(record);
    this.afterInput();
    return {
      status: 200,
      json: {
        relayId: record.relayId,
        leaseMs: this.settings.leaseMs,
        heartbeatIntervalMs: this.heartbeatIntervalMs,
        ticketPublicKey: Buffer.from(this.ticketPublicKey).toString('base64'),
        relays: [...this.core.registry.list()].filter((r) => r.relayId !== record.relayId && this.core.registry.health(this.now(), r) !== 'unhealthy').map((r) => ({ relayId: r.relayId, probeAddress: r.probeAddress, region: r.region })),
        heartbeatStatus: true,
      },
    };
  }

  private heartbeat(req: ApiRequest): ApiResponse {
    const auth = this.authorizeRelay(req);
    if (!auth.ok) return auth.response;
    const body = parseBody(req);
    if (!body.ok) return body.response;
    const bad = checkHeartbeat(body.value);
    if (bad) return invalid(bad);
    const hb = body.value as unknown as RelayLoad & { relayId: string };
    const notSelf = this.relayAuth.speaksFor(auth.principal, hb.relayId);
    if (notSelf) return notSelf;
    const before = this.core.registry.get(hb.relayId)?.fleetSecretId;
    const record = this.core.heartbeat(this.now(), hb.relayId, { sessions: hb.sessions, packetsPerSecond: hb.packetsPerSecond, cpuFraction: hb.cpuFraction, draining: hb.draining, ...(hb.status ? { status: hb.status } : {}) }, auth.secret?.id ?? IDENTITY_SECRET_ID);
    if (record && auth.secret) this.noteFleetSecret(record.relayId, before, auth.secret);
    if (!record) return fail(404, 'unknown_relay', `relay '${hb.relayId}' is not registered here; POST /v1/relays/register first`, 'relayId');
    this.writeRelay(record);
    this.afterInput();
    return { status: 200, json: { leaseMs: this.settings.leaseMs, heartbeatIntervalMs: this.heartbeatIntervalMs } };
  }

  private relayReports(req: ApiRequest): ApiResponse {
    const auth = this.authorizeRelay(req);
    if (!auth.ok) return auth.response;
    const body = parseBody(req);
    if (!body.ok) return body.response;
    const bad = check(body.value, RELAY_REPORTS_RULE, '');
    if (bad) return invalid(bad);
    const { relayId, reports } = body.value as { relayId: string; reports: { targetRelayId?: string; origin?: string; rttMs: number; jitterMs: number; lossFraction: number; samples: number }[] };
    const notSelf = this.relayAuth.speaksFor(auth.principal, relayId);
    if (notSelf) return notSelf;
    for (let i = 0; i < reports.length; i++) {
      const r = reports[i]!;
      if ((r.targetRelayId === undefined) === (r.origin === undefined)) return fail(400, 'invalid_field', 'give exactly one of targetRelayId and origin', `reports[${i}]`);
    }
    if (!this.core.registry.get(relayId)) return fail(404, 'unknown_relay', `relay '${relayId}' is not registered here; POST /v1/relays/register first`, 'relayId');
    const t = this.now();
    let taken = 0;
    const skipped: { index: number; reason: string }[] = [];
    for (let i = 0; i < reports.length; i++) {
      const r = reports[i]!;
      const result = this.core.relayReport(t, relayId, r.targetRelayId !== undefined ? { relayId: r.targetRelayId } : { origin: r.origin! }, r);
      if (result.ok) {
        taken++;
        this.writeMeasurement(result.record);
      } else {
        skipped.push({ index: i, reason: result.reason === 'unknownRelay' ? `target relay '${r.targetRelayId}' is not registered` : 'samples is 0' });
      }
    }
    this.reportsTaken.inc({ kind: 'relay' }, taken);
    return { status: 200, json: { taken, skipped } };
  }

  private async revocationFeed(req: ApiRequest): Promise<ApiResponse> {
    const auth = this.authorizeRelay(req);
    if (!auth.ok) return auth.response;
    const q = parseQuery<{ sinceMs?: number; waitMs?: number; limit?: number }>(req, { sinceMs: { type: 'number', min: 0, max: 1e15, optional: true }, waitMs: { type: 'number', min: 0, max: REVOCATION_WAIT_MS_MAX, integer: true, optional: true }, limit: { type: 'number', min: 1, max: 100_000, integer: true, optional: true } });
    if (!q.ok) return q.response;
    const sinceMs = q.values.sinceMs ?? 0;
    const waitMs = q.values.waitMs ?? REVOCATION_WAIT_MS_DEFAULT;
    const limit = q.values.limit ?? 10_000;
    let entries = this.core.revocations.since(this.now(), sinceMs, limit);
    if (entries.length === 0 && waitMs > 0 && !this.closed) {
      await this.waitForRevocation(waitMs, req.signal);
      entries = this.core.revocations.since(this.now(), sinceMs, limit);
    }
    const cursorMs = entries.length > 0 ? entries[entries.length - 1]!.receivedAtMs : Math.max(sinceMs, this.now() - 1);
    return { status: 200, json: { cursorMs, revocations: entries.map((e) => ({ sessionId: e.sessionId, revokedAtMs: e.revokedAtMs, expiresAtMs: e.expiresAtMs })) } };
  }

  private waitForRevocation(waitMs: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const waiter: Waiter = {
        wake: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', waiter.wake);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, waitMs);
      signal?.addEventListener('abort', waiter.wake);
      this.waiters.add(waiter);
    });
  }

  // ---- SDK ----------------------------------------------------------------------------

  /**
   * The address a client's reports and routes are filed under. With `trustForwardedFor`
   * it is the right-most `X-Forwarded-For` entry that is not one of `trustedProxies`:
   * each proxy appends the address it saw, so everything left of our own proxies' entries
   * is whatever the client chose to send (when every entry is ours, the left-most one).
   */
  private clientAddress(req: ApiRequest): string {
    if (this.settings.trustForwardedFor && req.forwardedFor) {
      const entries = req.forwardedFor.split(',').map((e) => e.trim()).filter((e) => e !== '');
      const trusted = this.settings.trustedProxies;
      for (let i = entries.length - 1; i >= 0; i--) {
        if (i === 0 || !trusted.includes(entries[i]!.toLowerCase())) return entries[i]!;
      }
    }
    return req.remoteAddress;
  }

  private clientReports(req: ApiRequest): ApiResponse {
    const body = parseBody(req);
    if (!body.ok) return body.response;
    const bad = check(body.value, CLIENT_REPORTS_RULE, '');
    if (bad) return invalid(bad);
    const address = this.clientAddress(req);
    const prefix = clientPrefix(address);
    if (prefix === undefined) return fail(400, 'invalid_field', 'the client address is not IPv4 or IPv6', 'clientAddress');
    const reporter = reporterKey(address) ?? address;
    const t = this.now();
    // The reporter's own budget first, so that one reporter over it spends none of its prefix's.
    if (!this.reportBudget.take(t, reporter)) {
      this.clientReportsRefused.inc({ budget: 'reporter' });
      return fail(429, 'rate_limited', `more than ${this.reportBudget.burst} reports at once or ${this.reportBudget.perSecond}/s sustained from this reporter (an IPv4 address or IPv6 /64); report less often`, 'clientAddress');
    }
    if (!this.prefixReportBudget.take(t, prefix)) {
      this.clientReportsRefused.inc({ budget: 'prefix' });
      return fail(429, 'rate_limited', `more than ${this.prefixReportBudget.burst} reports at once or ${this.prefixReportBudget.perSecond}/s sustained from the prefix ${prefix} (all its reporters together); report less often`, 'clientPrefix');
    }
    let taken = 0;
    const skipped: { index: number; reason: string }[] = [];
    const reports = (body.value as { reports: { relayId: string; rttMs: number; jitterMs: number; lossFraction: number; samples: number }[] }).reports;
    // One figure per relay per request: a request repeating a relay would otherwise take several steps at once.
    const seen = new Set<string>();
    for (let i = 0; i < reports.length; i++) {
      const r = reports[i]!;
      if (seen.has(r.relayId)) {
        skipped.push({ index: i, reason: `relay '${r.relayId}' is already reported earlier in this request` });
        continue;
      }
      seen.add(r.relayId);
      const result = this.core.clientReport(t, prefix, r.relayId, { rttMs: r.rttMs, jitterMs: r.jitterMs, lossFraction: r.lossFraction, samples: clientReportSamples(r.samples) }, reporter);
      if (result.ok) {
        taken++;
        if (result.record) this.writeMeasurement(result.record);
      } else skipped.push({ index: i, reason: result.reason === 'unknownRelay' ? `relay '${r.relayId}' is not registered` : 'samples is 0' });
    }
    if (taken > 0) this.routeCache.clearPrefix(prefix); // its figures (or the reporter's own) may have moved
    this.reportsTaken.inc({ kind: 'client' }, taken);
    return { status: 200, json: { clientPrefix: prefix, taken, skipped } };
  }

  private route(req: ApiRequest): ApiResponse {
    return routeAnswer(req, { core: this.core, nowMs: this.now(), clientAddress: this.clientAddress(req), leaseMs: this.settings.leaseMs, cache: this.routeCache });
  }

  // ---- game backend -------------------------------------------------------------------

  private issueSession(req: ApiRequest): ApiResponse {
    const denied = this.authorizeApi(req);
    if (denied) return denied;
    const body = parseBody(req);
    if (!body.ok) return body.response;
    const bad = check(body.value, this.sessionRequestRule, '');
    if (bad) return invalid(bad);
    const request = body.value as unknown as SessionRequest;
    const { origin, exitRelay } = request;
    const decided = this.ticketPolicy.grant(this.now(), request, this.core);
    if (!decided.ok && decided.refusal === 'unknownOrigin') return fail(404, 'unknown_origin', `origin '${origin}' is not configured here and no relay reports probing it; see GET /v1/origins`, 'origin');
    if (!decided.ok) return fail(409, 'no_exit_relay', exitRelay === 'auto' ? `no healthy relay can be the exit for origin '${origin}'` : `relay '${exitRelay}' is not registered and healthy; give a healthy relay id or 'auto'`, 'exitRelay');
    const { issuedAtMs, expiresAtMs, limits, exit } = decided.grant;
    const sessionId = randomBytes(8).toString('hex');
    const sessionKey = new Uint8Array(randomBytes(SESSION_KEY_BYTES));
    const player = request.playerId !== undefined ? { playerId: request.playerId } : {};
    const ticket = issueTicket({ sessionId, origin, issuedAtMs, expiresAtMs, limits, sessionKey, sealNonce: new Uint8Array(randomBytes(SEAL_NONCE_BYTES)), ...(exit !== undefined ? { exit } : {}), ...player }, this.signingKey, this.settings.keys.sealKey);
    this.core.noteSession(sessionId, expiresAtMs);
    this.sessionsIssued.inc();
    return {
      status: 201,
      json: {
        sessionId,
        origin,
        issuedAtMs,
        expiresAtMs,
        limits,
        ...(exit !== undefined ? { exitRelay: exit.relayId } : {}),
        ...player,
        ticket: Buffer.from(ticket).toString('base64'),
        sessionKey: Buffer.from(sessionKey).toString('base64'),
        ticketPublicKey: Buffer.from(this.ticketPublicKey).toString('base64'),
      },
    };
  }

  private revokeSession(req: ApiRequest, sessionId: string): ApiResponse {
    const denied = this.authorizeApi(req);
    if (denied) return denied;
    if (!SESSION_ID.test(sessionId)) return fail(400, 'invalid_field', `'${sessionId.slice(0, 40)}' is not a session id; expected 16 lowercase hex digits`, 'sessionId');
    const t = this.now();
    const revocation: Revocation = { sessionId, revokedAtMs: t, expiresAtMs: this.ticketPolicy.revocationExpiresAtMs(t, this.core.sessionExpiresAtMs(sessionId)) };
    const entry = this.core.revoke(t, revocation);
    if (entry) {
      this.revocationsMade.inc();
      this.logger.info({ event: 'sessionRevoked', sessionId }, 'session revoked');
      this.wakeWaiters();
      void this.store.putRevocation(revocation).catch((error: Error) => this.logger.warn({ event: 'storeWriteFailed', reason: error.message }, 'store write failed'));
    }
    return { status: 200, json: { sessionId, revoked: true, alreadyRevoked: entry === undefined, expiresAtMs: revocation.expiresAtMs } };
  }

  // ---- health, store, timers ----------------------------------------------------------

  private health(): ApiResponse {
    const t = this.now();
    const counts = { healthy: 0, draining: 0, unhealthy: 0 };
    for (const r of this.core.registry.list()) counts[this.core.registry.health(t, r)]++;
    const store = this.store.status();
    return {
      status: 200,
      json: {
        status: store.ok ? 'ok' : 'degraded',
        ...(store.ok ? {} : { reason: `store unreachable: serving from local state (${store.detail})` }),
        store,
        relays: counts,
        fleetSecrets: this.fleetSecretsReport(),
        measurements: this.core.measurements.size,
        revocations: this.core.revocations.size,
        uptimeS: Math.round((t - this.startedAtMs) / 1000),
      },
    };
  }

  private writeRelay(record: RelayRecord): void {
    void this.store.putRelay(record, record.lastHeartbeatAtMs + this.settings.relayRetentionMs).catch((error: Error) => this.logger.warn({ event: 'storeWriteFailed', reason: error.message }, 'store write failed'));
  }

  private writeMeasurement(record: MeasurementRecord): void {
    void this.store.putMeasurement(record, record.updatedAtMs + this.settings.measurementStaleMs).catch((error: Error) => this.logger.warn({ event: 'storeWriteFailed', reason: error.message }, 'store write failed'));
  }

  private onStoreChange(change: StoreChange): void {
    if (this.closed) return;
    const t = this.now();
    switch (change.kind) {
      case 'relay':
        this.core.applyRelay(t, change.record);
        break;
      case 'measurement':
        this.core.applyMeasurement(change.record);
        break;
      case 'revocation':
        if (this.core.applyRevocation(t, change.revocation)) this.wakeWaiters();
        break;
      case 'identity':
        this.relayAuth.apply(change.identity);
        break;
      case 'resync':
        void this.resync();
        break;
    }
    this.afterInput();
  }

  /** After an outage: push what only this replica may hold (revocations), then reload everything. */
  private async resync(): Promise<void> {
    for (const r of this.core.revocations.active()) void this.store.putRevocation({ sessionId: r.sessionId, revokedAtMs: r.revokedAtMs, expiresAtMs: r.expiresAtMs }).catch(() => undefined);
    try {
      this.logger.info({ event: 'storeResynced', ...(await this.loadAll()) }, 'caught up with the store');
    } catch (error) {
      this.logger.warn({ event: 'storeResyncFailed', reason: (error as Error).message }, 'could not reload from the store; will retry when it reconnects');
    }
  }

  /** Reads everything the store holds and applies it; resolves to how many of each (for the log line), rejects when the store fails. */
  private async loadAll(): Promise<{ relays: number; measurements: number; revocations: number; identities: number }> {
    const listedAtMs = this.now();
    const [relays, measurements, revocations, identities] = await Promise.all([this.store.listRelays(listedAtMs), this.store.listMeasurements(listedAtMs), this.store.listRevocations(listedAtMs), this.store.listIdentities()]);
    const t = this.now();
    for (const identity of identities) this.relayAuth.apply(identity);
    for (const r of relays) this.core.applyRelay(t, r);
    for (const m of measurements) this.core.applyMeasurement(m);
    let woke = false;
    for (const v of revocations) if (this.core.applyRevocation(t, v)) woke = true;
    if (woke) this.wakeWaiters();
    this.afterInput();
    return { relays: relays.length, measurements: measurements.length, revocations: revocations.length, identities: identities.length };
  }

  private wakeWaiters(): void {
    for (const waiter of [...this.waiters]) waiter.wake();
  }

  private prune(): void {
    void this.store.prune(this.now()).catch(() => undefined);
  }

  /** Drains core events into logs and metrics, then re-arms the timer at the core's next deadline (str0m rule). */
  private afterInput(): void {
    for (let e = this.core.pollEvent(); e; e = this.core.pollEvent()) {
      this.routeCache.clear(); // the fleet changed: no answer may still offer a relay that drained or died
      this.relayEvents.inc({ type: e.type });
      this.noteEvent({ atMs: e.atMs, type: e.type, relayId: e.relayId });
      const level = e.type === 'relayDown' ? 'warn' : 'info';
      this.logger[level]({ event: e.type, relayId: e.relayId }, `relay ${e.relayId}: ${e.type}`);
    }
    const next = this.core.pollTimeout();
    if (next === undefined || next >= this.timerAtMs || this.closed) return;
    clearTimeout(this.timer);
    this.timerAtMs = next;
    this.timer = setTimeout(() => this.drive(), Math.max(0, next - this.now()));
    this.timer.unref();
  }

  private drive(): void {
    if (this.closed) return;
    this.timerAtMs = Number.POSITIVE_INFINITY;
    this.core.handleTimeout(this.now());
    this.afterInput();
  }
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}
