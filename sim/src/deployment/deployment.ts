/**
 * A whole Slipstream deployment with many players on the simulator's virtual network:
 * the real coordinator core, real relay cores (tunnel mode, FEC, limits), game servers
 * (origins) and one real SDK core per player — plus, for every player, the same game
 * traffic sent straight to the origin over the direct internet path, so the two can be
 * compared packet for packet under the same conditions. `slipstream sim run` (scenario
 * files) and `slipstream sim swarm` (random topologies and faults) build on it;
 * {@link SdkScenario} is its one-player ancestor used by the SDK tests and the demo,
 * and shares its fleet pieces (`fleet.ts`).
 *
 * The caller owns the {@link SimNetwork}: it adds nothing but hosts here, so links,
 * partitions and blackouts are the caller's (set them by the addresses given). Time
 * runs only when the caller runs the network.
 *
 * ## The game
 * Every datagram starts with a 14-byte game header (see {@link GAME_HEADER_BYTES}):
 * the player's index, the path (direct or tunnel), the upstream sequence number and,
 * on the way back, the origin's own downstream sequence number. An origin answers the
 * first copy of every packet with one of the same size, to the address it came from,
 * as a game server answers its players ("each way"); later copies are counted, not
 * answered. Everything each side saw is kept in a {@link PathLog} per player and path.
 */
import { Rng } from '../../../proto/src/rng.js';
import { HEADER_BYTES, PacketType, readU32, writeU32 } from '../../../proto/src/header.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import { CoordinatorCore } from '../../../coordinator/src/core/coordinator-core.js';
import { clientPrefix } from '../../../coordinator/src/core/geo.js';
import { CoordinatorSimDriver } from '../drivers/coordinator-driver.js';
import { encodeControl } from '../../../proto/src/control.js';
import type { LimitsSpec, RelayCoreConfig, TunnelFecSpec } from '../../../relay/src/core/config-types.js';
import { SimRelay } from '../drivers/relay-driver.js';
import type { SimFleetAgent } from '../drivers/fleet-driver.js';
import type { SimTimer } from '../core/event-queue.js';
import type { SimHost, SimNetwork, SimUdpSocket } from '../core/network.js';
import type { TunnelCandidate, TunnelClientInit } from '../../../sdk/src/core/tunnel-client.js';
import { SimTunnelClient } from '../drivers/sdk-driver.js';
import { candidatesFromRanking, defaultRelayLimits, fleetKeys, issueSimGrant, SIM_COORDINATOR_PORT, SIM_LEASE_MS, SIM_ORIGIN_PORT, SIM_ORIGIN_PROBE_PORT, SIM_TUNNEL_PORT, simFleetSpec, simRelayConfig, startSimFleetAgent, type FleetKeys } from './fleet.js';
import { SCENARIO_RELAY_FEC } from './scenario.js';
import { PathLog } from './path-log.js';

export { PathLog };

/** Bytes of the game header every datagram starts with: player u32, path u8, reserved u8, upstream seq u32, downstream seq u32. */
export const GAME_HEADER_BYTES = 14;
/** Path byte of a datagram sent straight to the origin. */
export const PATH_DIRECT = 0;
/** Path byte of a datagram sent through Slipstream. */
export const PATH_TUNNEL = 1;
/** Relays a deployment holds at most (the origin records which relays delivered a packet as a 30-bit mask). */
export const DEPLOYMENT_RELAYS_MAX = 30;

/** Game-like traffic: a fixed packet rate each way. */
export interface GameTraffic {
  readonly kind: 'game';
  /** Packets per second from the player (and as many back), > 0. */
  readonly packetsPerSecond: number;
  /** Bytes per packet, ≥ {@link GAME_HEADER_BYTES}. */
  readonly payloadBytes: number;
}

