/**
 * A coordinator and tunnel relays as real processes on loopback, for end-to-end tests
 * of `slipstream connect`. The relays here have no `fleet` section: the test announces
 * them to the coordinator itself with the fleet secret (register, relay→origin report,
 * heartbeats), as a relay's agent would, so it controls what the coordinator believes.
 * Processes are started with `CliProcess` (SIGKILLed after the test file at the latest);
 * heartbeat timers started here are cleared then too.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CoordinatorClient } from '../../kit/coordinator-client.js';
import { rawPublicKey, ticketSigningKeyFromSeed } from '../../proto/src/ticket.js';
import { CliProcess } from './cli-process.js';
import { fileScopedInterval } from './timers.js';

/** Fresh keys for one test fleet. */
export interface FleetKeys {
  /** The coordinator's ticket-signing seed (32 bytes). */
  readonly seed: Buffer;
  /** The ticket seal key shared by coordinator and relays (32 bytes). */
  readonly sealKey: Buffer;
  /** The fleet secret (base64). */
  readonly fleetSecret: string;
  /** The one client API key (base64). */
  readonly apiKey: string;
  /** The ticket-verification public key for the relays (base64). */
  readonly publicKey: string;
}

/** Random keys: a signing seed and its public key, a seal key, a fleet secret and an API key. */
export function fleetKeys(): FleetKeys {
  const seed = randomBytes(32);
  return {
    seed,
    sealKey: randomBytes(32),
    fleetSecret: randomBytes(24).toString('base64'),
    apiKey: randomBytes(24).toString('base64'),
    publicKey: Buffer.from(rawPublicKey(ticketSigningKeyFromSeed(seed))).toString('base64'),
  };
}

/**
 * Writes `dir/coordinator.yaml` (ephemeral port on 127.0.0.1, 1.5 s lease, log level
 * warn, one origin `game` at 127.0.0.1:`originPort`, `keys`) and starts
 * `slipstream coordinator` on it; resolves with the process and its URL once it listens.
 */
export async function startCoordinator(dir: string, keys: FleetKeys, originPort: number): Promise<{ proc: CliProcess; url: string }> {
  const config = join(dir, 'coordinator.yaml');
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:0',
      'leaseMs: 1500',
      'logLevel: warn',
      'origins:',
      `  - { name: game, address: 127.0.0.1:${originPort} }`,
      'keys:',
      `  ticketSigningSeed: ${keys.seed.toString('base64')}`,
      `  sealKey: ${keys.sealKey.toString('base64')}`,
      `  fleetSecret: ${keys.fleetSecret}`,
      `  apiKeys: [${keys.apiKey}]`,
    ].join('\n'),
  );
  const proc = CliProcess.start(['coordinator', '--config', config]);
  const url = (await proc.waitFor(/listening on (http:\/\/[0-9.:]+)/, 'stderr', 15_000))[1]!;
  return { proc, url };
}

/** What {@link fleetRelayYaml} writes for one relay that joins the fleet itself. */
export interface FleetRelaySpec {
  readonly relayId: string;
  /** Degrees; the region is eu-central. */
  readonly latitude: number;
  readonly longitude: number;
  /** The coordinator's ticket-signing seed (the relay gets its public key). */
  readonly seed: Buffer;
  /** The ticket seal key, base64. */
  readonly sealKeyBase64: string;
  /** The origin `game` on 127.0.0.1. */
  readonly originPort: number;
  readonly coordinatorUrl: string;
  /** The fleet secret inline (`coordinatorFleetSecret`) or as a file (`coordinatorFleetSecretFile`). */
  readonly fleetSecret: { readonly inline: string } | { readonly file: string };
  /** Further `fleet:` keys, e.g. `heartbeatIntervalMs: 300`. */
  readonly fleetKeys: readonly string[];
  /** `/metrics` on 127.0.0.1 at this port; off when absent. */
  readonly metricsPort?: number;
}

/**
 * relay.yaml for a tunnel relay on 127.0.0.1 with a `fleet` section (it registers,
 * heartbeats and probes on its own): metrics off unless given, a 200 ms drain, origin `game`.
 */
export function fleetRelayYaml(spec: FleetRelaySpec): string {
  const secret = 'inline' in spec.fleetSecret ? `  coordinatorFleetSecret: ${spec.fleetSecret.inline}` : `  coordinatorFleetSecretFile: ${spec.fleetSecret.file}`;
  return [
    'upstreamBindAddress: 127.0.0.1',
    `metrics: { listen: "${spec.metricsPort === undefined ? 'off' : `127.0.0.1:${spec.metricsPort}`}" }`,
    'drain: { timeoutMs: 200 }',
    'tunnel:',
    '  listen: 127.0.0.1:0',
    `  ticketPublicKey: ${Buffer.from(rawPublicKey(ticketSigningKeyFromSeed(spec.seed))).toString('base64')}`,
    `  sealKey: ${spec.sealKeyBase64}`,
    `  origins: { game: 127.0.0.1:${spec.originPort} }`,
    `  coordinatorUrl: ${spec.coordinatorUrl}`,
    secret,
    'fleet:',
    `  relayId: ${spec.relayId}`,
    '  region: eu-central',
    `  latitude: ${spec.latitude}`,
    `  longitude: ${spec.longitude}`,
    ...spec.fleetKeys.map((line) => `  ${line}`),
  ].join('\n');
}

