/**
 * The deployment of `slipstream bench qoe`, as real processes on 127.0.0.x: one
 * `sim proxy` (the player's last mile), a coordinator, three tunnel relays that join
 * the fleet on their own, and `slipstream connect` as the player's local proxy.
 *
 * The last mile is one shared link of the `sim proxy` process (`player-last-mile`,
 * sim/README.md "Shared links"): one UDP proxy per relay (`relay-N`, each relay
 * advertising its proxy's address as its `fleet.tunnelAddress`, so connect's tunnel
 * traffic, FEC and probes to that relay cross it) all name that link, so every packet
 * of the player in one direction crosses ONE impairment — one loss process (one
 * Gilbert-Elliott state), one delay and jitter line, as a Wi-Fi fade or a cellular
 * burst takes the copy to the backup relay too. This is the simulator's access link
 * (`SimNetwork.setAccessLink`). The direct baseline (`direct`, game → origin) crosses
 * its own shared link with the same model (`direct-last-mile`: separate state, since it
 * is a second measurement in the same window, not traffic competing with the tunnel),
 * unless `directLastMile: 'shared'` puts it on the player's link as the simulator does
 * (its direct path crosses the player's access link: the agreement test). A TCP proxy
 * in front of the coordinator adds the last mile's 10 ms each way to route lookups.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { freePort } from '../kit/free-port.js';
import { rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import type { BenchChild, ChildRegistry } from './qoe-processes.js';
import { LAST_MILE_DELAY_MS } from './qoe-cases.js';

/** Relays in the fleet. */
export const RELAY_COUNT = 3;
/** How long the fleet may take to form (relays healthy with origin figures), ms. */
const FLEET_READY_TIMEOUT_MS = 30_000;

/** Name of the shared link that is the player's last mile (every relay proxy crosses it). */
export const PLAYER_LINK = 'player-last-mile';
/** Name of the direct baseline's own last mile (unless it shares the player's). */
export const DIRECT_LINK = 'direct-last-mile';

/** One relay: its process, its id, its own tunnel address, and the last-mile proxy in front of it. */
export interface QoeRelay {
  readonly relayId: string;
  readonly proc: BenchChild;
  readonly proxyName: string;
  /** The relay's `/metrics` URL (its FEC byte counters give the downstream FEC overhead). */
  readonly metricsUrl: string;
  /** The relay's own tunnel address (`HOST:PORT`), behind its last-mile proxy. */
  readonly tunnel: string;
  /** The last-mile proxy's address in front of it (`127.0.0.1:PORT`): the tunnel address the relay advertises. */
  readonly proxy: string;
}

/** The running deployment. */
export interface QoeFleet {
  readonly proxyApi: string;
  readonly relays: readonly QoeRelay[];
  readonly connect: BenchChild;
  /** Connect's UDP port the game sends to. */
  readonly connectPort: number;
  /** The direct baseline's proxy port (→ origin). */
  readonly directPort: number;
  /** Names of the UDP proxies that carry the player's Slipstream traffic. */
  readonly relayProxyNames: readonly string[];
  /** The shared links to set a case's impairment on: the player's, and the direct baseline's when it has its own. */
  readonly lastMileLinks: readonly string[];
  /** The coordinator's URL (straight, not through the proxy). */
  readonly coordinatorUrl: string;
}

/** The fleet's secrets, each base64 (what deploy/scripts/generate-keys.mjs prints). */
export interface FleetKeys {
  /** The coordinator's 32-byte Ed25519 ticket signing seed. */
  readonly ticketSigningSeed: string;
  /** Its raw public key (the relays verify tickets with it). */
  readonly ticketPublicKey: string;
  readonly sealKey: string;
  readonly fleetSecret: string;
  /** The API key connect asks for tickets with. */
  readonly apiKey: string;
}

/** A fresh random set of {@link FleetKeys}. */
export function randomFleetKeys(): FleetKeys {
  const signingSeed = randomBytes(32);
  return {
    ticketSigningSeed: signingSeed.toString('base64'),
    ticketPublicKey: Buffer.from(rawPublicKey(ticketSigningKeyFromSeed(signingSeed))).toString('base64'),
    sealKey: randomBytes(32).toString('base64'),
    fleetSecret: randomBytes(24).toString('base64'),
    apiKey: randomBytes(24).toString('base64'),
  };
}

