/**
 * `slipstream bench coordinator`: the coordinator at fleet scale. Starts a real
 * `slipstream coordinator` process (and, for Redis, a redis-server on a free port),
 * registers N relays, then for a fixed time sends every relay's heartbeat once per
 * interval plus route requests at a fixed rate, open loop (requests go out on
 * schedule whether or not earlier ones have answered, so slow answers cannot hide
 * behind fewer requests), over keep-alive HTTP from this process. Prints route latency
 * percentiles as the client saw them, per store. Every figure is measured in this run.
 *
 * Route requests come from `--client-prefixes` simulated client networks (a /24 each,
 * a random host in it per request, one lat/lon per network), named by
 * `X-Forwarded-For` (the coordinator runs with `trustForwardedFor`), so the route
 * cache (`routeCacheMs`, coordinator/src/route-cache.ts) sees as many prefixes as the
 * flag says. With `--cache both` (default) every store is measured with the cache off
 * (`routeCacheMs: 0`) and then on, in the same run.
 *
 * JSON (`--json`): `{ relays, heartbeatIntervalMs, routeRps, durationS, clientPrefixes, results: [{ store,
 * routeCacheMs, cacheHitFraction, routeRequests, routeRpsAchieved, heartbeats, heartbeatRpsAchieved, errors,
 * routeLatencyMs: {p50, p90, p99, max}, heartbeatLatencyMs: {p50, p99, max}, candidatesPerRoute, coordinatorCpuUsPerRoute }] }`
 * (`cacheHitFraction`: of the measured window's route answers, from the coordinator's
 * `slipstream_coordinator_route_cache_lookups_total`; null with the cache off).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { bool, num, str, type FlagSpec } from '../kit/flags.js';
import { flagCommand, type Command } from '../kit/command.js';
import { CliUsageError } from '../proto/src/errors.js';
import { Rng } from '../proto/src/rng.js';
import { freePort } from '../kit/free-port.js';
import { RawHttpCaller } from './coordinator-client.js';

const FLAGS: Record<string, FlagSpec> = {
  relays: { type: 'integer', valueName: 'N', min: 1, max: 10_000, description: 'Relays registered and heartbeating', default: 500 },
  'heartbeat-ms': { type: 'integer', valueName: 'MS', min: 100, max: 60_000, description: 'Each relay heartbeats this often, ms', default: 1000 },
  'route-rps': { type: 'integer', valueName: 'N', min: 1, max: 20_000, description: 'Route requests per second', default: 2000 },
  'duration-s': { type: 'number', valueName: 'S', min: 1, max: 300, description: 'Measured time per store, s', default: 10 },
  'warmup-s': { type: 'number', valueName: 'S', min: 0, max: 60, description: 'Load before measuring starts, s', default: 2 },
  store: { type: 'string', valueName: 'memory|redis|both|redis://…', description: "Stores to measure ('redis' starts a redis-server on a free port)", default: 'both' },
  seed: { type: 'integer', valueName: 'N', min: 0, max: 4294967295, description: 'Seed of relay placement and client positions', default: 1 },
  'client-prefixes': { type: 'integer', valueName: 'N', min: 1, max: 65_536, description: 'Client networks (/24 each) the route requests come from (the route cache hit rate follows from it: see coordinator/README.md "Scale")', default: 200 },
  cache: { type: 'string', valueName: 'off|on|both', description: "The route cache: measured off, on (routeCacheMs = --route-cache-ms), or both in turn per store", default: 'both' },
  'route-cache-ms': { type: 'integer', valueName: 'MS', min: 1, max: 10_000, description: 'routeCacheMs of the runs with the cache on, ms', default: 1000 },
  json: { type: 'boolean', description: 'Print one JSON object instead of a table' },
};

const SUMMARY = 'Coordinator at scale: N relays heartbeating plus route requests/s; p99 route latency per store.';
const CLI_PATH = fileURLToPath(new URL('../cli/slipstream.js', import.meta.url));
const REDIS_SERVER = '/usr/bin/redis-server';
/** Scheduler tick of the open-loop generator, ms. */
const TICK_MS = 5;
/** Most requests in flight before the generator counts new ones as errors (overload guard). */
const IN_FLIGHT_MAX = 2000;
/** Keep-alive connections of the load generator (one request in flight on each). */
const CONNECTIONS = 64;
/** Per-request timeout, ms. */
const REQUEST_TIMEOUT_MS = 5000;

