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
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { encodeControl, type ControlMessage, type ControlMessageFields } from './control.js';
import type { FecIntervalStats } from './fec/index.js';
import { HEADER_BYTES, PacketHeader, PacketType, writeHeader } from './header.js';

/** Bytes of a path-challenge nonce. */
export const PATH_NONCE_BYTES = 16;
/** Bytes of the HMAC-SHA256 in a path response. */
export const PATH_MAC_BYTES = 32;
/** Probe bodies carry the client's 8-byte stamp, then room for the relay's two 8-byte stamps. */
export const PROBE_BODY_BYTES_MIN = 24;
/** Bytes of the MAC that authenticates a Close (a client's, or a relay's for a session it holds). */
export const CLOSE_MAC_BYTES = 16;

const PATH_LABEL = Buffer.from('slipstream-path-v1', 'ascii');
const CLOSE_LABEL = Buffer.from('slipstream-close-v1', 'ascii');
const RELAY_CLOSE_LABEL = Buffer.from('slipstream-relay-close-v1', 'ascii');

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

/** Builds one tunnel packet: a header of `type` for the session and `body`. Allocates (not for per-packet use in the relay). */
export function buildPacket(type: number, sessionIdHigh: number, sessionIdLow: number, sequence: number, body: Uint8Array): Uint8Array {
  const header = new PacketHeader();
  header.type = type;
  header.sessionIdHigh = sessionIdHigh >>> 0;
  header.sessionIdLow = sessionIdLow >>> 0;
  header.sequence = sequence >>> 0;
  const out = new Uint8Array(HEADER_BYTES + body.length);
  writeHeader(header, out);
  out.set(body, HEADER_BYTES);
  return out;
}

/** A Control packet carrying `message`. */
export function buildControlPacket(sessionIdHigh: number, sessionIdLow: number, message: ControlMessage): Uint8Array {
  return buildPacket(PacketType.Control, sessionIdHigh, sessionIdLow, 0, encodeControl(message));
}

/** A PathResponse answering the challenge `challengeBody` (the nonce) with the session key. */
export function buildPathResponse(sessionKey: Uint8Array, sessionIdHigh: number, sessionIdLow: number, challengeBody: Uint8Array): Uint8Array {
  const nonce = challengeBody.subarray(0, PATH_NONCE_BYTES);
  const body = new Uint8Array(PATH_NONCE_BYTES + PATH_MAC_BYTES);
  body.set(nonce, 0);
  body.set(pathResponseMac(sessionKey, sessionIdHigh, sessionIdLow, nonce), PATH_NONCE_BYTES);
  return buildPacket(PacketType.PathResponse, sessionIdHigh, sessionIdLow, 0, body);
}

/** Probe bodies at least this long (bytes) get the relay's status byte in the reply; the SDK's are this long, relay mesh probes are not. */
export const PROBE_BODY_BYTES_WITH_STATUS = 32;
/** Where the relay's status byte sits in a ProbeReply body (bytes from the body's start). */
export const PROBE_STATUS_OFFSET = 24;
/** Bits of a ProbeReply's status byte. */
export const ProbeStatus = {
  /**
   * The relay holds no session with the probe's session id (it restarted, or swept it).
   * A client whose session there is open reopens it, so a restart shorter than its
   * silence timers is noticed by the next probe even when every Close answering its
   * data is lost. Unauthenticated, like that Close: all it can trigger is a reopen, and
   * (as for the Close) the client heeds it only from the address it probed.
   */
  UnknownSession: 0x01,
} as const;

/** A Probe with the client's 8-byte stamp `stampMs` (float64) and `bodyBytes` of body (≥ 24). */
export function buildProbe(sessionIdHigh: number, sessionIdLow: number, sequence: number, stampMs: number, bodyBytes = PROBE_BODY_BYTES_MIN): Uint8Array {
  const body = new Uint8Array(Math.max(PROBE_BODY_BYTES_MIN, bodyBytes));
  new DataView(body.buffer).setFloat64(0, stampMs);
  return buildPacket(PacketType.Probe, sessionIdHigh, sessionIdLow, sequence, body);
}

/** What a ProbeReply says: the client's stamp echoed and the relay's receive/send times (relay ms). */
export interface ProbeReplyFields {
  readonly clientStampMs: number;
  readonly relayReceiveMs: number;
  readonly relaySendMs: number;
  /** The status byte said {@link ProbeStatus.UnknownSession} (false when the reply has no status byte). */
  readonly sessionUnknown: boolean;
}

/** Reads a ProbeReply's body (the bytes after the header); undefined when too short. */
export function parseProbeReplyBody(body: Uint8Array): ProbeReplyFields | undefined {
  if (body.length < PROBE_BODY_BYTES_MIN) return undefined;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const status = body.length >= PROBE_BODY_BYTES_WITH_STATUS ? body[PROBE_STATUS_OFFSET]! : 0;
  return { clientStampMs: view.getFloat64(0), relayReceiveMs: view.getFloat64(8), relaySendMs: view.getFloat64(16), sessionUnknown: (status & ProbeStatus.UnknownSession) !== 0 };
}

/** A client's authenticated Close. */
export function buildClientClose(sessionKey: Uint8Array, sessionIdHigh: number, sessionIdLow: number): Uint8Array {
  return buildPacket(PacketType.Close, sessionIdHigh, sessionIdLow, 0, closeMac(sessionKey, sessionIdHigh, sessionIdLow));
}

const U32_MAX = 0xffff_ffff;
const clampCount = (n: number): number => Math.min(U32_MAX, Math.max(0, Math.round(n)));

/** The `fecStats` control message that carries a receiver's interval stats to the far sender. */
export function fecStatsMessage(stats: FecIntervalStats): { type: 'fecStats' } & ControlMessageFields['fecStats'] {
  return {
    type: 'fecStats',
    intervalMs: Math.min(3_600_000, Math.max(0, stats.endMs - stats.startMs)),
    received: clampCount(stats.received),
    recovered: clampCount(stats.recovered),
    unrecoverable: clampCount(stats.unrecoverable),
    duplicates: clampCount(stats.duplicates),
    parityReceived: clampCount(stats.parityReceived),
    wirePackets: clampCount(stats.wirePackets),
    wireLost: clampCount(Math.min(stats.wireLost, stats.wirePackets)),
    lossBursts: clampCount(stats.lossBursts),
  };
}

/**
 * The far receiver's stats as this side's {@link FecIntervalStats}, placed on this
 * side's clock as the interval that ended now (the controller only uses its length).
 */
export function fecStatsFromMessage(nowMs: number, m: ControlMessageFields['fecStats']): FecIntervalStats {
  const wireLost = Math.min(m.wireLost, m.wirePackets);
  return {
    startMs: nowMs - m.intervalMs,
    endMs: nowMs,
    received: m.received,
    recovered: m.recovered,
    unrecoverable: m.unrecoverable,
    duplicates: m.duplicates,
    parityReceived: m.parityReceived,
    wirePackets: m.wirePackets,
    wireLost,
    lossBursts: m.lossBursts,
    lossRate: m.wirePackets === 0 ? 0 : wireLost / m.wirePackets,
    meanBurstPackets: m.lossBursts === 0 ? 0 : wireLost / m.lossBursts,
  };
}
