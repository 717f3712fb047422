/**
 * The simulator driver of {@link RelayCore}: the same core as production, bound to the
 * simulator's virtual UDP sockets and clock, so relay behaviour (forwarding, failover,
 * migration, abuse limits) is tested on virtual links at virtual time, reproducibly
 * from a seed. TCP rules are not simulated (the simulator has no streams); TCP health
 * checks report failure.
 */
import { Rng } from '../../../proto/src/rng.js';
import type { SimTimer } from '../core/event-queue.js';
import type { SimHost, SimNetwork, SimUdpSocket } from '../core/network.js';
import type { RelayCoreConfig } from '../../../relay/src/core/config-types.js';
import { RelayCore, type RelayEvent } from '../../../relay/src/core/relay-core.js';

/** Options of {@link SimRelay}. */
export interface SimRelayInit {
  readonly network: SimNetwork;
  /** The host the relay runs on (its listen and upstream sockets bind there). */
  readonly host: SimHost;
  readonly config: RelayCoreConfig;
  /** Seed of the relay's nonces. Default 1. */
  readonly seed?: number;
  /** Wall clock at virtual time 0, Unix ms (tickets carry wall times). Default 1.7e12. */
  readonly wallEpochMs?: number;
}

/** A relay core running on the simulator. */
export class SimRelay {
  /** The core (for assertions). */
  readonly core: RelayCore;
  /** Every event the core emitted, in order (for assertions). */
  readonly events: RelayEvent[] = [];
  private readonly sockets = new Map<number, SimUdpSocket>();
  private readonly timer: SimTimer;
  private readonly network: SimNetwork;
  private readonly host: SimHost;
  /** Where a transmit's prefix and bytes are joined for sending (the socket copies). */
  private joinScratch = new Uint8Array(2048);

  constructor(init: SimRelayInit) {
    this.network = init.network;
    this.host = init.host;
    const rng = new Rng(init.seed ?? 1);
    const epoch = init.wallEpochMs ?? 1.7e12;
    this.core = new RelayCore(init.config, { wallClockMs: () => epoch + init.network.now(), randomFill: (out) => void rng.fillBytes(out) });
    this.timer = init.network.createTimer((now) => {
      this.core.handleTimeout(now);
      this.flush();
    }, { what: 'relay core timer', host: init.host.address });
    this.core.start(init.network.now());
    this.flush();
  }

  /** The virtual socket of a core socket id (listeners: look them up by {@link listenerPort}). */
  socket(socketId: number): SimUdpSocket | undefined {
    return this.sockets.get(socketId);
  }

  /** Applies a new configuration (SIGHUP). */
  reconfigure(config: RelayCoreConfig): void {
    this.core.reconfigure(this.network.now(), config);
    this.flush();
  }

  /** Drains (SIGTERM): no new sessions, live ones continue. */
  drain(): void {
    this.core.drain();
  }

  /** Revokes sessions. */
  setRevoked(ids: ReadonlySet<string>): void {
    this.core.setRevoked(this.network.now(), ids);
    this.flush();
  }

  /** Revokes sessions pushed by a feed (the coordinator's), kept until `forgetAfterWallMs` (wall ms). */
  revoke(sessionIds: readonly string[], forgetAfterWallMs?: number): void {
    this.core.revoke(this.network.now(), sessionIds, forgetAfterWallMs);
    this.flush();
  }

  /** Closes the core and its sockets. */
  close(): void {
    this.core.close(this.network.now());
    this.flush();
    this.timer.clear();
  }

  private flush(): void {
    for (let event = this.core.pollEvent(); event !== undefined; event = this.core.pollEvent()) {
      this.events.push(event);
      if (event.type === 'openSocket' && event.protocol === 'udp') {
        const socketId = event.socketId;
        const socket = this.host.bind(event.port);
        socket.onReceive((bytes, from) => {
          // The core reads `bytes` during the call or hands it on as a view in a
          // transmit; flush() drains every transmit before this returns and the
          // simulated socket copies on send, so the delivery buffer (which the network
          // reuses afterwards) is never seen again: no copy needed.
          this.core.handleDatagram(this.network.now(), socketId, from, bytes);
          this.flush();
        });
        this.sockets.set(socketId, socket);
      } else if (event.type === 'closeSocket') {
        this.sockets.get(event.socketId)?.close();
        this.sockets.delete(event.socketId);
      } else if (event.type === 'tcpCheck') {
        this.core.handleCheckResult(this.network.now(), event.checkId, false);
      }
    }
    for (let tx = this.core.pollTransmit(); tx !== undefined; tx = this.core.pollTransmit()) {
      const socket = this.sockets.get(tx.socketId);
      if (socket === undefined || socket.closed) continue;
      if (tx.prefix === undefined) socket.send(tx.bytes, tx);
      else {
        // The socket copies on send, so one scratch buffer serves every join (a fresh
        // array per packet would cost an off-heap allocation each).
        const length = tx.prefix.length + tx.bytes.length;
        if (this.joinScratch.length < length) this.joinScratch = new Uint8Array(Math.max(length, 2 * this.joinScratch.length));
        const joined = this.joinScratch.subarray(0, length);
        joined.set(tx.prefix);
        joined.set(tx.bytes, tx.prefix.length);
        socket.send(joined, tx);
      }
    }
    const deadline = this.core.pollTimeout();
    if (deadline === undefined) this.timer.clear();
    else if (this.timer.deadlineMs !== deadline) this.timer.set(deadline);
  }
}
