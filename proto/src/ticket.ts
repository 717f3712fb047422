/**
 * Session tickets: the coordinator's signed permission for one tunnel session.
 *
 * A ticket is `[u16 BE claims length][claims (msgpack)][Ed25519 signature (64 B)]`,
 * the signature covering the length and the claims. Relays verify tickets offline
 * with the coordinator's public key; nothing else about the session needs a round
 * trip.
 *
 * The session key (32 bytes; the client proves it holds it when its address changes,
 * as QUIC's path validation does) travels inside the ticket sealed with AES-256-GCM
 * under the fleet's seal key, which the coordinator and every relay share, and with
 * the session id as associated data. The ticket crosses the player's network in the
 * clear, so an eavesdropper on the last mile learns nothing it could answer a path
 * challenge with. The client gets the key itself from its game backend, next to the
 * ticket.
 *
 * Times in tickets are Unix epoch milliseconds (wall clock), because issuer and
 * verifier are different machines; relays allow {@link TICKET_CLOCK_SKEW_MS} of skew.
 * This module is sans-IO: callers pass the wall time and the random bytes in.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { Packr } from 'msgpackr';
import { ErrorCode, ParseFailure, type ErrorCodeValue, type ParseFailureValue } from './errors.js';
import { PLAYER_ID_CHARS_MAX, PLAYER_ID_PATTERN } from './proxy-protocol.js';

/** Ticket format version. */
export const TICKET_VERSION = 1;
/** Bytes in a session key. */
export const SESSION_KEY_BYTES = 32;
/** Bytes in the fleet seal key (AES-256). */
export const SEAL_KEY_BYTES = 32;
/** Bytes of AES-GCM nonce per ticket. */
export const SEAL_NONCE_BYTES = 12;
/** Bytes in an Ed25519 signature. */
const SIGNATURE_BYTES = 64;
/** Bytes in an AES-GCM tag. */
const SEAL_TAG_BYTES = 16;
/** Largest encoded ticket accepted, bytes. */
export const TICKET_BYTES_MAX = 1024;
/** How far a verifier's clock may be behind or ahead of the issuer's, ms (default tolerance). */
export const TICKET_CLOCK_SKEW_MS = 30_000;

/** Per-session limits a relay enforces. */
export interface TicketLimits {
  /** Packets per second each way; token bucket rate. */
  readonly packetsPerSecond: number;
  /** Bytes per second each way; token bucket rate. */
  readonly bytesPerSecond: number;
}

/** What a ticket says. */
export interface TicketClaims {
  /** 16 lowercase hex digits (the 64-bit session id of the data-plane header). */
  readonly sessionId: string;
  /** The one origin this session may reach: a name the relay's config maps, or `host:port`. */
  readonly origin: string;
  /** When it was issued, Unix epoch ms. */
  readonly issuedAtMs: number;
  /** After this the ticket opens no new session, Unix epoch ms. */
  readonly expiresAtMs: number;
  /** Limits for the session. */
  readonly limits: TicketLimits;
  /** AES-GCM nonce used to seal the key. */
  readonly sealNonce: Uint8Array;
  /** The session key sealed under the fleet seal key (32 B ciphertext + 16 B tag). */
  readonly sealedKey: Uint8Array;
  /**
   * The exit relay, when the session has one: the relay that holds the session's one
   * origin-facing socket. Entry relays forward the session to it over the relay mesh,
   * so a client moving between entries keeps its source address at the origin.
   * Absent: whichever relay the client enters through talks to the origin itself.
   */
  readonly exit?: TicketExit;
  /**
   * The player the game backend issued the ticket for (`playerId` of `POST /v1/session`),
   * 1–128 printable ASCII characters; relays with `tunnel.proxyProtocol: v2` give it to
   * the origin (PROXY v2 TLV 0xE0). Absent when the backend gave none.
   */
  readonly playerId?: string;
}

