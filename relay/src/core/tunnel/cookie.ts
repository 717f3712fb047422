/**
 * A stateless retry for ticket opens under load (QUIC Retry, RFC 9000 §8.1.2; DTLS
 * HelloVerifyRequest, RFC 6347 §4.2.1; WireGuard's cookie reply). Every session open
 * for a session the relay does not hold costs an Ed25519 verification (50–150 µs);
 * a spoofed flood of forged tickets would otherwise buy that much CPU per datagram.
 *
 * The rule:
 * - Verifications are budgeted: `limits.ticketVerificationsPerSecond` over every
 *   source, `limits.ticketVerificationsPerSourcePerSecond` per source address (a keyed
 *   hash of buckets, no state per address: spoofed addresses cost no memory).
 * - Within the budget nothing changes: an open is verified at once (no extra round trip).
 * - Over it, the relay is "under load" (until opens without a cookie have stayed within
 *   the budget for {@link COOKIE_LOAD_HOLD_MS}): an open without a valid cookie is
 *   answered with a `sessionRetry` carrying a cookie — no signature check, no state,
 *   never larger than the open — and the SDK sends its open again with the cookie.
 *   A spoofed source never receives its cookie, so it never gets past this point.
 * - An open with a valid cookie (its address is proven) is verified if the global and
 *   its source's budgets allow, else dropped (the client retries): opens without a
 *   cookie never spend the budget while under load, so the proven ones get it.
 * Every verification takes a token of the global bucket, so verifications stay within
 * the budget (plus {@link TICKET_VERIFICATIONS_BURST_MS} of burst) whatever arrives.
 *
 * Cookie = HMAC-SHA256(secret, label ‖ epoch ‖ port ‖ address) truncated to
 * {@link COOKIE_BYTES}; the secret is drawn (from the driver's randomness) every
 * {@link COOKIE_KEY_ROTATE_MS} and the previous one still accepted. Sans-IO: time
 * comes in as `nowMs`, randomness through the injected `randomFill`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { encodeControl } from '../../../../proto/src/control.js';
import { RateBucket, StatelessLimiter } from '../bucket.js';
import type { LimitsSpec } from '../config-types.js';
import { COOKIE_BYTES, COOKIE_KEY_ROTATE_MS, COOKIE_LOAD_HOLD_MS, TICKET_VERIFICATIONS_BURST_MS, UNAUTHENTICATED_BUCKETS } from '../constants.js';

/** What to do with a session open (see {@link OpenGate.admit}). */
export const OpenVerdict = {
  /** Verify its ticket (a token was taken). */
  Verify: 0,
  /** Answer with a `sessionRetry` carrying {@link OpenGate.cookieFor}; no verification. */
  Retry: 1,
  /** Its address is proven but the budget is spent: drop it (the client retries). */
  Drop: 2,
} as const;

/** One of {@link OpenVerdict}. */
export type OpenVerdictValue = (typeof OpenVerdict)[keyof typeof OpenVerdict];

const COOKIE_LABEL = Buffer.from('slipstream session-open cookie v1');

/**
 * The encoded `sessionRetry` with a zero cookie: a reply is this with the cookie
 * written over its last {@link COOKIE_BYTES} (msgpack puts the `bin 8` value last), so
 * answering a flood costs no encoding per packet.
 */
export const RETRY_BODY_TEMPLATE: Uint8Array = encodeControl({ type: 'sessionRetry', cookie: new Uint8Array(COOKIE_BYTES) });
if (RETRY_BODY_TEMPLATE[RETRY_BODY_TEMPLATE.length - COOKIE_BYTES - 2] !== 0xc4 || RETRY_BODY_TEMPLATE[RETRY_BODY_TEMPLATE.length - COOKIE_BYTES - 1] !== COOKIE_BYTES) {
  throw new Error('cookie.ts: the sessionRetry encoding does not end with its cookie');
}

/** See the module comment. */
export class OpenGate {
  /** Ticket verifications allowed (each is one Ed25519 check). */
  verifications = 0;
  /** `sessionRetry` cookies handed out (opens refused for lacking a valid cookie). */
  cookieReplies = 0;
  /** Opens that carried a cookie that did not verify (forged, stale, or for another address). */
  cookiesInvalid = 0;
  /** Opens with a valid cookie dropped because the verification budget was spent. */
  budgetDrops = 0;

  /** Every verification takes one token: the hard bound. */
  private readonly budget: RateBucket;
  /** Opens without a cookie, metered at the same rate: when they outrun it, the relay is under load. */
  private readonly demand: RateBucket;
  private readonly perSource: StatelessLimiter;
  private loadUntilMs = Number.NEGATIVE_INFINITY;
  private keyEpoch = Number.NEGATIVE_INFINITY;
  private key: Uint8Array = new Uint8Array(32);
  private previousKey: Uint8Array | undefined = undefined;