/** Media-like traffic: a constant bitrate sent as frames, each frame a burst of packets; every n-th frame is a larger keyframe. */
export interface MediaTraffic {
  readonly kind: 'media';
  /** Average bitrate each way, kbit/s (1000 bit/s). */
  readonly bitrateKbps: number;
  /** Frames per second. */
  readonly framesPerSecond: number;
  /** A keyframe every this many frames (1 = every frame the same). */
  readonly keyframeIntervalFrames: number;
  /** Keyframe size as a multiple of the other frames. */
  readonly keyframeScale: number;
  /** Largest packet, bytes; frames are split into packets of at most this. */
  readonly packetBytesMax: number;
}

/** What a player sends. */
export type TrafficSpec = GameTraffic | MediaTraffic;

/** A relay of the deployment. */
export interface DeploymentRelaySpec {
  /** Relay id (the coordinator's and the reports' name). */
  readonly id: string;
  /** Region for the registry. */
  readonly region: string;
  /** The host address (added to the network here). */
  readonly address: string;
  /** Tunnel FEC. Default {@link SCENARIO_RELAY_FEC}. */
  readonly fec?: TunnelFecSpec;
  /** Limits. Default: the relay defaults. */
  readonly limits?: LimitsSpec;
  /** Capacity announced to the coordinator, sessions. Default 1000. */
  readonly capacitySessions?: number;
}

/** An origin (game server) of the deployment. */
export interface DeploymentOriginSpec {
  /** Name as the coordinator, relays and tickets know it. */
  readonly name: string;
  /** The host address (added to the network here). */
  readonly address: string;
}

/** A player. */
export interface DeploymentClientSpec {
  /** Name for reports. */
  readonly id: string;
  /** The host address (added to the network here). */
  readonly address: string;
  /** The origin it plays on. */
  readonly origin: string;
  readonly traffic: TrafficSpec;
}

/** Options of {@link SimDeployment}. */
export interface SimDeploymentInit {
  /** Seed of keys, tickets and relay nonces (the network has its own). */
  readonly seed: number;
  readonly network: SimNetwork;
  /** The coordinator's host address. */
  readonly coordinatorAddress: string;
  readonly relays: readonly DeploymentRelaySpec[];
  readonly origins: readonly DeploymentOriginSpec[];
  readonly clients: readonly DeploymentClientSpec[];
  /** Extra time a route lookup takes on top of the client↔coordinator round trip, ms. Default 5. */
  readonly routeProcessingMs?: number;
  /** Overrides of every client core's options. */
  readonly clientOptions?: Partial<TunnelClientInit>;
  /** Also send every packet straight to the origin (the comparison). Default true; the swarm turns it off to save time. */
  readonly directPath?: boolean;
}

/** Counters of wire bytes on a player's tunnel link, by what they carry. */
export class WireCounters {
  /** Data and parity payload bytes (after the tunnel header) the player sent to relays. */
  dataBytesUp = 0;
  /** Data and parity payload bytes the relays sent to the player. */
  dataBytesDown = 0;
  /** Every other tunnel byte (headers, probes, control, keepalives), both ways. */
  otherBytes = 0;
}

/** A player at run time. */
export class DeploymentClient {
  /** Index in {@link SimDeployment.clients}. */
  readonly index: number;
  /** The SDK, once started. */
  tunnel: SimTunnelClient | undefined = undefined;
  /** Logs per path: [direct, tunnel]. */
  readonly logs: readonly [PathLog, PathLog] = [new PathLog(), new PathLog()];
  /** Bytes on the player's tunnel link (FEC overhead). */
  readonly wire = new WireCounters();
  /** When the player started, ms (undefined: not yet). */
  startedAtMs: number | undefined = undefined;
  /** Whether traffic is flowing. */
  sending = false;
  /** The socket of the direct path. */
  direct: SimUdpSocket | undefined = undefined;
  /** @internal traffic timer. */
  timer: SimTimer | undefined = undefined;
  /** @internal media frame counter. */
  frame = 0;
  constructor(
    readonly spec: DeploymentClientSpec,
    index: number,
    readonly host: SimHost,
  ) {
    this.index = index;
  }
}

