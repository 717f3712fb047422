/**
 * The half of `wire.ts` that needs no crypto library and no Node API: packet builders,
 * probe bodies, the `fecStats` message, and the PathResponse / client Close built from a
 * MAC computed elsewhere (`session-mac.ts` says what it covers). The browser SDK's core
 * imports this; `wire.ts` re-exports all of it beside the `node:crypto` MACs, so Node
 * importers keep one module. Layouts: the module comment of `wire.ts`.
 */
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

/** A PathResponse answering the challenge `challengeBody` (its first {@link PATH_NONCE_BYTES} are the nonce) with `mac` ({@link PATH_MAC_BYTES}, over `pathMacInput`). */
export function buildPathResponseWithMac(sessionIdHigh: number, sessionIdLow: number, challengeBody: Uint8Array, mac: Uint8Array): Uint8Array {
  const body = new Uint8Array(PATH_NONCE_BYTES + PATH_MAC_BYTES);
  body.set(challengeBody.subarray(0, PATH_NONCE_BYTES), 0);
  body.set(mac.subarray(0, PATH_MAC_BYTES), PATH_NONCE_BYTES);
  return buildPacket(PacketType.PathResponse, sessionIdHigh, sessionIdLow, 0, body);
}

/** A client's Close carrying `mac` (its first {@link CLOSE_MAC_BYTES}, over `closeMacInput`). */
export function buildClientCloseWithMac(sessionIdHigh: number, sessionIdLow: number, mac: Uint8Array): Uint8Array {
  return buildPacket(PacketType.Close, sessionIdHigh, sessionIdLow, 0, mac.subarray(0, CLOSE_MAC_BYTES));
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
