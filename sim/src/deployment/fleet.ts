/**
 * Pieces every simulated deployment shares: a relay's agent (registration,
 * heartbeats, its own probes to the origins and the path reports the coordinator ranks
 * with), the tunnel-mode relay configuration, fleet keys and tickets. Used by
 * {@link SdkScenario} (one client, the SDK tests and `slipstream demo`) and by
 * {@link SimDeployment} (many clients and origins, `slipstream sim run` and `sim swarm`).
 * Nothing here reads a clock: time is the network's, randomness the caller's `Rng`.
 */
import type { KeyObject } from 'node:crypto';
import { encodeControl } from '../../../proto/src/control.js';
import type { Rng } from '../../../proto/src/rng.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed, ticketVerifyKeyFromRaw, type TicketExit } from '../../../proto/src/ticket.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import * as RC from '../../../relay/src/core/constants.js';
import type { LimitsSpec, RelayCoreConfig, TunnelFecSpec } from '../../../relay/src/core/config-types.js';
import type { SimHost, SimNetwork, SimUdpSocket } from '../core/network.js';
import type { TunnelCandidate } from '../../../sdk/src/core/tunnel-client.js';

/** Lease the simulated coordinator gives relays, ms: heartbeats go every third of it. */
export const SIM_LEASE_MS = 3000;
/** Period of a relay agent's probes to each origin, ms. */
export const AGENT_PROBE_MS = 500;
/** Period of a relay agent's path reports, ms. */
export const AGENT_REPORT_MS = 2000;
/** Port relays listen on for tunnel sessions and probes. */
export const SIM_TUNNEL_PORT = 4433;
/** Port of the coordinator's control socket. */
export const SIM_COORDINATOR_PORT = 7400;
/** Port of an origin's game socket. */
export const SIM_ORIGIN_PORT = 27015;
/** Port on which an origin answers relays' probes (echo). */
export const SIM_ORIGIN_PROBE_PORT = 27016;
/** Wall clock at virtual time 0, Unix ms (tickets carry wall times). */
export const SIM_WALL_EPOCH_MS = 1.7e12;

/** The relay default limits (relay/src/core/constants.ts), as one object. */
export function defaultRelayLimits(): LimitsSpec {
  return {
    sessionsMax: RC.SESSIONS_MAX_DEFAULT,
    sessionsPerSourceMax: RC.SESSIONS_PER_SOURCE_MAX_DEFAULT,
    newSessionsPerSourcePerSecond: RC.NEW_SESSIONS_PER_SOURCE_PER_SECOND_DEFAULT,
    sourcePacketsPerSecond: RC.SOURCE_PACKETS_PER_SECOND_DEFAULT,
    sourceBytesPerSecond: RC.SOURCE_BYTES_PER_SECOND_DEFAULT,
    sessionPacketsPerSecond: RC.SESSION_PACKETS_PER_SECOND_DEFAULT,
    sessionBytesPerSecond: RC.SESSION_BYTES_PER_SECOND_DEFAULT,
    unauthenticatedPacketsPerSecond: RC.UNAUTHENTICATED_PACKETS_PER_SECOND_DEFAULT,
    burstMs: RC.BURST_MS_DEFAULT,
  };
}

/** The fleet's keys: Ed25519 ticket signing (coordinator) and verification (relays), and the seal key of session keys. */
export interface FleetKeys {
  readonly signingKey: KeyObject;
  readonly verifyKey: KeyObject;
  readonly sealKey: Uint8Array;
}

/** Draws the fleet's keys from `rng` (64 bytes: the signing seed, then the seal key), as a fleet's config would hold them. */
export function fleetKeys(rng: Rng): FleetKeys {
  const signingKey = ticketSigningKeyFromSeed(rng.fillBytes(new Uint8Array(32)));
  return { signingKey, verifyKey: ticketVerifyKeyFromRaw(rawPublicKey(signingKey)), sealKey: rng.fillBytes(new Uint8Array(32)) };
}

/** A ticket grant as the game backend hands it to a client. */
export interface SimGrant {
  readonly sessionId: string;
  readonly ticket: Uint8Array;
  readonly sessionKey: Uint8Array;
}

