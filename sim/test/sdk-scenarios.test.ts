/**
 * The SDK's connection in the simulator: the real SDK, relay and coordinator cores on
 * virtual links with fixed seeds. Selection, hysteresis, failover, blackouts, a relay
 * that restarts (the session reopened) or refuses and comes back (retried and chosen),
 * coordinator outages, FEC, NAT rebinding and bad input. Each failure names the seed
 * that replays it (`new SdkScenario({ seed, … })`). Figures are printed as test
 * diagnostics.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../../proto/src/header.js';
import { Rng } from '../../proto/src/rng.js';
import { SdkScenario, type ScenarioRelay } from '../src/deployment/scenario.js';
import { rebindMidSession } from './support/scenario-steps.js';

const THREE: ScenarioRelay[] = [
  // Nearest to the player, but far from the game server.
  { id: 'near', clientDelayMs: 5, originDelayMs: 60 },
  // The fastest whole path: 2 × (20 + 10) = 60 ms.
  { id: 'best', clientDelayMs: 20, originDelayMs: 10 },
  { id: 'far', clientDelayMs: 40, originDelayMs: 5 },
];

test('selection: the client picks the fastest whole path, not the nearest relay (5 seeds)', (t) => {
  for (let seed = 1; seed <= 5; seed++) {
    const s = new SdkScenario({ seed, relays: THREE });
    s.startTraffic(60);
    s.runUntil(s.nowMs + 15_000);
    const paths = s.client.events.filter((e) => e.type === 'path');
    const first = paths[0];
    assert.ok(first && first.type === 'path', `seed ${seed}: no path event`);
    assert.equal(first.info.relayId, 'best', `seed ${seed}: first pick ${first.info.relayId}`);
    assert.equal(s.client.core.current, 'best', `seed ${seed}`);
    assert.equal(s.client.core.stats().switches, 0, `seed ${seed}: switched after the first pick`);
    t.diagnostic(`seed ${seed}: picked ${first.info.relayId} ${(first.atMs - 3000).toFixed(0)} ms after start (rtt ${first.info.rttMs?.toFixed(1)} ms), backup ${first.info.backupId}`);
  }
});

test('hysteresis: two equal relays with 20 ms of probe jitter switch at most once in 10 simulated minutes (3 seeds)', (t) => {
  for (const seed of [11, 12, 13]) {
    const jittery = { jitterMs: 20, jitterDist: 'normal' as const };
    const s = new SdkScenario({
      seed,
      relays: [
        { id: 'a', clientDelayMs: 25, originDelayMs: 10, clientLink: jittery },
        { id: 'b', clientDelayMs: 25, originDelayMs: 10, clientLink: jittery },
      ],
    });
    s.startTraffic(10);
    s.runUntil(s.nowMs + 600_000);
    const stats = s.client.core.stats();
    t.diagnostic(`seed ${seed}: ${stats.switches} switches (${stats.failovers} failovers) in 600 s`);
    assert.ok(stats.switches <= 1, `seed ${seed}: ${stats.switches} switches`);
    assert.ok(s.client.core.isOpen, `seed ${seed}: session ended`);
  }
});

test('failover: a relay killed mid-session is replaced with p99 gap < 1 s over 100 seeds, session intact', (t) => {
  const gaps: number[] = [];
  for (let seed = 100; seed < 200; seed++) {
    const rng = new Rng(seed);
    const relays: ScenarioRelay[] = ['r1', 'r2', 'r3'].map((id) => ({ id, clientDelayMs: 5 + rng.nextInt(40), originDelayMs: 5 + rng.nextInt(40), clientLink: { jitterMs: rng.nextInt(5) } }));
    const s = new SdkScenario({ seed, relays });
    s.startTraffic(60);
    s.runUntil(s.nowMs + 3000 + rng.nextInt(2000));
    const victim = s.client.core.current;
    const backup = s.client.core.backup;
    assert.ok(victim !== undefined && backup !== undefined, `seed ${seed}: no current/backup`);
    const killMs = s.nowMs;
    s.killRelay(victim);
    s.runUntil(killMs + 4000);
    const gap = s.longestGapMs(killMs - 1000, killMs + 4000);
    gaps.push(gap);
    assert.equal(s.client.core.current, backup, `seed ${seed}: moved to ${s.client.core.current}, backup was ${backup}`);
    assert.ok(s.client.core.isOpen, `seed ${seed}: session ended`);
    // Traffic flows after the move: the last second's echoes all came back.
    const late = s.deliveredLoss(killMs + 2000, killMs + 3500);
    assert.ok(late.upstream === 0 && late.downstream === 0, `seed ${seed}: loss after failover ${JSON.stringify(late)}`);
    assert.ok(!s.client.events.some((e) => e.type === 'failed'), `seed ${seed}: connection failed`);
  }
  gaps.sort((a, b) => a - b);
  const p = (q: number): number => gaps[Math.min(gaps.length - 1, Math.ceil(q * gaps.length) - 1)]!;
  t.diagnostic(`failover gap over ${gaps.length} seeds: p50 ${p(0.5).toFixed(0)} ms, p90 ${p(0.9).toFixed(0)} ms, p99 ${p(0.99).toFixed(0)} ms, max ${gaps[gaps.length - 1]!.toFixed(0)} ms`);
  assert.ok(p(0.99) < 1000, `p99 gap ${p(0.99)} ms`);
});

test('blackout of every path (the client’s own link, 1.5 s): the session stays on its relay and traffic resumes with the link (5 seeds)', (t) => {
  for (let seed = 61; seed <= 65; seed++) {
    const s = new SdkScenario({ seed, relays: THREE });
    s.startTraffic(60);
    s.runUntil(s.nowMs + 5000);
    const relay = s.client.core.current!;
    const client = '10.0.0.2'; // the scenario's client host
    const cutMs = s.nowMs;
    const cut = s.network.partition([client], [...s.relays.values()].map((r) => r.host.address));
    s.runUntil(cutMs + 1500);
    s.network.heal(cut);
    s.runUntil(cutMs + 5000);
    const gap = s.longestGapMs(cutMs - 1000, cutMs + 5000);
    const stats = s.client.core.stats();
    t.diagnostic(`seed ${seed}: gap ${gap.toFixed(0)} ms for a 1500 ms blackout; relay ${relay} → ${s.client.core.current}; ${stats.switches} switches`);
    // The blackout, plus one round trip (2 × 30 ms) and a packet interval (17 ms) at most, plus slack.
    assert.ok(gap < 1500 + 150, `seed ${seed}: gap ${gap} ms`);
    assert.equal(s.client.core.current, relay, `seed ${seed}: moved`);
    assert.equal(stats.switches, 0, `seed ${seed}: switches`);
    assert.ok(s.client.core.isOpen, `seed ${seed}: session ended`);
    const late = s.deliveredLoss(cutMs + 2000, cutMs + 4000);
    assert.ok(late.upstream === 0 && late.downstream === 0, `seed ${seed}: loss after the blackout ${JSON.stringify(late)}`);
  }
});

test('the current relay crashes and restarts during a blackout of every path (small datagrams): the session is reopened and traffic resumes (5 seeds)', (t) => {
  for (let seed = 71; seed <= 75; seed++) {
    // 8-byte datagrams: a restarted relay answers them with a header-only "unknown session" Close.
    const s = new SdkScenario({ seed, relays: THREE, payloadBytes: 8 });
    s.startTraffic(60);
    s.runUntil(s.nowMs + 5000);
    const relay = s.client.core.current!;
    const cutMs = s.nowMs;
    const cut = s.network.partition(['10.0.0.2'], [...s.relays.values()].map((r) => r.host.address));
    s.runUntil(cutMs + 200);
    s.killRelay(relay);
    s.runUntil(cutMs + 1500);
    s.restartRelay(relay);
    s.network.heal(cut);
    s.runUntil(cutMs + 6000);
    const gap = s.longestGapMs(cutMs - 1000, cutMs + 6000);
    t.diagnostic(`seed ${seed}: gap ${gap.toFixed(0)} ms for a 1500 ms blackout with a restart of ${relay}; now on ${s.client.core.current}`);
    assert.ok(gap < 1500 + 1500, `seed ${seed}: gap ${gap} ms`);
    assert.ok(s.client.core.isOpen, `seed ${seed}: session ended`);
    const late = s.deliveredLoss(cutMs + 4000, cutMs + 5500);
    assert.ok(late.upstream === 0 && late.downstream === 0, `seed ${seed}: loss after recovery ${JSON.stringify(late)}`);
  }
});

/**
 * Crashes the current relay with 8-byte datagrams flowing (too small for the full
 * "unknown session" Close), restarts it `downMs` later as a fresh process, and checks
 * for each seed that traffic resumes within `gapMaxMs` and nothing is lost afterwards.
 */
