/**
 * Runs a checked {@link Scenario} on the virtual network: the real coordinator, relay
 * and SDK cores ({@link SimDeployment}), every player sending its traffic both straight
 * to its origin and through Slipstream, the timeline's events at their virtual times.
 * The result is the QoE report of `slipstream sim run` — a pure function of the
 * scenario and the seed (nothing here reads a clock), so the same seed gives the same
 * report byte for byte, in any process.
 *
 * Host addresses: coordinator 10.9.0.1, origins 10.8.0.N, relays 10.1.0.N, players
 * 10.64+.x.y with each player group starting a fresh /24 (the coordinator files
 * players' path reports by /24 prefix, so groups in different places do not share).
 */
import type { LinkDirection, LinkModelSpec } from '../core/link.js';
import { SimNetwork } from '../core/network.js';
import { runUntilBounded, SIM_EVENTS_PER_SECOND_MAX_DEFAULT } from '../core/event-budget.js';
import { PATH_DIRECT, PATH_TUNNEL, SimDeployment, type DeploymentClientSpec } from '../deployment/deployment.js';
import { mergeLinkModel } from './load.js';
import { mergeSamples, pathQoe, pathSeries, roundFraction, samplePath, type PathQoe, type PathSamples } from './qoe.js';
import { SCENARIO_RELAY_FEC_DEFAULT, type AccessHop, type DirectedPair, type Scenario, type ScenarioEvent } from './schema.js';

/** Virtual time after the end during which answers in flight still count, ms. */
export const SCENARIO_DRAIN_MS = 2000;
/** Time-series interval of the per-player series, ms. */
export const SERIES_INTERVAL_MS = 1000;
/** How often relays' session counts are sampled against their limits, ms. */
export const RELAY_SAMPLE_MS = 100;

/** Slipstream's figures: the path's, plus relay switches and FEC overhead. */
export interface SlipstreamQoe extends PathQoe {
  /** Changes of relay after the first pick (the SDK's count), summed over players. */
  readonly switches: number;
  /** Extra data bytes on the players' tunnel links (FEC copies and parity), as a fraction of the game's own bytes. */
  readonly fecOverhead: number;
}

/** One player's figures and time series. */
export interface ClientQoe {
  readonly name: string;
  readonly origin: string;
  readonly direct: PathQoe;
  readonly slipstream: SlipstreamQoe & { readonly relay: string | null };
  /** Per {@link SERIES_INTERVAL_MS} of send time from 0: loss and median round trip per path, and the relay in use at each interval's end. */
  readonly series: {
    readonly intervalMs: number;
    readonly direct: { readonly loss: (number | null)[]; readonly latencyMs: (number | null)[] };
    readonly slipstream: { readonly loss: (number | null)[]; readonly latencyMs: (number | null)[]; readonly relay: (string | null)[] };
  };
}

/** The report of `slipstream sim run --json` (see sim/README.md for every field). */
export interface QoeReport {
  readonly scenario: string;
  readonly seed: number;
  readonly durationMs: number;
  readonly players: number;
  readonly direct: PathQoe;
  readonly slipstream: SlipstreamQoe;
  readonly clients: readonly ClientQoe[];
}

/** Peak load of a relay against its limits (the swarm's invariant). */
export interface RelayPeak {
  readonly relay: string;
  readonly sessionsMax: number;
  peakSessions: number;
  /** Per-source table entries at most (bounded by the core at 2 × sessionsMax + 1024). */
  peakSources: number;
}

/** Options of a {@link ScenarioRun}. */
export interface ScenarioRunOptions {
  /** `false` skips the direct comparison traffic (the swarm checks Slipstream only). Default true. */
  readonly directPath?: boolean;
  /** Livelock guard: events one simulated second may take. Default {@link SIM_EVENTS_PER_SECOND_MAX_DEFAULT}. */
  readonly maxEventsPerSecond?: number;
  /** The command that replays this run, for failure messages. Default `slipstream sim run FILE --seed S`. */
  readonly replay?: string;
}

/** Host name → address, in the layout of the module comment. */
export function scenarioAddresses(s: Scenario): Map<string, string> {
  const out = new Map<string, string>();
  out.set('coordinator', '10.9.0.1');
  s.origins.forEach((o, i) => out.set(o.name, `10.8.${i >> 8}.${(i & 255) + 1}`));
  s.relays.forEach((r, i) => out.set(r.name, `10.1.${i >> 8}.${(i & 255) + 1}`));
  let block = 0;
  for (const g of s.clients) {
    g.members.forEach((m, k) => {
      if (k > 0 && k % 250 === 0) block++;
      out.set(m, `10.${64 + (block >> 8)}.${block & 255}.${(k % 250) + 1}`);
    });
    block++;
  }
  return out;
}

