/**
 * Pieces every simulated deployment shares: a relay's fleet agent (the production fleet
 * core, relay/src/core/fleet-agent.ts, on the simulated network: registration,
 * heartbeats, re-join, its probes to the other relays and the origins and the path
 * reports the coordinator ranks with), the tunnel-mode relay configuration, fleet keys
 * and tickets. Used by
 * {@link SdkScenario} (one client, the SDK tests and `slipstream demo`) and by
 * {@link SimDeployment} (many clients and origins, `slipstream sim run` and `sim swarm`).
 * Nothing here reads a clock: time is the network's, randomness the caller's `Rng`.
 */
import type { KeyObject } from 'node:crypto';
import type { Rng } from '../../../proto/src/rng.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed, ticketVerifyKeyFromRaw, type TicketExit } from '../../../proto/src/ticket.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import * as RC from '../../../relay/src/core/constants.js';
import type { LimitsSpec, RelayCoreConfig, TunnelFecSpec } from '../../../relay/src/core/config-types.js';
import type { FleetAgentSpec } from '../../../relay/src/core/fleet-agent.js';
import type { SimRelay } from '../drivers/relay-driver.js';
import { SimFleetAgent } from '../drivers/fleet-driver.js';
import type { SimHost, SimNetwork } from '../core/network.js';
import type { TunnelCandidate } from '../../../sdk/src/core/tunnel-client.js';

/** Lease the simulated coordinator gives relays, ms: heartbeats go every third of it. */
export const SIM_LEASE_MS = 3000;
/** Period of a relay agent's probes to each origin and relay, ms. */
export const AGENT_PROBE_MS = 500;
/** A relay agent's probe unanswered this long is lost, ms. */
export const AGENT_PROBE_TIMEOUT_MS = 1000;
/** Period of a relay agent's path reports, ms. */
export const AGENT_REPORT_MS = 2000;
/** Period at which a relay agent re-reads the fleet list, ms. */
export const AGENT_MESH_REFRESH_MS = 5000;
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
    ticketVerificationsPerSecond: RC.TICKET_VERIFICATIONS_PER_SECOND_DEFAULT,
    ticketVerificationsPerSourcePerSecond: RC.TICKET_VERIFICATIONS_PER_SOURCE_PER_SECOND_DEFAULT,
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

/**
 * The fleet section of a simulated relay, for its {@link SimFleetAgent} (the production
 * fleet core): tunnel and probes on {@link SIM_TUNNEL_PORT}, heartbeats every third of
 * {@link SIM_LEASE_MS}, probes to every other relay and each origin every
 * {@link AGENT_PROBE_MS}, reports every {@link AGENT_REPORT_MS}, the fleet list re-read
 * every {@link AGENT_MESH_REFRESH_MS}.
 */
export function simFleetSpec(relayId: string, region: string, address: string, capacitySessions = 1000): FleetAgentSpec {
  return {
    relayId,
    region,
    latitude: 0,
    longitude: 0,
    tunnelAddress: `${address}:${SIM_TUNNEL_PORT}`,
    probeAddress: `${address}:${SIM_TUNNEL_PORT}`,
    capacitySessions,
    heartbeatIntervalMs: SIM_LEASE_MS / 3,
    meshRefreshMs: AGENT_MESH_REFRESH_MS,
    probeIntervalMs: AGENT_PROBE_MS,
    probeTimeoutMs: AGENT_PROBE_TIMEOUT_MS,
    reportIntervalMs: AGENT_REPORT_MS,
    originProbe: 'tcp',
  };
}

/**
 * Starts the fleet agent of a simulated relay: the production fleet core on `host`,
 * talking to the coordinator at `coordinator`; its heartbeats carry the live tunnel
 * session count of the relay process `relay()` returns (the one of the moment, if any),
 * revocations from the coordinator's feed go to that relay, and it probes the origins of
 * `config`'s tunnel section through their echo port ({@link SIM_ORIGIN_PROBE_PORT}).
 */
export function startSimFleetAgent(network: SimNetwork, host: SimHost, spec: FleetAgentSpec, coordinator: Endpoint, config: RelayCoreConfig, relay: () => SimRelay | undefined): SimFleetAgent {
  const origins = config.tunnel?.origins ?? new Map<string, Endpoint>();
  return new SimFleetAgent({
    network,
    host,
    coordinator,
    spec,
    connectEchoPort: SIM_ORIGIN_PROBE_PORT,
    context: { load: () => ({ sessions: relay()?.core.tunnelSessionCount ?? 0, packetsPerSecond: 0, cpuFraction: 0.1 }), origins: () => origins },
    onRevoked: (revocations) => {
      for (const r of revocations) relay()?.revoke([r.sessionId], r.expiresAtMs);
    },
    wallEpochMs: SIM_WALL_EPOCH_MS,
  });
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
