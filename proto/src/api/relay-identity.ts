/**
 * Per-relay identity on the coordinator API: every relay holds its own Ed25519 key pair
 * (enrolled once with a one-time join token, `POST /v1/relays/enroll`) and signs each
 * fleet request with it, so that the coordinator can hold a relay to speaking for itself
 * only — its registration, its heartbeat and drain, its measurements. One fleet secret
 * shared by every relay cannot do that: any holder can speak for any relay.
 *
 * The request signature travels in the `Authorization` header:
 *
 *     Authorization: Slip-Relay id=<relayId>, ts=<epoch ms>, nonce=<32 hex>, sig=<base64>
 *
 * and covers {@link relaySigningPayload}: the method, the path with its query, the
 * SHA-256 of the body, the timestamp, the nonce and the relay id. The coordinator takes a
 * timestamp within {@link RELAY_SIGNATURE_WINDOW_MS} of its clock and each nonce once
 * within that window, so a captured request cannot be replayed later or twice.
 *
 * Sans-IO: the caller brings the time, the nonce (random bytes) and the keys.
 */
import { createHash, sign, verify, type KeyObject } from 'node:crypto';

/** The `Authorization` scheme of a signed relay request. */
export const RELAY_AUTH_SCHEME = 'Slip-Relay';
/** A signed request's timestamp may differ from the coordinator's clock by at most this much either way, ms. */
export const RELAY_SIGNATURE_WINDOW_MS = 60_000;
/** A nonce: 16 random bytes as 32 lowercase hex digits. */
export const RELAY_NONCE = /^[0-9a-f]{32}$/;
/** A join token as minted: `sjt_` and 43 base64url characters (32 random bytes). */
export const JOIN_TOKEN = /^sjt_[A-Za-z0-9_-]{43}$/;
/** Raw Ed25519 public key length, bytes. */
export const RELAY_PUBLIC_KEY_BYTES = 32;

/** What a signature covers, besides the body (hashed). */
export interface RelayRequestParts {
  /** Upper-case method. */
  readonly method: string;
  /** Path, with `?query` when there is one, exactly as sent. */
  readonly pathAndQuery: string;
  /** Epoch ms at signing. */
  readonly timestampMs: number;
  /** {@link RELAY_NONCE}. */
  readonly nonce: string;
  readonly relayId: string;
}

/** A parsed `Slip-Relay` authorization header. */
export interface RelayAuthorization {
  readonly relayId: string;
  readonly timestampMs: number;
  readonly nonce: string;
  /** Ed25519 signature, 64 bytes. */
  readonly signature: Buffer;
}

/** The bytes a relay signs: a domain label, then each part on its own line. */
export function relaySigningPayload(parts: RelayRequestParts, body: Uint8Array): Buffer {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  return Buffer.from(`slipstream relay request v1\n${parts.method}\n${parts.pathAndQuery}\n${bodyHash}\n${parts.timestampMs}\n${parts.nonce}\n${parts.relayId}`, 'utf8');
}

/** The `Authorization` header value of a request signed with `privateKey` (Ed25519). */
export function signRelayRequest(privateKey: KeyObject, parts: RelayRequestParts, body: Uint8Array): string {
  const signature = sign(null, relaySigningPayload(parts, body), privateKey);
  return `${RELAY_AUTH_SCHEME} id=${parts.relayId}, ts=${parts.timestampMs}, nonce=${parts.nonce}, sig=${signature.toString('base64')}`;
}

/** Parses a `Slip-Relay` header: the fields, or what is wrong with it (for a 401's reason). */
export function parseRelayAuthorization(header: string): { ok: true; value: RelayAuthorization } | { ok: false; reason: string } {
  if (!header.startsWith(`${RELAY_AUTH_SCHEME} `)) return { ok: false, reason: `not a ${RELAY_AUTH_SCHEME} header` };
  const fields = new Map<string, string>();
  for (const item of header.slice(RELAY_AUTH_SCHEME.length + 1).split(',')) {
    const eq = item.indexOf('=');
    if (eq <= 0) return { ok: false, reason: `'${item.trim().slice(0, 40)}' is not key=value` };
    fields.set(item.slice(0, eq).trim(), item.slice(eq + 1).trim());
  }
  const relayId = fields.get('id') ?? '';
  const ts = fields.get('ts') ?? '';
  const nonce = fields.get('nonce') ?? '';
  const sig = fields.get('sig') ?? '';
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(relayId)) return { ok: false, reason: 'id: missing or not a relay id (1–64 of A-Z a-z 0-9 . _ -)' };
  if (!/^\d{1,16}$/.test(ts)) return { ok: false, reason: 'ts: missing or not epoch ms' };
  if (!RELAY_NONCE.test(nonce)) return { ok: false, reason: 'nonce: missing or not 32 lowercase hex digits' };
  const signature = Buffer.from(sig, 'base64');
  if (signature.length !== 64) return { ok: false, reason: 'sig: missing or not a 64-byte Ed25519 signature in base64' };
  return { ok: true, value: { relayId, timestampMs: Number(ts), nonce, signature } };
}

/** Whether `auth.signature` signs this request (`method`, `pathAndQuery`, `body`) under `publicKey`. */
export function verifyRelayRequest(publicKey: KeyObject, auth: RelayAuthorization, method: string, pathAndQuery: string, body: Uint8Array): boolean {
  const payload = relaySigningPayload({ method, pathAndQuery, timestampMs: auth.timestampMs, nonce: auth.nonce, relayId: auth.relayId }, body);
  try {
    return verify(null, payload, publicKey, auth.signature);
  } catch {
    return false;
  }
}
