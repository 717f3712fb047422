/**
 * Errors the SDK rejects with. Codes follow proto's `SLIP_ERR_*` catalog: refusals a
 * relay sends (`SLIP_ERR_TICKET_EXPIRED`, `…_FORGED`, `…_REVOKED`, `…_WRONG_ORIGIN`,
 * `…_MISMATCH`, `SLIP_ERR_RELAY_FULL`, …) pass through unchanged; the three below are
 * the SDK's own (to be folded into proto/src/errors.ts by the lead).
 */

/** Codes only the SDK produces. */
export const SdkErrorCode = {
  /** The coordinator does not know the origin asked for; check `--origin` against `GET /v1/origins`. */
  UnknownOrigin: 'SLIP_ERR_UNKNOWN_ORIGIN',
  /** The coordinator could not be reached and no cached candidate list exists; check the URL or connect once while it is up. */
  CoordinatorUnreachable: 'SLIP_ERR_COORDINATOR_UNREACHABLE',
  /** No candidate relay answered probes or opened a session in time; check the relays' tunnel ports and firewalls. */
  NoRelay: 'SLIP_ERR_NO_RELAY',
  /** The ticket provider failed (threw, returned malformed data, or did not answer within `ticketProviderTimeoutMs`). */
  TicketProvider: 'SLIP_ERR_TICKET_PROVIDER',
  /** A relay candidate (from the coordinator or the cache file) has an address no datagram can reach (not an IP literal, port outside 1–65535); it is skipped. */
  InvalidRelayAddress: 'SLIP_ERR_INVALID_RELAY_ADDRESS',
  /** The tunnel's local UDP socket could not be bound; check `bindAddress`. */
  BindFailed: 'SLIP_ERR_BIND_FAILED',
} as const;

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
