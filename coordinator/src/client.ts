/**
 * A small typed HTTP client of the coordinator, for relays, the SDK and game
 * backends. Uses the global `fetch`; every call has a timeout.
 *
 * ```ts
 * const relay = new CoordinatorClient({ baseUrl: 'http://127.0.0.1:7400', fleetSecret });
 * const { heartbeatIntervalMs, ticketPublicKey } = await relay.register({ relayId: 'fra-1', region: 'eu-central',
 *   latitude: 50.1, longitude: 8.7, tunnelAddress: '203.0.113.7:4433', probeAddress: '203.0.113.7:4434', capacitySessions: 5000 });
 * await relay.heartbeat('fra-1', { sessions: 12, packetsPerSecond: 3400, cpuFraction: 0.2, draining: false }); // every heartbeatIntervalMs
 * await relay.reportRelayPaths('fra-1', [{ origin: 'eu-game', rttMs: 4.1, jitterMs: 0.3, lossFraction: 0, samples: 20 }]);
 * const follower = relay.followRevocations((revoked) => revoked.forEach((r) => endSession(r.sessionId)));
 *
 * const sdk = new CoordinatorClient({ baseUrl });
 * const { candidates } = await sdk.route({ origin: 'eu-game', region: 'eu-west' });
 * await sdk.reportClientPaths([{ relayId: candidates[0].relayId, rttMs: 18, jitterMs: 1.2, lossFraction: 0.01, samples: 30 }]);
 *
 * const backend = new CoordinatorClient({ baseUrl, apiKey });
 * const session = await backend.issueSession({ origin: 'eu-game', ttlS: 600 }); // hand ticket + sessionKey to the player
 * await backend.revokeSession(session.sessionId);                                 // relays drop it within seconds
 * ```
 *
 * Failures: a 4xx/5xx answer throws {@link CoordinatorApiError} (with the API's
 * `code`, `field` and `reason`); a network failure or timeout throws the fetch error.
 */
import { REVOCATION_CURSOR_OVERLAP_MS, REVOCATION_WAIT_MS_DEFAULT } from './constants.js';
import type { FleetView, OriginInfo } from './core/coordinator-core.js';
import type { RouteRanking } from './core/ranking.js';
import type { RelayInfo, RelayLoad } from './core/registry.js';
import type { FleetSecretRole, FleetSecretsReport } from './service.js';
import type { StoreStatus } from './store/store.js';

export type { RelayInfo, RelayLoad } from './core/registry.js';
export type { RouteCandidate, LegEstimate, ExcludedRelay } from './core/ranking.js';

/** Options of a {@link CoordinatorClient}. */
export interface CoordinatorClientInit {
  /** `http://host:port` of any coordinator replica. */
  readonly baseUrl: string;
  /** Relays: the fleet secret (`keys.fleetSecret`, or during a rotation one of `keys.fleetSecretsPrevious`). */
  readonly fleetSecret?: string;
  /** Game backends: an API key (`keys.apiKeys`). */
  readonly apiKey?: string;
  /** Per-request timeout, ms (long polls get their wait on top). Default 5000. */
  readonly timeoutMs?: number;
}

/** An error answer of the API. */
export class CoordinatorApiError extends Error {
  constructor(
    /** HTTP status. */
    readonly status: number,
    /** Stable code, e.g. `invalid_field`, `unknown_origin`, `unauthorized`. */
    readonly code: string,
    /** What was wrong and what is accepted. */
    readonly reason: string,
    /** The offending field, when there is one (`latitude`, `reports[2].rttMs`, `authorization`). */
    readonly field?: string,
  ) {
    super(`coordinator answered ${status} ${code}: ${field !== undefined ? `${field}: ` : ''}${reason}`);
    this.name = 'CoordinatorApiError';
  }
}

/** Answer of {@link CoordinatorClient.register}. */
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
}

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

/** Question of {@link CoordinatorClient.route}. */
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

/** Answer of {@link CoordinatorClient.route}: candidates best first, each with legs, confidence, age and reason. */
export interface RouteAnswer extends RouteRanking {
  readonly origin: string;
  readonly clientPrefix: string | null;
  /** Coordinator wall time of the answer, epoch ms. */
  readonly generatedAtMs: number;
  readonly leaseMs: number;
}

/** Question of {@link CoordinatorClient.issueSession}. */
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
}

