/**
 * The relay's fleet membership, as a thin driver of the sans-IO {@link FleetAgentCore}:
 * it carries the core's requests (register, heartbeat with load, fleet list, path
 * reports) to the coordinator over HTTP with {@link CoordinatorClient} and feeds the
 * answers back, runs the core's probes on its own UDP socket (relay probes) and TCP
 * connects (origin probes), measures the load a heartbeat carries, logs the core's
 * events, and arms one timer at the core's `pollTimeout`. Every decision (backoff,
 * re-join after `unknown_relay`, the heartbeat period, the mesh, when to report) is the
 * core's, so the simulator runs the same membership logic (`sim/src/drivers/fleet-driver.ts`).
 *
 * With its own key (`tunnel.coordinatorIdentityKeyFile`) every request is signed with it
 * (the client does it, kit/coordinator-client.ts); when the coordinator answers a
 * registration with `unknown_identity` (or `identity_key_mismatch`: the key was replaced)
 * and a join token is configured, the agent enrolls the key once
 * (`POST /v1/relays/enroll`) and registers again.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { CoordinatorApiError, CoordinatorClient, rawPublicKeyBase64 } from '../../kit/coordinator-client.js';
import type { Endpoint } from '../../proto/src/transport.js';
import type { RelayStatus } from '../../proto/src/api/contract.js';
import { FleetAgentCore, type FleetAgentEvent, type FleetFailure, type FleetRequest, type FleetResponse } from './core/fleet-agent.js';
import type { PathProber } from './core/path-prober.js';
import type { CoordinatorIdentitySpec, FleetSpec } from './config.js';

/** How an agent's first registration went (see {@link FleetAgent.firstRegistration}). */
export type RegistrationOutcome = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** What the agent reads from the relay it serves. */
export interface FleetRelayView {
  /** Sessions open now. */
  sessions(): number;
  /** Datagrams received so far, both directions, every rule and the tunnel. */
  packetsTotal(): number;
  /** Where the tunnel port is bound (undefined without one). */
  tunnelBound(): Endpoint | undefined;
  /** The WebRTC signaling URL to advertise (undefined without `tunnel.webrtc`, or when it cannot be known). Optional. */
  webrtcUrl?(): string | undefined;
  /** Origins the relay serves: name → address (`tunnel.origins`). */
  origins(): ReadonlyMap<string, { address: string; port: number }>;
  /**
   * The other fleet relays' addresses, on every fleet list (optional): entries that
   * forward sessions to this relay as their exit are exempt from per-source caps.
   */
  setPeers?(addresses: readonly string[]): void;
  /** The players and L4 rules for a heartbeat's `status` (`RelayCore.fleetStatus`; called once per heartbeat). Optional. */
  status?(): RelayStatus;
}

/** Options of a {@link FleetAgent}. */
export interface FleetAgentInit {
  readonly spec: FleetSpec;
  readonly coordinatorUrl: string;
  /** The fleet secret, for a relay without {@link identity}. */
  readonly fleetSecret?: string;
  /** The relay's own key (and join token): requests are signed with it instead of carrying the fleet secret. */
  readonly identity?: CoordinatorIdentitySpec;
  /** Where the prober's UDP socket binds (the relay's `upstreamBindAddress`). */
  readonly bindAddress: string;
  readonly relay: FleetRelayView;
  readonly logger: Logger;
}

/** The {@link CoordinatorClient} option that signs with the relay's own key, or nothing without one. */
export function identityOption(spec: CoordinatorIdentitySpec | undefined): { identity?: { relayId: string; privateKey: KeyObject } } {
  return spec === undefined ? {} : { identity: { relayId: spec.relayId, privateKey: createPrivateKey(spec.privateKeyPem) } };
}

/** The public addresses a relay registers: from `fleet` or, failing that, the bound tunnel. Throws when they cannot be known. */
export function fleetAddresses(spec: FleetSpec, tunnelBound: Endpoint | undefined): { tunnelAddress: string; probeAddress: string } {
  let tunnelAddress = spec.tunnelAddress;
  if (tunnelAddress === undefined) {
    if (tunnelBound === undefined) throw new Error('fleet.tunnelAddress: missing; this relay has no tunnel section, so give the public address clients should use');
    if (tunnelBound.address === '0.0.0.0' || tunnelBound.address === '::') throw new Error(`fleet.tunnelAddress: missing; the tunnel listens on ${tunnelBound.address}, so give the public IP:port clients reach it at`);
    tunnelAddress = tunnelBound.address.includes(':') ? `[${tunnelBound.address}]:${tunnelBound.port}` : `${tunnelBound.address}:${tunnelBound.port}`;
  }
  return { tunnelAddress, probeAddress: spec.probeAddress ?? tunnelAddress };
}