/** Latency percentiles, ms. */
export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** One store's figures. */
export interface CoordinatorBenchResult {
  store: string;
  /** The coordinator's routeCacheMs in this run (0: off). */
  routeCacheMs: number;
  /** Fraction of the measured route answers served from the cache; null with it off. */
  cacheHitFraction: number | null;
  routeRequests: number;
  routeRpsAchieved: number;
  heartbeats: number;
  heartbeatRpsAchieved: number;
  errors: number;
  routeLatencyMs: LatencySummary;
  heartbeatLatencyMs: LatencySummary;
  candidatesPerRoute: number;
  /**
   * The coordinator process's CPU time (user + system, from its
   * `process_cpu_seconds_total`) over the measured window per route answered in it, µs;
   * the window's heartbeats are in it too. Robust where latency is not: on a shared
   * machine a saturated process's latency tells mostly how busy the neighbours are.
   */
  coordinatorCpuUsPerRoute: number | null;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

function summarize(values: number[]): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  const r = (x: number): number => Math.round(x * 1000) / 1000;
  return { p50: r(percentile(sorted, 0.5)), p90: r(percentile(sorted, 0.9)), p99: r(percentile(sorted, 0.99)), max: r(sorted[sorted.length - 1] ?? Number.NaN) };
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function waitForLine(child: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  let text = '';
  const s = child[stream]!;
  s.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms: ${text.slice(-500)}`)), timeoutMs);
    s.on('data', (chunk: string) => {
      text += chunk;
      const m = pattern.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code}: ${text.slice(-500)}`));
    });
  });
}

interface BenchOptions {
  relays: number;
  heartbeatMs: number;
  routeRps: number;
  durationS: number;
  warmupS: number;
  seed: number;
  clientPrefixes: number;
}

