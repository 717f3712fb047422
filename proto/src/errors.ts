/**
 * The one catalog of Slipstream errors. Every error has a stable code
 * (`SLIP_ERR_*`) that scripts and the SDK can match on, and a message that says what
 * was wrong and what to do about it.
 *
 * Exceptions are for programmer and operator errors (bad flags, bad config). Bad
 * input from the network is never thrown: parsers return a {@link ParseFailure}
 * value instead, so a hostile packet costs a branch, not a stack unwind.
 */

/** Stable error codes. Never renumber or rename; add new ones at the end. */
export const ErrorCode = {
  /** A command-line flag is unknown, missing its value, or out of range. */
  CliUsage: 'SLIP_ERR_CLI_USAGE',
  /** A configuration file or key is invalid. */
  ConfigInvalid: 'SLIP_ERR_CONFIG_INVALID',
  /** A packet or message could not be parsed (see {@link ParseFailure}). */
  Parse: 'SLIP_ERR_PARSE',
  /** A session ticket has expired. */
  TicketExpired: 'SLIP_ERR_TICKET_EXPIRED',
  /** A session ticket's signature does not verify. */
  TicketForged: 'SLIP_ERR_TICKET_FORGED',
  /** A session ticket has been revoked. */
  TicketRevoked: 'SLIP_ERR_TICKET_REVOKED',
  /** A session ticket names another origin than the one asked for. */
  TicketWrongOrigin: 'SLIP_ERR_TICKET_WRONG_ORIGIN',
  /** A simulator scenario or link model is invalid. */
  SimInvalid: 'SLIP_ERR_SIM_INVALID',
  /** An operation was attempted on a closed object. */
  Closed: 'SLIP_ERR_CLOSED',
  /** The relay is at its session cap (in total or for this source address); try another relay. */
  RelayFull: 'SLIP_ERR_RELAY_FULL',
  /** The relay is draining for a restart and takes no new sessions; try another relay. */
  RelayDraining: 'SLIP_ERR_RELAY_DRAINING',
  /** The session saw no traffic for its idle timeout and was closed; open a new one with a fresh ticket. */
  SessionIdle: 'SLIP_ERR_SESSION_IDLE',
  /** A session ticket names a session id other than the one in the packet header. */
  TicketMismatch: 'SLIP_ERR_TICKET_MISMATCH',
  /** None of the FEC modes the client offered is enabled on this relay; offer `off` too. */
  FecUnsupported: 'SLIP_ERR_FEC_UNSUPPORTED',
  /** The relay has no session with this id (it restarted, or the session ended); open the session again. */
  UnknownSession: 'SLIP_ERR_UNKNOWN_SESSION',
  /** A simulation stopped making progress in virtual time (an event storm or a timer re-armed at the same instant forever); the message names the event that repeats. */
  SimLivelock: 'SLIP_ERR_SIM_LIVELOCK',
  /** SDK: the coordinator does not know the origin asked for; check `--origin` against `GET /v1/origins`. */
  UnknownOrigin: 'SLIP_ERR_UNKNOWN_ORIGIN',
  /** SDK: the coordinator could not be reached and no cached candidate list exists; check the URL or connect once while it is up. */
  CoordinatorUnreachable: 'SLIP_ERR_COORDINATOR_UNREACHABLE',
  /** SDK: no candidate relay answered probes or opened a session in time; check the relays' tunnel ports and firewalls. */
  NoRelay: 'SLIP_ERR_NO_RELAY',
  /** SDK: the ticket provider failed (threw, returned malformed data, or did not answer within `ticketProviderTimeoutMs`). */
  TicketProvider: 'SLIP_ERR_TICKET_PROVIDER',
  /** SDK: a relay candidate (from the coordinator or the cache file) has an address no datagram can reach (not an IP literal, port outside 1–65535); it is skipped. */
  InvalidRelayAddress: 'SLIP_ERR_INVALID_RELAY_ADDRESS',
  /** SDK: the tunnel's local UDP socket could not be bound; check `bindAddress`. */
  BindFailed: 'SLIP_ERR_BIND_FAILED',
  /**
   * The relay follows a coordinator's revocation feed but holds no revocation list newer
   * than its `tunnel.revocationMaxAgeMs` (it started, or lost the coordinator, and its feed
   * has not answered since), so it cannot tell a revoked ticket from a valid one and takes
   * no new sessions; try another relay.
   */
  RelayRevocationsStale: 'SLIP_ERR_RELAY_REVOCATIONS_STALE',
} as const;