/** A ticket issued by {@link CoordinatorClient.issueSession}. */
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
  /** The ticket bytes (proto/src/ticket.ts format), base64. */
  readonly ticket: string;
  /** The 32-byte session key, base64: give it to the player with the ticket, over the game's own secure channel. */
  readonly sessionKey: string;
  /** Raw Ed25519 public key, base64. */
  readonly ticketPublicKey: string;
}

/** Answer of {@link CoordinatorClient.revokeSession}. */
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

/** Answer of {@link CoordinatorClient.health}. */
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

/** Options of {@link CoordinatorClient.followRevocations}. */
export interface FollowOptions {
  /** Start after this cursor (0 = every active revocation). Default 0. */
  readonly sinceMs?: number;
  /** Long-poll wait per request, ms (≤ 30000). Default 20000. */
  readonly waitMs?: number;
  /** Called on each failed poll; the follower retries with backoff (0.2 s doubling to 5 s). */
  readonly onError?: (error: unknown) => void;
}

/** A running revocation follower. */
export interface RevocationFollower {
  /** Stops following; idempotent. */
  close(): void;
  /** Settles when the follower has stopped. */
  readonly done: Promise<void>;
}

/** Longest backoff between failed polls, ms. */
const FOLLOW_BACKOFF_MS_MAX = 5000;
/** First backoff after a failed poll, ms. */
const FOLLOW_BACKOFF_MS_MIN = 200;

/** See the module comment. */
export class CoordinatorClient {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;

  constructor(private readonly init: CoordinatorClientInit) {
    this.baseUrl = init.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = init.timeoutMs ?? 5000;
  }

  /** Relay: joins the registry (`POST /v1/relays/register`, fleet secret). Re-registering is fine. `signal` aborts the request. */
  register(info: RelayInfo, signal?: AbortSignal): Promise<RegisterAnswer> {
    return this.call('POST', '/v1/relays/register', 'fleet', info, 0, signal);
  }

  /** Relay: still alive, with load (`POST /v1/relays/heartbeat`). Throws `unknown_relay` (404) if the coordinator does not know it: register again. `signal` aborts the request. */
  heartbeat(relayId: string, load: RelayLoad, signal?: AbortSignal): Promise<{ leaseMs: number; heartbeatIntervalMs: number }> {
    return this.call('POST', '/v1/relays/heartbeat', 'fleet', { relayId, ...load }, 0, signal);
  }

  /** Relay: probe results toward other relays and origins (`POST /v1/relays/reports`, ≤ 1024 per call). */
  reportRelayPaths(relayId: string, reports: readonly RelayPathReport[]): Promise<ReportAnswer> {
    return this.call('POST', '/v1/relays/reports', 'fleet', { relayId, reports });
  }

  /** SDK: probe results toward relays (`POST /v1/reports`, ≤ 64 per call), filed under the caller's /24 or /48. */
  reportClientPaths(reports: readonly ClientPathReport[]): Promise<ReportAnswer> {
    return this.call('POST', '/v1/reports', 'none', { reports });
  }

  /** SDK: relays to try for `origin`, best first (`GET /v1/route`). */
  route(question: RouteQuestion): Promise<RouteAnswer> {
    const q = new URLSearchParams({ origin: question.origin });
    if (question.region !== undefined) q.set('region', question.region);
    if (question.latitude !== undefined) q.set('lat', String(question.latitude));
    if (question.longitude !== undefined) q.set('lon', String(question.longitude));
    if (question.limit !== undefined) q.set('limit', String(question.limit));
    if (question.twoHop !== undefined) q.set('twoHop', String(question.twoHop));
    if (question.exit !== undefined) q.set('exit', question.exit);
    return this.call('GET', `/v1/route?${q.toString()}`, 'none');
  }

  /** Game backend: a signed ticket for one session (`POST /v1/session`, API key). */
  issueSession(request: SessionRequest): Promise<IssuedSession> {
    return this.call('POST', '/v1/session', 'api', request);
  }

  /** Game backend: revokes a session (`DELETE /v1/session/:id`, API key); relays following the feed end it within seconds. */
  revokeSession(sessionId: string): Promise<RevokeAnswer> {
    return this.call('DELETE', `/v1/session/${encodeURIComponent(sessionId)}`, 'api');
  }