/** What {@link announcedRelayYaml} writes for one relay that the test announces itself. */
export interface AnnouncedRelaySpec {
  /** Loopback address the relay binds (tunnel and upstream), e.g. `127.0.0.2`. */
  readonly address: string;
  /** The origin `game` on 127.0.0.1. */
  readonly originPort: number;
  /** Rules, one flow-style YAML mapping each (`{ name: game-tcp, … }`); no `rules` section when absent. */
  readonly rules?: readonly string[];
  /** Further `tunnel:` keys, e.g. `relayId: exit`. */
  readonly tunnelKeys?: readonly string[];
}

/**
 * relay.yaml for a tunnel relay without a `fleet` section (the test announces it with
 * {@link announceRelay}), on `address` port 0: metrics off, log level warn, `keys`'
 * ticket public key and seal key, origin `game`, FEC dup/rs/off with 2 copies 10 ms apart.
 */
export function announcedRelayYaml(keys: FleetKeys, spec: AnnouncedRelaySpec): string {
  return [
    `upstreamBindAddress: ${spec.address}`,
    'metrics: { listen: "off" }',
    'logLevel: warn',
    ...(spec.rules === undefined ? [] : ['rules:', ...spec.rules.map((rule) => `  - ${rule}`)]),
    'tunnel:',
    `  listen: ${spec.address}:0`,
    `  ticketPublicKey: ${keys.publicKey}`,
    `  sealKey: ${keys.sealKey.toString('base64')}`,
    `  origins: { game: 127.0.0.1:${spec.originPort} }`,
    ...(spec.tunnelKeys ?? []).map((line) => `  ${line}`),
    '  fec: { modes: [dup, rs, off], copies: 2, spacingMs: 10 }',
  ].join('\n');
}

/** Kills a relay's process as a crash would (SIGKILL by PID), its heartbeats stopping too; resolves once it has exited. */
export async function crashRelay(relay: { readonly proc: CliProcess; readonly beat: NodeJS.Timeout | undefined }): Promise<void> {
  clearInterval(relay.beat);
  relay.proc.kill('SIGKILL');
  await relay.proc.exited;
}

/**
 * Starts `slipstream relay --config <config> --log-level info` and resolves with the
 * process and the tunnel port it bound, from its start-up log line.
 */
export async function startTunnelRelay(config: string): Promise<{ proc: CliProcess; tunnelPort: number }> {
  const proc = CliProcess.start(['relay', '--config', config, '--log-level', 'info']);
  const started = await proc.waitFor(/"tunnel":\{"address":"[0-9.]+","port":(\d+)\}/, 'stdout', 15_000);
  return { proc, tunnelPort: Number(started[1]) };
}

/** What the coordinator is told about a relay in `announceRelay`. */
export interface RelayAnnouncement {
  readonly relayId: string;
  /** `address:port` players reach the relay on (also its probe address). */
  readonly tunnelAddress: string;
  /** The relay→origin `game` RTT it reports (jitter 0, no loss, 50 samples). */
  readonly originRttMs: number;
  /** Default 100. */
  readonly capacitySessions?: number;
  /** The session count in its heartbeats; default 0. */
  readonly sessions?: number;
  /** Send one heartbeat (awaited) before the periodic ones start; default false. */
  readonly heartbeatNow?: boolean;
}

/**
 * Announces a relay as its agent would: registers it (region `local`, 50° N 8° E),
 * reports its path to the origin `game`, and heartbeats every 400 ms (load: the given
 * sessions, CPU 0.1, not draining; failures ignored). Returns the heartbeat timer: clear
 * it to make the relay fall silent, as a crash would.
 */
export async function announceRelay(fleet: CoordinatorClient, relay: RelayAnnouncement): Promise<NodeJS.Timeout> {
  const { relayId, tunnelAddress } = relay;
  await fleet.register({ relayId, region: 'local', latitude: 50, longitude: 8, tunnelAddress, probeAddress: tunnelAddress, capacitySessions: relay.capacitySessions ?? 100 });
  await fleet.reportRelayPaths(relayId, [{ origin: 'game', rttMs: relay.originRttMs, jitterMs: 0, lossFraction: 0, samples: 50 }]);
  const load = { sessions: relay.sessions ?? 0, packetsPerSecond: 0, cpuFraction: 0.1, draining: false };
  if (relay.heartbeatNow) await fleet.heartbeat(relayId, load);
  return fileScopedInterval(() => void fleet.heartbeat(relayId, load).catch(() => undefined), 400);
}