/** The exit relay a ticket names (see {@link TicketClaims.exit}). */
export interface TicketExit {
  /** The exit's relay id (`fleet.relayId` / `tunnel.relayId` in its config): the relay that finds its own id here terminates the session. */
  readonly relayId: string;
  /** The exit's tunnel address, `IP:port` (`[IPv6]:port`): where entries forward to. */
  readonly address: string;
}

/** Longest relay id in a ticket's exit, characters (the registry's limit). */
const EXIT_ID_CHARS_MAX = 64;
/** Longest exit address in a ticket, characters. */
const EXIT_ADDRESS_CHARS_MAX = 64;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** An Ed25519 private key from its 32-byte seed (the raw private key). */
export function ticketSigningKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new RangeError(`Ed25519 seed must be 32 bytes, got ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** An Ed25519 public key from its 32 raw bytes. */
export function ticketVerifyKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new RangeError(`Ed25519 public key must be 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The 32 raw bytes of an Ed25519 public key (what configs carry, base64-encoded). */
export function rawPublicKey(key: KeyObject): Uint8Array {
  const der = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - 32));
}

/** Inputs of {@link issueTicket}. */
export interface TicketInput {
  sessionId: string;
  origin: string;
  issuedAtMs: number;
  expiresAtMs: number;
  limits: TicketLimits;
  /** The session key to seal (32 bytes). */
  sessionKey: Uint8Array;
  /** 12 fresh random bytes; never reuse one with the same seal key. */
  sealNonce: Uint8Array;
  /** The exit relay, if the session has one (see {@link TicketClaims.exit}). */
  exit?: TicketExit;
  /** The player id, if any (see {@link TicketClaims.playerId}); must match {@link PLAYER_ID_PATTERN}. */
  playerId?: string;
}

/**
 * Seals the session key, signs the claims, and returns the ticket bytes.
 * Invalid input is a programmer error and throws RangeError.
 */
export function issueTicket(input: TicketInput, signingKey: KeyObject, sealKey: Uint8Array): Uint8Array {
  if (!/^[0-9a-f]{16}$/.test(input.sessionId)) throw new RangeError('issueTicket: sessionId must be 16 lowercase hex digits');
  if (input.sessionKey.length !== SESSION_KEY_BYTES) throw new RangeError(`issueTicket: sessionKey must be ${SESSION_KEY_BYTES} bytes`);
  if (input.sealNonce.length !== SEAL_NONCE_BYTES) throw new RangeError(`issueTicket: sealNonce must be ${SEAL_NONCE_BYTES} bytes`);
  if (sealKey.length !== SEAL_KEY_BYTES) throw new RangeError(`issueTicket: seal key must be ${SEAL_KEY_BYTES} bytes`);
  if (input.origin.length === 0 || input.origin.length > 255) throw new RangeError('issueTicket: origin must be 1–255 characters');
  if (input.playerId !== undefined && !PLAYER_ID_PATTERN.test(input.playerId)) throw new RangeError(`issueTicket: playerId must be 1–${PLAYER_ID_CHARS_MAX} printable ASCII characters without spaces`);
  if (input.exit !== undefined && !validExit(input.exit.relayId, input.exit.address)) throw new RangeError('issueTicket: exit needs a relay id (1–64 of A-Z a-z 0-9 . _ -) and an address of at most 64 characters');
  const cipher = createCipheriv('aes-256-gcm', sealKey, input.sealNonce);
  cipher.setAAD(Buffer.from(input.sessionId, 'ascii'));
  const sealedKey = Buffer.concat([cipher.update(input.sessionKey), cipher.final(), cipher.getAuthTag()]);
  const claims = packr.pack({
    v: TICKET_VERSION,
    sid: input.sessionId,
    origin: input.origin,
    iat: input.issuedAtMs,
    exp: input.expiresAtMs,
    pps: input.limits.packetsPerSecond,
    bps: input.limits.bytesPerSecond,
    nonce: input.sealNonce,
    key: sealedKey,
    // Absent (not null) without an exit: tickets without one stay byte-identical to before.
    ...(input.exit !== undefined ? { xid: input.exit.relayId, xaddr: input.exit.address } : {}),
    ...(input.playerId !== undefined ? { pid: input.playerId } : {}),
  });
  const signed = Buffer.alloc(2 + claims.length);
  signed.writeUInt16BE(claims.length, 0);
  claims.copy(signed, 2);
  const signature = sign(null, signed, signingKey);
  const ticket = Buffer.concat([signed, signature]);
  if (ticket.length > TICKET_BYTES_MAX) throw new RangeError(`issueTicket: ticket is ${ticket.length} bytes, more than ${TICKET_BYTES_MAX}`);
  return new Uint8Array(ticket);
}

