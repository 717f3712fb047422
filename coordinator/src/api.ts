/**
 * The coordinator HTTP API's request and response shapes as the service sees them,
 * its error answers, and the field rules request bodies and query strings are checked
 * against (validate.ts does the checking). coordinator/README.md documents every field.
 */
import { ORIGIN_RULE } from '../../proto/src/api/validate.js';
import { PLAYER_ID_CHARS_MAX, PLAYER_ID_PATTERN } from '../../proto/src/proxy-protocol.js';
import { BODY_BYTES_MAX } from './constants.js';
import type { TicketPolicy } from './core/ticket-policy.js';
import { check, type FieldRule, type Invalid } from './validate.js';

/** A request as the API sees it. */
export interface ApiRequest {
  /** Upper-case method. */
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** `authorization` header, if any. */
  readonly authorization?: string;
  /** `x-forwarded-for` header, if any (used only with `trustForwardedFor`). */
  readonly forwardedFor?: string;
  /** Raw body bytes (empty when none). */
  readonly body: Uint8Array;
  /** The peer's address as the socket reports it. */
  readonly remoteAddress: string;
  /** Aborted when the client goes away (long polls stop waiting). */
  readonly signal?: AbortSignal;
}

/** A response: JSON (`json`) or text (`text` with `contentType`). */
export interface ApiResponse {
  readonly status: number;
  readonly json?: unknown;
  /** `json` already serialized as UTF-8 (a cached route answer keeps only this: no object graph for the GC to walk, no encoding per request). */
  readonly jsonBody?: Buffer;
  readonly text?: string;
  readonly contentType?: string;
}

/** Stable error codes of the HTTP API. */
export type ApiErrorCode =
  | 'bad_json'
  | 'invalid_field'
  | 'unknown_origin'
  | 'unknown_relay'
  | 'relay_not_allowed'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'body_too_large'
  | 'rate_limited'
  | 'no_exit_relay'
  | 'identity_required'
  | 'unknown_identity'
  | 'identity_key_mismatch'
  | 'identity_revoked'
  | 'invalid_token'
  | 'store_unavailable';

/** An error answer: `{"error":{"code","field"?,"reason","message"}}` with `status`. */
export function fail(status: number, code: ApiErrorCode, reason: string, field?: string): ApiResponse {
  return { status, json: { error: { code, ...(field !== undefined ? { field } : {}), reason, message: field !== undefined ? `${field}: ${reason}` : reason } } };
}

/** The 400 `invalid_field` answer for a value a field rule refused. */
export function invalid(bad: Invalid): ApiResponse {
  return fail(400, 'invalid_field', bad.reason, bad.field);
}

/** A session id as `DELETE /v1/session/:id` takes it: 16 lowercase hex digits (8 random bytes). */
export const SESSION_ID = /^[0-9a-f]{16}$/;
// The report bodies' rules are the API contract's (proto/src/api/validate.ts), declared once.
export { CLIENT_REPORTS_RULE, ORIGIN_RULE, RELAY_ID_RULE, RELAY_REPORTS_RULE } from '../../proto/src/api/validate.js';

/** The field rules of a `POST /v1/session` body: ranges from the ticket policy. */
export function sessionRequestRule(policy: TicketPolicy): FieldRule {
  return {
    type: 'object',
    fields: {
      origin: ORIGIN_RULE,
      ttlS: { type: 'number', min: 1, max: policy.ttlSMax, integer: true, optional: true },
      exitRelay: { type: 'string', maxChars: 64, optional: true, pattern: /^[A-Za-z0-9._-]{1,64}$/, patternText: "a relay id (letters, digits, . _ -) or 'auto'" },
      playerId: { type: 'string', maxChars: PLAYER_ID_CHARS_MAX, optional: true, pattern: PLAYER_ID_PATTERN, patternText: '1–128 printable ASCII characters without spaces' },
      limits: {
        type: 'object',
        optional: true,
        fields: {
          packetsPerSecond: { type: 'number', min: 1, max: policy.packetsPerSecondMax, integer: true, optional: true },
          bytesPerSecond: { type: 'number', min: policy.bytesPerSecondMin, max: policy.bytesPerSecondMax, integer: true, optional: true },
        },
      },
    },
  };
}

/** The body as a JSON object (at most {@link BODY_BYTES_MAX} bytes), or the 413/400 answer. */
export function parseBody(req: ApiRequest): { ok: true; value: Record<string, unknown> } | { ok: false; response: ApiResponse } {
  if (req.body.length > BODY_BYTES_MAX) return { ok: false, response: fail(413, 'body_too_large', `${req.body.length} bytes; at most ${BODY_BYTES_MAX}`, '<body>') };
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength).toString('utf8'));
  } catch (error) {
    return { ok: false, response: fail(400, 'bad_json', `not valid JSON: ${(error as Error).message}`, '<body>') };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { ok: false, response: fail(400, 'invalid_field', 'expected a JSON object', '<body>') };
  return { ok: true, value: value as Record<string, unknown> };
}

/**
 * The query parameters checked against `rules` (numbers and booleans parsed from their
 * text; unknown, repeated and missing required ones refused), or the 400 answer.
 */
export function parseQuery<T>(req: ApiRequest, rules: Record<string, FieldRule>): { ok: true; values: T } | { ok: false; response: ApiResponse } {
  const values: Record<string, unknown> = {};
  for (const [key, raw] of req.query) {
    if (!Object.prototype.hasOwnProperty.call(rules, key)) return { ok: false, response: fail(400, 'invalid_field', `unknown query parameter; expected only ${Object.keys(rules).join(', ')}`, key) };
    if (Object.prototype.hasOwnProperty.call(values, key)) return { ok: false, response: fail(400, 'invalid_field', 'given more than once', key) };
    const rule = rules[key]!;
    let value: unknown = raw;
    if (rule.type === 'number') value = raw.trim() === '' ? Number.NaN : Number(raw);
    else if (rule.type === 'boolean') value = raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
    const bad = check(value, rule, key);
    if (bad) return { ok: false, response: invalid(bad) };
    values[key] = value;
  }
  for (const [key, rule] of Object.entries(rules)) {
    if (!rule.optional && values[key] === undefined) return { ok: false, response: invalid({ field: key, reason: 'missing; required query parameter' }) };
  }
  return { ok: true, values: values as T };
}

/** `decodeURIComponent`, or `text` unchanged when it is not valid percent-encoding. */
export function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
