/**
 * `slipstream bench qoe`: what a player gets through Slipstream vs the direct path, both
 * measured in the same window through the same last-mile impairment, on real processes
 * on 127.0.0.x (bench/qoe-fleet.ts has the deployment: the player's last mile is one
 * shared link of `sim proxy` that every relay path and probe crosses, one loss process
 * per direction; the direct baseline crosses its own link with the same model).
 *
 * Per case (bench/qoe-cases.ts) a game-like client sends 60 datagrams/s of 100 bytes
 * both directly (through the `direct` proxy) and through `slipstream connect` to a UDP
 * echo origin, then reports per path: round-trip loss (echoes missing), RTT p50/p99,
 * the longest time without an echo; for Slipstream also the added p99 over direct, the
 * overhead (bytes the relay proxies carried both ways over the game payload both ways:
 * FEC, headers, probes and keepalives) and what the origin saw (distinct source
 * addresses, duplicate datagrams).
 *
 * JSON contract (`--json`; test/bench-qoe.test.ts depends on it): `{cases: [{name,
 * direct: {loss, rttP50Ms, rttP99Ms}, slipstream: {loss, rttP50Ms, rttP99Ms,
 * longestGapMs, overheadRatio, originSources, originDuplicates}}]}`, extra fields allowed
 * (`fecOverheadRatio`: FEC redundancy ÷ the game's data payload, both directions, from
 * connect's status line and the relays' `/metrics`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliUsageError } from '../proto/src/errors.js';
import { bool, flagGiven, num, str, type FlagSpec } from '../kit/flags.js';
import { flagCommand, type Command, type CommandIo } from '../kit/command.js';
import { QOE_CASES, type QoeCase } from './qoe-cases.js';
import { currentRelayId, proxyApi, setLastMile, startQoeFleet, type QoeFleet } from './qoe-fleet.js';
import { ChildRegistry } from './qoe-processes.js';
import { longestGapMs, PACKET_BYTES, PATH_DIRECT, PATH_SLIPSTREAM, quantile, runGame, startEchoOrigin, type EchoOrigin, type GameRun, type PathRecord } from './qoe-traffic.js';

/** The game's send rate, datagrams/s per path. */
const PACKETS_PER_SECOND = 60;
/** Time after a case's impairment is applied before its traffic starts, ms. */
const SETTLE_MS = 1000;
/** Time after the last datagram for late echoes, ms. */
const DRAIN_MS = 1000;
/** `--seconds` under `--quick` unless given. */
const QUICK_SECONDS = 3;

const FLAGS: Record<string, FlagSpec> = {
  cases: { type: 'string', valueName: 'LIST', description: `Comma-separated cases to run (${QOE_CASES.map((c) => c.name).join(', ')}); default all` },
  seconds: { type: 'integer', valueName: 'S', min: 1, max: 600, default: 20, description: 'Traffic per case, s' },
  quick: { type: 'boolean', description: `Short run: ${QUICK_SECONDS} s per case unless --seconds is given` },
  seed: { type: 'integer', valueName: 'N', min: 0, max: 4294967295, default: 7, description: "The impairment proxy's seed (its loss and jitter draws)" },
  json: { type: 'boolean', description: 'Print one JSON object instead of a table' },
};

/** How the last mile is modelled, for the table and `--json`. */
const LAST_MILE_MODEL = "one sim proxy shared link for all of the player's relay paths and probes (one loss process per direction); the direct path its own link with the same model";

const SUMMARY = 'Player QoE through Slipstream vs direct, same window, same last-mile impairment: loss, RTT, gaps, overhead, what the origin saw.';

/** One path's figures in one case. */
export interface PathFigures {
  /** Fraction of datagrams whose echo never came back (0–1). */
  readonly loss: number;
  readonly rttP50Ms: number;
  readonly rttP99Ms: number;
  /** Longest time without an echo, ms. */
  readonly longestGapMs: number;
  readonly sent: number;
  readonly echoed: number;
}

/** Slipstream's figures in one case. */
export interface SlipstreamFigures extends PathFigures {
  /** p99 RTT minus the direct path's p99, ms. */
  readonly addedP99Ms: number;
  /** Bytes the relay proxies carried (both directions: data, FEC, headers, probes, keepalives) / game payload bytes (each datagram sent up once plus its echo down once). */
  readonly overheadRatio: number;
  /** FEC redundancy over the game's data, both directions (repairs, parity, copies ÷ data payload bytes; headers and probes excluded). */
  readonly fecOverheadRatio: number;
  /** Distinct source addresses the origin saw. */
  readonly originSources: number;
  /** Datagrams the origin received more than once (per sequence number, arrivals beyond the first). */
  readonly originDuplicates: number;
  /** Fraction of datagrams that never reached the origin (0–1). */
  readonly uplinkLoss: number;
  /** Relays connect used during the window, in order. */
  readonly relays: readonly string[];
  /**
   * The first {@link LOST_LISTED_MAX} round trips that never came back, in send order:
   * sequence number (60 per second from the case's start), and `up` when the origin never
   * got it, `down` when only its echo went missing. Where in the run losses fall (the
   * start, a relay switch, the end) is how they get explained.
   */
  readonly lost: readonly { readonly seq: number; readonly direction: 'up' | 'down' }[];
}

