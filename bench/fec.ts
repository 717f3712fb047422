/**
 * `slipstream bench fec`: measures the FEC codec and the FEC sender/receiver pair in
 * virtual time over the simulator's link model, and prints a table (or, with --json,
 * one JSON object). Every figure is measured in this run; nothing is hard-coded.
 *
 * JSON contract (later checks depend on it):
 * - `codec`: [{k, r, shardBytes, encodeMBps, decodeMBps, baselineEncodeMBps,
 *   baselineDecodeMBps, speedupVsBaseline, backend}] for (4,2), (10,3), (20,10) at 1200-byte
 *   shards, one core; MB/s = 10^6 data bytes per second; decode rebuilds min(r, k)
 *   lost data shards; the baseline is the textbook log/exp codec (`baseline.ts`).
 * - `bernoulli`: [{k, r, loss, residual, theory, packets, seed}], theory = p·P[Bin(k+r−1, p) ≥ r].
 * - `bursty`: [{scheme, loss, meanBurst, residual, overhead, packets, seed, detail}] under
 *   Gilbert-Elliott loss (lossBad 1, lossGood 0; r = 1/B, p = r·0.05/0.95).
 * - `adaptive`: one row per (flow, phase): [{flow, packetRatePps, phase, condition, loss,
 *   meanBurst, residual, overhead, addedLatencyMsP99, addedLatencyMsMax, packets, seed,
 *   scheme}], for a 60 packets/s game flow and a 500 packets/s media flow over
 *   0 % → 2 % → 10 % → bursty 5 % → 0 %.
 * Rates are fractions (0.05 = 5 %); `overhead` is redundant bytes / data bytes.
 */
import { bool, flagGiven, num, str, type FlagSpec } from '../kit/flags.js';
import { flagCommand, type Command } from '../kit/command.js';
import { FEC_LATENCY_BUDGET_MS_DEFAULT, FEC_OVERHEAD_MAX_DEFAULT } from '../proto/src/fec/controller.js';
import { bernoulliResidual } from '../proto/src/fec/model.js';
import { ReedSolomon } from '../proto/src/fec/rs.js';
import type { FecScheme } from '../proto/src/fec/scheme.js';
import { Rng } from '../proto/src/rng.js';
import type { LinkModelSpec } from '../sim/src/core/link.js';
import { TextbookReedSolomon } from '../proto/src/fec/textbook-rs.js';
import { runFlow, type FlowPhase } from './fec-flow.js';

const FLAGS: Record<string, FlagSpec> = {
  json: { type: 'boolean', description: 'Print one JSON object instead of tables' },
  quick: { type: 'boolean', description: 'Small run for tests: 20,000 packets per row and short codec timings (below the 200k the published figures use)' },
  packets: { type: 'integer', valueName: 'N', min: 1000, max: 10_000_000, description: 'Application packets per row (overrides --quick)', default: 200_000 },
  seed: { type: 'integer', valueName: 'N', min: 0, max: 4294967295, description: 'Seed of every link and payload stream', default: 1 },
  backend: { type: 'string', choices: ['auto', 'wasm-simd', 'js'], description: 'Codec kernel', default: 'auto' },
  'codec-ms': { type: 'integer', valueName: 'MS', min: 20, max: 60_000, description: 'Wall time per codec measurement, ms (--quick: 60)', default: 500 },
  'overhead-max': { type: 'number', valueName: 'FRACTION', min: 0, max: 4, description: "Adaptive controller's bandwidth cap (1 = 100 % extra)", default: FEC_OVERHEAD_MAX_DEFAULT },
  'latency-budget-ms': { type: 'number', valueName: 'MS', min: 0, max: 1000, description: "Adaptive controller's added-latency budget, ms", default: FEC_LATENCY_BUDGET_MS_DEFAULT },
  sections: { type: 'string', valueName: 'LIST', description: 'Comma-separated subset of codec,bernoulli,bursty,adaptive', default: 'codec,bernoulli,bursty,adaptive' },
};

