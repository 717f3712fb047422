/**
 * Telling an origin the player's real address: PROXY protocol v2 (HAProxy's spec,
 * `proxy-protocol.txt` §2.2, for TCP streams and — one header per datagram — for UDP)
 * and Cloudflare's 38-byte Simple Proxy Protocol (SPP) for UDP.
 *
 * The relay encodes; game servers written in Node decode with {@link parseProxyHeader}
 * (either format, detected by its signature) or the format-specific parsers. Parsers
 * never throw, whatever the bytes: a bad header is a typed {@link ProxyParseResult}.
 *
 * PROXY v2 layout (all big-endian):
 * ```
 * 12 B signature  \r\n\r\n\0\r\nQUIT\n
 *  1 B version(0x2)<<4 | command (0x0 LOCAL, 0x1 PROXY)
 *  1 B family<<4 | transport   (family 1 IPv4, 2 IPv6; transport 1 STREAM, 2 DGRAM)
 *  2 B length of what follows (addresses + TLVs)
 *  IPv4: src 4, dst 4, src port 2, dst port 2 (12 B)   IPv6: 16, 16, 2, 2 (36 B)
 * ```
 * TLVs may follow the address block (type 1 B, length 2 B, value), inside the length.
 * Slipstream's tunnel sends one of its own, {@link PROXY_V2_TLV_PLAYER_ID} (the ticket's
 * player id, in HAProxy's custom range 0xE0–0xEF), and, when it does not know the
 * player's address, the PROXY command with family UNSPEC (`0x00`): no address block,
 * the TLVs only ({@link encodeProxyV2Unspec}).
 *
 * SPP layout: magic `0x56EC`, client address (16 B, IPv4 as `::ffff:a.b.c.d`),
 * proxy address (16 B), client port (2 B), proxy port (2 B); the payload follows.
 */
import type { Endpoint } from './transport.js';

/** The 12-byte PROXY v2 signature (§2.2). */
export const PROXY_V2_SIGNATURE: Uint8Array = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
/** Bytes before the addresses: signature, version/command, family/transport, length. */
export const PROXY_V2_FIXED_BYTES = 16;
/** A whole PROXY v2 header for IPv4 (no TLVs). */
export const PROXY_V2_IPV4_BYTES = 28;
/** A whole PROXY v2 header for IPv6 (no TLVs). */
export const PROXY_V2_IPV6_BYTES = 52;
/** Largest PROXY v2 header we accept (fixed part + the 16-bit length's maximum). */
export const PROXY_V2_BYTES_MAX = PROXY_V2_FIXED_BYTES + 0xffff;
/**
 * PROXY v2 TLV type of the player id (the `playerId` of the session's ticket, printable
 * ASCII, 1–{@link PLAYER_ID_CHARS_MAX} bytes): the first of HAProxy's custom range
 * (`PP2_TYPE_MIN_CUSTOM`, 0xE0–0xEF), which HAProxy itself never sends.
 */
export const PROXY_V2_TLV_PLAYER_ID = 0xe0;
/** Longest player id, characters (= bytes: printable ASCII, no space). */
export const PLAYER_ID_CHARS_MAX = 128;
/** What a player id may hold: 1–128 printable ASCII characters, no space (ids, not names). */
export const PLAYER_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;
/** The SPP magic number (first two bytes). */
export const SPP_MAGIC = 0x56ec;
/** Size of a Simple Proxy Protocol header. */
export const SPP_BYTES = 38;

/** Which header a result came from. */
export type ProxyFormat = 'proxy-v2' | 'spp';

/** Why a proxy header was refused. Stable strings, usable as metric labels. */
export type ProxyParseFailure =
  /** More bytes are needed (a TCP stream whose header is still arriving); `bytesNeeded` says how many in total. */
  | 'incomplete'
  /** Neither signature matches. */
  | 'no-signature'
  /** PROXY v2 with a version nibble other than 2, or a command other than LOCAL/PROXY. */
  | 'bad-version'
  /** An address family or transport this parser does not know, or a length too small for it. */
  | 'bad-family'
  /** PROXY v2 TLVs that overrun the header's length, or a player id TLV that is not 1–128 printable ASCII bytes. */
  | 'bad-tlv';

