/**
 * Issue 7: swarm testing in CI. A fixed range of seeds, each a random deployment and
 * fault schedule on the real cores, safety then liveness, every invariant checked.
 * Any failure prints the command that replays it. The seed count is chosen so the run
 * stays well inside the CI budget (about 0.1–0.2 s of CPU per seed); run more with
 * `slipstream sim swarm --seeds 10000 --from 1000` (sim/README.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planSwarm, replayCommand, runSwarmSeed } from '../src/swarm/swarm.js';
import { runCli } from '../../test/support/run-cli.js';

/** Seeds CI runs: 1 … SEEDS. */
const SEEDS = 240;

/**
 * Seeds that fail because of known, reported bugs in other parts (seed → reason); CI
 * fails on any other failure, and when a listed one starts passing, so the list stays
 * honest. Empty now: seed 128 (a restarted relay black-holing a session it lost) and
 * the refused-relay loop found by small session caps were fixed in the relay and SDK.
 */
const KNOWN_FAILURES = new Map<number, string>();

test(`swarm: seeds 1–${SEEDS}, faults then healing; invariants hold (wrong origin, duplicates, recovery, relay limits)`, (t) => {
  const failures: string[] = [];
  const knownSeen = new Set<number>();
  let players = 0;
  let faults = 0;
  let crossRelay = 0;
  let simulatedMs = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const result = runSwarmSeed(seed);
    players += result.players;
    faults += result.faults;
    crossRelay += result.crossRelayDuplicates;
    simulatedMs += result.simulatedMs;
    if (result.violations.length === 0) continue;
    if (KNOWN_FAILURES.has(seed) && result.violations.every((v) => v.invariant === 'recovery')) {
      knownSeen.add(seed);
      t.diagnostic(`known failure, seed ${seed} (${KNOWN_FAILURES.get(seed)}): ${result.violations.map((v) => v.detail).join('; ')}; replay: ${replayCommand(seed)}`);
      continue;
    }
    failures.push(`seed ${seed}: ${result.violations.map((v) => `${v.invariant}: ${v.detail}`).join('; ')}\n  replay: ${replayCommand(seed)}`);
  }
  t.diagnostic(`${SEEDS} seeds: ${players} players, ${faults} faults, ${(simulatedMs / 1000).toFixed(0)} simulated s; ${crossRelay} upstream copies reached an origin again through a second relay`);
  assert.deepEqual(failures, [], failures.join('\n'));
  for (const seed of KNOWN_FAILURES.keys()) assert.ok(knownSeen.has(seed), `seed ${seed} passes now: remove it from KNOWN_FAILURES (${replayCommand(seed)})`);
});

test('swarm: a seed is a pure function (same plan and result twice); plans vary with the seed', () => {
  assert.deepEqual(runSwarmSeed(7), runSwarmSeed(7));
  assert.notDeepEqual(planSwarm(7).scenario, planSwarm(8).scenario);
  const plan = planSwarm(7);
  assert.ok(plan.scenario.events.every((e) => e.atMs <= plan.healMs), 'every fault starts before healing');
});

test('sim swarm: a failing seed prints the command that replays it and exits 1; a passing range exits 0', async () => {
  // A known failure shows the output a failing seed gets (once fixed, the first test asks to drop it).
  const known = [...KNOWN_FAILURES.keys()][0];
  if (known !== undefined) {
    const failing = await runCli(['sim', 'swarm', '--seeds', '1', '--from', String(known)], 60_000);
    assert.equal(failing.code, 1, failing.stderr);
    assert.match(failing.stdout, new RegExp(`seed ${known}: FAILED`));
    assert.match(failing.stdout, new RegExp(`replay: slipstream sim swarm --seeds 1 --from ${known}\n`));
  }
  const passing = await runCli(['sim', 'swarm', '--seeds', '3', '--from', '1', '--verbose'], 60_000);
  assert.equal(passing.code, 0, passing.stdout);
  assert.match(passing.stdout, /swarm: 3 seeds from 1: 3 passed, 0 failed/);
  const bad = await runCli(['sim', 'swarm', '--seeds', '0']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--seeds/);
});
