/**
 * Every default and limit of the coordinator, in one place. Config keys and flags
 * (coordinator/README.md) default to these; units are in the names. Those the sans-IO
 * core reads live in core/constants.ts (the core must not import this layer) and are
 * re-exported here, so this stays the one module drivers and tests import.
 */

export * from './core/constants.js';

/** Address the HTTP API listens on when neither `--listen` nor `listen` is given. */
export const LISTEN_DEFAULT = '127.0.0.1:7400';

/** Accepted range of the lease, ms. */
export const LEASE_MS_MIN = 500;
/** Accepted range of the lease, ms. */
export const LEASE_MS_MAX = 600_000;
/** Heartbeat interval the coordinator asks relays for: a third of the lease, so two may be lost. */
export const HEARTBEAT_LEASE_FRACTION = 1 / 3;

/** Largest request body accepted, bytes. */
export const BODY_BYTES_MAX = 256 * 1024;
/** Writes a store keeps while its backend is unreachable (coalesced per key); older ones beyond this are dropped. */
export const STORE_OUTBOX_MAX = 100_000;
/** Key prefix of every Redis key and channel. */
export const REDIS_KEY_PREFIX_DEFAULT = 'slip:';

// The API contract's limits are proto's (declared once with the contract); re-exported for the coordinator's modules.
export { REPORTS_PER_REQUEST_MAX, REVOCATION_WAIT_MS_DEFAULT, REVOCATION_WAIT_MS_MAX } from '../../proto/src/api/contract.js';
