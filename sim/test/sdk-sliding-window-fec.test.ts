/**
 * The opt-in sliding-window FEC mode `sw` end to end in the simulator: the real SDK and
 * relay cores, both configured for `sw`, over a lossy last mile (delivered loss far
 * below the wire's, both ways); and negotiation falling back to today's modes when
 * either side does not offer `sw`. Each failure names the seed that replays it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TunnelFecSpec } from '../../relay/src/core/config-types.js';
import { SCENARIO_RELAY_FEC, SdkScenario, type ScenarioRelay, type SdkScenarioInit } from '../src/deployment/scenario.js';

const LOSSY = { loss: { model: 'bernoulli' as const, p: 0.1 } };
const RELAYS: ScenarioRelay[] = [
  { id: 'near', clientDelayMs: 5, originDelayMs: 60 },
  { id: 'best', clientDelayMs: 20, originDelayMs: 10 },
];
const SW_SETTINGS = { repairsPerSource: 1, repairSpacingMs: 4, windowPackets: 8, windowMs: 60 };
const RELAY_SW: TunnelFecSpec = { ...SCENARIO_RELAY_FEC, modes: ['sw', ...SCENARIO_RELAY_FEC.modes], sw: SW_SETTINGS };
const CLIENT_SW = { fecModes: ['sw', 'dup', 'rs', 'off'], slidingWindow: SW_SETTINGS };

test('sw both ways: 10 % last-mile loss both ways falls well below the wire loss at 60 packets/s (3 seeds)', (t) => {
  for (const seed of [41, 42, 43]) {
    const s = new SdkScenario({ seed, relays: RELAYS.map((r) => ({ ...r, clientLink: LOSSY })), relayFec: RELAY_SW, client: CLIENT_SW });
    s.startTraffic(60);
    const startMs = s.nowMs;
    s.runUntil(startMs + 32_000);
    const loss = s.deliveredLoss(startMs + 2000, startMs + 31_000);
    const stats = s.client.core.stats();
    t.diagnostic(
      `seed ${seed}: ${loss.sent} datagrams; wire loss downstream ${(stats.lossBeforeFec * 100).toFixed(2)} %; delivered loss upstream ${(loss.upstream * 100).toFixed(3)} %, downstream ${(loss.downstream * 100).toFixed(3)} %; downstream after FEC ${(stats.lossAfterFec * 100).toFixed(3)} % (${stats.recovered} rebuilt); upstream ${stats.upstreamScheme}, relay mode ${stats.fecMode}`,
    );
    assert.equal(stats.fecMode, 'sw', `seed ${seed}`);
    assert.ok(stats.upstreamScheme.startsWith('sw('), `seed ${seed}: upstream ${stats.upstreamScheme}`);
    assert.ok(stats.lossBeforeFec > 0.07, `seed ${seed}: the link should lose ~10 % (${stats.lossBeforeFec})`);
    // The client's receivers rebuilt the downstream sources the wire lost (its own loss figure, before any copy through a backup).
    assert.ok(stats.recovered > 0.05 * loss.sent, `seed ${seed}: ${stats.recovered} rebuilt`);
    assert.ok(stats.lossAfterFec < stats.lossBeforeFec / 5, `seed ${seed}: after FEC ${stats.lossAfterFec} vs before ${stats.lossBeforeFec}`);
    // Each way crosses the lossy last mile once: 10 % on the wire.
    assert.ok(loss.upstream < 0.02, `seed ${seed}: upstream ${loss.upstream}`);
    assert.ok(loss.downstream < 0.02, `seed ${seed}: downstream ${loss.downstream}`);
  }
});

/** Runs a scenario 4 s with traffic at 30 datagrams/s; returns the client's stats and the delivered loss from 1 s to 3.5 s in. */
function runNegotiated(init: SdkScenarioInit): { stats: ReturnType<SdkScenario['client']['core']['stats']>; loss: ReturnType<SdkScenario['deliveredLoss']> } {
  const s = new SdkScenario(init);
  s.startTraffic(30);
  s.runUntil(s.nowMs + 4000);
  return { stats: s.client.core.stats(), loss: s.deliveredLoss(s.nowMs - 3000, s.nowMs - 500) };
}

test('sw negotiation falls back to the block modes: relays without sw, and a client that does not offer it', () => {
  const onlyClient = runNegotiated({ seed: 44, relays: RELAYS, client: CLIENT_SW });
  assert.equal(onlyClient.stats.fecMode, 'dup');
  assert.ok(!onlyClient.stats.upstreamScheme.startsWith('sw'), onlyClient.stats.upstreamScheme);
  assert.equal(onlyClient.loss.upstream, 0);

  // A client that predates sw (or whose app leaves it out) offers the block modes only.
  const onlyRelay = runNegotiated({ seed: 45, relays: RELAYS, relayFec: RELAY_SW, client: { fecModes: ['dup', 'rs', 'off'] } });
  assert.equal(onlyRelay.stats.fecMode, 'dup');
  assert.ok(!onlyRelay.stats.upstreamScheme.startsWith('sw'), onlyRelay.stats.upstreamScheme);
  assert.equal(onlyRelay.loss.downstream, 0);
});

// The client's sw sender sends a relay that did not agree to sw its sources uncoded (for relays
// that predate sw); a relay of this build would decode the sw shards anyway, so this checks
// that traffic flows and the modes are right, not which of the two it got.
test('sw in a mixed fleet: after failover to a relay without sw, the session runs in dup there and traffic flows (3 seeds)', () => {
  for (const seed of [46, 47, 48]) {
    const relays: ScenarioRelay[] = [
      { id: 'sw-relay', clientDelayMs: 5, originDelayMs: 10, fec: RELAY_SW },
      { id: 'plain', clientDelayMs: 20, originDelayMs: 20 },
    ];
    const s = new SdkScenario({ seed, relays, client: CLIENT_SW });
    s.startTraffic(60);
    s.runUntil(s.nowMs + 3000);
    assert.equal(s.client.core.current, 'sw-relay', `seed ${seed}`);
    assert.equal(s.client.core.stats().fecMode, 'sw', `seed ${seed}`);
    const killMs = s.nowMs;
    s.killRelay('sw-relay');
    s.runUntil(killMs + 4000);
    const stats = s.client.core.stats();
    assert.equal(s.client.core.current, 'plain', `seed ${seed}`);
    assert.equal(stats.fecMode, 'dup', `seed ${seed}`);
    assert.ok(stats.upstreamScheme.startsWith('sw('), `seed ${seed}: upstream ${stats.upstreamScheme}`);
    const late = s.deliveredLoss(killMs + 2000, killMs + 3500);
    assert.ok(late.sent > 50 && late.upstream === 0 && late.downstream === 0, `seed ${seed}: after failover ${JSON.stringify(late)}`);
  }
});
