/**
 * The data-plane packet header: a fixed 24-byte binary layout parsed without
 * allocation. Every tunnel datagram (data, FEC parity, probes, path challenges,
 * control) starts with it.
 *
 * ```
 *  0       1       2       3       4                               12
 *  +-------+-------+-------+-------+-------------------------------+
 *  | magic |version| type  | flags |   session id (64-bit, BE)     |
 *  +-------+-------+-------+-------+-------------------------------+
 *  12              16              20      21      22      23     24
 *  +---------------+---------------+-------+-------+-------+-------+
 *  | sequence (u32)| FEC group(u32)| index |   k   |   r   | rsvd  |
 *  +---------------+---------------+-------+-------+-------+-------+
 * ```
 *
 * - `magic` (0xA5) and `version` make the stateless junk check: a relay drops
 *   anything else before any table lookup.
 * - The session id is random and 64 bits; sessions are keyed by it, never by the
 *   sender's address. It is held as two unsigned 32-bit halves so parsing never
 *   allocates a BigInt.
 * - `sequence` counts the session's packets in one direction, wrapping at 2^32.
 * - FEC fields: the group a shard belongs to, the shard's index in the group, the
 *   group's data count k and parity count r. A packet without FEC has all four 0.
 *   Data shards have index < k, parity shards index ≥ k; k + r ≤ 255 (GF(2^8)).
 * - All multi-byte fields are big-endian (network order).
 */
import { ParseFailure, type ParseFailureValue } from './errors.js';

/** First byte of every Slipstream data-plane packet. */
export const HEADER_MAGIC = 0xa5;
/** The wire version this build speaks. */
export const PROTOCOL_VERSION = 1;
/** Size of the fixed header in bytes. */
export const HEADER_BYTES = 24;
/** Largest UDP payload over IPv4 (65,535 − 8 UDP − 20 IP); anything longer cannot be a datagram of ours. */
export const DATAGRAM_BYTES_MAX = 65_507;
/** Largest k + r in one FEC group: Reed-Solomon over GF(2^8) has at most 255 distinct evaluation points. */
export const FEC_SHARDS_MAX = 255;
/**
 * The parity-count value that marks a sliding-window FEC shard (mode `sw`; its wire
 * mapping is in proto/src/fec/scheme.ts). No Reed-Solomon shard carries it (k ≥ 1 and
 * k + r ≤ {@link FEC_SHARDS_MAX}), so peers that predate `sw` reject such shards.
 */
export const FEC_SLIDING_WINDOW_MARKER = 255;

/** Packet types (byte 2). Values are stable wire constants. */
export const PacketType = {
  /** Application payload, possibly a data shard of an FEC group. */
  Data: 1,
  /** FEC parity shard. */
  Parity: 2,
  /** Control message; the body is msgpack (see control.ts). */
  Control: 3,
  /** RTT/loss probe from a client or relay; the body carries the sender's timestamp. */
  Probe: 4,
  /** Reply to a probe; never larger than the probe it answers. */
  ProbeReply: 5,
  /** Relay → client: prove you hold the session key before your new address is accepted. */
  PathChallenge: 6,
  /** Client → relay: answer to a path challenge, keyed by the session key. */
  PathResponse: 7,
  /** Either side: the session is over (with a reason in the body). */
  Close: 8,
} as const;

/** One of the {@link PacketType} values. */
export type PacketTypeValue = (typeof PacketType)[keyof typeof PacketType];

const PACKET_TYPE_MAX = 8;

/** Flag bits (byte 3). Unknown bits are a parse failure so that they can be given meaning later. */
export const HeaderFlag = {
  /** The packet is a redundant copy (duplication mode); the receiver dedups by sequence. */
  Duplicate: 0x01,
  /** Sent through a relay other than the client's current one (upstream moved to the backup while the current relay is silent, or an FEC repair to the relay its sources went to). Informational: relays forward it like any data. */
  ViaBackup: 0x02,
} as const;

const KNOWN_FLAGS = HeaderFlag.Duplicate | HeaderFlag.ViaBackup;

