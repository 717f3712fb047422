/**
 * The coordinator core in the simulator (fixed seeds): simulated relays register,
 * heartbeat and probe each other and the origin over virtual UDP; a simulated client
 * probes the relays; everything reports to the real CoordinatorCore through
 * CoordinatorSimDriver with proto's control messages. Each failure message names the
 * seed that reproduces it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeControl, type ControlMessage } from '../../proto/src/control.js';
import { Rng } from '../../proto/src/rng.js';
import type { Endpoint } from '../../proto/src/transport.js';
import { SimNetwork, type SimTimer, type SimUdpSocket } from '../src/core/index.js';
import type { LinkModelSpec } from '../src/core/link.js';
import { CoordinatorCore } from '../../coordinator/src/core/coordinator-core.js';
import { CoordinatorSimDriver } from '../src/drivers/coordinator-driver.js';

const COORDINATOR = '10.0.0.1';
const ORIGIN = '10.1.0.1';
const CLIENT = '10.3.0.1';
const CLIENT_PREFIX = '10.3.0.0/24';
const ORIGIN_NAME = 'game';
const PROBE_PORT = 4434;
const ECHO_PORT = 9000;
const PROBE_INTERVAL_MS = 200;
const REPORT_INTERVAL_MS = 2000;
const HEARTBEAT_INTERVAL_MS = 1000;
/** Probes older than this without an answer count as lost. */
const PROBE_TIMEOUT_MS = 1000;

function echo(socket: SimUdpSocket): void {
  socket.onReceive((bytes, from) => socket.send(bytes, from));
}

/** Probes targets, keeps per-target windows, and turns them into pathReport messages. */
class Prober {
  private seq = 0;
  private readonly sent = new Map<number, { target: string; atMs: number; rttMs?: number }>();

  constructor(
    private readonly net: SimNetwork,
    private readonly socket: SimUdpSocket,
  ) {
    socket.onReceive((bytes) => {
      if (bytes.length !== 4) return;
      const id = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
      const p = this.sent.get(id);
      if (p && p.rttMs === undefined) p.rttMs = this.net.now() - p.atMs;
    });
  }

  probe(target: string, to: Endpoint): void {
    const id = this.seq++;
    const buf = new Uint8Array(4);
    new DataView(buf.buffer).setUint32(0, id);
    this.sent.set(id, { target, atMs: this.net.now() });
    this.socket.send(buf, to);
  }

  /** One report per target over probes sent between 3 s and 1 s ago. */
  reports(reporterId: string): ControlMessage[] {
    const now = this.net.now();
    const windows = new Map<string, number[]>();
    const lost = new Map<string, number>();
    for (const [id, p] of this.sent) {
      if (p.atMs < now - 3 * PROBE_TIMEOUT_MS) {
        this.sent.delete(id);
        continue;
      }
      if (p.atMs >= now - PROBE_TIMEOUT_MS) continue;
      if (!windows.has(p.target)) windows.set(p.target, []);
      if (p.rttMs === undefined) lost.set(p.target, (lost.get(p.target) ?? 0) + 1);
      else windows.get(p.target)!.push(p.rttMs);
    }
    const out: ControlMessage[] = [];
    for (const [target, rtts] of windows) {
      const n = rtts.length + (lost.get(target) ?? 0);
      if (n === 0) continue;
      const rttMs = rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : 0;
      let jitter = 0;
      for (let i = 1; i < rtts.length; i++) jitter += Math.abs(rtts[i]! - rtts[i - 1]!);
      out.push({ type: 'pathReport', reporterId, targetId: target, rttMs, jitterMs: rtts.length > 1 ? jitter / (rtts.length - 1) : 0, lossFraction: (lost.get(target) ?? 0) / n, samples: n });
    }
    return out;
  }
}

interface RelaySpec {
  id: string;
  address: string;
}