/** What a parsed header says. */
export interface ProxyHeader {
  /** The format the header was in. */
  readonly format: ProxyFormat;
  /** `false` for a PROXY v2 LOCAL command (a health check by the proxy itself: no client address). */
  readonly proxied: boolean;
  /** `tcp` or `udp` (PROXY v2 says; SPP is always `udp`). */
  readonly transport: 'tcp' | 'udp';
  /**
   * The player's address as the relay saw it. Undefined for LOCAL, and for a PROXY v2
   * UNSPEC header (`proxied` true): a player the relay forwards for without knowing
   * its address (relay/README.md, "What the origin sees").
   */
  readonly source: Endpoint | undefined;
  /** The address the player sent to (the relay's listening address; undefined for LOCAL and UNSPEC). */
  readonly destination: Endpoint | undefined;
  /** The player id of the session's ticket (PROXY v2 TLV {@link PROXY_V2_TLV_PLAYER_ID}); undefined when absent, always for SPP. */
  readonly playerId: string | undefined;
  /** Bytes the header occupies: the application payload starts here. */
  readonly headerBytes: number;
}

/** Result of the parsers: the header, or why not (with the total size needed when incomplete). */
export type ProxyParseResult = { ok: true; header: ProxyHeader } | { ok: false; failure: ProxyParseFailure; bytesNeeded?: number };

// ---- address literals (no node:net in proto/src: this must stay sans-IO) ----

/** Parses an IPv4 dotted quad into 4 bytes at `out[offset]`; returns false when it is not one. */
function parseIpv4Into(text: string, out: Uint8Array, offset: number): boolean {
  const parts = text.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!/^\d{1,3}$/.test(part)) return false;
    const value = Number(part);
    if (value > 255) return false;
    out[offset + i] = value;
  }
  return true;
}

/** Parses an IPv6 literal (with `::` and an optional trailing dotted quad) into 16 bytes; false when it is not one. */
function parseIpv6Into(text: string, out: Uint8Array, offset: number): boolean {
  let body = text;
  const zone = body.indexOf('%');
  if (zone !== -1) body = body.slice(0, zone);
  if (body.length < 2 || body.length > 45) return false;
  const words: number[] = [];
  let tail: number[] = [];
  const halves = body.split('::');
  if (halves.length > 2) return false;
  const parseGroup = (group: string, into: number[], allowV4: boolean): boolean => {
    if (group === '') return true;
    const pieces = group.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (allowV4 && i === pieces.length - 1 && piece.includes('.')) {
        const v4 = new Uint8Array(4);
        if (!parseIpv4Into(piece, v4, 0)) return false;
        into.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return false;
      into.push(Number.parseInt(piece, 16));
    }
    return true;
  };
  if (halves.length === 2) {
    if (!parseGroup(halves[0]!, words, false) || !parseGroup(halves[1]!, tail, true)) return false;
    if (words.length + tail.length > 7) return false;
    const zeros = 8 - words.length - tail.length;
    for (let i = 0; i < zeros; i++) words.push(0);
    words.push(...tail);
    tail = [];
  } else {
    if (!parseGroup(body, words, true) || words.length !== 8) return false;
  }
  for (let i = 0; i < 8; i++) {
    out[offset + 2 * i] = words[i]! >>> 8;
    out[offset + 2 * i + 1] = words[i]! & 0xff;
  }
  return true;
}

/** Whether 16 bytes at `offset` are an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`). */
function isV4Mapped(bytes: Uint8Array, offset: number): boolean {
  for (let i = 0; i < 10; i++) if (bytes[offset + i] !== 0) return false;
  return bytes[offset + 10] === 0xff && bytes[offset + 11] === 0xff;
}

function formatIpv4(bytes: Uint8Array, offset: number): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** RFC 5952 text for 16 bytes: lowercase, longest zero run (≥ 2 words) as `::`. */
function formatIpv6(bytes: Uint8Array, offset: number): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[offset + 2 * i]! << 8) | bytes[offset + 2 * i + 1]!);
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength && j - i >= 2) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string => words.slice(from, to).map((w) => w.toString(16)).join(':');
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/**
 * Writes `address` as 16 bytes (IPv4 as IPv4-mapped IPv6). Returns false when
 * `address` is not an IP literal.
 */
export function writeIpAs16(address: string, out: Uint8Array, offset: number): boolean {
  if (parseIpv4Into(address, out, offset + 12)) {
    out.fill(0, offset, offset + 10);
    out[offset + 10] = 0xff;
    out[offset + 11] = 0xff;
    return true;
  }
  return parseIpv6Into(address, out, offset);
}

/** Text of the address in 16 bytes at `offset`: dotted quad for IPv4-mapped ones, RFC 5952 otherwise. */
export function formatIp16(bytes: Uint8Array, offset: number): string {
  return isV4Mapped(bytes, offset) ? formatIpv4(bytes, offset + 12) : formatIpv6(bytes, offset);
}