/**
 * A parsed header. Mutable on purpose: a driver keeps one and parses every packet
 * into it, so the hot path allocates nothing.
 */
export class PacketHeader {
  /** Wire version (currently {@link PROTOCOL_VERSION}). */
  version: number = PROTOCOL_VERSION;
  /** One of {@link PacketType}. */
  type: number = PacketType.Data;
  /** Bitwise OR of {@link HeaderFlag} values. */
  flags = 0;
  /** High 32 bits of the 64-bit session id (unsigned). */
  sessionIdHigh = 0;
  /** Low 32 bits of the 64-bit session id (unsigned). */
  sessionIdLow = 0;
  /** Per-direction packet sequence number, unsigned 32-bit, wrapping. */
  sequence = 0;
  /** FEC group id, unsigned 32-bit; 0 with no FEC. */
  fecGroup = 0;
  /** Index of this shard in its FEC group (0–254). */
  fecIndex = 0;
  /** Data shards in the FEC group (k); 0 means the packet is not FEC-coded. */
  fecDataCount = 0;
  /** Parity shards in the FEC group (r). */
  fecParityCount = 0;

  /** Copies every field from `other`. */
  copyFrom(other: PacketHeader): this {
    this.version = other.version;
    this.type = other.type;
    this.flags = other.flags;
    this.sessionIdHigh = other.sessionIdHigh;
    this.sessionIdLow = other.sessionIdLow;
    this.sequence = other.sequence;
    this.fecGroup = other.fecGroup;
    this.fecIndex = other.fecIndex;
    this.fecDataCount = other.fecDataCount;
    this.fecParityCount = other.fecParityCount;
    return this;
  }
}

/** Big-endian u32 at `offset` (no DataView per packet). */
export function readU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
}

/** Writes `value` as a big-endian u32 at `offset`. */
export function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = (value >>> 16) & 0xff;
  bytes[offset + 2] = (value >>> 8) & 0xff;
  bytes[offset + 3] = value & 0xff;
}

/**
 * Checks the FEC fields for consistency with the packet type. Returns 0 when they
 * are consistent, else {@link ParseFailure.BadFecFields}.
 */
function checkFecFields(type: number, group: number, index: number, k: number, r: number): 0 | ParseFailureValue {
  if (k === 0) {
    // Not FEC-coded: nothing else may be set, and parity without a group is meaningless.
    return group === 0 && index === 0 && r === 0 && type !== PacketType.Parity ? 0 : ParseFailure.BadFecFields;
  }
  if (type !== PacketType.Data && type !== PacketType.Parity) return ParseFailure.BadFecFields;
  if (r === FEC_SLIDING_WINDOW_MARKER) {
    // Sliding-window FEC (proto/src/fec/scheme.ts): a source is Data, index 0, k 1; a repair is Parity, index 255.
    return (type === PacketType.Data ? index === 0 && k === 1 : index === FEC_SHARDS_MAX) ? 0 : ParseFailure.BadFecFields;
  }
  if (k + r > FEC_SHARDS_MAX) return ParseFailure.BadFecFields;
  if (type === PacketType.Data ? index >= k : index < k || index >= k + r) return ParseFailure.BadFecFields;
  return 0;
}

/**
 * The stateless junk check, cheap enough to run before any lookup: length, magic,
 * version. Returns 0 when the packet may be one of ours, else the failure.
 */
export function quickCheck(bytes: Uint8Array): 0 | ParseFailureValue {
  if (bytes.length < HEADER_BYTES) return ParseFailure.TooShort;
  if (bytes[0] !== HEADER_MAGIC) return ParseFailure.BadMagic;
  if (bytes[1] !== PROTOCOL_VERSION) return ParseFailure.BadVersion;
  return 0;
}

/**
 * Parses the header at the start of `bytes` into `out` without allocating.
 * Returns 0 on success (the payload is `bytes.subarray(HEADER_BYTES)`), otherwise a
 * {@link ParseFailure} code; `out` is then unspecified. Never throws.
 */