const QUICK_PACKETS = 20_000;
const QUICK_CODEC_MS = 60;
const SHARD_BYTES = 1200;
const CODEC_SHAPES: readonly (readonly [number, number])[] = [[4, 2], [10, 3], [20, 10]];
const BERNOULLI_LOSSES = [0.01, 0.05, 0.1, 0.2];
const BURSTY_LOSS = 0.05;
const BURSTY_MEAN_BURSTS = [2, 4];
/** Rate of the flow in the Bernoulli rows: high enough that every group fills before its hold expires. */
const BERNOULLI_PPS = 1000;
const BERNOULLI_HOLD_MS = 1000;
/** Rate of the flow in the bursty rows: a media-like flow, where interleaving has packets to work with. */
const BURSTY_PPS = 500;
const GAME_PPS = 60;
const MEDIA_PPS = 500;
const PATH_DELAY_MS = 20;
/** Game packets: small state updates. */
const GAME_BYTES_MIN = 60;
const GAME_BYTES_MAX = 200;
/** Media packets: mostly full fragments of encoded frames. */
const MEDIA_BYTES_MIN = 1000;
const MEDIA_BYTES_MAX = 1200;

/** Gilbert-Elliott with lossBad 1, lossGood 0 for a mean loss and mean burst (packets). */
export function gilbertSpec(loss: number, meanBurst: number): LinkModelSpec {
  const r = 1 / meanBurst;
  return { loss: { model: 'gilbert-elliott', p: (r * loss) / (1 - loss), r, lossBad: 1, lossGood: 0 } };
}

/** One row of the `codec` section. */
export interface CodecRow {
  k: number;
  r: number;
  shardBytes: number;
  encodeMBps: number;
  decodeMBps: number;
  baselineEncodeMBps: number;
  baselineDecodeMBps: number;
  speedupVsBaseline: number;
  backend: string;
}

