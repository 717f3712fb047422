/**
 * The coordinator's HTTP API contract, declared once: paths, request and answer
 * types, and the limits both sides rely on. The coordinator (`coordinator/src/http.ts`,
 * `service.ts`) serves it; relays, the SDK and game backends call it through
 * `kit/coordinator-client.ts`; the simulator carries the same shapes over its virtual
 * network. Validation rules for request bodies live beside it in `./validate.ts`.
 *
 * Types only and constants: no IO. Every time is epoch ms unless its name says otherwise.
 */

/** The API's paths, by what they do. `:id` is a session id (16 lowercase hex digits). */
export const API_PATHS = {
  /**
   * `POST`, join token (no other credential): a relay enrolls its own Ed25519 key.
   * Body {@link EnrollRequest}, answer {@link EnrollAnswer}. See `./relay-identity.ts`.
   */
  relayEnroll: '/v1/relays/enroll',
  /** `POST`, admin key: mints a one-time join token for one relay id. Body {@link JoinTokenRequest}, answer {@link JoinTokenAnswer}. */
  joinTokens: '/v1/admin/join-tokens',
  /** `GET`, admin key: enrolled relay identities ({@link RelayIdentityView}[]); `DELETE …/:relayId` revokes one ({@link RevokeIdentityAnswer}). */
  relayIdentities: '/v1/admin/relay-identities',
  /**
   * Relay routes below take the relay's own signature (`Authorization: Slip-Relay …`,
   * `./relay-identity.ts`) or, unless the coordinator sets `fleet.requireRelayIdentity`,
   * the fleet secret (`Authorization: Bearer …`) for a relay id that has no identity.
   */
  /** `POST`, relay: a relay joins (or re-joins) the registry. Body {@link RelayInfo}, answer {@link RegisterAnswer}. */
  relayRegister: '/v1/relays/register',
  /** `POST`, fleet secret: a relay is alive. Body `{ relayId } & RelayLoad`; 404 `unknown_relay` means register again. */
  relayHeartbeat: '/v1/relays/heartbeat',
  /** `POST`, fleet secret: a relay's probe results. Body `{ relayId, reports: RelayPathReport[] }`, answer {@link ReportAnswer}. */
  relayReports: '/v1/relays/reports',
  /** `POST`, anonymous: an SDK's probe results. Body `{ reports: ClientPathReport[] }`, answer {@link ReportAnswer}. */
  clientReports: '/v1/reports',
  /** `GET`, anonymous: ranked relays for an origin. Query from {@link RouteQuestion}, answer {@link RouteAnswer}. */
  route: '/v1/route',
  /** `POST`, API key: a ticket. Body {@link SessionRequest}, answer {@link IssuedSession}. `DELETE /v1/session/:id` revokes ({@link RevokeAnswer}). */
  session: '/v1/session',
  /** `GET`, fleet secret: the revocation feed's long poll (`?sinceMs=&waitMs=`), answer {@link RevocationPage}. */
  revocations: '/v1/revocations',
  /** `GET`, anonymous: `{ ticketPublicKey }`, the raw Ed25519 key (base64) that verifies tickets. */
  keys: '/v1/keys',
  /** `GET`, anonymous: what the dashboard shows ({@link FleetAnswer}). */
  fleet: '/v1/fleet',
  /** `GET`, anonymous: `{ origins: OriginInfo[] }`. */
  origins: '/v1/origins',
  /** `GET`, anonymous: {@link HealthAnswer}. */
  health: '/health',
} as const;

/** Longest a relay's long-poll on `GET /v1/revocations` waits, ms. */
export const REVOCATION_WAIT_MS_MAX = 30_000;
/** Long-poll wait when the relay does not say, ms. */
export const REVOCATION_WAIT_MS_DEFAULT = 20_000;
/** Followers rewind their cursor by this much, so replicas with slightly different clocks or late replication miss nothing, ms. */
export const REVOCATION_CURSOR_OVERLAP_MS = 10_000;
/** Most relay path reports in one request. */
export const REPORTS_PER_REQUEST_MAX = 1024;
/** Most client (SDK) path reports in one request. */
export const CLIENT_REPORTS_PER_REQUEST_MAX = 64;