/** See the module comment. */
export class FleetAgent {
  private readonly client: CoordinatorClient;
  private core: FleetAgentCore | undefined;
  private socket: dgram.Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerDeadline = Number.POSITIVE_INFINITY;
  private readonly onTimerBound = (): void => this.onTimer();
  private draining = false;
  private closed = false;
  private lastLoad = { atMs: performance.now(), packets: 0, cpu: process.cpuUsage() };
  private readonly tcpProbes = new Set<net.Socket>();
  /** Aborts the coordinator requests in flight at close: a late one must not undo a newer agent's registration. */
  private readonly requests = new AbortController();
  /** Waiting for the first registration's outcome (see {@link firstRegistration}). */
  private registrationWaiters: ((outcome: RegistrationOutcome) => void)[] = [];
  /** Waiting for the answer to a request, by its id (the draining heartbeat). */
  private readonly answerWaiters = new Map<number, () => void>();

  /** Whether this agent has spent its join token (enrolled, or was refused): it is never sent twice. */
  private tokenSpent = false;

  constructor(private readonly init: FleetAgentInit) {
    this.client = new CoordinatorClient({ baseUrl: init.coordinatorUrl, fleetSecret: init.fleetSecret, ...identityOption(init.identity), timeoutMs: Math.max(1000, init.spec.heartbeatIntervalMs * 2) });
  }

  /** The public addresses this relay registers (throws when they cannot be known). */
  addresses(): { tunnelAddress: string; probeAddress: string } {
    return fleetAddresses(this.init.spec, this.init.relay.tunnelBound());
  }

  /** The prober (exposed for tests and logs; undefined before {@link start}). */
  get prober(): PathProber | undefined {
    return this.core?.prober;
  }

  /** Heartbeats the coordinator accepted (for tests). */
  get heartbeats(): number {
    return this.core?.heartbeats ?? 0;
  }

  /** Report calls the coordinator accepted (for tests). */
  get reportsSent(): number {
    return this.core?.reportsSent ?? 0;
  }

  /**
   * Whether the coordinator accepted this agent's latest registration or heartbeat: false
   * before the first, and while they are refused (a retired fleet secret) or unanswered.
   */
  get accepted(): boolean {
    return (this.core?.accepted ?? false) && !this.closed;
  }