/** Most lost round trips {@link SlipstreamFigures.lost} lists. */
const LOST_LISTED_MAX = 50;

/** One case's result. */
export interface QoeCaseResult {
  readonly name: string;
  readonly description: string;
  /** With the round-trip loss the direct proxy's impairment drew (the rest of `loss` was lost on the host) and the loss to the origin. */
  readonly direct: PathFigures & { readonly impairmentLoss: number; readonly uplinkLoss: number };
  readonly slipstream: SlipstreamFigures;
  /** The relay SIGKILLed halfway (relay-kill). */
  readonly killedRelay?: string;
}

const round = (x: number, digits = 1): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : -1);

function pathFigures(record: PathRecord, run: GameRun): PathFigures {
  const rtts = [...record.rttMsBySeq.values()];
  return {
    loss: round(record.sent === 0 ? 1 : 1 - record.rttMsBySeq.size / record.sent, 4),
    rttP50Ms: round(quantile(rtts, 0.5)),
    rttP99Ms: round(quantile(rtts, 0.99)),
    longestGapMs: round(longestGapMs(record, run.startMs, run.sendEndMs), 0),
    sent: record.sent,
    echoed: record.rttMsBySeq.size,
  };
}

interface DirectionStats {
  readonly packets: number;
  readonly bytes: number;
  readonly dropped: { readonly loss: number };
}

async function proxyStats(fleet: QoeFleet, name: string): Promise<{ uplink: DirectionStats; downlink: DirectionStats }> {
  return ((await proxyApi(fleet.proxyApi, 'GET', `/v1/proxies/${name}`, undefined, 200)) as { stats: { uplink: DirectionStats; downlink: DirectionStats } }).stats;
}

/** Bytes the relay proxies carried so far, both directions. */
async function relayProxyBytes(fleet: QoeFleet): Promise<number> {
  let bytes = 0;
  for (const name of fleet.relayProxyNames) {
    const stats = await proxyStats(fleet, name);
    bytes += stats.uplink.bytes + stats.downlink.bytes;
  }
  return bytes;
}

/**
 * The round-trip loss the `direct` proxy's impairment itself drew between two
 * snapshots: 1 − (1 − up drops/up packets)(1 − down drops/down packets). Loss on the
 * direct path beyond it happened on the host (a starved process's socket buffer).
 */
function impairmentLoss(before: { uplink: DirectionStats; downlink: DirectionStats }, after: { uplink: DirectionStats; downlink: DirectionStats }): number {
  const fraction = (b: DirectionStats, a: DirectionStats): number => (a.packets === b.packets ? 0 : (a.dropped.loss - b.dropped.loss) / (a.packets - b.packets));
  return 1 - (1 - fraction(before.uplink, after.uplink)) * (1 - fraction(before.downlink, after.downlink));
}

/** FEC payload bytes so far, both directions: the game's (`data`) and redundancy (`redundant`: repairs, parity, copies). */
interface FecBytes {
  data: number;
  redundant: number;
}

/**
 * Downstream FEC payload bytes so far, per live relay, from its `/metrics`
 * (`slipstream_relay_fec_{data,redundant}_bytes_total`). A relay that does not answer
 * (killed) is left out, and {@link fecOverhead} compares only relays in both snapshots.
 */
async function downstreamFecBytes(fleet: QoeFleet): Promise<Map<string, FecBytes>> {
  const perRelay = new Map<string, FecBytes>();
  for (const relay of fleet.relays) {
    const text = await fetch(relay.metricsUrl, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.text())
      .catch(() => undefined);
    if (text === undefined) continue;
    const read = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    perRelay.set(relay.relayId, { data: read('slipstream_relay_fec_data_bytes_total'), redundant: read('slipstream_relay_fec_redundant_bytes_total') });
  }
  return perRelay;
}

