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
 * // A relay with its own key (enrolled once with a join token; proto/src/api/relay-identity.ts):
 * const own = new CoordinatorClient({ baseUrl, identity: { relayId: 'fra-1', privateKey } });
 * await own.enroll({ relayId: 'fra-1', publicKey, token }); // then every fleet call is signed
 *
 * const backend = new CoordinatorClient({ baseUrl, apiKey });
 * const session = await backend.issueSession({ origin: 'eu-game', ttlS: 600 }); // hand ticket + sessionKey to the player
 * await backend.revokeSession(session.sessionId);                                 // relays drop it within seconds
 * ```
 *
 * Failures: a 4xx/5xx answer throws {@link CoordinatorApiError} (with the API's
 * `code`, `field` and `reason`); a network failure or timeout throws
 * {@link CoordinatorNetworkError}, whose message names the cause (`connection refused
 * (ECONNREFUSED)`, `name not found (ENOTFOUND)`, `timed out …`) instead of fetch's bare
 * "fetch failed". A request the caller's own signal aborted rejects with that abort.
 */
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { signRelayRequest } from '../proto/src/api/relay-identity.js';
import { describeNetworkError, systemErrorOf } from './system-error.js';
import {
  API_PATHS,
  routeQuery,
  REVOCATION_CURSOR_OVERLAP_MS,
  REVOCATION_WAIT_MS_DEFAULT,
  type ApiErrorBody,
  type ClientPathReport,
  type EnrollAnswer,
  type EnrollRequest,
  type JoinTokenAnswer,
  type JoinTokenRequest,
  type RelayIdentityView,
  type RevokeIdentityAnswer,
  type FleetSecretRole,
  type FleetView,
  type HealthAnswer,
  type IssuedSession,
  type OriginInfo,
  type RegisterAnswer,
  type RelayInfo,
  type RelayLoad,
  type RelayPathReport,
  type ReportAnswer,
  type RevocationEntry,
  type RevocationPage,
  type RevokeAnswer,
  type RouteAnswer,
  type RouteQuestion,
  type SessionRequest,
  type StoreStatus,
} from '../proto/src/api/contract.js';

// Callers take the contract's types from here too, beside the client that speaks it.
export type * from '../proto/src/api/contract.js';

/** Options of a {@link CoordinatorClient}. */
export interface CoordinatorClientInit {
  /** `http://host:port` of any coordinator replica. */
  readonly baseUrl: string;
  /** Relays: the fleet secret (`keys.fleetSecret`, or during a rotation one of `keys.fleetSecretsPrevious`). */
  readonly fleetSecret?: string;
  /** Game backends: an API key (`keys.apiKeys`). */
  readonly apiKey?: string;
  /**
   * Relays with their own key: fleet calls are signed with it (`Authorization: Slip-Relay`)
   * instead of carrying the fleet secret. `privateKey` is Ed25519.
   */
  readonly identity?: { readonly relayId: string; readonly privateKey: KeyObject };
  /** Operators: an admin key (`keys.adminKeys`) for join tokens and relay identities. */
  readonly adminKey?: string;
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

/**
 * The coordinator could not be reached: no answer at all (refused, name not found,
 * timed out, reset). `message` is the readable cause with its code, e.g. `connection
 * refused (ECONNREFUSED)`; `cause` is the system error underneath (or fetch's error).
 */
