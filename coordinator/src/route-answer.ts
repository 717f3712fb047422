/**
 * `GET /v1/route`: parses the query, answers from the route cache when it holds a fresh
 * answer for this client prefix and query (route-cache.ts), else ranks with the core
 * and keeps the answer. Driver code: `nowMs` is passed in.
 */
import { fail, parseQuery, ORIGIN_RULE, type ApiRequest, type ApiResponse } from './api.js';
import { ROUTE_LIMIT_DEFAULT, ROUTE_LIMIT_MAX } from './constants.js';
import type { CoordinatorCore } from './core/coordinator-core.js';
import { clientPrefix, reporterKey } from './core/geo.js';
import { routeCacheKey, type RouteCache } from './route-cache.js';

/** What answering a route needs from the service. */
export interface RouteContext {
  readonly core: CoordinatorCore;
  /** Wall clock now, epoch ms. */
  readonly nowMs: number;
  /** The client's address (after `trustForwardedFor`). */
  readonly clientAddress: string;
  /** The relays' lease, ms (echoed in the answer). */
  readonly leaseMs: number;
  readonly cache: RouteCache<ApiResponse>;
}

/** The `GET /v1/route` answer (see coordinator/README.md). */
export function routeAnswer(req: ApiRequest, ctx: RouteContext): ApiResponse {
  const q = parseQuery<{ origin: string; region?: string; lat?: number; lon?: number; limit?: number; twoHop?: boolean; exit?: string }>(req, {
    origin: ORIGIN_RULE,
    region: { type: 'string', maxChars: 64, optional: true },
    lat: { type: 'number', min: -90, max: 90, optional: true },
    lon: { type: 'number', min: -180, max: 180, optional: true },
    limit: { type: 'number', min: 1, max: ROUTE_LIMIT_MAX, integer: true, optional: true },
    twoHop: { type: 'boolean', optional: true },
    exit: { type: 'string', maxChars: 64, optional: true, pattern: /^[A-Za-z0-9._-]{1,64}$/, patternText: 'the relay id of the session’s exit (the ticket’s exitRelay)' },
  });
  if (!q.ok) return q.response;
  const v = q.values;
  if ((v.lat === undefined) !== (v.lon === undefined)) return fail(400, 'invalid_field', 'lat and lon go together', v.lat === undefined ? 'lat' : 'lon');
  const origin = v.origin;
  const prefix = clientPrefix(ctx.clientAddress);
  const reporter = reporterKey(ctx.clientAddress);
  const t = ctx.nowMs;
  const limit = v.limit ?? ROUTE_LIMIT_DEFAULT;
  const ownFigures = reporter !== undefined && prefix !== undefined && ctx.core.hasOwnFigures(prefix, reporter);
  const key = ctx.cache.enabled ? routeCacheKey({ origin, prefix, reporter: ownFigures ? reporter : undefined, region: v.region, lat: v.lat, lon: v.lon, limit, twoHop: v.twoHop, exit: v.exit }) : '';
  const cached = ctx.cache.enabled ? ctx.cache.get(t, prefix ?? '', key) : undefined;
  if (cached) return cached;
  const ranking = ctx.core.route(t, {
    ...(reporter !== undefined ? { reporter } : {}),
    origin,
    client: { ...(prefix ? { prefix } : {}), ...(v.lat !== undefined ? { latitude: v.lat, longitude: v.lon } : {}), ...(v.region !== undefined ? { region: v.region } : {}) },
    limit,
    twoHop: v.twoHop,
    ...(v.exit !== undefined ? { exitRelayId: v.exit } : {}),
  });
  if (!ranking) return fail(404, 'unknown_origin', `origin '${origin}' is not configured here and no relay reports probing it; see GET /v1/origins`, 'origin');
  const json = { origin, clientPrefix: prefix ?? null, generatedAtMs: t, leaseMs: ctx.leaseMs, ...ranking };
  if (!ctx.cache.enabled) return { status: 200, json };
  const answer = cachedAnswer(Buffer.from(JSON.stringify(json), 'utf8'));
  ctx.cache.set(t, prefix ?? '', key, answer);
  return answer;
}

/** A cached answer: the serialized body only; `json` (for in-process callers, never the HTTP path) is parsed from it when read. */
function cachedAnswer(jsonBody: Buffer): ApiResponse {
  return {
    status: 200,
    jsonBody,
    get json(): unknown {
      return JSON.parse(jsonBody.toString('utf8')) as unknown;
    },
  };
}