/** A simulated relay: registers, heartbeats, probes the mesh and the origin, reports. */
class SimRelay {
  private readonly agent: SimUdpSocket;
  private readonly echoSocket: SimUdpSocket;
  private readonly prober: Prober;
  private readonly timers: SimTimer[] = [];

  constructor(
    net: SimNetwork,
    readonly spec: RelaySpec,
    peers: () => RelaySpec[],
    coordinator: Endpoint,
  ) {
    const host = net.host(spec.address) ?? net.addHost(spec.address);
    this.agent = host.bind();
    this.echoSocket = host.bind(PROBE_PORT);
    echo(this.echoSocket);
    this.prober = new Prober(net, this.agent);
    const send = (m: ControlMessage): void => this.agent.send(encodeControl(m), coordinator);
    send({ type: 'relayRegister', relayId: spec.id, region: 'sim', latitude: 0, longitude: 0, tunnelAddress: `${spec.address}:4433`, probeAddress: `${spec.address}:${PROBE_PORT}`, capacitySessions: 1000 });
    const every = (intervalMs: number, fn: () => void): void => {
      const timer = net.createTimer((now) => {
        fn();
        timer.set(now + intervalMs);
      });
      timer.set(net.now() + intervalMs);
      this.timers.push(timer);
    };
    every(HEARTBEAT_INTERVAL_MS, () => send({ type: 'relayHeartbeat', relayId: spec.id, sessions: 0, packetsPerSecond: 0, cpuFraction: 0.1, draining: false }));
    every(PROBE_INTERVAL_MS, () => {
      this.prober.probe(ORIGIN_NAME, { address: ORIGIN, port: ECHO_PORT });
      for (const peer of peers()) if (peer.id !== spec.id) this.prober.probe(peer.id, { address: peer.address, port: PROBE_PORT });
    });
    every(REPORT_INTERVAL_MS, () => {
      for (const m of this.prober.reports(spec.id)) send(m);
    });
  }

  /** The relay dies: no more heartbeats, probes or echoes. */
  kill(): void {
    for (const t of this.timers) t.clear();
    this.agent.close();
    this.echoSocket.close();
  }
}

/** One-way delays of a topology, ms. */
interface Topology {
  clientMs: number[];
  originMs: number[];
  meshMs: number[][];
  /** Per-relay loss on the relay↔origin link (each direction). */
  originLoss?: number[];
}

interface World {
  net: SimNetwork;
  core: CoordinatorCore;
  relays: SimRelay[];
}

const link = (delayMs: number, loss = 0): LinkModelSpec => ({ delayMs, jitterMs: 0.5, keepOrder: true, ...(loss > 0 ? { loss: { model: 'bernoulli', p: loss } } : {}) });

function buildWorld(seed: number, topo: Topology, leaseMs = 3000): World {
  const net = new SimNetwork({ seed, defaultLink: { delayMs: 5 } });
  const core = new CoordinatorCore({ leaseMs, origins: [{ name: ORIGIN_NAME }] });
  const coordinatorSocket = net.addHost(COORDINATOR).bind(7000);
  new CoordinatorSimDriver(core, coordinatorSocket, net, (cb) => net.createTimer(cb));
  echo(net.addHost(ORIGIN).bind(ECHO_PORT));
  const specs: RelaySpec[] = topo.clientMs.map((_, i) => ({ id: `relay-${i}`, address: `10.2.0.${i + 1}` }));
  net.addHost(CLIENT);
  for (let i = 0; i < specs.length; i++) {
    net.addHost(specs[i]!.address);
    net.setLinkBoth(CLIENT, specs[i]!.address, link(topo.clientMs[i]!));
    net.setLinkBoth(specs[i]!.address, ORIGIN, link(topo.originMs[i]!, topo.originLoss?.[i] ?? 0));
    for (let j = 0; j < i; j++) net.setLinkBoth(specs[i]!.address, specs[j]!.address, link(topo.meshMs[i]![j]!));
  }
  const alive = new Set(specs.map((s) => s.id));
  const live = (): RelaySpec[] => specs.filter((s) => alive.has(s.id));
  const coordinator = coordinatorSocket.localAddress();
  const relays = specs.map((s) => new SimRelay(net, s, live, coordinator));
  startClient(net, live, coordinator);
  return { net, core, relays };
}