/** Runs the load against one store spec (`memory` or a redis URL) and returns its figures. */
export async function benchOneStore(label: string, storeSpec: string, o: BenchOptions, routeCacheMs: number): Promise<CoordinatorBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'slip-bench-coord-'));
  const fleetSecret = randomBytes(24).toString('base64');
  const configPath = join(dir, 'coordinator.yaml');
  writeFileSync(configPath, `keys:\n  fleetSecret: ${fleetSecret}\n  apiKeys: [${randomBytes(24).toString('base64')}]\n  ticketSigningSeed: ${randomBytes(32).toString('base64')}\n  sealKey: ${randomBytes(32).toString('base64')}\nredisKeyPrefix: 'bench-${randomBytes(4).toString('hex')}:'\nrouteCacheMs: ${routeCacheMs}\ntrustForwardedFor: true\norigins:\n  - name: bench-origin\n    latitude: 50\n    longitude: 8\n`);
  const port = await freePort();
  const coordinator = spawn(process.execPath, [CLI_PATH, 'coordinator', '--config', configPath, '--listen', `127.0.0.1:${port}`, '--store', storeSpec, '--log-level', 'warn', '--lease-ms', String(Math.max(3 * o.heartbeatMs, 3000))], { stdio: ['ignore', 'ignore', 'pipe'] });
  let caller: RawHttpCaller | undefined;
  try {
    await waitForLine(coordinator, 'stderr', /listening on http/, 20_000);
    const http = (caller = new RawHttpCaller(port, fleetSecret, CONNECTIONS, REQUEST_TIMEOUT_MS));
    const rng = new Rng(o.seed);
    const ids = Array.from({ length: o.relays }, (_, i) => `relay-${i}`);
    // Register with bounded concurrency, and give each relay an origin figure.
    for (let i = 0; i < ids.length; i += 50) {
      await Promise.all(
        ids.slice(i, i + 50).map(async (relayId) => {
          const lat = -60 + rng.nextFloat() * 130;
          const lon = -180 + rng.nextFloat() * 360;
          const reg = await http.callAsync('POST', '/v1/relays/register', JSON.stringify({ relayId, region: `r${Math.floor((lon + 180) / 40)}`, latitude: lat, longitude: lon, tunnelAddress: '127.0.0.1:4433', probeAddress: '127.0.0.1:4434', capacitySessions: 5000 }));
          if (!reg.ok) throw new Error(`register ${relayId} failed: ${reg.text}`);
          const rep = await http.callAsync('POST', '/v1/relays/reports', JSON.stringify({ relayId, reports: [{ origin: 'bench-origin', rttMs: 5 + rng.nextFloat() * 200, jitterMs: rng.nextFloat() * 5, lossFraction: rng.nextFloat() * 0.02, samples: 20 }] }));
          if (!rep.ok) throw new Error(`report ${relayId} failed: ${rep.text}`);
        }),
      );
    }
    // Client networks: 10.x.y.0/24 each, at one place each.
    const clients = Array.from({ length: o.clientPrefixes }, (_, i) => ({ net: `10.${(i >> 8) & 255}.${i & 255}`, lat: (-60 + rng.nextFloat() * 130).toFixed(2), lon: (-180 + rng.nextFloat() * 360).toFixed(2) }));
    const cacheLookups = async (): Promise<{ hit: number; miss: number; cpuS: number }> => {
      const text = (await http.callAsync('GET', '/metrics')).text;
      const pick = (result: string): number => Number(new RegExp(`slipstream_coordinator_route_cache_lookups_total\\{result="${result}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
      return { hit: pick('hit'), miss: pick('miss'), cpuS: Number(/slipstream_coordinator_process_cpu_seconds_total ([\d.e+-]+)/.exec(text)?.[1] ?? Number.NaN) };
    };
    let lookupsAtMeasureStart: Promise<{ hit: number; miss: number; cpuS: number }> | undefined;
    const routeLatencies: number[] = [];
    const heartbeatLatencies: number[] = [];
    let errors = 0;
    let measuring = false;
    let candidates = 0;
    let candidateSamples = 0;
    const totalMs = (o.warmupS + o.durationS) * 1000;
    const started = performance.now();
    let routesSent = 0;
    let heartbeatsSent = 0;
    let measureStart = 0;
    let routesAtMeasureStart = 0;
    let heartbeatsAtMeasureStart = 0;
    const heartbeatBodies = ids.map((relayId) => JSON.stringify({ relayId, sessions: 10, packetsPerSecond: 600, cpuFraction: 0.2, draining: false }));
    // Open loop: at each tick, send whatever the schedule says is due by now.
    for (let tick = 0; tick < Math.ceil(totalMs / TICK_MS) + 10_000; tick++) {
      const elapsed = performance.now() - started;
      if (elapsed >= totalMs) break;
      if (!measuring && elapsed >= o.warmupS * 1000) {
        measuring = true;
        measureStart = performance.now();
        routesAtMeasureStart = routesSent;
        heartbeatsAtMeasureStart = heartbeatsSent;
        lookupsAtMeasureStart = cacheLookups();
      }
      const routesDue = Math.floor((elapsed / 1000) * o.routeRps);
      for (; routesSent < routesDue; routesSent++) {
        if (http.inFlight >= IN_FLIGHT_MAX) {
          if (measuring) errors++;
          continue;
        }
        const client = clients[Math.floor(rng.nextFloat() * clients.length)]!;
        const host = 1 + Math.floor(rng.nextFloat() * 254);
        const counted = measuring;
        http.call('GET', `/v1/route?origin=bench-origin&lat=${client.lat}&lon=${client.lon}`, undefined, (ok, ms, answer) => {
          if (!counted) return;
          if (!ok) errors++;
          else {
            routeLatencies.push(ms);
            if (candidateSamples < 100) {
              candidates += (JSON.parse(answer.text()) as { candidates: unknown[] }).candidates.length;
              candidateSamples++;
            }
          }
        }, `${client.net}.${host}`);
      }
      const heartbeatsDue = Math.floor((elapsed / o.heartbeatMs) * o.relays);
      for (; heartbeatsSent < heartbeatsDue; heartbeatsSent++) {
        const counted = measuring;
        http.call('POST', '/v1/relays/heartbeat', heartbeatBodies[heartbeatsSent % o.relays], (ok, ms) => {
          if (!counted) return;
          if (!ok) errors++;
          else heartbeatLatencies.push(ms);
        });
      }
      await sleep(TICK_MS);
    }
    const measuredS = (performance.now() - measureStart) / 1000;
    // Let what is in flight finish (bounded).
    for (let i = 0; i < 200 && http.inFlight > 0; i++) await sleep(25);
    const lookupsStart = (await lookupsAtMeasureStart) ?? { hit: 0, miss: 0, cpuS: Number.NaN };
    const lookupsEnd = await cacheLookups();
    const hits = lookupsEnd.hit - lookupsStart.hit;
    const lookups = hits + lookupsEnd.miss - lookupsStart.miss;
    return {
      store: label,
      routeCacheMs,
      cacheHitFraction: routeCacheMs > 0 && lookups > 0 ? Math.round((hits / lookups) * 1000) / 1000 : null,
      routeRequests: routesSent - routesAtMeasureStart,
      routeRpsAchieved: Math.round(routeLatencies.length / measuredS),
      heartbeats: heartbeatsSent - heartbeatsAtMeasureStart,
      heartbeatRpsAchieved: Math.round(heartbeatLatencies.length / measuredS),
      errors: errors + http.inFlight,
      routeLatencyMs: summarize(routeLatencies),
      heartbeatLatencyMs: summarize(heartbeatLatencies),
      candidatesPerRoute: candidateSamples ? candidates / candidateSamples : 0,
      coordinatorCpuUsPerRoute: routeLatencies.length > 0 ? Math.round(((lookupsEnd.cpuS - lookupsStart.cpuS) * 1e6) / routeLatencies.length) : null,
    };
  } finally {
    caller?.close();
    await stop(coordinator);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function withRedis<T>(fn: (url: string) => Promise<T>): Promise<T> {
  if (!existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} is missing: install Debian's 'redis-server' package`);
  const port = await freePort();
  const redis = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    await waitForLine(redis, 'stdout', /Ready to accept connections/, 10_000);
    return await fn(`redis://127.0.0.1:${port}`);
  } finally {
    await stop(redis);
  }
}

/** The `slipstream bench coordinator` command. */
export const coordinatorBenchCommand: Command = flagCommand({
  path: 'bench coordinator',
  summary: SUMMARY,
  flags: FLAGS,
  async run({ values }, io) {
    const store = str(values, 'store')!;
    if (!/^(memory|redis|both|rediss?:\/\/\S+)$/.test(store)) throw new CliUsageError('--store', `--store: '${store}' is not memory, redis, both or a redis:// URL`);
    const cache = str(values, 'cache')!;
    if (!/^(off|on|both)$/.test(cache)) throw new CliUsageError('--cache', `--cache: '${cache}' is not off, on or both`);
    const o: BenchOptions = { relays: num(values, 'relays')!, heartbeatMs: num(values, 'heartbeat-ms')!, routeRps: num(values, 'route-rps')!, durationS: num(values, 'duration-s')!, warmupS: num(values, 'warmup-s')!, seed: num(values, 'seed')!, clientPrefixes: num(values, 'client-prefixes')! };
    const cacheMsList = cache === 'off' ? [0] : cache === 'on' ? [num(values, 'route-cache-ms')!] : [0, num(values, 'route-cache-ms')!];
    const results: CoordinatorBenchResult[] = [];
    for (const cacheMs of cacheMsList) {
      if (store === 'memory' || store === 'both') results.push(await benchOneStore('memory', 'memory', o, cacheMs));
      if (store === 'redis' || store === 'both') results.push(await withRedis((url) => benchOneStore('redis', url, o, cacheMs)));
      if (store.startsWith('redis://') || store.startsWith('rediss://')) results.push(await benchOneStore('redis', store, o, cacheMs));
    }
    if (bool(values, 'json')) {
      io.out(`${JSON.stringify({ relays: o.relays, heartbeatIntervalMs: o.heartbeatMs, routeRps: o.routeRps, durationS: o.durationS, clientPrefixes: o.clientPrefixes, results })}\n`);
      return 0;
    }
    const lines = [
      `coordinator at scale: ${o.relays} relays heartbeating every ${o.heartbeatMs} ms + ${o.routeRps} route requests/s from ${o.clientPrefixes} client /24s, ${o.durationS} s measured after ${o.warmupS} s warm-up (one coordinator process; client-side latency over keep-alive HTTP on 127.0.0.1)`,
      '',
      'store    route cache       routes/s  heartbeats/s  errors  route p50  route p90  route p99  route max  heartbeat p99  CPU/route',
      ...results.map((r) => `${r.store.padEnd(8)} ${(r.routeCacheMs === 0 ? 'off' : `${r.routeCacheMs} ms, ${Math.round((r.cacheHitFraction ?? 0) * 100)}% hit`).padEnd(16)} ${String(r.routeRpsAchieved).padStart(8)}  ${String(r.heartbeatRpsAchieved).padStart(12)}  ${String(r.errors).padStart(6)}  ${r.routeLatencyMs.p50.toFixed(2).padStart(6)} ms  ${r.routeLatencyMs.p90.toFixed(2).padStart(6)} ms  ${r.routeLatencyMs.p99.toFixed(2).padStart(6)} ms  ${r.routeLatencyMs.max.toFixed(1).padStart(6)} ms  ${r.heartbeatLatencyMs.p99.toFixed(2).padStart(10)} ms  ${String(r.coordinatorCpuUsPerRoute ?? '—').padStart(6)} µs`),
      '',
    ];
    io.out(lines.join('\n'));
    return 0;
  },
});
