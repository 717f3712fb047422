/**
 * A whole Slipstream deployment on the simulator's virtual network, for the SDK's
 * scenario tests and for `slipstream demo`: the real coordinator core (registry,
 * measurements, ranking), real relay cores (tunnel mode, FEC, path challenges) and the
 * real SDK core, with a UDP echo game server, all on links of known delay, jitter and
 * loss. Nothing is mocked: relays register and heartbeat over the coordinator's
 * control messages, measure their path to the origin with their own probes and report
 * it; the client asks for a route, probes, picks, opens sessions with a signed ticket.
 *
 * Topology (one-way delays per relay from its spec):
 * ```
 *   client 10.0.0.2 ──clientDelayMs──▶ relay i 10.1.0.i:4433 ──originDelayMs──▶ origin 10.8.0.1:27015
 *                                       └── coordinator 10.9.0.1:7400 (1 ms from everyone)
 * ```
 * App traffic: datagrams of `payloadBytes` whose first 4 bytes are a sequence number;
 * the origin echoes them. Deterministic for a seed.
 */
import { encodeControl } from '../../../proto/src/control.js';
import { Rng } from '../../../proto/src/rng.js';
import { CoordinatorCore } from '../../../coordinator/src/core/coordinator-core.js';
import { clientPrefix } from '../../../coordinator/src/core/geo.js';
import { CoordinatorSimDriver } from '../drivers/coordinator-driver.js';
import type { LimitsSpec, RelayCoreConfig, TunnelFecSpec } from '../../../relay/src/core/config-types.js';
import { SimRelay } from '../drivers/relay-driver.js';
import type { SimFleetAgent } from '../drivers/fleet-driver.js';
import type { LinkModelSpec } from '../core/link.js';
import { SimNetwork, type SimHost, type SimPartition } from '../core/network.js';
import type { TunnelCandidate, TunnelClientInit } from '../../../sdk/src/core/tunnel-client.js';
import { SimTunnelClient } from '../drivers/sdk-driver.js';
import { PathLog } from './path-log.js';
import { candidatesFromRanking, fleetKeys, issueSimGrant, SIM_LEASE_MS, SIM_TUNNEL_PORT, simFleetSpec, simRelayConfig, startSimFleetAgent } from './fleet.js';

/** One simulated relay. */
export interface ScenarioRelay {
  /** Relay id, e.g. `fra-1`. */
  readonly id: string;
  /** Region name for the registry. Default `region-<id>`. */
  readonly region?: string;
  /** One-way delay client↔relay, ms. */
  readonly clientDelayMs: number;
  /** One-way delay relay↔origin, ms. */
  readonly originDelayMs: number;
  /** Extra client↔relay link settings (jitter, loss), both directions. Default none. */
  readonly clientLink?: LinkModelSpec;
  /** This relay's tunnel FEC settings (a fleet whose relays differ). Default {@link SdkScenarioInit.relayFec}. */
  readonly fec?: TunnelFecSpec;
  /** This relay's abuse limits (e.g. a small ticket-verification budget). Default: the relay's defaults. */
  readonly limits?: LimitsSpec;
}

/** Options of {@link SdkScenario}. */
export interface SdkScenarioInit {
  readonly seed: number;
  readonly relays: readonly ScenarioRelay[];
  /** Relays' tunnel FEC settings. Default: duplication (2 copies, 10 ms apart) first, then rs(4,2), then off. */
  readonly relayFec?: TunnelFecSpec;
  /** Overrides of the client core's options (tuning, FEC modes). */
  readonly client?: Partial<TunnelClientInit>;
  /** When the client starts, virtual ms (relays need a moment to register and measure). Default 3000. */
  readonly clientStartMs?: number;
  /** Coordinator answer delay for route lookups, ms. Default 20. */
  readonly routeDelayMs?: number;
  /** App datagram size, bytes (≥ 8). Default 100. */
  readonly payloadBytes?: number;
  /**
   * Id of the relay the ticket names as the session's exit (it holds the one
   * origin-facing socket; the others forward to it). Default none: every relay talks
   * to the origin itself.
   */
  readonly exitRelay?: string;
  /** One-way delay between relays (the mesh), ms. Default 2. */
  readonly meshDelayMs?: number;
  /** Fault injection at the client: datagrams for which this returns false are dropped on arrival (`SimTunnelClientInit.receiveFilter`). */
  readonly clientReceiveFilter?: (bytes: Uint8Array) => boolean;
  /**
   * The direct route to compare with: every app datagram is also sent straight to the
   * origin over a client↔origin link of `delayMs` one way (plus `link`: jitter, loss),
   * and both paths are logged packet by packet in {@link SdkScenario.paths}. Default
   * none: no direct traffic, no path logs.
   */
  readonly direct?: { readonly delayMs: number; readonly link?: LinkModelSpec };
}