/** A relay at run time. */
export class DeploymentRelay {
  /** The relay core's driver while alive. */
  relay: SimRelay | undefined = undefined;
  /** The relay's fleet agent while alive (the production fleet core). */
  agent: SimFleetAgent | undefined = undefined;
  /** Every fleet agent this relay ran, one per start, oldest first (for the fleet invariants). */
  readonly agents: SimFleetAgent[] = [];
  /** Virtual time of each start, ms (index as {@link agents}). */
  readonly startedAtMs: number[] = [];
  /** Starts so far (1 + restarts). */
  starts = 0;
  constructor(
    readonly spec: DeploymentRelaySpec,
    readonly index: number,
    readonly host: SimHost,
    readonly config: RelayCoreConfig,
  ) {}
  /** Whether the relay process is running. */
  get alive(): boolean {
    return this.relay !== undefined;
  }
}

/** A violation of the game's safety rules seen by an origin. */
export interface WrongOriginDelivery {
  readonly atMs: number;
  readonly origin: string;
  readonly client: string;
  readonly path: 'direct' | 'tunnel';
}

/** See the module comment. */
export class SimDeployment {
  readonly network: SimNetwork;
  readonly coordinator: CoordinatorCore;
  /** The coordinator's driver (its API socket; `revoke` as a game backend would). */
  readonly coordinatorDriver: CoordinatorSimDriver;
  readonly keys: FleetKeys;
  readonly clients: DeploymentClient[] = [];
  readonly relays = new Map<string, DeploymentRelay>();
  /** Packets an origin got from a player that plays on another origin. */
  readonly wrongOrigin: WrongOriginDelivery[] = [];
  private readonly relayByAddress = new Map<string, DeploymentRelay>();
  private readonly clientByAddress = new Map<string, DeploymentClient>();
  private readonly originNames: readonly string[];
  private readonly coordinatorEndpoint: Endpoint;
  private readonly rng: Rng;
  /** The payload of the packet being sent (see {@link sendGame}). */
  private readonly sendScratch = new Uint8Array(65_536);

  constructor(private readonly init: SimDeploymentInit) {
    if (init.relays.length > DEPLOYMENT_RELAYS_MAX) throw new RangeError(`SimDeployment: ${init.relays.length} relays; at most ${DEPLOYMENT_RELAYS_MAX}`);
    const net = (this.network = init.network);
    this.rng = new Rng(init.seed);
    this.keys = fleetKeys(this.rng);
    this.coordinatorEndpoint = { address: init.coordinatorAddress, port: SIM_COORDINATOR_PORT };
    this.originNames = init.origins.map((o) => o.name);

    const coordinatorHost = net.addHost(init.coordinatorAddress);
    this.coordinator = new CoordinatorCore({ leaseMs: SIM_LEASE_MS, origins: init.origins.map((o) => ({ name: o.name, address: `${o.address}:${SIM_ORIGIN_PORT}` })) });
    this.coordinatorDriver = new CoordinatorSimDriver(this.coordinator, coordinatorHost.bind(SIM_COORDINATOR_PORT), net, (callback) => {
      const timer = net.createTimer(callback, { what: 'coordinator core timer', host: init.coordinatorAddress });
      return { set: (at: number) => timer.set(Math.max(at, net.now())) };
    });

    init.origins.forEach((o, originIndex) => this.addOrigin(o, originIndex));

    const originEndpoints = new Map(init.origins.map((o) => [o.name, { address: o.address, port: SIM_ORIGIN_PORT }]));
    init.relays.forEach((spec, index) => {
      const host = net.addHost(spec.address);
      const config = simRelayConfig(spec.address, this.keys, originEndpoints, spec.fec ?? SCENARIO_RELAY_FEC, spec.limits ?? defaultRelayLimits());
      const relay = new DeploymentRelay(spec, index, host, config);
      this.relays.set(spec.id, relay);
      this.relayByAddress.set(spec.address, relay);
    });
    init.clients.forEach((spec, index) => {
      if (!this.originNames.includes(spec.origin)) throw new RangeError(`SimDeployment: client ${spec.id} plays on unknown origin ${spec.origin}`);
      const client = new DeploymentClient(spec, index, net.addHost(spec.address));
      this.clients.push(client);
      this.clientByAddress.set(spec.address, client);
    });
  }

