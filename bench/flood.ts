/**
 * `slipstream bench flood`: what a relay's legitimate players get under a flood, beside
 * what they get without it, in the same run (issue #14). Real processes on 127.0.0.x
 * (bench/flood-deploy.ts): a coordinator, one relay (an L4 UDP rule, an L4 TCP rule, the
 * tunnel; `limits.sessionsMax` 1200, so 400 per kind), `slipstream connect` holding a
 * tunnel session, UDP and TCP echo origins; floods come from a separate process sending
 * from many 127.x.y.z source addresses (bench/flooder.ts), slowloris connections from
 * this one.
 *
 * Per case, two windows of `--seconds` each: a baseline (no flood), then the flood. In
 * each, a game client sends 60 datagrams/s of 100 B both at the L4 UDP rule and through
 * the tunnel (bench/qoe-traffic.ts) and the bench records, per flow, round-trip loss and
 * RTT p50/p99; whether a NEW L4 UDP player, a NEW L4 TCP player and a NEW tunnel session
 * (a second `slipstream connect`) are admitted, and how fast; the relay's CPU (from
 * /proc/PID/stat, as a fraction of one core), its log lines per second, its event-loop
 * delay p99 and the changes of its refusal/shedding/verification/cookie counters in
 * /metrics (whatever this relay version exports); for the flood, the rate achieved.
 *
 * JSON contract (`--json`; test/bench-flood.test.ts depends on it): `{floodRate,
 * seconds, cases: [{name, description, attack: {...}, baseline: Window, flood: Window}]}`
 * where Window is `{l4: Flow, tunnel: Flow, newL4Player: Admission, newTcpPlayer:
 * Admission, newTunnelSession: Admission, relayCpuFraction, relayLogLinesPerSecond,
 * relayEventLoopP99Ms, metricDeltas: {metric: delta}}`, Flow is `{loss (0–1), rttP50Ms,
 * rttP99Ms, sent, echoed}`, Admission is `{admitted, ms}`; `attack` is `{kind: 'udp',
 * sent, ms, ratePerSecond, sources}` or `{kind: 'tcp-idle', connections, sources,
 * connected, closedByRelay, heldAtEnd}`. Extra fields allowed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CliUsageError } from '../proto/src/errors.js';
import { PacketType, sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { buildControlPacket, buildPacket } from '../proto/src/wire.js';
import { bool, flagGiven, num, str, type FlagSpec } from '../kit/flags.js';
import { flagCommand, type Command, type CommandIo } from '../kit/command.js';
import { holdIdleTcp, JUNK_BYTE, FLOOD_SOURCES, newTcpPlayer, newTunnelSession, newUdpPlayer, RELAY_HOST, startFloodDeployment, type Admission, type FloodDeployment } from './flood-deploy.js';
import { startFlood } from './flooder.js';
import { ChildRegistry } from './qoe-processes.js';
import { PACKET_BYTES, quantile, runGame, type PathRecord } from './qoe-traffic.js';

/** The game's send rate, datagrams/s per flow. */
const PACKETS_PER_SECOND = 60;
/** Time after the last game datagram for late echoes, ms. */
const DRAIN_MS = 1000;
/** `--seconds` under `--quick` unless given. */
const QUICK_SECONDS = 3;
/** Into a window, when the new players try to get in (the flood has settled by then), ms. */
const ADMIT_AFTER_MS = 1000;
/** How long a new player may take to get in before it counts as refused, ms. */
const ADMIT_TIMEOUT_MS = 10_000;
/** Pause between cases, ms: past the relay's unreplied-flow idle timeout (`limits.unrepliedIdleTimeoutMs`, 5 s). */
const BETWEEN_CASES_MS = 6000;
/** Slowloris: idle connections, and the addresses they come from. */
const SLOWLORIS_CONNECTIONS = 2000;
const SLOWLORIS_SOURCES = 10;
/** Counters of /metrics whose change per window is reported (whichever this relay exports). */
const REPORTED_METRICS = /cookie|verif|refused|shed|drops_total|rate_limit|source_cap|first_byte|silent|events_total/;