/** An error answer: `{ "error": ApiErrorBody }` with a 4xx or 5xx status. */
export interface ApiErrorBody {
  /** Stable code, e.g. `invalid_field`, `unknown_origin`, `unauthorized`, `unknown_relay`. */
  readonly code: string;
  /** What was wrong and what is accepted. */
  readonly reason: string;
  /** The offending field, when there is one (`latitude`, `reports[2].rttMs`, `authorization`). */
  readonly field?: string;
}

// ── Relays: registration and heartbeats ─────────────────────────────────────────

/** What a relay says about itself when it registers. */
export interface RelayInfo {
  /** 1–64 of `A-Za-z0-9._-`. */
  readonly relayId: string;
  /** Operator's region name, e.g. `eu-west`. */
  readonly region: string;
  /** Degrees, −90..90. */
  readonly latitude: number;
  /** Degrees, −180..180. */
  readonly longitude: number;
  /** `host:port` clients tunnel to. */
  readonly tunnelAddress: string;
  /** `host:port` that answers probes. */
  readonly probeAddress: string;
  /** Sessions the relay accepts at most. */
  readonly capacitySessions: number;
  /**
   * The relay's WebRTC signaling URL (`POST` an SDP offer with the ticket; relay/README.md,
   * "Browser entry (WebRTC)"), when it has a browser entry. Absent otherwise.
   */
  readonly webrtcUrl?: string;
}

/**
 * Exactly the {@link RelayInfo} fields of `info` (a request body or a record may carry
 * more), in their declared order: what the registry stores and the store replicates.
 */
export function relayInfoOf(info: RelayInfo): RelayInfo {
  return {
    relayId: info.relayId,
    region: info.region,
    latitude: info.latitude,
    longitude: info.longitude,
    tunnelAddress: info.tunnelAddress,
    probeAddress: info.probeAddress,
    capacitySessions: info.capacitySessions,
    ...(info.webrtcUrl !== undefined ? { webrtcUrl: info.webrtcUrl } : {}),
  };
}

/** What a relay says in each heartbeat. */
export interface RelayLoad {
  /** Sessions open now. */
  readonly sessions: number;
  /** Packets per second forwarded (both ways). */
  readonly packetsPerSecond: number;
  /** CPU busy fraction, 0..1. */
  readonly cpuFraction: number;
  /** True while the relay drains: it keeps its sessions but takes no new ones. */
  readonly draining: boolean;
  /**
   * The players it carries and its L4 rules (the dashboard's players view), when the
   * relay sends them: only to a coordinator whose {@link RegisterAnswer.heartbeatStatus}
   * says it accepts them. Bounded: see {@link RelayStatus}.
   */
  readonly status?: RelayStatus;
}

/** Most origins in {@link RelayStatus.origins}: the busiest by players (then backups); the rest are folded into `otherPlayers` / `otherBackups`. */
export const RELAY_STATUS_ORIGINS_MAX = 16;
/** Most L4 rules in {@link RelayStatus.rules} (in configuration order). */
export const RELAY_STATUS_RULES_MAX = 32;
/** Longest name (origin, rule, group, address) in a {@link RelayStatus}, characters; relays cut longer ones. */
export const RELAY_STATUS_NAME_CHARS_MAX = 128;
/** Most origins listed per L4 rule in {@link RelayRuleStatus.origins}. */
export const RELAY_STATUS_RULE_ORIGINS_MAX = 16;

/** A relay's tunnel players of one origin. */
export interface RelayOriginPlayers {
  /** The origin's name (the ticket's). */
  readonly origin: string;
  /** Tunnel sessions that carried game data up through this relay since the previous heartbeat: players playing here. */
  readonly players: number;
  /**
   * Tunnel sessions open here that carried no game data since the previous heartbeat:
   * warm backups (the player plays through another relay and only probes this one) or
   * idle players. Never counted as players, so a fleet's sum of `players` counts each
   * player once.
   */
  readonly backups: number;
  /** Packets rebuilt by the FEC receivers (upstream, player → relay) of this origin's sessions open here, over their lives. */
  readonly fecRecovered: number;
  /** Upstream loss of the same sessions over their lives as their FEC receivers saw it, before FEC (on the wire), fraction 0..1; 0 without FEC traffic. */
  readonly lossBeforeFec: number;
  /** The same after FEC (what the game server missed), fraction 0..1. */
  readonly lossAfterFec: number;
  /**
   * Downstream loss (relay → player) of the same sessions over their lives, before FEC,
   * as the players' FEC receivers reported it (their `fecStats`), fraction 0..1; 0 when
   * no player reported. Absent from relays before it.
   */
  readonly downLossBeforeFec?: number;
  /** The same after FEC (what the players missed), fraction 0..1. Absent from relays before it. */
  readonly downLossAfterFec?: number;
}

