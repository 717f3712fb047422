/**
 * `slipstream sim swarm --seeds N [--from S] [--json] [--verbose]`: runs seeds S … S+N−1 of the
 * swarm (`sim/src/swarm/swarm.ts`): a random deployment and fault schedule per seed,
 * a safety phase under faults, a liveness phase after healing, and the invariants.
 * Prints one line per failing seed with the command that replays it, and a summary;
 * exits 1 when any invariant broke.
 */
import { flagCommand, type Command } from '../../../kit/command.js';
import { bool, num, type FlagSpec } from '../../../kit/flags.js';
import { replayCommand, runSwarmSeed, type SwarmResult } from '../swarm/swarm.js';

const FLAGS: Record<string, FlagSpec> = {
  seeds: { type: 'integer', min: 1, max: 10_000_000, default: 100, description: 'How many seeds to run' },
  from: { type: 'integer', min: 0, max: 0xffff_ffff, default: 1, description: 'First seed' },
  json: { type: 'boolean', description: 'Print one JSON object per seed (JSON lines) instead of the summary' },
  verbose: { type: 'boolean', description: 'Print every seed, not only the failing ones' },
};

const SUMMARY = 'Swarm testing: random topologies and fault schedules per seed, safety then liveness, invariants checked; failures print the command that replays them.';

/** The `sim swarm` command. */
export const swarmCommand: Command = flagCommand({
  path: 'sim swarm',
  summary: SUMMARY,
  usage: 'slipstream sim swarm --seeds N [--from S] [--json] [--verbose]',
  flags: FLAGS,
  async run({ values }, io) {
    const count = num(values, 'seeds')!;
    const from = num(values, 'from')!;
    const json = bool(values, 'json');
    const started = performance.now();
    let failed = 0;
    let simulatedMs = 0;
    let crossRelayDuplicates = 0;
    for (let seed = from; seed < from + count; seed++) {
      const result: SwarmResult = runSwarmSeed(seed);
      simulatedMs += result.simulatedMs;
      crossRelayDuplicates += result.crossRelayDuplicates;
      if (json) io.out(`${JSON.stringify({ ...result, replay: replayCommand(seed) })}\n`);
      if (result.violations.length > 0) {
        failed++;
        if (!json) {
          io.out(`seed ${seed}: FAILED (${result.players} players, ${result.relays} relays, ${result.faults} faults)\n`);
          for (const v of result.violations) io.out(`  ${v.invariant}: ${v.detail}\n`);
          io.out(`  replay: ${replayCommand(seed)}\n`);
        }
      } else if (bool(values, 'verbose') && !json) {
        io.out(`seed ${seed}: ok (${result.players} players, ${result.relays} relays, ${result.faults} faults, ${result.crossRelayDuplicates} cross-relay duplicates)\n`);
      }
    }
    const wallMs = performance.now() - started;
    const summary = `swarm: ${count} seeds from ${from}: ${count - failed} passed, ${failed} failed; ${(simulatedMs / 1000).toFixed(0)} simulated s in ${(wallMs / 1000).toFixed(1)} s of wall time; ${crossRelayDuplicates} upstream copies reached an origin again through a second relay (each one a violation)\n`;
    if (json) io.err(summary);
    else io.out(summary);
    return failed === 0 ? 0 : 1;
  },
});