function crashAndRestart(t: TestContext, seeds: readonly number[], downMs: number, gapMaxMs: number, relays: readonly ScenarioRelay[] = THREE, clientReceiveFilter?: (bytes: Uint8Array) => boolean): void {
  for (const seed of seeds) {
    const s = new SdkScenario({ seed, relays: [...relays], payloadBytes: 8, ...(clientReceiveFilter !== undefined ? { clientReceiveFilter } : {}) });
    s.startTraffic(60);
    s.runUntil(s.nowMs + 5000);
    const relay = s.client.core.current!;
    const killMs = s.nowMs;
    s.killRelay(relay);
    s.runUntil(killMs + downMs);
    s.restartRelay(relay);
    s.runUntil(killMs + 5000);
    const gap = s.longestGapMs(killMs - 1000, killMs + 5000);
    t.diagnostic(`seed ${seed}: gap ${gap.toFixed(0)} ms for a ${downMs} ms crash and restart of ${relay} (${relays.length === 1 ? 'the only relay' : `${relays.length} relays`}); now on ${s.client.core.current}, ${s.client.core.stats().failovers} failovers`);
    assert.ok(gap < gapMaxMs, `seed ${seed}: gap ${gap} ms`);
    assert.ok(s.client.core.isOpen, `seed ${seed}: session ended`);
    const late = s.deliveredLoss(killMs + 2000, killMs + 4500);
    assert.ok(late.upstream === 0 && late.downstream === 0, `seed ${seed}: loss after recovery ${JSON.stringify(late)}`);
  }
}

