/**
 * Ticket policy: what a session ticket gets — its lifetime, its rate limits, its exit
 * relay — from what a game backend asks in `POST /v1/session`, and how long a
 * revocation of a session must be kept.
 * - Lifetime: `ttlS` when asked (1 to `ttlSMax` s), else `ttlSDefault`.
 * - Limits: each one asked for (up to the configured limit, which is also the default)
 *   or the configured limit; callers may narrow a session, never widen it.
 * - Exit (optional): the relay that holds the session's one origin-facing socket, so
 *   the origin keeps seeing one source address:port when the player moves between
 *   entry relays; a named relay must be registered and healthy, `auto` picks one.
 * - Revocations outlive the ticket by {@link TICKET_CLOCK_SKEW_MS}, since a relay whose
 *   clock runs behind still accepts it that long; a session this replica did not issue
 *   (another replica, or before a restart) is assumed to live the longest a ticket can.
 *
 * The shape and ranges of the request are checked before (the service's field rules
 * read the bounds from here); session ids, session keys and seal nonces are random
 * and made by the service, which signs the ticket.
 *
 * Sans-IO: every method takes `nowMs` from the caller (epoch ms: tickets carry it).
 */
import { TICKET_CLOCK_SKEW_MS } from '../../../proto/src/ticket.js';
import { SESSION_BYTES_PER_SECOND_DEFAULT, SESSION_BYTES_PER_SECOND_MIN, SESSION_PACKETS_PER_SECOND_DEFAULT, SESSION_TTL_S_DEFAULT, SESSION_TTL_S_MAX } from './constants.js';
import type { SessionRequest } from '../../../proto/src/api/contract.js';

/** The configured ticket policy (config `sessions`); every field defaults to the constant it names. */
export interface TicketPolicyInit {
  /** Lifetime of a ticket when the request does not ask for one, s. Default {@link SESSION_TTL_S_DEFAULT}. */
  readonly ttlSDefault?: number;
  /** Longest lifetime a request may ask for, s. Default {@link SESSION_TTL_S_MAX}. */
  readonly ttlSMax?: number;
  /** Per-session packet rate limit each way: the default and the most a request may ask for, packets/s. Default {@link SESSION_PACKETS_PER_SECOND_DEFAULT}. */
  readonly packetsPerSecond?: number;
  /** Per-session byte rate limit each way: the default and the most a request may ask for, bytes/s. Default {@link SESSION_BYTES_PER_SECOND_DEFAULT}. */
  readonly bytesPerSecond?: number;
}

/** A `POST /v1/session` body that passed the field rules: the API contract's request. */
export type { SessionRequest };

/** Per-session rate limits each way. */
export interface TicketLimits {
  /** Packets per second. */
  readonly packetsPerSecond: number;
  /** Bytes per second. */
  readonly bytesPerSecond: number;
}

/** What a ticket is issued with (all but the random parts and the signature). */
export interface TicketGrant {
  readonly origin: string;
  /** Epoch ms. */
  readonly issuedAtMs: number;
  /** Epoch ms. */
  readonly expiresAtMs: number;
  readonly limits: TicketLimits;
  /** The exit relay and its tunnel address, when the request asked for one. */
  readonly exit?: { readonly relayId: string; readonly address: string };
}

/** Why no ticket: the origin is not known here, or no relay can be the exit asked for. */
export type TicketRefusal = 'unknownOrigin' | 'noExitRelay';

/** What the policy reads from the coordinator core (a {@link CoordinatorCore} is one). */
export interface TicketPolicyContext {
  /** The origin by name, undefined when neither configured nor reported. */
  origin(name: string): unknown;
  /** An exit relay for `originName`: `relayId` when registered and healthy, or the best one for `auto`. */
  pickExit(nowMs: number, originName: string, relayId: string): { ok: true; relayId: string; address: string } | { ok: false };
}

/** See the module comment. */
export class TicketPolicy {
  /** Lifetime when not asked, s. */
  readonly ttlSDefault: number;
  /** Longest lifetime that may be asked, s. */
  readonly ttlSMax: number;
  /** Packet rate limit given by default and the most that may be asked, packets/s. */
  readonly packetsPerSecondMax: number;
  /** Byte rate limit given by default and the most that may be asked, bytes/s. */
  readonly bytesPerSecondMax: number;
  /** Lowest byte rate limit that may be asked, bytes/s ({@link SESSION_BYTES_PER_SECOND_MIN}). */
  readonly bytesPerSecondMin = SESSION_BYTES_PER_SECOND_MIN;

  constructor(init: TicketPolicyInit = {}) {
    this.ttlSMax = init.ttlSMax ?? SESSION_TTL_S_MAX;
    this.ttlSDefault = init.ttlSDefault ?? Math.min(SESSION_TTL_S_DEFAULT, this.ttlSMax);
    this.packetsPerSecondMax = init.packetsPerSecond ?? SESSION_PACKETS_PER_SECOND_DEFAULT;
    this.bytesPerSecondMax = init.bytesPerSecond ?? SESSION_BYTES_PER_SECOND_DEFAULT;
  }

  /** The ticket `request` gets at `nowMs` (epoch ms), or why it gets none. */
  grant(nowMs: number, request: SessionRequest, context: TicketPolicyContext): { ok: true; grant: TicketGrant } | { ok: false; refusal: TicketRefusal } {
    const { origin, ttlS, limits, exitRelay } = request;
    if (!context.origin(origin)) return { ok: false, refusal: 'unknownOrigin' };
    let exit: { relayId: string; address: string } | undefined;
    if (exitRelay !== undefined) {
      const picked = context.pickExit(nowMs, origin, exitRelay);
      if (!picked.ok) return { ok: false, refusal: 'noExitRelay' };
      exit = { relayId: picked.relayId, address: picked.address };
    }
    const grantedLimits: TicketLimits = { packetsPerSecond: limits?.packetsPerSecond ?? this.packetsPerSecondMax, bytesPerSecond: limits?.bytesPerSecond ?? this.bytesPerSecondMax };
    return { ok: true, grant: { origin, issuedAtMs: nowMs, expiresAtMs: nowMs + (ttlS ?? this.ttlSDefault) * 1000, limits: grantedLimits, ...(exit !== undefined ? { exit } : {}) } };
  }

  /**
   * Until when (epoch ms) a revocation made at `nowMs` must be kept: the ticket's expiry
   * when this replica knows it (`ticketExpiresAtMs`), else the longest a ticket issued
   * now could live, plus {@link TICKET_CLOCK_SKEW_MS}.
   */
  revocationExpiresAtMs(nowMs: number, ticketExpiresAtMs: number | undefined): number {
    return (ticketExpiresAtMs ?? nowMs + this.ttlSMax * 1000) + TICKET_CLOCK_SKEW_MS;
  }
}