/** One L4 rule of a relay, with its origins' health. */
export interface RelayRuleStatus {
  /** The rule's name. */
  readonly rule: string;
  /** What it forwards: UDP datagrams or TCP connections. */
  readonly protocol: 'udp' | 'tcp';
  /** Where it listens, `address:port` or `address:port-portEnd`. */
  readonly listen: string;
  /** Its origin group. */
  readonly group: string;
  /** Flows (UDP) or connections (TCP) open now. */
  readonly sessions: number;
  /** The group's origins (`address:port`) and whether their health checks pass; the first {@link RELAY_STATUS_RULE_ORIGINS_MAX}. */
  readonly origins: readonly { readonly origin: string; readonly healthy: boolean }[];
}

/**
 * What a relay says about its players and L4 rules in a heartbeat (`load.status`),
 * bounded in size: at most {@link RELAY_STATUS_ORIGINS_MAX} origins,
 * {@link RELAY_STATUS_RULES_MAX} rules of {@link RELAY_STATUS_RULE_ORIGINS_MAX} origins
 * each, names of at most {@link RELAY_STATUS_NAME_CHARS_MAX} characters: about 100 kB of
 * JSON at the very most (every list full, every name at its cap; the coordinator reads
 * bodies up to 256 kB), a few hundred bytes for a relay with one origin and one rule.
 */
export interface RelayStatus {
  /** Tunnel players per origin, busiest first. */
  readonly origins: readonly RelayOriginPlayers[];
  /** Players of the origins left out of `origins` (counted as {@link RelayOriginPlayers.players}). */
  readonly otherPlayers: number;
  /** Backups of the origins left out of `origins` (counted as {@link RelayOriginPlayers.backups}). */
  readonly otherBackups: number;
  /** The relay's L4 rules. */
  readonly rules: readonly RelayRuleStatus[];
}

/** Body of `POST /v1/relays/enroll`. */
export interface EnrollRequest {
  /** The relay id the token was minted for; absent: whatever id the token names (`slipstream relay --join`). */
  readonly relayId?: string;
  /** The relay's raw Ed25519 public key (32 bytes), base64. */
  readonly publicKey: string;
  /** The one-time join token (`sjt_…`). */
  readonly token: string;
}

/** Answer of `POST /v1/relays/enroll`: the relay's identity, and what it needs to run. */
export interface EnrollAnswer {
  readonly relayId: string;
  /** Epoch ms. */
  readonly enrolledAtMs: number;
  /** Raw Ed25519 public key (base64) that verifies tickets. */
  readonly ticketPublicKey: string;
  /** The fleet seal key (32 bytes, base64) that opens session keys in tickets: keep it private (HTTPS to the coordinator across networks). */
  readonly sealKey: string;
  /** Origins the coordinator knows an address for: what the relay's `tunnel.origins` maps. */
  readonly origins: { readonly name: string; readonly address: string }[];
  /** Where the relay is, when the token was minted with it. */
  readonly placement?: RelayPlacement;
}

/** Where a relay is, as a join token may carry it. */
export interface RelayPlacement {
  readonly region: string;
  /** Degrees, −90..90. */
  readonly latitude: number;
  /** Degrees, −180..180. */
  readonly longitude: number;
}

/** Body of `POST /v1/admin/join-tokens`. */
export interface JoinTokenRequest {
  /** The relay id the token enrolls (and only that one). */
  readonly relayId: string;
  /** Where the relay is: handed to it at enrollment (`slipstream relay --join` needs no YAML then). */
  readonly placement?: RelayPlacement;
  /** Token lifetime, ms, 60 000..604 800 000 (7 days). Default the coordinator's `fleet.joinTokenTtlMs`. */
  readonly ttlMs?: number;
}

