/**
 * Picks the relay a client uses, and a warm backup, from the client's own probe
 * results, with hysteresis so that noisy paths do not make it flap.
 *
 * ## The rule
 * Each relay's path gets a latency in milliseconds,
 * `latency = RTT + rest + jitterWeight × RTT variation`, where RTT and its variation
 * are slow averages of the client's probes (gain 1/64, see path-estimate.ts) and
 * `rest` is the coordinator's figure for the relay→origin part of the whole path; and
 * a loss estimate with a confidence interval: the lost fraction of the last 256
 * probes, with a Wilson score interval (z = `lossConfidenceZ`, 3) over the *effective*
 * number of probes — lost probes that come in bursts count as one event each burst
 * (`samples / (2 × mean burst − 1)`), so a blackout or a burst that FEC and the
 * duplication to the backup ride out weighs like one loss, and only loss spread over
 * time builds confidence.
 *
 * - **Ranking** (the first pick, the backup, the failover target):
 *   `score = latency + lossPenaltyMs × (lower bound of the loss interval)`, i.e. only
 *   loss the probes prove counts (defaults: jitter counts once; 1 % costs 10 ms).
 *   One lost probe out of five costs 1.9 % × 1000 = 19 ms, not 200 ms.
 * - **Start**: pick the best-scoring relay as soon as it is clear: every candidate has
 *   {@link RelaySelectorInit.minSamples} probe outcomes, or the best measured relay's
 *   score already beats every unmeasured candidate's coordinator estimate, or
 *   `initialWaitMsMax` has passed. A client does not wait for its slowest probe.
 * - **Switch**: the best-ranked challenger replaces the current relay only when its
 *   gain, `latency(current) − latency(challenger) + lossPenaltyMs × (confident loss
 *   difference)`, is at least `max(switchMinGainMs, switchMinGainFraction × current
 *   score, switchNoiseZ × standard error of the latency difference)` — 10 ms, 15 % and
 *   4 standard errors by default — *continuously* for `switchHoldMs` (10 s). The
 *   confident loss difference is Newcombe's interval (hybrid Wilson score) on
 *   `loss(current) − loss(challenger)` at `lossConfidenceZ`: its lower bound when that
 *   is positive, its upper bound when that is negative (a challenger proven lossier
 *   pays for it), else 0: loss the two relays share (the client's own last mile), or
 *   that too few probes have seen, does not move the client.
 * - **Failover**: {@link RelaySelector.markUnreachable} (the session failed or was
 *   closed) moves to the backup at once, without hysteresis: a dead path is not noise.
 *   {@link RelaySelector.markSilent} (the current relay stopped answering) moves at once
 *   to a relay that answered a probe *sent after the current relay's last answer* (the
 *   backup first). When none has, every path went dark together — the client's own
 *   link, a Wi-Fi→cellular handover — and moving would only cost a handshake: the
 *   current relay stays, still holding the session, while every relay is re-probed
 *   quickly ({@link RelaySelector.recoveryProbeIntervalMs}); the first answer ends the
 *   outage. If another relay answers before the current one, the current one gets
 *   {@link C.RECOVERY_GRACE_MS} to answer too before the selector moves.
 * - **Backup**: the best-scoring reachable relay other than the current one; it changes
 *   only for one that would pass the switch test against it (the same gain and margin,
 *   no hold), so loss the two share does not swap them.
 *
 * Where this sits among the anchors: Tailscale keeps its home DERP unless another is
 * ≥ 10 ms *and* ≥ 33 % better; Valve's SDR needs `current × 1.1 + 5 ms` sustained 15 s;
 * Network Next switches for ≥ 10 ms or when loss exceeds 0.1 %. Our absolute floor
 * (10 ms) matches Tailscale's and Network Next's, our fraction (15 %) is between SDR's
 * 10 % and Tailscale's 33 %, and our hold (10 s) is close to SDR's. Unlike all three we
 * scale the margin with the measured noise (a jittery path's averages wander further by
 * chance) and we do not switch on a loss *threshold*: with 100–250 ms probes a 0.1 %
 * threshold is one lost probe in a thousand, which noise crosses all the time, so loss
 * moves the client only when the difference is proven.
 *
 * Sans-IO: inputs `setCandidates`, `handleProbeResult`, `markUnreachable`, `markSilent`,
 * `setExcluded`, `handleTimeout`; outputs `pollEvent`, `pollTimeout`,
 * `recoveryProbeIntervalMs`. After every input, drain `pollEvent` until it returns
 * undefined, then re-arm the timer from `pollTimeout`.
 */