test('the current relay crashes and restarts before it is judged dead (small datagrams): the session is re-opened and traffic resumes (5 seeds; swarm seed 432)', (t) => {
  // 300 ms down is under the 450 ms that judge it dead. The header-only "unknown
  // session" Close re-opens it; the session check would, were that Close lost.
  crashAndRestart(t, [81, 82, 83, 84, 85], 300, 1000);
});

test('the same crash, with every header-only "unknown session" Close lost: the SDK re-opens the session after the suspect silence on its own (5 seeds)', (t) => {
  // The path for Closes lost on the way (or rate-limited at the relay): 300 ms of
  // silence make the relay suspect, and the SDK's session check re-sends the open.
  const header = new PacketHeader();
  const headerOnlyClose = (bytes: Uint8Array): boolean => bytes.length === HEADER_BYTES && parseHeader(bytes, header) === 0 && header.type === PacketType.Close;
  crashAndRestart(t, [86, 87, 88, 89, 90], 300, 1000, THREE, (bytes) => !headerOnlyClose(bytes));
});

test('the current relay restarts faster than it can be suspected (small datagrams): its header-only "unknown session" answer re-opens the session (7 seeds; one with a single relay)', (t) => {
  // 60 ms down, under the 150 ms that make a relay suspect, so no session check runs;
  // the header-only Close (24 bytes, never more than the 32-byte datagram) tells the SDK
  // first (the probe reply's status byte, next test, would a little later).
  crashAndRestart(t, [91, 92, 93, 94, 95], 60, 500);
  // With no other relay to fail over to, at 120 ms.
  crashAndRestart(t, [96, 97], 120, 500, [THREE[1]!]);
});