/** Why a ticket was refused. `code` is the stable error code the SDK shows. */
export type TicketRefusal = { ok: false; code: ErrorCodeValue; parseFailure?: ParseFailureValue; detail: string };

/** Result of {@link verifyTicket}. */
export type TicketVerifyResult = { ok: true; claims: TicketClaims } | TicketRefusal;

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function malformed(failure: ParseFailureValue, detail: string): TicketRefusal {
  return { ok: false, code: ErrorCode.TicketForged, parseFailure: failure, detail };
}

/**
 * Verifies a ticket from untrusted bytes: format, signature, then expiry against
 * `wallNowMs` (Unix epoch ms) with `clockSkewMs` of tolerance. Never throws.
 * Unparseable and badly signed tickets are both `SLIP_ERR_TICKET_FORGED`.
 * `verifyKey` may be a list (during a signing-key rotation): the signature must verify
 * with one of them; the first is tried first, so put the key in use there.
 */
export function verifyTicket(bytes: Uint8Array, verifyKey: KeyObject | readonly KeyObject[], wallNowMs: number, clockSkewMs = TICKET_CLOCK_SKEW_MS): TicketVerifyResult {
  if (bytes.length > TICKET_BYTES_MAX) return malformed(ParseFailure.TooLong, `${bytes.length} bytes`);
  if (bytes.length < 2 + SIGNATURE_BYTES + 1) return malformed(ParseFailure.TooShort, `${bytes.length} bytes`);
  const claimsLength = (bytes[0]! << 8) | bytes[1]!;
  if (2 + claimsLength + SIGNATURE_BYTES !== bytes.length) return malformed(ParseFailure.BadShape, 'length fields disagree');
  const signed = bytes.subarray(0, 2 + claimsLength);
  const signature = bytes.subarray(2 + claimsLength);
  let valid = false;
  for (const key of Array.isArray(verifyKey) ? (verifyKey as readonly KeyObject[]) : [verifyKey as KeyObject]) {
    try {
      valid = verify(null, signed, key, signature);
    } catch {
      valid = false;
    }
    if (valid) break;
  }
  if (!valid) return { ok: false, code: ErrorCode.TicketForged, detail: 'signature does not verify with the configured ticket public key' };
  let raw: unknown;
  try {
    raw = packr.unpack(bytes.subarray(2, 2 + claimsLength));
  } catch {
    // Signed by our key yet undecodable: a bug or a version we do not speak.
    return malformed(ParseFailure.BadEncoding, 'claims are not msgpack');
  }
  if (raw === null || typeof raw !== 'object' || Object.getPrototypeOf(raw) !== Object.prototype) return malformed(ParseFailure.BadShape, 'claims are not a map');
  const c = raw as Record<string, unknown>;
  if (c.v !== TICKET_VERSION) return malformed(ParseFailure.BadVersion, `ticket version ${String(c.v)}`);
  if (typeof c.sid !== 'string' || !/^[0-9a-f]{16}$/.test(c.sid)) return malformed(ParseFailure.BadShape, 'sid');
  if (typeof c.origin !== 'string' || c.origin.length === 0) return malformed(ParseFailure.BadShape, 'origin');
  if (!isNumber(c.iat) || !isNumber(c.exp) || !isNumber(c.pps) || !isNumber(c.bps) || c.pps < 0 || c.bps < 0) return malformed(ParseFailure.BadShape, 'times or limits');
  if (!(c.nonce instanceof Uint8Array) || c.nonce.length !== SEAL_NONCE_BYTES) return malformed(ParseFailure.BadShape, 'nonce');
  if (!(c.key instanceof Uint8Array) || c.key.length !== SESSION_KEY_BYTES + SEAL_TAG_BYTES) return malformed(ParseFailure.BadShape, 'key');
  if ((c.xid !== undefined || c.xaddr !== undefined) && !validExit(c.xid, c.xaddr)) return malformed(ParseFailure.BadShape, 'exit');
  if (c.pid !== undefined && (typeof c.pid !== 'string' || !PLAYER_ID_PATTERN.test(c.pid))) return malformed(ParseFailure.BadShape, 'playerId');
  if (wallNowMs > c.exp + clockSkewMs) return { ok: false, code: ErrorCode.TicketExpired, detail: `expired ${Math.round((wallNowMs - c.exp) / 1000)} s ago` };
  // Issued in the future beyond the skew: the issuer's clock is wrong or the ticket was
  // minted ahead to outlive a revocation window; either way not to be trusted.
  if (c.iat > wallNowMs + clockSkewMs) return { ok: false, code: ErrorCode.TicketForged, detail: `issued ${Math.round((c.iat - wallNowMs) / 1000)} s in the future (more than the ${clockSkewMs} ms clock skew allowed)` };
  return {
    ok: true,
    claims: {
      sessionId: c.sid,
      origin: c.origin,
      issuedAtMs: c.iat,
      expiresAtMs: c.exp,
      limits: { packetsPerSecond: c.pps, bytesPerSecond: c.bps },
      sealNonce: c.nonce,
      sealedKey: c.key,
      ...(typeof c.xid === 'string' && typeof c.xaddr === 'string' ? { exit: { relayId: c.xid, address: c.xaddr } } : {}),
      ...(typeof c.pid === 'string' ? { playerId: c.pid } : {}),
    },
  };
}