/** Calls `fn` (which processes `bytesPerCall` data bytes) for about `ms` of wall time; returns MB/s (10^6 B/s). */
function throughputMBps(fn: () => void, bytesPerCall: number, ms: number): number {
  // Warm-up so the JIT has compiled the hot path before timing.
  const warmUntil = performance.now() + Math.min(50, ms / 4);
  while (performance.now() < warmUntil) fn();
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    for (let i = 0; i < 16; i++) fn();
    calls += 16;
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return (calls * bytesPerCall) / (elapsed / 1000) / 1e6;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Measures encode and reconstruct for one shape with both codecs; checks they agree first. */
export function measureCodec(codec: ReedSolomon, k: number, r: number, shardBytes: number, ms: number, seed: number): CodecRow {
  const rng = new Rng(seed);
  const data = Array.from({ length: k }, () => rng.fillBytes(new Uint8Array(shardBytes)));
  const parity = Array.from({ length: r }, () => new Uint8Array(shardBytes + 2));
  const baseline = new TextbookReedSolomon();
  const baselineParity = Array.from({ length: r }, () => new Uint8Array(shardBytes + 2));
  codec.encode(data, k, r, parity);
  baseline.encode(data, k, r, baselineParity);
  for (let i = 0; i < r; i++) {
    if (!parity[i].every((b, x) => b === baselineParity[i][x])) throw new Error(`bench fec: codec and textbook baseline disagree on parity ${i} of (${k},${r})`);
  }
  // Worst case for decode: as many data shards lost as parity can cover.
  const lost = Math.min(r, k);
  const shards: (Uint8Array | undefined)[] = [...data, ...parity];
  for (let j = 0; j < lost; j++) shards[j] = undefined;
  const recovered = Array.from({ length: k }, () => new Uint8Array(shardBytes));
  const lengths = new Int32Array(k);
  if (codec.reconstruct(k, r, shards, recovered, lengths) !== lost) throw new Error(`bench fec: reconstruct of (${k},${r}) failed`);
  const baselineRecovered = Array.from({ length: k }, () => new Uint8Array(shardBytes));
  baseline.reconstruct(k, r, shards, baselineRecovered, lengths);
  for (let j = 0; j < lost; j++) {
    if (!recovered[j].every((b, x) => b === data[j][x]) || !baselineRecovered[j].every((b, x) => b === data[j][x])) {
      throw new Error(`bench fec: reconstruct of (${k},${r}) returned wrong bytes`);
    }
  }
  const dataBytes = k * shardBytes;
  const encodeMBps = throughputMBps(() => codec.encode(data, k, r, parity), dataBytes, ms);
  const decodeMBps = throughputMBps(() => codec.reconstruct(k, r, shards, recovered, lengths), dataBytes, ms);
  const baselineEncodeMBps = throughputMBps(() => baseline.encode(data, k, r, baselineParity), dataBytes, ms);
  const baselineDecodeMBps = throughputMBps(() => baseline.reconstruct(k, r, shards, baselineRecovered, lengths), dataBytes, ms);
  return {
    k,
    r,
    shardBytes,
    encodeMBps: round(encodeMBps, 1),
    decodeMBps: round(decodeMBps, 1),
    baselineEncodeMBps: round(baselineEncodeMBps, 1),
    baselineDecodeMBps: round(baselineDecodeMBps, 1),
    speedupVsBaseline: round(encodeMBps / baselineEncodeMBps, 2),
    backend: codec.backend,
  };
}

/** One row of the `bernoulli` section. */
export interface BernoulliRow {
  k: number;
  r: number;
  loss: number;
  residual: number;
  theory: number;
  packets: number;
  seed: number;
}

/** One row of the `bursty` section. */
export interface BurstyRow {
  scheme: string;
  loss: number;
  meanBurst: number;
  residual: number;
  overhead: number;
  packets: number;
  seed: number;
  /** The scheme as configured (or, for `adaptive`, the one it used most). */
  detail: string;
}

/** One row of the `adaptive` section. */
export interface AdaptiveRow {
  flow: string;
  packetRatePps: number;
  phase: number;
  condition: string;
  loss: number;
  meanBurst: number;
  residual: number;
  overhead: number;
  addedLatencyMsP99: number;
  addedLatencyMsMax: number;
  packets: number;
  seed: number;
  scheme: string;
}

/** The whole report. */
export interface FecBenchReport {
  seed: number;
  packetsPerRow: number;
  backend: string;
  pathDelayMs: number;
  codec: CodecRow[];
  bernoulli: BernoulliRow[];
  bursty: BurstyRow[];
  adaptive: AdaptiveRow[];
  /** Sanity counters over every simulated flow: both must be 0. */
  checks: { deliveredTwice: number; corrupted: number };
}

/** Options of {@link runFecBench}. */
export interface FecBenchOptions {
  packets: number;
  seed: number;
  backend: 'auto' | 'wasm-simd' | 'js';
  codecMs: number;
  overheadMax: number;
  latencyBudgetMs: number;
  sections: ReadonlySet<string>;
}

/** Runs the benchmark; deterministic apart from the codec timings. */
export function runFecBench(options: FecBenchOptions): FecBenchReport {
  const codec = new ReedSolomon({ backend: options.backend });
  const seed = options.seed;
  const packets = options.packets;
  const checks = { deliveredTwice: 0, corrupted: 0 };
  const report: FecBenchReport = { seed, packetsPerRow: packets, backend: codec.backend, pathDelayMs: PATH_DELAY_MS, codec: [], bernoulli: [], bursty: [], adaptive: [], checks };
  // Each row gets its own seed derived from --seed, its section and its position (so
  // a row's figures do not depend on which other sections ran), printed with the row.
  const rowSeed = (section: number, row: number): number => (seed + Math.imul(section, 0x01000193) + Math.imul(row + 1, 0x9e3779b9)) >>> 0;

  if (options.sections.has('codec')) {
    for (const [k, r] of CODEC_SHAPES) report.codec.push(measureCodec(codec, k, r, SHARD_BYTES, options.codecMs, seed));
  }
  if (options.sections.has('bernoulli')) {
    for (const [k, r] of CODEC_SHAPES) {
      for (const loss of BERNOULLI_LOSSES) {
        const s = rowSeed(1, report.bernoulli.length);
        const result = runFlow({
          seed: s,
          packetRatePps: BERNOULLI_PPS,
          phases: [{ label: `${loss}`, link: { loss: { model: 'bernoulli', p: loss } }, packets }],
          scheme: { mode: 'rs', k, r, interleave: 1, holdMs: BERNOULLI_HOLD_MS },
          codec,
          delayMs: PATH_DELAY_MS,
        });
        checks.deliveredTwice += result.deliveredTwice;
        checks.corrupted += result.corrupted;
        report.bernoulli.push({ k, r, loss, residual: round(result.phases[0].residual, 7), theory: round(bernoulliResidual(k, r, loss), 7), packets, seed: s });
      }
    }
  }
  if (options.sections.has('bursty')) {
    const fixed: { name: string; scheme?: FecScheme }[] = [
      { name: 'rs(4,2)', scheme: { mode: 'rs', k: 4, r: 2, interleave: 1, holdMs: 20 } },
      // Four groups round-robin: a 4-packet burst costs each group one shard. The hold
      // covers the 16-packet stripe at 500 packets/s.
      { name: 'rs(4,2)x4', scheme: { mode: 'rs', k: 4, r: 2, interleave: 4, holdMs: 40 } },
      // One copy 10 ms later: 5 packets and 5 copies in between at 500 packets/s.
      { name: 'duplicate', scheme: { mode: 'duplicate', copies: 1, spacingMs: 10 } },
      { name: 'adaptive' },
    ];
    for (const meanBurst of BURSTY_MEAN_BURSTS) {
      for (const { name, scheme } of fixed) {
        const s = rowSeed(2, report.bursty.length);
        const result = runFlow({
          seed: s,
          packetRatePps: BURSTY_PPS,
          phases: [{ label: `GE ${BURSTY_LOSS}/${meanBurst}`, link: gilbertSpec(BURSTY_LOSS, meanBurst), packets }],
          scheme,
          adaptive: scheme ? undefined : { overheadMax: options.overheadMax, latencyBudgetMs: options.latencyBudgetMs },
          codec,
          delayMs: PATH_DELAY_MS,
          payloadBytesMin: MEDIA_BYTES_MIN,
          payloadBytesMax: MEDIA_BYTES_MAX,
        });
        checks.deliveredTwice += result.deliveredTwice;
        checks.corrupted += result.corrupted;
        const phase = result.phases[0];
        report.bursty.push({ scheme: name, loss: BURSTY_LOSS, meanBurst, residual: round(phase.residual, 7), overhead: round(phase.overhead, 4), packets, seed: s, detail: phase.mainScheme });
      }
    }
  }
  if (options.sections.has('adaptive')) {
    const conditions: { label: string; loss: number; meanBurst: number; link: LinkModelSpec }[] = [
      { label: 'clean', loss: 0, meanBurst: 0, link: {} },
      { label: '2% random', loss: 0.02, meanBurst: 1, link: { loss: { model: 'bernoulli', p: 0.02 } } },
      { label: '10% random', loss: 0.1, meanBurst: 1, link: { loss: { model: 'bernoulli', p: 0.1 } } },
      { label: '5% bursty (mean burst 2)', loss: 0.05, meanBurst: 2, link: gilbertSpec(0.05, 2) },
      { label: 'clean again', loss: 0, meanBurst: 0, link: {} },
    ];
    const flows = [
      { flow: 'game', pps: GAME_PPS, min: GAME_BYTES_MIN, max: GAME_BYTES_MAX },
      { flow: 'media', pps: MEDIA_PPS, min: MEDIA_BYTES_MIN, max: MEDIA_BYTES_MAX },
    ];
    for (const f of flows) {
      const s = rowSeed(3, report.adaptive.length);
      const phases: FlowPhase[] = conditions.map((c) => ({ label: c.label, link: c.link, packets }));
      const result = runFlow({
        seed: s,
        packetRatePps: f.pps,
        phases,
        adaptive: { overheadMax: options.overheadMax, latencyBudgetMs: options.latencyBudgetMs },
        codec,
        delayMs: PATH_DELAY_MS,
        payloadBytesMin: f.min,
        payloadBytesMax: f.max,
      });
      checks.deliveredTwice += result.deliveredTwice;
      checks.corrupted += result.corrupted;
      result.phases.forEach((phase, i) => {
        report.adaptive.push({
          flow: f.flow,
          packetRatePps: f.pps,
          phase: i,
          condition: conditions[i].label,
          loss: conditions[i].loss,
          meanBurst: conditions[i].meanBurst,
          residual: round(phase.residual, 7),
          overhead: round(phase.overhead, 4),
          addedLatencyMsP99: phase.addedLatencyMsP99,
          addedLatencyMsMax: round(phase.addedLatencyMsMax, 2),
          packets,
          seed: s,
          scheme: phase.mainScheme,
        });
      });
    }
  }
  return report;
}

function pct(fraction: number, digits = 3): string {
  return `${(fraction * 100).toFixed(digits)}%`;
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Renders the report as readable tables. */
export function formatFecBench(report: FecBenchReport): string {
  const out: string[] = [`slipstream bench fec — seed ${report.seed}, ${report.packetsPerRow} packets per row, codec backend ${report.backend}, path delay ${report.pathDelayMs} ms`];
  if (report.codec.length > 0) {
    out.push('', 'Codec, 1200-byte shards, one core (MB/s of data; decode rebuilds min(r, k) lost data shards):');
    out.push(table(['(k,r)', 'encode', 'decode', 'textbook enc', 'textbook dec', 'speedup'], report.codec.map((c) => [
      `(${c.k},${c.r})`, c.encodeMBps.toFixed(0), c.decodeMBps.toFixed(0), c.baselineEncodeMBps.toFixed(0), c.baselineDecodeMBps.toFixed(0), `${c.speedupVsBaseline.toFixed(1)}×`,
    ])));
  }
  if (report.bernoulli.length > 0) {
    out.push('', 'Residual loss under Bernoulli loss vs the MDS bound p·P[Bin(k+r−1,p) ≥ r]:');
    out.push(table(['(k,r)', 'loss', 'residual', 'theory', 'ratio'], report.bernoulli.map((b) => [
      `(${b.k},${b.r})`, pct(b.loss, 0), pct(b.residual, 4), pct(b.theory, 4), b.theory > 0 ? (b.residual / b.theory).toFixed(2) : '-',
    ])));
  }
  if (report.bursty.length > 0) {
    out.push('', `Gilbert-Elliott loss, ${BURSTY_PPS} packets/s:`);
    out.push(table(['scheme', 'loss', 'mean burst', 'residual', 'overhead', 'detail'], report.bursty.map((b) => [
      b.scheme, pct(b.loss, 0), b.meanBurst.toFixed(0), pct(b.residual), pct(b.overhead, 1), b.detail,
    ])));
  }
  if (report.adaptive.length > 0) {
    out.push('', 'Adaptive controller over 0% → 2% → 10% → bursty 5% → 0% (added latency beyond the bare path):');
    out.push(table(['flow', 'phase', 'residual', 'overhead', 'p99 added', 'max added', 'main scheme'], report.adaptive.map((a) => [
      `${a.flow} ${a.packetRatePps}pps`, a.condition, pct(a.residual), pct(a.overhead, 1), `${a.addedLatencyMsP99.toFixed(1)} ms`, `${a.addedLatencyMsMax.toFixed(1)} ms`, a.scheme,
    ])));
  }
  out.push('', `checks: delivered twice ${report.checks.deliveredTwice}, corrupted ${report.checks.corrupted}`);
  return `${out.join('\n')}\n`;
}

/** `slipstream bench fec`. */
export const fecBenchCommand: Command = flagCommand({
  path: 'bench fec',
  summary: 'FEC codec speed vs a textbook codec, residual loss vs theory, bursty loss, adaptive controller',
  helpText: 'Measures the FEC codec and the FEC sender/receiver over simulated lossy paths in virtual time.',
  flags: FLAGS,
  async run({ values }, io, argv) {
    const quick = bool(values, 'quick');
    const sections = new Set((str(values, 'sections') ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''));
    for (const s of sections) {
      if (!['codec', 'bernoulli', 'bursty', 'adaptive'].includes(s)) {
        const { CliUsageError } = await import('../proto/src/errors.js');
        throw new CliUsageError('--sections', `--sections: '${s}' is not one of codec, bernoulli, bursty, adaptive`);
      }
    }
    const report = runFecBench({
      packets: quick && !flagGiven(argv, 'packets') ? QUICK_PACKETS : (num(values, 'packets') as number),
      seed: num(values, 'seed') as number,
      backend: str(values, 'backend') as 'auto' | 'wasm-simd' | 'js',
      codecMs: quick && !flagGiven(argv, 'codec-ms') ? QUICK_CODEC_MS : (num(values, 'codec-ms') as number),
      overheadMax: num(values, 'overhead-max') as number,
      latencyBudgetMs: num(values, 'latency-budget-ms') as number,
      sections,
    });
    io.out(bool(values, 'json') ? `${JSON.stringify(report)}\n` : formatFecBench(report));
    return report.checks.deliveredTwice === 0 && report.checks.corrupted === 0 ? 0 : 1;
  },
});