/**
 * The game backend's part: a session key, a session id and a signed ticket for
 * `origin`, valid for an hour from the wall epoch. Draws 32 + 8 + 12 bytes from `rng`.
 * @param limits the ticket's per-session limits (packets/s, bytes/s; 0 = relay default)
 * @param exit the exit relay the ticket names (default none)
 */
export function issueSimGrant(rng: Rng, keys: FleetKeys, origin: string, limits = { packetsPerSecond: 2000, bytesPerSecond: 2_000_000 }, exit?: TicketExit): SimGrant {
  const sessionKey = rng.fillBytes(new Uint8Array(32));
  const sessionId = Array.from(rng.fillBytes(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
  const ticket = issueTicket({ sessionId, origin, issuedAtMs: SIM_WALL_EPOCH_MS, expiresAtMs: SIM_WALL_EPOCH_MS + 3_600_000, limits, sessionKey, sealNonce: rng.fillBytes(new Uint8Array(12)), ...(exit !== undefined ? { exit } : {}) }, keys.signingKey, keys.sealKey);
  return { sessionId, ticket, sessionKey };
}

/** A tunnel-mode relay's configuration on the simulator: no L4 rules, the given origins by name. */
export function simRelayConfig(address: string, keys: FleetKeys, origins: ReadonlyMap<string, Endpoint>, fec: TunnelFecSpec, limits: LimitsSpec = defaultRelayLimits()): RelayCoreConfig {
  return {
    rules: [],
    groups: [],
    upstreamBindAddress: address,
    limits,
    tunnel: {
      listenAddress: address,
      listenPort: SIM_TUNNEL_PORT,
      ticketPublicKey: keys.verifyKey,
      sealKey: keys.sealKey,
      origins,
      allowOriginCidrs: [],
      idleTimeoutMs: RC.TUNNEL_IDLE_TIMEOUT_MS_DEFAULT,
      clockSkewMs: 30_000,
      allow: [],
      deny: [],
      fec,
    },
  };
}

/** An origin a relay agent probes and reports on. */
export interface AgentOrigin {
  /** Origin name as the coordinator knows it. */
  readonly name: string;
  /** Where the origin answers probes. */
  readonly probe: Endpoint;
}

class OriginProbeState {
  srttMs: number | undefined = undefined;
  jitterMs = 0;
  probes = 0;
  answered = 0;
}

/**
 * What a relay's control-plane agent does: registers with the coordinator, heartbeats
 * every third of the lease (with the relay's live session count), probes each origin
 * every {@link AGENT_PROBE_MS} and reports the smoothed RTT, jitter and loss every
 * {@link AGENT_REPORT_MS} (once it has a first answer). Probes are 8-byte send-time
 * stamps that the origin's probe port echoes; the answer's source tells the origin.
 */
export class RelayAgent {
  /** The agent's socket on the relay host. */
  readonly socket: SimUdpSocket;
  private readonly timer;
  private nextHeartbeatMs = 0;
  private nextReportMs = AGENT_REPORT_MS;
  private nextProbeMs = 0;
  private readonly state: OriginProbeState[];
  /** Whether {@link stop} was called. */
  stopped = false;

  /**
   * @param sessions the relay's live session count, for heartbeats (default: 0)
   */
  constructor(
    network: SimNetwork,
    host: SimHost,
    private readonly relayId: string,
    private readonly register: Uint8Array,
    private readonly coordinator: Endpoint,
    private readonly origins: readonly AgentOrigin[],
    private readonly sessions: () => number = () => 0,
  ) {
    this.state = origins.map(() => new OriginProbeState());
    this.nextReportMs = network.now() + AGENT_REPORT_MS;
    this.socket = host.bind(0);
    this.socket.onReceive((bytes, from) => {
      if (bytes.length !== 8) return;
      const index = this.origins.findIndex((o) => o.probe.address === from.address && o.probe.port === from.port);
      if (index < 0) return;
      const s = this.state[index]!;
      const rtt = network.now() - new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0);
      s.answered++;
      if (s.srttMs === undefined) s.srttMs = rtt;
      else {
        s.jitterMs += (Math.abs(rtt - s.srttMs) - s.jitterMs) / 4;
        s.srttMs += (rtt - s.srttMs) / 8;
      }
    });
    this.timer = network.createTimer((now) => this.tick(now), { what: 'relay agent timer', host: host.address });
    this.socket.send(this.register, coordinator);
    this.tick(network.now());
  }

  private tick(now: number): void {
    if (this.stopped) return;
    if (now >= this.nextHeartbeatMs) {
      this.nextHeartbeatMs = now + SIM_LEASE_MS / 3;
      // Registering again is harmless and covers a lost first registration.
      this.socket.send(this.register, this.coordinator);
      this.socket.send(encodeControl({ type: 'relayHeartbeat', relayId: this.relayId, sessions: this.sessions(), packetsPerSecond: 0, cpuFraction: 0.1, draining: false }), this.coordinator);
    }
    if (now >= this.nextProbeMs) {
      this.nextProbeMs = now + AGENT_PROBE_MS;
      for (let i = 0; i < this.origins.length; i++) {
        const stamp = new Uint8Array(8);
        new DataView(stamp.buffer).setFloat64(0, now);
        this.state[i]!.probes++;
        this.socket.send(stamp, this.origins[i]!.probe);
      }
    }
    if (now >= this.nextReportMs) {
      // Nothing answered yet (a relay restarted while its origin path is dark): try at
      // the next probe round. The deadline must move on either way: left in the past it
      // re-armed the timer at `now` forever, a livelock in virtual time (swarm seeds 251, 470).
      const answered = this.state.some((s) => s.srttMs !== undefined);
      this.nextReportMs = answered ? now + AGENT_REPORT_MS : this.nextProbeMs;
      if (answered) this.report();
    }
    this.timer.set(Math.min(this.nextHeartbeatMs, this.nextProbeMs, this.nextReportMs));
  }

  private report(): void {
    this.origins.forEach((origin, i) => {
      const s = this.state[i]!;
      if (s.srttMs === undefined) return;
      // The latest probe may still be in flight: judge the ones before it.
      const loss = s.probes <= 1 ? 0 : Math.max(0, 1 - s.answered / (s.probes - 1));
      this.socket.send(encodeControl({ type: 'pathReport', reporterId: this.relayId, targetId: origin.name, rttMs: s.srttMs, jitterMs: s.jitterMs, lossFraction: Math.min(1, loss), samples: s.answered }), this.coordinator);
    });
  }

  /** Stops the agent (a crashed relay's agent dies with it) and closes its socket. */
  stop(): void {
    this.stopped = true;
    this.timer.clear();
    this.socket.close();
  }
}

/** The `relayRegister` message of a simulated relay (probe and tunnel on {@link SIM_TUNNEL_PORT}). */
export function relayRegisterMessage(relayId: string, region: string, address: string, capacitySessions = 1000): Uint8Array {
  return encodeControl({ type: 'relayRegister', relayId, region, latitude: 0, longitude: 0, tunnelAddress: `${address}:${SIM_TUNNEL_PORT}`, probeAddress: `${address}:${SIM_TUNNEL_PORT}`, capacitySessions });
}

/** `host:port` (brackets around IPv6) → address and port. */
export function splitEndpoint(text: string): [string, number] {
  const colon = text.lastIndexOf(':');
  return [text.slice(0, colon).replace(/^\[|\]$/g, ''), Number(text.slice(colon + 1))];
}

/** A coordinator route ranking as the SDK's tunnel candidates. */
export function candidatesFromRanking(candidates: readonly { relayId: string; tunnelAddress: string; probeAddress: string; costMs: number; legs: { relayToRelay?: { rttMs: number }; relayToOrigin: { rttMs: number } } }[]): TunnelCandidate[] {
  return candidates.map((c) => {
    const [address, port] = splitEndpoint(c.tunnelAddress);
    const [paddress, pport] = splitEndpoint(c.probeAddress);
    // Through an exit, the rest of the path is entry→exit plus exit→origin.
    return { id: c.relayId, tunnel: { address, port }, probe: { address: paddress, port: pport }, estimateMs: c.costMs, restMs: (c.legs.relayToRelay?.rttMs ?? 0) + c.legs.relayToOrigin.rttMs };
  });
}