/** Answer of `POST /v1/admin/join-tokens`. The coordinator keeps only the token's hash. */
export interface JoinTokenAnswer {
  readonly relayId: string;
  /** Give it to the relay once (`tunnel.coordinatorJoinToken`, `slipstream relay --token`); it works once. */
  readonly token: string;
  /** Epoch ms. */
  readonly expiresAtMs: number;
}

/** An enrolled relay identity, as the admin API lists it. */
export interface RelayIdentityView {
  readonly relayId: string;
  /** Raw Ed25519 public key, base64. */
  readonly publicKey: string;
  /** Epoch ms. */
  readonly enrolledAtMs: number;
  /** Epoch ms, when revoked: the relay's requests are refused until it enrolls again with a new token. */
  readonly revokedAtMs?: number;
}

/** Answer of `DELETE /v1/admin/relay-identities/:relayId`. */
export interface RevokeIdentityAnswer {
  readonly relayId: string;
  readonly revoked: true;
  /** Epoch ms. */
  readonly revokedAtMs: number;
}

/** Answer of `CoordinatorClient.register`. */
export interface RegisterAnswer {
  readonly relayId: string;
  /** The relay is unhealthy after this long without a heartbeat, ms. */
  readonly leaseMs: number;
  /** Send heartbeats this often, ms (a third of the lease). */
  readonly heartbeatIntervalMs: number;
  /** Raw Ed25519 public key (base64) that verifies tickets. */
  readonly ticketPublicKey: string;
  /** Other live relays, to probe (the mesh). */
  readonly relays: { relayId: string; probeAddress: string; region: string }[];
  /** True when this coordinator accepts `status` ({@link RelayStatus}) in heartbeats; relays send it only then (older coordinators refuse unknown fields). */
  readonly heartbeatStatus?: boolean;
}

/** Health of a relay at an instant. */
export type RelayHealth = 'healthy' | 'draining' | 'unhealthy';

// ── Measurements: probe reports from relays and clients ─────────────────────────

/** One relay probe result: toward another relay (`targetRelayId`) or an origin (`origin`), exactly one. */
export interface RelayPathReport {
  readonly targetRelayId?: string;
  readonly origin?: string;
  /** ms, 0..60000. */
  readonly rttMs: number;
  /** ms, 0..60000. */
  readonly jitterMs: number;
  /** 0..1. */
  readonly lossFraction: number;
  /** Probes in the window, 0..1e6 (0 is ignored). */
  readonly samples: number;
}

/** One SDK probe result toward a relay; the coordinator keys it by the caller's /24 or /48. */
export interface ClientPathReport {
  readonly relayId: string;
  readonly rttMs: number;
  readonly jitterMs: number;
  readonly lossFraction: number;
  readonly samples: number;
}

/** Answer of the report methods. */
export interface ReportAnswer {
  readonly taken: number;
  readonly skipped: { index: number; reason: string }[];
  /** Client reports only: the prefix they were filed under. */
  readonly clientPrefix?: string;
}

// ── Routing: ranked relays for a client ─────────────────────────────────────────

/** Question of `CoordinatorClient.route`. */
export interface RouteQuestion {
  readonly origin: string;
  /** Region hint, used when nothing better is known. */
  readonly region?: string;
  /** Client coordinates, degrees (both or neither). */
  readonly latitude?: number;
  readonly longitude?: number;
  /** 1..64, default 8. */
  readonly limit?: number;
  /** Consider entry→exit relay routes. Default true. */
  readonly twoHop?: boolean;
  /** The session's exit relay (its ticket's `exitRelay`): entries are ranked by the path through it. */
  readonly exit?: string;
}

/** The `GET /v1/route` query string (no `?`) asking `question`: the fields given, as `origin`, `region`, `lat`, `lon`, `limit`, `twoHop`, `exit`. */
export function routeQuery(question: RouteQuestion): string {
  const q = new URLSearchParams({ origin: question.origin });
  if (question.region !== undefined) q.set('region', question.region);
  if (question.latitude !== undefined) q.set('lat', String(question.latitude));
  if (question.longitude !== undefined) q.set('lon', String(question.longitude));
  if (question.limit !== undefined) q.set('limit', String(question.limit));
  if (question.twoHop !== undefined) q.set('twoHop', String(question.twoHop));
  if (question.exit !== undefined) q.set('exit', question.exit);
  return q.toString();
}