/** A simulated SDK client on the client host (added before the links): probes every relay and reports. */
function startClient(net: SimNetwork, relays: () => RelaySpec[], coordinator: Endpoint): void {
  const host = net.host(CLIENT)!;
  const socket = host.bind();
  const prober = new Prober(net, socket);
  const probeTimer = net.createTimer((now) => {
    for (const r of relays()) prober.probe(r.id, { address: r.address, port: PROBE_PORT });
    probeTimer.set(now + PROBE_INTERVAL_MS);
  });
  probeTimer.set(PROBE_INTERVAL_MS);
  const reportTimer = net.createTimer((now) => {
    for (const m of prober.reports('client-1')) socket.send(encodeControl(m), coordinator);
    reportTimer.set(now + REPORT_INTERVAL_MS);
  });
  reportTimer.set(REPORT_INTERVAL_MS);
}

/** Every route's true RTT: direct i, and two-hop (e, x). */
function truePaths(t: Topology): { key: string; rttMs: number; entry: number }[] {
  const out: { key: string; rttMs: number; entry: number }[] = [];
  const n = t.clientMs.length;
  for (let i = 0; i < n; i++) out.push({ key: `relay-${i}`, rttMs: 2 * (t.clientMs[i]! + t.originMs[i]!), entry: i });
  for (let e = 0; e < n; e++) {
    for (let x = 0; x < n; x++) {
      if (e === x) continue;
      const m = e > x ? t.meshMs[e]![x]! : t.meshMs[x]![e]!;
      out.push({ key: `relay-${e}>relay-${x}`, rttMs: 2 * (t.clientMs[e]! + m + t.originMs[x]!), entry: e });
    }
  }
  return out.sort((a, b) => a.rttMs - b.rttMs);
}

/** Margin between the best path and the next (and, for a two-hop best, over its entry's direct path), ms. */
const CLEAR_WIN_MS = 8;

function generateTopology(rng: Rng): Topology {
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const n = 3 + rng.nextInt(5);
    const draw = (lo: number, hi: number): number => Math.round(lo + rng.nextFloat() * (hi - lo));
    const topo: Topology = {
      clientMs: Array.from({ length: n }, () => draw(4, 60)),
      originMs: Array.from({ length: n }, () => draw(2, 60)),
      meshMs: Array.from({ length: n }, (_, i) => Array.from({ length: i }, () => draw(3, 45))),
    };
    const paths = truePaths(topo);
    const best = paths[0]!;
    if (paths[1]!.rttMs - best.rttMs < CLEAR_WIN_MS) continue;
    if (best.key.includes('>')) {
      const direct = paths.find((p) => p.key === `relay-${best.entry}`)!;
      if (direct.rttMs - best.rttMs < CLEAR_WIN_MS) continue;
    }
    return topo;
  }
  throw new Error('could not generate a topology with a clear winner');
}

function bestKey(core: CoordinatorCore, nowMs: number): string | undefined {
  const c = core.route(nowMs, { origin: ORIGIN_NAME, client: { prefix: CLIENT_PREFIX } })?.candidates[0];
  return c ? (c.exitRelayId ? `${c.relayId}>${c.exitRelayId}` : c.relayId) : undefined;
}

