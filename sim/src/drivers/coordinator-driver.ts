/**
 * Drives a {@link CoordinatorCore} over any {@link Transport} with the relay API's calls
 * (register, heartbeat, fleet list, path reports: sim/src/drivers/relay-api-wire.ts, answered by
 * {@link answerSimApiCall}) and proto's msgpack control messages (`relayRegister`,
 * `relayHeartbeat`, `pathReport`), on a caller's
 * clock and timer. In the simulator this puts the coordinator's real ranking, lease
 * and measurement logic on a virtual network next to simulated relays and clients
 * (coordinator/test/sim.test.ts); nothing here reads a clock or opens a socket.
 *
 * `pathReport` from a registered relay counts as relay→relay when `targetId` is a
 * registered relay and relay→origin otherwise; from anyone else (`reporterId` not a
 * relay) it is an SDK report filed under the sender's address prefix.
 */
import { decodeControl } from '../../../proto/src/control.js';
import type { Clock } from '../../../proto/src/clock.js';
import type { Endpoint, Transport } from '../../../proto/src/transport.js';
import { CoordinatorCore } from '../../../coordinator/src/core/coordinator-core.js';
import { clientPrefix } from '../../../coordinator/src/core/geo.js';
import { decodeSimApiCall, encodeSimApiAnswer, type SimApiCall } from './relay-api-wire.js';
import { answerSimApiCall, revocationPage } from './coordinator-relay-api.js';

/** A re-armable one-shot timer (the simulator's `SimTimer` fits). */
export interface DriverTimer {
  /** Arms the timer at `atMs` (replacing any earlier deadline). */
  set(atMs: number): void;
}

/** Counters of what the driver saw. */
export interface SimDriverStats {
  /** Control messages taken. */
  messages: number;
  /** Datagrams that did not decode or were refused (unknown relay, no samples). */
  refused: number;
}

/** A held long poll of the revocation feed. */
interface FeedWaiter {
  readonly call: SimApiCall;
  readonly from: Endpoint;
  readonly sinceMs: number;
  readonly deadlineMs: number;
}

/** See the module comment. */
export class CoordinatorSimDriver {
  /** What arrived. */
  readonly stats: SimDriverStats = { messages: 0, refused: 0 };

  /**
   * @param core the coordinator core to drive
   * @param transport a bound socket relays and clients send control messages to
   * @param clock the time passed to the core
   * @param makeTimer creates the timer armed at `core.pollTimeout()`; its callback must call {@link handleTimeout}
   */
  constructor(
    readonly core: CoordinatorCore,
    private readonly transport: Transport,
    private readonly clock: Clock,
    makeTimer: (callback: () => void) => DriverTimer,
  ) {
    this.timer = makeTimer(() => this.handleTimeout());
    transport.onReceive((bytes, from) => this.handleDatagram(bytes, from));
    this.handleTimeout();
  }

  private readonly timer: DriverTimer;
  /** Revocation-feed long polls held until something is new or their wait ends. */
  private feedWaiters: FeedWaiter[] = [];

  /** The address relays and clients send to. */
  address(): Endpoint {
    return this.transport.localAddress();
  }

  /** Runs the core's timers, ends long polls whose wait is over, and re-arms. */
  handleTimeout(): void {
    const now = this.clock.now();
    this.core.handleTimeout(now);
    this.answerFeedWaiters(now, (w) => w.deadlineMs <= now);
    this.drain();
  }

  /**
   * The game backend revokes a session (`DELETE /v1/session/:id`): relays following the
   * feed hear it at once. `expiresAtMs`: wall ms until which the revocation is kept.
   */
  revoke(sessionId: string, revokedAtMs: number, expiresAtMs: number): void {
    const now = this.clock.now();
    if (this.core.revoke(now, { sessionId, revokedAtMs, expiresAtMs }) !== undefined) this.answerFeedWaiters(now, () => true);
    this.drain();
  }

  private answerFeedWaiters(now: number, due: (w: FeedWaiter) => boolean): void {
    if (this.feedWaiters.length === 0) return;
    const kept: FeedWaiter[] = [];
    for (const w of this.feedWaiters) {
      if (!due(w)) {
        kept.push(w);
        continue;
      }
      this.stats.messages++;
      this.transport.send(encodeSimApiAnswer({ id: w.call.id, ok: true, body: revocationPage(this.core, now, w.sinceMs) }), w.from);
    }
    this.feedWaiters = kept;
  }

  private handleDatagram(bytes: Uint8Array, from: Endpoint): void {
    const call = decodeSimApiCall(bytes);
    if (call !== undefined) {
      const now = this.clock.now();
      if (call.kind === 'revocations') {
        const { sinceMs, waitMs } = call.body as { sinceMs: number; waitMs: number };
        // A long poll: held until a revocation arrives or the wait ends, as the service does.
        if (waitMs > 0 && this.core.revocations.since(now, sinceMs).length === 0) {
          this.feedWaiters.push({ call, from, sinceMs, deadlineMs: now + waitMs });
          this.drain();
          return;
        }
      }
      const answer = answerSimApiCall(this.core, this.clock.now(), call);
      if (answer.ok) this.stats.messages++;
      else this.stats.refused++;
      this.transport.send(encodeSimApiAnswer(answer), from);
      this.drain();
      return;
    }
    const decoded = decodeControl(bytes);
    if (!decoded.ok) {
      this.stats.refused++;
      return;
    }
    const now = this.clock.now();
    const m = decoded.message;
    let ok = true;
    switch (m.type) {
      case 'relayRegister':
        this.core.register(now, m);
        break;
      case 'relayHeartbeat':
        ok = this.core.heartbeat(now, m.relayId, m) !== undefined;
        break;
      case 'pathReport': {
        const sample = { rttMs: m.rttMs, jitterMs: m.jitterMs, lossFraction: m.lossFraction, samples: m.samples };
        if (this.core.registry.get(m.reporterId)) {
          ok = this.core.relayReport(now, m.reporterId, this.core.registry.get(m.targetId) ? { relayId: m.targetId } : { origin: m.targetId }, sample).ok;
        } else {
          const prefix = clientPrefix(from.address);
          ok = prefix !== undefined && this.core.clientReport(now, prefix, m.targetId, sample).ok;
        }
        break;
      }
      default:
        ok = false;
    }
    if (ok) this.stats.messages++;
    else this.stats.refused++;
    this.drain();
  }

  private drain(): void {
    for (let e = this.core.pollEvent(); e; e = this.core.pollEvent()) {
      // Health transitions are visible through the registry; the simulator has no log.
    }
    let next = this.core.pollTimeout();
    for (const w of this.feedWaiters) if (next === undefined || w.deadlineMs < next) next = w.deadlineMs;
    if (next !== undefined) this.timer.set(next);
  }
}
