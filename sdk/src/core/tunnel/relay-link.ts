/**
 * The relay link room of a `TunnelClient`: per-relay session state (the record,
 * {@link RelayLink}, is in relay-link-state.ts), and what happens to a session — open
 * with the ticket (retried, backed off after refusals), accept, refusal, a relay's
 * Close (authenticated or not), reopen after the relay lost it, keepalive, linger and
 * close. Also the index that finds a relay by a datagram's source address, and the
 * failure that ends every session. Why a keepalive is a repeated `sessionOpen`: see
 * "Keepalive" in the module comment of `tunnel-client.ts`.
 */
import { ErrorCode, isTicketRefusal } from '../../../../proto/src/errors.js';
import { FecReceiver, SLIDING_WINDOW_PARAMETERS_DEFAULT, slidingWindowReceiverSettings } from '../../../../proto/src/fec/index.js';
import type { Endpoint } from '../../../../proto/src/transport.js';
import { buildControlPacket } from '../../../../proto/src/wire-frames.js';
import { decodeControl } from '../../../../proto/src/control.js';
import * as C from '../constants.js';
import type { TunnelContext } from './context.js';
import { EndpointKeys } from './endpoint-keys.js';
import { RelayLink } from './relay-link-state.js';
import { earlier } from './timer-table.js';
import type { TunnelCandidate } from './types.js';

/** The `sessionAccept` fields a link takes. */
interface SessionAcceptFields {
  readonly fecMode: string;
  readonly exit?: string | undefined;
}

/** The relay link room; see the module comment. */
export class RelayLinks {
  private readonly endpointKeys = new EndpointKeys();
  /**
   * Downstream FEC receivers of exit-terminated sessions, by exit id: every entry of
   * one exit carries the exit's numbering, so one receiver dedups copies that arrive
   * through different entries and keeps its state across a failover.
   */
  private readonly exitReceivers = new Map<string, FecReceiver>();

  constructor(
    private readonly ctx: TunnelContext,
    /** Relays by tunnel and probe address key (the composer's index, kept up here). */
    private readonly byEndpoint: Map<string, RelayLink>,
  ) {}

  /** The relay whose tunnel or probe address is `from`, if any. */
  linkAt(from: Endpoint): RelayLink | undefined {
    return this.byEndpoint.get(this.endpointKeys.keyOf(from));
  }

  /**
   * Takes the first {@link C.PROBED_CANDIDATES_MAX} candidates into the relay table
   * (new ones with staggered first probes, known ones with their new figures and
   * addresses) and drops relays no longer listed unless they are in use.
   */
  mergeCandidates(nowMs: number, candidates: readonly TunnelCandidate[]): void {
    const relays = this.ctx.relays;
    const chosen = candidates.slice(0, C.PROBED_CANDIDATES_MAX);
    let stagger = 0;
    for (const c of chosen) {
      let link = relays.get(c.id);
      if (link === undefined) {
        link = new RelayLink(c.id, c.tunnel, c.probe, c.estimateMs, c.restMs);
        // Stagger the first probes so that candidates' bursts interleave rather than collide.
        link.nextProbeMs = nowMs + stagger;
        stagger += C.PROBE_INITIAL_SPACING_MS / Math.max(1, chosen.length);
        relays.set(c.id, link);
      } else {
        link.estimateMs = c.estimateMs;
        link.restMs = c.restMs ?? 0;
        if (link.sessionState === 'none' || link.sessionState === 'closed') {
          this.forgetEndpoint(link.tunnel, link);
          link.tunnel = c.tunnel;
        }
        if (link.probe.address !== c.probe.address || link.probe.port !== c.probe.port) {
          if (this.endpointKeys.keyOf(link.probe) !== this.endpointKeys.keyOf(link.tunnel)) this.forgetEndpoint(link.probe, link);
          link.probe = c.probe;
        }
      }
      this.byEndpoint.set(this.endpointKeys.keyOf(link.tunnel), link);
      this.byEndpoint.set(this.endpointKeys.keyOf(link.probe), link);
    }
    const listed = new Set(chosen.map((c) => c.id));
    for (const [id, link] of relays) {
      if (listed.has(id) || id === this.ctx.currentId || id === this.ctx.backupId) continue;
      if (link.sessionState === 'open' || link.sessionState === 'opening' || link.closeOwed) this.closeSession(link);
      relays.delete(id);
      this.forgetEndpoints(link);
    }
  }

  /** Drops `endpoint`'s entry if it still points at `link` (another relay may have taken the address since). */
  private forgetEndpoint(endpoint: Endpoint, link: RelayLink): void {
    const key = this.endpointKeys.keyOf(endpoint);
    if (this.byEndpoint.get(key) === link) this.byEndpoint.delete(key);
  }