import * as C from './constants.js';
import { PathEstimate, lossDifferenceInterval, lossInterval, type PathFigures } from './path-estimate.js';

/** Options of a {@link RelaySelector}. Every field has a default. */
export interface RelaySelectorInit {
  /** A challenger must win by at least this many ms. Default 10. */
  switchMinGainMs?: number;
  /** …and by at least this fraction of the current score. Default 0.15. */
  switchMinGainFraction?: number;
  /** …and by at least this many standard errors of the difference of the two scores. Default 4. */
  switchNoiseZ?: number;
  /** …continuously for this long, ms. Default 10000. */
  switchHoldMs?: number;
  /** Standard normal deviates of the loss confidence intervals (Wilson, Newcombe). Default 3 (≈ 99.7 % two-sided; probe losses are burstier than binomial, see path-estimate.ts). */
  lossConfidenceZ?: number;
  /** Weight of RTT variation in the score. Default 1. */
  jitterWeight?: number;
  /** Score penalty for 100 % loss, ms (so 1 % loss costs a hundredth). Default 1000. */
  lossPenaltyMs?: number;
  /** Probe outcomes a relay needs before it is ranked on its own figures. Default 3. */
  minSamples?: number;
  /** Longest wait for the first choice, ms from the first `setCandidates`. Default 1000. */
  initialWaitMsMax?: number;
}

/** A relay the coordinator offered. */
export interface RelayCandidate {
  /** Relay id. */
  readonly id: string;
  /** The coordinator's estimate of the whole path, ms (used until the client has its own figures). */
  readonly estimateMs?: number;
  /**
   * The part of the whole path the client cannot probe itself — relay→origin (and
   * relay→relay for two-hop routes) — from the coordinator, ms. Added to the client's
   * own probe score so that relays compete on the whole path, not on the first hop.
   * Default 0.
   */
  readonly restMs?: number;
}

/** Why the selection changed. */
export type SelectionReason = 'initial' | 'better-path' | 'failover' | 'backup-changed' | 'candidates-changed' | 'relay-down' | 'relay-back';

/**
 * What the selector tells its driver. `relay-down`: a relay was judged dead or silent
 * and the current relay stayed (it may be the silent one, waiting for any relay to
 * answer): the driver should re-read {@link RelaySelector.recoveryProbeIntervalMs}.
 * `relay-back`: the silent current relay answered again and stays current (the relay
 * may have restarted meanwhile and lost the session: the driver should check).
 */
export interface SelectionEvent {
  readonly type: 'selection';
  /** The relay to use, or undefined when none is usable. */
  readonly currentId: string | undefined;
  /** The warm backup, or undefined. */
  readonly backupId: string | undefined;
  readonly previousId: string | undefined;
  readonly reason: SelectionReason;
  /** The new current relay's score, ms, when known. */
  readonly scoreMs: number | undefined;
}

interface RelayState {
  readonly id: string;
  estimateMs: number | undefined;
  restMs: number;
  readonly path: PathEstimate;
  unreachable: boolean;
  /** The current relay stopped answering and no other relay is known alive: it stays current (see {@link RelaySelector.markSilent}). */
  silent: boolean;
  /** When it was last judged unreachable or silent, ms. */
  downSinceMs: number;
  /** Send time of the latest answered probe, ms (its answer time minus its RTT). */
  lastAnswerSentMs: number | undefined;
  /** Excluded by the session layer (the relay refused the session); probe answers do not clear it. */
  excluded: boolean;
  /** {@link RelaySelector.score}'s latency and loss penalty, for the figures and rest below (selection asks for it many times per probe outcome). */
  scoreMs: number;
  scoreFigures: PathFigures | undefined;
  scoreRestMs: number;
}