  /** Starts every relay (their agents register and begin measuring at once). */
  startRelays(): void {
    for (const relay of this.relays.values()) this.startRelay(relay.spec.id);
  }

  /** Starts (or restarts after a crash) a relay process: fresh state, same config and address. */
  startRelay(id: string): void {
    const r = this.relays.get(id);
    if (r === undefined) throw new RangeError(`SimDeployment: no relay ${id}`);
    if (r.alive) return;
    r.starts++;
    const relay = new SimRelay({ network: this.network, host: r.host, config: r.config, seed: this.init.seed * 31 + r.index + 7919 * (r.starts - 1) });
    r.relay = relay;
    const socket = r.host.sockets.get(SIM_TUNNEL_PORT);
    if (socket !== undefined) this.countWire(socket, undefined);
    r.startedAtMs.push(this.network.now());
    r.agent = startSimFleetAgent(this.network, r.host, simFleetSpec(r.spec.id, r.spec.region, r.spec.address, r.spec.capacitySessions ?? 1000), this.coordinatorEndpoint, r.config, () => r.relay);
    r.agents.push(r.agent);
  }

  /** Kills a relay as a crashed process would: its sockets vanish, nothing is said, heartbeats stop. */
  crashRelay(id: string): void {
    const r = this.relays.get(id);
    if (r === undefined) throw new RangeError(`SimDeployment: no relay ${id}`);
    if (!r.alive) return;
    r.agent!.stop();
    r.relay!.close();
    r.agent = undefined;
    r.relay = undefined;
  }

  /** The relay whose host has `address`, if any. */
  relayAt(address: string): DeploymentRelay | undefined {
    return this.relayByAddress.get(address);
  }

  /**
   * Starts a player now: its SDK asks the coordinator for candidates (a route lookup
   * fails while a partition separates the player from the coordinator; the SDK then
   * retries at its refresh period), and its traffic begins on both paths.
   */
  startClient(index: number): void {
    const c = this.clients[index]!;
    if (c.startedAtMs !== undefined) return;
    const net = this.network;
    c.startedAtMs = net.now();
    const grant = issueSimGrant(this.rng, this.keys, c.spec.origin);
    const reports = c.host.bind(0);
    c.tunnel = new SimTunnelClient({
      network: net,
      host: c.host,
      client: { ...grant, ...this.init.clientOptions },
      candidates: (done) => this.lookupRoute(c, done),
      report: (list) => {
        for (const r of list) reports.send(encodeControl({ type: 'pathReport', reporterId: `sdk-${c.spec.id}`, targetId: r.relayId, rttMs: r.rttMs, jitterMs: r.jitterMs, lossFraction: r.lossFraction, samples: r.samples }), this.coordinatorEndpoint);
      },
    });
    const socket = c.host.sockets.get(c.tunnel.localPort);
    if (socket !== undefined) this.countWire(socket, c);
    c.tunnel.onMessage((bytes, atMs) => this.onClientReceive(c, PATH_TUNNEL, bytes, atMs));
    const direct = (c.direct = c.host.bind(0));
    direct.onReceive((bytes) => this.onClientReceive(c, PATH_DIRECT, bytes, net.now()));
    c.sending = true;
    const originAddress = this.init.origins.find((o) => o.name === c.spec.origin)!.address;
    const to: Endpoint = { address: originAddress, port: SIM_ORIGIN_PORT };
    const traffic = c.spec.traffic;
    c.timer = net.createTimer((now) => {
      if (!c.sending) return;
      if (traffic.kind === 'game') {
        this.sendGame(c, to, traffic.payloadBytes);
        c.timer!.set(now + 1000 / traffic.packetsPerSecond);
        return;
      }
      for (const size of mediaFrame(traffic, c.frame++)) this.sendGame(c, to, size);
      c.timer!.set(now + 1000 / traffic.framesPerSecond);
    }, { what: 'game traffic', host: c.spec.address });
    c.timer.set(net.now());
  }

