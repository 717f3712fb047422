/**
 * The liveness room of a `TunnelClient`: when the current relay's silence makes
 * it suspect (upstream moves to the backup tentatively, once the backup has answered
 * since) or dead (tell the selector, which fails over), when the backup is dead, the
 * session check after an outage (did the relay restart and lose our session?), and
 * path challenges (the relay checking our new address after a NAT rebinding).
 * The rule is "Liveness and failover" in the module comment of `tunnel-client.ts`.
 */
import { buildPathResponseWithMac } from '../../../../proto/src/wire-frames.js';
import * as C from '../constants.js';
import type { TunnelContext } from './context.js';
import type { RelayLinks } from './relay-link.js';
import type { RelayLink } from './relay-link-state.js';
import { ClientTimer, earlier } from './timer-table.js';

/** An armed session check (its deadline is {@link ClientTimer.SessionCheck}). */
interface SessionCheck {
  /** The relay whose session is checked. */
  readonly relayId: string;
  /** Its delivered count when the check was armed. */
  readonly delivered: number;
  /** Opens the check has re-sent so far. */
  readonly reopens: number;
}

/** The liveness room; see the module comment. */
export class Liveness {
  /**
   * After the current relay was silent long enough to be suspect (or judged dead) and
   * answers again: when to check that its session still delivers, the count then, and
   * the opens the check has re-sent so far.
   */
  private sessionCheck: SessionCheck | undefined = undefined;
  /** Path challenges answered. */
  pathChallenges = 0;
  /** When the backup was last probed early because the current relay is suspect, ms (see {@link checkLiveness}). */
  private backupProbedAtMs = Number.NaN;

  constructor(
    private readonly ctx: TunnelContext,
    private readonly links: RelayLinks,
  ) {}

  // Called after every input (pollTimeout, checkLiveness): the estimate's RTT and
  // variation are read directly, without a figures snapshot.
  // Never below SUSPECT_AFTER_MS_MIN (deadAfterMs: DEAD_AFTER_MS_MIN): pollTimeout relies on it.
  private suspectAfterMs(id: string): number {
    const f = this.ctx.selector.rttEstimate(id);
    const srtt = f?.rttMs ?? 0;
    return Math.max(C.SUSPECT_AFTER_MS_MIN, 1.5 * this.ctx.probeCurrentMs + srtt + 4 * (f?.jitterMs ?? 0));
  }

  private deadAfterMs(id: string, probeMs = this.ctx.probeCurrentMs): number {
    const f = this.ctx.selector.rttEstimate(id);
    const suspect = Math.max(C.SUSPECT_AFTER_MS_MIN, 1.5 * probeMs + (f?.rttMs ?? 0) + 4 * (f?.jitterMs ?? 0));
    return Math.max(C.DEAD_AFTER_MS_MIN, 2 * suspect);
  }

  /** The backup's silence that judges it dead, ms: see {@link C.BACKUP_DEAD_AFTER_PROBES}. */
  private backupDeadAfterMs(id: string): number {
    return Math.max(this.deadAfterMs(id, this.ctx.probeBackupMs), C.BACKUP_DEAD_AFTER_PROBES * this.ctx.probeBackupMs);
  }

  /**
   * The relay that carries upstream instead of the current one now (a tentative
   * failover), or undefined: the backup, while the current relay is suspect, when the
   * backup's session is open and the backup has been heard from since the current relay
   * fell silent. Instead, not as well: a copy through a second relay reaches an
   * unmodified origin as a second datagram whenever the current relay is in fact alive
   * (a burst on its path made it look silent), and only an exit relay could dedupe it.
   * Sent to one relay, each datagram reaches the origin once; what a false suspicion
   * costs is a few datagrams from the backup's address, what a real one saves is the
   * wait for the dead judgment. The backup must have answered since the silence began:
   * when every path went dark together (the player's own link), moving would only
   * change the address the origin sees, so upstream stays on the current relay (the
   * selector's rule for a silent relay, applied early).
   */
  upstreamBackup(nowMs: number): RelayLink | undefined {
    const ctx = this.ctx;
    const current = ctx.currentLink();
    if (current === undefined || ctx.backupId === undefined || nowMs - current.lastRxMs < this.suspectAfterMs(current.id)) return undefined;
    const backup = ctx.relays.get(ctx.backupId);
    return backup !== undefined && backup.sessionState === 'open' && backup.lastRxMs > current.lastRxMs ? backup : undefined;
  }