/** The selector. See the module comment for the rule. */
export class RelaySelector {
  private readonly switchMinGainMs: number;
  private readonly switchMinGainFraction: number;
  private readonly switchHoldMs: number;
  private readonly switchNoiseZ: number;
  private readonly lossZ: number;
  private readonly jitterWeight: number;
  private readonly lossPenaltyMs: number;
  private readonly minSamples: number;
  private readonly initialWaitMsMax: number;
  private readonly relays = new Map<string, RelayState>();
  private readonly events: SelectionEvent[] = [];
  private currentId: string | undefined = undefined;
  private backupId: string | undefined = undefined;
  private startedAtMs: number | undefined = undefined;
  /** The challenger currently ahead, and since when. */
  private challengerId: string | undefined = undefined;
  private challengerSinceMs = 0;
  private switchCount = 0;
  /** Set once the initial wait has run out, so that the deadline is not polled again. */
  private initialWaitOver = false;
  /** While the current relay is silent: whether no other relay was known alive when it fell silent (a blackout of every path). */
  private darkAtSilence = false;
  /** While the current relay is silent after a blackout of every path and another relay answered: when to move to that one, ms. */
  private recoveryDeadlineMs: number | undefined = undefined;
  /**
   * The last {@link gainMs} and {@link differenceErrorMs}, with the figures (and rests)
   * they were computed from: evaluation runs on every timeout of the client, the figures
   * change only with probe outcomes.
   */
  private readonly gainMemo = { challenger: undefined as PathFigures | undefined, current: undefined as PathFigures | undefined, challengerRestMs: 0, currentRestMs: 0, valueMs: 0 };
  /** The second result of {@link bestTwo}. */
  private bestOtherId: string | undefined = undefined;
  private readonly errorMemo = { a: undefined as PathFigures | undefined, b: undefined as PathFigures | undefined, valueMs: 0 };

  constructor(init: RelaySelectorInit = {}) {
    this.switchMinGainMs = init.switchMinGainMs ?? 10;
    this.switchMinGainFraction = init.switchMinGainFraction ?? 0.15;
    this.switchHoldMs = init.switchHoldMs ?? 10_000;
    this.switchNoiseZ = init.switchNoiseZ ?? 4;
    this.lossZ = init.lossConfidenceZ ?? 3;
    this.jitterWeight = init.jitterWeight ?? 1;
    this.lossPenaltyMs = init.lossPenaltyMs ?? 1000;
    this.minSamples = init.minSamples ?? 3;
    this.initialWaitMsMax = init.initialWaitMsMax ?? 1000;
  }

  /** The relay in use, if chosen. */
  get current(): string | undefined {
    return this.currentId;
  }

  /** The warm backup, if any. */
  get backup(): string | undefined {
    return this.backupId;
  }

  /** Selection changes after the initial pick (better path or failover). */
  get switches(): number {
    return this.switchCount;
  }

  /** One relay's figures, or undefined for an unknown relay. */
  figures(id: string): PathFigures | undefined {
    return this.relays.get(id)?.path.figures();
  }

  /** One relay's smoothed RTT and RTT variation (what liveness timeouts need; see {@link PathFigures}), read without a figures snapshot; undefined for an unknown relay. */
  rttEstimate(id: string): PathEstimate | undefined {
    return this.relays.get(id)?.path;
  }

  /** Whether `id` is judged dead (unreachable: silent and moved from, or its session failed) until a probe answers. False for unknown relays and for a silent current relay, which keeps its place. */
  isUnreachable(id: string): boolean {
    return this.relays.get(id)?.unreachable === true;
  }

  /** The relay's score in ms, or undefined when it has too few samples or no answered probe. */
  scoreMs(id: string): number | undefined {
    const relay = this.relays.get(id);
    return relay ? this.score(relay) : undefined;
  }

  /**
   * Input: the coordinator's candidate list. Relays no longer listed are forgotten
   * (unless in use: the current relay stays until something better or a failover).
   */
  setCandidates(nowMs: number, candidates: readonly RelayCandidate[]): void {
    this.startedAtMs ??= nowMs;
    const listed = new Set<string>();
    for (const candidate of candidates) {
      listed.add(candidate.id);
      const known = this.relays.get(candidate.id);
      if (known) {
        known.estimateMs = candidate.estimateMs;
        known.restMs = candidate.restMs ?? 0;
      } else {
        this.relays.set(candidate.id, { id: candidate.id, estimateMs: candidate.estimateMs, restMs: candidate.restMs ?? 0, path: new PathEstimate(), unreachable: false, silent: false, downSinceMs: nowMs, lastAnswerSentMs: undefined, excluded: false, scoreMs: 0, scoreFigures: undefined, scoreRestMs: 0 });
      }
    }
    for (const id of [...this.relays.keys()]) if (!listed.has(id) && id !== this.currentId) this.relays.delete(id);
    this.evaluate(nowMs, 'candidates-changed');
  }

