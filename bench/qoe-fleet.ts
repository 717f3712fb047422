/**
 * The deployment of `slipstream bench qoe`, as real processes on 127.0.0.x: one
 * `sim proxy` (the player's last mile), a coordinator, three tunnel relays that join
 * the fleet on their own, and `slipstream connect` as the player's local proxy.
 *
 * The last mile: `sim proxy` maps one listen address to one upstream, and each proxy's
 * two directions are its own links. So one proxy instance cannot put every path of the
 * player behind ONE loss process per direction. The closest honest setup used here: one
 * `sim proxy` process holding one UDP proxy per relay (`relay-N`, each relay advertising
 * the proxy's address as its `fleet.tunnelAddress`, so connect's tunnel traffic and
 * probes to that relay cross it), a TCP proxy in front of the coordinator (10 ms each
 * way), and one UDP proxy for the direct baseline (`direct`, game → origin), all with the
 * same impairment but independent loss draws per path. Losses on two relays' paths are
 * therefore uncorrelated, which flatters anything that spreads packets over relays.
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

/** One relay: its process, its id, its own tunnel address, and the last-mile proxy in front of it. */
export interface QoeRelay {
  readonly relayId: string;
  readonly proc: BenchChild;
  readonly proxyName: string;
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

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Starts the whole deployment in `dir` (configs, cache); `progress` gets one line per step. */
export async function startQoeFleet(opts: { dir: string; children: ChildRegistry; originPort: number; seed: number; progress: (line: string) => void }): Promise<QoeFleet> {
  const { dir, children, originPort, progress } = opts;
  const signingSeed = randomBytes(32);
  const sealKey = randomBytes(32).toString('base64');
  const fleetSecret = randomBytes(24).toString('base64');
  const apiKey = randomBytes(24).toString('base64');
  const publicKey = Buffer.from(rawPublicKey(ticketSigningKeyFromSeed(signingSeed))).toString('base64');

  const proxy = children.start(['sim', 'proxy', '--listen', '127.0.0.1:0', '--seed', String(opts.seed)]);
  const api = (await proxy.waitFor(/"event":"started","api":"([^"]+)"/, 'stdout', 15_000))[1]!;
  progress(`sim proxy: ${api}`);

  const coordinatorConfig = join(dir, 'coordinator.yaml');
  writeFileSync(
    coordinatorConfig,
    ['listen: 127.0.0.1:0', 'leaseMs: 1500', 'logLevel: warn', 'origins:', `  - { name: game, address: 127.0.0.1:${originPort} }`, 'keys:', `  ticketSigningSeed: ${signingSeed.toString('base64')}`, `  sealKey: ${sealKey}`, `  fleetSecret: ${fleetSecret}`, `  apiKeys: [${apiKey}]`].join('\n'),
  );
  const coordinator = children.start(['coordinator', '--config', coordinatorConfig]);
  const coordinatorUrl = (await coordinator.waitFor(/listening on (http:\/\/[0-9.:]+)/, 'stderr', 15_000))[1]!;
  const coordinatorHostPort = coordinatorUrl.replace(/^http:\/\//, '');
  const coordinatorProxyPort = await createProxy(api, { name: 'coordinator', protocol: 'tcp', listen: '127.0.0.1:0', upstream: coordinatorHostPort, both: { delayMs: LAST_MILE_DELAY_MS } });
  progress(`coordinator: ${coordinatorUrl} (the player reaches it through the proxy at 127.0.0.1:${coordinatorProxyPort})`);

  const relays: QoeRelay[] = [];
  for (let i = 0; i < RELAY_COUNT; i++) {
    const relayId = `relay-${i + 1}`;
    const address = `127.0.0.${i + 2}`;
    const tunnelPort = await freePort('udp');
    const proxyName = `relay-${i + 1}`;
    const lastMilePort = await createProxy(api, { name: proxyName, protocol: 'udp', listen: '127.0.0.1:0', upstream: `${address}:${tunnelPort}`, both: { delayMs: LAST_MILE_DELAY_MS } });
    const config = join(dir, `${relayId}.yaml`);
    writeFileSync(
      config,
      [
        `upstreamBindAddress: ${address}`,
        'metrics: { listen: "off" }',
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
    relays.push({ relayId, proc: children.start(['relay', '--config', config]), proxyName });
    progress(`${relayId}: tunnel ${address}:${tunnelPort}, advertised through the last-mile proxy 127.0.0.1:${lastMilePort}`);
  }

  const fleetClient = new CoordinatorClient({ baseUrl: coordinatorUrl });
  await until(
    async () => {
      const view = await fleetClient.fleet();
      const ready = view.relays.length === RELAY_COUNT && view.relays.every((r) => r.health === 'healthy' && r.origins.some((o) => o.origin === 'game'));
      return ready ? true : undefined;
    },
    FLEET_READY_TIMEOUT_MS,
    'three healthy relays with origin figures in /v1/fleet',
  );
  progress('fleet ready: 3 relays healthy');

  const directPort = await createProxy(api, { name: 'direct', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${originPort}`, both: { delayMs: LAST_MILE_DELAY_MS } });
  const connectPort = await freePort('udp');
  const connect = children.start(['connect', '--coordinator', `http://127.0.0.1:${coordinatorProxyPort}`, '--origin', 'game', '--listen', `udp:127.0.0.1:${connectPort}`, '--api-key', apiKey, '--bind', '127.0.0.1', '--cache', join(dir, 'cache.json'), '--status-interval-ms', '1000']);
  await connect.waitFor(/listening: /, 'stdout', 20_000);
  const path = await connect.waitFor(/path: (\S+)/, 'stdout', 10_000);
  progress(`connect: udp 127.0.0.1:${connectPort}, path ${path[1]}`);
  return { proxyApi: api, relays, connect, connectPort, directPort, relayProxyNames: relays.map((r) => r.proxyName) };
}

/** The relay connect uses now, from its latest `path:` or `status: relay` line; undefined when none yet. */
export function currentRelayId(connect: BenchChild): string | undefined {
  let latest: { at: number; id: string } | undefined;
  for (const m of connect.stdout.matchAll(/(?:path: |status: relay )(\S+)/g)) if (latest === undefined || m.index >= latest.at) latest = { at: m.index, id: m[1]! };
  return latest?.id;
}
