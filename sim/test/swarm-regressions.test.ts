/**
 * Swarm seeds beyond CI's range (1–240) that once failed, kept as regression cases, and
 * the livelock guard that turns a run stuck in virtual time into a clear failure.
 *
 * - 251, 470: hung forever (a relay's agent restarted while its origin path was dark
 *   re-armed its timer at the same instant: a livelock in virtual time).
 * - 432, 541: a relay restarted faster than the SDK judges it dead; with small
 *   datagrams it could not answer "unknown session" (anti-amplification), so the player
 *   stayed silent on it (the SDK's session check now also follows a suspect silence, and
 *   the relay answers small datagrams with a header-only Close).
 * - 592: the re-created session's data overtook its lost accept; a receiver replaced
 *   at the accept delivered copies twice (the session check replaces it before).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode } from '../../proto/src/errors.js';
import { Rng } from '../../proto/src/rng.js';
import { AGENT_REPORT_MS, fleetKeys, SIM_ORIGIN_PORT, simFleetSpec, simRelayConfig, startSimFleetAgent } from '../src/deployment/fleet.js';
import { SCENARIO_RELAY_FEC } from '../src/deployment/scenario.js';
import { runUntilBounded, SimLivelockError } from '../src/core/event-budget.js';
import { SimNetwork } from '../src/core/network.js';
import { ScenarioRun } from '../src/scenario/run.js';
import { planSwarm, replayCommand, runSwarmSeed } from '../src/swarm/swarm.js';

/** Seed → what it found. */
const REGRESSION_SEEDS = new Map<number, string>([
  [251, 'livelock: relay agent timer re-armed at the same instant'],
  [470, 'livelock: relay agent timer re-armed at the same instant'],
  [432, 'stuck session after a quick relay restart, small datagrams'],
  [541, 'stuck session after a quick relay restart, small datagrams'],
  [592, 'duplicate delivery when the re-created session overtook its accept'],
]);

test(`swarm regressions: seeds ${[...REGRESSION_SEEDS.keys()].join(', ')} hold every invariant`, () => {
  const failures: string[] = [];
  for (const [seed, what] of REGRESSION_SEEDS) {
    const result = runSwarmSeed(seed);
    if (result.violations.length > 0) failures.push(`seed ${seed} (once: ${what}): ${result.violations.map((v) => `${v.invariant}: ${v.detail}`).join('; ')}\n  replay: ${replayCommand(seed)}`);
  }
  assert.deepEqual(failures, [], failures.join('\n'));
});

test('livelock guard: a timer re-armed at the same instant fails with the timer, its host and the virtual time, instead of hanging', () => {
  const net = new SimNetwork({ seed: 1 });
  net.addHost('10.0.0.7');
  let fired = 0;
  const timer = net.createTimer(
    (now) => {
      fired++;
      if (now < 1500) timer.set(now + 100);
      else timer.set(now); // the bug: a deadline that never moves on
    },
    { what: 'spinning timer', host: '10.0.0.7' },
  );
  timer.set(0);
  assert.throws(
    () => runUntilBounded(net.queue, 10_000, 1000, (address) => (address === '10.0.0.7' ? 'host-7 (10.0.0.7)' : address), { run: 'test run', replay: 'replay-me' }),
    (error: unknown) => {
      assert.ok(error instanceof SimLivelockError);
      assert.equal(error.code, ErrorCode.SimLivelock);
      assert.equal(error.details.atMs, 1500);
      assert.equal(error.details.secondStartMs, 1000);
      assert.equal(error.details.repeating.what, 'spinning timer');
      assert.equal(error.details.count, error.details.sampled);
      assert.match(error.message, /^test run: livelock: more than 1000 events in the simulated second from 1000 ms; the event that repeats: spinning timer on host-7 \(10\.0\.0\.7\) \(\d+ of the next \d+ events, virtual time stuck at 1500\.000 ms\); replay: replay-me$/);
      return true;
    },
  );
  assert.ok(fired < 20_000, `the guard stopped it after ${fired} firings`);
});

test('livelock guard: under the budget it runs like runUntil (same events, clock left at the end)', () => {
  const run = (bounded: boolean): { ran: number; now: number; seen: number[] } => {
    const net = new SimNetwork({ seed: 3 });
    const seen: number[] = [];
    const timer = net.createTimer((now) => {
      seen.push(now);
      if (now < 5000) timer.set(now + 7);
    });
    timer.set(0);
    const ran = bounded ? runUntilBounded(net.queue, 6000, 1000) : net.runUntil(6000);
    return { ran, now: net.now(), seen };
  };
  assert.deepEqual(run(true), run(false));
});

test('swarm: a seed over its event budget is a livelock violation naming the event, not a hang; sim run names the scenario, seed and replay', () => {
  const result = runSwarmSeed(7, { maxEventsPerSecond: 200 });
  assert.equal(result.violations.length, 1);
  assert.equal(result.violations[0]!.invariant, 'livelock');
  assert.match(result.violations[0]!.detail, /^more than 200 events in the simulated second from \d+ ms; the event that repeats: .+ \(\d+ of the next \d+ events/);
  const plan = planSwarm(7);
  const run = new ScenarioRun(plan.scenario, 7, { directPath: false, maxEventsPerSecond: 200, replay: replayCommand(7) });
  assert.throws(
    () => run.run(),
    (error: unknown) => error instanceof SimLivelockError && error.message.startsWith('scenario swarm-7, seed 7: livelock: ') && error.message.endsWith('; replay: slipstream sim swarm --seeds 1 --from 7'),
  );
});

test('relay agent: an origin that never answers does not spin its timer (swarm seeds 251, 470)', () => {
  const net = new SimNetwork({ seed: 5 });
  const relay = net.addHost('10.1.0.1');
  net.addHost('10.9.0.1');
  net.addHost('10.8.0.1'); // the origin: no probe port bound, so probes are never answered
  const config = simRelayConfig('10.1.0.1', fleetKeys(new Rng(1)), new Map([['origin-1', { address: '10.8.0.1', port: SIM_ORIGIN_PORT }]]), SCENARIO_RELAY_FEC);
  const agent = startSimFleetAgent(net, relay, simFleetSpec('relay-1', 'r1', '10.1.0.1'), { address: '10.9.0.1', port: 7400 }, config, () => undefined);
  const ran = runUntilBounded(net.queue, 10 * AGENT_REPORT_MS, 1000);
  assert.ok(ran < 200, `${ran} events in ${10 * AGENT_REPORT_MS} ms`);
  agent.stop();
});