/** Answer of `CoordinatorClient.route`: candidates best first, each with legs, confidence, age and reason. */
export interface RouteAnswer extends RouteRanking {
  readonly origin: string;
  readonly clientPrefix: string | null;
  /** Coordinator wall time of the answer, epoch ms. */
  readonly generatedAtMs: number;
  readonly leaseMs: number;
}

/** Ranked routes, best first (what the coordinator core's `rankRoutes` returns). */
export interface RouteRanking {
  readonly candidates: RouteCandidate[];
  /** Relays left out (unhealthy, draining, full), at most `limit` of them. */
  readonly excluded: ExcludedRelay[];
  /** How many relays were left out in all. */
  readonly excludedCount: number;
}

/** A ranked route. */
export interface RouteCandidate {
  /** 1 = best. */
  readonly rank: number;
  /** `direct`: client→relay→origin; `twoHop`: client→relay→exitRelay→origin. */
  readonly kind: 'direct' | 'twoHop';
  /** The relay the client connects to. */
  readonly relayId: string;
  /** Two-hop only: the relay that forwards to the origin. */
  readonly exitRelayId?: string;
  /** Entry relay's region. */
  readonly region: string;
  /** `host:port` the client tunnels to. */
  readonly tunnelAddress: string;
  /** `host:port` the client probes. */
  readonly probeAddress: string;
  /** The entry relay's WebRTC signaling URL, when it has a browser entry (see {@link RelayInfo.webrtcUrl}). */
  readonly webrtcUrl?: string;
  /** Estimated cost, ms (lower is better). */
  readonly costMs: number;
  /** Whole-path RTT, ms. */
  readonly rttMs: number;
  /** Whole-path jitter, ms. */
  readonly jitterMs: number;
  /** Whole-path loss fraction, 0..1. */
  readonly lossFraction: number;
  /** Per-leg figures. */
  readonly legs: {
    readonly clientToRelay: LegEstimate;
    readonly relayToRelay?: LegEstimate;
    readonly relayToOrigin: LegEstimate;
  };
  /** What each penalty added, ms. */
  readonly penaltiesMs: { readonly jitter: number; readonly loss: number; readonly load: number; readonly hop: number };
  /** Entry relay's load: sessions, capacity, CPU and the fraction used (max of sessions/capacity and CPU). */
  readonly load: { readonly sessions: number; readonly capacitySessions: number; readonly cpuFraction: number; readonly loadFraction: number };
  /** The least confidence of its legs, 0..1. */
  readonly confidence: number;
  /** Why it ranks where it does, for people. */
  readonly reason: string;
}

/** A relay left out, and why. */
export interface ExcludedRelay {
  readonly relayId: string;
  readonly reason: string;
}

/** One leg of a route. */
export interface LegEstimate {
  /** RTT, ms. */
  readonly rttMs: number;
  /** Jitter, ms. */
  readonly jitterMs: number;
  /** Loss fraction, 0..1. */
  readonly lossFraction: number;
  /** Where the figures came from. */
  readonly source: LegSource;
  /** 0..1 (see `MeasurementView.confidence`; geography 0.3, region 0.1, unknown 0). */
  readonly confidence: number;
  /** Age of a measured figure, ms (absent for estimates). */
  readonly ageMs?: number;
  /** Probe samples behind a measured figure. */
  readonly samples?: number;
}

/** Where a leg's figures came from, best first. */
export type LegSource = 'measured' | 'geography' | 'region' | 'unknown';

/** A destination as ranking needs it. */
export interface RouteOrigin {
  /** The name tickets and relays use. */
  readonly name: string;
  /** Degrees, when known. */
  readonly latitude?: number;
  /** Degrees, when known. */
  readonly longitude?: number;
  /** Region, when known. */
  readonly region?: string;
}