/** Both paths' packet logs of an {@link SdkScenario} with a direct route (absolute virtual times, ms). */
export interface ScenarioPathLogs {
  /** Over the direct route: each datagram's arrival at the origin, and each echo's at the client. */
  readonly direct: PathLog;
  /** Through Slipstream: the first copy the origin got of each datagram, and the first echo the client got. */
  readonly tunnel: PathLog;
}

/** Relay FEC used by scenarios and the demo unless told otherwise. */
export const SCENARIO_RELAY_FEC: TunnelFecSpec = { modes: ['dup', 'rs', 'off'], k: 4, r: 2, holdMs: 8, copies: 2, spacingMs: 10 };

const CLIENT_ADDRESS = '10.0.0.2';
const ORIGIN_ADDRESS = '10.8.0.1';
const ORIGIN_PORT = 27015;
const ORIGIN_PROBE_PORT = 27016;
const COORDINATOR_ADDRESS = '10.9.0.1';
const COORDINATOR_PORT = 7400;
const ORIGIN_NAME = 'game';

/** App traffic bookkeeping: what was sent when, what arrived where. */
export class TrafficLog {
  /** Send time of each app sequence number, ms. */
  readonly sentAtMs: number[] = [];
  /** Sequence numbers the origin received (first copy). */
  readonly originSeen = new Set<number>();
  /** Echo arrival times at the client, in arrival order (first copy of each). */
  readonly arrivalsMs: number[] = [];
  /** Sequence numbers echoed back to the client (first copy). */
  readonly clientSeen = new Set<number>();
  /** Copies the client got more than once (duplication through the backup). */
  duplicatesAtClient = 0;
  /** Datagrams the origin received, copies included. */
  originDatagrams = 0;
  /** Datagrams the origin received by source `address:port`: what the game server sees of the player. */
  readonly originSources = new Map<string, number>();
}

/** See the module comment. */
export class SdkScenario {
  readonly network: SimNetwork;
  readonly coordinator: CoordinatorCore;
  /** The coordinator's driver (its API socket; `revoke` as a game backend would). */
  readonly coordinatorDriver: CoordinatorSimDriver;
  readonly relays = new Map<string, { spec: ScenarioRelay; host: SimHost; relay: SimRelay; agent: SimFleetAgent; alive: boolean; config: RelayCoreConfig; restarts: number }>();
  readonly traffic = new TrafficLog();
  readonly client: SimTunnelClient;
  /** Whether route lookups fail (a coordinator outage). */
  coordinatorDown = false;
  private outage: SimPartition | undefined;
  private readonly payloadBytes: number;
  private trafficTimer: ReturnType<SimNetwork['createTimer']> | undefined;
  private nextSeq = 0;
  readonly sessionId: string;
  /** Both paths' packet logs, when {@link SdkScenarioInit.direct} is set. */
  readonly paths: ScenarioPathLogs | undefined;
  /** Per path, the echo index answering each sequence number (first copy only). */
  private readonly echoIndex: [Map<number, number>, Map<number, number>] = [new Map(), new Map()];
  private directSocket: ReturnType<SimHost['bind']> | undefined;

