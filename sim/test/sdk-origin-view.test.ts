/**
 * What an unmodified game server sees of one player through the SDK without an exit
 * relay (the real SDK, relay and coordinator cores on virtual links, fixed seeds): one
 * source address and every datagram at most once on a lossy or bursty last mile, no
 * duplicate even when the current relay only looks dead, a backup session that stays
 * open while healthy, and a bounded gap when the current relay is killed. The player's
 * last mile is an access link (`SimNetwork.setAccessLink`): one loss process per
 * direction that every packet crosses, whatever relay it is for. Each failure names
 * its seed.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { LinkModelSpec } from '../src/core/link.js';
import { SdkScenario, type ScenarioRelay } from '../src/deployment/scenario.js';

const CLIENT = '10.0.0.2'; // the scenario's client host
/** Relay addresses are 10.1.0.<index + 1>, in this order. */
const RELAYS: ScenarioRelay[] = [
  { id: 'a', clientDelayMs: 10, originDelayMs: 5 },
  // Two equal runners-up: the backup must not swap between them on chance.
  { id: 'b', clientDelayMs: 12, originDelayMs: 5 },
  { id: 'c', clientDelayMs: 12, originDelayMs: 5 },
];
/** 5 % loss in bursts of mean length 2 (Gilbert-Elliott: p = 0.05 × r / 0.95, r = 1/2). */
const BURSTY: LinkModelSpec = { loss: { model: 'gilbert-elliott', p: 0.0263, r: 0.5, lossBad: 1, lossGood: 0 } };
const RANDOM_10: LinkModelSpec = { loss: { model: 'bernoulli', p: 0.1 } };

function lossyLastMile(seed: number, access: LinkModelSpec): SdkScenario {
  const s = new SdkScenario({ seed, relays: RELAYS });
  s.network.setAccessLink(CLIENT, 'uplink', access);
  s.network.setAccessLink(CLIENT, 'downlink', access);
  return s;
}

function relayAddress(s: SdkScenario, id: string): string {
  return s.relays.get(id)!.host.address;
}

/** Datagrams the origin got more than once. */
function originDuplicates(s: SdkScenario): number {
  return s.traffic.originDatagrams - s.traffic.originSeen.size;
}

function sessionsOpened(s: SdkScenario): Map<string, number> {
  return new Map([...s.relays].map(([id, r]) => [id, r.relay.core.ruleStats.get('tunnel')?.sessionsOpened ?? 0]));
}

test('a lossy shared last mile (5 % bursty, 10 % random, both ways): the origin gets each datagram at most once, from one relay address (3 seeds each, 60 s)', (t: TestContext) => {
  for (const [name, access] of [
    ['bursty 5 %', BURSTY],
    ['random 10 %', RANDOM_10],
  ] as const) {
    for (let seed = 1; seed <= 3; seed++) {
      const s = lossyLastMile(seed, access);
      s.startTraffic(60);
      s.runUntil(s.nowMs + 60_000);
      const sources = [...s.traffic.originSources.keys()];
      t.diagnostic(`${name}, seed ${seed}: ${s.traffic.originDatagrams} datagrams at the origin, ${originDuplicates(s)} twice, from ${sources.join(', ')}; loss after FEC ${(s.client.core.stats().lossAfterFec * 100).toFixed(2)} %`);
      assert.ok(s.traffic.originSeen.size > 3000, `${name}, seed ${seed}: only ${s.traffic.originSeen.size} datagrams arrived`);
      assert.equal(originDuplicates(s), 0, `${name}, seed ${seed}: datagrams the origin got twice`);
      assert.deepEqual(sources.map((k) => k.split(':')[0]), [relayAddress(s, s.client.core.current!)], `${name}, seed ${seed}: origin sources`);
    }
  }
});

