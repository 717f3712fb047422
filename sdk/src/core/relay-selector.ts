/**
 * Picks the relay a client uses, and a warm backup, from the client's own probe
 * results, with hysteresis so that noisy paths do not make it flap.
 *
 * ## The rule
 * Each relay's path gets a score in milliseconds:
 * `score = RTT + rest + jitterWeight × RTT variation + lossPenaltyMs × loss`, where RTT and its
 * variation are slow averages of the client's probes (gain 1/64, see path-estimate.ts)
 * and `rest` is the coordinator's figure for the relay→origin part of the whole path
 * (defaults: jitter counts once; each 1 % of probe loss counts as 10 ms).
 *
 * - **Start**: pick the best-scoring relay as soon as it is clear: every candidate has
 *   {@link RelaySelectorInit.minSamples} probe outcomes, or the best measured relay's
 *   score already beats every unmeasured candidate's coordinator estimate, or
 *   `initialWaitMsMax` has passed. A client does not wait for its slowest probe.
 * - **Switch**: a challenger replaces the current relay only when it is better by at
 *   least `max(switchMinGainMs, switchMinGainFraction × current score, switchNoiseZ ×
 *   standard error of the difference)` — 10 ms, 15 % and 4 standard errors by default
 *   — and stays so *continuously* for `switchHoldMs` (10 s). This sits between
 *   Tailscale (≥ 10 ms and ≥ 33 % better), Valve SDR (current × 1.1 + 5 ms, sustained
 *   15 s) and Network Next (≥ 10 ms): the absolute floor ignores noise on short paths,
 *   the fraction ignores it on long ones, the noise term demands more of jittery
 *   paths whose averages wander further by chance, and the hold rides out spikes, so
 *   equal paths with 20 ms of jitter do not flap while a real 10 ms gain on a steady
 *   path is taken in about 15 s.
 * - **Loss**: loss enters the score, so a lossy relay loses to a slightly slower clean
 *   one through the same rule.
 * - **Failover**: {@link RelaySelector.markUnreachable} (from the session's liveness
 *   detector) moves to the backup at once, without hysteresis: a dead path is not noise.
 * - **Backup**: the best-scoring reachable relay other than the current one; kept warm
 *   by the session layer.
 *
 * Sans-IO: inputs `setCandidates`, `handleProbeResult`, `markUnreachable`,
 * `handleTimeout`; outputs `pollEvent`, `pollTimeout`. After every input, drain
 * `pollEvent` until it returns undefined, then re-arm the timer from `pollTimeout`.
 */
import { PathEstimate, type PathFigures } from './path-estimate.js';

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
export type SelectionReason = 'initial' | 'better-path' | 'failover' | 'backup-changed' | 'candidates-changed';

/** What the selector tells its driver. */
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
  /** Excluded by the session layer (the relay refused the session); probe answers do not clear it. */
  excluded: boolean;
}

/** The selector. See the module comment for the rule. */
export class RelaySelector {
  private readonly switchMinGainMs: number;
  private readonly switchMinGainFraction: number;
  private readonly switchHoldMs: number;
  private readonly switchNoiseZ: number;
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

  constructor(init: RelaySelectorInit = {}) {
    this.switchMinGainMs = init.switchMinGainMs ?? 10;
    this.switchMinGainFraction = init.switchMinGainFraction ?? 0.15;
    this.switchHoldMs = init.switchHoldMs ?? 10_000;
    this.switchNoiseZ = init.switchNoiseZ ?? 4;
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
      } else this.relays.set(candidate.id, { id: candidate.id, estimateMs: candidate.estimateMs, restMs: candidate.restMs ?? 0, path: new PathEstimate(), unreachable: false, excluded: false });
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
      relay.unreachable = false;
    }
    this.evaluate(nowMs, 'better-path');
  }

  /** Input: the session layer judged `id` dead. Fails over at once if it was current. */
  markUnreachable(nowMs: number, id: string): void {
    const relay = this.relays.get(id);
    if (!relay || relay.unreachable) return;
    relay.unreachable = true;
    this.leave(nowMs, id);
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
      this.currentId = this.backupId ?? this.bestExcept(undefined);
      this.backupId = this.bestExcept(this.currentId);
      this.challengerId = undefined;
      if (this.currentId !== undefined) this.switchCount++;
      this.emit('failover', previous);
    } else {
      this.evaluate(nowMs, 'backup-changed');
    }
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
    if (this.challengerId !== undefined) return this.challengerSinceMs + this.switchHoldMs;
    return undefined;
  }

  private score(relay: RelayState): number | undefined {
    const f = relay.path.figures();
    if (relay.unreachable || relay.excluded || f.stableRttMs === undefined || f.samples < this.minSamples) return undefined;
    return f.stableRttMs + relay.restMs + this.jitterWeight * f.stableJitterMs + this.lossPenaltyMs * f.loss;
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
    const best = this.bestExcept(undefined);
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
    const currentScore = this.score(this.relays.get(this.currentId)!);
    if (best !== undefined && best !== this.currentId && currentScore !== undefined) {
      const bestScore = this.score(this.relays.get(best)!)!;
      const needed = Math.max(this.switchMinGainMs, this.switchMinGainFraction * currentScore, this.switchNoiseZ * this.differenceErrorMs(best, this.currentId));
      if (bestScore + needed <= currentScore) {
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
    const backup = this.bestExcept(this.currentId);
    if (backup !== this.backupId && this.backupShouldChange(backup)) {
      this.backupId = backup;
      this.emit(reason === 'candidates-changed' ? reason : 'backup-changed', this.currentId);
    }
  }

  /** Standard error of the difference between two relays' scores (RTT and jitter terms), ms. */
  private differenceErrorMs(a: string, b: string): number {
    let variance = 0;
    for (const id of [a, b]) {
      const f = this.relays.get(id)!.path.figures();
      variance += f.stableRttErrorMs * f.stableRttErrorMs + this.jitterWeight * this.jitterWeight * f.stableJitterErrorMs * f.stableJitterErrorMs;
    }
    return Math.sqrt(variance);
  }

  /** Backups get hysteresis too: warming a new one costs a session open, so noise must not move it. */
  private backupShouldChange(candidateId: string | undefined): boolean {
    const old = this.backupId === undefined ? undefined : this.relays.get(this.backupId);
    const oldScore = old ? this.score(old) : undefined;
    if (oldScore === undefined || old!.id === this.currentId) return true;
    if (candidateId === undefined) return false;
    const candidateScore = this.score(this.relays.get(candidateId)!)!;
    return candidateScore + Math.max(this.switchMinGainMs, this.switchMinGainFraction * oldScore) <= oldScore;
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
