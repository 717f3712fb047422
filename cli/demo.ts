/**
 * `slipstream demo`: what players would feel. Four players on different last miles
 * send game traffic (60 packets/s of 80–160 bytes) to a game server; each path runs
 * in the simulator's virtual time, once bare and once protected by Slipstream's
 * adaptive FEC, and the demo prints both side by side. It runs in a second or two and
 * needs nothing but `npm ci`. It grows with the relay, coordinator and SDK.
 */
import { ReedSolomon } from '../proto/src/fec/rs.js';
import { runFlow } from '../bench/fec-flow.js';
import type { LinkModelSpec } from '../sim/src/core/link.js';
import type { Command } from './command.js';
import { bool, formatHelp, num, parseFlags, type FlagSpec } from './flags.js';

const flags: Record<string, FlagSpec> = {
  seed: { type: 'integer', min: 0, max: 0xffff_ffff, default: 1, description: 'Seed of every simulated link' },
  seconds: { type: 'integer', min: 5, max: 3600, default: 60, description: 'Simulated seconds per player' },
  json: { type: 'boolean', description: 'Print one JSON object instead of a table' },
};

/** A player's last mile. */
interface Player {
  readonly name: string;
  readonly description: string;
  readonly link: LinkModelSpec;
}

/** Gilbert-Elliott parameters for a mean loss and mean burst length, losing every packet in the bad state. */
function bursty(meanLoss: number, meanBurst: number): LinkModelSpec {
  const r = 1 / meanBurst;
  return { loss: { model: 'gilbert-elliott', p: (r * meanLoss) / (1 - meanLoss), r, lossBad: 1, lossGood: 0 } };
}

const players: readonly Player[] = [
  { name: 'fibre', description: 'clean fibre', link: {} },
  { name: 'dsl', description: 'DSL, 1 % random loss', link: { loss: { model: 'bernoulli', p: 0.01 } } },
  { name: 'wifi', description: 'busy Wi-Fi, 5 % loss in bursts of 3', link: bursty(0.05, 3) },
  { name: 'mobile', description: 'mobile edge, 10 % random loss', link: { loss: { model: 'bernoulli', p: 0.1 } } },
];

const PACKET_RATE_PPS = 60;
const PATH_DELAY_MS = 25;

/** One player's row of the demo's report. */
export interface DemoPlayerRow {
  player: string;
  lastMile: string;
  /** Loss the game sees on the bare path (fraction). */
  lossRaw: number;
  /** Loss the game sees through Slipstream's FEC (fraction). */
  lossAfterFec: number;
  /** Extra bytes FEC sent (fraction of the game's bytes). */
  fecOverhead: number;
  /** 99th percentile of the latency FEC added, ms. */
  addedLatencyMsP99: number;
  /** The protection the adaptive controller used most. */
  scheme: string;
}

/** Runs the demo's simulations; deterministic for a seed. */
export function runDemo(seed: number, seconds: number): { players: DemoPlayerRow[]; loss: { raw: number; afterFec: number } } {
  const codec = new ReedSolomon();
  const packets = seconds * PACKET_RATE_PPS;
  const rows = players.map((player, index): DemoPlayerRow => {
    const common = { seed: seed * 16 + index, packetRatePps: PACKET_RATE_PPS, codec, delayMs: PATH_DELAY_MS, phases: [{ label: player.name, link: player.link, packets }] };
    const bare = runFlow({ ...common, scheme: { mode: 'off' } });
    const protectedFlow = runFlow({ ...common, adaptive: {} });
    const phase = protectedFlow.phases[0]!;
    return {
      player: player.name,
      lastMile: player.description,
      lossRaw: bare.phases[0]!.residual,
      lossAfterFec: phase.residual,
      fecOverhead: phase.overhead,
      addedLatencyMsP99: phase.addedLatencyMsP99,
      scheme: phase.mainScheme,
    };
  });
  // Overall figures weigh every player's packets equally (they all send the same count).
  const raw = rows.reduce((sum, r) => sum + r.lossRaw, 0) / rows.length;
  const afterFec = rows.reduce((sum, r) => sum + r.lossAfterFec, 0) / rows.length;
  return { players: rows, loss: { raw, afterFec } };
}

const percent = (fraction: number): string => `${(fraction * 100).toFixed(2)} %`;

/** The `demo` command. */
export const demoCommand: Command = {
  name: 'demo',
  summary: 'Run a small simulated network and print what players would feel, with and without Slipstream.',
  async run(argv, io) {
    const { values } = parseFlags('demo', argv, flags);
    if (bool(values, 'help')) {
      io.out(formatHelp('slipstream demo [flags]', demoCommand.summary, flags));
      return 0;
    }
    const seed = num(values, 'seed')!;
    const seconds = num(values, 'seconds')!;
    const report = runDemo(seed, seconds);
    if (bool(values, 'json')) {
      io.out(`${JSON.stringify({ seed, seconds, packetRatePps: PACKET_RATE_PPS, ...report })}\n`);
      return 0;
    }
    const lines = [
      `Slipstream demo: ${players.length} players, ${PACKET_RATE_PPS} packets/s each for ${seconds} simulated s, ${PATH_DELAY_MS} ms to the game server (seed ${seed})`,
      '',
      `${'player'.padEnd(8)}${'last mile'.padEnd(38)}${'loss direct'.padStart(12)}${'with FEC'.padStart(11)}${'overhead'.padStart(10)}${'+p99 ms'.padStart(9)}  scheme`,
      ...report.players.map((r) => `${r.player.padEnd(8)}${r.lastMile.padEnd(38)}${percent(r.lossRaw).padStart(12)}${percent(r.lossAfterFec).padStart(11)}${percent(r.fecOverhead).padStart(10)}${r.addedLatencyMsP99.toFixed(1).padStart(9)}  ${r.scheme}`),
      '',
      `Loss the game sees, all players: ${percent(report.loss.raw)} direct → ${percent(report.loss.afterFec)} with Slipstream's adaptive FEC.`,
      `Try other conditions with 'slipstream sim link --help' and 'slipstream bench fec'.`,
      '',
    ];
    io.out(lines.join('\n'));
    return 0;
  },
};
