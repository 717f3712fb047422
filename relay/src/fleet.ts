/**
 * The relay's fleet membership, as a thin driver: registers with the coordinator,
 * heartbeats its load (sessions, packets/s, CPU, draining) every
 * `fleet.heartbeatIntervalMs`, re-reads the fleet list to know the mesh, and runs the
 * sans-IO {@link PathProber} on its own UDP socket (relay probes) and TCP connects
 * (origin probes), sending its reports with `reportRelayPaths`.
 *
 * Failures of the coordinator are conditions, not crashes: registration retries with
 * backoff, a heartbeat answered `unknown_relay` (the coordinator restarted, or the lease
 * ran out) registers again, and every failure is logged once per streak.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { CoordinatorApiError, CoordinatorClient } from '../../kit/coordinator-client.js';
import type { Endpoint } from '../../proto/src/transport.js';
import { splitHostPort } from './core/addr.js';
import { PathProber, type ProbeTarget } from './core/path-prober.js';
import type { FleetSpec } from './config.js';

/** First retry delay after a failed registration, ms (doubles up to the max). */
const REGISTER_BACKOFF_MS_MIN = 250;
const REGISTER_BACKOFF_MS_MAX = 5_000;

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
  /** Origins the relay serves: name → address (`tunnel.origins`). */
  origins(): ReadonlyMap<string, { address: string; port: number }>;
  /**
   * The other fleet relays' addresses, on every fleet list (optional): entries that
   * forward sessions to this relay as their exit are exempt from per-source caps.
   */
  setPeers?(addresses: readonly string[]): void;
}

/** Options of a {@link FleetAgent}. */
export interface FleetAgentInit {
  readonly spec: FleetSpec;
  readonly coordinatorUrl: string;
  readonly fleetSecret: string;
  /** Where the prober's UDP socket binds (the relay's `upstreamBindAddress`). */
  readonly bindAddress: string;
  readonly relay: FleetRelayView;
  readonly logger: Logger;
}

/** See the module comment. */
export class FleetAgent {
  /** The prober (exposed for tests and logs). */
  readonly prober: PathProber;
  private readonly client: CoordinatorClient;
  private readonly spec: FleetSpec;
  private socket: dgram.Socket | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private probeDeadline = Number.POSITIVE_INFINITY;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private meshTimer: NodeJS.Timeout | undefined;
  private registered = false;
  private lastExchangeAccepted = false;
  private registering: Promise<void> | undefined;
  private draining = false;
  private closed = false;
  private heartbeatIntervalMs: number;
  private lastLoad = { atMs: performance.now(), packets: 0, cpu: process.cpuUsage() };
  private failing = new Set<string>();
  private readonly tcpProbes = new Set<net.Socket>();
  /** Aborts the coordinator requests in flight at close: a late one must not undo a newer agent's registration. */
  private readonly requests = new AbortController();
  /** Waiting for the first registration's outcome (see {@link firstRegistration}). */
  private registrationWaiters: ((outcome: RegistrationOutcome) => void)[] = [];
  /** Heartbeats and reports the coordinator accepted (for tests). */
  heartbeats = 0;
  reportsSent = 0;

  constructor(private readonly init: FleetAgentInit) {
    this.spec = init.spec;
    this.client = new CoordinatorClient({ baseUrl: init.coordinatorUrl, fleetSecret: init.fleetSecret, timeoutMs: Math.max(1000, init.spec.heartbeatIntervalMs * 2) });
    this.prober = new PathProber({ probeIntervalMs: init.spec.probeIntervalMs, probeTimeoutMs: init.spec.probeTimeoutMs, reportIntervalMs: init.spec.reportIntervalMs });
    this.heartbeatIntervalMs = init.spec.heartbeatIntervalMs;
  }

  /** The public addresses this relay registers (throws when they cannot be known). */
  addresses(): { tunnelAddress: string; probeAddress: string } {
    let tunnelAddress = this.spec.tunnelAddress;
    if (tunnelAddress === undefined) {
      const bound = this.init.relay.tunnelBound();
      if (bound === undefined) throw new Error('fleet.tunnelAddress: missing; this relay has no tunnel section, so give the public address clients should use');
      if (bound.address === '0.0.0.0' || bound.address === '::') throw new Error(`fleet.tunnelAddress: missing; the tunnel listens on ${bound.address}, so give the public IP:port clients reach it at`);
      tunnelAddress = bound.address.includes(':') ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
    }
    return { tunnelAddress, probeAddress: this.spec.probeAddress ?? tunnelAddress };
  }

  /**
   * Whether the coordinator accepted this agent's latest registration or heartbeat: false
   * before the first, and while they are refused (a retired fleet secret) or unanswered.
   */
  get accepted(): boolean {
    return this.lastExchangeAccepted && !this.closed;
  }

