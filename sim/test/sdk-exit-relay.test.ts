/**
 * Exit relays in the simulator (fixed seeds): the ticket names an exit relay next to
 * the game server; the client enters through the relay it picks, which forwards the
 * session over the relay mesh to the exit. Killing the entry moves the client to its
 * backup entry and the origin keeps seeing one source address:port; killing the exit
 * makes the entry serve the session itself (the one case the origin sees a new one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../proto/src/rng.js';
import { SdkScenario, type ScenarioRelay } from '../src/deployment/scenario.js';
import { killAndWatch, rebindMidSession } from './support/scenario-steps.js';

/** Two entries near the player, far from the game server; the exit beside the game server, far from the player. */
function topology(rng: Rng): ScenarioRelay[] {
  return [
    { id: 'entry-a', clientDelayMs: 5 + rng.nextInt(15), originDelayMs: 40 + rng.nextInt(20), clientLink: { jitterMs: rng.nextInt(4) } },
    { id: 'entry-b', clientDelayMs: 5 + rng.nextInt(15), originDelayMs: 40 + rng.nextInt(20), clientLink: { jitterMs: rng.nextInt(4) } },
    { id: 'exit', clientDelayMs: 120, originDelayMs: 2 },
  ];
}

test('exit relay: the entry is killed mid-session; traffic resumes through the other entry and the origin sees one source address:port, no duplicates (100 seeds)', (t) => {
  const gaps: number[] = [];
  for (let seed = 300; seed < 400; seed++) {
    const rng = new Rng(seed);
    const s = new SdkScenario({ seed, relays: topology(rng), exitRelay: 'exit', meshDelayMs: 10 + rng.nextInt(10) });
    s.startTraffic(60);
    s.runUntil(s.nowMs + 3000 + rng.nextInt(2000));
    const victim = s.client.core.current;
    const backup = s.client.core.backup;
    assert.ok(victim?.startsWith('entry-') && backup?.startsWith('entry-'), `seed ${seed}: current ${victim}, backup ${backup}`);
    const before = [...s.traffic.originSources.keys()];
    assert.equal(before.length, 1, `seed ${seed}: origin sources before the kill ${before.join(', ')}`);
    const { killMs, gap } = killAndWatch(s, victim!, 4000, 1000);
    gaps.push(gap);
    assert.equal(s.client.core.current, backup, `seed ${seed}: moved to ${s.client.core.current}`);
    assert.ok(s.client.core.isOpen, `seed ${seed}: session ended`);
    assert.deepEqual([...s.traffic.originSources.keys()], before, `seed ${seed}: the origin saw a new source`);
    assert.ok(before[0]!.startsWith('10.1.0.3:'), `seed ${seed}: origin source ${before[0]} is not the exit`);
    // Exactly once: every datagram that reached the origin reached it once, every echo reached the game once.
    assert.equal(s.traffic.originDatagrams, s.traffic.originSeen.size, `seed ${seed}: duplicates at the origin`);
    assert.equal(s.traffic.duplicatesAtClient, 0, `seed ${seed}: duplicates at the client`);
    const late = s.deliveredLoss(killMs + 2000, killMs + 3500);
    assert.ok(late.upstream === 0 && late.downstream === 0, `seed ${seed}: loss after failover ${JSON.stringify(late)}`);
    // The exit held the session throughout: no relay fell back to its own origin socket.
    for (const [id, r] of s.relays) assert.ok(!r.relay.events.some((e) => e.type === 'sessionMoved' && e.what === 'origin'), `seed ${seed}: ${id} fell back`);
  }
  gaps.sort((a, b) => a - b);
  const p = (q: number): number => gaps[Math.min(gaps.length - 1, Math.ceil(q * gaps.length) - 1)]!;
  t.diagnostic(`entry failover through an exit over ${gaps.length} seeds: gap p50 ${p(0.5).toFixed(0)} ms, p90 ${p(0.9).toFixed(0)} ms, max ${gaps[gaps.length - 1]!.toFixed(0)} ms; one origin source each`);
  assert.ok(p(0.99) < 1000, `p99 gap ${p(0.99)} ms`);
});

