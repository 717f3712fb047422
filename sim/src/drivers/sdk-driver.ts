/**
 * The simulator driver of {@link TunnelClient}: the same core as `connect()`, bound to
 * a virtual UDP socket and the simulator's clock, so selection, failover and FEC are
 * tested at virtual time, reproducibly from a seed. Candidates come from a callback
 * (in the scenarios, the real coordinator core's ranking after a simulated delay);
 * nothing here awaits a promise, because the simulator runs synchronously.
 */
import type { SimTimer } from '../core/event-queue.js';
import type { SimHost, SimNetwork, SimUdpSocket } from '../core/network.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import { nodeHmacSha256 } from '../../../proto/src/wire.js';
import { TunnelClient, type PathReport, type TunnelCandidate, type TunnelClientEvent, type TunnelClientInit } from '../../../sdk/src/core/tunnel-client.js';

/** Asks for candidates; calls back with them, or with an Error when the coordinator cannot be reached. */
export type SimCandidateSource = (done: (result: readonly TunnelCandidate[] | Error) => void) => void;

/** Options of {@link SimTunnelClient}. */
export interface SimTunnelClientInit {
  readonly network: SimNetwork;
  readonly host: SimHost;
  /** The core's options (ticket, key, tuning). */
  /** The client's options; `hmac` defaults to Node's synchronous `nodeHmacSha256`. */
  readonly client: Omit<TunnelClientInit, 'hmac'> & { readonly hmac?: TunnelClientInit['hmac'] };
  /** Candidate lookups (the first at start, then every `refreshMs`). */
  readonly candidates: SimCandidateSource;
  /** Re-ask for candidates this often, ms. Default 60 000. */
  readonly refreshMs?: number;
  /** Where path reports go (the coordinator). Default: dropped. */
  readonly report?: (reports: readonly PathReport[]) => void;
  /**
   * Fault injection: datagrams arriving at the client for which this returns false are
   * dropped before the core sees them (e.g. one kind of packet, to test the path that
   * recovers without it). Default: every datagram is delivered.
   */
  readonly receiveFilter?: (bytes: Uint8Array, from: Endpoint) => boolean;
}

/** A TunnelClient running on the simulator. */
export class SimTunnelClient {
  /** The core (for assertions). */
  readonly core: TunnelClient;
  /** Every event but messages, with its virtual time (for assertions). */
  readonly events: (TunnelClientEvent & { atMs: number })[] = [];
  /** Candidate lookups that failed (coordinator unreachable). */
  lookupFailures = 0;
  private socket: SimUdpSocket;
  private readonly timer: SimTimer;
  private readonly refreshTimer: SimTimer;
  private messageHandler: ((bytes: Uint8Array, atMs: number) => void) | undefined;
  private cached: readonly TunnelCandidate[] | undefined;

  constructor(private readonly init: SimTunnelClientInit) {
    this.core = new TunnelClient({ ...init.client, hmac: init.client.hmac ?? nodeHmacSha256 });
    this.socket = this.bindSocket();
    this.timer = init.network.createTimer((now) => {
      this.core.handleTimeout(now);
      this.flush();
    }, { what: 'SDK core timer', host: init.host.address });
    this.refreshTimer = init.network.createTimer(() => this.lookup(), { what: 'SDK candidate refresh', host: init.host.address });
    this.lookup();
  }

  /** The local endpoint now. */
  get localPort(): number {
    return this.socket.localAddress().port;
  }

  /** Sets the handler of datagrams from the origin. */
  onMessage(handler: (bytes: Uint8Array, atMs: number) => void): void {
    this.messageHandler = handler;
  }

  /** Sends one datagram to the origin through the tunnel. */
  send(bytes: Uint8Array): boolean {
    const ok = this.core.send(this.init.network.now(), bytes);
    this.flush();
    return ok;
  }

  /** NAT rebinding: the client's socket moves to a new port; the relays' path challenges carry the session over. */
  rebind(): void {
    this.socket.close();
    this.socket = this.bindSocket();
    this.core.rebound(this.init.network.now());
    this.flush();
  }

  /** Ends the sessions and unbinds. */
  close(): void {
    this.core.close(this.init.network.now());
    this.flush();
    this.timer.clear();
    this.refreshTimer.clear();
    this.socket.close();
  }

  private bindSocket(): SimUdpSocket {
    const socket = this.init.host.bind(0);
    const filter = this.init.receiveFilter;
    socket.onReceive((bytes, from) => {
      if (filter !== undefined && !filter(bytes, from)) return;
      this.core.handleDatagram(this.init.network.now(), from, bytes);
      this.flush();
    });
    return socket;
  }

  private lookup(): void {
    this.init.candidates((result) => {
      if (result instanceof Error) {
        // Coordinator unreachable: keep the last list (the session does not need the coordinator).
        this.lookupFailures++;
        if (this.cached !== undefined) this.core.setCandidates(this.init.network.now(), this.cached);
      } else {
        this.cached = result;
        this.core.setCandidates(this.init.network.now(), result);
      }
      this.refreshTimer.set(this.init.network.now() + (this.init.refreshMs ?? 60_000));
      this.flush();
    });
  }

  private flush(): void {
    const now = this.init.network.now();
    for (let e = this.core.pollEvent(); e !== undefined; e = this.core.pollEvent()) {
      if (e.type === 'message') this.messageHandler?.(e.bytes, now);
      else {
        this.events.push({ ...e, atMs: now });
        if (e.type === 'report') this.init.report?.(e.reports);
      }
    }
    for (let tx = this.core.pollTransmit(); tx !== undefined; tx = this.core.pollTransmit()) {
      if (!this.socket.closed) this.socket.send(tx.bytes, tx.to);
    }
    const at = this.core.pollTimeout();
    if (at === undefined) this.timer.clear();
    else if (this.timer.deadlineMs !== at) this.timer.set(Math.max(at, now));
  }
}