  /**
   * Judges the current relay and the backup by their silence (the selector acts on it).
   * While the current relay is suspect (not yet dead) and the backup has not answered
   * since, the backup is probed at once and then at the current relay's period: its
   * answer is what moves upstream to it (see {@link upstreamBackup}), and waiting for its
   * slower probe period (or for the next after a lost one) would lengthen a failover's
   * gap by as much. Once the current relay is judged dead, the selector's recovery
   * probing takes over (a long blackout of every path gets no extra probes).
   */
  checkLiveness(nowMs: number): void {
    const ctx = this.ctx;
    const current = ctx.currentId === undefined ? undefined : ctx.relays.get(ctx.currentId);
    const silentMs = current === undefined ? 0 : nowMs - current.lastRxMs;
    if (current !== undefined && ctx.backupId !== undefined && !(nowMs - this.backupProbedAtMs < ctx.probeCurrentMs) && silentMs >= this.suspectAfterMs(current.id) && silentMs < this.deadAfterMs(current.id)) {
      const backup = ctx.relays.get(ctx.backupId);
      if (backup !== undefined && backup.lastRxMs <= current.lastRxMs) {
        this.backupProbedAtMs = nowMs;
        backup.nextProbeMs = Math.min(backup.nextProbeMs, nowMs);
      }
    }
    if (current !== undefined && current.sessionState === 'open' && nowMs - current.lastRxMs >= this.deadAfterMs(current.id)) {
      ctx.selector.markSilent(nowMs, current.id);
    }
    const backup = ctx.backupId === undefined ? undefined : ctx.relays.get(ctx.backupId);
    if (backup !== undefined && backup.sessionState === 'open' && nowMs - backup.lastRxMs >= this.backupDeadAfterMs(backup.id)) {
      ctx.selector.markUnreachable(nowMs, backup.id);
    }
  }

  /**
   * A packet from `link`. When it ends a silence of the current relay long enough to
   * make it suspect, the relay may have crashed and restarted meanwhile, too quickly to
   * be judged dead, and lost our session: arm a session check.
   */
  heardFrom(nowMs: number, link: RelayLink): void {
    if (this.sessionCheck === undefined && link.id === this.ctx.currentId && link.sessionState === 'open' && nowMs - link.lastRxMs >= this.suspectAfterMs(link.id)) this.armSessionCheck(nowMs, link, 0);
    link.lastRxMs = nowMs;
  }

  /** A PathChallenge from `link` (`body` follows the header): the relay saw us from a new address (NAT rebinding); prove we hold the key. */
  answerPathChallenge(link: RelayLink, body: Uint8Array): void {
    const ctx = this.ctx;
    this.pathChallenges++;
    // With an asynchronous HMAC the answer goes out when the MAC comes back (sendPathResponse).
    const mac = ctx.macs.pathMac(link.id, body);
    if (mac !== undefined) this.sendPathResponse(link, body, mac);
    ctx.events.push({ type: 'pathChallenge', relayId: link.id });
  }

  /** Answers `link`'s path challenge (`nonce`, or the challenge body it starts) with `mac`. */
  sendPathResponse(link: RelayLink, nonce: Uint8Array, mac: Uint8Array): void {
    const ctx = this.ctx;
    ctx.transmits.push({ to: link.tunnel, bytes: buildPathResponseWithMac(ctx.sessionIdHigh, ctx.sessionIdLow, nonce, mac) });
  }

  /** The selector says relay `relayId` is back as the current one: check its session unless a check is armed for it. */
  onRelayBack(nowMs: number, relayId: string): void {
    if (this.sessionCheck?.relayId === relayId) return;
    // Usually armed already by the answer that ended the silence (see heardFrom).
    const link = this.ctx.relays.get(relayId);
    if (link !== undefined) this.armSessionCheck(nowMs, link, 0);
  }