  private forgetEndpoints(link: RelayLink): void {
    this.forgetEndpoint(link.tunnel, link);
    this.forgetEndpoint(link.probe, link);
  }

  // ------------------------------------------------------------------ sessions

  /** Sends `link`'s session open (also the keepalive and the session check's question). */
  sendOpen(nowMs: number, link: RelayLink): void {
    const ctx = this.ctx;
    link.lastTxMs = nowMs;
    const open = { type: 'sessionOpen' as const, ticket: ctx.ticket, fecModes: [...ctx.fecModes], ...(ctx.latencyBudgetMs !== undefined ? { latencyBudgetMs: ctx.latencyBudgetMs } : {}), ...(link.cookie !== undefined ? { cookie: link.cookie } : {}) };
    ctx.transmits.push({ to: link.tunnel, bytes: buildControlPacket(ctx.sessionIdHigh, ctx.sessionIdLow, open) });
  }

  /**
   * A `sessionRetry` from `link` (unauthenticated): the relay is over its verification
   * budget and wants its cookie echoed before it checks our ticket. The open goes again
   * at once, with the cookie — but at most once per {@link C.RETRY_ANSWER_MIN_MS}, so
   * spoofed retries cannot make us flood the relay; later opens carry it too. An open
   * session's keepalive meets one when the relay restarted (it holds no session): the
   * answer re-opens it there (a relay that holds it just accepts again).
   */
  onRetry(nowMs: number, link: RelayLink, cookie: Uint8Array): void {
    if (link.sessionState !== 'opening' && link.sessionState !== 'open') return;
    link.cookie = cookie;
    if (nowMs - link.lastRetryAnsweredMs < C.RETRY_ANSWER_MIN_MS) return;
    link.lastRetryAnsweredMs = nowMs;
    this.sendOpen(nowMs, link);
  }

  /** Starts opening `link`'s session unless it is open, opening or retrying a refusal; it no longer lingers. */
  ensureSession(nowMs: number, link: RelayLink): void {
    link.lingerUntilMs = Number.POSITIVE_INFINITY;
    this.endDrain(link);
    if (link.sessionState === 'open' || link.sessionState === 'opening' || link.sessionState === 'refused') return;
    link.sessionState = 'opening';
    link.openAttempts = 0;
    link.nextOpenMs = nowMs;
  }

  /** Sends the opens that are due; a relay that never answers is marked unreachable, one that refused backs off. */
  runOpens(nowMs: number): void {
    for (const link of this.ctx.relays.values()) {
      if (link.sessionState === 'refused' && nowMs >= link.nextOpenMs) {
        // A refusal (draining, full) is temporary: ask again, still excluded from selection until it accepts.
        link.sessionState = 'opening';
        link.openAttempts = 0;
      }
      if (link.sessionState !== 'opening' || nowMs < link.nextOpenMs) continue;
      if (link.openAttempts >= C.OPEN_ATTEMPTS_MAX) {
        if (link.refusals > 0) {
          // A retry nobody answered: keep backing off (a restart may take a while).
          link.sessionState = 'refused';
          link.nextOpenMs = nowMs + refusedRetryMs(link.refusals);
          continue;
        }
        link.sessionState = 'none';
        link.nextOpenMs = Number.POSITIVE_INFINITY;
        this.ctx.selector.markUnreachable(nowMs, link.id);
        continue;
      }
      link.openAttempts++;
      link.nextOpenMs = nowMs + C.OPEN_RETRY_MS;
      this.sendOpen(nowMs, link);
    }
  }

  /**
   * Ends `link`'s session (an authenticated Close when it was open or opening, or owed).
   * With `drainUntilMs` (an open session only) it drains instead: the session is closed
   * here, but the data the relay still sends is delivered until then (see
   * {@link RelayLink.drainUntilMs}), and our Close goes at the drain's end — until the
   * relay reads it, it forwards the origin's answers to what it carried (in flight, or
   * held while the relay or its path was stalled), which a Close sent now would drop.
   */
  closeSession(link: RelayLink, drainUntilMs?: number): void {
    const ctx = this.ctx;
    link.nextOpenMs = Number.POSITIVE_INFINITY;
    if (drainUntilMs !== undefined && link.sessionState === 'open') {
      link.sessionState = 'closed';
      link.drainUntilMs = drainUntilMs;
      return;
    }
    if (link.sessionState === 'open' || link.sessionState === 'opening' || link.closeOwed) ctx.macs.sendClose(link.tunnel);
    if (link.sessionState !== 'refused') link.sessionState = 'closed';
    this.endDrain(link);
  }

  /** Stops delivering a closed session's late data (and drops its receiver); a Close still owed is no longer (the caller sends it or the session goes on). */
  private endDrain(link: RelayLink): void {
    link.drainUntilMs = Number.NEGATIVE_INFINITY;
    if (link.sessionState !== 'open') link.receiver = undefined;
  }

