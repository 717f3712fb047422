/**
 * The tunnel port's front door (quinn-proto's `Endpoint`): every datagram on it is
 * checked statelessly for junk before any lookup, probes are answered (never larger
 * than the probe), packets are demultiplexed by session id — never by address — and a
 * packet for no session is either an open (ticket verified offline, revocations and the
 * served origins checked, admission caps) or answered with an unauthenticated Close.
 * Packets of a known session go to its exit link, its paths or the session itself.
 * Opens are verified within a budget; over it, an open must first prove its address
 * with a cookie (the {@link OpenGate} in cookie.ts).
 */
import type { KeyObject } from 'node:crypto';
import { decodeControl, encodeControl, type ControlMessageFields } from '../../../../proto/src/control.js';
import { ErrorCode, type ErrorCodeValue } from '../../../../proto/src/errors.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader, quickCheck, sessionIdToHex } from '../../../../proto/src/header.js';
import { openSessionKey, verifyTicket } from '../../../../proto/src/ticket.js';
import type { Endpoint } from '../../../../proto/src/transport.js';
import { buildControlPacket, PROBE_BODY_BYTES_MIN, PROBE_BODY_BYTES_WITH_STATUS, PROBE_STATUS_OFFSET, ProbeStatus } from '../../../../proto/src/wire.js';
import { cidrListMatches, splitHostPort } from '../addr.js';
import { SessionKind, type SessionBudgets } from '../budgets.js';
import { COOKIE_BYTES, TRANSPORT_PORT_BASE } from '../constants.js';
import { RateBucket } from '../bucket.js';
import type { RelayCoreConfig, TunnelSpec } from '../config-types.js';
import { TUNNEL_SOCKET_ID, type RelayContext } from '../context.js';
import { DropReason } from '../output.js';
import { endpointText, sessionRate, type RuleStats } from '../session-base.js';
import type { SourceTable } from '../sources.js';
import type { ExitLinks } from './exit-link.js';
import type { TunnelPackets } from './packets.js';
import { OpenGate, OpenVerdict, RETRY_BODY_TEMPLATE } from './cookie.js';
import { originMode, playerEndpoint } from './origin-header.js';
import type { TunnelPaths } from './paths.js';
import type { TunnelSessions } from './session.js';
import { TunnelSession } from './state.js';

/** Body of the relay's Close for data on a session it does not hold (the same for every session). */
const UNKNOWN_SESSION_BODY = encodeControl({ type: 'sessionReject', reason: ErrorCode.UnknownSession, message: '' });
/** The body of a header-only Close: "unknown session" said in 24 bytes (see answerUnknownSession). */
const EMPTY_BODY = new Uint8Array(0);
/** How long a pushed revocation is kept when the feed gives no expiry, ms. */
const REVOCATION_KEEP_MS_DEFAULT = 86_400_000;

/**
 * The answer to a signaling request ({@link TunnelEndpoint.checkSignaling}): the
 * ticket's session id and expiry (wall ms), or why not — `draining`/`full` (try another
 * relay), `rateLimited` (retry later), `denied` (this source), `ticket` (`code` says how).
 */
export type SignalingVerdict =
  | { readonly ok: true; readonly sessionId: string; readonly expiresAtMs: number }
  | { readonly ok: false; readonly refusal: 'draining' | 'full' | 'rateLimited' | 'denied' | 'ticket'; readonly code: ErrorCodeValue | undefined; readonly detail: string };

/** See the module comment. */
export class TunnelEndpoint {
  /** Probes answered. */
  probesAnswered = 0;
  /** The verification budget and the cookies (counters for the metrics are on it). */
  readonly openGate: OpenGate;
  /** The header of the datagram being handled (parsed in place, no allocation). */
  private readonly header = new PacketHeader();
  /** Revocations from the file (replaced as a whole on each read). */
  private revoked = new Set<string>();
  /** Revocations pushed by a feed, with the wall time (Unix ms) after which they can be forgotten. */
  private readonly revokedFeed = new Map<string, number>();
  /** When the feed's list was last known complete (its last answer), Unix ms; -Infinity = never. */
  private revocationsCurrentAtWallMs = Number.NEGATIVE_INFINITY;
  /** Opens refused because the feed's list was stale (policy `refuse`). */
  staleRefused = 0;
  /** Opens let past the revocation check while the feed's list was stale (policy `admit`). */
  staleAdmitted = 0;

