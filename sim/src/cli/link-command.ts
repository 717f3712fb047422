/**
 * `slipstream sim link`: pushes N packets through one simulated link and prints what
 * came out, so anyone can see what a model does before trusting it in a scenario.
 *
 * `--json` prints one JSON object that depends only on the flags (same seed ⇒ the same
 * bytes); how long the run took is CPU- and machine-dependent, so it goes to stderr
 * (with `--json`) or into the table, never into the JSON.
 */
import { performance } from 'node:perf_hooks';
import type { Command, CommandIo } from '../../../kit/command.js';
import { bool, formatHelp, num, numList, parseFlags, str, type FlagSpec, type FlagValues } from '../../../kit/flags.js';
import { CliUsageError, SimConfigError } from '../../../proto/src/errors.js';
import { runLinkExperiment, type LinkReport } from '../core/link-experiment.js';
import { LINK_DELAY_MS_MAX, LINK_MTU_BYTES_MAX, LINK_QUEUE_PACKETS_DEFAULT, LINK_QUEUE_PACKETS_MAX, LINK_RATE_KBPS_MAX, validateLinkModel, type JitterDistribution, type LinkModelSpec } from '../core/link.js';

/** Most packets one run may send: the statistics keep ~17 bytes per packet. */
export const SIM_LINK_PACKETS_MAX = 20_000_000;

const USAGE =
  'slipstream sim link --seed S --packets N --pps R [--delay-ms D --jitter-ms J --jitter-dist normal|uniform|pareto --keep-order] ' +
  '[--loss P | --ge p,r,lossBad,lossGood | --loss-4state p13,p31,p32,p23,p14] [--dup P] [--reorder P] [--corrupt P] ' +
  '[--rate-kbps K --queue-packets Q] [--mtu B] [--blackout-ms START,END] [--size-bytes B] [--json]';

const probability = { type: 'number', valueName: 'P', min: 0, max: 1 } as const;

/** The flags of `slipstream sim link`. */
export const linkFlags: Readonly<Record<string, FlagSpec>> = {
  seed: { type: 'integer', valueName: 'S', min: 0, max: Number.MAX_SAFE_INTEGER, default: 1, description: 'Seed of every random draw; the same seed gives the same output' },
  packets: { type: 'integer', valueName: 'N', min: 1, max: SIM_LINK_PACKETS_MAX, default: 10_000, description: 'Packets to send' },
  pps: { type: 'number', valueName: 'R', min: 0.001, max: 1e9, default: 1000, description: 'Send rate in packets per second of virtual time (evenly spaced)' },
  'size-bytes': { type: 'integer', valueName: 'B', min: 0, max: 65_535, default: 200, description: 'Size of every packet in bytes' },
  'delay-ms': { type: 'number', valueName: 'D', min: 0, max: LINK_DELAY_MS_MAX, default: 0, description: 'Fixed one-way delay in ms' },
  'jitter-ms': { type: 'number', valueName: 'J', min: 0, max: LINK_DELAY_MS_MAX, default: 0, description: 'Jitter in ms: ±J (uniform), standard deviation (normal), scale (pareto)' },
  'jitter-dist': { type: 'string', choices: ['uniform', 'normal', 'pareto'], default: 'uniform', description: 'Jitter distribution' },
  'keep-order': { type: 'boolean', description: 'Never deliver a packet before an earlier one (netem jitter reorders; real paths rarely do)' },
  loss: { ...probability, description: 'Bernoulli loss probability per packet' },
  ge: { type: 'numberList', valueName: 'p,r,lossBad,lossGood', count: 4, min: 0, max: 1, description: "Gilbert-Elliott loss, netem 'gemodel p r 1-h 1-k' order" },
  'loss-4state': { type: 'numberList', valueName: 'p13,p31,p32,p23,p14', count: 5, min: 0, max: 1, description: "netem 4-state loss ('loss state p13 p31 p32 p23 p14')" },
  dup: { ...probability, description: 'Duplication probability per packet' },
  reorder: { ...probability, description: 'Probability that a packet skips the delay (netem reorder)' },
  corrupt: { ...probability, description: 'Probability that a packet gets one bit flipped' },
  'rate-kbps': { type: 'number', valueName: 'K', min: 1, max: LINK_RATE_KBPS_MAX, description: 'Bottleneck rate in kbit/s (1 kbit = 1000 bits); unlimited when absent' },
  'queue-packets': { type: 'integer', valueName: 'Q', min: 1, max: LINK_QUEUE_PACKETS_MAX, description: `Rate-limiter queue in packets incl. the one being sent, tail drop beyond; needs --rate-kbps; ${LINK_QUEUE_PACKETS_DEFAULT} when absent` },
  mtu: { type: 'integer', valueName: 'B', min: 1, max: LINK_MTU_BYTES_MAX, description: 'Drop packets larger than B bytes; no limit when absent' },
  'blackout-ms': { type: 'numberList', valueName: 'START,END', count: 2, min: 0, max: Number.MAX_SAFE_INTEGER, description: 'Drop every packet sent in [START, END) ms of virtual time' },
  json: { type: 'boolean', description: 'Print one JSON object (deterministic for a given seed) instead of a table' },
};