  /** Ends every open or opening session. */
  closeAll(): void {
    for (const link of this.ctx.relays.values()) if (link.sessionState === 'open' || link.sessionState === 'opening' || link.closeOwed) this.closeSession(link);
  }

  /** The connection cannot continue: end every session and say why (`code` is a stable `SLIP_ERR_*`). Once only. */
  fail(code: string, message: string): void {
    const ctx = this.ctx;
    if (ctx.failed) return;
    ctx.failed = true;
    this.closeAll();
    ctx.events.push({ type: 'failed', code, message });
  }

  /**
   * A `sessionAccept` from `link`. Returns true when it is the session's first accept
   * (the caller then starts the upstream sender and, for the current relay, the
   * connection).
   */
  onAccept(nowMs: number, link: RelayLink, m: SessionAcceptFields): boolean {
    if (link.sessionState !== 'opening' && link.sessionState !== 'open') return false;
    const first = link.sessionState === 'opening';
    link.sessionState = 'open';
    link.acceptedAtMs = nowMs;
    link.nextOpenMs = Number.POSITIVE_INFINITY;
    // Keepalives reach the session, not the cookie check; a later re-open asks afresh.
    link.cookie = undefined;
    if (link.refusals > 0) {
      // A retried open succeeded: the relay may be chosen again. Unless it is, its session lingers and closes.
      link.refusals = 0;
      if (link.id !== this.ctx.currentId && link.id !== this.ctx.backupId && link.lingerUntilMs === Number.POSITIVE_INFINITY) link.lingerUntilMs = nowMs + C.LINGER_MS;
      this.ctx.selector.setExcluded(nowMs, link.id, false);
    }
    if (!first && m.exit !== link.exit) {
      // The relay now terminates the session itself (its exit died) or another exit
      // does: downstream numbering starts afresh, so does this link's receiver.
      link.fecMode = m.fecMode;
      link.exit = m.exit;
      link.receiver = this.receiverFor(m.fecMode, m.exit);
    }
    link.rechecking = false;
    if (first) {
      link.fecMode = m.fecMode;
      link.exit = m.exit;
      link.receiver = this.receiverFor(m.fecMode, m.exit);
    }
    return first;
  }

  /** A downstream receiver for a session in `fecMode` terminated by `exit` (shared per exit) or by the relay itself (undefined). */
  receiverFor(fecMode: string, exit: string | undefined): FecReceiver | undefined {
    if (fecMode === 'off') return undefined;
    // Sliding-window shards (mode `sw`) are recognised by their header; the settings only size the decoder.
    const init = { maxPayloadBytes: C.TUNNEL_PAYLOAD_BYTES_MAX, slidingWindow: slidingWindowReceiverSettings(this.ctx.slidingWindow ?? SLIDING_WINDOW_PARAMETERS_DEFAULT) };
    if (exit === undefined) return new FecReceiver(init);
    let receiver = this.exitReceivers.get(exit);
    if (receiver === undefined) this.exitReceivers.set(exit, (receiver = new FecReceiver(init)));
    return receiver;
  }

  /**
   * The relay said it holds no such session (it restarted): open it there again.
   * Reopening is all an unauthenticated Close (or a probe reply's `UnknownSession` status)
   * can trigger, so a spoofer gains nothing.
   */
  reopenUnknownSession(nowMs: number, link: RelayLink): void {
    if (link.sessionState !== 'open') return;
    link.sessionState = 'opening';
    link.openAttempts = 0;
    link.nextOpenMs = nowMs;
    link.receiver = undefined;
  }

  /** A Close from `link`; `body` is what follows the header. */
  onRelayClose(nowMs: number, link: RelayLink, body: Uint8Array): void {
    // A header-only Close is "unknown session" from a relay whose full answer would have
    // been larger than the (small) datagram that caused it.
    if (body.length === 0) return this.reopenUnknownSession(nowMs, link);
    // A relay MACs its Close for a session it holds; anything else is unauthenticated.
    // With an asynchronous HMAC the check comes back later, through onRelayCloseChecked.
    const checked = this.ctx.macs.checkRelayClose(link.id, body);
    if (checked !== undefined) this.onRelayCloseChecked(nowMs, link, body, checked.authentic);
  }