  /**
   * @param budgets the session budgets (the tunnel's own, and `limits.sessionsMax` over every kind)
   * @param ruleStats the core's counters by rule name: the tunnel's join as `tunnel` when the port opens
   */
  constructor(
    private readonly ctx: RelayContext,
    private readonly sources: SourceTable,
    private readonly packets: TunnelPackets,
    private readonly paths: TunnelPaths,
    private readonly sessions: TunnelSessions,
    private readonly exits: ExitLinks,
    private readonly budgets: SessionBudgets,
    private readonly ruleStats: Map<string, RuleStats>,
  ) {
    this.openGate = new OpenGate(ctx.config.limits, ctx.components.randomFill, 0);
  }

  /** A datagram on the tunnel port. */
  onDatagram(nowMs: number, from: Endpoint, bytes: Uint8Array): void {
    const out = this.ctx.out;
    const stats = this.sessions.stats;
    stats.packetsUp++;
    stats.bytesUp += bytes.length;
    // Stateless junk check first: no table is touched for bytes that are not ours.
    if (quickCheck(bytes) !== 0 || parseHeader(bytes, this.header) !== 0) {
      out.drops[DropReason.Junk]++;
      out.unauthenticatedBytesIn += bytes.length;
      return;
    }
    const h = this.header;
    const type = h.type;
    if (type === PacketType.Probe) return this.onProbe(nowMs, from, bytes);
    const session = this.sessions.find(h.sessionIdHigh, h.sessionIdLow);
    if (session === undefined) {
      out.unauthenticatedBytesIn += bytes.length;
      if (type === PacketType.Control) return this.onControl(nowMs, from, bytes);
      out.drops[DropReason.UnknownSession]++;
      // Data for a session we do not hold (we restarted, or it ended): say so, or the
      // client, whose probes we still answer, would send into the void.
      if (type === PacketType.Data || type === PacketType.Parity) this.answerUnknownSession(nowMs, from, bytes.length, h.sessionIdHigh, h.sessionIdLow);
      return;
    }
    if (from.port !== session.clientPort || from.address !== session.clientAddress) {
      const exit = session.exit;
      if (exit !== undefined && from.port === exit.port && from.address === exit.address) return this.exits.onFromExit(nowMs, session, exit, bytes, type);
      if (!this.paths.fromOtherAddress(nowMs, session, from, bytes, type)) return;
    } else this.paths.fromCurrentAddress(nowMs, session, from);
    this.sessions.onPacket(nowMs, session, from, bytes, h);
  }

  private onProbe(nowMs: number, from: Endpoint, bytes: Uint8Array): void {
    const out = this.ctx.out;
    out.unauthenticatedBytesIn += bytes.length;
    if (bytes.length < HEADER_BYTES + PROBE_BODY_BYTES_MIN) {
      out.drops[DropReason.ProbeTooShort]++;
      return;
    }
    if (!this.sources.takeUnauthenticated(nowMs, from.address)) {
      out.drops[DropReason.RateLimitedSource]++;
      return;
    }
    // Same size as the probe: header copied with the type changed, stamp echoed, our times after it.
    const reply = new Uint8Array(bytes.length);
    reply.set(bytes.subarray(0, HEADER_BYTES + 8));
    reply[2] = PacketType.ProbeReply;
    // Say when we hold no such session: the client probing its current relay learns of a
    // restart from the next reply even if every Close answering its data was lost.
    const h = this.header;
    if (bytes.length >= HEADER_BYTES + PROBE_BODY_BYTES_WITH_STATUS && this.sessions.find(h.sessionIdHigh, h.sessionIdLow) === undefined) reply[HEADER_BYTES + PROBE_STATUS_OFFSET] = ProbeStatus.UnknownSession;
    const view = new DataView(reply.buffer, reply.byteOffset + HEADER_BYTES, PROBE_BODY_BYTES_MIN);
    view.setFloat64(8, nowMs);
    view.setFloat64(16, nowMs);
    if (out.sendUnauthenticated(TUNNEL_SOCKET_ID, from, bytes.length, reply)) this.probesAnswered++;
  }