  /** Binds the probe socket and starts registering; resolves once the socket is bound (registration continues in the background). */
  async start(): Promise<void> {
    const { tunnelAddress, probeAddress } = this.addresses();
    const type = net.isIPv6(this.init.bindAddress) ? 'udp6' : 'udp4';
    const socket = dgram.createSocket(type);
    socket.on('message', (message, rinfo) => {
      this.core?.handleDatagram(performance.now(), rinfo, message);
      this.flush();
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, this.init.bindAddress, () => {
        socket.off('error', reject);
        socket.on('error', () => undefined);
        resolve();
      });
    });
    this.socket = socket;
    const relay = this.init.relay;
    const webrtcUrl = relay.webrtcUrl?.();
    this.core = new FleetAgentCore({ ...this.init.spec, tunnelAddress, probeAddress, ...(webrtcUrl !== undefined ? { webrtcUrl } : {}) }, { load: (nowMs) => this.load(nowMs), origins: () => relay.origins(), ...(relay.status !== undefined ? { status: () => relay.status!() } : {}) });
    if (this.draining) this.core.setDraining(performance.now());
    this.core.start(performance.now());
    this.flush();
  }

  /** SIGTERM: tell the coordinator at once that no new clients should come (resolves when it answered or failed). */
  setDraining(): Promise<void> {
    this.draining = true;
    const id = this.core?.setDraining(performance.now());
    if (id === undefined || this.closed) return Promise.resolve();
    const answered = new Promise<void>((resolve) => this.answerWaiters.set(id, resolve));
    this.flush();
    return answered;
  }

  /**
   * The first registration's outcome: accepted; refused by the coordinator (an HTTP 4xx
   * answer, with its reason); or, when neither came within `timeoutMs` (the coordinator
   * unreachable), not ok. The agent keeps retrying in the background either way.
   */
  firstRegistration(timeoutMs: number): Promise<RegistrationOutcome> {
    if (this.closed || this.core === undefined) return Promise.resolve(this.closed ? { ok: false, reason: 'the agent was closed' } : { ok: false, reason: 'the agent was not started' });
    if (this.core.isRegistered) return Promise.resolve({ ok: true });
    const outcome = new Promise<RegistrationOutcome>((resolve) => this.registrationWaiters.push(resolve));
    this.core.awaitAcceptance(performance.now(), timeoutMs);
    this.flush();
    return outcome;
  }

  /** Stops everything; idempotent. The coordinator marks the relay unhealthy when its lease runs out. */
  close(): void {
    if (this.closed) return;
    this.core?.stop();
    this.flush();
    this.closed = true;
    this.requests.abort();
    this.settleRegistration({ ok: false, reason: 'the agent was closed' });
    for (const resolve of this.answerWaiters.values()) resolve();
    this.answerWaiters.clear();
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.tcpProbes) s.destroy();
    this.socket?.close();
  }

  // ---------------------------------------------------------------- driving the core

  /** Drains the core: events, then requests, then probes, then its timer. */
  private flush(): void {
    const core = this.core;
    if (this.closed || core === undefined) return;
    for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) {
      try {
        this.deliver(core, e);
      } catch (error) {
        // A throwing handler (logger, setPeers) must not stop the agent: this runs inside
        // request callbacks, where a throw would end the process as an unhandled rejection.
        this.init.logger.error({ event: 'fleet_error', what: 'event handler', err: error instanceof Error ? error.message : String(error) }, `fleet event ${e.type} handler failed`);
      }
    }
    for (let r = core.pollRequest(); r !== undefined; r = core.pollRequest()) void this.execute(r);
    for (let tx = core.pollTransmit(); tx !== undefined; tx = core.pollTransmit()) this.socket?.send(tx.bytes, tx.port, tx.address);
    const deadline = core.pollTimeout();
    if (deadline !== this.timerDeadline) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.timerDeadline = deadline ?? Number.POSITIVE_INFINITY;
      if (deadline !== undefined) {
        this.timer = setTimeout(this.onTimerBound, Math.max(0, deadline - performance.now()));
        this.timer.unref();
      }
    }
  }

  /** Acts on one event of the core: logs, settles the registration wait, hands peers and TCP probes to the relay. */
  private deliver(core: FleetAgentCore, e: FleetAgentEvent): void {
    const logger = this.init.logger;
    const coordinator = this.init.coordinatorUrl;
    switch (e.type) {
      case 'registered':
        logger.info({ event: 'fleet_registered', relayId: core.relayId, coordinator, leaseMs: e.leaseMs, heartbeatIntervalMs: e.heartbeatIntervalMs, mesh: e.mesh }, 'registered with the coordinator');
        break;
      case 'acceptance':
        this.settleRegistration(e.ok ? { ok: true } : { ok: false, reason: e.reason });
        break;
      case 'peers':
        this.init.relay.setPeers?.(e.addresses);
        break;
      case 'failed':
        logger.warn({ event: 'fleet_error', what: e.what, coordinator, err: e.reason }, `coordinator ${e.what} failed; retrying`);
        break;
      case 'recovered':
        logger.info({ event: 'fleet_recovered', what: e.what, coordinator }, `coordinator ${e.what} works again`);
        break;
      case 'connect':
        this.tcpProbe(e.probeId, e.address, e.port, e.timeoutMs);
        break;
      case 'rejoining':
        break;
    }
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerDeadline = Number.POSITIVE_INFINITY;
    this.core?.handleTimeout(performance.now());
    this.flush();
  }

  /** Carries one request over HTTP and feeds its answer (or failure) back. */
  private async execute(request: FleetRequest): Promise<void> {
    const signal = this.requests.signal;
    let response: FleetResponse;
    try {
      let body: unknown;
      if (request.kind === 'register') body = await this.registerOrEnroll(request.info, signal);
      else if (request.kind === 'heartbeat') body = await this.client.heartbeat(request.relayId, request.load, signal);
      else if (request.kind === 'fleet') body = await this.client.fleet();
      else body = await this.client.reportRelayPaths(request.relayId, request.reports);
      response = { ok: true, body };
    } catch (error) {
      response = { ok: false, failure: failureOf(error) };
    }
    if (this.closed) return;
    try {
      this.core?.handleResponse(performance.now(), request.id, response);
      this.flush();
    } catch (error) {
      this.init.logger.error({ event: 'fleet_error', what: request.kind, err: error instanceof Error ? error.message : String(error) }, `fleet ${request.kind} answer could not be handled`);
    }
    const waiter = this.answerWaiters.get(request.id);
    if (waiter !== undefined) {
      this.answerWaiters.delete(request.id);
      waiter();
    }
  }

  /**
   * Registers; a coordinator that does not know this relay's key yet (`unknown_identity`)
   * gets the join token once (enrollment), then the registration again.
   */
  private async registerOrEnroll(info: Parameters<CoordinatorClient['register']>[0], signal: AbortSignal): Promise<unknown> {
    try {
      return await this.client.register(info, signal);
    } catch (error) {
      const identity = this.init.identity;
      // unknown_identity: never enrolled here; identity_key_mismatch: enrolled with another key (this relay's key was replaced, a rotation).
      if (!(error instanceof CoordinatorApiError) || (error.code !== 'unknown_identity' && error.code !== 'identity_key_mismatch') || identity === undefined) throw error;
      if (identity.joinToken === undefined || this.tokenSpent) {
        throw new CoordinatorApiError(error.status, error.code, `${error.reason}; this relay has no unspent join token (tunnel.coordinatorJoinToken): mint one with 'slipstream coordinator token --relay-id ${identity.relayId}'`, error.field);
      }
      this.tokenSpent = true;
      const privateKey = createPrivateKey(identity.privateKeyPem);
      const enrolled = await this.client.enroll({ relayId: identity.relayId, publicKey: rawPublicKeyBase64(privateKey), token: identity.joinToken }, signal);
      this.init.logger.info({ event: 'fleet_enrolled', relayId: enrolled.relayId, coordinator: this.init.coordinatorUrl }, 'enrolled this relay\'s own key with the coordinator (join token spent)');
      return await this.client.register(info, signal);
    }
  }

  private settleRegistration(outcome: RegistrationOutcome): void {
    const waiters = this.registrationWaiters;
    this.registrationWaiters = [];
    for (const resolve of waiters) resolve(outcome);
  }

  /** The relay's load since the previous heartbeat (packets/s and CPU over that span). */
  private load(nowMs: number): { sessions: number; packetsPerSecond: number; cpuFraction: number } {
    const packets = this.init.relay.packetsTotal();
    const cpu = process.cpuUsage();
    const elapsedMs = Math.max(1, nowMs - this.lastLoad.atMs);
    const cpuUs = cpu.user - this.lastLoad.cpu.user + (cpu.system - this.lastLoad.cpu.system);
    const load = {
      sessions: this.init.relay.sessions(),
      packetsPerSecond: Math.min(1e9, Math.max(0, ((packets - this.lastLoad.packets) * 1000) / elapsedMs)),
      // One event loop: a fraction of one core.
      cpuFraction: Math.min(1, Math.max(0, cpuUs / 1000 / elapsedMs)),
    };
    this.lastLoad = { atMs: nowMs, packets, cpu };
    return load;
  }

  private tcpProbe(probeId: number, address: string, port: number, timeoutMs: number): void {
    const socket = net.connect({ host: address, port });
    this.tcpProbes.add(socket);
    let done = false;
    const finish = (answered: boolean): void => {
      if (done) return;
      done = true;
      this.tcpProbes.delete(socket);
      socket.destroy();
      this.core?.handleConnectResult(performance.now(), probeId, answered);
      this.flush();
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.on('connect', () => finish(true));
    // A refusal (RST) is the host answering: as good an RTT sample as a connect.
    socket.on('error', (error: NodeJS.ErrnoException) => finish(error.code === 'ECONNREFUSED'));
  }
}

/** A failed request as the core reads it: an API error answer keeps its status and code. */
function failureOf(error: unknown): FleetFailure {
  if (error instanceof CoordinatorApiError) return { status: error.status, code: error.code, message: error.message };
  return { status: undefined, code: undefined, message: error instanceof Error ? error.message : String(error) };
}