/** One of the {@link ErrorCode} values. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error Slipstream throws on purpose. */
export class SlipError extends Error {
  /** Stable machine-readable code, e.g. `SLIP_ERR_CLI_USAGE`. */
  readonly code: ErrorCodeValue;
  constructor(code: ErrorCodeValue, message: string) {
    super(message);
    this.name = 'SlipError';
    this.code = code;
  }
}

/**
 * A typed rejection of the SDK's `connect()` or a fatal end of a connection. `code` is
 * stable (match on it); `message` says what was wrong and what to do. Codes are this
 * catalog's `SLIP_ERR_*`: refusals a relay sends pass through unchanged, and the SDK's
 * own are here too. It lives in proto (not beside the SDK's driver) so that the SDK core
 * can name ticket refusals without importing its driver layer; `sdk/src/errors.ts`
 * re-exports it.
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

/**
 * A bad command-line flag. The CLI prints `message` on one line and exits 2.
 * The message always names the flag and what it accepts.
 */
export class CliUsageError extends SlipError {
  /** The flag or command that was wrong, e.g. `--loss`. */
  readonly flag: string;
  constructor(flag: string, message: string) {
    super(ErrorCode.CliUsage, message);
    this.name = 'CliUsageError';
    this.flag = flag;
  }
}

/** An invalid configuration value. The message names the file, the key and the accepted range. */
export class ConfigError extends SlipError {
  /** The file the value came from, or `<flags>`/`<inline>` when it did not come from a file. */
  readonly file: string;
  /** Dotted path of the offending key, e.g. `rules[2].idleTimeoutMs`. */
  readonly key: string;
  /** 1-based line of the offending value in the file, when known. */
  readonly line: number | undefined;
  constructor(file: string, key: string, message: string, line?: number) {
    super(ErrorCode.ConfigInvalid, `${file}${line ? `:${line}` : ''}: ${key}: ${message}`);
    this.name = 'ConfigError';
    this.file = file;
    this.key = key;
    this.line = line;
  }
}

/** An invalid simulator model or scenario; the message names the parameter and its range. */
export class SimConfigError extends SlipError {
  /** The parameter that was wrong, e.g. `loss.p`. */
  readonly parameter: string;
  constructor(parameter: string, message: string) {
    super(ErrorCode.SimInvalid, message);
    this.name = 'SimConfigError';
    this.parameter = parameter;
  }
}

/**
 * Why a packet or control message failed to parse. Returned (never thrown) by every
 * wire parser. Values are stable; they appear in drop-reason metrics.
 */
export const ParseFailure = {
  /** Fewer bytes than the fixed header needs. */
  TooShort: 1,
  /** The magic byte is wrong: not a Slipstream packet at all (stateless junk check). */
  BadMagic: 2,
  /** A protocol version this build does not speak. */
  BadVersion: 3,
  /** A packet type this build does not know. */
  BadType: 4,
  /** FEC group fields are inconsistent (index ≥ k + r, k = 0, k + r > 255, …). */
  BadFecFields: 5,
  /** Reserved bits are set. */
  BadReserved: 6,
  /** The control-message body is not valid msgpack. */
  BadEncoding: 7,
  /** The control-message body decoded but its shape is wrong (missing or mistyped field). */
  BadShape: 8,
  /** More bytes than the format allows. */
  TooLong: 9,
} as const;

/** One of the {@link ParseFailure} values. */
export type ParseFailureValue = (typeof ParseFailure)[keyof typeof ParseFailure];

/** Human-readable names for {@link ParseFailure} values, for logs and metrics labels. */
export const parseFailureName: Readonly<Record<ParseFailureValue, string>> = {
  1: 'too_short',
  2: 'bad_magic',
  3: 'bad_version',
  4: 'bad_type',
  5: 'bad_fec_fields',
  6: 'bad_reserved',
  7: 'bad_encoding',
  8: 'bad_shape',
  9: 'too_long',
};