  /** Relay: one long poll of the revocation feed (`GET /v1/revocations`); waits up to `waitMs` for something new. */
  revocations(sinceMs: number, waitMs = REVOCATION_WAIT_MS_DEFAULT, signal?: AbortSignal): Promise<RevocationPage> {
    return this.call('GET', `/v1/revocations?sinceMs=${sinceMs}&waitMs=${waitMs}`, 'fleet', undefined, waitMs, signal);
  }

  /**
   * Relay: follows the revocation feed until closed, calling `onRevoked` with each
   * batch of sessions it has not reported before. After a failure (which may mean a
   * different replica answers next) the cursor rewinds by
   * {@link REVOCATION_CURSOR_OVERLAP_MS} so nothing is missed; duplicates are filtered.
   */
  followRevocations(onRevoked: (revocations: RevocationEntry[]) => void, options: FollowOptions = {}): RevocationFollower {
    const controller = new AbortController();
    const seen = new Map<string, number>();
    let cursorMs = options.sinceMs ?? 0;
    const waitMs = options.waitMs ?? REVOCATION_WAIT_MS_DEFAULT;
    const done = (async () => {
      let backoffMs = FOLLOW_BACKOFF_MS_MIN;
      while (!controller.signal.aborted) {
        try {
          const page = await this.revocations(cursorMs, waitMs, controller.signal);
          backoffMs = FOLLOW_BACKOFF_MS_MIN;
          cursorMs = page.cursorMs;
          const now = Date.now();
          for (const [id, expiresAtMs] of seen) if (expiresAtMs <= now) seen.delete(id);
          const fresh = page.revocations.filter((r) => !seen.has(r.sessionId));
          for (const r of fresh) seen.set(r.sessionId, r.expiresAtMs);
          if (fresh.length > 0) onRevoked(fresh);
        } catch (error) {
          if (controller.signal.aborted) break;
          options.onError?.(error);
          cursorMs = Math.max(0, cursorMs - REVOCATION_CURSOR_OVERLAP_MS);
          await sleep(backoffMs, controller.signal);
          backoffMs = Math.min(FOLLOW_BACKOFF_MS_MAX, backoffMs * 2);
        }
      }
    })();
    return { close: () => controller.abort(), done };
  }

  /** The raw Ed25519 public key that verifies this coordinator's tickets (`GET /v1/keys`). */
  async ticketPublicKey(): Promise<Uint8Array> {
    const answer = await this.call<{ ticketPublicKey: string }>('GET', '/v1/keys', 'none');
    return new Uint8Array(Buffer.from(answer.ticketPublicKey, 'base64'));
  }

  /** `GET /health`. */
  health(): Promise<HealthAnswer> {
    return this.call('GET', '/health', 'none');
  }

  /** `GET /v1/fleet`: what the dashboard shows. */
  fleet(): Promise<Omit<FleetView, 'relays'> & { relays: (FleetView['relays'][number] & { fleetSecret: FleetSecretRole })[]; store: StoreStatus }> {
    return this.call('GET', '/v1/fleet', 'none');
  }

  /** `GET /v1/origins`. */
  async origins(): Promise<OriginInfo[]> {
    return (await this.call<{ origins: OriginInfo[] }>('GET', '/v1/origins', 'none')).origins;
  }

  private async call<T>(method: string, path: string, auth: 'fleet' | 'api' | 'none', body?: unknown, extraWaitMs = 0, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = {};
    const token = auth === 'fleet' ? this.init.fleetSecret : auth === 'api' ? this.init.apiKey : undefined;
    if (auth !== 'none' && token === undefined) throw new TypeError(`CoordinatorClient: ${method} ${path.split('?')[0]} needs ${auth === 'fleet' ? 'fleetSecret' : 'apiKey'} in the client options`);
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const timeout = AbortSignal.timeout(this.timeoutMs + extraWaitMs);
    const res = await fetch(`${this.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new CoordinatorApiError(res.status, 'bad_response', `not JSON: ${text.slice(0, 80)}`);
    }
    if (!res.ok) {
      const e = (parsed as { error?: { code?: string; reason?: string; field?: string } } | undefined)?.error;
      throw new CoordinatorApiError(res.status, e?.code ?? 'http_error', e?.reason ?? `HTTP ${res.status}`, e?.field);
    }
    return parsed as T;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