/** A flood case: the attack, run during its flood window. */
interface FloodCase {
  readonly name: string;
  readonly description: string;
  /** Datagrams the flooder sends in turn, and where; or the slowloris. */
  readonly attack: { readonly kind: 'udp'; readonly target: 'l4' | 'tunnel'; readonly packets: (d: FloodDeployment) => Uint8Array[]; readonly octet: number } | { readonly kind: 'tcp-idle'; readonly octet: number };
}

/** Forged session opens: tickets sealed with the fleet's seal key but signed by a key the relays do not trust, so each costs a signature check. */
function forgedOpens(d: FloodDeployment): Uint8Array[] {
  const forger = ticketSigningKeyFromSeed(randomBytes(32));
  return Array.from({ length: 16 }, () => {
    const high = randomBytes(4).readUInt32BE(0);
    const low = randomBytes(4).readUInt32BE(0);
    const now = Date.now();
    const ticket = issueTicket({ sessionId: sessionIdToHex(high, low), origin: 'game', issuedAtMs: now, expiresAtMs: now + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: randomBytes(32), sealNonce: randomBytes(12) }, forger, d.sealKey);
    return buildControlPacket(high, low, { type: 'sessionOpen', ticket, fecModes: ['off'] });
  });
}

/** Data packets of sessions that do not exist, as long as a forged open. */
function unknownSessionJunk(d: FloodDeployment): Uint8Array[] {
  const length = forgedOpens(d)[0]!.length;
  return Array.from({ length: 16 }, () => buildPacket(PacketType.Data, randomBytes(4).readUInt32BE(0), randomBytes(4).readUInt32BE(0), 1, randomBytes(Math.max(0, length - 16))));
}

/** The cases, in the order they run. */
export const FLOOD_CASES: readonly FloodCase[] = [
  { name: 'udp-spoof', description: `spoofed-source UDP junk (64 B) at the L4 UDP rule from ${FLOOD_SOURCES} addresses`, attack: { kind: 'udp', target: 'l4', packets: () => [Buffer.alloc(64, JUNK_BYTE)], octet: 21 } },
  { name: 'forged-opens', description: `session opens with forged tickets at the tunnel port from ${FLOOD_SOURCES} addresses`, attack: { kind: 'udp', target: 'tunnel', packets: forgedOpens, octet: 22 } },
  { name: 'unknown-session', description: `unknown-session data packets (as long as a forged open) at the tunnel port from ${FLOOD_SOURCES} addresses: the baseline for forged-opens`, attack: { kind: 'udp', target: 'tunnel', packets: unknownSessionJunk, octet: 23 } },
  { name: 'slowloris', description: `${SLOWLORIS_CONNECTIONS} idle TCP connections from ${SLOWLORIS_SOURCES} addresses at the L4 TCP rule`, attack: { kind: 'tcp-idle', octet: 24 } },
];

const FLAGS: Record<string, FlagSpec> = {
  cases: { type: 'string', valueName: 'LIST', description: `Comma-separated cases to run (${FLOOD_CASES.map((c) => c.name).join(', ')}); default all` },
  seconds: { type: 'integer', valueName: 'S', min: 1, max: 600, default: 10, description: 'Length of each window (baseline, then flood) per case, s' },
  quick: { type: 'boolean', description: `Short run: ${QUICK_SECONDS} s windows unless --seconds is given` },
  rate: { type: 'integer', valueName: 'N', min: 100, max: 100_000, default: 10_000, description: 'Target rate of the UDP floods, datagrams/s' },
  json: { type: 'boolean', description: 'Print one JSON object instead of a table' },
};

const SUMMARY = "A relay's legitimate traffic (loss, RTT, new players admitted) under floods beside the same run's baseline, with the relay's CPU and log rate; real processes.";

/** One legitimate flow's figures in a window. */
export interface FlowFigures {
  /** Fraction of datagrams whose echo never came back (0–1). */
  readonly loss: number;
  readonly rttP50Ms: number;
  readonly rttP99Ms: number;
  readonly sent: number;
  readonly echoed: number;
}