/** A scenario being run; see the module comment. */
export class ScenarioRun {
  readonly network: SimNetwork;
  readonly deployment: SimDeployment;
  /** Host name → address. */
  readonly addresses: Map<string, string>;
  /** Per relay, its peak load. */
  readonly relayPeaks: RelayPeak[];
  /** Relay in use per player per series interval (sampled at each interval's end). */
  private readonly relaySeries: (string | null)[][];
  /** Each player's measurement window start, ms. */
  private readonly windowStartMs: number[] = [];
  private readonly options: ScenarioRunOptions;

  /**
   * Builds the network and deployment and schedules everything; {@link run} runs it.
   * @param seed the run's seed (the network's links and the fleet's keys and tickets)
   * @param options see {@link ScenarioRunOptions}
   */
  constructor(
    readonly scenario: Scenario,
    readonly seed: number,
    options: ScenarioRunOptions = {},
  ) {
    this.options = options;
    const s = scenario;
    const addresses = (this.addresses = scenarioAddresses(s));
    const at = (name: string): string => addresses.get(name)!;
    const net = (this.network = new SimNetwork({ seed, defaultLink: s.defaultLink }));
    const clients: DeploymentClientSpec[] = [];
    for (const g of s.clients) {
      for (const m of g.members) {
        clients.push({ id: m, address: at(m), origin: g.origin, traffic: g.traffic });
        this.windowStartMs.push(g.startMs + s.warmupMs);
      }
    }
    this.deployment = new SimDeployment({
      seed,
      network: net,
      coordinatorAddress: at('coordinator'),
      origins: s.origins.map((o) => ({ name: o.name, address: at(o.name) })),
      relays: s.relays.map((r) => ({ id: r.name, region: r.region ?? `region-${r.name}`, address: at(r.name), fec: r.fec ?? SCENARIO_RELAY_FEC_DEFAULT, ...(r.limits ? { limits: r.limits } : {}) })),
      clients,
      directPath: options.directPath,
    });
    for (const l of s.links) for (const pair of l.pairs) this.patch(pair, l.model);
    for (const a of s.access) net.setAccessLink(at(a.hop[0]), a.hop[1], a.model);
    this.relayPeaks = [...this.deployment.relays.values()].map((r) => ({ relay: r.spec.id, sessionsMax: r.config.limits.sessionsMax, peakSessions: 0, peakSources: 0 }));
    this.relaySeries = clients.map(() => []);

    this.deployment.startRelays();
    let index = 0;
    for (const g of s.clients) {
      for (let k = 0; k < g.members.length; k++) {
        const i = index++;
        net.schedule(g.startMs, () => this.deployment.startClient(i), { what: 'player start', host: at(g.members[k]!) });
      }
    }
    for (const e of s.events) net.schedule(e.atMs, () => this.apply(e), { what: `scenario event '${e.kind}'` });
    net.schedule(s.durationMs, () => this.deployment.clients.forEach((_, i) => this.deployment.stopTraffic(i)), { what: 'end of traffic' });
    const sampler = net.createTimer((now) => {
      this.sampleRelays();
      if (now > 0 && now % SERIES_INTERVAL_MS === 0 && now <= s.durationMs) {
        this.deployment.clients.forEach((c, i) => this.relaySeries[i]!.push(c.tunnel?.core.current ?? null));
      }
      if (now < s.durationMs + SCENARIO_DRAIN_MS) sampler.set(now + RELAY_SAMPLE_MS);
    }, { what: 'relay load sampler' });
    sampler.set(0);
  }

  /**
   * Runs to the end (the duration plus {@link SCENARIO_DRAIN_MS}); returns the events the
   * queue ran. Throws {@link SimLivelockError} (naming the event that repeats, its host,
   * the scenario, the seed and the replay command) when one simulated second takes more
   * than {@link ScenarioRunOptions.maxEventsPerSecond} events, instead of hanging.
   */
  run(): number {
    const names = new Map([...this.addresses].map(([name, address]) => [address, name]));
    const hostName = (address: string): string => (names.has(address) ? `${names.get(address)!} (${address})` : address);
    const replay = this.options.replay ?? `slipstream sim run ${this.scenario.file} --seed ${this.seed}`;
    return runUntilBounded(this.network.queue, this.scenario.durationMs + SCENARIO_DRAIN_MS, this.options.maxEventsPerSecond ?? SIM_EVENTS_PER_SECOND_MAX_DEFAULT, hostName, { run: `scenario ${this.scenario.name}, seed ${this.seed}`, replay });
  }

  /** Merges `model` into one direction's model in force. */
  private patch(pair: DirectedPair, model: LinkModelSpec): void {
    const from = this.addresses.get(pair[0])!;
    const to = this.addresses.get(pair[1])!;
    this.network.setLink(from, to, mergeLinkModel(this.network.link(from, to).model, model));
  }

  /** The access link of `hop` (the loader checked that it exists). */
  private accessLink(hop: AccessHop): LinkDirection {
    return this.network.accessLink(this.addresses.get(hop[0])!, hop[1])!;
  }