/** Options of {@link startQoeFleet}. */
export interface QoeFleetOptions {
  /** Folder for configs and connect's cache. */
  readonly dir: string;
  readonly children: ChildRegistry;
  /** The echo origin's port on 127.0.0.1 (UDP, and TCP for the relays' origin probe). */
  readonly originPort: number;
  /** `sim proxy --seed`. */
  readonly seed: number;
  /** One line per step. */
  readonly progress: (line: string) => void;
  /** Relays in the fleet (127.0.0.2 …). Default {@link RELAY_COUNT}. */
  readonly relayCount?: number;
  /** `own` (default): the direct baseline crosses its own last mile with the same model; `shared`: the player's (as in the simulator). */
  readonly directLastMile?: 'own' | 'shared';
  /** The last mile's impairment at start (both directions). Default 10 ms one way. */
  readonly impairment?: Readonly<Record<string, unknown>>;
  /** The fleet's keys. Default {@link randomFleetKeys}. */
  readonly keys?: FleetKeys;
  /** Connect's local UDP port (the game's). Default a free port. */
  readonly connectPort?: number;
  /** Aborts the wait for the fleet to form (Ctrl-C while it starts). */
  readonly signal?: AbortSignal;
}

/** One call to the proxy's HTTP API; throws on an unexpected status. */
export async function proxyApi(base: string, method: string, path: string, body: unknown, expectStatus: number): Promise<Record<string, unknown>> {
  const res = await fetch(`${base}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }), signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (res.status !== expectStatus) throw new Error(`sim proxy ${method} ${path}: ${res.status} ${text}`);
  return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
}

async function createProxy(api: string, definition: Record<string, unknown>): Promise<number> {
  const created = await proxyApi(api, 'POST', '/v1/proxies', definition, 201);
  return Number(/:(\d+)$/.exec(String(created.listen))![1]);
}

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string, signal?: AbortSignal): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    signal?.throwIfAborted();
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Sets `impairment` on both directions of every last-mile link of the fleet. */
export async function setLastMile(fleet: QoeFleet, impairment: Readonly<Record<string, unknown>>): Promise<void> {
  for (const link of fleet.lastMileLinks) await proxyApi(fleet.proxyApi, 'PUT', `/v1/links/${link}/impairments`, { both: impairment }, 200);
}

/** Starts the whole deployment in `dir` (configs, cache); `progress` gets one line per step. */
export async function startQoeFleet(opts: QoeFleetOptions): Promise<QoeFleet> {
  const { dir, children, originPort, progress } = opts;
  const relayCount = opts.relayCount ?? RELAY_COUNT;
  const impairment = opts.impairment ?? { delayMs: LAST_MILE_DELAY_MS };
  const directShares = opts.directLastMile === 'shared';
  const { ticketSigningSeed, ticketPublicKey: publicKey, sealKey, fleetSecret, apiKey } = opts.keys ?? randomFleetKeys();

  const proxy = children.start(['sim', 'proxy', '--listen', '127.0.0.1:0', '--seed', String(opts.seed)], 'sim proxy');
  const api = (await proxy.waitFor(/"event":"started","api":"([^"]+)"/, 'stdout', 15_000))[1]!;
  progress(`sim proxy: ${api}`);
  await proxyApi(api, 'POST', '/v1/links', { name: PLAYER_LINK, both: impairment }, 201);
  if (!directShares) await proxyApi(api, 'POST', '/v1/links', { name: DIRECT_LINK, both: impairment }, 201);

  const coordinatorConfig = join(dir, 'coordinator.yaml');
  writeFileSync(
    coordinatorConfig,
    ['listen: 127.0.0.1:0', 'leaseMs: 1500', 'logLevel: warn', 'origins:', `  - { name: game, address: 127.0.0.1:${originPort} }`, 'keys:', `  ticketSigningSeed: ${ticketSigningSeed}`, `  sealKey: ${sealKey}`, `  fleetSecret: ${fleetSecret}`, `  apiKeys: [${apiKey}]`].join('\n'),
  );
  const coordinator = children.start(['coordinator', '--config', coordinatorConfig], 'coordinator');
  const coordinatorUrl = (await coordinator.waitFor(/listening on (http:\/\/[0-9.:]+)/, 'stderr', 15_000))[1]!;
  const coordinatorHostPort = coordinatorUrl.replace(/^http:\/\//, '');
  const coordinatorProxyPort = await createProxy(api, { name: 'coordinator', protocol: 'tcp', listen: '127.0.0.1:0', upstream: coordinatorHostPort, both: { delayMs: LAST_MILE_DELAY_MS } });
  progress(`coordinator: ${coordinatorUrl} (the player reaches it through the proxy at 127.0.0.1:${coordinatorProxyPort})`);

  const relays: QoeRelay[] = [];
  for (let i = 0; i < relayCount; i++) {
    const relayId = `relay-${i + 1}`;
    const address = `127.0.0.${i + 2}`;
    const tunnelPort = await freePort('udp');
    const metricsPort = await freePort('tcp');
    const proxyName = `relay-${i + 1}`;
    const lastMilePort = await createProxy(api, { name: proxyName, protocol: 'udp', listen: '127.0.0.1:0', upstream: `${address}:${tunnelPort}`, link: PLAYER_LINK });
    const config = join(dir, `${relayId}.yaml`);
    writeFileSync(
      config,
      [
        `upstreamBindAddress: ${address}`,
        `metrics: { listen: "${address}:${metricsPort}" }`,
        'logLevel: warn',
        'drain: { timeoutMs: 200 }',
        'tunnel:',
        `  listen: ${address}:${tunnelPort}`,
        `  ticketPublicKey: ${publicKey}`,
        `  sealKey: ${sealKey}`,
        `  origins: { game: 127.0.0.1:${originPort} }`,
        `  coordinatorUrl: ${coordinatorUrl}`,
        `  coordinatorFleetSecret: ${fleetSecret}`,
        'fleet:',
        `  relayId: ${relayId}`,
        '  region: eu-central',
        `  latitude: ${50 + i * 0.5}`,
        `  longitude: ${8 + i * 0.5}`,
        `  tunnelAddress: 127.0.0.1:${lastMilePort}`,
        '  heartbeatIntervalMs: 300',
        '  reportIntervalMs: 500',
        '  meshRefreshMs: 500',
      ].join('\n'),
    );
    relays.push({ relayId, proc: children.start(['relay', '--config', config], relayId), proxyName, metricsUrl: `http://${address}:${metricsPort}/metrics`, tunnel: `${address}:${tunnelPort}`, proxy: `127.0.0.1:${lastMilePort}` });
    progress(`${relayId}: tunnel ${address}:${tunnelPort}, advertised through the last-mile proxy 127.0.0.1:${lastMilePort}`);
  }

  const fleetClient = new CoordinatorClient({ baseUrl: coordinatorUrl });
  await until(
    async () => {
      const view = await fleetClient.fleet();
      const ready = view.relays.length === relayCount && view.relays.every((r) => r.health === 'healthy' && r.origins.some((o) => o.origin === 'game'));
      return ready ? true : undefined;
    },
    FLEET_READY_TIMEOUT_MS,
    `${relayCount} healthy relays with origin figures in /v1/fleet`,
    opts.signal,
  );
  progress(`fleet ready: ${relayCount} relays healthy`);

  const directPort = await createProxy(api, { name: 'direct', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${originPort}`, link: directShares ? PLAYER_LINK : DIRECT_LINK });
  const connectPort = opts.connectPort ?? (await freePort('udp'));
  const connect = children.start(['connect', '--coordinator', `http://127.0.0.1:${coordinatorProxyPort}`, '--origin', 'game', '--listen', `udp:127.0.0.1:${connectPort}`, '--api-key', apiKey, '--bind', '127.0.0.1', '--cache', join(dir, 'cache.json'), '--status-interval-ms', '1000'], 'connect');
  await connect.waitFor(/listening: /, 'stdout', 20_000);
  const path = await connect.waitFor(/path: (\S+)/, 'stdout', 10_000);
  progress(`connect: udp 127.0.0.1:${connectPort}, path ${path[1]}`);
  return { proxyApi: api, relays, connect, connectPort, directPort, relayProxyNames: relays.map((r) => r.proxyName), lastMileLinks: directShares ? [PLAYER_LINK] : [PLAYER_LINK, DIRECT_LINK], coordinatorUrl };
}

/** The relay connect uses now, from its latest `path:` or `status: relay` line; undefined when none yet. */
export function currentRelayId(connect: BenchChild): string | undefined {
  let latest: { at: number; id: string } | undefined;
  for (const m of connect.stdout.matchAll(/(?:path: |status: relay )(\S+)/g)) if (latest === undefined || m.index >= latest.at) latest = { at: m.index, id: m[1]! };
  return latest?.id;
}