export function parseHeader(bytes: Uint8Array, out: PacketHeader): 0 | ParseFailureValue {
  const quick = quickCheck(bytes);
  if (quick !== 0) return quick;
  if (bytes.length > DATAGRAM_BYTES_MAX) return ParseFailure.TooLong;
  const type = bytes[2]!;
  if (type === 0 || type > PACKET_TYPE_MAX) return ParseFailure.BadType;
  const flags = bytes[3]!;
  if ((flags & ~KNOWN_FLAGS) !== 0 || bytes[23] !== 0) return ParseFailure.BadReserved;
  const group = readU32(bytes, 16);
  const index = bytes[20]!;
  const k = bytes[21]!;
  const r = bytes[22]!;
  const fec = checkFecFields(type, group, index, k, r);
  if (fec !== 0) return fec;
  out.version = bytes[1]!;
  out.type = type;
  out.flags = flags;
  out.sessionIdHigh = readU32(bytes, 4);
  out.sessionIdLow = readU32(bytes, 8);
  out.sequence = readU32(bytes, 12);
  out.fecGroup = group;
  out.fecIndex = index;
  out.fecDataCount = k;
  out.fecParityCount = r;
  return 0;
}

/**
 * Writes `header` into `out` at `offset` and returns {@link HEADER_BYTES}.
 * Programmer errors (values out of range, inconsistent FEC fields, too little room)
 * are assertions: they throw RangeError, because they are bugs in our code, not
 * input from the network.
 */
export function writeHeader(header: PacketHeader, out: Uint8Array, offset = 0): number {
  if (out.length - offset < HEADER_BYTES) throw new RangeError(`writeHeader: need ${HEADER_BYTES} bytes at offset ${offset}, have ${out.length - offset}`);
  if (header.type < 1 || header.type > PACKET_TYPE_MAX || !Number.isInteger(header.type)) throw new RangeError(`writeHeader: bad packet type ${header.type}`);
  if ((header.flags & ~KNOWN_FLAGS) !== 0) throw new RangeError(`writeHeader: unknown flag bits 0x${header.flags.toString(16)}`);
  if (checkFecFields(header.type, header.fecGroup >>> 0, header.fecIndex, header.fecDataCount, header.fecParityCount) !== 0 || header.fecIndex > 255 || header.fecDataCount > 255 || header.fecParityCount > 255) {
    throw new RangeError(`writeHeader: inconsistent FEC fields (group ${header.fecGroup}, index ${header.fecIndex}, k ${header.fecDataCount}, r ${header.fecParityCount}) for type ${header.type}`);
  }
  out[offset] = HEADER_MAGIC;
  out[offset + 1] = PROTOCOL_VERSION;
  out[offset + 2] = header.type;
  out[offset + 3] = header.flags;
  writeU32(out, offset + 4, header.sessionIdHigh);
  writeU32(out, offset + 8, header.sessionIdLow);
  writeU32(out, offset + 12, header.sequence);
  writeU32(out, offset + 16, header.fecGroup);
  out[offset + 20] = header.fecIndex;
  out[offset + 21] = header.fecDataCount;
  out[offset + 22] = header.fecParityCount;
  out[offset + 23] = 0;
  return HEADER_BYTES;
}

/** The session id as 16 lowercase hex digits, for logs, maps and tickets (allocates; not for the hot path). */
export function sessionIdToHex(high: number, low: number): string {
  return (high >>> 0).toString(16).padStart(8, '0') + (low >>> 0).toString(16).padStart(8, '0');
}

/**
 * Parses 16 hex digits into `[high, low]`. Returns undefined for anything else
 * (wrong length, non-hex characters).
 */
export function sessionIdFromHex(hex: string): [high: number, low: number] | undefined {
  if (!/^[0-9a-fA-F]{16}$/.test(hex)) return undefined;
  return [Number.parseInt(hex.slice(0, 8), 16) >>> 0, Number.parseInt(hex.slice(8), 16) >>> 0];
}