test('the backup session stays open while healthy: 10 simulated minutes on a 5 % bursty last mile open one session on the current relay and one on the backup, and close none (3 seeds)', (t: TestContext) => {
  for (let seed = 11; seed <= 13; seed++) {
    const s = lossyLastMile(seed, BURSTY);
    s.startTraffic(60);
    s.runUntil(s.nowMs + 600_000);
    const opened = sessionsOpened(s);
    const ends = [...s.relays].flatMap(([id, r]) => r.relay.events.filter((e) => e.type === 'sessionEnd').map((e) => `${id}: ${e.type === 'sessionEnd' ? e.reason : ''}`));
    t.diagnostic(`seed ${seed}: sessions opened ${JSON.stringify(Object.fromEntries(opened))}, ended ${JSON.stringify(ends)}; current ${s.client.core.current}, backup ${s.client.core.backup}`);
    assert.equal([...opened.values()].reduce((a, b) => a + b, 0), 2, `seed ${seed}: sessions opened ${JSON.stringify(Object.fromEntries(opened))}`);
    assert.deepEqual(ends, [], `seed ${seed}: sessions ended`);
    assert.equal(s.client.core.stats().switches, 0, `seed ${seed}: switches`);
  }
});

test('the current relay only looks dead (its downstream dark for 350 ms, its upstream fine) while upstream FEC sends copies or repairs: upstream moves to the backup meanwhile, and the origin gets no datagram twice (5 seeds)', (t: TestContext) => {
  for (let seed = 21; seed <= 25; seed++) {
    const s = new SdkScenario({ seed, relays: RELAYS });
    // Upstream loss makes the client's FEC send copies or repairs, some of which straddle the move.
    s.network.setAccessLink(CLIENT, 'uplink', { loss: { model: 'bernoulli', p: 0.05 } });
    s.startTraffic(60);
    s.runUntil(s.nowMs + 5000);
    const current = s.client.core.current!;
    const backup = s.client.core.backup!;
    const darkMs = s.nowMs;
    // Shorter than the dead judgment (450 ms at least): the relay is suspect, never dead.
    s.network.setLink(relayAddress(s, current), CLIENT, { delayMs: s.relays.get(current)!.spec.clientDelayMs, blackouts: [{ startMs: darkMs, endMs: darkMs + 350 }] });
    s.runUntil(darkMs + 3000);
    const via = (id: string): number => [...s.traffic.originSources].filter(([k]) => k.startsWith(`${relayAddress(s, id)}:`)).reduce((n, [, c]) => n + c, 0);
    t.diagnostic(`seed ${seed}: upstream ${s.client.core.stats().upstreamScheme}; origin got ${via(current)} datagrams through ${current}, ${via(backup)} through ${backup} (the suspicion), ${originDuplicates(s)} twice`);
    assert.notEqual(s.client.core.stats().upstreamScheme, 'off', `seed ${seed}: upstream FEC off, the test would not exercise copies and repairs`);
    assert.equal(originDuplicates(s), 0, `seed ${seed}: datagrams the origin got twice`);
    assert.ok(via(backup) > 0, `seed ${seed}: nothing went through the backup while ${current} was suspect`);
    assert.equal(s.client.core.current, current, `seed ${seed}: moved`);
    assert.ok(s.client.core.isOpen, `seed ${seed}: session ended`);
  }
});

test('the current relay killed on a 1 % lossy last mile: gap < 500 ms, then the backup carries it; the origin gets no datagram twice and sees two addresses at most (20 seeds)', (t: TestContext) => {
  const gaps: number[] = [];
  for (let seed = 31; seed <= 50; seed++) {
    const s = lossyLastMile(seed, { loss: { model: 'bernoulli', p: 0.01 } });
    s.startTraffic(60);
    s.runUntil(s.nowMs + 4000);
    const victim = s.client.core.current!;
    const backup = s.client.core.backup!;
    const killMs = s.nowMs;
    s.killRelay(victim);
    s.runUntil(killMs + 4000);
    const gap = s.longestGapMs(killMs - 1000, killMs + 4000);
    gaps.push(gap);
    assert.ok(gap < 500, `seed ${seed}: gap ${gap} ms`);
    assert.equal(s.client.core.current, backup, `seed ${seed}: moved to ${s.client.core.current}, backup was ${backup}`);
    assert.equal(originDuplicates(s), 0, `seed ${seed}: datagrams the origin got twice`);
    assert.ok(s.traffic.originSources.size <= 2, `seed ${seed}: origin sources ${[...s.traffic.originSources.keys()].join(', ')}`);
  }
  gaps.sort((a, b) => a - b);
  t.diagnostic(`gap over ${gaps.length} seeds: median ${gaps[gaps.length >> 1]!.toFixed(0)} ms, max ${gaps[gaps.length - 1]!.toFixed(0)} ms`);
});
