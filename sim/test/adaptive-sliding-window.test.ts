/**
 * The adaptive sliding-window FEC (the default: SDK offers `sw` first, relays list it
 * first) in the simulator, on the last-mile cases: a player at 60 packets/s of
 * 100 bytes behind one access link (every packet of the player crosses it, to the
 * relays and the game server alike) with 10 ms each way, two relays, both directions
 * protected by their own controller from the other end's reports. The targets are the
 * ones `slipstream bench qoe` measures on real processes: 10 % random loss → delivered
 * loss < 0.1 % and p99 ≤ direct + 10 ms; 5 % in bursts of 2 → < 0.3 % and p99 ≤
 * direct + 20 ms; 1 % random → < 0.01 % with FEC overhead ≤ 50 %. A failure names the
 * seed: `slipstream sim run FILE --seed S` replays it (the file is in the message).
 *
 * The benchmark's loss is of round trips (an echo that never came back), the
 * simulator's of one-way deliveries (sim/src/scenario/qoe.ts): a round trip crosses two,
 * so each target here is half the benchmark's (0.1 % of round trips ≈ 0.05 % of
 * deliveries).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseScenario } from '../src/scenario/load.js';
import { runScenario } from '../src/scenario/run.js';

/** A scenario file for one last-mile loss model (YAML flow syntax). */
function scenarioYaml(loss: string): string {
  return `version: 1
name: adaptive-sw
duration: 60s
regions: [eu]
coordinator: { region: eu }
origins:
  - { name: game, region: eu }
relays:
  - { name: relay-a, region: eu }
  - { name: relay-b, region: eu }
clients:
  - name: player
    region: eu
    count: 2
    traffic: { kind: game, packetsPerSecond: 60, bytes: 100 }
    access:
      both: { delayMs: 10, loss: ${loss} }
links:
  - between: [player, game]
    model: { delayMs: 20 }
  - between: [player, relay-a]
    model: { delayMs: 2 }
  - between: [player, relay-b]
    model: { delayMs: 4 }
  - between: [relay-a, game]
    model: { delayMs: 18 }
  - between: [relay-b, game]
    model: { delayMs: 19 }
  - between: [coordinator, "*"]
    model: { delayMs: 5 }
`;
}

const CASES = [
  { name: '10 % random', directLossMin: 0.07, loss: `{ model: bernoulli, p: 0.1 }`, lossMax: 0.001 / 2, addedP99MsMax: 10, overheadMax: Number.POSITIVE_INFINITY },
  { name: '5 % in bursts of 2', directLossMin: 0.03, loss: `{ model: gilbert-elliott, p: ${(0.05 * 0.5) / 0.95}, r: 0.5, lossBad: 1, lossGood: 0 }`, lossMax: 0.003 / 2, addedP99MsMax: 20, overheadMax: Number.POSITIVE_INFINITY },
  { name: '1 % random', directLossMin: 0.005, loss: `{ model: bernoulli, p: 0.01 }`, lossMax: 0.0001 / 2, addedP99MsMax: Number.POSITIVE_INFINITY, overheadMax: 0.5 },
];

test('adaptive sw on a shared last mile: 10 % random, 5 % bursty and 1 % random loss meet the benchmark targets (mean of 3 seeds)', (t) => {
  const seeds = [1, 2, 3];
  for (const c of CASES) {
    const yaml = scenarioYaml(c.loss);
    let loss = 0;
    let addedP99 = 0;
    let overhead = 0;
    for (const seed of seeds) {
      const { report } = runScenario(parseScenario('adaptive-sw.yaml', yaml), seed);
      const s = report.slipstream;
      const d = report.direct;
      assert.ok(s.latencyMs.p99 !== null && d.latencyMs.p99 !== null, `${c.name}, seed ${seed}: no round trips measured`);
      t.diagnostic(`${c.name}, seed ${seed}: loss direct ${(d.loss * 100).toFixed(2)} % slipstream ${(s.loss * 100).toFixed(4)} %; p99 ${d.latencyMs.p99} / ${s.latencyMs.p99} ms; FEC overhead ${(s.fecOverhead * 100).toFixed(1)} %`);
      assert.ok(d.loss > c.directLossMin, `${c.name}, seed ${seed}: the direct path should lose (${d.loss})`);
      loss += s.loss / seeds.length;
      addedP99 += (s.latencyMs.p99 - d.latencyMs.p99) / seeds.length;
      overhead += s.fecOverhead / seeds.length;
    }
    // Deterministic per seed: a failure replays with the file below and `--seed 1` (2, 3).
    const where = `${c.name} (seeds ${seeds.join(', ')}; scenario:\n${yaml})`;
    assert.ok(loss < c.lossMax, `${where}: delivered loss ${loss} ≥ ${c.lossMax}`);
    assert.ok(addedP99 <= c.addedP99MsMax, `${where}: p99 ${addedP99} ms over direct`);
    assert.ok(overhead <= c.overheadMax, `${where}: FEC overhead ${overhead}`);
  }
});
