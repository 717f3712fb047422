/**
 * Per-relay identities (issue 14 row 6): which Ed25519 public key speaks for which relay
 * id, whether it is revoked, and the replay guard of signed requests (timestamps within
 * {@link RELAY_SIGNATURE_WINDOW_MS} of the coordinator clock, each nonce once within the
 * window). Signature checking itself is `proto/src/api/relay-identity.ts`, called by the
 * driver (`coordinator/src/relay-auth.ts`), which hands this core the verified request.
 *
 * Identities are shared through the store: {@link RelayIdentities.apply} takes a record
 * from any replica; the one enrolled last wins, and a revocation of that same enrollment
 * wins over it. Nonces are per replica: a request replayed to another replica within the
 * window is accepted there once — it repeats only what that relay itself said.
 *
 * Sans-IO: every method that needs the time takes `nowMs` (wall clock, epoch ms).
 */
import { RELAY_SIGNATURE_WINDOW_MS } from '../../../proto/src/api/relay-identity.js';
import { RELAY_NONCES_PER_RELAY_MAX } from './constants.js';

/** An enrolled relay key, as the store holds it. */
export interface RelayIdentity {
  readonly relayId: string;
  /** Raw Ed25519 public key, base64. */
  readonly publicKey: string;
  /** Epoch ms. */
  readonly enrolledAtMs: number;
  /** Epoch ms, when revoked. */
  readonly revokedAtMs?: number;
}

/** A join token as the store holds it: only its hash, bound to one relay id. */
export interface JoinTokenRecord {
  /** SHA-256 of the token, hex. */
  readonly tokenHash: string;
  readonly relayId: string;
  /** Epoch ms. */
  readonly expiresAtMs: number;
  /** Where the relay is, when the admin said (handed to it at enrollment). */
  readonly placement?: { readonly region: string; readonly latitude: number; readonly longitude: number };
}

/** Why a signed request that verified is still refused. */
export type FreshnessRefusal = 'stale' | 'replayed' | 'busy';

/** See the module comment. */
export class RelayIdentities {
  private readonly identities = new Map<string, RelayIdentity>();
  /** Nonces seen, by relay id: nonce → until when it is remembered (epoch ms). */
  private readonly nonces = new Map<string, Map<string, number>>();

  constructor(private readonly windowMs = RELAY_SIGNATURE_WINDOW_MS, private readonly noncesPerRelayMax = RELAY_NONCES_PER_RELAY_MAX) {}

  /** Identities held. */
  get size(): number {
    return this.identities.size;
  }

  /** The identity of `relayId` (revoked or not), if any. */
  get(relayId: string): RelayIdentity | undefined {
    return this.identities.get(relayId);
  }

  /** Every identity held, by relay id. */
  list(): RelayIdentity[] {
    return [...this.identities.values()].sort((a, b) => (a.relayId < b.relayId ? -1 : a.relayId > b.relayId ? 1 : 0));
  }

  /**
   * Takes an identity (enrolled or revoked here, or from the store): kept when it is a
   * later enrollment than the one held, or revokes the one held. True when it changed
   * what is held. A new key forgets the old key's nonces.
   */
  apply(identity: RelayIdentity): boolean {
    const held = this.identities.get(identity.relayId);
    if (held !== undefined) {
      if (identity.enrolledAtMs < held.enrolledAtMs) return false;
      if (identity.enrolledAtMs === held.enrolledAtMs && identity.publicKey === held.publicKey && (held.revokedAtMs !== undefined || identity.revokedAtMs === undefined)) return false;
    }
    this.identities.set(identity.relayId, identity);
    if (held?.publicKey !== identity.publicKey) this.nonces.delete(identity.relayId);
    return true;
  }

  /**
   * The replay guard, for a request whose signature verified: refused when its
   * timestamp is outside the window around `nowMs` (`stale`), when its nonce was seen
   * (`replayed`), or when the relay has {@link RELAY_NONCES_PER_RELAY_MAX} nonces in the
   * window (`busy`). Otherwise the nonce is remembered and the request accepted.
   */
  admit(nowMs: number, relayId: string, timestampMs: number, nonce: string): { ok: true } | { ok: false; refusal: FreshnessRefusal } {
    if (Math.abs(nowMs - timestampMs) > this.windowMs) return { ok: false, refusal: 'stale' };
    let seen = this.nonces.get(relayId);
    if (seen === undefined) {
      seen = new Map();
      this.nonces.set(relayId, seen);
    }
    if (seen.has(nonce)) return { ok: false, refusal: 'replayed' };
    if (seen.size >= this.noncesPerRelayMax) {
      // Insertion order is arrival order; a nonce may go once its timestamp can no longer pass the window.
      for (const [n, untilMs] of seen) {
        if (untilMs > nowMs) break;
        seen.delete(n);
      }
      if (seen.size >= this.noncesPerRelayMax) return { ok: false, refusal: 'busy' };
    }
    seen.set(nonce, Math.max(nowMs, timestampMs) + this.windowMs);
    return { ok: true };
  }
}