describe('coordinator in the simulator', () => {
  test('ranks the truly fastest whole path first in every generated topology (seeds 1–40)', () => {
    let twoHopWins = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const topo = generateTopology(new Rng(seed));
      const world = buildWorld(seed, topo);
      world.net.runUntil(12_000);
      const truth = truePaths(topo)[0]!;
      const got = bestKey(world.core, world.net.now());
      assert.equal(got, truth.key, `seed ${seed}: expected ${truth.key} (${truth.rttMs} ms) first; topology ${JSON.stringify(topo)}; reproduce with seed ${seed}`);
      const first = world.core.route(world.net.now(), { origin: ORIGIN_NAME, client: { prefix: CLIENT_PREFIX } })!.candidates[0]!;
      assert.equal(first.legs.clientToRelay.source, 'measured', `seed ${seed}`);
      assert.ok(Math.abs(first.rttMs - truth.rttMs) < 3, `seed ${seed}: estimated ${first.rttMs} ms vs true ${truth.rttMs} ms`);
      if (truth.key.includes('>')) twoHopWins++;
    }
    assert.ok(twoHopWins >= 3, `the generated set should include two-hop winners; got ${twoHopWins}`);
  });

  test('a relay killed mid-run disappears from answers within its lease (seed 7)', () => {
    const leaseMs = 3000;
    const topo: Topology = { clientMs: [10, 20, 30, 40], originMs: [10, 15, 20, 25], meshMs: [[], [30], [30, 30], [30, 30, 30]] };
    const world = buildWorld(7, topo, leaseMs);
    world.net.runUntil(10_000);
    const listed = (): boolean => world.core.route(world.net.now(), { origin: ORIGIN_NAME, client: { prefix: CLIENT_PREFIX }, limit: 64 })!.candidates.some((c) => c.relayId === 'relay-0' || c.exitRelayId === 'relay-0');
    assert.equal(bestKey(world.core, world.net.now()), 'relay-0', 'seed 7: relay-0 is fastest before the kill');
    const killAtMs = 10_500;
    world.net.runUntil(killAtMs);
    world.relays[0]!.kill();
    let goneAtMs: number | undefined;
    for (let t = killAtMs; t <= killAtMs + leaseMs + 2000; t += 50) {
      world.net.runUntil(t);
      const present = listed();
      if (!present && goneAtMs === undefined) goneAtMs = t;
      if (goneAtMs !== undefined) assert.equal(present, false, `seed 7: relay-0 came back at ${t} ms`);
    }
    assert.ok(goneAtMs !== undefined && goneAtMs - killAtMs <= leaseMs, `seed 7: relay-0 was still listed ${goneAtMs === undefined ? 'at the end' : `${goneAtMs - killAtMs} ms after the kill`}; lease ${leaseMs} ms`);
    assert.equal(bestKey(world.core, world.net.now()), 'relay-1', 'seed 7: the next fastest takes over');
    const excluded = world.core.route(world.net.now(), { origin: ORIGIN_NAME, client: {} })!.excluded;
    assert.match(excluded.find((e) => e.relayId === 'relay-0')!.reason, /no heartbeat/);
  });

  test('a lossy relay ranks below a slightly slower clean one (seed 11)', () => {
    const base: Topology = { clientMs: [10, 12], originMs: [20, 21], meshMs: [[], [250]] };
    const clean = buildWorld(11, base);
    clean.net.runUntil(12_000);
    assert.equal(bestKey(clean.core, clean.net.now()), 'relay-0', 'seed 11: without loss the faster relay wins');
    const lossy = buildWorld(11, { ...base, originLoss: [0.03, 0] });
    lossy.net.runUntil(12_000);
    const ranked = lossy.core.route(lossy.net.now(), { origin: ORIGIN_NAME, client: { prefix: CLIENT_PREFIX } })!.candidates;
    assert.deepEqual(ranked.map((c) => c.relayId), ['relay-1', 'relay-0'], `seed 11: 3 % loss each way puts the faster relay second:\n${ranked.map((c) => c.reason).join('\n')}`);
    assert.ok(ranked[1]!.lossFraction > 0.02, `seed 11: measured loss ${ranked[1]!.lossFraction}`);
    assert.match(ranked[1]!.reason, /mostly more loss/);
  });
});