function validExit(relayId: unknown, address: unknown): boolean {
  return typeof relayId === 'string' && typeof address === 'string' && relayId.length <= EXIT_ID_CHARS_MAX && /^[A-Za-z0-9._-]+$/.test(relayId) && address.length > 0 && address.length <= EXIT_ADDRESS_CHARS_MAX;
}

/**
 * Unseals the session key of a verified ticket with the fleet seal key (32 bytes), or
 * with any of a list of them during a seal-key rotation (tried in order). Returns
 * undefined when the seal does not open (wrong fleet key, or a tampered ticket).
 */
export function openSessionKey(claims: TicketClaims, sealKey: Uint8Array | readonly Uint8Array[]): Uint8Array | undefined {
  if (sealKey instanceof Uint8Array) return openWithSealKey(claims, sealKey);
  for (const key of sealKey) {
    const opened = openWithSealKey(claims, key);
    if (opened !== undefined) return opened;
  }
  return undefined;
}

function openWithSealKey(claims: TicketClaims, sealKey: Uint8Array): Uint8Array | undefined {
  if (sealKey.length !== SEAL_KEY_BYTES) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', sealKey, claims.sealNonce);
    decipher.setAAD(Buffer.from(claims.sessionId, 'ascii'));
    decipher.setAuthTag(claims.sealedKey.subarray(SESSION_KEY_BYTES));
    return new Uint8Array(Buffer.concat([decipher.update(claims.sealedKey.subarray(0, SESSION_KEY_BYTES)), decipher.final()]));
  } catch {
    return undefined;
  }
}
