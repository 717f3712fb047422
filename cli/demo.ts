/**
 * `slipstream demo`: the whole system on embedded defaults, in the simulator's virtual
 * time, in a second or two, with nothing to install beyond `npm ci`. A coordinator,
 * three relays in differently distant regions, an echo game server and a player whose
 * last mile loses packets all run the real code (coordinator, relay and SDK cores):
 * the relays register and measure their way to the game server, the player's SDK
 * probes them and picks the fastest whole path, FEC recovers the last mile's loss,
 * then the chosen relay is killed and the player fails over to the warm backup. Every
 * datagram also goes straight to the game server over the direct route (a
 * {@link DIRECT_DELAY_MS} ms one-way internet path behind the same lossy last mile), so
 * the report has both paths side by side, second by second ({@link DemoReport.qoe}).
 * It ends with a summary (`--json` for machines); `--html FILE` also writes the report
 * of `slipstream sim run --html` (sim/src/report/html.ts) for the demo's run.
 */
import { writeFileSync } from 'node:fs';
import { PathLog } from '../sim/src/deployment/deployment.js';
import { SdkScenario, type ScenarioRelay } from '../sim/src/deployment/scenario.js';
import { pathQoe, pathSeries, roundFraction, samplePath, type PathQoe } from '../sim/src/scenario/qoe.js';
import type { QoeReport } from '../sim/src/scenario/run.js';
import { renderHtmlReport } from '../sim/src/report/html.js';
import type { TimelineMark } from '../sim/src/report/timeline.js';
import { verdict } from '../sim/src/report/verdict.js';
import { cannotWrite, htmlTargetWritable } from '../sim/src/cli/run-command.js';
import type { Command } from '../kit/command.js';
import { bool, formatHelp, num, parseFlags, str, type FlagSpec } from '../kit/flags.js';

const flags: Record<string, FlagSpec> = {
  seed: { type: 'integer', min: 0, max: 0xffff_ffff, default: 1, description: 'Seed of every simulated link and key' },
  seconds: { type: 'integer', min: 10, max: 3600, default: 30, description: 'Simulated seconds of game traffic (the relay dies at 60 % of them)' },
  loss: { type: 'number', min: 0, max: 0.5, default: 0.05, description: "Loss of the player's last mile, each way (fraction)" },
  json: { type: 'boolean', description: 'Print one JSON object instead of the narrative' },
  html: { type: 'string', valueName: 'FILE', description: 'Also write the run as one self-contained HTML page with plots (RTT and loss over time, direct vs Slipstream, the relay in use, the kill) to FILE' },
};

/** One-way delay of the demo's direct route, player → game server, ms (behind the same last mile as the relays). */
export const DIRECT_DELAY_MS = 30;
/** Length of one interval of the per-second series, ms. */
const SERIES_INTERVAL_MS = 1000;
/** Traffic sent in the first this many ms is left out of the figures (the SDK is still picking), ms. */
const WARMUP_MS = 1000;

/** The demo's relays: one-way delays in ms. The nearest relay is not the fastest whole path. */
const RELAYS: readonly (ScenarioRelay & { readonly region: string })[] = [
  { id: 'fra-1', region: 'Frankfurt', clientDelayMs: 8, originDelayMs: 45, clientLink: { jitterMs: 2 } },
  { id: 'ams-1', region: 'Amsterdam', clientDelayMs: 14, originDelayMs: 6, clientLink: { jitterMs: 2 } },
  { id: 'lon-1', region: 'London', clientDelayMs: 22, originDelayMs: 10, clientLink: { jitterMs: 2 } },
];

const PACKET_RATE_PPS = 60;

/** What `slipstream demo --json` prints. */
export interface DemoReport {
  seed: number;
  seconds: number;
  packetRatePps: number;
  relays: { id: string; region: string; clientRttMs: number; wholePathRttMs: number }[];
  /** The relay the SDK picked first. */
  chosenRelay: string | undefined;
  /** The relay with the lowest whole-path RTT, from the topology. */
  expectedBestRelay: string;
  /** Time from the client's start to its first pick, ms. */
  pickMs: number | undefined;
  failover: { fromRelay: string | undefined; toRelay: string | undefined; gapMs: number; killedAtMs: number };
  /** Loss fractions: `raw` on the wire (before FEC), `afterFec` what the game saw (mean of both directions). */
  loss: { raw: number; afterFec: number; upstream: number; downstream: number };
  fec: { relayMode: string | undefined; upstreamScheme: string; recovered: number };
  packets: { sent: number; echoed: number };
  /**
   * The run as `slipstream sim run --json` reports a scenario (sim/README.md): one
   * player, the direct route and Slipstream side by side (loss both ways, round trip,
   * jitter, longest gap over the traffic after its first second), and per-second series
   * from the start of traffic (loss, median round trip, relay in use).
   */
  qoe: QoeReport;
  /** The kill as the reports mark it (times from the start of traffic). */
  marks: TimelineMark[];
}

