/**
 * Errors the SDK rejects with. Codes are proto's `SLIP_ERR_*` catalog
 * (`proto/src/errors.ts`): refusals a relay sends (`SLIP_ERR_TICKET_EXPIRED`, `…_FORGED`,
 * `…_REVOKED`, `…_WRONG_ORIGIN`, `…_MISMATCH`, `SLIP_ERR_RELAY_FULL`, …) pass through
 * unchanged, and the SDK's own (`SLIP_ERR_UNKNOWN_ORIGIN`, `…_COORDINATOR_UNREACHABLE`,
 * `…_NO_RELAY`, `…_TICKET_PROVIDER`, `…_INVALID_RELAY_ADDRESS`, `…_BIND_FAILED`) are there
 * too.
 */

/**
 * A typed rejection of `connect()` or a fatal end of a connection. `code` is stable
 * (match on it); `message` says what was wrong and what to do.
 */
export class SlipstreamError extends Error {
  constructor(
    /** Stable code, e.g. `SLIP_ERR_TICKET_FORGED` or `SLIP_ERR_UNKNOWN_ORIGIN`. */
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SlipstreamError';
  }
}

/** Whether a relay refusal `code` is about the ticket itself (every relay would refuse it), so the connection must fail. */
export function isTicketRefusal(code: string): boolean {
  return code.startsWith('SLIP_ERR_TICKET_');
}