test('a restart faster than suspicion with every header-only Close lost: the next probe\'s reply says the session is unknown and the SDK re-opens it (7 seeds; two with a single relay)', (t) => {
  // Before the probe reply carried UnknownSession, these sessions sent into the void for
  // good: the relay answered probes (never suspect, so no session check) and each Close
  // that would have told the SDK was lost.
  const header = new PacketHeader();
  const headerOnlyClose = (bytes: Uint8Array): boolean => bytes.length === HEADER_BYTES && parseHeader(bytes, header) === 0 && header.type === PacketType.Close;
  crashAndRestart(t, [98, 99, 100, 101, 102], 60, 1000, THREE, (bytes) => !headerOnlyClose(bytes));
  crashAndRestart(t, [103, 104], 120, 1000, [THREE[1]!], (bytes) => !headerOnlyClose(bytes));
});

test('after a quick relay restart the client reopens its session on SLIP_ERR_UNKNOWN_SESSION and traffic flows again (3 seeds)', () => {
  for (const seed of [41, 42, 43]) {
    const s = new SdkScenario({ seed, relays: [{ id: 'only', clientDelayMs: 15, originDelayMs: 10 }] });
    s.startTraffic(50);
    s.runUntil(s.nowMs + 5000);
    assert.ok(s.client.core.isOpen, `seed ${seed}`);
    s.restartRelay('only');
    const restartMs = s.nowMs;
    s.runUntil(restartMs + 5000);
    assert.ok(!s.client.events.some((e) => e.type === 'failed'), `seed ${seed}: connection failed`);
    assert.equal(s.relays.get('only')!.relay.core.tunnelSessionCount, 1, `seed ${seed}: the restarted relay holds no session`);
    const late = s.deliveredLoss(restartMs + 2000, restartMs + 4000);
    assert.ok(late.sent > 0 && late.upstream === 0 && late.downstream === 0, `seed ${seed}: ${JSON.stringify(late)}`);
  }
});

test('a relay that refused (draining) and comes back faster is retried, chosen, and carries traffic (3 seeds)', () => {
  for (const seed of [31, 32, 33]) {
    const s = new SdkScenario({ seed, relays: [{ id: 'a', clientDelayMs: 20, originDelayMs: 10 }, { id: 'b', clientDelayMs: 40, originDelayMs: 10 }] });
    // b drains before the client asks it for a session: its open is refused.
    s.drainRelay('b');
    s.startTraffic(50);
    s.runUntil(s.nowMs + 5000);
    assert.equal(s.client.core.current, 'a', `seed ${seed}`);
    // b restarts (a fresh process that takes sessions) on a much faster path.
    s.restartRelay('b', 3);
    s.runUntil(s.nowMs + 90_000);
    assert.ok(!s.client.events.some((e) => e.type === 'failed'), `seed ${seed}: connection failed`);
    assert.equal(s.client.core.current, 'b', `seed ${seed}: still on ${s.client.core.current}`);
    assert.ok(s.client.core.isOpen, `seed ${seed}: no open session`);
    const late = s.deliveredLoss(s.nowMs - 5000, s.nowMs - 1000);
    assert.ok(late.sent > 0 && late.upstream === 0 && late.downstream === 0, `seed ${seed}: traffic does not flow on b: ${JSON.stringify(late)}`);
  }
});

test('coordinator outage: a running session continues, and still fails over from cached candidates', (t) => {
  const s = new SdkScenario({ seed: 21, relays: THREE });
  s.startTraffic(60);
  s.runUntil(s.nowMs + 5000);
  s.setCoordinatorDown(true);
  const downMs = s.nowMs;
  s.runUntil(downMs + 90_000); // past a candidate refresh (60 s), which fails
  assert.ok(s.client.lookupFailures >= 1, 'the refresh should have failed');
  const during = s.deliveredLoss(downMs, downMs + 89_000);
  assert.ok(during.upstream === 0 && during.downstream === 0, `loss during outage ${JSON.stringify(during)}`);
  const victim = s.client.core.current!;
  const killMs = s.nowMs;
  s.killRelay(victim);
  s.runUntil(killMs + 3000);
  const gap = s.longestGapMs(killMs - 1000, killMs + 3000);
  t.diagnostic(`outage: ${during.sent} datagrams over 89 s without loss; failover during the outage ${victim} → ${s.client.core.current}, gap ${gap.toFixed(0)} ms`);
  assert.notEqual(s.client.core.current, victim);
  assert.ok(gap < 1000, `gap ${gap}`);
  assert.ok(s.client.core.isOpen);
});