  /**
   * @param limits the budgets (`ticketVerificationsPerSecond`, `ticketVerificationsPerSourcePerSecond`; 0 = unlimited)
   * @param randomFill the driver's unpredictable bytes (cookie secrets, the per-source hash key)
   * @param nowMs creation time; buckets start full
   */
  constructor(
    limits: LimitsSpec,
    private readonly randomFill: (out: Uint8Array) => void,
    nowMs: number,
  ) {
    this.budget = new RateBucket(limits.ticketVerificationsPerSecond, 0, TICKET_VERIFICATIONS_BURST_MS, nowMs);
    this.demand = new RateBucket(limits.ticketVerificationsPerSecond, 0, TICKET_VERIFICATIONS_BURST_MS, nowMs);
    const hashKey = new Uint8Array(8);
    randomFill(hashKey);
    this.perSource = new StatelessLimiter(UNAUTHENTICATED_BUCKETS, limits.ticketVerificationsPerSourcePerSecond, hashKey, nowMs);
  }

  /** Whether opens without a valid cookie are being answered with a cookie now. */
  underLoad(nowMs: number): boolean {
    return nowMs < this.loadUntilMs;
  }

  /**
   * Decides about a session open from `address`:`port` carrying `cookie` (if any).
   * `peer`: a fleet relay forwarding players' opens, exempt from the per-source budget
   * (one address, many players) but not from the global one or the cookie.
   */
  admit(nowMs: number, address: string, port: number, cookie: Uint8Array | undefined, peer: boolean): OpenVerdictValue {
    if (cookie !== undefined) {
      if (this.cookieValid(nowMs, address, port, cookie)) {
        if ((!peer && !this.perSource.take(nowMs, address)) || !this.budget.take(nowMs, 0)) {
          this.budgetDrops++;
          return OpenVerdict.Drop;
        }
        this.verifications++;
        return OpenVerdict.Verify;
      }
      this.cookiesInvalid++;
    }
    if (!this.demand.take(nowMs, 0)) this.loadUntilMs = nowMs + COOKIE_LOAD_HOLD_MS;
    if (nowMs < this.loadUntilMs || (!peer && !this.perSource.take(nowMs, address))) return this.retry();
    if (!this.budget.take(nowMs, 0)) {
      // Spent by proven opens: ask everyone else for proof too.
      this.loadUntilMs = nowMs + COOKIE_LOAD_HOLD_MS;
      return this.retry();
    }
    this.verifications++;
    return OpenVerdict.Verify;
  }

  /**
   * Decides about an open whose source address is already proven — an HTTPS signaling
   * request (its TCP handshake proved it) or a DataChannel message (ICE and DTLS did):
   * no cookie is needed, only the budgets (the per-source one unless `peer`, and the
   * global one). True: verify now (a token was taken); false: over budget, refuse.
   */
  admitProven(nowMs: number, address: string, peer: boolean): boolean {
    if ((!peer && !this.perSource.take(nowMs, address)) || !this.budget.take(nowMs, 0)) {
      this.budgetDrops++;
      return false;
    }
    this.verifications++;
    return true;
  }

  private retry(): OpenVerdictValue {
    this.cookieReplies++;
    return OpenVerdict.Retry;
  }

  /** Writes the cookie for `address`:`port` now ({@link COOKIE_BYTES} bytes) into `out` at `offset`. */
  writeCookie(nowMs: number, address: string, port: number, out: Uint8Array, offset: number): void {
    this.rotate(nowMs);
    out.set(mac(this.key, this.keyEpoch, address, port), offset);
  }

  /** Takes a reload's budgets (tokens held are kept, clipped to the new depth). */
  applyLimits(limits: LimitsSpec): void {
    this.budget.setRates(limits.ticketVerificationsPerSecond, 0, TICKET_VERIFICATIONS_BURST_MS);
    this.demand.setRates(limits.ticketVerificationsPerSecond, 0, TICKET_VERIFICATIONS_BURST_MS);
    this.perSource.setRate(limits.ticketVerificationsPerSourcePerSecond);
  }

  private cookieValid(nowMs: number, address: string, port: number, cookie: Uint8Array): boolean {
    if (cookie.length !== COOKIE_BYTES) return false;
    this.rotate(nowMs);
    if (timingSafeEqual(mac(this.key, this.keyEpoch, address, port), cookie)) return true;
    return this.previousKey !== undefined && timingSafeEqual(mac(this.previousKey, this.keyEpoch - 1, address, port), cookie);
  }

  /** Draws a new secret when `nowMs` is in a later epoch; the previous one stays valid for one more. */
  private rotate(nowMs: number): void {
    const epoch = Math.floor(nowMs / COOKIE_KEY_ROTATE_MS);
    if (epoch === this.keyEpoch) return;
    this.previousKey = epoch === this.keyEpoch + 1 ? this.key : undefined;
    this.key = new Uint8Array(32);
    this.randomFill(this.key);
    this.keyEpoch = epoch;
  }
}

function mac(key: Uint8Array, epoch: number, address: string, port: number): Uint8Array {
  const fields = Buffer.allocUnsafe(6);
  fields.writeUInt32BE(epoch >>> 0, 0);
  fields.writeUInt16BE(port & 0xffff, 4);
  return createHmac('sha256', key).update(COOKIE_LABEL).update(fields).update(address).digest().subarray(0, COOKIE_BYTES);
}
