/**
 * The session MACs of the tunnel protocol without a crypto library: what each MAC
 * covers (the bytes HMAC-SHA256 runs over, with the session key), and the
 * {@link HmacSha256} interface a client core is given to compute them. Node computes an
 * HMAC synchronously (`node:crypto`, {@link nodeHmacSha256} in `wire.ts`); a browser only
 * asynchronously (WebCrypto's `crypto.subtle.sign`), so the interface says which it is
 * and a core given an asynchronous one queues the work for its driver instead of
 * awaiting anything (see `TunnelClient.pollMacJob`). No Node API here: the browser SDK
 * imports this module.
 *
 * Layouts (the relay checks the same bytes with `node:crypto` in `wire.ts`):
 * - PathResponse MAC: HMAC(key, "slipstream-path-v1" ‖ session id (8 B BE) ‖ nonce), 32 B.
 * - client Close MAC: first 16 B of HMAC(key, "slipstream-close-v1" ‖ session id).
 * - relay Close MAC: first 16 B of HMAC(key, "slipstream-relay-close-v1" ‖ session id ‖ reason).
 */

/** HMAC-SHA256 (RFC 2104 over SHA-256), synchronous (`node:crypto`) or asynchronous (WebCrypto). */
export type HmacSha256 =
  | {
      /** The MAC is computed during the call. */
      readonly mode: 'sync';
      /** HMAC-SHA256(key, data): 32 bytes. */
      sign(key: Uint8Array, data: Uint8Array): Uint8Array;
    }
  | {
      /** The MAC arrives later; a core queues the work (`pollMacJob`) and its driver hands the result back. */
      readonly mode: 'async';
      /** HMAC-SHA256(key, data): 32 bytes. */
      sign(key: Uint8Array, data: Uint8Array): Promise<Uint8Array>;
    };

/** Bytes of an HMAC-SHA256. */
export const HMAC_SHA256_BYTES = 32;

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** The label that starts a PathResponse MAC's input. */
export const PATH_MAC_LABEL: Uint8Array = ascii('slipstream-path-v1');
/** The label that starts a client Close MAC's input. */
export const CLOSE_MAC_LABEL: Uint8Array = ascii('slipstream-close-v1');
/** The label that starts a relay Close MAC's input. */
export const RELAY_CLOSE_MAC_LABEL: Uint8Array = ascii('slipstream-relay-close-v1');

function macInput(label: Uint8Array, sessionIdHigh: number, sessionIdLow: number, tail: Uint8Array | undefined): Uint8Array {
  const out = new Uint8Array(label.length + 8 + (tail?.length ?? 0));
  out.set(label, 0);
  const view = new DataView(out.buffer);
  view.setUint32(label.length, sessionIdHigh >>> 0);
  view.setUint32(label.length + 4, sessionIdLow >>> 0);
  if (tail !== undefined) out.set(tail, label.length + 8);
  return out;
}

/** What a PathResponse's MAC covers for `nonce`. */
export function pathMacInput(sessionIdHigh: number, sessionIdLow: number, nonce: Uint8Array): Uint8Array {
  return macInput(PATH_MAC_LABEL, sessionIdHigh, sessionIdLow, nonce);
}

/** What a client Close's MAC covers. */
export function closeMacInput(sessionIdHigh: number, sessionIdLow: number): Uint8Array {
  return macInput(CLOSE_MAC_LABEL, sessionIdHigh, sessionIdLow, undefined);
}

/** What a relay Close's MAC covers for the msgpack `reason` it carries. */
export function relayCloseMacInput(sessionIdHigh: number, sessionIdLow: number, reason: Uint8Array): Uint8Array {
  return macInput(RELAY_CLOSE_MAC_LABEL, sessionIdHigh, sessionIdLow, reason);
}

/** Whether `a` and `b` hold the same bytes, in time that depends only on their lengths. */
export function bytesEqualConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