/** Redundant ÷ data FEC bytes between two snapshots (relays alive in both), or 0 when no data moved. */
function fecOverhead(before: Map<string, FecBytes>, after: Map<string, FecBytes>, upBefore: FecBytes, upAfter: FecBytes): number {
  let data = upAfter.data - upBefore.data;
  let redundant = upAfter.redundant - upBefore.redundant;
  for (const [id, a] of after) {
    const b = before.get(id) ?? { data: 0, redundant: 0 };
    data += a.data - b.data;
    redundant += a.redundant - b.redundant;
  }
  return data > 0 ? redundant / data : 0;
}

/** connect's upstream FEC bytes from its latest status line. */
function upstreamFecBytes(fleet: QoeFleet): FecBytes {
  const up = [...fleet.connect.stdout.matchAll(/fec up data (\d+) B redundant (\d+) B/g)].pop();
  return up === undefined ? { data: 0, redundant: 0 } : { data: Number(up[1]), redundant: Number(up[2]) };
}

async function runCase(fleet: QoeFleet, origin: EchoOrigin, c: QoeCase, caseNumber: number, seconds: number, progress: (line: string) => void): Promise<QoeCaseResult> {
  await setLastMile(fleet, c.impairment);
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const fecBefore = await downstreamFecBytes(fleet);
  const upBefore = upstreamFecBytes(fleet);
  const bytesBefore = await relayProxyBytes(fleet);
  const directBefore = await proxyStats(fleet, 'direct');
  const stdoutFrom = fleet.connect.stdout.length;
  const relaysUsed: string[] = [];
  const first = currentRelayId(fleet.connect);
  if (first !== undefined) relaysUsed.push(first);
  let killedRelay: string | undefined;
  const run = await runGame({
    directPort: fleet.directPort,
    slipstreamPort: fleet.connectPort,
    caseNumber,
    seconds,
    packetsPerSecond: PACKETS_PER_SECOND,
    drainMs: DRAIN_MS,
    ...(c.killRelayMidway
      ? {
          midway: () => {
            const id = currentRelayId(fleet.connect);
            const relay = fleet.relays.find((r) => r.relayId === id);
            if (relay === undefined) return;
            killedRelay = relay.relayId;
            relay.proc.kill('SIGKILL');
            progress(`${c.name}: SIGKILLed ${relay.relayId} (pid ${relay.proc.child.pid}), the relay carrying the player`);
          },
        }
      : {}),
  });
  // connect's status line comes once a second: wait for one that covers the whole case.
  const linesAtEnd = fleet.connect.stdout.length;
  for (let i = 0; i < 15 && fleet.connect.stdout.indexOf('fec up data', linesAtEnd) < 0; i++) await new Promise((resolve) => setTimeout(resolve, 100));
  const fecAfter = await downstreamFecBytes(fleet);
  const upAfter = upstreamFecBytes(fleet);
  const bytesAfter = await relayProxyBytes(fleet);
  const directAfter = await proxyStats(fleet, 'direct');
  for (const m of fleet.connect.stdout.slice(stdoutFrom).matchAll(/(?:path: |status: relay )(\S+)/g)) if (relaysUsed[relaysUsed.length - 1] !== m[1]) relaysUsed.push(m[1]!);
  const counts = origin.counts(caseNumber, PATH_SLIPSTREAM);
  let originDuplicates = 0;
  for (const n of counts.arrivals.values()) originDuplicates += n - 1;
  const directCounts = origin.counts(caseNumber, PATH_DIRECT);
  const direct = { ...pathFigures(run.direct, run), impairmentLoss: round(impairmentLoss(directBefore, directAfter), 4), uplinkLoss: round(run.direct.sent === 0 ? 1 : 1 - directCounts.arrivals.size / run.direct.sent, 4) };
  const slip = pathFigures(run.slipstream, run);
  // The game's payload: each datagram up once, and its echo down once; copies the origin got twice are overhead too.
  const payloadBytes = (run.slipstream.sent + counts.arrivals.size) * PACKET_BYTES;
  return {
    name: c.name,
    description: c.description,
    direct,
    slipstream: {
      ...slip,
      addedP99Ms: round(slip.rttP99Ms - direct.rttP99Ms),
      overheadRatio: round((bytesAfter - bytesBefore) / payloadBytes, 2),
      fecOverheadRatio: round(fecOverhead(fecBefore, fecAfter, upBefore, upAfter), 2),
      originSources: counts.sources.size,
      originDuplicates,
      uplinkLoss: round(run.slipstream.sent === 0 ? 1 : 1 - counts.arrivals.size / run.slipstream.sent, 4),
      relays: relaysUsed,
      lost: lostRoundTrips(run.slipstream.sent, run.slipstream.rttMsBySeq, counts.arrivals),
    },
    ...(killedRelay === undefined ? {} : { killedRelay }),
  };
}