/** `log` with every time moved back by `t0Ms` (the reports count from the start of traffic). */
function shifted(log: PathLog, t0Ms: number): PathLog {
  const out = new PathLog();
  for (const t of log.sentAtMs) out.sentAtMs.push(t - t0Ms);
  for (const t of log.originAtMs) out.originAtMs.push(t - t0Ms);
  for (const t of log.echoSentAtMs) out.echoSentAtMs.push(t - t0Ms);
  for (const t of log.clientAtMs) out.clientAtMs.push(t - t0Ms);
  out.echoOf.push(...log.echoOf);
  out.sizeBytes.push(...log.sizeBytes);
  out.originVia.push(...log.originVia);
  out.bytesUp = log.bytesUp;
  out.bytesDown = log.bytesDown;
  return out;
}

/** Runs the demo; deterministic for a seed. */
export function runDemo(seed: number, seconds: number, lastMileLoss: number): DemoReport {
  const loss = lastMileLoss > 0 ? { loss: { model: 'bernoulli' as const, p: lastMileLoss } } : {};
  const scenario = new SdkScenario({ seed, relays: RELAYS.map((r) => ({ ...r, clientLink: { ...r.clientLink, ...loss } })), direct: { delayMs: DIRECT_DELAY_MS, link: { jitterMs: 2, ...loss } } });
  const startMs = scenario.nowMs;
  scenario.startTraffic(PACKET_RATE_PPS);
  // The relay in use at the end of each second of traffic (the HTML report's band).
  const relaySeries: (string | null)[] = [];
  const sampler = scenario.network.createTimer((now) => {
    relaySeries.push(scenario.client.core.current ?? null);
    if (now + SERIES_INTERVAL_MS <= startMs + seconds * 1000) sampler.set(now + SERIES_INTERVAL_MS);
  });
  sampler.set(startMs + SERIES_INTERVAL_MS);
  const killAtMs = startMs + Math.round(seconds * 600);
  scenario.runUntil(killAtMs);
  const firstPath = scenario.client.events.find((e) => e.type === 'path');
  const chosenRelay = firstPath?.type === 'path' ? firstPath.info.relayId : undefined;
  const fromRelay = scenario.client.core.current;
  if (fromRelay !== undefined) scenario.killRelay(fromRelay);
  const endMs = startMs + seconds * 1000;
  scenario.runUntil(endMs + 1000);
  scenario.stopTraffic();
  const stats = scenario.client.core.stats();
  const delivered = scenario.deliveredLoss(startMs + 1000, endMs);
  const qoe = demoQoe(scenario, seed, seconds, startMs, relaySeries, stats.switches);
  const marks: TimelineMark[] = fromRelay === undefined ? [] : [{ atMs: killAtMs - startMs, durationMs: undefined, kind: 'crash', relay: fromRelay, label: `${fromRelay} killed` }];
  const best = [...RELAYS].sort((a, b) => a.clientDelayMs + a.originDelayMs - (b.clientDelayMs + b.originDelayMs))[0]!;
  return {
    seed,
    seconds,
    packetRatePps: PACKET_RATE_PPS,
    relays: RELAYS.map((r) => ({ id: r.id, region: r.region, clientRttMs: 2 * r.clientDelayMs, wholePathRttMs: 2 * (r.clientDelayMs + r.originDelayMs) })),
    chosenRelay,
    expectedBestRelay: best.id,
    pickMs: firstPath ? firstPath.atMs - startMs : undefined,
    failover: { fromRelay, toRelay: scenario.client.core.current, gapMs: scenario.longestGapMs(killAtMs - 1000, killAtMs + 5000), killedAtMs: killAtMs - startMs },
    loss: { raw: stats.lossBeforeFec, afterFec: (delivered.upstream + delivered.downstream) / 2, upstream: delivered.upstream, downstream: delivered.downstream },
    fec: { relayMode: stats.fecMode, upstreamScheme: stats.upstreamScheme, recovered: stats.recovered },
    packets: { sent: scenario.traffic.sentAtMs.length, echoed: scenario.traffic.clientSeen.size },
    qoe,
    marks,
  };
}

/** The demo's {@link QoeReport}: both paths' figures over `[warm-up, end]` of traffic and their per-second series. */
function demoQoe(scenario: SdkScenario, seed: number, seconds: number, startMs: number, relaySeries: (string | null)[], switches: number): QoeReport {
  const paths = scenario.paths!;
  const direct = shifted(paths.direct, startMs);
  const tunnel = shifted(paths.tunnel, startMs);
  const durationMs = seconds * 1000;
  const directQoe: PathQoe = pathQoe(samplePath(direct, WARMUP_MS, durationMs));
  // FEC overhead both ways: redundancy (copies, parity, repairs) over the game's own bytes, the client's upstream and every relay's downstream.
  const up = scenario.client.core.stats().upstreamFecBytes;
  let data = up.data;
  let redundant = up.redundant;
  for (const r of scenario.relays.values()) {
    data += r.relay.core.fecSentBytes.data;
    redundant += r.relay.core.fecSentBytes.redundant;
  }
  const slip = { ...pathQoe(samplePath(tunnel, WARMUP_MS, durationMs)), switches, fecOverhead: roundFraction(data === 0 ? 0 : redundant / data) };
  return {
    scenario: 'demo',
    seed,
    durationMs,
    players: 1,
    direct: directQoe,
    slipstream: slip,
    clients: [
      {
        name: 'player',
        origin: 'game',
        direct: directQoe,
        slipstream: { ...slip, relay: scenario.client.core.current ?? null },
        series: { intervalMs: SERIES_INTERVAL_MS, direct: pathSeries(direct, SERIES_INTERVAL_MS, durationMs), slipstream: { ...pathSeries(tunnel, SERIES_INTERVAL_MS, durationMs), relay: relaySeries } },
      },
    ],
  };
}