  /** Input: a probe to `id` was answered after `rttMs`, or (undefined) timed out. */
  handleProbeResult(nowMs: number, id: string, rttMs: number | undefined): void {
    const relay = this.relays.get(id);
    if (!relay) return;
    if (rttMs === undefined) relay.path.addLost();
    else {
      relay.path.addAnswered(nowMs, rttMs);
      relay.lastAnswerSentMs = nowMs - rttMs;
      relay.unreachable = false;
      if (relay.silent) {
        // The current relay is back: the outage is over.
        relay.silent = false;
        this.recoveryDeadlineMs = undefined;
        this.evaluate(nowMs, 'better-path');
        this.emit('relay-back', this.currentId);
        return;
      }
    }
    this.evaluate(nowMs, 'better-path');
  }

  /**
   * Input: the session layer judged `id` dead (its session failed or was closed).
   * Fails over at once if it was current. An answered probe makes it eligible again.
   */
  markUnreachable(nowMs: number, id: string): void {
    const relay = this.relays.get(id);
    if (!relay || relay.unreachable) return;
    relay.unreachable = true;
    relay.silent = false;
    relay.downSinceMs = nowMs;
    const before = this.events.length;
    this.leave(nowMs, id);
    if (this.events.length === before) this.emit('relay-down', this.currentId);
  }

  /**
   * Input: the session layer heard nothing from `id` for too long (its liveness
   * timeout). For a relay other than the current one this is {@link markUnreachable}.
   * For the current one: fail over at once to a relay that answered a probe sent after
   * the current one's last answer (the backup first); if there is none, every path went
   * dark together, so keep the current relay (and its session) and wait: the first
   * relay to answer ends the outage (see the module comment).
   */
  markSilent(nowMs: number, id: string): void {
    const relay = this.relays.get(id);
    if (!relay || relay.unreachable || relay.silent) return;
    if (id !== this.currentId) {
      this.markUnreachable(nowMs, id);
      return;
    }
    relay.silent = true;
    relay.downSinceMs = nowMs;
    this.recoveryDeadlineMs = undefined;
    const target = this.bestAliveAfter(relay);
    this.darkAtSilence = target === undefined;
    if (target !== undefined) {
      this.failOverTo(target);
      return;
    }
    const before = this.events.length;
    this.evaluate(nowMs, 'backup-changed');
    if (this.events.length === before) this.emit('relay-down', this.currentId);
  }

  /**
   * Output: how often the driver should probe `id` to notice it (or any path) coming
   * back, ms, or undefined for its normal period. A relay judged dead or silent is
   * probed at half the time since then, from {@link C.RECOVERY_PROBE_INTERVAL_MS_MIN}
   * (250 ms) up to {@link C.RECOVERY_PROBE_INTERVAL_MS_MAX} (5 s); while the current
   * relay is silent (no relay answers), every relay is probed so, capped at
   * {@link C.RECOVERY_PROBE_INTERVAL_MS_ALL_DARK_MAX} (1 s), counting from the silence.
   * The driver takes the smaller of this and its own period.
   */
  recoveryProbeIntervalMs(nowMs: number, id: string): number | undefined {
    const relay = this.relays.get(id);
    if (relay === undefined) return undefined;
    const current = this.currentId === undefined ? undefined : this.relays.get(this.currentId);
    const dark = current !== undefined && current.silent;
    let sinceMs: number | undefined = relay.unreachable || relay.silent ? relay.downSinceMs : undefined;
    if (dark) sinceMs = sinceMs === undefined ? current.downSinceMs : Math.max(sinceMs, current.downSinceMs);
    if (sinceMs === undefined) return undefined;
    const capMs = dark ? C.RECOVERY_PROBE_INTERVAL_MS_ALL_DARK_MAX : C.RECOVERY_PROBE_INTERVAL_MS_MAX;
    return Math.min(capMs, Math.max(C.RECOVERY_PROBE_INTERVAL_MS_MIN, (nowMs - sinceMs) / 2));
  }

  /**
   * Input: the session layer excludes `id` from selection (it refused the session:
   * draining, full) or lets it back (a retried open was accepted). Unlike
   * {@link markUnreachable}, answered probes do not clear it: a draining relay still
   * answers probes. Fails over at once if it was current.
   */
  setExcluded(nowMs: number, id: string, excluded: boolean): void {
    const relay = this.relays.get(id);
    if (!relay || relay.excluded === excluded) return;
    relay.excluded = excluded;
    if (excluded) this.leave(nowMs, id);
    else this.evaluate(nowMs, 'better-path');
  }