/** The first {@link LOST_LISTED_MAX} sequence numbers in `[0, sent)` without an echo, and which way each was lost. */
function lostRoundTrips(sent: number, echoed: ReadonlyMap<number, number>, atOrigin: ReadonlyMap<number, number>): SlipstreamFigures['lost'] {
  const lost: { seq: number; direction: 'up' | 'down' }[] = [];
  for (let seq = 0; seq < sent && lost.length < LOST_LISTED_MAX; seq++) {
    if (!echoed.has(seq)) lost.push({ seq, direction: atOrigin.has(seq) ? 'down' : 'up' });
  }
  return lost;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(2)} %`;
}

function formatTable(results: readonly QoeCaseResult[], seconds: number): string {
  const header = ['case', 'loss direct (drawn)', 'loss slip', 'p50 direct/slip ms', 'p99 direct/slip ms', 'added p99 ms', 'gap direct/slip ms', 'overhead', 'FEC overhead', 'origin src', 'origin dups', 'relays'];
  const rows = results.map((r) => [r.name, `${pct(r.direct.loss)} (${pct(r.direct.impairmentLoss)})`, pct(r.slipstream.loss), `${r.direct.rttP50Ms}/${r.slipstream.rttP50Ms}`, `${r.direct.rttP99Ms}/${r.slipstream.rttP99Ms}`, String(r.slipstream.addedP99Ms), `${r.direct.longestGapMs}/${r.slipstream.longestGapMs}`, `${r.slipstream.overheadRatio}×`, pct(r.slipstream.fecOverheadRatio), String(r.slipstream.originSources), String(r.slipstream.originDuplicates), r.slipstream.relays.join('→')]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |\n`;
  return [
    `QoE, ${PACKETS_PER_SECOND} datagrams/s of ${PACKET_BYTES} B per path, ${seconds} s per case, direct and Slipstream in the same window\n`,
    `last mile: 10 ms one way; ${LAST_MILE_MODEL}\n`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ].join('');
}

/** Parses `--cases`: known names, run in {@link QOE_CASES} order. */
function selectCases(list: string | undefined): QoeCase[] {
  if (list === undefined) return [...QOE_CASES];
  const names = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const unknown = names.filter((n) => !QOE_CASES.some((c) => c.name === n));
  if (names.length === 0 || unknown.length > 0) throw new CliUsageError('--cases', `--cases: ${unknown.length > 0 ? `unknown case '${unknown[0]}'` : 'empty'}; expected some of ${QOE_CASES.map((c) => c.name).join(', ')}`);
  return QOE_CASES.filter((c) => names.includes(c.name));
}

async function runBench(cases: readonly QoeCase[], seconds: number, seed: number, io: CommandIo): Promise<{ cases: QoeCaseResult[] }> {
  const progress = (line: string): void => io.err(`bench qoe: ${line}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-bench-qoe-'));
  const children = new ChildRegistry();
  let origin: EchoOrigin | undefined;
  try {
    origin = await startEchoOrigin();
    progress(`echo origin: 127.0.0.1:${origin.port}`);
    const fleet = await startQoeFleet({ dir, children, originPort: origin.port, seed, progress });
    const results: QoeCaseResult[] = [];
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i]!;
      progress(`${c.name}: ${c.description}, ${seconds} s`);
      const r = await runCase(fleet, origin, c, i + 1, seconds, progress);
      progress(`${c.name}: loss direct ${pct(r.direct.loss)} slipstream ${pct(r.slipstream.loss)}; p99 ${r.direct.rttP99Ms}/${r.slipstream.rttP99Ms} ms; gap ${r.slipstream.longestGapMs} ms; overhead ${r.slipstream.overheadRatio}× (FEC ${pct(r.slipstream.fecOverheadRatio)}); origin sources ${r.slipstream.originSources}, duplicates ${r.slipstream.originDuplicates}`);
      results.push(r);
    }
    return { cases: results };
  } finally {
    await children.stopAll();
    await origin?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `slipstream bench qoe`. */
export const qoeBenchCommand: Command = flagCommand({
  path: 'bench qoe',
  summary: SUMMARY,
  flags: FLAGS,
  async run({ values }, io, argv) {
    const cases = selectCases(str(values, 'cases'));
    const seconds = bool(values, 'quick') && !flagGiven(argv, 'seconds') ? QUICK_SECONDS : num(values, 'seconds')!;
    const result = await runBench(cases, seconds, num(values, 'seed')!, io);
    if (bool(values, 'json')) io.out(`${JSON.stringify({ packetsPerSecond: PACKETS_PER_SECOND, packetBytes: PACKET_BYTES, seconds, lastMile: LAST_MILE_MODEL, ...result })}\n`);
    else io.out(formatTable(result.cases, seconds));
    return 0;
  },
});