/** One window's figures. */
export interface WindowFigures {
  readonly l4: FlowFigures;
  readonly tunnel: FlowFigures;
  readonly newL4Player: Admission;
  readonly newTcpPlayer: Admission;
  readonly newTunnelSession: Admission;
  /** Relay CPU time over the window / the window's wall time (1 = one core). */
  readonly relayCpuFraction: number;
  /** Lines the relay logged per second over the window. */
  readonly relayLogLinesPerSecond: number;
  /** The relay's event-loop delay p99 over the window, ms (-1 when not exported). */
  readonly relayEventLoopP99Ms: number;
  /** Change over the window of the relay's refusal, shedding, verification and cookie counters (nonzero ones). */
  readonly metricDeltas: Record<string, number>;
  /** The window's wall time, ms. */
  readonly ms: number;
}

/** What the attack did. */
export type AttackFigures = { readonly kind: 'udp'; readonly sent: number; readonly ms: number; readonly ratePerSecond: number; readonly sources: number } | { readonly kind: 'tcp-idle'; readonly connections: number; readonly sources: number; readonly connected: number; readonly closedByRelay: number; readonly heldAtEnd: number };

/** One case's result. */
export interface FloodCaseResult {
  readonly name: string;
  readonly description: string;
  readonly attack: AttackFigures;
  readonly baseline: WindowFigures;
  readonly flood: WindowFigures;
}

const round = (x: number, digits = 1): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : -1);

function flowFigures(record: PathRecord): FlowFigures {
  const rtts = [...record.rttMsBySeq.values()];
  return { loss: round(record.sent === 0 ? 1 : 1 - record.rttMsBySeq.size / record.sent, 4), rttP50Ms: round(quantile(rtts, 0.5), 2), rttP99Ms: round(quantile(rtts, 0.99), 2), sent: record.sent, echoed: record.rttMsBySeq.size };
}

/** CPU time (user + system) process `pid` has used, ms; NaN where /proc is not there. */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime (fields 14 and 15), in clock ticks of USER_HZ = 100 on Linux.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