  private onControl(nowMs: number, from: Endpoint, bytes: Uint8Array): void {
    // Fleet relays forward many players' opens from one address; their tickets are still verified.
    if (!this.sources.takeUnauthenticated(nowMs, from.address) && !this.sources.isPeer(from.address)) {
      this.ctx.out.drops[DropReason.RateLimitedSource]++;
      return;
    }
    const decoded = decodeControl(bytes.subarray(HEADER_BYTES));
    if (!decoded.ok || decoded.message.type !== 'sessionOpen') {
      this.ctx.out.drops[DropReason.BadControl]++;
      return;
    }
    this.onSessionOpen(nowMs, from, bytes, decoded.message);
  }

  private onSessionOpen(nowMs: number, from: Endpoint, packet: Uint8Array, open: ControlMessageFields['sessionOpen']): void {
    const ctx = this.ctx;
    const tunnel = ctx.config.tunnel;
    if (!tunnel) return;
    const drops = ctx.out.drops;
    const receivedBytes = packet.length;
    const high = this.header.sessionIdHigh;
    const low = this.header.sessionIdLow;
    // Admission without making per-source state: a sender gets an entry only once its
    // ticket verifies (spoofed opens must not fill the table). Known sources keep
    // their caps; unknown ones are held by the stateless limiter that let this through.
    const limits = ctx.config.limits;
    if (ctx.draining) {
      drops[DropReason.Draining]++;
      return this.reject(from, receivedBytes, high, low, ErrorCode.RelayDraining, 'this relay is draining; connect to another relay');
    }
    if (cidrListMatches(tunnel.deny, from.address) || (tunnel.allow.length > 0 && !cidrListMatches(tunnel.allow, from.address))) {
      drops[DropReason.Denied]++;
      return;
    }
    // Before the signature check, nothing is shed: only a verified ticket may end
    // someone's unreplied L4 flow to make room (below).
    if (!this.budgets.wouldAdmit(SessionKind.Tunnel, undefined, undefined)) {
      drops[DropReason.SessionCap]++;
      return this.reject(from, receivedBytes, high, low, ErrorCode.RelayFull, 'this relay is at its session cap; connect to another relay');
    }
    const known = this.sources.get(from.address);
    if ((known?.sessions ?? 0) >= limits.sessionsPerSourceMax && known?.peer !== true) {
      drops[DropReason.SessionCap]++;
      return;
    }
    if (known !== undefined && !known.newSessions.take(nowMs, 0) && !known.peer) {
      drops[DropReason.RateLimitedNewSessions]++;
      return;
    }
    // Last before the signature check: every cheaper refusal above costs no budget.
    // A driver's transport (a DataChannel) proved its address: only the budgets apply.
    const peer = known?.peer ?? this.sources.isPeer(from.address);
    const verdict = from.port >= TRANSPORT_PORT_BASE ? (this.openGate.admitProven(nowMs, from.address, peer) ? OpenVerdict.Verify : OpenVerdict.Drop) : this.openGate.admit(nowMs, from.address, from.port, open.cookie, peer);
    if (verdict === OpenVerdict.Retry) return this.askForCookie(nowMs, from, receivedBytes, high, low);
    if (verdict === OpenVerdict.Drop) {
      drops[DropReason.RateLimitedNewSessions]++;
      return;
    }
    const verifyKeys = tunnel.additionalTicketPublicKeys?.length ? [tunnel.ticketPublicKey, ...tunnel.additionalTicketPublicKeys] : tunnel.ticketPublicKey;
    const verified = verifyTicket(open.ticket, verifyKeys as KeyObject | KeyObject[], ctx.components.wallClockMs(), tunnel.clockSkewMs);
    if (!verified.ok) return this.reject(from, receivedBytes, high, low, verified.code, verified.detail);
    const claims = verified.claims;
    const idHex = sessionIdToHex(high, low);
    if (claims.sessionId !== idHex) return this.reject(from, receivedBytes, high, low, ErrorCode.TicketMismatch, 'the ticket is for another session id than the packet header');
    if (this.revoked.has(idHex) || this.revokedFeed.has(idHex)) return this.reject(from, receivedBytes, high, low, ErrorCode.TicketRevoked, 'the ticket was revoked');
    if (tunnel.revocationFeed !== undefined && this.revocationsStale(tunnel.revocationFeed.maxAgeMs)) {
      if (tunnel.revocationFeed.stalePolicy === 'refuse') {
        this.staleRefused++;
        return this.reject(from, receivedBytes, high, low, ErrorCode.RelayRevocationsStale, 'this relay has no current revocation list (its coordinator feed has not answered); connect to another relay');
      }
      this.staleAdmitted++;
    }
    const origin = resolveTicketOrigin(tunnel, claims.origin);
    if (origin === undefined) return this.reject(from, receivedBytes, high, low, ErrorCode.TicketWrongOrigin, `this relay does not serve origin '${claims.origin.slice(0, 64)}'`);
    const fecMode = open.fecModes.find((mode) => (tunnel.fec.modes as readonly string[]).includes(mode)) ?? (open.fecModes.length === 0 ? 'off' : undefined);
    if (fecMode === undefined) return this.reject(from, receivedBytes, high, low, ErrorCode.FecUnsupported, `relay FEC modes: ${tunnel.fec.modes.join(',')}`);
    const key = openSessionKey(claims, tunnel.additionalSealKeys?.length ? [tunnel.sealKey, ...tunnel.additionalSealKeys] : tunnel.sealKey);
    if (key === undefined) return this.reject(from, receivedBytes, high, low, ErrorCode.TicketForged, 'the session key does not open with this fleet seal key');
    if (!this.budgets.admit(nowMs, SessionKind.Tunnel, undefined, undefined)) {
      drops[DropReason.SessionCap]++;
      return this.reject(from, receivedBytes, high, low, ErrorCode.RelayFull, 'this relay is at its session cap; connect to another relay');
    }
    const source = this.sources.sourceFor(nowMs, from.address);
    if (source === undefined) {
      drops[DropReason.SessionCap]++;
      return;
    }
    if (known === undefined) source.newSessions.take(nowMs, 0);
    const pps = sessionRate(limits.sessionPacketsPerSecond, claims.limits.packetsPerSecond || Number.POSITIVE_INFINITY);
    const bps = sessionRate(limits.sessionBytesPerSecond, claims.limits.bytesPerSecond || Number.POSITIVE_INFINITY);
    const session = new TunnelSession(
      ctx.allocateId(),
      source,
      from.address,
      from.port,
      new RateBucket(pps, bps, limits.burstMs, nowMs),
      new RateBucket(pps, bps, limits.burstMs, nowMs),
      nowMs,
      high,
      low,
      idHex,
      key,
      origin.address,
      origin.port,
      claims.origin,
      fecMode,
    );
    session.ticketPacketsPerSecond = claims.limits.packetsPerSecond || Number.POSITIVE_INFINITY;
    session.ticketBytesPerSecond = claims.limits.bytesPerSecond || Number.POSITIVE_INFINITY;
    session.latencyBudgetMs = open.latencyBudgetMs;
    session.playerId = claims.playerId;
    session.proxyProtocol = originMode(tunnel, origin);
    this.sessions.add(session);
    const exit = claims.exit === undefined ? undefined : exitEndpoint(tunnel, claims.exit.relayId, claims.exit.address);
    if (exit !== undefined) {
      ctx.out.event({ type: 'sessionStart', kind: 'tunnel', id: idHex, rule: 'tunnel', client: endpointText(from.address, from.port), origin: endpointText(origin.address, origin.port), fecMode, exit: claims.exit!.relayId });
      this.exits.forward(nowMs, session, claims.exit!.relayId, exit.address, exit.port, this.forwardedOpen(session.proxyProtocol !== 'none', from, packet, open));
      return;
    }
    // Exit role (the ticket names this relay): entries are validated paths, several at once.
    if (claims.exit !== undefined) {
      session.paths = [{ address: from.address, port: from.port, lastRxMs: nowMs }];
      // The origin header's player address: not an entry relay's, but the one it says (origin-header.ts).
      const player = peer ? (open.client === undefined ? undefined : splitHostPort(open.client)) : { host: from.address, port: from.port };
      if (player !== undefined && isIpLiteral(player.host)) {
        session.openedFromAddress = player.host;
        session.openedFromPort = player.port;
      }
    }
    this.sessions.openUpstream(session, tunnel);
    ctx.out.event({ type: 'sessionStart', kind: 'tunnel', id: idHex, rule: 'tunnel', client: endpointText(from.address, from.port), origin: endpointText(origin.address, origin.port), fecMode });
    ctx.out.sendUnauthenticated(TUNNEL_SOCKET_ID, from, receivedBytes, this.packets.acceptPacket(session));
  }

