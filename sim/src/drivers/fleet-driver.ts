/**
 * The simulator driver of the relay's fleet core ({@link FleetAgentCore}): the same
 * registration, heartbeats, re-join, fleet-list refresh and path probes as production
 * (`relay/src/fleet.ts`), bound to the simulator's virtual UDP sockets and clock. The
 * core's requests travel as msgpack datagrams (sim/src/drivers/relay-api-wire.ts) to the simulated
 * coordinator (`sim/src/drivers/coordinator-driver.ts`), which answers with the real coordinator
 * core; a request unanswered within `requestTimeoutMs` fails as a timed-out HTTP request
 * would. One socket carries the API calls and the probes. With `onRevoked`, the agent
 * also follows the coordinator's revocation feed ({@link RevocationFeedCore}), as a
 * production relay with a coordinator URL does.
 *
 * The simulator has no TCP, so an origin probe (a TCP connect: one round trip to the
 * origin's host, answered by a SYN-ACK or a reset whatever listens) is one small datagram
 * to the origin host's echo port, {@link SimFleetAgentInit.connectEchoPort}.
 */
import { decodeSimApiAnswer, encodeSimApiCall } from './relay-api-wire.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import type { SimTimer } from '../core/event-queue.js';
import type { SimHost, SimNetwork, SimUdpSocket } from '../core/network.js';
import { FleetAgentCore, type FleetAgentContext, type FleetAgentEvent, type FleetAgentSpec, type FleetFailure, type FleetRequest } from '../../../relay/src/core/fleet-agent.js';
import { RevocationFeedCore, type RevocationFeedEvent } from '../../../relay/src/core/revocation-feed.js';

/** First four bytes of an emulated TCP connect ("SLTC"); the probe id follows. */
const CONNECT_MAGIC = 0x534c5443;
/** Bytes of an emulated TCP connect. */
const CONNECT_BYTES = 8;

/** Options of a {@link SimFleetAgent}. */
export interface SimFleetAgentInit {
  readonly network: SimNetwork;
  /** The relay's host (the agent binds an ephemeral port there). */
  readonly host: SimHost;
  /** The coordinator's API socket. */
  readonly coordinator: Endpoint;
  readonly spec: FleetAgentSpec;
  /** What the core reads of the relay (its load and origins). */
  readonly context: FleetAgentContext;
  /** Where an origin host echoes datagrams: an emulated TCP connect goes there. */
  readonly connectEchoPort: number;
  /** A request unanswered this long fails, ms. Default: as the production client, max(1000, 2 × heartbeat interval). */
  readonly requestTimeoutMs?: number;
  /** Called with the other relays' addresses on every fleet list (optional). */
  readonly setPeers?: (addresses: readonly string[]) => void;
  /**
   * Follow the coordinator's revocation feed (as a production relay with a coordinator
   * URL does, with {@link RevocationFeedCore}); revoked sessions go here. Default: not followed.
   */
  readonly onRevoked?: (revocations: Extract<RevocationFeedEvent, { type: 'revoked' }>['revocations']) => void;
  /** Wall clock at virtual time 0, Unix ms (revocations expire in wall time). Default 1.7e12. */
  readonly wallEpochMs?: number;
}

/** One event the core emitted, with when (for assertions and invariants). */
export type SimFleetEvent = FleetAgentEvent & { readonly atMs: number };

/** See the module comment. */
export class SimFleetAgent {
  /** The core (for assertions). */
  readonly core: FleetAgentCore;
  /** The revocation feed's core, when followed (for assertions). */
  readonly feed: RevocationFeedCore | undefined;
  /** The core's events except probes and peers, in order. */
  readonly events: SimFleetEvent[] = [];
  private readonly socket: SimUdpSocket;
  private readonly timer: SimTimer;
  private timerDeadline = Number.POSITIVE_INFINITY;
  private readonly network: SimNetwork;
  private readonly requestTimeoutMs: number;
  /** Requests in flight → when they time out, ms. */
  private readonly pending = new Map<number, number>();
  /** Revocation-feed polls in flight → when they time out, ms (on the wire their ids are negated). */
  private readonly feedPending = new Map<number, number>();
  /** Emulated TCP connects in flight → when they time out, ms. */
  private readonly connects = new Map<number, number>();
  private stopped = false;

  constructor(private readonly init: SimFleetAgentInit) {
    this.network = init.network;
    this.requestTimeoutMs = init.requestTimeoutMs ?? Math.max(1000, init.spec.heartbeatIntervalMs * 2);
    this.core = new FleetAgentCore(init.spec, init.context);
    this.socket = init.host.bind(0);
    this.socket.onReceive((bytes, from) => this.onDatagram(bytes, from));
    this.timer = init.network.createTimer((now) => this.onTimer(now), { what: 'relay fleet agent timer', host: init.host.address });
    this.core.start(init.network.now());
    this.feed = init.onRevoked === undefined ? undefined : new RevocationFeedCore();
    this.feed?.start();
    this.flush();
  }

  /** SIGTERM: the next heartbeat (sent now) says the relay is draining. */
  setDraining(): void {
    this.core.setDraining(this.network.now());
    this.flush();
  }