function writeU16(out: Uint8Array, offset: number, value: number): void {
  out[offset] = (value >>> 8) & 0xff;
  out[offset + 1] = value & 0xff;
}

function readU16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}

// ---- PROXY v2 ----

/** Options of the PROXY v2 encoders: TLVs to append. */
export interface ProxyV2Options {
  /** The player id (TLV {@link PROXY_V2_TLV_PLAYER_ID}); must match {@link PLAYER_ID_PATTERN}. */
  readonly playerId?: string;
}

/**
 * Encodes a PROXY v2 `PROXY` header for a connection or datagram from `source` (the
 * player) to `destination` (the relay's listening address), with the TLVs `options`
 * asks for. IPv4 is used when both are IPv4, else IPv6 (IPv4 then mapped). Allocates:
 * the relay builds it once per flow or session, not per packet. Throws RangeError when
 * an address is not an IP literal, a port is out of range or a player id does not match
 * {@link PLAYER_ID_PATTERN} (programmer errors: the relay passes checked values).
 */
export function encodeProxyV2(transport: 'tcp' | 'udp', source: Endpoint, destination: Endpoint, options: ProxyV2Options = {}): Uint8Array {
  checkPort(source.port);
  checkPort(destination.port);
  const tlvs = encodeTlvs(options);
  const v4 = new Uint8Array(8);
  const bothV4 = parseIpv4Into(source.address, v4, 0) && parseIpv4Into(destination.address, v4, 4);
  const out = new Uint8Array((bothV4 ? PROXY_V2_IPV4_BYTES : PROXY_V2_IPV6_BYTES) + tlvs.length);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = 0x21;
  out[13] = ((bothV4 ? 1 : 2) << 4) | (transport === 'tcp' ? 1 : 2);
  if (bothV4) {
    writeU16(out, 14, 12 + tlvs.length);
    out.set(v4, 16);
    writeU16(out, 24, source.port);
    writeU16(out, 26, destination.port);
  } else {
    writeU16(out, 14, 36 + tlvs.length);
    if (!writeIpAs16(source.address, out, 16)) throw new RangeError(`encodeProxyV2: '${source.address}' is not an IP address`);
    if (!writeIpAs16(destination.address, out, 32)) throw new RangeError(`encodeProxyV2: '${destination.address}' is not an IP address`);
    writeU16(out, 48, source.port);
    writeU16(out, 50, destination.port);
  }
  out.set(tlvs, out.length - tlvs.length);
  return out;
}

/**
 * Encodes a PROXY v2 `PROXY` header with family UNSPEC (`0x00`, §2.2): the relay
 * forwards for a player whose address it does not know, so there is no address block,
 * only the TLVs `options` asks for (the player id). Throws RangeError for a bad player id.
 */
export function encodeProxyV2Unspec(options: ProxyV2Options = {}): Uint8Array {
  const tlvs = encodeTlvs(options);
  const out = new Uint8Array(PROXY_V2_FIXED_BYTES + tlvs.length);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = 0x21;
  writeU16(out, 14, tlvs.length);
  out.set(tlvs, PROXY_V2_FIXED_BYTES);
  return out;
}

/** Encodes a PROXY v2 `LOCAL` header (the proxy speaking for itself, e.g. a health check). */
export function encodeProxyV2Local(): Uint8Array {
  const out = new Uint8Array(PROXY_V2_FIXED_BYTES);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = 0x20;
  return out;
}

function encodeTlvs(options: ProxyV2Options): Uint8Array {
  const id = options.playerId;
  if (id === undefined) return new Uint8Array(0);
  if (!PLAYER_ID_PATTERN.test(id)) throw new RangeError(`proxy header: player id must be 1–${PLAYER_ID_CHARS_MAX} printable ASCII characters without spaces`);
  const out = new Uint8Array(3 + id.length);
  out[0] = PROXY_V2_TLV_PLAYER_ID;
  writeU16(out, 1, id.length);
  for (let i = 0; i < id.length; i++) out[3 + i] = id.charCodeAt(i);
  return out;
}

/**
 * Reads the TLVs in `bytes[from, to)`: the player id, or `bad` when a TLV overruns the
 * header or the player id is not 1–128 printable ASCII bytes. Other types are skipped.
 */