  /**
   * Entry role: the open to forward to the exit (and to re-send: the session's later
   * opens from the player go as this copy too, session.ts). A `client` the player wrote
   * is dropped: an exit believes that field from fleet relays. When this relay would
   * give the origin a header (`says`: `tunnel.proxyProtocol` or the origin's own), it writes its own: the player's address (none for a WebRTC player whose
   * remote address is unknown), so the exit's origin header names the player. Otherwise
   * an open without `client` goes as it came (exits before `client` refuse the field).
   */
  private forwardedOpen(says: boolean, from: Endpoint, packet: Uint8Array, open: ControlMessageFields['sessionOpen']): Uint8Array {
    if (!says && open.client === undefined) return packet;
    const fields = { ...open };
    delete fields.client;
    const player = says ? playerEndpoint(from.address, from.port, this.ctx.transportRemotes) : undefined;
    if (player !== undefined) fields.client = endpointText(player.address, player.port);
    return buildControlPacket(this.header.sessionIdHigh, this.header.sessionIdLow, { type: 'sessionOpen', ...fields });
  }

  /**
   * Checks a signaling request's ticket (a browser asking for a WebRTC peer connection)
   * before the driver does any ICE or DTLS work, with the refusals an open from
   * `address` would meet, in the same order and under the same budgets: draining, the
   * tunnel's allow/deny lists, the session caps, the source's caps and new-session
   * rate, then one ticket verification within the verification budget (the TCP
   * handshake proved the address, so no cookie), revocation, staleness, the origin.
   * Takes no new-session token (the open that follows over the DataChannel takes it, and
   * is admitted and counted as any open is) and creates no state.
   */
  checkSignaling(nowMs: number, address: string, ticket: Uint8Array): SignalingVerdict {
    const ctx = this.ctx;
    const tunnel = ctx.config.tunnel;
    const drops = ctx.out.drops;
    if (!tunnel) return { ok: false, refusal: 'draining', code: ErrorCode.RelayDraining, detail: 'this relay has no tunnel' };
    if (ctx.draining) {
      drops[DropReason.Draining]++;
      return { ok: false, refusal: 'draining', code: ErrorCode.RelayDraining, detail: 'this relay is draining; connect to another relay' };
    }
    if (cidrListMatches(tunnel.deny, address) || (tunnel.allow.length > 0 && !cidrListMatches(tunnel.allow, address))) {
      drops[DropReason.Denied]++;
      return { ok: false, refusal: 'denied', code: undefined, detail: 'this source address is not allowed' };
    }
    if (!this.budgets.wouldAdmit(SessionKind.Tunnel, undefined, undefined)) {
      drops[DropReason.SessionCap]++;
      return { ok: false, refusal: 'full', code: ErrorCode.RelayFull, detail: 'this relay is at its session cap; connect to another relay' };
    }
    const known = this.sources.get(address);
    const peer = known?.peer ?? this.sources.isPeer(address);
    if (!peer && known !== undefined && (known.sessions >= ctx.config.limits.sessionsPerSourceMax || !known.newSessions.canTake(nowMs))) {
      drops[DropReason.RateLimitedNewSessions]++;
      return { ok: false, refusal: 'rateLimited', code: undefined, detail: 'too many sessions or new sessions from this address; retry later' };
    }
    if (!this.openGate.admitProven(nowMs, address, peer)) {
      drops[DropReason.RateLimitedNewSessions]++;
      return { ok: false, refusal: 'rateLimited', code: undefined, detail: 'ticket verifications are over budget; retry later' };
    }
    const verifyKeys = tunnel.additionalTicketPublicKeys?.length ? [tunnel.ticketPublicKey, ...tunnel.additionalTicketPublicKeys] : tunnel.ticketPublicKey;
    const verified = verifyTicket(ticket, verifyKeys as KeyObject | KeyObject[], ctx.components.wallClockMs(), tunnel.clockSkewMs);
    const refuse = (code: ErrorCodeValue, detail: string): SignalingVerdict => {
      drops[DropReason.TicketRefused]++;
      return { ok: false, refusal: 'ticket', code, detail };
    };
    if (!verified.ok) return refuse(verified.code, verified.detail);
    const claims = verified.claims;
    if (this.revoked.has(claims.sessionId) || this.revokedFeed.has(claims.sessionId)) return refuse(ErrorCode.TicketRevoked, 'the ticket was revoked');
    if (tunnel.revocationFeed !== undefined && tunnel.revocationFeed.stalePolicy === 'refuse' && this.revocationsStale(tunnel.revocationFeed.maxAgeMs)) {
      return { ok: false, refusal: 'full', code: ErrorCode.RelayRevocationsStale, detail: 'this relay has no current revocation list (its coordinator feed has not answered); connect to another relay' };
    }
    if (resolveTicketOrigin(tunnel, claims.origin) === undefined) return refuse(ErrorCode.TicketWrongOrigin, `this relay does not serve origin '${claims.origin.slice(0, 64)}'`);
    if (openSessionKey(claims, tunnel.additionalSealKeys?.length ? [tunnel.sealKey, ...tunnel.additionalSealKeys] : tunnel.sealKey) === undefined) return refuse(ErrorCode.TicketForged, 'the session key does not open with this fleet seal key');
    return { ok: true, sessionId: claims.sessionId, expiresAtMs: claims.expiresAtMs };
  }