  /** Stops a player's traffic (its SDK keeps running). */
  stopTraffic(index: number): void {
    const c = this.clients[index]!;
    c.sending = false;
    c.timer?.clear();
  }

  /** What `GET /v1/route` answers the player now, as SDK candidates; an Error when unknown. */
  route(c: DeploymentClient): readonly TunnelCandidate[] | Error {
    const ranking = this.coordinator.route(this.network.now(), { origin: c.spec.origin, client: { prefix: clientPrefix(c.spec.address) }, twoHop: false });
    if (ranking === undefined) return new Error(`unknown origin ${c.spec.origin}`);
    return candidatesFromRanking(ranking.candidates);
  }

  private lookupRoute(c: DeploymentClient, done: (result: readonly TunnelCandidate[] | Error) => void): void {
    const net = this.network;
    const coordinator = this.init.coordinatorAddress;
    // An HTTP request is a round trip: it needs the partition-free path both ways.
    if (net.isPartitioned(c.spec.address, coordinator)) {
      net.schedule(net.now() + 1000, () => done(new Error('coordinator unreachable (partition)')), { what: 'route lookup', host: c.spec.address });
      return;
    }
    // Access links included: the request and its answer cross the player's last mile too.
    const rttMs = net.modelDelayMs(c.spec.address, coordinator) + net.modelDelayMs(coordinator, c.spec.address);
    net.schedule(net.now() + rttMs + (this.init.routeProcessingMs ?? 5), () => {
      if (net.isPartitioned(c.spec.address, coordinator)) done(new Error('coordinator unreachable (partition)'));
      else done(this.route(c));
    }, { what: 'route lookup', host: c.spec.address });
  }

  private sendGame(c: DeploymentClient, to: Endpoint, sizeBytes: number): void {
    const now = this.network.now();
    // Both paths copy what they are given (the SDK into its FEC buffers or queue, the
    // socket on send), so one scratch buffer serves every packet.
    const length = Math.max(GAME_HEADER_BYTES, sizeBytes);
    const payload = this.sendScratch.subarray(0, length);
    payload.fill(0);
    writeU32(payload, 0, c.index);
    for (let path = this.init.directPath === false ? PATH_TUNNEL : PATH_DIRECT; path <= PATH_TUNNEL; path++) {
      const log = c.logs[path]!;
      const seq = log.sentAtMs.length;
      log.sentAtMs.push(now);
      log.sizeBytes.push(payload.length);
      log.originAtMs.push(Number.NaN);
      log.originVia.push(0);
      log.bytesUp += payload.length;
      payload[4] = path;
      writeU32(payload, 6, seq);
      if (path === PATH_DIRECT) c.direct!.send(payload, to);
      else c.tunnel!.send(payload);
    }
  }