  private armSessionCheck(nowMs: number, link: RelayLink, reopens: number): void {
    const srtt = this.ctx.selector.figures(link.id)?.rttMs ?? 0;
    this.ctx.timers.set(ClientTimer.SessionCheck, nowMs + Math.max(C.RECOVERY_SESSION_CHECK_MS, 3 * srtt));
    this.sessionCheck = { relayId: link.id, delivered: link.delivered, reopens };
  }

  /**
   * The current relay answers again after a silence (suspect or dead), but if its
   * session has delivered nothing since, the relay probably restarted meanwhile and lost
   * it (with small datagrams it cannot say so: its "unknown session" answer would be
   * larger than what it got). Re-send the session's open: a relay that still holds the
   * session just accepts again, one that lost it re-creates it with a downstream
   * numbering that starts afresh, so the link gets a fresh FEC receiver now (not at the
   * accept: the re-created session's data may overtake a lost accept, and a receiver
   * replaced after delivering some of it would deliver their copies again). Nothing was
   * delivered since the outage, so the fresh receiver cannot deliver anything twice.
   * The session stays usable meanwhile, so a check that was wrong (loss, or a game whose
   * server is quiet) costs one datagram each way and no stall. Re-sent up to
   * {@link C.SESSION_RECHECK_OPENS_MAX} times while unanswered; then the session is
   * reopened outright (sends queue until it opens; a relay that never accepts is
   * marked unreachable). See {@link C.RECOVERY_SESSION_CHECK_MS}.
   */
  checkSessionAfterOutage(nowMs: number): void {
    const check = this.sessionCheck;
    if (check === undefined || !this.ctx.timers.isExpired(ClientTimer.SessionCheck, nowMs)) return;
    this.sessionCheck = undefined;
    this.ctx.timers.stop(ClientTimer.SessionCheck);
    const link = this.ctx.currentLink();
    if (link === undefined || link.id !== check.relayId) {
      // No longer the current relay (or no longer open): the check lapses.
      const checked = this.ctx.relays.get(check.relayId);
      if (checked !== undefined) checked.rechecking = false;
      return;
    }
    if (link.delivered !== check.delivered || (check.reopens > 0 && !link.rechecking)) {
      // Delivering, or the relay accepted the re-sent open: the session is there.
      link.rechecking = false;
      return;
    }
    if (check.reopens < C.SESSION_RECHECK_OPENS_MAX) {
      if (check.reopens === 0) link.receiver = this.links.receiverFor(link.fecMode, link.exit);
      link.rechecking = true;
      this.links.sendOpen(nowMs, link);
      this.armSessionCheck(nowMs, link, check.reopens + 1);
      return;
    }
    link.rechecking = false;
    link.sessionState = 'opening';
    link.openAttempts = 0;
    link.nextOpenMs = nowMs;
    link.receiver = undefined;
  }

  /**
   * `at`, or the earliest silence deadline after `after` (the current relay suspect or
   * dead, the backup dead) when earlier. The session check is in the timer table.
   */
  earliestDeadline(at: number, after: number): number {
    const ctx = this.ctx;
    const current = ctx.currentLink();
    // The liveness deadlines are never earlier than their floors (SUSPECT_AFTER_MS_MIN ≤
    // DEAD_AFTER_MS_MIN): while traffic flows, something else is due sooner, and they
    // need not be computed.
    if (current !== undefined && current.lastRxMs + C.SUSPECT_AFTER_MS_MIN < at) {
      at = earlier(at, current.lastRxMs + this.suspectAfterMs(current.id), after);
      at = earlier(at, current.lastRxMs + this.deadAfterMs(current.id), after);
    }
    const backup = ctx.backupId === undefined ? undefined : ctx.relays.get(ctx.backupId);
    if (backup?.sessionState === 'open' && backup.lastRxMs + C.DEAD_AFTER_MS_MIN < at) at = earlier(at, backup.lastRxMs + this.backupDeadAfterMs(backup.id), after);
    return at;
  }
}
