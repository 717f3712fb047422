/**
 * Errors the SDK rejects with. Codes are proto's `SLIP_ERR_*` catalog
 * (`proto/src/errors.ts`): refusals a relay sends (`SLIP_ERR_TICKET_EXPIRED`, `…_FORGED`,
 * `…_REVOKED`, `…_WRONG_ORIGIN`, `…_MISMATCH`, `SLIP_ERR_RELAY_FULL`, …) pass through
 * unchanged, and the SDK's own (`SLIP_ERR_UNKNOWN_ORIGIN`, `…_COORDINATOR_UNREACHABLE`,
 * `…_NO_RELAY`, `…_TICKET_PROVIDER`, `…_INVALID_RELAY_ADDRESS`, `…_BIND_FAILED`) are there
 * too.
 *
 * The classes themselves live in the catalog (the SDK core needs them and must not
 * import this driver layer); this module re-exports them so that the SDK's importers
 * keep one place to take them from.
 */
export { isTicketRefusal, SlipstreamError } from '../../proto/src/errors.js';