  /**
   * Answers data for an unknown session with an (unauthenticated: there is no key)
   * Close `SLIP_ERR_UNKNOWN_SESSION`, through the stateless limiter and never larger
   * than the packet that caused it: to a datagram too small for the encoded reason, a
   * header-only Close (24 bytes, which any data packet has), which means the same.
   * Without it a game sending small datagrams through a relay that restarted faster
   * than the SDK could suspect it would send into the void for good.
   */
  private answerUnknownSession(nowMs: number, from: Endpoint, receivedBytes: number, high: number, low: number): void {
    if (!this.sources.takeUnauthenticated(nowMs, from.address)) {
      this.ctx.out.drops[DropReason.RateLimitedSource]++;
      return;
    }
    const body = HEADER_BYTES + UNKNOWN_SESSION_BODY.length <= receivedBytes ? UNKNOWN_SESSION_BODY : EMPTY_BODY;
    this.ctx.out.sendUnauthenticated(TUNNEL_SOCKET_ID, from, receivedBytes, this.packets.controlPacket(PacketType.Close, high, low, body));
  }

  /**
   * Answers an open with a `sessionRetry` carrying the cookie for its source address
   * and port: no signature check, no state, and never larger than the open (68 bytes;
   * an open too short to hold a real ticket gets nothing, counted as amplification).
   */
  private askForCookie(nowMs: number, from: Endpoint, receivedBytes: number, high: number, low: number): void {
    const packet = this.packets.controlPacket(PacketType.Control, high, low, RETRY_BODY_TEMPLATE);
    this.openGate.writeCookie(nowMs, from.address, from.port, packet, packet.length - COOKIE_BYTES);
    this.ctx.out.sendUnauthenticated(TUNNEL_SOCKET_ID, from, receivedBytes, packet);
  }