  /** Binds the probe socket and starts registering; resolves once the socket is bound (registration continues in the background). */
  async start(): Promise<void> {
    this.addresses();
    const type = net.isIPv6(this.init.bindAddress) ? 'udp6' : 'udp4';
    const socket = dgram.createSocket(type);
    socket.on('message', (message, rinfo) => {
      this.prober.handleDatagram(performance.now(), rinfo, message);
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
    void this.register();
    this.meshTimer = setInterval(() => void this.refreshMesh(), this.spec.meshRefreshMs);
    this.meshTimer.unref();
  }

  /** SIGTERM: tell the coordinator at once that no new clients should come (resolves when it answered or failed). */
  setDraining(): Promise<void> {
    this.draining = true;
    return this.heartbeat();
  }

  /** Stops everything; idempotent. The coordinator marks the relay unhealthy when its lease runs out. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.requests.abort();
    this.settleRegistration({ ok: false, reason: 'the agent was closed' });
    if (this.probeTimer) clearTimeout(this.probeTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.meshTimer) clearInterval(this.meshTimer);
    for (const s of this.tcpProbes) s.destroy();
    this.socket?.close();
  }

  // ---------------------------------------------------------------- coordinator

  private register(): Promise<void> {
    this.registering ??= (async () => {
      let backoffMs = REGISTER_BACKOFF_MS_MIN;
      while (!this.closed) {
        try {
          const { tunnelAddress, probeAddress } = this.addresses();
          const answer = await this.client.register({ relayId: this.spec.relayId, region: this.spec.region, latitude: this.spec.latitude, longitude: this.spec.longitude, tunnelAddress, probeAddress, capacitySessions: this.spec.capacitySessions }, this.requests.signal);
          if (this.closed) return;
          this.registered = true;
          this.lastExchangeAccepted = true;
          this.settleRegistration({ ok: true });
          this.recovered('register');
          this.heartbeatIntervalMs = Math.min(this.spec.heartbeatIntervalMs, answer.heartbeatIntervalMs);
          this.init.logger.info({ event: 'fleet_registered', relayId: this.spec.relayId, coordinator: this.init.coordinatorUrl, leaseMs: answer.leaseMs, heartbeatIntervalMs: this.heartbeatIntervalMs, mesh: answer.relays.length }, 'registered with the coordinator');
          if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
          this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.heartbeatIntervalMs);
          this.heartbeatTimer.unref();
          void this.heartbeat();
          this.setMesh(answer.relays.map((r) => ({ relayId: r.relayId, probeAddress: r.probeAddress })));
          void this.refreshMesh();
          return;
        } catch (error) {
          this.lastExchangeAccepted = false;
          this.failed('register', error);
          // A 4xx is the coordinator's answer to these settings (wrong secret, id not allowed,
          // bad address), not a passing outage: whoever waits for the outcome hears it now.
          if (error instanceof CoordinatorApiError && error.status >= 400 && error.status < 500) this.settleRegistration({ ok: false, reason: error.message });
          await new Promise((resolve) => setTimeout(resolve, backoffMs).unref());
          backoffMs = Math.min(REGISTER_BACKOFF_MS_MAX, backoffMs * 2);
        }
      }
    })().finally(() => {
      this.registering = undefined;
    });
    return this.registering;
  }

  /**
   * The first registration's outcome: accepted; refused by the coordinator (an HTTP 4xx
   * answer, with its reason); or, when neither came within `timeoutMs` (the coordinator
   * unreachable), not ok. The agent keeps retrying in the background either way.
   */
  firstRegistration(timeoutMs: number): Promise<RegistrationOutcome> {
    if (this.registered) return Promise.resolve({ ok: true });
    if (this.closed) return Promise.resolve({ ok: false, reason: 'the agent was closed' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settleRegistration({ ok: false, reason: `no answer from the coordinator within ${timeoutMs} ms` }), timeoutMs);
      timer.unref();
      this.registrationWaiters.push((outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      });
    });
  }

  private settleRegistration(outcome: RegistrationOutcome): void {
    const waiters = this.registrationWaiters;
    this.registrationWaiters = [];
    for (const resolve of waiters) resolve(outcome);
  }

  private load(): { sessions: number; packetsPerSecond: number; cpuFraction: number; draining: boolean } {
    const nowMs = performance.now();
    const packets = this.init.relay.packetsTotal();
    const cpu = process.cpuUsage();
    const elapsedMs = Math.max(1, nowMs - this.lastLoad.atMs);
    const cpuUs = cpu.user - this.lastLoad.cpu.user + (cpu.system - this.lastLoad.cpu.system);
    const load = {
      sessions: this.init.relay.sessions(),
      packetsPerSecond: Math.min(1e9, Math.max(0, ((packets - this.lastLoad.packets) * 1000) / elapsedMs)),
      // One event loop: a fraction of one core.
      cpuFraction: Math.min(1, Math.max(0, cpuUs / 1000 / elapsedMs)),
      draining: this.draining,
    };
    this.lastLoad = { atMs: nowMs, packets, cpu };
    return load;
  }

  private async heartbeat(): Promise<void> {
    if (this.closed || !this.registered) return;
    try {
      await this.client.heartbeat(this.spec.relayId, this.load(), this.requests.signal);
      this.heartbeats++;
      this.lastExchangeAccepted = true;
      this.recovered('heartbeat');
    } catch (error) {
      this.lastExchangeAccepted = false;
      if (error instanceof CoordinatorApiError && error.code === 'unknown_relay') {
        this.registered = false;
        void this.register();
        return;
      }
      this.failed('heartbeat', error);
    }
  }

  private async refreshMesh(): Promise<void> {
    if (this.closed || !this.registered) return;
    try {
      const fleet = await this.client.fleet();
      this.setMesh(fleet.relays.filter((r) => r.health !== 'unhealthy').map((r) => ({ relayId: r.relayId, probeAddress: r.probeAddress })));
      this.recovered('fleet');
    } catch (error) {
      this.failed('fleet', error);
    }
  }

  private setMesh(relays: readonly { relayId: string; probeAddress: string }[]): void {
    if (this.closed) return;
    const targets: ProbeTarget[] = [];
    for (const r of relays) {
      if (r.relayId === this.spec.relayId) continue;
      const hp = splitHostPort(r.probeAddress);
      if (!hp || hp.port === 0) continue;
      targets.push({ kind: 'relay', id: r.relayId, address: hp.host, port: hp.port });
    }
    this.init.relay.setPeers?.(targets.map((t) => t.address));
    if (this.spec.originProbe === 'tcp') for (const [name, o] of this.init.relay.origins()) targets.push({ kind: 'origin', id: name, address: o.address, port: o.port });
    this.prober.setTargets(performance.now(), targets);
    this.flush();
  }

  private async sendReports(reports: Parameters<CoordinatorClient['reportRelayPaths']>[1]): Promise<void> {
    try {
      await this.client.reportRelayPaths(this.spec.relayId, reports);
      this.reportsSent++;
      this.recovered('report');
    } catch (error) {
      this.failed('report', error);
    }
  }

  private failed(what: string, error: unknown): void {
    if (this.closed || this.failing.has(what)) return;
    this.failing.add(what);
    this.init.logger.warn({ event: 'fleet_error', what, coordinator: this.init.coordinatorUrl, err: error instanceof Error ? error.message : String(error) }, `coordinator ${what} failed; retrying`);
  }

  private recovered(what: string): void {
    if (!this.failing.delete(what)) return;
    this.init.logger.info({ event: 'fleet_recovered', what, coordinator: this.init.coordinatorUrl }, `coordinator ${what} works again`);
  }

  // ---------------------------------------------------------------- prober driver

  private onProbeTimer(): void {
    this.probeTimer = undefined;
    this.probeDeadline = Number.POSITIVE_INFINITY;
    this.prober.handleTimeout(performance.now());
    this.flush();
  }

  /** Drains the prober: events (TCP probes, reports), then datagrams, then its timer. */
  private flush(): void {
    if (this.closed) return;
    for (let e = this.prober.pollEvent(); e !== undefined; e = this.prober.pollEvent()) {
      if (e.type === 'report') {
        if (this.registered) void this.sendReports(e.reports);
      } else this.tcpProbe(e.probeId, e.address, e.port, e.timeoutMs);
    }
    for (let tx = this.prober.pollTransmit(); tx !== undefined; tx = this.prober.pollTransmit()) this.socket?.send(tx.bytes, tx.port, tx.address);
    const deadline = this.prober.pollTimeout();
    if (deadline !== undefined && deadline < this.probeDeadline) {
      if (this.probeTimer) clearTimeout(this.probeTimer);
      this.probeDeadline = deadline;
      this.probeTimer = setTimeout(() => this.onProbeTimer(), Math.max(0, deadline - performance.now()));
      this.probeTimer.unref();
    }
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
      this.prober.handleConnectResult(performance.now(), probeId, answered);
      this.flush();
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.on('connect', () => finish(true));
    // A refusal (RST) is the host answering: as good an RTT sample as a connect.
    socket.on('error', (error: NodeJS.ErrnoException) => finish(error.code === 'ECONNREFUSED'));
  }
}
