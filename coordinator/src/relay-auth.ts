/**
 * Relay authentication and identities, the driver half (issue 14 row 6): checks the
 * `Slip-Relay` request signature (`proto/src/api/relay-identity.ts`) against the relay's
 * enrolled key, holds a relay to speaking for itself, and serves enrollment
 * (`POST /v1/relays/enroll`, one-time join token) and the admin routes that mint join
 * tokens and list or revoke identities. State and the replay guard are the sans-IO
 * {@link RelayIdentities}; identities and token hashes live in the {@link Store}.
 *
 * The fleet secret (`Authorization: Bearer`) still works for relay ids that have no
 * identity, unless `fleet.requireRelayIdentity` is set; see deploy/README.md for the
 * migration.
 */
import { createHash, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { JOIN_TOKEN, parseRelayAuthorization, RELAY_AUTH_SCHEME, RELAY_PUBLIC_KEY_BYTES, verifyRelayRequest } from '../../proto/src/api/relay-identity.js';
import { ticketVerifyKeyFromRaw } from '../../proto/src/ticket.js';
import { fail, invalid, parseBody, RELAY_ID_RULE, type ApiRequest, type ApiResponse } from './api.js';
import type { CoordinatorSettings } from './config.js';
import { JOIN_TOKEN_TTL_MS_MAX, JOIN_TOKEN_TTL_MS_MIN } from './constants.js';
import { RelayIdentities, type RelayIdentity } from './core/relay-identities.js';
import type { Store } from './store/store.js';
import { check, type FieldRule } from './validate.js';

/** Why a relay request or an enrollment was refused, as the refusal metric labels it. */
export type RelayAuthRefusal = 'identity_required' | 'unknown_identity' | 'identity_revoked' | 'bad_signature' | 'stale' | 'replayed' | 'busy' | 'not_self' | 'invalid_token';

/** Who a relay request speaks as: a relay's own key, or the fleet secret (any relay id without an identity). */
export type RelayPrincipal = { readonly kind: 'identity'; readonly relayId: string } | { readonly kind: 'secret' };

/** What a {@link RelayAuth} is given. */
export interface RelayAuthInit {
  readonly settings: CoordinatorSettings;
  readonly store: Store;
  readonly logger: Logger;
  /** Wall clock, epoch ms. */
  readonly now: () => number;
  /** Raw Ed25519 ticket public key, base64 (enrollment answers carry it). */
  readonly ticketPublicKey: string;
  /** Counts a refusal (the `…_relay_auth_refusals_total{reason}` metric). Default: nothing. */
  readonly onRefusal?: (reason: RelayAuthRefusal) => void;
}

const ENROLL_RULE: FieldRule = {
  type: 'object',
  fields: {
    relayId: { ...RELAY_ID_RULE, optional: true },
    publicKey: { type: 'string', maxChars: 64, pattern: /^[A-Za-z0-9+/]{43}=$/, patternText: 'a raw 32-byte Ed25519 public key in base64' },
    token: { type: 'string', maxChars: 64, pattern: JOIN_TOKEN, patternText: "a join token ('sjt_…', from slipstream coordinator token)" },
  },
};

const MINT_RULE: FieldRule = {
  type: 'object',
  fields: {
    relayId: RELAY_ID_RULE,
    ttlMs: { type: 'number', min: JOIN_TOKEN_TTL_MS_MIN, max: JOIN_TOKEN_TTL_MS_MAX, integer: true, optional: true },
    placement: {
      type: 'object',
      optional: true,
      fields: {
        region: { type: 'string', maxChars: 64, pattern: /^\S+$/, patternText: 'a region name, e.g. eu-central' },
        latitude: { type: 'number', min: -90, max: 90 },
        longitude: { type: 'number', min: -180, max: 180 },
      },
    },
  },
};


function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** See the module comment. */
export class RelayAuth {
  /** The sans-IO identities and replay guard. */
  readonly identities = new RelayIdentities();
  /** Verify keys by relay id, built once per enrolled key. */
  private readonly verifyKeys = new Map<string, { publicKey: string; key: KeyObject }>();
  private readonly adminDigests: Buffer[];

  constructor(private readonly init: RelayAuthInit) {
    this.adminDigests = init.settings.keys.adminKeys.map((k) => createHash('sha256').update(k, 'utf8').digest());
  }

  /** Takes an identity from the store (another replica, or a reload). */
  apply(identity: RelayIdentity): void {
    this.identities.apply(identity);
  }

  /**
   * Authenticates a relay request: a `Slip-Relay` signature by an enrolled, unrevoked
   * key that is fresh (not replayed), or — unless `fleet.requireRelayIdentity` —
   * whatever `bearer` (the fleet secret check) says. The 401/403 answer otherwise.
   */
  authenticate(req: ApiRequest, bearer: () => { ok: true } | { ok: false; response: ApiResponse }): { ok: true; principal: RelayPrincipal } | { ok: false; response: ApiResponse } {
    const header = req.authorization ?? '';
    if (!header.startsWith(`${RELAY_AUTH_SCHEME} `)) {
      if (this.init.settings.fleet.requireRelayIdentity) {
        this.refused('identity_required');
        return { ok: false, response: fail(401, 'identity_required', `this coordinator sets fleet.requireRelayIdentity: relays sign with their own enrolled key (${RELAY_AUTH_SCHEME}); the fleet secret is not accepted. Enroll the relay with a join token (slipstream coordinator token --relay-id ID)`, 'authorization') };
      }
      const secret = bearer();
      return secret.ok ? { ok: true, principal: { kind: 'secret' } } : secret;
    }
    const parsed = parseRelayAuthorization(header);
    if (!parsed.ok) {
      this.refused('bad_signature');
      return { ok: false, response: fail(401, 'unauthorized', `malformed ${RELAY_AUTH_SCHEME} header: ${parsed.reason}`, 'authorization') };
    }
    const auth = parsed.value;
    const identity = this.identities.get(auth.relayId);
    if (identity === undefined) {
      this.refused('unknown_identity');
      return { ok: false, response: fail(401, 'unknown_identity', `relay '${auth.relayId}' has no enrolled key here; enroll it (POST /v1/relays/enroll with a join token)`, 'authorization') };
    }
    if (identity.revokedAtMs !== undefined) {
      this.refused('identity_revoked');
      this.init.logger.warn({ event: 'relayIdentityRefused', relayId: auth.relayId, remoteAddress: req.remoteAddress }, `refused relay ${auth.relayId}: its identity was revoked`);
      return { ok: false, response: fail(403, 'identity_revoked', `relay '${auth.relayId}' had its identity revoked; it needs a new join token to enroll again`, 'authorization') };
    }
    const pathAndQuery = req.query.size > 0 ? `${req.path}?${req.query.toString()}` : req.path;
    if (!verifyRelayRequest(this.verifyKey(identity), auth, req.method, pathAndQuery, req.body)) {
      this.refused('bad_signature');
      return { ok: false, response: fail(401, 'identity_key_mismatch', `the signature does not verify with relay '${auth.relayId}'s enrolled key (another key — a relay with a new key enrolls it with a new join token — or the request was altered)`, 'authorization') };
    }
    const fresh = this.identities.admit(this.init.now(), auth.relayId, auth.timestampMs, auth.nonce);
    if (!fresh.ok) {
      this.refused(fresh.refusal);
      if (fresh.refusal === 'busy') return { ok: false, response: fail(429, 'rate_limited', `relay '${auth.relayId}' sent too many signed requests in the last minute`, 'authorization') };
      const reason = fresh.refusal === 'stale' ? `the timestamp is more than 60 s from the coordinator's clock (${this.init.now()} ms); check the relay's clock (NTP)` : 'this nonce was already used: a replayed request';
      return { ok: false, response: fail(401, 'unauthorized', reason, 'authorization') };
    }
    return { ok: true, principal: { kind: 'identity', relayId: auth.relayId } };
  }

  /**
   * Whether `principal` may speak for `relayId` (the body's relay id): a relay's own
   * key only for itself; the fleet secret only for a relay id that has no identity
   * (enrolled or revoked). Undefined when allowed, else the 403 answer.
   */
  speaksFor(principal: RelayPrincipal, relayId: string, field = 'relayId'): ApiResponse | undefined {
    if (principal.kind === 'identity') {
      if (principal.relayId === relayId) return undefined;
      this.refused('not_self');
      this.init.logger.warn({ event: 'relayImpersonationRefused', signer: principal.relayId, claimedRelayId: relayId }, `refused relay ${principal.relayId} speaking for relay ${relayId}`);
      return fail(403, 'forbidden', `signed by relay '${principal.relayId}', which may speak only for itself, not for '${relayId}'`, field);
    }
    if (this.identities.get(relayId) === undefined) return undefined;
    this.refused('identity_required');
    return fail(403, 'identity_required', `relay '${relayId}' has its own enrolled key; the fleet secret cannot speak for it`, field);
  }

  // ---- enrollment and admin routes ------------------------------------------------------

  /** `POST /v1/relays/enroll`. */
  async enroll(req: ApiRequest): Promise<ApiResponse> {
    const body = parseBody(req);
    if (!body.ok) return body.response;
    const bad = check(body.value, ENROLL_RULE, '');
    if (bad) return invalid(bad);
    const { relayId: asked, publicKey, token } = body.value as { relayId?: string; publicKey: string; token: string };
    if (Buffer.from(publicKey, 'base64').length !== RELAY_PUBLIC_KEY_BYTES) return fail(400, 'invalid_field', 'does not decode to 32 bytes', 'publicKey');
    try {
      ticketVerifyKeyFromRaw(new Uint8Array(Buffer.from(publicKey, 'base64')));
    } catch {
      return fail(400, 'invalid_field', 'is not an Ed25519 public key', 'publicKey');
    }
    const allowed = this.init.settings.allowedRelayIds;
    if (asked !== undefined && allowed.length > 0 && !allowed.includes(asked)) return fail(403, 'relay_not_allowed', `relay '${asked}' is not in this coordinator's allowedRelayIds`, 'relayId');
    const nowMs = this.init.now();
    let taken;
    try {
      taken = await this.init.store.takeJoinToken(sha256Hex(token), nowMs);
    } catch (error) {
      return fail(503, 'store_unavailable', `cannot check the join token: ${(error as Error).message}; retry`);
    }
    if (taken === undefined) {
      this.refused('invalid_token');
      this.init.logger.warn({ event: 'joinTokenRefused', relayId: asked ?? null, remoteAddress: req.remoteAddress }, `refused an enrollment for relay ${asked ?? '(unnamed)'}: unknown, used or expired join token`);
      return fail(403, 'invalid_token', `unknown, already used or expired; mint a new one (slipstream coordinator token --relay-id ${asked ?? 'ID'})`, 'token');
    }
    const relayId = asked ?? taken.relayId;
    if (allowed.length > 0 && !allowed.includes(relayId)) return fail(403, 'relay_not_allowed', `relay '${relayId}' is not in this coordinator's allowedRelayIds`, 'relayId');
    if (taken.relayId !== relayId) {
      this.refused('invalid_token');
      this.init.logger.warn({ event: 'joinTokenRefused', relayId, tokenRelayId: taken.relayId, remoteAddress: req.remoteAddress }, `refused an enrollment for relay ${relayId} with a token minted for ${taken.relayId}; that token is now spent`);
      return fail(403, 'invalid_token', `minted for another relay id; a token enrolls only the relay it names (and this one is now spent)`, 'token');
    }
    const identity: RelayIdentity = { relayId, publicKey, enrolledAtMs: Math.max(nowMs, (this.identities.get(relayId)?.enrolledAtMs ?? 0) + 1) };
    this.identities.apply(identity);
    this.writeIdentity(identity);
    this.init.logger.info({ event: 'relayEnrolled', relayId, remoteAddress: req.remoteAddress }, `relay ${relayId} enrolled its own key`);
    const origins = this.init.settings.origins.filter((o) => o.address !== undefined).map((o) => ({ name: o.name, address: o.address! }));
    const answer = {
      relayId,
      enrolledAtMs: identity.enrolledAtMs,
      ticketPublicKey: this.init.ticketPublicKey,
      sealKey: Buffer.from(this.init.settings.keys.sealKey).toString('base64'),
      origins,
      ...(taken.placement !== undefined ? { placement: taken.placement } : {}),
    };
    return { status: 200, json: answer };
  }

  /** `POST /v1/admin/join-tokens`. */
  async mintJoinToken(req: ApiRequest): Promise<ApiResponse> {
    const denied = this.authorizeAdmin(req);
    if (denied) return denied;
    const body = parseBody(req);
    if (!body.ok) return body.response;
    const bad = check(body.value, MINT_RULE, '');
    if (bad) return invalid(bad);
    const { relayId, ttlMs, placement } = body.value as { relayId: string; ttlMs?: number; placement?: { region: string; latitude: number; longitude: number } };
    const token = `sjt_${randomBytes(32).toString('base64url')}`;
    const expiresAtMs = this.init.now() + (ttlMs ?? this.init.settings.fleet.joinTokenTtlMs);
    try {
      await this.init.store.putJoinToken({ tokenHash: sha256Hex(token), relayId, expiresAtMs, ...(placement !== undefined ? { placement } : {}) });
    } catch (error) {
      return fail(503, 'store_unavailable', `cannot store the join token: ${(error as Error).message}; retry`);
    }
    this.init.logger.info({ event: 'joinTokenMinted', relayId, expiresAtMs }, `join token minted for relay ${relayId}`);
    return { status: 201, json: { relayId, token, expiresAtMs } };
  }

  /** `GET /v1/admin/relay-identities`. */
  listIdentities(req: ApiRequest): ApiResponse {
    const denied = this.authorizeAdmin(req);
    if (denied) return denied;
    return { status: 200, json: { identities: this.identities.list() } };
  }

  /** `DELETE /v1/admin/relay-identities/:relayId`: that relay's requests are refused from now on; no other relay is touched. */
  revokeIdentity(req: ApiRequest, relayId: string): ApiResponse {
    const denied = this.authorizeAdmin(req);
    if (denied) return denied;
    const held = this.identities.get(relayId);
    if (held === undefined) return fail(404, 'unknown_relay', `relay '${relayId.slice(0, 64)}' has no enrolled identity here; GET /v1/admin/relay-identities lists them`, 'relayId');
    const revokedAtMs = held.revokedAtMs ?? this.init.now();
    if (held.revokedAtMs === undefined) {
      const revoked: RelayIdentity = { ...held, revokedAtMs };
      this.identities.apply(revoked);
      this.writeIdentity(revoked);
      this.init.logger.warn({ event: 'relayIdentityRevoked', relayId }, `relay ${relayId}: identity revoked; its requests are refused from now on`);
    }
    return { status: 200, json: { relayId, revoked: true, revokedAtMs } };
  }

  private refused(reason: RelayAuthRefusal): void {
    this.init.onRefusal?.(reason);
  }

  private authorizeAdmin(req: ApiRequest): ApiResponse | undefined {
    const m = /^Bearer\s+(\S+)$/i.exec(req.authorization ?? '');
    if (!m) return fail(401, 'unauthorized', "missing; send 'Authorization: Bearer <an admin key>' (keys.adminKeys)", 'authorization');
    if (this.adminDigests.length === 0) return fail(403, 'forbidden', 'no admin key is configured on this coordinator (keys.adminKeys)', 'authorization');
    const d = createHash('sha256').update(m[1]!, 'utf8').digest();
    let ok = false;
    for (const a of this.adminDigests) ok = timingSafeEqual(d, a) || ok;
    return ok ? undefined : fail(403, 'forbidden', 'does not match an admin key configured on this coordinator (keys.adminKeys)', 'authorization');
  }

  private verifyKey(identity: RelayIdentity): KeyObject {
    const cached = this.verifyKeys.get(identity.relayId);
    if (cached !== undefined && cached.publicKey === identity.publicKey) return cached.key;
    const key = ticketVerifyKeyFromRaw(new Uint8Array(Buffer.from(identity.publicKey, 'base64')));
    this.verifyKeys.set(identity.relayId, { publicKey: identity.publicKey, key });
    return key;
  }

  private writeIdentity(identity: RelayIdentity): void {
    void this.init.store.putIdentity(identity).catch((error: Error) => this.init.logger.warn({ event: 'storeWriteFailed', reason: error.message }, 'store write failed'));
  }
}
