/**
 * Drives a {@link CoordinatorCore} over any {@link Transport} with the relay API's calls
 * (register, heartbeat, fleet list, path reports: proto/src/sim-api.ts, answered by
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
import { decodeControl } from '../../proto/src/control.js';
import { decodeSimApiCall, encodeSimApiAnswer } from '../../proto/src/sim-api.js';
import type { Clock } from '../../proto/src/clock.js';
import type { Endpoint, Transport } from '../../proto/src/transport.js';
import { CoordinatorCore } from './core/coordinator-core.js';
import { clientPrefix } from './core/geo.js';
import { answerSimApiCall } from './sim-relay-api.js';

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

  /** The address relays and clients send to. */
  address(): Endpoint {
    return this.transport.localAddress();
  }

  /** Runs the core's timers and re-arms. */
  handleTimeout(): void {
    this.core.handleTimeout(this.clock.now());
    this.drain();
  }

  private handleDatagram(bytes: Uint8Array, from: Endpoint): void {
    const call = decodeSimApiCall(bytes);
    if (call !== undefined) {
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
    const next = this.core.pollTimeout();
    if (next !== undefined) this.timer.set(next);
  }
}