  constructor(readonly init: SdkScenarioInit) {
    const rng = new Rng(init.seed);
    this.network = new SimNetwork({ seed: init.seed });
    this.payloadBytes = Math.max(8, init.payloadBytes ?? 100);
    const net = this.network;
    const clientHost = net.addHost(CLIENT_ADDRESS);
    const originHost = net.addHost(ORIGIN_ADDRESS);
    const coordinatorHost = net.addHost(COORDINATOR_ADDRESS);
    const near: LinkModelSpec = { delayMs: 1 };
    net.setLinkBoth(CLIENT_ADDRESS, COORDINATOR_ADDRESS, near);
    net.setLinkBoth(ORIGIN_ADDRESS, COORDINATOR_ADDRESS, near);

    // Keys: fixed per seed, as a fleet's config would hold them.
    const keys = fleetKeys(rng);

    this.coordinator = new CoordinatorCore({ leaseMs: SIM_LEASE_MS, origins: [{ name: ORIGIN_NAME, address: `${ORIGIN_ADDRESS}:${ORIGIN_PORT}` }] });
    this.coordinatorDriver = new CoordinatorSimDriver(this.coordinator, coordinatorHost.bind(COORDINATOR_PORT), net, (callback) => {
      const timer = net.createTimer(callback);
      return { set: (at: number) => timer.set(Math.max(at, net.now())) };
    });

    // The game server: echoes app datagrams; a second port answers the relays' probes.
    const origin = originHost.bind(ORIGIN_PORT);
    this.paths = init.direct === undefined ? undefined : { direct: new PathLog(), tunnel: new PathLog() };
    if (init.direct !== undefined) net.setLinkBoth(CLIENT_ADDRESS, ORIGIN_ADDRESS, { ...init.direct.link, delayMs: init.direct.delayMs });
    origin.onReceive((bytes, from) => {
      if (this.paths !== undefined && bytes.length >= 4) {
        const direct = from.address === CLIENT_ADDRESS;
        this.logOrigin(direct ? this.paths.direct : this.paths.tunnel, direct ? 0 : 1, new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0));
        if (direct) {
          origin.send(bytes, from);
          return;
        }
      }
      this.traffic.originDatagrams++;
      const source = `${from.address}:${from.port}`;
      this.traffic.originSources.set(source, (this.traffic.originSources.get(source) ?? 0) + 1);
      if (bytes.length >= 4) this.traffic.originSeen.add(new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0));
      origin.send(bytes, from);
    });
    const originProbe = originHost.bind(ORIGIN_PROBE_PORT);
    originProbe.onReceive((bytes, from) => originProbe.send(bytes, from));

    init.relays.forEach((spec, i) => {
      const address = `10.1.0.${i + 1}`;
      const host = net.addHost(address);
      net.setLinkBoth(CLIENT_ADDRESS, address, { delayMs: spec.clientDelayMs, ...spec.clientLink });
      net.setLinkBoth(address, ORIGIN_ADDRESS, { delayMs: spec.originDelayMs });
      net.setLinkBoth(address, COORDINATOR_ADDRESS, near);
      for (let j = 0; j < i; j++) net.setLinkBoth(address, `10.1.0.${j + 1}`, { delayMs: init.meshDelayMs ?? 2 });
      const base = simRelayConfig(address, keys, new Map([[ORIGIN_NAME, { address: ORIGIN_ADDRESS, port: ORIGIN_PORT }]]), spec.fec ?? init.relayFec ?? SCENARIO_RELAY_FEC, spec.limits);
      const config: RelayCoreConfig = { ...base, tunnel: { ...base.tunnel!, relayId: spec.id } };
      const relay = new SimRelay({ network: net, host, config, seed: init.seed * 31 + i });
      // The agent outlives restartRelay (as the scenario's restarts keep the registration), so it reads the relay of the moment.
      const agent = startSimFleetAgent(net, host, simFleetSpec(spec.id, spec.region ?? `region-${spec.id}`, address), { address: COORDINATOR_ADDRESS, port: COORDINATOR_PORT }, config, () => { const r = this.relays.get(spec.id); return r?.alive === true ? r.relay : undefined; });
      this.relays.set(spec.id, { spec, host, relay, agent, alive: true, config, restarts: 0 });
    });

    // The game backend's part: a ticket and its session key (naming the exit, if any).
    const exitIndex = init.exitRelay === undefined ? -1 : init.relays.findIndex((r) => r.id === init.exitRelay);
    if (init.exitRelay !== undefined && exitIndex < 0) throw new RangeError(`SdkScenario: exitRelay '${init.exitRelay}' is not one of the relays`);
    const exit = exitIndex < 0 ? undefined : { relayId: init.exitRelay!, address: `10.1.0.${exitIndex + 1}:${SIM_TUNNEL_PORT}` };
    const { sessionId, ticket, sessionKey } = issueSimGrant(rng, keys, ORIGIN_NAME, undefined, exit);
    this.sessionId = sessionId;

    net.runUntil(init.clientStartMs ?? 3000);
    const routeDelayMs = init.routeDelayMs ?? 20;
    const coordinatorSocket = clientHost.bind(0);
    this.client = new SimTunnelClient({
      network: net,
      host: clientHost,
      client: { sessionId: this.sessionId, ticket, sessionKey, ...init.client },
      candidates: (done) => {
        net.schedule(net.now() + routeDelayMs, () => done(this.route()));
      },
      ...(init.clientReceiveFilter !== undefined ? { receiveFilter: init.clientReceiveFilter } : {}),
      report: (reports) => {
        for (const r of reports) {
          coordinatorSocket.send(encodeControl({ type: 'pathReport', reporterId: 'sdk-client', targetId: r.relayId, rttMs: r.rttMs, jitterMs: r.jitterMs, lossFraction: r.lossFraction, samples: r.samples }), { address: COORDINATOR_ADDRESS, port: COORDINATOR_PORT });
        }
      },
    });
    this.client.onMessage((bytes, atMs) => {
      if (bytes.length < 4) return;
      const seq = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
      if (this.paths !== undefined) this.logClient(this.paths.tunnel, 1, seq, atMs);
      if (this.traffic.clientSeen.has(seq)) {
        this.traffic.duplicatesAtClient++;
        return;
      }
      this.traffic.clientSeen.add(seq);
      this.traffic.arrivalsMs.push(atMs);
    });
  }

  /** What `GET /v1/route` would answer now, as the SDK's candidates; an Error during an outage. */
  route(): readonly TunnelCandidate[] | Error {
    if (this.coordinatorDown) return new Error('coordinator unreachable (simulated outage)');
    // With an exit, entries are ranked by the path through it, as `connect()` asks for a ticket naming one.
    const ranking = this.coordinator.route(this.network.now(), { origin: ORIGIN_NAME, client: { prefix: clientPrefix(CLIENT_ADDRESS) }, twoHop: false, ...(this.init.exitRelay !== undefined ? { exitRelayId: this.init.exitRelay } : {}) });
    if (ranking === undefined) return new Error(`unknown origin ${ORIGIN_NAME}`);
    return candidatesFromRanking(ranking.candidates);
  }

  /** The origin got `seq` on a path: its first arrival is logged and its echo numbered. */
  private logOrigin(log: PathLog, path: 0 | 1, seq: number): void {
    if (seq >= log.sentAtMs.length || !Number.isNaN(log.originAtMs[seq]!)) return;
    const now = this.network.now();
    log.originAtMs[seq] = now;
    this.echoIndex[path].set(seq, log.echoSentAtMs.length);
    log.echoSentAtMs.push(now);
    log.echoOf.push(seq);
    log.clientAtMs.push(Number.NaN);
    log.bytesDown += this.payloadBytes;
  }

  /** The client got the echo of `seq` on a path: its first arrival is logged. */
  private logClient(log: PathLog, path: 0 | 1, seq: number, atMs: number): void {
    const d = this.echoIndex[path].get(seq);
    if (d === undefined || !Number.isNaN(log.clientAtMs[d]!)) return;
    log.clientAtMs[d] = atMs;
  }

  /** Logs a datagram the client sends on a path. */
  private logSend(log: PathLog, now: number): void {
    log.sentAtMs.push(now);
    log.sizeBytes.push(this.payloadBytes);
    log.originAtMs.push(Number.NaN);
    log.originVia.push(0);
    log.bytesUp += this.payloadBytes;
  }

  /** Starts app traffic at `pps` datagrams per second (replacing any earlier rate); with a direct route, every datagram goes both ways. */
  startTraffic(pps: number): void {
    this.trafficTimer?.clear();
    const periodMs = 1000 / pps;
    const paths = this.paths;
    if (paths !== undefined && this.directSocket === undefined) {
      const socket = (this.directSocket = this.network.hosts.find((h) => h.address === CLIENT_ADDRESS)!.bind(0));
      socket.onReceive((bytes) => {
        if (bytes.length >= 4) this.logClient(paths.direct, 0, new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0), this.network.now());
      });
    }
    const timer = this.network.createTimer((now) => {
      const payload = new Uint8Array(this.payloadBytes);
      const seq = this.nextSeq++;
      new DataView(payload.buffer).setUint32(0, seq);
      this.traffic.sentAtMs[seq] = now;
      if (paths !== undefined) {
        this.logSend(paths.tunnel, now);
        this.logSend(paths.direct, now);
        this.directSocket!.send(payload, { address: ORIGIN_ADDRESS, port: ORIGIN_PORT });
      }
      this.client.send(payload);
      timer.set(now + periodMs);
    });
    timer.set(this.network.now());
    this.trafficTimer = timer;
  }

  /** Stops app traffic. */
  stopTraffic(): void {
    this.trafficTimer?.clear();
  }

  /** Kills a relay as a crashed process would: its sockets vanish, nothing is said, heartbeats stop. */
  killRelay(id: string): void {
    const r = this.relays.get(id);
    if (r === undefined || !r.alive) return;
    r.alive = false;
    r.agent.stop();
    r.relay.close();
  }

  /** Drains a relay (SIGTERM): it refuses new sessions with SLIP_ERR_RELAY_DRAINING and keeps live ones. */
  drainRelay(id: string): void {
    this.relays.get(id)?.relay.drain();
  }

  /**
   * Restarts a relay process on the same address: a fresh core that holds no session
   * (its registration with the coordinator carries on). `clientDelayMs` changes the
   * client link's one-way delay at the same time.
   */
  restartRelay(id: string, clientDelayMs?: number): void {
    const r = this.relays.get(id);
    if (r === undefined) return;
    r.relay.close();
    r.restarts++;
    const index = [...this.relays.keys()].indexOf(id);
    r.relay = new SimRelay({ network: this.network, host: r.host, config: r.config, seed: this.init.seed * 31 + index + 1000 * r.restarts });
    r.alive = true;
    if (clientDelayMs !== undefined) this.network.setLinkBoth(CLIENT_ADDRESS, r.host.address, { delayMs: clientDelayMs, ...r.spec.clientLink });
  }

  /** Cuts the coordinator off from everyone (and makes route lookups fail), or heals it. */
  setCoordinatorDown(down: boolean): void {
    this.coordinatorDown = down;
    if (down && this.outage === undefined) {
      this.outage = this.network.partition([COORDINATOR_ADDRESS], this.network.hosts.filter((h) => h.address !== COORDINATOR_ADDRESS).map((h) => h.address));
    } else if (!down && this.outage !== undefined) {
      this.network.heal(this.outage);
      this.outage = undefined;
    }
  }

  /** Runs virtual time forward to `atMs`. */
  runUntil(atMs: number): void {
    this.network.runUntil(atMs);
  }

  /** Virtual time now, ms. */
  get nowMs(): number {
    return this.network.now();
  }

  /**
   * Longest wait between consecutive echoes arriving at the client, over arrivals in
   * `[fromMs, toMs]`, ms: the blip a player feels. Traffic that stopped counts until
   * `toMs` (or now, if earlier): a window whose echoes end early is one long gap.
   */
  longestGapMs(fromMs: number, toMs: number): number {
    let gap = 0;
    let previous: number | undefined;
    for (const t of this.traffic.arrivalsMs) {
      if (t < fromMs) {
        previous = t;
        continue;
      }
      if (t > toMs) return gap;
      if (previous !== undefined) gap = Math.max(gap, t - previous);
      previous = t;
    }
    return previous === undefined ? gap : Math.max(gap, Math.min(toMs, this.nowMs) - previous);
  }

  /**
   * Delivered loss of app datagrams sent in `[fromMs, toMs]`: upstream (never reached
   * the origin) and downstream (reached the origin, echo never reached the client).
   */
  deliveredLoss(fromMs: number, toMs: number): { sent: number; upstream: number; downstream: number } {
    let sent = 0;
    let upLost = 0;
    let reachedOrigin = 0;
    let downLost = 0;
    this.traffic.sentAtMs.forEach((t, seq) => {
      if (t < fromMs || t > toMs) return;
      sent++;
      if (!this.traffic.originSeen.has(seq)) upLost++;
      else {
        reachedOrigin++;
        if (!this.traffic.clientSeen.has(seq)) downLost++;
      }
    });
    return { sent, upstream: sent === 0 ? 0 : upLost / sent, downstream: reachedOrigin === 0 ? 0 : downLost / reachedOrigin };
  }
}