/** An origin the coordinator can route to. */
export interface OriginInfo extends RouteOrigin {
  /** `host:port` of the origin, when configured (informational; relays map names themselves). */
  readonly address?: string;
  /** `config`: declared in the config file; `learned`: some relay reported probing it. */
  readonly source: 'config' | 'learned';
}

// ── Sessions: tickets and revocations ───────────────────────────────────────────

/** Question of `CoordinatorClient.issueSession`. */
export interface SessionRequest {
  readonly origin: string;
  /** Ticket lifetime, s (default `sessions.ttlSDefault`). */
  readonly ttlS?: number;
  /** Lower limits than the configured defaults. */
  readonly limits?: { packetsPerSecond?: number; bytesPerSecond?: number };
  /**
   * The session's exit relay: a relay id, or `auto` (the healthy relay with the best
   * path to the origin). It holds the session's one origin-facing socket, so the origin
   * sees one source address whichever entry relay the player uses. Default none.
   */
  readonly exitRelay?: string;
  /**
   * The player the ticket is for, 1–128 printable ASCII characters without spaces (the
   * game's own id). Signed into the ticket; relays with `tunnel.proxyProtocol: v2` give
   * it to the origin with each datagram (PROXY v2 TLV 0xE0). Default none.
   */
  readonly playerId?: string;
}

/** A ticket issued by `CoordinatorClient.issueSession`. */
export interface IssuedSession {
  /** 16 lowercase hex digits. */
  readonly sessionId: string;
  readonly origin: string;
  /** Epoch ms. */
  readonly issuedAtMs: number;
  /** Epoch ms. */
  readonly expiresAtMs: number;
  readonly limits: { packetsPerSecond: number; bytesPerSecond: number };
  /** The exit relay the ticket names, when one was asked for. */
  readonly exitRelay?: string;
  /** The player id the ticket carries, when one was given. */
  readonly playerId?: string;
  /** The ticket bytes (proto/src/ticket.ts format), base64. */
  readonly ticket: string;
  /** The 32-byte session key, base64: give it to the player with the ticket, over the game's own secure channel. */
  readonly sessionKey: string;
  /** Raw Ed25519 public key, base64. */
  readonly ticketPublicKey: string;
}

/** Answer of `CoordinatorClient.revokeSession`. */
export interface RevokeAnswer {
  readonly sessionId: string;
  readonly revoked: true;
  readonly alreadyRevoked: boolean;
  /** The revocation is kept until then, epoch ms. */
  readonly expiresAtMs: number;
}

/** One revoked session, as the feed carries it. */
export interface RevocationEntry {
  readonly sessionId: string;
  /** Epoch ms. */
  readonly revokedAtMs: number;
  /** Epoch ms. */
  readonly expiresAtMs: number;
}

/** A page of the revocation feed. */
export interface RevocationPage {
  /** Pass as `sinceMs` next time. */
  readonly cursorMs: number;
  readonly revocations: RevocationEntry[];
}

// ── Fleet view and health ───────────────────────────────────────────────────────

/** The dashboard's view of the fleet. */
export interface FleetView {
  /** When the view was taken, ms. */
  readonly nowMs: number;
  readonly leaseMs: number;
  readonly relays: FleetRelay[];
  readonly origins: OriginInfo[];
  /** Relay-to-relay RTT matrix, ms (`null` = not measured), for at most FLEET_MATRIX_RELAYS_MAX (64) relays by id. */
  readonly mesh: { readonly relayIds: string[]; readonly rttMs: (number | null)[][]; readonly lossFraction: (number | null)[][] };
  /** Active revocations. */
  readonly revocations: number;
}

/** A relay as the dashboard shows it: what it registered with, and how it is doing. */
export interface FleetRelay extends RelayInfo {
  readonly health: RelayHealth;
  readonly load: RelayLoad;
  /** Time since the last heartbeat, ms. */
  readonly lastHeartbeatAgeMs: number;
  /** Figures to each origin the relay probes. */
  readonly origins: { origin: string; rttMs: number; jitterMs: number; lossFraction: number; ageMs: number }[];
  /** RTT, jitter and loss over the last minutes (mean over the relay's origin paths, else its mesh paths). */
  readonly history: RelaySeries;
}

/**
 * What `GET /v1/fleet` answers: the core's {@link FleetView} plus what the service adds —
 * per relay the fleet secret role and staleness, the store status, recent fleet events.
 */
