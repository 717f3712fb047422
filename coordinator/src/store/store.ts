/**
 * The coordinator's shared state: relay records, smoothed measurements and
 * revocations, each with an expiry. One interface, two implementations that pass one
 * compliance suite (coordinator/test/store-compliance.test.ts):
 * - {@link MemoryStore}: one coordinator, nothing to install (the default);
 * - {@link RedisStore}: several replicas on one Redis share everything; changes are
 *   published so that every replica applies them at once.
 *
 * The request path never waits for the store: replicas answer from their own core
 * and write through. A store whose backend is unreachable queues writes (coalesced
 * per key, bounded), says so in {@link Store.status}, replays them when the backend
 * returns, and then tells subscribers to `resync` (reload everything).
 */
import type { MeasurementRecord } from '../core/measurements.js';
import type { RelayRecord } from '../core/registry.js';
import type { Revocation } from '../core/revocations.js';
import type { JoinTokenRecord, RelayIdentity } from '../core/relay-identities.js';
import type { StoreStatus } from '../../../proto/src/api/contract.js';
export type { StoreStatus };

/** A change made through another handle on the same backend (another replica). */
export type StoreChange =
  | { readonly kind: 'relay'; readonly record: RelayRecord }
  | { readonly kind: 'measurement'; readonly record: MeasurementRecord }
  | { readonly kind: 'revocation'; readonly revocation: Revocation }
  | { readonly kind: 'identity'; readonly identity: RelayIdentity }
  /** The backend was unreachable and is back: changes may have been missed; reload with the list methods. */
  | { readonly kind: 'resync' };

/** Listener of {@link Store.subscribe}. */
export type StoreListener = (change: StoreChange) => void;

/** See the module comment. Times are wall-clock epoch ms. */
export interface Store {
  /** `memory` or `redis`. */
  readonly kind: 'memory' | 'redis';
  /** Writes (replaces) a relay record, kept until `expiresAtMs`. Never rejects for an unreachable backend (the write is queued). */
  putRelay(record: RelayRecord, expiresAtMs: number): Promise<void>;
  /** Relay records not expired at `nowMs`. Rejects when the backend is unreachable. */
  listRelays(nowMs: number): Promise<RelayRecord[]>;
  /** Writes (replaces) the measurement for `(record.from, record.to)`, kept until `expiresAtMs`. Never rejects for an unreachable backend. */
  putMeasurement(record: MeasurementRecord, expiresAtMs: number): Promise<void>;
  /** Measurements not expired at `nowMs`. Rejects when the backend is unreachable. */
  listMeasurements(nowMs: number): Promise<MeasurementRecord[]>;
  /** Records a revocation, kept until `revocation.expiresAtMs`; a second one for the same session replaces the first. Never rejects for an unreachable backend. */
  putRevocation(revocation: Revocation): Promise<void>;
  /** Revocations not expired at `nowMs`. Rejects when the backend is unreachable. */
  listRevocations(nowMs: number): Promise<Revocation[]>;
  /** Writes (replaces) a relay's identity, kept until revoked and replaced. Never rejects for an unreachable backend. */
  putIdentity(identity: RelayIdentity): Promise<void>;
  /** Every relay identity held (revoked ones too). Rejects when the backend is unreachable. */
  listIdentities(): Promise<RelayIdentity[]>;
  /** Stores a join token (its hash), kept until `token.expiresAtMs`. Rejects when the backend is unreachable: the token would not be known to other replicas. */
  putJoinToken(token: JoinTokenRecord): Promise<void>;
  /**
   * Takes a join token: returns it and deletes it in one atomic step, so that of two
   * replicas (or requests) taking the same token at once only one gets it. Undefined when
   * unknown, already taken or expired at `nowMs`. Rejects when the backend is unreachable.
   */
  takeJoinToken(tokenHash: string, nowMs: number): Promise<JoinTokenRecord | undefined>;
  /** Deletes entries expired at `nowMs`; resolves to how many (0 when the backend is unreachable). */
  prune(nowMs: number): Promise<number>;
  /** Calls `listener` for changes made through other handles on the same backend, and for `resync`. Returns the unsubscribe function. */
  subscribe(listener: StoreListener): () => void;
  /** Current health. */
  status(): StoreStatus;
  /** Releases connections; idempotent. Queued writes are dropped. */
  close(): Promise<void>;
}