  /** A relay's Close once its MAC was checked: `authentic` is the reason when it verified, else undefined. */
  onRelayCloseChecked(nowMs: number, link: RelayLink, body: Uint8Array, authentic: Uint8Array | undefined): void {
    const ctx = this.ctx;
    const decoded = decodeControl(authentic ?? body);
    if (!decoded.ok || decoded.message.type !== 'sessionReject') return;
    const { reason, message } = decoded.message;
    if (authentic === undefined) {
      // Only "unknown session" comes without a MAC (the relay has no key for it: it
      // restarted); any other unauthenticated Close could end a session for anyone
      // knowing its id.
      if (reason === ErrorCode.UnknownSession) this.reopenUnknownSession(nowMs, link);
      return;
    }
    link.sessionState = 'closed';
    this.endDrain(link);
    if (reason === ErrorCode.TicketRevoked) {
      this.fail(reason, `relay ${link.id} ended the session: the ticket was revoked (${message})`);
      return;
    }
    if (reason === ErrorCode.SessionIdle) {
      // Our keepalives should prevent this; reopen if the relay is still wanted.
      if (link.id === ctx.currentId || link.id === ctx.backupId) this.ensureSession(nowMs, link);
      return;
    }
    ctx.selector.markUnreachable(nowMs, link.id);
  }

  /** A `sessionReject` from `link` (unauthenticated). */
  onRefused(nowMs: number, link: RelayLink, code: string, message: string): void {
    // A session check's open is answered like any open: a restarted relay may be full now.
    if (link.sessionState !== 'opening' && !(link.sessionState === 'open' && link.rechecking)) return;
    link.rechecking = false;
    // A reject is unauthenticated: once the connection is open, a ticket refusal only
    // takes this relay out (a spoofed one must not end a working connection; a real
    // revocation ends the open sessions with an authenticated Close).
    if (isTicketRefusal(code) && !this.ctx.opened) {
      this.fail(code, `relay ${link.id} refused the ticket: ${code}: ${message}`);
      return;
    }
    link.sessionState = 'refused';
    link.refusals++;
    link.nextOpenMs = nowMs + refusedRetryMs(link.refusals);
    link.receiver = undefined;
    this.ctx.selector.setExcluded(nowMs, link.id, true);
    const usable = [...this.ctx.relays.values()].some((l) => l.sessionState !== 'refused');
    if (!usable) this.fail(code, `every candidate relay refused the session; last: relay ${link.id}: ${code}: ${message}`);
  }

  // ------------------------------------------------------------------ per-relay timers

  /** Ends `link`'s drain when its time is up; closes its session when its linger ran out and it is neither current nor backup. */
  expireLinger(nowMs: number, link: RelayLink): void {
    if (link.closeOwed && link.drainUntilMs <= nowMs) {
      if (link.closeOwed) this.ctx.macs.sendClose(link.tunnel);
      this.endDrain(link);
    }
    if (link.lingerUntilMs > nowMs) return;
    link.lingerUntilMs = Number.POSITIVE_INFINITY;
    if (link.id !== this.ctx.currentId && link.id !== this.ctx.backupId) this.closeSession(link);
  }

  /** Re-sends `link`'s open when its session was idle for {@link C.KEEPALIVE_MS}. */
  keepAlive(nowMs: number, link: RelayLink): void {
    if (link.sessionState === 'open' && nowMs - link.lastTxMs >= C.KEEPALIVE_MS) this.sendOpen(nowMs, link);
  }

  /**
   * Sessions neither current nor backup linger for {@link C.LINGER_MS} and then close
   * (in-flight downstream data still arrives meanwhile).
   */
  lingerUnused(nowMs: number): void {
    const ctx = this.ctx;
    for (const link of ctx.relays.values()) {
      if (link.id === ctx.currentId || link.id === ctx.backupId) continue;
      // A relay retrying after a refusal keeps retrying: its accept is what lets it be chosen again.
      if ((link.sessionState === 'open' || link.sessionState === 'opening') && link.refusals === 0 && link.lingerUntilMs === Number.POSITIVE_INFINITY) link.lingerUntilMs = nowMs + C.LINGER_MS;
    }
  }

  /** `at`, or `link`'s earliest session deadline after `after` (open retry, keepalive, linger, FEC receiver) when earlier. */
  earliestDeadline(at: number, link: RelayLink, after: number): number {
    if (link.sessionState === 'opening' || link.sessionState === 'refused') at = earlier(at, link.nextOpenMs, after);
    if (link.sessionState === 'open') at = earlier(at, link.lastTxMs + C.KEEPALIVE_MS, after);
    at = earlier(at, link.lingerUntilMs, after);
    if (link.closeOwed) at = earlier(at, link.drainUntilMs, after);
    if (link.receiver !== undefined) at = earlier(at, link.receiver.pollTimeout(), after);
    return at;
  }
}

/** Backoff before reopening a relay that refused `refusals` times in a row, ms. */
function refusedRetryMs(refusals: number): number {
  return Math.min(C.REFUSED_RETRY_MS_MAX, C.REFUSED_RETRY_MS_MIN * 2 ** Math.min(16, refusals - 1));
}