const percent = (fraction: number): string => `${(fraction * 100).toFixed(2)} %`;
const msText = (v: number | null): string => (v === null ? '—' : `${v.toFixed(1)} ms`);

/** The `demo` command. */
export const demoCommand: Command = {
  name: 'demo',
  summary: 'Run a coordinator, three relays, a game server and a player in the simulator: selection, FEC, a relay killed and the failover.',
  async run(argv, io) {
    const { values } = parseFlags('demo', argv, flags);
    if (bool(values, 'help')) {
      io.out(formatHelp('slipstream demo [flags]', demoCommand.summary, flags));
      return 0;
    }
    const html = str(values, 'html');
    if (!htmlTargetWritable(html, io)) return 1;
    const report = runDemo(num(values, 'seed')!, num(values, 'seconds')!, num(values, 'loss')!);
    if (html !== undefined) {
      try {
        writeFileSync(html, renderHtmlReport(report.qoe, report.marks, { title: 'Slipstream demo report' }));
      } catch (error) {
        io.err(cannotWrite(html, (error as Error).message));
        return 1;
      }
      io.err(`wrote the HTML report to ${html}\n`);
    }
    if (bool(values, 'json')) {
      io.out(`${JSON.stringify(report)}\n`);
      return 0;
    }
    const lossText = percent(num(values, 'loss')!);
    const lines = [
      `Slipstream demo (seed ${report.seed}): coordinator, 3 relays, an echo game server and a player sending ${report.packetRatePps} packets/s for ${report.seconds} simulated s over a last mile losing ${lossText} each way.`,
      '',
      `${'relay'.padEnd(8)}${'region'.padEnd(12)}${'player RTT'.padStart(12)}${'whole path'.padStart(12)}`,
      ...report.relays.map((r) => `${r.id.padEnd(8)}${r.region.padEnd(12)}${`${r.clientRttMs} ms`.padStart(12)}${`${r.wholePathRttMs} ms`.padStart(12)}`),
      '',
      `1. Selection: the SDK probed the coordinator's candidates and picked ${report.chosenRelay} after ${report.pickMs?.toFixed(0)} ms (best whole path: ${report.expectedBestRelay}; the nearest relay is not it).`,
      `2. FEC: ${percent(report.loss.raw)} of packets were lost on the wire; the game saw ${percent(report.loss.afterFec)} (up ${percent(report.loss.upstream)}, down ${percent(report.loss.downstream)}). Relay mode ${report.fec.relayMode}, upstream ${report.fec.upstreamScheme}, ${report.fec.recovered} packets rebuilt.`,
      `3. Failover: ${report.failover.fromRelay} was killed at ${(report.failover.killedAtMs / 1000).toFixed(1)} s; traffic moved to the warm backup ${report.failover.toRelay} with a ${report.failover.gapMs.toFixed(0)} ms gap, same session.`,
      '',
      `4. Against the direct route (${2 * DIRECT_DELAY_MS} ms round trip behind the same last mile): loss ${percent(report.qoe.direct.loss)} → ${percent(report.qoe.slipstream.loss)}, round trip p50 ${msText(report.qoe.direct.latencyMs.p50)} → ${msText(report.qoe.slipstream.latencyMs.p50)}, p99 ${msText(report.qoe.direct.latencyMs.p99)} → ${msText(report.qoe.slipstream.latencyMs.p99)}, longest gap ${msText(report.qoe.direct.longestGapMs)} → ${msText(report.qoe.slipstream.longestGapMs)}.`,
      `   What the player would feel: ${verdict(report.qoe, report.marks).paragraph}`,
      '',
      `Summary: chosenRelay ${report.chosenRelay} (expected ${report.expectedBestRelay}), failover gap ${report.failover.gapMs.toFixed(0)} ms, loss ${percent(report.loss.raw)} raw → ${percent(report.loss.afterFec)} after FEC; ${report.packets.echoed}/${report.packets.sent} echoes.`,
      `Try 'slipstream demo --json', '--html report.html', '--loss 0.1', '--seed N'; real processes: 'slipstream coordinator', 'slipstream relay', 'slipstream connect' (sdk/README.md).`,
      '',
    ];
    io.out(lines.join('\n'));
    return 0;
  },
};