  private addOrigin(o: DeploymentOriginSpec, originIndex: number): void {
    const host = this.network.addHost(o.address);
    const socket = host.bind(SIM_ORIGIN_PORT);
    const reply = new Uint8Array(65_536);
    socket.onReceive((bytes, from) => {
      if (bytes.length < GAME_HEADER_BYTES) return;
      const client = this.clients[readU32(bytes, 0)];
      const path = bytes[4]!;
      if (client === undefined || (path !== PATH_DIRECT && path !== PATH_TUNNEL)) return;
      const now = this.network.now();
      if (client.spec.origin !== this.originNames[originIndex]) {
        this.wrongOrigin.push({ atMs: now, origin: o.name, client: client.spec.id, path: path === PATH_DIRECT ? 'direct' : 'tunnel' });
        return;
      }
      const log = client.logs[path]!;
      const seq = readU32(bytes, 6);
      if (seq >= log.sentAtMs.length) return;
      const relay = path === PATH_TUNNEL ? this.relayByAddress.get(from.address) : undefined;
      const bit = relay === undefined ? 0 : 1 << relay.index;
      if (!Number.isNaN(log.originAtMs[seq]!)) {
        if (path === PATH_DIRECT) log.directDuplicates++;
        else if ((log.originVia[seq]! & bit) !== 0) log.sameRelayDuplicates++;
        else log.crossRelayDuplicates++;
        log.originVia[seq]! |= bit;
        return;
      }
      log.originAtMs[seq] = now;
      log.originVia[seq] = bit;
      // Answer with a packet of the same size, numbered in the origin's own sequence.
      const down = log.echoSentAtMs.length;
      log.echoSentAtMs.push(now);
      log.echoOf.push(seq);
      log.clientAtMs.push(Number.NaN);
      log.bytesDown += bytes.length;
      const out = reply.subarray(0, bytes.length);
      out.set(bytes);
      writeU32(out, 10, down);
      socket.send(out, from);
    });
    const probe = host.bind(SIM_ORIGIN_PROBE_PORT);
    probe.onReceive((bytes, from) => probe.send(bytes, from));
  }

  private onClientReceive(c: DeploymentClient, expectedPath: number, bytes: Uint8Array, atMs: number): void {
    if (bytes.length < GAME_HEADER_BYTES || bytes[4] !== expectedPath) return;
    if (readU32(bytes, 0) !== c.index) return;
    const log = c.logs[expectedPath]!;
    const down = readU32(bytes, 10);
    if (down >= log.clientAtMs.length) return;
    if (!Number.isNaN(log.clientAtMs[down]!)) {
      log.clientDuplicates++;
      return;
    }
    log.clientAtMs[down] = atMs;
  }

  /**
   * Counts the tunnel bytes a socket sends, by packet type (byte 2 of the tunnel
   * header): a player's own socket (`from`), or a relay's tunnel socket (undefined:
   * the player is the destination).
   */
  private countWire(socket: SimUdpSocket, from: DeploymentClient | undefined): void {
    const send = socket.send.bind(socket);
    socket.send = (bytes: Uint8Array, to: Endpoint): void => {
      const wire = (from ?? this.clientByAddress.get(to.address))?.wire;
      if (wire !== undefined) {
        const type = bytes.length >= HEADER_BYTES ? bytes[2] : undefined;
        if (type === PacketType.Data || type === PacketType.Parity) {
          if (from !== undefined) wire.dataBytesUp += bytes.length - HEADER_BYTES;
          else wire.dataBytesDown += bytes.length - HEADER_BYTES;
          wire.otherBytes += HEADER_BYTES;
        } else wire.otherBytes += bytes.length;
      }
      send(bytes, to);
    };
  }
}

/** Packet sizes of media frame `frame` (keyframes every `keyframeIntervalFrames`, average = bitrate / fps). */
export function mediaFrame(t: MediaTraffic, frame: number): number[] {
  const averageBytes = (t.bitrateKbps * 1000) / 8 / t.framesPerSecond;
  const k = t.keyframeIntervalFrames;
  const regular = k <= 1 ? averageBytes : (averageBytes * k) / (k - 1 + t.keyframeScale);
  const frameBytes = Math.max(GAME_HEADER_BYTES, Math.round(k > 1 && frame % k === 0 ? regular * t.keyframeScale : regular));
  const sizes: number[] = [];
  for (let left = frameBytes; left > 0; left -= t.packetBytesMax) sizes.push(Math.max(GAME_HEADER_BYTES, Math.min(left, t.packetBytesMax)));
  return sizes;
}