function readTlvs(bytes: Uint8Array, from: number, to: number): { bad: boolean; playerId: string | undefined } {
  let playerId: string | undefined;
  let at = from;
  while (at < to) {
    if (at + 3 > to) return { bad: true, playerId: undefined };
    const type = bytes[at]!;
    const length = readU16(bytes, at + 1);
    const end = at + 3 + length;
    if (end > to) return { bad: true, playerId: undefined };
    if (type === PROXY_V2_TLV_PLAYER_ID) {
      if (length === 0 || length > PLAYER_ID_CHARS_MAX) return { bad: true, playerId: undefined };
      let text = '';
      for (let i = at + 3; i < end; i++) {
        const c = bytes[i]!;
        if (c < 0x21 || c > 0x7e) return { bad: true, playerId: undefined };
        text += String.fromCharCode(c);
      }
      playerId = text;
    }
    at = end;
  }
  return { bad: false, playerId };
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`proxy header: port ${port} is out of range; expected 0–65535`);
}

function hasV2Signature(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== PROXY_V2_SIGNATURE[i]) return false;
  return true;
}

/**
 * Parses a PROXY v2 header at the start of `bytes`. Returns `incomplete` with
 * `bytesNeeded` while a TCP stream has delivered only part of it. The player id TLV is
 * read into `playerId`; other TLVs are skipped (their bytes are inside `headerBytes`);
 * TLVs that overrun the header are `bad-tlv`. Never throws.
 */
export function parseProxyV2(bytes: Uint8Array): ProxyParseResult {
  if (!hasV2Signature(bytes)) return { ok: false, failure: 'no-signature' };
  if (bytes.length < PROXY_V2_FIXED_BYTES) return { ok: false, failure: 'incomplete', bytesNeeded: PROXY_V2_FIXED_BYTES };
  const versionCommand = bytes[12]!;
  if (versionCommand >>> 4 !== 2 || (versionCommand & 0x0f) > 1) return { ok: false, failure: 'bad-version' };
  const length = readU16(bytes, 14);
  const total = PROXY_V2_FIXED_BYTES + length;
  if (bytes.length < total) return { ok: false, failure: 'incomplete', bytesNeeded: total };
  const familyTransport = bytes[13]!;
  const transportNibble = familyTransport & 0x0f;
  const transport = transportNibble === 2 ? 'udp' : 'tcp';
  if ((versionCommand & 0x0f) === 0) {
    // LOCAL: the receiver must ignore the address block whatever it holds (§2.2).
    return { ok: true, header: { format: 'proxy-v2', proxied: false, transport, source: undefined, destination: undefined, playerId: undefined, headerBytes: total } };
  }
  if (familyTransport === 0) {
    // PROXY with UNSPEC: forwarded for a player whose address the sender does not know; TLVs only.
    const tlvs = readTlvs(bytes, PROXY_V2_FIXED_BYTES, total);
    if (tlvs.bad) return { ok: false, failure: 'bad-tlv' };
    return { ok: true, header: { format: 'proxy-v2', proxied: true, transport, source: undefined, destination: undefined, playerId: tlvs.playerId, headerBytes: total } };
  }
  if (transportNibble !== 1 && transportNibble !== 2) return { ok: false, failure: 'bad-family' };
  const family = familyTransport >>> 4;
  if (family !== 1 && family !== 2) return { ok: false, failure: 'bad-family' };
  // The address block (§2.2): source address, destination address, source port,
  // destination port; addresses are 4 bytes for AF_INET (1), 16 for AF_INET6 (2).
  const addressBytes = family === 1 ? 4 : 16;
  if (length < 2 * addressBytes + 4) return { ok: false, failure: 'bad-family' };
  const formatAddress = family === 1 ? formatIpv4 : formatIp16;
  const portsAt = PROXY_V2_FIXED_BYTES + 2 * addressBytes;
  const tlvs = readTlvs(bytes, portsAt + 4, total);
  if (tlvs.bad) return { ok: false, failure: 'bad-tlv' };
  return {
    ok: true,
    header: {
      format: 'proxy-v2',
      proxied: true,
      transport,
      source: { address: formatAddress(bytes, PROXY_V2_FIXED_BYTES), port: readU16(bytes, portsAt) },
      destination: { address: formatAddress(bytes, PROXY_V2_FIXED_BYTES + addressBytes), port: readU16(bytes, portsAt + 2) },
      playerId: tlvs.playerId,
      headerBytes: total,
    },
  };
}

// ---- Simple Proxy Protocol ----

/**
 * Encodes the 38-byte SPP header for a datagram from `source` (the player) to
 * `destination` (the relay's listening address). Throws RangeError for a non-IP
 * address or a bad port (programmer error).
 */