  private apply(e: ScenarioEvent): void {
    const net = this.network;
    const addr = (name: string): string => this.addresses.get(name)!;
    switch (e.kind) {
      case 'set': {
        const before = e.pairs.map((p) => net.link(addr(p[0]), addr(p[1])).model);
        const accessBefore = e.access.map((hop) => this.accessLink(hop).model);
        for (const p of e.pairs) this.patch(p, e.set);
        for (const hop of e.access) this.accessLink(hop).setModel(mergeLinkModel(this.accessLink(hop).model, e.set));
        if (e.forMs !== undefined) {
          net.schedule(e.atMs + e.forMs, () => {
            e.pairs.forEach((p, k) => net.setLink(addr(p[0]), addr(p[1]), before[k]!));
            e.access.forEach((hop, k) => this.accessLink(hop).setModel(accessBefore[k]!));
          });
        }
        return;
      }
      case 'blackout': {
        // Windows that ended are dropped, so a long timeline does not grow the list.
        const withWindow = (model: LinkModelSpec): LinkModelSpec => ({ ...model, blackouts: [...(model.blackouts ?? []).filter((w) => w.endMs > e.atMs), { startMs: e.atMs, endMs: e.atMs + e.durationMs }] });
        for (const p of e.pairs) net.setLink(addr(p[0]), addr(p[1]), withWindow(net.link(addr(p[0]), addr(p[1])).model));
        for (const hop of e.access) this.accessLink(hop).setModel(withWindow(this.accessLink(hop).model));
        return;
      }
      case 'crash':
        this.deployment.crashRelay(e.relay);
        return;
      case 'restart':
        this.deployment.startRelay(e.relay);
        return;
      case 'partition': {
        const cut = net.partition(e.a.map(addr), e.b.map(addr));
        if (e.forMs !== undefined) net.schedule(e.atMs + e.forMs, () => net.heal(cut));
        return;
      }
    }
  }

  private sampleRelays(): void {
    let i = 0;
    for (const r of this.deployment.relays.values()) {
      const peak = this.relayPeaks[i++]!;
      const core = r.relay?.core;
      if (core === undefined) continue;
      peak.peakSessions = Math.max(peak.peakSessions, core.tunnelSessionCount);
      peak.peakSources = Math.max(peak.peakSources, core.sourceCount);
    }
  }

  /** Each player's raw samples per path over its window: [direct, tunnel]. */
  samples(): [PathSamples, PathSamples][] {
    const endMs = this.scenario.durationMs;
    return this.deployment.clients.map((c, i) => [samplePath(c.logs[PATH_DIRECT], this.windowStartMs[i]!, endMs), samplePath(c.logs[PATH_TUNNEL], this.windowStartMs[i]!, endMs)]);
  }

  /** The QoE report (call after {@link run}). */
  report(): QoeReport {
    const s = this.scenario;
    const samples = this.samples();
    const clients: ClientQoe[] = this.deployment.clients.map((c, i) => {
      const stats = c.tunnel?.core.stats();
      const tunnelLog = c.logs[PATH_TUNNEL];
      const appBytes = tunnelLog.bytesUp + tunnelLog.bytesDown;
      const overhead = appBytes === 0 ? 0 : (c.wire.dataBytesUp + c.wire.dataBytesDown) / appBytes - 1;
      const series = pathSeries(c.logs[PATH_DIRECT], SERIES_INTERVAL_MS, s.durationMs);
      const slipSeries = pathSeries(tunnelLog, SERIES_INTERVAL_MS, s.durationMs);
      return {
        name: c.spec.id,
        origin: c.spec.origin,
        direct: pathQoe(samples[i]![0]),
        slipstream: { ...pathQoe(samples[i]![1]), switches: stats?.switches ?? 0, fecOverhead: roundFraction(overhead), relay: c.tunnel?.core.current ?? null },
        series: { intervalMs: SERIES_INTERVAL_MS, direct: series, slipstream: { ...slipSeries, relay: this.relaySeries[i]! } },
      };
    });
    let wire = 0;
    let app = 0;
    for (const c of this.deployment.clients) {
      wire += c.wire.dataBytesUp + c.wire.dataBytesDown;
      app += c.logs[PATH_TUNNEL].bytesUp + c.logs[PATH_TUNNEL].bytesDown;
    }
    return {
      scenario: s.name,
      seed: this.seed,
      durationMs: s.durationMs,
      players: clients.length,
      direct: pathQoe(mergeSamples(samples.map((x) => x[0]))),
      slipstream: {
        ...pathQoe(mergeSamples(samples.map((x) => x[1]))),
        switches: clients.reduce((sum, c) => sum + c.slipstream.switches, 0),
        fecOverhead: roundFraction(app === 0 ? 0 : wire / app - 1),
      },
      clients,
    };
  }
}

/** Runs `scenario` with `seed` (default: the file's) and returns the report and the events the queue ran. */
export function runScenario(scenario: Scenario, seed = scenario.seed): { report: QoeReport; events: number; run: ScenarioRun } {
  const run = new ScenarioRun(scenario, seed);
  const events = run.run();
  return { report: run.report(), events, run };
}