  /** `id` can no longer be chosen: fail over if it is current, else pick another backup. */
  private leave(nowMs: number, id: string): void {
    if (id === this.currentId) {
      const previous = this.currentId;
      const backup = this.backupId === undefined ? undefined : this.relays.get(this.backupId);
      this.currentId = backup !== undefined && this.score(backup) !== undefined ? backup.id : this.bestExcept(undefined);
      this.backupId = this.bestExcept(this.currentId);
      this.challengerId = undefined;
      this.recoveryDeadlineMs = undefined;
      if (this.currentId !== undefined) this.switchCount++;
      this.emit('failover', previous);
    } else {
      this.evaluate(nowMs, 'backup-changed');
    }
  }

  /** Moves from the silent current relay to `targetId` (a failover). The old relay counts as unreachable until it answers. */
  private failOverTo(targetId: string): void {
    const previous = this.currentId!;
    const old = this.relays.get(previous)!;
    old.silent = false;
    old.unreachable = true;
    this.currentId = targetId;
    this.backupId = this.bestExcept(targetId);
    this.challengerId = undefined;
    this.recoveryDeadlineMs = undefined;
    this.switchCount++;
    this.emit('failover', previous);
  }

  /**
   * The relay to move to from the silent `current`: the backup, else the best-scoring
   * relay, among those that answered a probe sent after `current`'s last answer (so
   * they are alive now, not just before an outage that may have hit every path).
   */
  private bestAliveAfter(current: RelayState): string | undefined {
    const sinceMs = current.path.figures().lastAnsweredMs ?? Number.NEGATIVE_INFINITY;
    const alive = (r: RelayState): boolean => r.id !== current.id && r.lastAnswerSentMs !== undefined && r.lastAnswerSentMs > sinceMs && this.score(r) !== undefined;
    const backup = this.backupId === undefined ? undefined : this.relays.get(this.backupId);
    if (backup !== undefined && alive(backup)) return backup.id;
    let bestId: string | undefined;
    let bestScore = Infinity;
    for (const r of this.relays.values()) {
      if (!alive(r)) continue;
      const s = this.score(r)!;
      if (s < bestScore || (s === bestScore && bestId !== undefined && r.id < bestId)) {
        bestScore = s;
        bestId = r.id;
      }
    }
    return bestId;
  }

  /** Input: the timer from {@link pollTimeout} fired. */
  handleTimeout(nowMs: number): void {
    if (this.startedAtMs !== undefined && nowMs >= this.startedAtMs + this.initialWaitMsMax) this.initialWaitOver = true;
    this.evaluate(nowMs, 'better-path');
  }

  /** Output: the next selection change, or undefined. */
  pollEvent(): SelectionEvent | undefined {
    return this.events.shift();
  }

  /** Output: when to call {@link handleTimeout} next (ms), or undefined for never. */
  pollTimeout(): number | undefined {
    if (this.currentId === undefined && this.startedAtMs !== undefined && !this.initialWaitOver) return this.startedAtMs + this.initialWaitMsMax;
    if (this.recoveryDeadlineMs !== undefined && this.currentId !== undefined && this.relays.get(this.currentId)?.silent === true) return this.recoveryDeadlineMs;
    if (this.challengerId !== undefined) return this.challengerSinceMs + this.switchHoldMs;
    return undefined;
  }

  /** Ranking score, ms: latency plus the loss penalty of the lower bound of the loss interval; undefined when not eligible. */
  private score(relay: RelayState): number | undefined {
    const f = relay.path.figures();
    if (relay.unreachable || relay.excluded || relay.silent || f.stableRttMs === undefined || f.samples < this.minSamples) return undefined;
    if (relay.scoreFigures !== f || relay.scoreRestMs !== relay.restMs) {
      relay.scoreMs = this.latencyMs(relay.restMs, f) + this.lossPenaltyMs * lossInterval(f.loss, f.lossEffectiveSamples, this.lossZ).low;
      relay.scoreFigures = f;
      relay.scoreRestMs = relay.restMs;
    }
    return relay.scoreMs;
  }

  /** RTT (slow average) + rest of the path + weighted jitter, ms. */
  private latencyMs(restMs: number, f: PathFigures): number {
    return (f.stableRttMs ?? 0) + restMs + this.jitterWeight * f.stableJitterMs;
  }

