/**
 * CORS on the coordinator's browser-facing endpoints (`http.corsOrigins`,
 * coordinator/README.md "Browser pages (CORS)"): a page served from another origin may
 * call what the browser SDK's `connect()` and a page's own code call, and nothing else.
 * Relay-facing (`/v1/relays/…`, `/v1/revocations`), admin (`/v1/admin/…`) and operator
 * (`/`, `/health`, `/metrics`, `/v1/fleet`) endpoints never answer with CORS headers.
 */
import { corsAllowHeaders, CORS_PREFLIGHT_MAX_AGE_S } from '../../kit/cors.js';
import { fail, type ApiResponse } from './api.js';

/** The paths pages may call from an allowed origin; `/v1/session/:id` is matched by prefix. */
export const BROWSER_PATHS: readonly string[] = ['/v1/route', '/v1/reports', '/v1/session', '/v1/keys', '/v1/origins'];

/** Whether `path` is one of {@link BROWSER_PATHS} (or `/v1/session/:id`). */
export function isBrowserPath(path: string): boolean {
  return BROWSER_PATHS.includes(path) || (path.startsWith('/v1/session/') && path.length > '/v1/session/'.length);
}

/** What CORS asks of one request. */
export interface CorsDecision {
  /** A preflight (`OPTIONS` on a browser path): answer this and nothing else. */
  readonly preflight?: { readonly response: ApiResponse; readonly headers: Readonly<Record<string, string>> };
  /** Headers to add to the answer (an allowed origin on a browser path), or undefined. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * CORS for a request: `method`, `path` (no query string), the `Origin` header, against
 * `corsOrigins`. A preflight from an origin not listed is answered 403 `forbidden`
 * without CORS headers (so the browser refuses the page's call); any other request
 * gets CORS headers only from a listed origin on a browser path.
 */
export function corsDecision(corsOrigins: readonly string[], method: string, path: string, origin: string | undefined): CorsDecision {
  if (!isBrowserPath(path)) return {};
  const headers = corsAllowHeaders(corsOrigins, origin);
  if (method !== 'OPTIONS') return headers !== undefined ? { headers } : {};
  if (headers === undefined) {
    const reason =
      origin === undefined
        ? 'a CORS preflight without an Origin header'
        : corsOrigins.length === 0
          ? `origin '${origin.slice(0, 200)}' may not call this coordinator: http.corsOrigins is empty (same-origin pages only)`
          : `origin '${origin.slice(0, 200)}' is not in http.corsOrigins`;
    return { preflight: { response: fail(403, 'forbidden', reason, 'origin'), headers: {} } };
  }
  return {
    preflight: {
      response: { status: 204, text: '' },
      headers: {
        ...headers,
        'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
        'access-control-allow-headers': 'authorization, content-type',
        'access-control-max-age': String(CORS_PREFLIGHT_MAX_AGE_S),
      },
    },
  };
}