export function encodeSpp(source: Endpoint, destination: Endpoint): Uint8Array {
  checkPort(source.port);
  checkPort(destination.port);
  const out = new Uint8Array(SPP_BYTES);
  writeU16(out, 0, SPP_MAGIC);
  if (!writeIpAs16(source.address, out, 2)) throw new RangeError(`encodeSpp: '${source.address}' is not an IP address`);
  if (!writeIpAs16(destination.address, out, 18)) throw new RangeError(`encodeSpp: '${destination.address}' is not an IP address`);
  writeU16(out, 34, source.port);
  writeU16(out, 36, destination.port);
  return out;
}

/** Parses an SPP header at the start of a datagram. Never throws. */
export function parseSpp(bytes: Uint8Array): ProxyParseResult {
  if (bytes.length === 0 || (bytes.length === 1 && bytes[0] === SPP_MAGIC >>> 8)) return { ok: false, failure: 'incomplete', bytesNeeded: SPP_BYTES };
  if (bytes.length === 1 || readU16(bytes, 0) !== SPP_MAGIC) return { ok: false, failure: 'no-signature' };
  if (bytes.length < SPP_BYTES) return { ok: false, failure: 'incomplete', bytesNeeded: SPP_BYTES };
  return {
    ok: true,
    header: {
      format: 'spp',
      proxied: true,
      transport: 'udp',
      source: { address: formatIp16(bytes, 2), port: readU16(bytes, 34) },
      destination: { address: formatIp16(bytes, 18), port: readU16(bytes, 36) },
      playerId: undefined,
      headerBytes: SPP_BYTES,
    },
  };
}

/**
 * For origins: parses whichever header starts `bytes` (PROXY v2 or SPP, told apart by
 * their signatures). The payload is `bytes.subarray(result.header.headerBytes)`.
 * Never throws.
 *
 * ```ts
 * socket.on('message', (msg) => {
 *   const parsed = parseProxyHeader(msg);
 *   if (!parsed.ok) return;               // not from the relay: drop
 *   const player = parsed.header.source;  // { address, port } of the real client
 *   handle(player, msg.subarray(parsed.header.headerBytes));
 * });
 * ```
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyParseResult {
  if (bytes.length === 0) return { ok: false, failure: 'incomplete', bytesNeeded: SPP_BYTES };
  if (bytes[0] === PROXY_V2_SIGNATURE[0]) return parseProxyV2(bytes);
  return parseSpp(bytes);
}

/** A player's datagram as an origin behind relays gets it ({@link parsePlayerDatagram}). */
export interface PlayerDatagram {
  /** Always true: the datagram carried a valid header (a datagram without one is a {@link PlayerDatagramFailure}). */
  readonly ok: true;
  /** The header it came with. */
  readonly format: ProxyFormat;
  /** The player's IP as the relay saw it; undefined when the relay did not know it (PROXY v2 UNSPEC). */
  readonly address: string | undefined;
  /** The player's port as the relay saw it (0–65535); undefined with {@link address}. */
  readonly port: number | undefined;
  /** The ticket's player id (tunnel sessions whose ticket has one, PROXY v2 only); undefined otherwise. */
  readonly playerId: string | undefined;
  /** The game's bytes: a view into the datagram, after the header. */
  readonly payload: Uint8Array;
}

/** Why a datagram is not a player's: a parse failure, or `not-proxied` (a PROXY v2 LOCAL: the relay's own health check). */
export type PlayerDatagramFailure = { readonly ok: false; readonly failure: ProxyParseFailure | 'not-proxied' };

/**
 * For origins: the player's address, player id and payload of a datagram from a relay
 * (PROXY v2 or SPP, detected). Never throws; a datagram without a valid header, or a
 * relay's health check, is a typed failure (drop it).
 *
 * ```ts
 * socket.on('message', (msg) => {
 *   const d = parsePlayerDatagram(msg);
 *   if (!d.ok) return;
 *   game.onPacket({ address: d.address, port: d.port, playerId: d.playerId }, d.payload);
 * });
 * ```
 */
export function parsePlayerDatagram(bytes: Uint8Array): PlayerDatagram | PlayerDatagramFailure {
  const parsed = parseProxyHeader(bytes);
  if (!parsed.ok) return { ok: false, failure: parsed.failure };
  const h = parsed.header;
  if (!h.proxied) return { ok: false, failure: 'not-proxied' };
  return { ok: true, format: h.format, address: h.source?.address, port: h.source?.port, playerId: h.playerId, payload: bytes.subarray(h.headerBytes) };
}