/** The relay's /metrics as `name{labels}` → value; empty when it does not answer. */
async function scrape(d: FloodDeployment): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  try {
    const text = await (await fetch(`http://${RELAY_HOST}:${d.metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    for (const line of text.split('\n')) {
      const m = /^([a-z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
      if (m) out.set(m[1]!, Number(m[2]));
    }
  } catch {
    // a relay too busy to answer: no figures for this window
  }
  return out;
}

/** Runs one window: the game on both flows and the new players, with `attack` (started before, stopped after) around it. */
async function runWindow(d: FloodDeployment, children: ChildRegistry, caseNumber: number, seconds: number): Promise<WindowFigures> {
  const pid = d.relay.child.pid!;
  await scrape(d); // resets the event-loop delay window
  const before = await scrape(d);
  const cpuBefore = cpuMs(pid);
  const logFrom = d.relay.stdout.length;
  const start = performance.now();
  const admissions = (async () => {
    await new Promise((resolve) => setTimeout(resolve, ADMIT_AFTER_MS));
    return Promise.all([newUdpPlayer(RELAY_HOST, d.udpRulePort, ADMIT_TIMEOUT_MS), newTcpPlayer(RELAY_HOST, d.tcpRulePort, ADMIT_TIMEOUT_MS), newTunnelSession(d, children, ADMIT_TIMEOUT_MS)]);
  })();
  const run = await runGame({ directPort: d.udpRulePort, directHost: RELAY_HOST, slipstreamPort: d.connectPort, caseNumber, seconds, packetsPerSecond: PACKETS_PER_SECOND, drainMs: DRAIN_MS });
  const [newL4Player, newTcp, newTunnel] = await admissions;
  const ms = performance.now() - start;
  const cpu = cpuMs(pid) - cpuBefore;
  const after = await scrape(d);
  const lines = (d.relay.stdout.slice(logFrom).match(/\n/g) ?? []).length;
  const metricDeltas: Record<string, number> = {};
  for (const [key, value] of after) {
    if (!REPORTED_METRICS.test(key)) continue;
    const delta = value - (before.get(key) ?? 0);
    if (delta !== 0) metricDeltas[key] = delta;
  }
  const loopP99 = after.get('slipstream_relay_event_loop_delay_seconds{quantile="0.99"}');
  return {
    l4: flowFigures(run.direct),
    tunnel: flowFigures(run.slipstream),
    newL4Player,
    newTcpPlayer: newTcp,
    newTunnelSession: newTunnel,
    relayCpuFraction: round(cpu / ms, 3),
    relayLogLinesPerSecond: round((1000 * lines) / ms, 2),
    relayEventLoopP99Ms: loopP99 === undefined ? -1 : round(loopP99 * 1000, 2),
    metricDeltas,
    ms: Math.round(ms),
  };
}

async function runCase(d: FloodDeployment, children: ChildRegistry, c: FloodCase, index: number, seconds: number, rate: number, progress: (line: string) => void): Promise<FloodCaseResult> {
  progress(`${c.name}: baseline window, ${seconds} s`);
  const baseline = await runWindow(d, children, 2 * index + 1, seconds);
  progress(`${c.name}: baseline: ${windowLine(baseline)}`);
  const a = c.attack;
  let attack: AttackFigures;
  let flood: WindowFigures;
  if (a.kind === 'udp') {
    const flooder = startFlood({ host: RELAY_HOST, port: a.target === 'l4' ? d.udpRulePort : d.tunnelPort, perSecond: rate, minMs: 0, maxMs: (seconds + 30) * 1000, sources: FLOOD_SOURCES, octet: a.octet, packets: a.packets(d) });
    try {
      await flooder.started;
      progress(`${c.name}: flood window, ${rate} datagrams/s from ${FLOOD_SOURCES} addresses`);
      flood = await runWindow(d, children, 2 * index + 2, seconds);
    } finally {
      flooder.stop();
    }
    const result = await flooder.done.finally(() => flooder.kill());
    attack = { kind: 'udp', sent: result.sent, ms: Math.round(result.ms), ratePerSecond: Math.round((1000 * result.sent) / Math.max(1, result.ms)), sources: FLOOD_SOURCES };
  } else {
    const hold = await holdIdleTcp({ host: RELAY_HOST, port: d.tcpRulePort, connections: SLOWLORIS_CONNECTIONS, sources: SLOWLORIS_SOURCES, octet: a.octet, settleMs: 10_000 });
    try {
      progress(`${c.name}: flood window, ${hold.connected} of ${SLOWLORIS_CONNECTIONS} idle connections connected, ${hold.open()} open`);
      flood = await runWindow(d, children, 2 * index + 2, seconds);
      attack = { kind: 'tcp-idle', connections: hold.connections, sources: hold.sources, connected: hold.connected, closedByRelay: hold.closedByRelay, heldAtEnd: hold.open() };
    } finally {
      hold.release();
    }
  }
  progress(`${c.name}: flood: ${windowLine(flood)}; attack ${JSON.stringify(attack)}`);
  return { name: c.name, description: c.description, attack, baseline, flood };
}

function pct(x: number): string {
  return `${(x * 100).toFixed(2)} %`;
}

function admitted(a: Admission): string {
  return a.admitted ? `yes ${a.ms} ms` : `NO (${a.ms} ms)`;
}

function windowLine(w: WindowFigures): string {
  return `loss l4 ${pct(w.l4.loss)} tunnel ${pct(w.tunnel.loss)}; p50/p99 l4 ${w.l4.rttP50Ms}/${w.l4.rttP99Ms} ms tunnel ${w.tunnel.rttP50Ms}/${w.tunnel.rttP99Ms} ms; new udp ${admitted(w.newL4Player)}, tcp ${admitted(w.newTcpPlayer)}, tunnel ${admitted(w.newTunnelSession)}; relay CPU ${w.relayCpuFraction}, ${w.relayLogLinesPerSecond} log lines/s`;
}

function attackCell(a: AttackFigures): string {
  return a.kind === 'udp' ? `${a.ratePerSecond}/s (${a.sent} in ${(a.ms / 1000).toFixed(1)} s)` : `${a.connected} idle conns, ${a.heldAtEnd} held at end`;
}

function formatTable(results: readonly FloodCaseResult[], seconds: number, rate: number): string {
  const header = ['case', 'window', 'attack achieved', 'loss l4/tunnel', 'p50 l4/tunnel ms', 'p99 l4/tunnel ms', 'new udp', 'new tcp', 'new tunnel', 'relay CPU', 'log lines/s'];
  const rows: string[][] = [];
  for (const r of results) {
    for (const [label, w] of [['baseline', r.baseline], ['flood', r.flood]] as const) {
      rows.push([label === 'baseline' ? r.name : '', label, label === 'flood' ? attackCell(r.attack) : '—', `${pct(w.l4.loss)} / ${pct(w.tunnel.loss)}`, `${w.l4.rttP50Ms} / ${w.tunnel.rttP50Ms}`, `${w.l4.rttP99Ms} / ${w.tunnel.rttP99Ms}`, admitted(w.newL4Player), admitted(w.newTcpPlayer), admitted(w.newTunnelSession), `${Math.round(w.relayCpuFraction * 100)} %`, String(w.relayLogLinesPerSecond)]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |\n`;
  const counters = results.map((r) => `${r.name}: ${Object.entries(r.flood.metricDeltas).map(([k, v]) => `${k.replace(/^slipstream_relay_/, '')} +${v}`).join(', ') || 'none'}\n`);
  return [
    `Legitimate traffic under floods: ${PACKETS_PER_SECOND} datagrams/s of ${PACKET_BYTES} B at the L4 UDP rule and through the tunnel; ${seconds} s baseline then ${seconds} s flood per case, same run; UDP floods at ${rate}/s target\n`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    'relay counters that changed during each flood:\n',
    ...counters,
  ].join('');
}

/** Parses `--cases`: known names, run in {@link FLOOD_CASES} order. */
function selectCases(list: string | undefined): FloodCase[] {
  if (list === undefined) return [...FLOOD_CASES];
  const names = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const unknown = names.filter((n) => !FLOOD_CASES.some((c) => c.name === n));
  if (names.length === 0 || unknown.length > 0) throw new CliUsageError('--cases', `--cases: ${unknown.length > 0 ? `unknown case '${unknown[0]}'` : 'empty'}; expected some of ${FLOOD_CASES.map((c) => c.name).join(', ')}`);
  return FLOOD_CASES.filter((c) => names.includes(c.name));
}

async function runBench(cases: readonly FloodCase[], seconds: number, rate: number, io: CommandIo): Promise<FloodCaseResult[]> {
  const progress = (line: string): void => io.err(`bench flood: ${line}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-bench-flood-'));
  const children = new ChildRegistry();
  let deployment: FloodDeployment | undefined;
  try {
    deployment = await startFloodDeployment({ dir, children, progress });
    const results: FloodCaseResult[] = [];
    for (let i = 0; i < cases.length; i++) {
      // The previous flood's unreplied flows and idle connections idle out first, so they do not count in this case's baseline.
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, BETWEEN_CASES_MS));
      results.push(await runCase(deployment, children, cases[i]!, i, seconds, rate, progress));
    }
    return results;
  } finally {
    await children.stopAll();
    await deployment?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `slipstream bench flood`. */
export const floodBenchCommand: Command = flagCommand({
  path: 'bench flood',
  summary: SUMMARY,
  flags: FLAGS,
  async run({ values }, io, argv) {
    const cases = selectCases(str(values, 'cases'));
    const seconds = bool(values, 'quick') && !flagGiven(argv, 'seconds') ? QUICK_SECONDS : num(values, 'seconds')!;
    const rate = num(values, 'rate')!;
    const results = await runBench(cases, seconds, rate, io);
    if (bool(values, 'json')) io.out(`${JSON.stringify({ floodRate: rate, seconds, packetsPerSecond: PACKETS_PER_SECOND, packetBytes: PACKET_BYTES, cases: results })}\n`);
    else io.out(formatTable(results, seconds, rate));
    return 0;
  },
});