  /**
   * What moving from `currentId` to `challengerId` gains, ms: the latency difference
   * plus the loss penalty of the confident part of the loss difference (Newcombe's
   * interval: its lower bound if positive, its upper bound if negative, else 0).
   */
  private gainMs(challengerId: string, currentId: string): number {
    const ch = this.relays.get(challengerId)!;
    const cur = this.relays.get(currentId)!;
    const fc = cur.path.figures();
    const fch = ch.path.figures();
    // Figures snapshots are per relay and per probe outcome, so they (and the rests) identify the inputs.
    const memo = this.gainMemo;
    if (memo.challenger !== fch || memo.current !== fc || memo.challengerRestMs !== ch.restMs || memo.currentRestMs !== cur.restMs) {
      memo.challenger = fch;
      memo.current = fc;
      memo.challengerRestMs = ch.restMs;
      memo.currentRestMs = cur.restMs;
      memo.valueMs = this.computeGainMs(ch, cur, fch, fc);
    }
    return memo.valueMs;
  }

  private computeGainMs(ch: RelayState, cur: RelayState, fch: PathFigures, fc: PathFigures): number {
    const d = lossDifferenceInterval([fc.loss, fc.lossEffectiveSamples], [fch.loss, fch.lossEffectiveSamples], this.lossZ);
    const confident = d.low > 0 ? d.low : d.high < 0 ? d.high : 0;
    return this.latencyMs(cur.restMs, fc) - this.latencyMs(ch.restMs, fch) + this.lossPenaltyMs * confident;
  }

  private bestExcept(excludedId: string | undefined): string | undefined {
    let bestId: string | undefined;
    let bestScore = Infinity;
    for (const relay of this.relays.values()) {
      if (relay.id === excludedId) continue;
      const s = this.score(relay);
      // Ties go to the lexically smaller id so that the choice is deterministic.
      if (s !== undefined && (s < bestScore || (s === bestScore && bestId !== undefined && relay.id < bestId))) {
        bestScore = s;
        bestId = relay.id;
      }
    }
    return bestId;
  }

  /**
   * `bestExcept(undefined)`, and `bestExcept(excludedId)` into {@link bestOtherId}, in
   * one pass (same order, same ties): evaluation needs both on every timeout.
   */
  private bestTwo(excludedId: string | undefined): string | undefined {
    let bestId: string | undefined;
    let bestScore = Infinity;
    let otherId: string | undefined;
    let otherScore = Infinity;
    for (const relay of this.relays.values()) {
      const s = this.score(relay);
      if (s === undefined) continue;
      if (s < bestScore || (s === bestScore && bestId !== undefined && relay.id < bestId)) {
        bestScore = s;
        bestId = relay.id;
      }
      if (relay.id !== excludedId && (s < otherScore || (s === otherScore && otherId !== undefined && relay.id < otherId))) {
        otherScore = s;
        otherId = relay.id;
      }
    }
    this.bestOtherId = otherId;
    return bestId;
  }

  private initialChoiceIsClear(nowMs: number, bestId: string): boolean {
    if (this.startedAtMs !== undefined && nowMs >= this.startedAtMs + this.initialWaitMsMax) return true;
    const bestScore = this.score(this.relays.get(bestId)!)!;
    for (const relay of this.relays.values()) {
      if (relay.unreachable || relay.excluded || this.score(relay) !== undefined) continue;
      // An unmeasured relay could still win if the coordinator thinks it is close. When
      // the rest of its path is known, that is a floor no client leg can go under, and
      // safer than a whole-path estimate whose client leg may be a guess.
      const floorMs = relay.restMs > 0 ? Math.min(relay.restMs, relay.estimateMs ?? Infinity) : relay.estimateMs;
      if (floorMs === undefined || floorMs < bestScore + this.switchMinGainMs) return false;
    }
    return true;
  }