  /** Refuses a session open with a typed reason, trimmed so the reply is never larger than the request. */
  private reject(from: Endpoint, receivedBytes: number, high: number, low: number, reason: ErrorCodeValue, detail: string): void {
    const out = this.ctx.out;
    out.drops[DropReason.TicketRefused]++;
    out.event({ type: 'sessionRefused', client: endpointText(from.address, from.port), id: sessionIdToHex(high, low), reason, detail });
    let message = detail;
    for (;;) {
      const packet = this.packets.controlPacket(PacketType.Control, high, low, encodeControl({ type: 'sessionReject', reason, message }));
      if (packet.length <= receivedBytes || message.length === 0) {
        out.sendUnauthenticated(TUNNEL_SOCKET_ID, from, receivedBytes, packet);
        return;
      }
      message = message.slice(0, Math.max(0, message.length - (packet.length - receivedBytes)));
    }
  }

  // ------------------------------------------------------------------ revocation

  /** Sessions with these ids (16 hex digits) are revoked; live ones end now. The set replaces the previous one. */
  setRevoked(nowMs: number, sessionIds: ReadonlySet<string>): void {
    this.revoked = new Set(sessionIds);
    for (const session of [...this.sessions.byId.values()]) if (this.revoked.has(session.idHex)) this.sessions.close(nowMs, session, 'revoked', ErrorCode.TicketRevoked);
  }

