/**
 * Tunnel packets the relay builds itself: control packets (accept, reject, Close, path
 * challenge) with a fresh buffer each (they are rare), and data headers written without
 * `writeHeader`'s assertions (fields the core set are valid by construction).
 */
import { encodeControl } from '../../../../proto/src/control.js';
import { HEADER_BYTES, HEADER_MAGIC, PacketHeader, PROTOCOL_VERSION, PacketType } from '../../../../proto/src/header.js';
import type { RelayContext } from '../context.js';
import type { TunnelSession } from './session.js';

/** Builds the relay's own tunnel packets; one per core (it reuses one header object). */
export class TunnelPackets {
  /** Scratch header for packets the core writes (one at a time). */
  readonly outHeader = new PacketHeader();

  constructor(private readonly ctx: RelayContext) {}

  /** A header-plus-body packet of `type` for session (`high`, `low`), sequence 0, no FEC fields. */
  controlPacket(type: number, high: number, low: number, body: Uint8Array): Uint8Array {
    const h = this.outHeader;
    h.type = type;
    h.flags = 0;
    h.sessionIdHigh = high;
    h.sessionIdLow = low;
    h.sequence = 0;
    h.fecGroup = h.fecIndex = h.fecDataCount = h.fecParityCount = 0;
    const out = new Uint8Array(HEADER_BYTES + body.length);
    writeTunnelHeader(h, out);
    out.set(body, HEADER_BYTES);
    return out;
  }

  /** The session's `sessionAccept`; an exit (a session with validated paths) names itself in it. */
  acceptPacket(session: TunnelSession): Uint8Array {
    const exit = session.paths !== undefined ? this.ctx.config.tunnel?.relayId : undefined;
    return this.controlPacket(PacketType.Control, session.idHigh, session.idLow, encodeControl({ type: 'sessionAccept', sessionId: session.idHex, fecMode: session.fecMode, ...(exit !== undefined ? { exit } : {}) }));
  }
}

/** Writes a header the core built itself (fields known valid), without writeHeader's assertion cost per packet. */
export function writeTunnelHeader(h: PacketHeader, out: Uint8Array): void {
  out[0] = HEADER_MAGIC;
  out[1] = PROTOCOL_VERSION;
  out[2] = h.type;
  out[3] = h.flags;
  writeU32(out, 4, h.sessionIdHigh);
  writeU32(out, 8, h.sessionIdLow);
  writeU32(out, 12, h.sequence);
  writeU32(out, 16, h.fecGroup);
  out[20] = h.fecIndex;
  out[21] = h.fecDataCount;
  out[22] = h.fecParityCount;
  out[23] = 0;
}

function writeU32(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value >>> 24;
  out[offset + 1] = (value >>> 16) & 0xff;
  out[offset + 2] = (value >>> 8) & 0xff;
  out[offset + 3] = value & 0xff;
}