  private evaluate(nowMs: number, reason: SelectionReason): void {
    const best = this.bestTwo(this.currentId);
    // What bestExcept(this.currentId) gives: the backup candidate below (nothing that
    // reaches that point changes a score or the current relay).
    const bestOther = this.bestOtherId;
    const currentRelay = this.currentId === undefined ? undefined : this.relays.get(this.currentId);
    if (this.currentId === undefined || currentRelay === undefined || currentRelay.unreachable || currentRelay.excluded) {
      if (best !== undefined && this.initialChoiceIsClear(nowMs, best)) {
        const previous = this.currentId;
        this.currentId = best;
        this.backupId = this.bestExcept(best);
        this.emit(previous === undefined ? 'initial' : 'failover', previous);
      }
      return;
    }
    if (currentRelay.silent) {
      this.challengerId = undefined;
      const target = this.bestAliveAfter(currentRelay);
      if (target === undefined) this.recoveryDeadlineMs = undefined;
      else {
        // After a blackout of every path, the current relay (which holds the session and
        // is probed fastest) gets a moment to answer too before the client moves.
        if (this.darkAtSilence && this.recoveryDeadlineMs === undefined) this.recoveryDeadlineMs = nowMs + C.RECOVERY_GRACE_MS;
        if (!this.darkAtSilence || nowMs >= this.recoveryDeadlineMs!) {
          this.failOverTo(target);
          return;
        }
      }
    }
    const currentScore = this.score(currentRelay);
    if (best !== undefined && best !== this.currentId && currentScore !== undefined) {
      const needed = Math.max(this.switchMinGainMs, this.switchMinGainFraction * currentScore, this.switchNoiseZ * this.differenceErrorMs(best, this.currentId));
      if (this.gainMs(best, this.currentId) >= needed) {
        if (this.challengerId !== best) {
          this.challengerId = best;
          this.challengerSinceMs = nowMs;
        } else if (nowMs - this.challengerSinceMs >= this.switchHoldMs) {
          const previous = this.currentId;
          this.currentId = best;
          this.backupId = this.bestExcept(best);
          this.challengerId = undefined;
          this.switchCount++;
          this.emit('better-path', previous);
          return;
        }
      } else {
        this.challengerId = undefined;
      }
    } else {
      this.challengerId = undefined;
    }
    const backup = bestOther;
    if (backup !== this.backupId && this.backupShouldChange(backup)) {
      this.backupId = backup;
      this.emit(reason === 'candidates-changed' ? reason : 'backup-changed', this.currentId);
    }
  }

  /** Standard error of the difference between two relays' latencies (RTT and jitter terms), ms. (Loss has its own interval.) */
  private differenceErrorMs(a: string, b: string): number {
    const fa = this.relays.get(a)!.path.figures();
    const fb = this.relays.get(b)!.path.figures();
    const memo = this.errorMemo;
    if (memo.a !== fa || memo.b !== fb) {
      memo.a = fa;
      memo.b = fb;
      let variance = 0;
      variance += fa.stableRttErrorMs * fa.stableRttErrorMs + this.jitterWeight * this.jitterWeight * fa.stableJitterErrorMs * fa.stableJitterErrorMs;
      variance += fb.stableRttErrorMs * fb.stableRttErrorMs + this.jitterWeight * this.jitterWeight * fb.stableJitterErrorMs * fb.stableJitterErrorMs;
      memo.valueMs = Math.sqrt(variance);
    }
    return memo.valueMs;
  }

  /**
   * Backups get a switch's hysteresis too (without its hold): warming a new one costs a
   * session open (and closing the old one), so noise must not move it. The gain is a
   * switch's (confident loss difference, margin scaled with the latency noise), not the
   * difference of the two scores: on a lossy last mile both relays' probes lose alike,
   * and comparing each one's own loss lower bound swapped two equal backups back and
   * forth on chance alone, a new session each time (several a minute at 5 % loss).
   */
  private backupShouldChange(candidateId: string | undefined): boolean {
    const old = this.backupId === undefined ? undefined : this.relays.get(this.backupId);
    const oldScore = old ? this.score(old) : undefined;
    if (oldScore === undefined || old!.id === this.currentId) return true;
    if (candidateId === undefined) return false;
    const needed = Math.max(this.switchMinGainMs, this.switchMinGainFraction * oldScore, this.switchNoiseZ * this.differenceErrorMs(candidateId, old!.id));
    return this.gainMs(candidateId, old!.id) >= needed;
  }

  private emit(reason: SelectionReason, previousId: string | undefined): void {
    const current = this.currentId === undefined ? undefined : this.relays.get(this.currentId);
    this.events.push({
      type: 'selection',
      currentId: this.currentId,
      backupId: this.backupId,
      previousId,
      reason,
      scoreMs: current ? this.score(current) : undefined,
    });
  }
}