  /** Adds revocations (a pushed feed), kept until `forgetAfterWallMs` (Unix ms; default one day from now). */
  revoke(nowMs: number, sessionIds: Iterable<string>, forgetAfterWallMs: number | undefined): void {
    const added = new Set<string>();
    const until = forgetAfterWallMs ?? this.ctx.components.wallClockMs() + REVOCATION_KEEP_MS_DEFAULT;
    for (const id of sessionIds) {
      this.revokedFeed.set(id, Math.max(until, this.revokedFeed.get(id) ?? 0));
      added.add(id);
    }
    for (const session of [...this.sessions.byId.values()]) if (added.has(session.idHex)) this.sessions.close(nowMs, session, 'revoked', ErrorCode.TicketRevoked);
  }

  /** The feed's list is complete as of `wallMs` (Unix ms: its latest answer, or a persisted list's); never moves back. */
  setRevocationsCurrent(wallMs: number): void {
    if (wallMs > this.revocationsCurrentAtWallMs) this.revocationsCurrentAtWallMs = wallMs;
  }

  /** Age of the feed's list, ms (Infinity before any answer or persisted list). */
  revocationsAgeMs(): number {
    return Math.max(0, this.ctx.components.wallClockMs() - this.revocationsCurrentAtWallMs);
  }

  /** Whether the feed's list is older than `maxAgeMs`. */
  revocationsStale(maxAgeMs: number): boolean {
    return this.revocationsAgeMs() > maxAgeMs;
  }

  /** Forgets pushed revocations of tickets past their expiry (plus skew): they cannot open a session anyway. */
  sweepRevocations(): void {
    if (this.revokedFeed.size === 0) return;
    const wallMs = this.ctx.components.wallClockMs() - (this.ctx.config.tunnel?.clockSkewMs ?? 0);
    for (const [id, until] of this.revokedFeed) if (until < wallMs) this.revokedFeed.delete(id);
  }

