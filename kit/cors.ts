/**
 * CORS for the HTTP endpoints browser pages call from another origin: the relay's
 * WebRTC signaling (`tunnel.webrtc.allowOrigins`) and the coordinator's browser-facing
 * API (`http.corsOrigins`) read their list of page origins and answer with the same
 * helpers here.
 */
import type { ConfigPath, ConfigReader } from './config.js';

/** A page origin as configured: `scheme://host[:port]` (http or https, no path), or `*` (any page). */
export const CORS_ORIGIN_PATTERN = /^(\*|https?:\/\/[^/\s]+)$/;
/** Page origins one list may hold at most. */
export const CORS_ORIGINS_MAX = 256;

/**
 * The list of page origins at `path` ([] when absent: no CORS headers, same-origin
 * pages only). Throws the reader's ConfigError naming the item that is not an origin.
 */
export function readCorsOrigins(reader: ConfigReader, path: ConfigPath): string[] {
  const count = reader.sequenceLength(path, { optional: true, maxItems: CORS_ORIGINS_MAX });
  const origins: string[] = [];
  for (let i = 0; i < count; i++) origins.push(reader.string([...path, i], { pattern: CORS_ORIGIN_PATTERN, patternText: "a page origin such as https://game.example.com (scheme://host[:port], no path) or '*'" }));
  return origins;
}

/**
 * The response headers that let a page at `origin` (the request's `Origin` header) read
 * the answer, or undefined when `allowed` does not list it (or the request has no
 * `Origin`): `access-control-allow-origin` (`*` when the list has `*`, else the origin
 * itself with `vary: origin`).
 */
export function corsAllowHeaders(allowed: readonly string[], origin: string | undefined): Record<string, string> | undefined {
  if (origin === undefined || allowed.length === 0) return undefined;
  if (allowed.includes('*')) return { 'access-control-allow-origin': '*' };
  if (!allowed.includes(origin)) return undefined;
  return { 'access-control-allow-origin': origin, vary: 'origin' };
}

/** How long a browser may cache a preflight answer, s. */
export const CORS_PREFLIGHT_MAX_AGE_S = 600;