export class CoordinatorNetworkError extends Error {
  constructor(
    /** The request, e.g. `GET /v1/route`. */
    readonly request: string,
    /** The system error code (`ECONNREFUSED`, `ENOTFOUND`, `UND_ERR_CONNECT_TIMEOUT`, `TimeoutError`…), when known. */
    readonly reasonCode: string | undefined,
    message: string,
    cause: unknown,
  ) {
    super(message, { cause });
    this.name = 'CoordinatorNetworkError';
  }
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
    return this.call('POST', API_PATHS.relayRegister, 'fleet', info, 0, signal);
  }

  /** Relay: still alive, with load (`POST /v1/relays/heartbeat`). Throws `unknown_relay` (404) if the coordinator does not know it: register again. `signal` aborts the request. */
  heartbeat(relayId: string, load: RelayLoad, signal?: AbortSignal): Promise<{ leaseMs: number; heartbeatIntervalMs: number }> {
    return this.call('POST', API_PATHS.relayHeartbeat, 'fleet', { relayId, ...load }, 0, signal);
  }

  /** Relay: probe results toward other relays and origins (`POST /v1/relays/reports`, ≤ 1024 per call). */
  reportRelayPaths(relayId: string, reports: readonly RelayPathReport[]): Promise<ReportAnswer> {
    return this.call('POST', API_PATHS.relayReports, 'fleet', { relayId, reports });
  }

  /** Relay: enrolls its own public key with a one-time join token (`POST /v1/relays/enroll`; no other credential). */
  enroll(request: EnrollRequest, signal?: AbortSignal): Promise<EnrollAnswer> {
    return this.call('POST', API_PATHS.relayEnroll, 'none', request, 0, signal);
  }

  /** Operator: a one-time join token for one relay id (`POST /v1/admin/join-tokens`, admin key). */
  mintJoinToken(request: JoinTokenRequest): Promise<JoinTokenAnswer> {
    return this.call('POST', API_PATHS.joinTokens, 'admin', request);
  }

  /** Operator: the enrolled relay identities (`GET /v1/admin/relay-identities`, admin key). */
  async relayIdentities(): Promise<RelayIdentityView[]> {
    return (await this.call<{ identities: RelayIdentityView[] }>('GET', API_PATHS.relayIdentities, 'admin')).identities;
  }

  /** Operator: revokes one relay's identity (`DELETE /v1/admin/relay-identities/:relayId`, admin key); no other relay is touched. */
  revokeRelayIdentity(relayId: string): Promise<RevokeIdentityAnswer> {
    return this.call('DELETE', `${API_PATHS.relayIdentities}/${encodeURIComponent(relayId)}`, 'admin');
  }

  /** SDK: probe results toward relays (`POST /v1/reports`, ≤ 64 per call), filed under the caller's /24 or /48. */
  reportClientPaths(reports: readonly ClientPathReport[]): Promise<ReportAnswer> {
    return this.call('POST', API_PATHS.clientReports, 'none', { reports });
  }

  /** SDK: relays to try for `origin`, best first (`GET /v1/route`). */
  route(question: RouteQuestion): Promise<RouteAnswer> {
    return this.call('GET', `${API_PATHS.route}?${routeQuery(question)}`, 'none');
  }

  /** Game backend: a signed ticket for one session (`POST /v1/session`, API key). */
  issueSession(request: SessionRequest): Promise<IssuedSession> {
    return this.call('POST', API_PATHS.session, 'api', request);
  }

  /** Game backend: revokes a session (`DELETE /v1/session/:id`, API key); relays following the feed end it within seconds. */
  revokeSession(sessionId: string): Promise<RevokeAnswer> {
    return this.call('DELETE', `${API_PATHS.session}/${encodeURIComponent(sessionId)}`, 'api');
  }

  /** Relay: one long poll of the revocation feed (`GET /v1/revocations`); waits up to `waitMs` for something new. */
  revocations(sinceMs: number, waitMs = REVOCATION_WAIT_MS_DEFAULT, signal?: AbortSignal): Promise<RevocationPage> {
    return this.call('GET', `${API_PATHS.revocations}?sinceMs=${sinceMs}&waitMs=${waitMs}`, 'fleet', undefined, waitMs, signal);
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
    const answer = await this.call<{ ticketPublicKey: string }>('GET', API_PATHS.keys, 'none');
    return new Uint8Array(Buffer.from(answer.ticketPublicKey, 'base64'));
  }

  /** `GET /health`. */
  health(): Promise<HealthAnswer> {
    return this.call('GET', API_PATHS.health, 'none');
  }

  /** `GET /v1/fleet`: what the dashboard shows. */
  fleet(): Promise<Omit<FleetView, 'relays'> & { relays: (FleetView['relays'][number] & { fleetSecret: FleetSecretRole })[]; store: StoreStatus }> {
    return this.call('GET', API_PATHS.fleet, 'none');
  }

  /** `GET /v1/origins`. */
  async origins(): Promise<OriginInfo[]> {
    return (await this.call<{ origins: OriginInfo[] }>('GET', API_PATHS.origins, 'none')).origins;
  }

  private async call<T>(method: string, path: string, auth: 'fleet' | 'api' | 'admin' | 'none', body?: unknown, extraWaitMs = 0, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = {};
    const bodyText = body === undefined ? undefined : JSON.stringify(body);
    const identity = auth === 'fleet' ? this.init.identity : undefined;
    if (identity !== undefined) {
      // The path as the coordinator will see it: its query re-serialised the way URLSearchParams does.
      const url = new URL(path, 'http://coordinator');
      const pathAndQuery = url.search === '' ? url.pathname : `${url.pathname}?${url.searchParams.toString()}`;
      const parts = { method, pathAndQuery, timestampMs: Date.now(), nonce: randomBytes(16).toString('hex'), relayId: identity.relayId };
      headers.authorization = signRelayRequest(identity.privateKey, parts, Buffer.from(bodyText ?? '', 'utf8'));
    } else {
      const token = auth === 'fleet' ? this.init.fleetSecret : auth === 'api' ? this.init.apiKey : auth === 'admin' ? this.init.adminKey : undefined;
      if (auth !== 'none' && token === undefined) throw new TypeError(`CoordinatorClient: ${method} ${path.split('?')[0]} needs ${auth === 'fleet' ? 'fleetSecret or identity' : auth === 'api' ? 'apiKey' : 'adminKey'} in the client options`);
      if (token !== undefined) headers.authorization = `Bearer ${token}`;
    }
    if (body !== undefined) headers['content-type'] = 'application/json';
    const timeout = AbortSignal.timeout(this.timeoutMs + extraWaitMs);
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${this.baseUrl}${path}`, { method, headers, body: bodyText, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      text = await res.text();
    } catch (error) {
      if (signal?.aborted === true) throw error;
      const sys = systemErrorOf(error);
      const timedOut = timeout.aborted && sys === undefined;
      const reasonCode = sys !== undefined ? String(sys.code) : error instanceof Error && error.name !== 'TypeError' ? error.name : undefined;
      const reason = timedOut ? `timed out after ${this.timeoutMs + extraWaitMs} ms` : describeNetworkError(error);
      throw new CoordinatorNetworkError(`${method} ${path.split('?')[0]}`, reasonCode, reason, sys ?? error);
    }
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new CoordinatorApiError(res.status, 'bad_response', `not JSON: ${text.slice(0, 80)}`);
    }
    if (!res.ok) {
      const e = (parsed as { error?: Partial<ApiErrorBody> } | undefined)?.error;
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

/** The raw Ed25519 public key (32 bytes, base64) of `privateKey`: what {@link CoordinatorClient.enroll} sends. */
export function rawPublicKeyBase64(privateKey: KeyObject): string {
  const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32).toString('base64');
}
