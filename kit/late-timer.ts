/**
 * A driver's timer for a sans-IO core that, after a stall, lets the datagrams queued
 * meanwhile in first.
 *
 * Node's event loop runs expired timers (the timers phase) before it reads the sockets
 * (the poll phase). When the process was blocked — a loaded host's scheduler, a long
 * task, a collection: 150–800 ms on a busy 2-core machine — a core's timer fires late,
 * and its timeout handled at once acts on a stale view: an FEC decoder gives up packets
 * whose repairs already wait in the socket's receive queue (seen: four give-ups at once
 * after a 388 ms gap, the repairs read a moment later). So a timer that fires more than
 * {@link LateTimerInit.lateMs} after its deadline hands the timeout to the check phase
 * (`setImmediate`, right after the poll phase has read what is queued), and again while
 * the poll phase before it still delivered datagrams (libuv reads at most 32 per socket
 * and readable event), at most {@link LateTimerInit.maxDeferrals} times. A timer on
 * time runs at once, as before.
 *
 * The driver calls {@link LateTimer.noteInput} for every datagram (or batch) it feeds the
 * core, arms with {@link LateTimer.arm} after draining the core, and stops with
 * {@link LateTimer.stop}.
 */

/** Default {@link LateTimerInit.lateMs}: a timer this late (ms) was held up by a stall. Node's timers on this project's busy 2-core machine fire within 3.3 ms of their deadline 99.9 % of the time. */
export const LATE_TIMER_MS_DEFAULT = 5;

/** Default {@link LateTimerInit.maxDeferrals}: bounds the wait under a steady flood of input (each deferral is one turn of the event loop). */
export const LATE_TIMER_DEFERRALS_MAX_DEFAULT = 8;

/** Options of a {@link LateTimer}. */
export interface LateTimerInit {
  /** Called when the timer fires (and, if it fired late, once queued input was read); the driver calls its core's `handleTimeout` here. */
  readonly run: () => void;
  /** The driver's clock, ms (the one the core's deadlines are in). */
  readonly now: () => number;
  /** Lateness past the deadline from which the timeout waits for queued input, ms. Default {@link LATE_TIMER_MS_DEFAULT}. */
  readonly lateMs?: number;
  /** Turns of the event loop a late timeout waits at most. Default {@link LATE_TIMER_DEFERRALS_MAX_DEFAULT}. */
  readonly maxDeferrals?: number;
  /** Whether the timer keeps the process alive. Default true. */
  readonly ref?: boolean;
}

/** One driver timer; see the module comment. */
export class LateTimer {
  private readonly init: LateTimerInit;
  private readonly lateMs: number;
  private readonly maxDeferrals: number;
  private timer: ReturnType<typeof setTimeout> | undefined = undefined;
  private immediate: ReturnType<typeof setImmediate> | undefined = undefined;
  private deadlineMs = Number.POSITIVE_INFINITY;
  private inputs = 0;
  private inputsAtDefer = 0;
  private deferredTurns = 0;
  /** Timeouts that fired late and waited for queued input (a count since creation). */
  lateFires = 0;
  private readonly onTimerBound = (): void => this.onTimer();
  private readonly onCheckBound = (): void => this.onCheck();

  constructor(init: LateTimerInit) {
    this.init = init;
    this.lateMs = init.lateMs ?? LATE_TIMER_MS_DEFAULT;
    this.maxDeferrals = init.maxDeferrals ?? LATE_TIMER_DEFERRALS_MAX_DEFAULT;
  }

  /** The deadline armed (ms on the driver's clock), or +∞ when none. */
  get deadline(): number {
    return this.deadlineMs;
  }

  /** A datagram (or a batch of them) was fed to the core. */
  noteInput(): void {
    this.inputs++;
  }

  /** Fires at `deadlineMs` (the driver's clock), replacing any earlier arming; undefined disarms. A timeout already waiting for queued input stays due. */
  arm(deadlineMs: number | undefined): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.deadlineMs = deadlineMs ?? Number.POSITIVE_INFINITY;
    if (deadlineMs === undefined || this.immediate !== undefined) return;
    this.timer = setTimeout(this.onTimerBound, Math.max(0, deadlineMs - this.init.now()));
    if (this.init.ref === false) this.timer.unref();
  }

  /** Disarms everything, a waiting timeout included. */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = this.immediate = undefined;
    this.deadlineMs = Number.POSITIVE_INFINITY;
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.init.now() - this.deadlineMs <= this.lateMs) {
      this.deadlineMs = Number.POSITIVE_INFINITY;
      this.init.run();
      return;
    }
    this.lateFires++;
    this.deferredTurns = 0;
    this.inputsAtDefer = this.inputs;
    this.immediate = setImmediate(this.onCheckBound);
  }

  private onCheck(): void {
    // The poll phase just before delivered input: more may be queued behind it.
    if (this.inputs !== this.inputsAtDefer && ++this.deferredTurns < this.maxDeferrals) {
      this.inputsAtDefer = this.inputs;
      this.immediate = setImmediate(this.onCheckBound);
      return;
    }
    this.immediate = undefined;
    this.deadlineMs = Number.POSITIVE_INFINITY;
    this.init.run();
  }
}