test('FEC: 10 % last-mile loss both ways is cut below 0.5 % delivered loss at 60 packets/s (3 seeds)', (t) => {
  for (const seed of [31, 32, 33]) {
    const lossy = { loss: { model: 'bernoulli' as const, p: 0.1 } };
    const s = new SdkScenario({ seed, relays: THREE.map((r) => ({ ...r, clientLink: lossy })) });
    s.startTraffic(60);
    const startMs = s.nowMs;
    s.runUntil(startMs + 62_000);
    // The first seconds go to picking a relay and the controller's first estimate.
    const loss = s.deliveredLoss(startMs + 2000, startMs + 61_000);
    const stats = s.client.core.stats();
    t.diagnostic(`seed ${seed}: ${loss.sent} datagrams; wire loss downstream ${(stats.lossBeforeFec * 100).toFixed(2)} %; delivered loss upstream ${(loss.upstream * 100).toFixed(3)} %, downstream ${(loss.downstream * 100).toFixed(3)} %; upstream scheme ${stats.upstreamScheme}, relay mode ${stats.fecMode}`);
    assert.ok(stats.lossBeforeFec > 0.07, `seed ${seed}: the link should lose ~10 % (${stats.lossBeforeFec})`);
    assert.ok(loss.upstream < 0.005, `seed ${seed}: upstream ${loss.upstream}`);
    assert.ok(loss.downstream < 0.005, `seed ${seed}: downstream ${loss.downstream}`);
  }
});

test('NAT rebinding: the client moves to a new port and the relays’ path challenges carry the session over', (t) => {
  const s = new SdkScenario({ seed: 41, relays: THREE });
  const { current, before, after, movedMs, gap } = rebindMidSession(s);
  t.diagnostic(`rebind: relay ${current} session client ${before} → ${after}; challenges answered ${s.client.core.stats().pathChallenges}; gap ${gap.toFixed(0)} ms`);
  assert.notEqual(after, before);
  assert.equal(after, `10.0.0.2:${s.client.localPort}`);
  assert.equal(s.client.core.current, current, 'no failover needed');
  const late = s.deliveredLoss(movedMs + 1000, movedMs + 2500);
  assert.ok(late.upstream === 0 && late.downstream === 0, JSON.stringify(late));
});

test('bad input: a forged ticket is a typed failure; unreachable relays fail with SLIP_ERR_NO_RELAY within the connect timeout', () => {
  const forged = new SdkScenario({ seed: 51, relays: THREE, client: { ticket: new Uint8Array(200).fill(7) } });
  forged.runUntil(forged.nowMs + 3000);
  const failed = forged.client.events.find((e) => e.type === 'failed');
  assert.ok(failed && failed.type === 'failed', 'no failure');
  assert.equal(failed.code, 'SLIP_ERR_TICKET_FORGED');
  assert.ok(!forged.client.core.isOpen);

  const dark = new SdkScenario({ seed: 52, relays: THREE.map((r) => ({ ...r, clientLink: { loss: { model: 'bernoulli' as const, p: 1 } } })), client: { connectTimeoutMs: 2000 } });
  const startMs = dark.nowMs;
  dark.runUntil(startMs + 5000);
  const noRelay = dark.client.events.find((e) => e.type === 'failed');
  assert.ok(noRelay && noRelay.type === 'failed', 'no failure');
  assert.equal(noRelay.code, 'SLIP_ERR_NO_RELAY');
  assert.ok(noRelay.atMs - startMs <= 2100, `failed after ${noRelay.atMs - startMs} ms`);
});
