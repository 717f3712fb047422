/**
 * The checked form of a scenario file (`sim/scenarios/*.yaml`, version 1): what
 * `slipstream sim run` builds and runs. `load.ts` turns YAML into it; every name is
 * resolved to host names and every time to virtual ms, so running it cannot fail on
 * input. The file format is documented in sim/README.md ("Scenario files").
 */
import { FEC_HOLD_MS_DEFAULT } from '../../../proto/src/fec/index.js';
import type { LimitsSpec, TunnelFecSpec } from '../../../relay/src/core/config-types.js';
import type { TrafficSpec } from '../deployment/deployment.js';
import type { LinkModelSpec } from '../core/link.js';

/** The only scenario format version so far. */
export const SCENARIO_VERSION = 1;
/** Longest scenario, ms (one simulated hour). */
export const SCENARIO_DURATION_MS_MAX = 3_600_000;
/** Players in one scenario at most. */
export const SCENARIO_CLIENTS_MAX = 1000;
/** Relays in one scenario at most (the deployment's limit). */
export const SCENARIO_RELAYS_MAX = 30;
/** Origins in one scenario at most. */
export const SCENARIO_ORIGINS_MAX = 16;
/** Events in one scenario at most. */
export const SCENARIO_EVENTS_MAX = 10_000;
/** Largest game packet rate per player, packets/s. */
export const SCENARIO_PPS_MAX = 1000;
/** Largest packet, bytes: what the tunnel carries with FEC (sdk TUNNEL_PAYLOAD_BYTES_MAX). */
export const SCENARIO_PACKET_BYTES_MAX = 1400;
/** Largest media bitrate per player, kbit/s. */
export const SCENARIO_BITRATE_KBPS_MAX = 50_000;
/** Default warm-up before measuring, from each player's start, ms: the SDK's first pick takes a few hundred ms. */
export const SCENARIO_WARMUP_MS_DEFAULT = 2000;
/** Default start of the players, ms: relays need a moment to register and measure their paths. */
export const SCENARIO_CLIENT_START_MS_DEFAULT = 3000;
/** Default model of host pairs no `links` entry names: 20 ms each way, nothing else. */
export const SCENARIO_DEFAULT_LINK: LinkModelSpec = { delayMs: 20 };

/**
 * Tunnel FEC of a scenario's relays unless the file says otherwise: what `slipstream
 * relay` runs with when its config has no `tunnel.fec` (relay/src/config.ts defaults),
 * so a scenario shows what a default deployment gives players.
 */
export const SCENARIO_RELAY_FEC_DEFAULT: TunnelFecSpec = { modes: ['sw', 'rs', 'dup', 'off'], k: 4, r: 2, holdMs: FEC_HOLD_MS_DEFAULT, copies: 1, spacingMs: 2 };

/** A host of a scenario (one player of a group is one host). */
export interface ScenarioHost {
  readonly name: string;
  readonly kind: 'coordinator' | 'origin' | 'relay' | 'client';
  readonly region: string | undefined;
}

/** A relay. */
export interface ScenarioRelaySpec {
  readonly name: string;
  readonly region: string | undefined;
  /** Relay limits (defaults from relay/src/core/constants.ts, `sessionsMax` overridable). */
  readonly limits: LimitsSpec | undefined;
  /** Tunnel FEC; default {@link SCENARIO_RELAY_FEC_DEFAULT}. */
  readonly fec: TunnelFecSpec | undefined;
}

/** A group of identical players. */
export interface ScenarioClientGroup {
  readonly name: string;
  readonly region: string | undefined;
  /** Host names of its players: the group name when `count` is 1, else `name-1` … `name-N`. */
  readonly members: readonly string[];
  readonly origin: string;
  /** When the players start, virtual ms. */
  readonly startMs: number;
  readonly traffic: TrafficSpec;
}

/** One direction between two hosts. */
export type DirectedPair = readonly [from: string, to: string];

/** A `links` entry: the keys it sets on each direction it names (a shallow merge, in file order). */
export interface ScenarioLinkEntry {
  readonly pairs: readonly DirectedPair[];
  readonly model: LinkModelSpec;
}

/** One direction of one host's access link (its last mile): `[host, 'uplink' | 'downlink']`. */
export type AccessHop = readonly [host: string, direction: 'uplink' | 'downlink'];

/** A host's access link in one direction, from the `access` key of its entry (a player group's: each member's own). */
export interface ScenarioAccessEntry {
  readonly hop: AccessHop;
  readonly model: LinkModelSpec;
}

/**
 * A timeline event, resolved. `set` and `blackout` change path links (`pairs`, from
 * `link:`) or access links (`access`, from `access:`); the other list is empty.
 */
export type ScenarioEvent =
  | { readonly kind: 'set'; readonly atMs: number; readonly pairs: readonly DirectedPair[]; readonly access: readonly AccessHop[]; readonly set: LinkModelSpec; readonly forMs: number | undefined }
  | { readonly kind: 'blackout'; readonly atMs: number; readonly pairs: readonly DirectedPair[]; readonly access: readonly AccessHop[]; readonly durationMs: number }
  | { readonly kind: 'crash' | 'restart'; readonly atMs: number; readonly relay: string }
  | { readonly kind: 'partition'; readonly atMs: number; readonly a: readonly string[]; readonly b: readonly string[]; readonly forMs: number | undefined };

/** A checked scenario. */
export interface Scenario {
  /** The file it came from, as given. */
  readonly file: string;
  readonly name: string;
  readonly description: string;
  /** Virtual time the run lasts (players send until then), ms. */
  readonly durationMs: number;
  /** Measuring starts this long after each player's start, ms. */
  readonly warmupMs: number;
  /** The file's seed (the command line's `--seed` wins). */
  readonly seed: number;
  readonly defaultLink: LinkModelSpec;
  readonly regions: readonly string[];
  readonly hosts: readonly ScenarioHost[];
  readonly origins: readonly { readonly name: string; readonly region: string | undefined }[];
  readonly relays: readonly ScenarioRelaySpec[];
  readonly clients: readonly ScenarioClientGroup[];
  readonly links: readonly ScenarioLinkEntry[];
  /** Access links (last miles) of the hosts that have one; a host appears at most once per direction. */
  readonly access: readonly ScenarioAccessEntry[];
  /** In time order (file order among equal times). */
  readonly events: readonly ScenarioEvent[];
}