/** Which flag set a link-model parameter, for turning a model error into a usage error. */
const flagOfParameter: Readonly<Record<string, string>> = {
  delayMs: '--delay-ms',
  jitterMs: '--jitter-ms',
  jitterDist: '--jitter-dist',
  dupProbability: '--dup',
  reorderProbability: '--reorder',
  corruptProbability: '--corrupt',
  rateKbps: '--rate-kbps',
  queuePackets: '--queue-packets',
  mtuBytes: '--mtu',
  blackouts: '--blackout-ms',
};

/** Builds the link model from parsed flags; throws {@link CliUsageError} on conflicting flags. */
export function linkModelFromFlags(values: FlagValues): LinkModelSpec {
  const given = (['loss', 'ge', 'loss-4state'] as const).filter((name) => values[name] !== undefined);
  if (given.length > 1) {
    throw new CliUsageError(`--${given[1]}`, `--${given[0]} and --${given[1]} both set a loss model; give only one of --loss, --ge, --loss-4state`);
  }
  const spec: LinkModelSpec = {
    delayMs: num(values, 'delay-ms') ?? 0,
    jitterMs: num(values, 'jitter-ms') ?? 0,
    jitterDist: (str(values, 'jitter-dist') ?? 'uniform') as JitterDistribution,
    keepOrder: bool(values, 'keep-order'),
  };
  const loss = num(values, 'loss');
  const ge = numList(values, 'ge');
  const fourState = numList(values, 'loss-4state');
  if (loss !== undefined) spec.loss = { model: 'bernoulli', p: loss };
  if (ge !== undefined) spec.loss = { model: 'gilbert-elliott', p: ge[0]!, r: ge[1]!, lossBad: ge[2]!, lossGood: ge[3]! };
  if (fourState !== undefined) {
    const [p13, p31, p32, p23, p14] = fourState as [number, number, number, number, number];
    if (p13 + p14 > 1 || p31 + p32 > 1) {
      throw new CliUsageError('--loss-4state', `--loss-4state: p13 + p14 and p31 + p32 must each be at most 1 (a state's exits), got ${p13 + p14} and ${p31 + p32}`);
    }
    spec.loss = { model: '4-state', p13, p31, p32, p23, p14 };
  }
  const dup = num(values, 'dup');
  if (dup !== undefined) spec.dupProbability = dup;
  const reorder = num(values, 'reorder');
  if (reorder !== undefined) spec.reorderProbability = reorder;
  const corrupt = num(values, 'corrupt');
  if (corrupt !== undefined) spec.corruptProbability = corrupt;
  const rateKbps = num(values, 'rate-kbps');
  const queuePackets = num(values, 'queue-packets');
  if (queuePackets !== undefined && rateKbps === undefined) {
    throw new CliUsageError('--queue-packets', '--queue-packets: only means something with --rate-kbps (the queue in front of the bottleneck); add --rate-kbps K');
  }
  if (rateKbps !== undefined) spec.rateKbps = rateKbps;
  if (queuePackets !== undefined) spec.queuePackets = queuePackets;
  const mtu = num(values, 'mtu');
  if (mtu !== undefined) spec.mtuBytes = mtu;
  const blackout = numList(values, 'blackout-ms');
  if (blackout !== undefined) {
    if (!(blackout[1]! > blackout[0]!)) throw new CliUsageError('--blackout-ms', `--blackout-ms: END (${blackout[1]}) must be greater than START (${blackout[0]})`);
    spec.blackouts = [{ startMs: blackout[0]!, endMs: blackout[1]! }];
  }
  try {
    validateLinkModel(spec);
  } catch (error) {
    // The flags' own ranges should have caught everything; if not, still name the flag.
    if (error instanceof SimConfigError) {
      const key = error.parameter.replace(/^link\./, '').split(/[.[]/)[0]!;
      const flag = key === 'loss' ? `--${given[0] ?? 'loss'}` : (flagOfParameter[key] ?? error.parameter);
      throw new CliUsageError(flag, `${flag}: ${error.message}`);
    }
    throw error;
  }
  return spec;
}

function percent(rate: number): string {
  return `${(rate * 100).toFixed(3)} %`;
}

function describeModel(spec: LinkModelSpec): string {
  const parts: string[] = [`delay ${spec.delayMs ?? 0} ms`];
  if (spec.jitterMs) parts.push(`jitter ${spec.jitterMs} ms ${spec.jitterDist ?? 'uniform'}`);
  if (spec.keepOrder) parts.push('keep order');
  const loss = spec.loss;
  if (loss?.model === 'bernoulli') parts.push(`loss ${loss.p}`);
  if (loss?.model === 'gilbert-elliott') parts.push(`gemodel p ${loss.p} r ${loss.r} lossBad ${loss.lossBad} lossGood ${loss.lossGood}`);
  if (loss?.model === '4-state') parts.push(`loss state ${loss.p13} ${loss.p31} ${loss.p32} ${loss.p23} ${loss.p14}`);
  if (spec.dupProbability) parts.push(`dup ${spec.dupProbability}`);
  if (spec.reorderProbability) parts.push(`reorder ${spec.reorderProbability}`);
  if (spec.corruptProbability) parts.push(`corrupt ${spec.corruptProbability}`);
  if (spec.rateKbps) parts.push(`rate ${spec.rateKbps} kbit/s queue ${spec.queuePackets ?? LINK_QUEUE_PACKETS_DEFAULT}`);
  if (spec.mtuBytes) parts.push(`mtu ${spec.mtuBytes} B`);
  for (const w of spec.blackouts ?? []) parts.push(`blackout ${w.startMs}–${w.endMs} ms`);
  return parts.join(', ');
}

function formatTable(report: LinkReport, spec: LinkModelSpec, values: FlagValues, timing: string): string {
  const l = report.latencyMs;
  const rows: [string, string][] = [
    ['sent', `${report.sent}`],
    ['delivered', `${report.delivered}`],
    ['lost', `${report.lost} (${percent(report.lossRate)})`],
    ['loss bursts', `mean ${report.meanBurstLength.toFixed(3)}, max ${report.maxBurstLength} packets`],
    ['latency ms', `min ${l.min.toFixed(3)}  mean ${l.mean.toFixed(3)}  p50 ${l.p50.toFixed(3)}  p90 ${l.p90.toFixed(3)}  p99 ${l.p99.toFixed(3)}  max ${l.max.toFixed(3)}`],
    ['reordered', `${report.reordered}`],
    ['duplicated', `${report.duplicated}`],
    ['corrupted', `${report.corrupted}`],
    ['drops', Object.entries(report.drops).map(([reason, count]) => `${reason} ${count}`).join(', ')],
    ['throughput', `${report.throughputKbps.toFixed(1)} kbit/s (offered ${report.offeredKbps.toFixed(1)} kbit/s)`],
    ['virtual time', `${report.durationMs.toFixed(3)} ms, ${report.events} events`],
    ['speed', timing],
  ];
  const width = Math.max(...rows.map(([name]) => name.length)) + 2;
  const header = `slipstream sim link: seed ${report.seed}, ${report.sent} packets of ${num(values, 'size-bytes')} B at ${num(values, 'pps')} pps\nmodel: ${describeModel(spec)}\n\n`;
  return header + rows.map(([name, value]) => `  ${name.padEnd(width)}${value}`).join('\n') + '\n';
}

async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const { values } = parseFlags('sim link', argv, linkFlags);
  if (values.help === true) {
    io.out(formatHelp(USAGE, 'Pushes N evenly spaced packets through one simulated link (sender → receiver) and prints what came out.', linkFlags));
    return 0;
  }
  const spec = linkModelFromFlags(values);
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  const report = runLinkExperiment({ seed: num(values, 'seed')!, packets: num(values, 'packets')!, pps: num(values, 'pps')!, sizeBytes: num(values, 'size-bytes')!, model: spec });
  const cpu = process.cpuUsage(cpuBefore);
  const wallS = (performance.now() - wallBefore) / 1000;
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const packetsPerCpuSecond = cpuS > 0 ? Math.round(report.sent / cpuS) : 0;
  const timing = `${packetsPerCpuSecond} packets per CPU-second (${cpuS.toFixed(3)} s CPU, ${wallS.toFixed(3)} s wall)`;
  if (bool(values, 'json')) {
    io.out(`${JSON.stringify(report)}\n`);
    io.err(`sim link: ${report.sent} packets, ${timing}\n`);
  } else {
    io.out(formatTable(report, spec, values, timing));
  }
  return 0;
}

/** The `slipstream sim link` command. */
export const linkCommand: Command = {
  name: 'link',
  summary: 'Push N packets through one simulated link and print loss, bursts, latency, reordering.',
  run,
};