  // ------------------------------------------------------------------ reload

  /**
   * Opens or closes the tunnel port for `config`. A narrowed `tunnel.origins` (or
   * `allowOriginCidrs`) ends the sessions whose ticket's origin is no longer served here,
   * or now names another address: the client is told with an authenticated Close
   * (SLIP_ERR_TICKET_WRONG_ORIGIN; the SDK then takes this relay out), the same as a
   * ticket naming it would now be refused. Live sessions take the new limits.
   */
  apply(nowMs: number, config: RelayCoreConfig): void {
    const ctx = this.ctx;
    const tunnel = config.tunnel;
    if (tunnel && !ctx.tunnelOpen) {
      ctx.tunnelOpen = true;
      this.ruleStats.set('tunnel', this.sessions.stats);
      ctx.openSocket(TUNNEL_SOCKET_ID, { kind: 'tunnel' }, 'udp', tunnel.listenAddress, tunnel.listenPort, 'tunnel');
    } else if (!tunnel && ctx.tunnelOpen) {
      this.sessions.closeAll(nowMs, 'tunnel disabled');
      ctx.tunnelOpen = false;
      ctx.closeSocket(TUNNEL_SOCKET_ID, 'tunnel', 'udp');
    }
    if (!tunnel) return;
    for (const session of [...this.sessions.byId.values()]) {
      const allowed = resolveTicketOrigin(tunnel, session.originName);
      if (allowed === undefined || allowed.address !== session.originAddress || allowed.port !== session.originPort) {
        this.sessions.close(nowMs, session, `origin '${session.originName.slice(0, 64)}' is no longer served by this relay`, ErrorCode.TicketWrongOrigin);
      } else session.proxyProtocol = originMode(tunnel, allowed);
    }
    this.sessions.applyLimits(config.limits);
    this.openGate.applyLimits(config.limits);
  }

  /** Closes the tunnel port (the core is closing; sessions were ended before). */
  close(): void {
    if (this.ctx.tunnelOpen) this.ctx.closeSocket(TUNNEL_SOCKET_ID, 'tunnel', 'udp');
    this.ctx.tunnelOpen = false;
  }
}

/** The address a ticket's origin name stands for here, or undefined when this relay does not serve it. */
function resolveTicketOrigin(tunnel: TunnelSpec, name: string): { address: string; port: number; proxyProtocol?: 'none' | 'v2' | 'spp' } | undefined {
  const named = tunnel.origins.get(name);
  if (named) return named;
  const parsed = splitHostPort(name);
  if (!parsed || parsed.port !== parsed.portEnd || parsed.port === 0) return undefined;
  // host:port only inside configured blocks: never an open proxy, and loopback or
  // private ranges only when the operator lists them.
  if (!cidrListMatches(tunnel.allowOriginCidrs, parsed.host)) return undefined;
  return { address: parsed.host, port: parsed.port };
}

/**
 * Where to forward a session whose ticket names exit `relayId` at `address`, or
 * undefined to terminate it here: this relay is the exit, or the address is not an
 * `IP:port` a datagram can reach (then serving the session beats refusing it), or
 * it is this relay's own tunnel address (a relay without a configured id).
 */
function exitEndpoint(tunnel: TunnelSpec, relayId: string, address: string): { address: string; port: number } | undefined {
  if (tunnel.relayId !== undefined && relayId === tunnel.relayId) return undefined;
  const parsed = splitHostPort(address);
  if (!parsed || parsed.port !== parsed.portEnd || parsed.port === 0 || !isIpLiteral(parsed.host)) return undefined;
  if (parsed.host === tunnel.listenAddress && parsed.port === tunnel.listenPort) return undefined;
  return { address: parsed.host, port: parsed.port };
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || (host.includes(':') && /^[0-9A-Fa-f:.]+$/.test(host));
}