test('exit relay: the exit is killed; the entry serves the session itself and traffic resumes (the origin sees a second source)', (t) => {
  for (const seed of [41, 42, 43]) {
    const rng = new Rng(seed);
    const s = new SdkScenario({ seed, relays: topology(rng), exitRelay: 'exit' });
    s.startTraffic(60);
    s.runUntil(s.nowMs + 4000);
    const entry = s.client.core.current!;
    const { gap, late } = killAndWatch(s, 'exit', 5000, 1000);
    t.diagnostic(`seed ${seed}: exit killed, ${entry} fell back; gap ${gap.toFixed(0)} ms; origin sources ${[...s.traffic.originSources.keys()].join(', ')}`);
    assert.ok(s.client.core.isOpen, `seed ${seed}: session ended`);
    assert.ok(late.upstream === 0 && late.downstream === 0, `seed ${seed}: loss after the fallback ${JSON.stringify(late)}`);
    assert.equal(s.traffic.originSources.size, 2, `seed ${seed}: origin sources ${[...s.traffic.originSources.keys()].join(', ')}`);
    assert.ok(s.relays.get(entry)!.relay.events.some((e) => e.type === 'sessionMoved' && e.what === 'origin'), `seed ${seed}: no fallback event`);
    assert.ok(gap < 2500, `seed ${seed}: gap ${gap} ms`);
  }
});

test('exit relay: without an exit in the ticket each relay has its own origin socket (today’s behaviour)', () => {
  const rng = new Rng(51);
  const s = new SdkScenario({ seed: 51, relays: topology(rng) });
  s.startTraffic(60);
  s.runUntil(s.nowMs + 4000);
  const victim = s.client.core.current!;
  s.killRelay(victim);
  s.runUntil(s.nowMs + 3000);
  assert.ok(s.client.core.isOpen);
  assert.equal(s.traffic.originSources.size, 2, `origin sources ${[...s.traffic.originSources.keys()].join(', ')}`);
});

test('exit relay: NAT rebinding at the entry keeps the session (path challenge at the entry), origin source unchanged', (t) => {
  const rng = new Rng(61);
  const s = new SdkScenario({ seed: 61, relays: topology(rng), exitRelay: 'exit' });
  const { current, before, after, movedMs, gap } = rebindMidSession(s);
  t.diagnostic(`rebind through ${current}: ${before} → ${after}; gap ${gap.toFixed(0)} ms; origin sources ${[...s.traffic.originSources.keys()].join(', ')}`);
  assert.equal(after, `10.0.0.2:${s.client.localPort}`);
  assert.equal(s.client.core.current, current, 'no failover needed');
  assert.equal(s.traffic.originSources.size, 1);
  const late = s.deliveredLoss(movedMs + 1000, movedMs + 2500);
  assert.ok(late.upstream === 0 && late.downstream === 0, JSON.stringify(late));
});

test('exit relay: the client talks to the exit directly and the exit dies; the backup entry serves the session itself', (t) => {
  const s = new SdkScenario({
    seed: 71,
    relays: [
      { id: 'exit', clientDelayMs: 5, originDelayMs: 2 },
      { id: 'entry-a', clientDelayMs: 10, originDelayMs: 40 },
      { id: 'entry-b', clientDelayMs: 12, originDelayMs: 45 },
    ],
    exitRelay: 'exit',
  });
  s.startTraffic(60);
  s.runUntil(s.nowMs + 5000);
  assert.equal(s.client.core.current, 'exit');
  const backup = s.client.core.backup!;
  const { gap, late } = killAndWatch(s, 'exit', 6000, 500);
  t.diagnostic(`exit (current) killed: ${backup} took over after a ${gap.toFixed(0)} ms gap; origin sources ${[...s.traffic.originSources.keys()].join(', ')}`);
  assert.equal(s.client.core.current, backup);
  assert.ok(s.client.core.isOpen);
  assert.ok(late.upstream === 0 && late.downstream === 0, JSON.stringify(late));
  assert.equal(s.traffic.duplicatesAtClient, 0);
  assert.ok(gap < 2500, `gap ${gap} ms`);
});
