/**
 * `slipstream relay --join URL --token T` (issue 16 item 2): a relay from a join token
 * alone. The first start generates the relay's key in the state directory, enrolls it
 * with the token (`POST /v1/relays/enroll`, which answers with the relay id the token
 * names, the ticket public key, the seal key, the origins the coordinator knows
 * addresses for, and the placement the token was minted with) and keeps that answer in
 * `join.json` (0600). Every start then writes `relay.yaml` there from it and the flags —
 * the ordinary config file, so SIGHUP, `--check` and the logs work as with a hand-written
 * one — and the relay runs on it. The token is spent on the first start; later starts
 * need only `--join` and the state directory. `--config extra.yaml` adds to it: its maps
 * are merged over the generated ones key by key, its `rules` come after the flags' rules,
 * anything else it sets replaces the generated value.
 */
import { createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigReader } from '../../kit/config.js';
import { CoordinatorApiError, CoordinatorClient, rawPublicKeyBase64 } from '../../kit/coordinator-client.js';
import type { EnrollAnswer } from '../../proto/src/api/contract.js';
import { CliUsageError, ConfigError } from '../../proto/src/errors.js';
import { readIdentityKey } from './config.js';

/** What `--join` is given. */
export interface JoinOptions {
  /** The coordinator's base URL. */
  readonly url: string;
  /** The one-time join token; needed on the first start only. */
  readonly token: string | undefined;
  /** Where the key, `join.json` and the generated `relay.yaml` live. */
  readonly stateDir: string;
  /** `tunnel.listen`. */
  readonly tunnelListen: string;
  /** `fleet.tunnelAddress`: the public `IP:port` clients reach the tunnel at (needed when `tunnelListen` is 0.0.0.0). */
  readonly publicAddress: string | undefined;
  /** L4 UDP rules, `LISTEN=ORIGIN` each (`0.0.0.0:27015=10.0.1.10:27015`). */
  readonly udp: readonly string[];
  /** L4 TCP rules, the same form. */
  readonly tcp: readonly string[];
  /** A YAML file merged over the generated config (see the module comment), or undefined. */
  readonly extraConfig: string | undefined;
  /** Placement when the token carries none: `region`, `latitude`, `longitude`. */
  readonly placement: { region?: string; latitude?: number; longitude?: number };
}

/** Where {@link prepareJoin} keeps what enrollment answered. */
export const JOIN_STATE_FILE = 'join.json';

/**
 * Enrolls on the first start (state kept in `stateDir`), then writes `stateDir/relay.yaml`
 * and returns its path. Throws {@link CliUsageError} for what the operator must fix and
 * `CoordinatorApiError` for a refused enrollment.
 */
export async function prepareJoin(options: JoinOptions): Promise<{ configPath: string; enrolled: boolean; relayId: string }> {
  mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
  const keyFile = join(options.stateDir, 'relay.key');
  const stateFile = join(options.stateDir, JOIN_STATE_FILE);
  let state: EnrollAnswer;
  let enrolled = false;
  if (existsSync(stateFile)) {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as EnrollAnswer;
  } else {
    if (options.token === undefined) throw new CliUsageError('--token', `--token: missing; the first start with --join enrolls with a join token (slipstream coordinator token --relay-id ID), and ${stateFile} does not exist yet`);
    const pem = readIdentityKey(keyFile);
    const client = new CoordinatorClient({ baseUrl: options.url });
    state = await client.enroll({ publicKey: rawPublicKeyBase64(createPrivateKey(pem)), token: options.token });
    writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    enrolled = true;
  }
  const placement = { ...state.placement, ...definedOnly(options.placement) };
  if (placement.region === undefined || placement.latitude === undefined || placement.longitude === undefined) {
    throw new CliUsageError('--region', `--region, --lat and --lon: missing; the join token for '${state.relayId}' carried no placement (mint it with slipstream coordinator token --region --lat --lon, or give them here)`);
  }
  const host = options.tunnelListen.startsWith('[') ? options.tunnelListen.slice(1, options.tunnelListen.lastIndexOf(']')) : options.tunnelListen.slice(0, options.tunnelListen.lastIndexOf(':'));
  const rules = (['udp', 'tcp'] as const).flatMap((protocol) =>
    options[protocol].map((spec, i) => {
      const eq = spec.indexOf('=');
      if (eq <= 0) throw new CliUsageError(`--${protocol}`, `--${protocol}: '${spec}' is not LISTEN=ORIGIN, e.g. 0.0.0.0:27015=10.0.1.10:27015`);
      return { name: `${protocol}-${i + 1}`, protocol, listen: spec.slice(0, eq), origins: [spec.slice(eq + 1)] };
    }),
  );
  // JSON is YAML: the ordinary loader reads it, with its errors naming this file's keys.
  const config = {
    ...(host !== '0.0.0.0' && host !== '::' ? { upstreamBindAddress: host } : {}),
    ...(rules.length > 0 ? { rules } : {}),
    tunnel: {
      listen: options.tunnelListen,
      ticketPublicKey: state.ticketPublicKey,
      sealKey: state.sealKey,
      origins: Object.fromEntries(state.origins.map((o) => [o.name, o.address])),
      coordinatorUrl: options.url,
      coordinatorIdentityKeyFile: keyFile,
    },
    fleet: {
      relayId: state.relayId,
      region: placement.region,
      latitude: placement.latitude,
      longitude: placement.longitude,
      ...(options.publicAddress !== undefined ? { tunnelAddress: options.publicAddress } : {}),
    },
  };
  const merged = options.extraConfig !== undefined ? mergeConfig(config, readExtra(options.extraConfig)) : config;
  const configPath = join(options.stateDir, 'relay.yaml');
  writeFileSync(configPath, `${JSON.stringify(merged, null, 2)}\n`, { mode: 0o600 });
  return { configPath, enrolled, relayId: state.relayId };
}

/** The map in `file`; a {@link ConfigError} naming the file (and line) when it is not YAML or not a map. */
function readExtra(file: string): Record<string, unknown> {
  const value = ConfigReader.fromFile(file).get([]);
  if (value === null || value === undefined) return {};
  if (!isMap(value)) throw new ConfigError(file, '<root>', 'expected a map of relay config keys (relay/README.md), merged over what --join generates');
  return value;
}

/** `extra` over `base`: maps merged key by key, `rules` appended, anything else replaced. */
export function mergeConfig(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const held = out[key];
    if (key === 'rules' && Array.isArray(held) && Array.isArray(value)) out[key] = [...(held as unknown[]), ...(value as unknown[])];
    else if (isMap(held) && isMap(value)) out[key] = mergeConfig(held, value);
    else out[key] = value;
  }
  return out;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** One line for a failed `--join` (exit 1): a refusal with its reason, or the coordinator unreachable. */
export function joinFailure(error: unknown): string {
  if (error instanceof CoordinatorApiError) return `slipstream relay --join: enrollment refused: ${error.message}`;
  const cause = error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error);
  return `slipstream relay --join: cannot enroll: ${cause}`;
}
