/**
 * Tunnel-mode packet bodies that are binary (probes, path challenges, client closes)
 * and the helpers both ends use to build them. The relay core parses them; the SDK
 * (and this repo's tests and bench) build them with the same functions, so the two
 * sides cannot drift.
 *
 * - Probe: body ≥ {@link PROBE_BODY_BYTES_MIN}; bytes 0–7 are the client's stamp
 *   (opaque to the relay). ProbeReply: same length and header fields, bytes 0–7 echoed,
 *   8–15 the relay's receive time and 16–23 its send time (float64 BE, relay
 *   monotonic ms: only their difference means anything to the client), rest zero except,
 *   for a probe body of ≥ {@link PROBE_BODY_BYTES_WITH_STATUS} bytes, the relay's status
 *   byte at {@link PROBE_STATUS_OFFSET} ({@link ProbeStatus}). A body byte rather than a
 *   header flag so that versions mix during a rolling upgrade: an older relay leaves the
 *   byte zero ("nothing to say") and older clients never read it, whereas an unknown
 *   header flag fails the header parse.
 * - PathChallenge: body = 16-byte nonce. PathResponse: body = nonce ‖
 *   HMAC-SHA256(session key, "slipstream-path-v1" ‖ session id (8 B BE) ‖ nonce).
 * - Close from a client: body = first 16 bytes of HMAC-SHA256(session key,
 *   "slipstream-close-v1" ‖ session id), so nobody without the key can end a session.
 *   Close from the relay for a session it holds: body = a msgpack `sessionReject`
 *   with the reason ‖ first 16 bytes of HMAC-SHA256(session key,
 *   "slipstream-relay-close-v1" ‖ session id ‖ the msgpack bytes), so nobody who only
 *   knows a session id can end it. The one unauthenticated relay Close is
 *   `SLIP_ERR_UNKNOWN_SESSION` (the relay has no key for that id) — as a msgpack
 *   `sessionReject`, or as a header-only Close (empty body) answering a datagram too
 *   small for that; clients answer it only by opening the session again, which a
 *   spoofer gains nothing from.
 *
 * Everything that needs no MAC lives in `wire-frames.ts` (no Node API: the browser
 * SDK's core imports it) and is re-exported here; the MACs here use `node:crypto`, and
 * `session-mac.ts` states the bytes they cover for clients that compute them elsewhere.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CLOSE_MAC_LABEL, PATH_MAC_LABEL, RELAY_CLOSE_MAC_LABEL, type HmacSha256 } from './session-mac.js';
import { buildClientCloseWithMac, buildPathResponseWithMac, CLOSE_MAC_BYTES, PATH_MAC_BYTES, PATH_NONCE_BYTES } from './wire-frames.js';

// The builders and parsers that need no MAC (and no Node API), for Node importers in one place.
export * from './wire-frames.js';

/** HMAC-SHA256 with `node:crypto`, synchronous: what Node clients give a `TunnelClient`. */
export const nodeHmacSha256: HmacSha256 = {
  mode: 'sync',
  sign: (key, data) => new Uint8Array(createHmac('sha256', key).update(data).digest()),
};

const PATH_LABEL = PATH_MAC_LABEL;
const CLOSE_LABEL = CLOSE_MAC_LABEL;
const RELAY_CLOSE_LABEL = RELAY_CLOSE_MAC_LABEL;

function sessionIdBytes(high: number, low: number): Buffer {
  const id = Buffer.allocUnsafe(8);
  id.writeUInt32BE(high >>> 0, 0);
  id.writeUInt32BE(low >>> 0, 4);
  return id;
}

/** The MAC a client puts in a PathResponse for `nonce` (32 bytes). */
export function pathResponseMac(sessionKey: Uint8Array, sessionIdHigh: number, sessionIdLow: number, nonce: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', sessionKey).update(PATH_LABEL).update(sessionIdBytes(sessionIdHigh, sessionIdLow)).update(nonce).digest());
}

/** Checks a PathResponse MAC in constant time. */
export function verifyPathResponseMac(sessionKey: Uint8Array, sessionIdHigh: number, sessionIdLow: number, nonce: Uint8Array, mac: Uint8Array): boolean {
  if (mac.length !== PATH_MAC_BYTES) return false;
  return timingSafeEqual(pathResponseMac(sessionKey, sessionIdHigh, sessionIdLow, nonce), mac);
}

/** The 16-byte MAC a client's Close carries. */
export function closeMac(sessionKey: Uint8Array, sessionIdHigh: number, sessionIdLow: number): Uint8Array {
  return new Uint8Array(createHmac('sha256', sessionKey).update(CLOSE_LABEL).update(sessionIdBytes(sessionIdHigh, sessionIdLow)).digest().subarray(0, CLOSE_MAC_BYTES));
}

/** Checks a client Close MAC in constant time. */
export function verifyCloseMac(sessionKey: Uint8Array, sessionIdHigh: number, sessionIdLow: number, mac: Uint8Array): boolean {
  if (mac.length < CLOSE_MAC_BYTES) return false;
  return timingSafeEqual(closeMac(sessionKey, sessionIdHigh, sessionIdLow), mac.subarray(0, CLOSE_MAC_BYTES));
}

/** The 16-byte MAC a relay appends to the body (`reason`, msgpack) of its Close for a session it holds. */
export function relayCloseMac(sessionKey: Uint8Array, sessionIdHigh: number, sessionIdLow: number, reason: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', sessionKey).update(RELAY_CLOSE_LABEL).update(sessionIdBytes(sessionIdHigh, sessionIdLow)).update(reason).digest().subarray(0, CLOSE_MAC_BYTES));
}

/**
 * Checks a relay Close body (reason ‖ MAC) in constant time; returns the reason bytes
 * when the MAC verifies, undefined otherwise (unauthenticated or forged).
 */
export function openRelayClose(sessionKey: Uint8Array, sessionIdHigh: number, sessionIdLow: number, body: Uint8Array): Uint8Array | undefined {
  if (body.length <= CLOSE_MAC_BYTES) return undefined;
  const reason = body.subarray(0, body.length - CLOSE_MAC_BYTES);
  return timingSafeEqual(relayCloseMac(sessionKey, sessionIdHigh, sessionIdLow, reason), body.subarray(body.length - CLOSE_MAC_BYTES)) ? reason : undefined;
}

/** A PathResponse answering the challenge `challengeBody` (the nonce) with the session key. */
export function buildPathResponse(sessionKey: Uint8Array, sessionIdHigh: number, sessionIdLow: number, challengeBody: Uint8Array): Uint8Array {
  const nonce = challengeBody.subarray(0, PATH_NONCE_BYTES);
  return buildPathResponseWithMac(sessionIdHigh, sessionIdLow, nonce, pathResponseMac(sessionKey, sessionIdHigh, sessionIdLow, nonce));
}

/** A client's authenticated Close. */
export function buildClientClose(sessionKey: Uint8Array, sessionIdHigh: number, sessionIdLow: number): Uint8Array {
  return buildClientCloseWithMac(sessionIdHigh, sessionIdLow, closeMac(sessionKey, sessionIdHigh, sessionIdLow));
}