export interface FleetAnswer extends Omit<FleetView, 'relays'> {
  readonly relays: FleetAnswerRelay[];
  readonly store: StoreStatus;
  /** The most recent fleet events, oldest first, at most FLEET_EVENTS_MAX (100); this replica's own observations. */
  readonly events: FleetEvent[];
}

/** A relay in {@link FleetAnswer}: the core's view, how it authenticates, and whether its figures are stale. */
export interface FleetAnswerRelay extends Omit<FleetRelay, 'origins'> {
  readonly fleetSecret: FleetSecretRole;
  /**
   * True when the last heartbeat is older than the lease (`lastHeartbeatAgeMs > leaseMs`):
   * `load` is what the relay said then, not what it does now.
   */
  readonly stale: boolean;
  /** As {@link FleetRelay.origins}; `stale` when that figure is older than the lease (`ageMs > leaseMs`). */
  readonly origins: (FleetRelay['origins'][number] & { stale: boolean })[];
}

/** At most this many events in {@link FleetAnswer.events}. */
export const FLEET_EVENTS_MAX = 100;

/**
 * Something that happened to a relay, as the dashboard lists and marks it:
 * `relayUp` (registered, or back after a lapse), `relayDraining`, `relayDown` (lease
 * lapsed), `relayForgotten` (retention over), `relayIdentityRevoked` (an operator revoked its key).
 */
export interface FleetEvent {
  /** When this coordinator noticed, epoch ms. */
  readonly atMs: number;
  readonly type: 'relayUp' | 'relayDraining' | 'relayDown' | 'relayForgotten' | 'relayIdentityRevoked';
  readonly relayId: string;
}

/** A relay's series, oldest first. */
export interface RelaySeries {
  /** Sample times, ms. */
  readonly tMs: number[];
  /** RTT, ms (null when nothing was measured at that sample). */
  readonly rttMs: (number | null)[];
  /** Jitter, ms. */
  readonly jitterMs: (number | null)[];
  /** Loss fraction, 0..1. */
  readonly lossFraction: (number | null)[];
}

/** Answer of `CoordinatorClient.health`. */
export interface HealthAnswer {
  /** `degraded` while the store is unreachable (the coordinator still serves). */
  readonly status: 'ok' | 'degraded';
  readonly reason?: string;
  readonly store: StoreStatus;
  readonly relays: { healthy: number; draining: number; unhealthy: number };
  /** Which fleet secret relays authenticate with (during a rotation: who still holds a previous one). */
  readonly fleetSecrets: FleetSecretsReport;
  readonly measurements: number;
  readonly revocations: number;
  readonly uptimeS: number;
}

/** Health of a store, for `/health`, logs and metrics. */
export interface StoreStatus {
  /** `memory` or `redis`. */
  readonly kind: 'memory' | 'redis';
  /** Whether the backend is reachable now. */
  readonly ok: boolean;
  /** For people: `connected to redis://…` or why not. */
  readonly detail: string;
  /** Writes waiting for the backend to return. */
  readonly pendingWrites: number;
  /** Writes dropped because the outbox was full, since start. */
  readonly droppedWrites: number;
  /** When the backend became unreachable (wall ms); absent while ok. */
  readonly downSinceMs?: number;
}

/** How a relay authenticated: the current fleet secret, one kept from before a rotation, or its own enrolled key (`identity`). */
export type FleetSecretRole = 'current' | 'previous' | 'unknown' | 'identity';

/** Relays and how they authenticated, as `/health` reports them. */
export interface FleetSecretsReport {
  /** Secrets this replica accepts: 1 + `keys.fleetSecretsPrevious`. */
  readonly accepted: number;
  /** Relays held (any health) by the secret they last authenticated with. */
  readonly relays: Readonly<Record<FleetSecretRole, number>>;
  /** Relays whose last registration or heartbeat used a previous secret: move them before removing it. */
  readonly relaysOnPrevious: readonly { relayId: string; health: string; previousIndex: number }[];
  /** Relays that authenticated with a secret this replica does not hold (at another replica), or before it recorded one. */
  readonly relaysOnUnknown: readonly { relayId: string; health: string }[];
}