  /** Stops the agent (a crashed relay's agent dies with it) and closes its socket. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.core.stop();
    this.feed?.stop();
    this.timer.clear();
    this.socket.close();
  }

  /** Whether {@link stop} was called. */
  get isStopped(): boolean {
    return this.stopped;
  }

  private onDatagram(bytes: Uint8Array, from: Endpoint): void {
    if (this.stopped) return;
    const now = this.network.now();
    if (from.address === this.init.coordinator.address && from.port === this.init.coordinator.port) {
      const answer = decodeSimApiAnswer(bytes);
      if (answer === undefined) return;
      const response = answer.ok ? { ok: true as const, body: answer.body } : { ok: false as const, failure: { status: answer.status, code: answer.code, message: answer.message } };
      if (answer.id < 0) {
        if (this.feedPending.delete(-answer.id)) this.feed?.handleResponse(now, this.wallMs(now), -answer.id, response);
      } else if (this.pending.delete(answer.id)) this.core.handleResponse(now, answer.id, response);
    } else if (from.port === this.init.connectEchoPort && bytes.length === CONNECT_BYTES) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, CONNECT_BYTES);
      const probeId = view.getUint32(4);
      if (view.getUint32(0) !== CONNECT_MAGIC || !this.connects.delete(probeId)) return;
      this.core.handleConnectResult(now, probeId, true);
    } else this.core.handleDatagram(now, from, bytes);
    this.flush();
  }

  private onTimer(now: number): void {
    this.timerDeadline = Number.POSITIVE_INFINITY;
    if (this.stopped) return;
    for (const [id, deadline] of this.pending) {
      if (deadline > now) continue;
      this.pending.delete(id);
      this.core.handleResponse(now, id, { ok: false, failure: this.timedOut() });
    }
    for (const [id, deadline] of this.feedPending) {
      if (deadline > now) continue;
      this.feedPending.delete(id);
      this.feed?.handleResponse(now, this.wallMs(now), id, { ok: false, failure: this.timedOut() });
    }
    this.feed?.handleTimeout(now);
    for (const [probeId, deadline] of this.connects) {
      if (deadline > now) continue;
      this.connects.delete(probeId);
      this.core.handleConnectResult(now, probeId, false);
    }
    this.core.handleTimeout(now);
    this.flush();
  }

  /** Drains the core: events, requests, probes, then the one timer. */
  private flush(): void {
    if (this.stopped) return;
    const core = this.core;
    const now = this.network.now();
    for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) {
      if (e.type === 'connect') this.connect(now, e.probeId, e.address, e.timeoutMs);
      else if (e.type === 'peers') this.init.setPeers?.(e.addresses);
      else this.events.push({ ...e, atMs: now });
    }
    for (let r = core.pollRequest(); r !== undefined; r = core.pollRequest()) this.send(now, r);
    for (let tx = core.pollTransmit(); tx !== undefined; tx = core.pollTransmit()) this.socket.send(tx.bytes, tx);
    const feed = this.feed;
    if (feed !== undefined) {
      for (let e = feed.pollEvent(); e !== undefined; e = feed.pollEvent()) if (e.type === 'revoked') this.init.onRevoked!(e.revocations);
      for (let r = feed.pollRequest(); r !== undefined; r = feed.pollRequest()) {
        // A long poll: the wait comes on top of the request timeout, as in the production client.
        this.feedPending.set(r.id, now + this.requestTimeoutMs + r.waitMs);
        this.socket.send(encodeSimApiCall({ id: -r.id, kind: 'revocations', body: { sinceMs: r.sinceMs, waitMs: r.waitMs } }), this.init.coordinator);
      }
    }
    let deadline = core.pollTimeout() ?? Number.POSITIVE_INFINITY;
    const feedAt = feed?.pollTimeout();
    if (feedAt !== undefined && feedAt < deadline) deadline = feedAt;
    for (const at of this.pending.values()) if (at < deadline) deadline = at;
    for (const at of this.feedPending.values()) if (at < deadline) deadline = at;
    for (const at of this.connects.values()) if (at < deadline) deadline = at;
    if (deadline !== this.timerDeadline) {
      this.timerDeadline = deadline;
      if (deadline === Number.POSITIVE_INFINITY) this.timer.clear();
      else this.timer.set(deadline);
    }
  }

  private wallMs(now: number): number {
    return (this.init.wallEpochMs ?? 1.7e12) + now;
  }

  private timedOut(): FleetFailure {
    return { status: undefined, code: undefined, message: `no answer within ${this.requestTimeoutMs} ms` };
  }

  private send(now: number, r: FleetRequest): void {
    this.pending.set(r.id, now + this.requestTimeoutMs);
    const body = r.kind === 'register' ? { ...r.info } : r.kind === 'heartbeat' ? { relayId: r.relayId, load: r.load } : r.kind === 'reports' ? { relayId: r.relayId, reports: r.reports } : {};
    this.socket.send(encodeSimApiCall({ id: r.id, kind: r.kind, body }), this.init.coordinator);
  }

  private connect(now: number, probeId: number, address: string, timeoutMs: number): void {
    this.connects.set(probeId, now + timeoutMs);
    const bytes = new Uint8Array(CONNECT_BYTES);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, CONNECT_MAGIC);
    view.setUint32(4, probeId);
    this.socket.send(bytes, { address, port: this.init.connectEchoPort });
  }
}
