/**
 * The relay selector on the simulator's virtual network: a client probes relays
 * through real link models (delay, jitter, loss) and feeds the answers to the same
 * RelaySelector the SDK uses. Fixed seeds; failures print the seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../proto/src/rng.js';
import { SimNetwork } from '../src/core/network.js';
import type { LinkModelSpec } from '../src/core/link.js';
import * as C from '../../sdk/src/core/constants.js';
import { LOSS_WINDOW_PROBES, PathEstimate, lossDifferenceInterval, lossInterval } from '../../sdk/src/core/path-estimate.js';
import { RelaySelector, type RelaySelectorInit, type SelectionEvent } from '../../sdk/src/core/relay-selector.js';

interface SimRelay {
  id: string;
  /** One-way link model client↔relay (both directions). */
  link: LinkModelSpec;
  /** Coordinator's estimate, ms. */
  estimateMs?: number;
}

interface ProbeRun {
  selector: RelaySelector;
  events: (SelectionEvent & { atMs: number })[];
  network: SimNetwork;
}

const PROBE_TIMEOUT_MS = 1000;

/**
 * Probes every relay each `probeIntervalMs` for `durationMs` of virtual time.
 * `changes` run at their times (e.g. to change a link model).
 */
function runProbing(seed: number, relays: SimRelay[], durationMs: number, options: { probeIntervalMs?: number; selector?: RelaySelectorInit; changes?: [number, (n: SimNetwork) => void][] } = {}): ProbeRun {
  const network = new SimNetwork({ seed });
  const client = network.addHost('10.0.0.1').bind();
  const selector = new RelaySelector(options.selector);
  const events: ProbeRun['events'] = [];
  const addressToId = new Map<string, string>();
  relays.forEach((relay, i) => {
    const address = `10.1.0.${i + 1}`;
    addressToId.set(address, relay.id);
    network.addHost(address);
    network.setLinkBoth('10.0.0.1', address, relay.link);
    const socket = network.host(address)!.bind(4000);
    socket.onReceive((bytes, from) => socket.send(bytes, from));
  });
  const outstanding = new Map<number, { id: string; sentAtMs: number }>();
  let nextProbe = 0;
  const timer = network.createTimer((now) => {
    selector.handleTimeout(now);
    drain(now);
  });
  const drain = (now: number): void => {
    for (let e = selector.pollEvent(); e; e = selector.pollEvent()) events.push({ ...e, atMs: now });
    const at = selector.pollTimeout();
    if (at === undefined) timer.clear();
    else timer.set(Math.max(at, now));
  };
  client.onReceive((bytes, from) => {
    const probe = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
    const sent = outstanding.get(probe);
    if (!sent) return; // a late answer to a probe already counted lost
    outstanding.delete(probe);
    const now = network.now();
    selector.handleProbeResult(now, addressToId.get(from.address)!, now - sent.sentAtMs);
    drain(now);
  });
  selector.setCandidates(0, relays.map((r) => ({ id: r.id, ...(r.estimateMs !== undefined ? { estimateMs: r.estimateMs } : {}) })));
  drain(0);
  const interval = options.probeIntervalMs ?? 200;
  for (let t = 0; t < durationMs; t += interval) {
    network.schedule(t, (now) => {
      relays.forEach((relay, i) => {
        const probe = nextProbe++;
        const bytes = new Uint8Array(8);
        new DataView(bytes.buffer).setUint32(0, probe);
        outstanding.set(probe, { id: relay.id, sentAtMs: now });
        client.send(bytes, { address: `10.1.0.${i + 1}`, port: 4000 });
        network.schedule(now + PROBE_TIMEOUT_MS, (later) => {
          if (!outstanding.delete(probe)) return;
          selector.handleProbeResult(later, relay.id, undefined);
          drain(later);
        });
      });
    });
  }
  for (const [atMs, change] of options.changes ?? []) network.schedule(atMs, () => change(network));
  network.runUntil(durationMs);
  return { selector, events, network };
}

test('picks the fastest relay and the next best as backup', () => {
  const seed = 1;
  const { selector, events } = runProbing(seed, [
    { id: 'fra', link: { delayMs: 40, jitterMs: 2 } },
    { id: 'ams', link: { delayMs: 20, jitterMs: 2 } },
    { id: 'lon', link: { delayMs: 30, jitterMs: 2 } },
  ], 10_000);
  assert.equal(selector.current, 'ams', `seed ${seed}`);
  assert.equal(selector.backup, 'lon', `seed ${seed}`);
  assert.equal(events[0]!.reason, 'initial');
  assert.equal(selector.switches, 0);
});

test('starts as soon as the choice is clear, before slow candidates answer', () => {
  const { events } = runProbing(2, [
    { id: 'near', link: { delayMs: 10 }, estimateMs: 20 },
    { id: 'far', link: { delayMs: 300 }, estimateMs: 600 },
  ], 3000);
  const initial = events.find((e) => e.reason === 'initial')!;
  assert.equal(initial.currentId, 'near');
  // Three probes at 200 ms spacing answered after 20 ms: chosen at 420 ms, long before
  // 'far' has three answers (≥ 1000 ms) and before the 1 s initial wait runs out.
  assert.ok(initial.atMs < 600, `chosen at ${initial.atMs} ms`);
});

test('noisy probes (20 ms jitter) cause at most one switch per 10 simulated minutes', () => {
  const tenMinutesMs = 600_000;
  for (let seed = 100; seed < 130; seed++) {
    const { selector } = runProbing(seed, [
      { id: 'a', link: { delayMs: 25, jitterMs: 20, jitterDist: 'normal' } },
      { id: 'b', link: { delayMs: 26, jitterMs: 20, jitterDist: 'normal' } },
      { id: 'c', link: { delayMs: 28, jitterMs: 20, jitterDist: 'normal' } },
    ], tenMinutesMs, { probeIntervalMs: 500 });
    assert.ok(selector.switches <= 1, `seed ${seed}: ${selector.switches} switches in 10 min`);
  }
});

test('switches when a challenger becomes clearly and durably better, after the hold time', () => {
  const seed = 3;
  const { selector, events } = runProbing(seed, [
    { id: 'a', link: { delayMs: 40, jitterMs: 3 } },
    { id: 'b', link: { delayMs: 60, jitterMs: 3 } },
  ], 60_000, { changes: [[20_000, (n) => n.setLinkBoth('10.0.0.1', '10.1.0.2', { delayMs: 15, jitterMs: 3 })]] });
  assert.equal(selector.current, 'b', `seed ${seed}`);
  const sw = events.find((e) => e.reason === 'better-path')!;
  assert.ok(sw.atMs >= 20_000 + 10_000, `switched at ${sw.atMs} ms, before the 10 s hold ran out`);
  assert.ok(sw.atMs < 20_000 + 25_000, `switched at ${sw.atMs} ms, too late`);
  assert.equal(selector.switches, 1);
});

test('a lossy relay ranks below a slightly slower clean one', () => {
  // ~10 % probe loss (5 % each way) against none, 8 ms of RTT apart. Loss moves the
  // client only once the probes prove the difference (Newcombe at z = 3): with probes
  // every 200 ms, about a minute here, then the 10 s hold.
  const seed = 4;
  const { selector, events } = runProbing(seed, [
    { id: 'lossy', link: { delayMs: 20, loss: { model: 'bernoulli', p: 0.05 } } },
    { id: 'clean', link: { delayMs: 24 } },
  ], 120_000);
  assert.equal(selector.current, 'clean', `seed ${seed}: ${JSON.stringify(events.map((e) => [e.atMs, e.reason, e.currentId]))} ${JSON.stringify([selector.figures('lossy'), selector.figures('clean')])}`);
});

test('markUnreachable fails over to the backup at once, without hysteresis', () => {
  const { selector, network } = runProbing(5, [
    { id: 'a', link: { delayMs: 10 } },
    { id: 'b', link: { delayMs: 30 } },
  ], 5000);
  assert.equal(selector.current, 'a');
  selector.markUnreachable(network.now(), 'a');
  const event = selector.pollEvent()!;
  assert.equal(event.reason, 'failover');
  assert.equal(event.currentId, 'b');
  assert.equal(event.previousId, 'a');
  assert.equal(selector.current, 'b');
});

// ---------------------------------------------------------------- loss with confidence

/** What PathFigures.lossEffectiveSamples should be for this history of outcomes (1 = lost), recomputed from scratch. */
function effectiveSamples(outcomes: readonly number[]): number {
  const first = Math.max(0, outcomes.length - LOSS_WINDOW_PROBES);
  const window = outcomes.slice(first);
  const n = window.length;
  const lost = window.filter((x) => x === 1).length;
  const runs = window.filter((x, k) => x === 1 && (k === 0 || window[k - 1] === 0)).length;
  if (runs === 0) return n;
  let effective = n / Math.max(1, (2 * lost) / runs - 1);
  // Blocks of 32 ring slots: outcome i sits in slot i mod 256.
  const counts = new Map<number, [number, number]>();
  window.forEach((x, k) => {
    const block = ((first + k) % LOSS_WINDOW_PROBES) >> 5;
    const c = counts.get(block) ?? [0, 0];
    counts.set(block, [c[0] + 1, c[1] + x]);
  });
  const p = lost / n;
  let sum = 0;
  for (const [nb, lb] of counts.values()) sum += ((nb / n) * (lb / nb - p)) ** 2;
  const blocks = counts.size;
  if (blocks >= 2 && sum > 0) effective = Math.min(effective, (p * (1 - p)) / ((blocks / (blocks - 1)) * sum));
  return Math.max(1, Math.min(n, effective));
}

test('loss estimate: bursts are counted incrementally over the sliding window and shrink the effective sample size', () => {
  for (const seed of [1, 2, 3]) {
    const rng = new Rng(seed);
    const path = new PathEstimate();
    const outcomes: number[] = [];
    let bad = false;
    for (let i = 0; i < 2000; i++) {
      // A bursty source (mean burst 4) so that runs cross the window's edge.
      bad = bad ? rng.nextFloat() >= 0.25 : rng.nextFloat() < 0.03;
      outcomes.push(bad ? 1 : 0);
      if (bad) path.addLost();
      else path.addAnswered(i * 100, 20);
      const window = outcomes.slice(-LOSS_WINDOW_PROBES);
      const runs = window.filter((x, k) => x === 1 && (k === 0 || window[k - 1] === 0)).length;
      const lost = window.filter((x) => x === 1).length;
      const f = path.figures();
      assert.equal(f.lossBursts, runs, `seed ${seed}, outcome ${i}`);
      assert.equal(f.lost, lost, `seed ${seed}, outcome ${i}`);
      assert.ok(Math.abs(f.lossEffectiveSamples - effectiveSamples(outcomes)) < 1e-9, `seed ${seed}, outcome ${i}: ${f.lossEffectiveSamples} vs ${effectiveSamples(outcomes)}`);
    }
  }
  // Isolated, evenly spread losses: every probe counts. One burst of 16: the 256 outcomes weigh like 256 / 31 at most.
  const isolated = new PathEstimate();
  for (let i = 0; i < 256; i++) {
    if (i % 16 === 0) isolated.addLost();
    else isolated.addAnswered(i, 20);
  }
  assert.equal(isolated.figures().lossEffectiveSamples, 256);
  const burst = new PathEstimate();
  for (let i = 0; i < 256; i++) {
    if (i >= 100 && i < 116) burst.addLost();
    else burst.addAnswered(i, 20);
  }
  assert.equal(burst.figures().lossBursts, 1);
  assert.ok(burst.figures().lossEffectiveSamples <= 256 / 31 + 1e-9, `${burst.figures().lossEffectiveSamples}`);
  // Eight isolated losses all within one block of 32 (a lossy spell): fewer than 256 effective samples.
  const spell = new PathEstimate();
  for (let i = 0; i < 256; i++) {
    if (i >= 64 && i < 80 && i % 2 === 0) spell.addLost();
    else spell.addAnswered(i, 20);
  }
  assert.equal(spell.figures().lossBursts, 8);
  assert.ok(spell.figures().lossEffectiveSamples < 64, `${spell.figures().lossEffectiveSamples}`);
});

test('loss intervals: Wilson bounds and Newcombe differences', () => {
  const zero = lossInterval(0, 16, 2);
  assert.equal(zero.low, 0);
  assert.ok(Math.abs(zero.high - 0.2) < 1e-12, `0 of 16 at z = 2: ${zero.high}`);
  assert.deepEqual(lossInterval(0.1, 0, 3), { low: 0, high: 1 });
  const mid = lossInterval(0.05, 256, 3);
  assert.ok(mid.low > 0.02 && mid.low < 0.05 && mid.high > 0.05 && mid.high < 0.12, JSON.stringify(mid));
  // The same loss on two paths: the difference is not proven either way.
  const same = lossDifferenceInterval([0.03, 256], [0.03, 64], 3);
  assert.ok(same.low < 0 && same.high > 0, JSON.stringify(same));
  // 15 % against 0 % over full windows: proven.
  const clear = lossDifferenceInterval([0.15, 256], [0, 256], 3);
  assert.ok(clear.low > 0.05, JSON.stringify(clear));
});

test('bursty loss shared by every path (~3 %, bursts of 4) causes at most one switch per 10 simulated minutes (10 seeds)', () => {
  const bursty: LinkModelSpec['loss'] = { model: 'gilbert-elliott', p: 0.0077, r: 0.25, lossBad: 1, lossGood: 0 };
  for (let seed = 200; seed < 210; seed++) {
    const { selector } = runProbing(seed, [
      { id: 'a', link: { delayMs: 25, jitterMs: 3, jitterDist: 'normal', loss: bursty } },
      { id: 'b', link: { delayMs: 27, jitterMs: 3, jitterDist: 'normal', loss: bursty } },
      { id: 'c', link: { delayMs: 29, jitterMs: 3, jitterDist: 'normal', loss: bursty } },
    ], 600_000);
    assert.ok(selector.switches <= 1, `seed ${seed}: ${selector.switches} switches in 10 min`);
  }
});

test('sustained loss on the current relay alone moves the client to a clean one about as fast, after the hold', (t) => {
  const seed = 6;
  const { selector, events } = runProbing(seed, [
    { id: 'a', link: { delayMs: 20, jitterMs: 2 } },
    { id: 'b', link: { delayMs: 22, jitterMs: 2 } },
  ], 90_000, { changes: [[20_000, (n) => n.setLinkBoth('10.0.0.1', '10.1.0.1', { delayMs: 20, jitterMs: 2, loss: { model: 'bernoulli', p: 0.08 } })]] });
  assert.equal(events[0]!.currentId, 'a', `seed ${seed}`);
  const sw = events.find((e) => e.reason === 'better-path');
  assert.ok(sw !== undefined && sw.currentId === 'b', `seed ${seed}: ${JSON.stringify(events)}`);
  t.diagnostic(`seed ${seed}: 8 % loss each way on a from 20 s; moved to b at ${(sw.atMs / 1000).toFixed(1)} s`);
  assert.ok(sw.atMs >= 30_000 && sw.atMs < 75_000, `seed ${seed}: switched at ${sw.atMs} ms`);
  assert.equal(selector.current, 'b');
  assert.equal(selector.switches, 1, `seed ${seed}`);
});

// ---------------------------------------------------------------- silence and recovery

/** A selector on `a` (10 ms) with backup `b` (20 ms), both answered every 100 ms until `untilMs`. */
function twoRelays(untilMs: number): RelaySelector {
  const selector = new RelaySelector();
  selector.setCandidates(0, [{ id: 'a' }, { id: 'b' }]);
  for (let t = 100; t <= untilMs; t += 100) {
    selector.handleProbeResult(t, 'a', 10);
    selector.handleProbeResult(t, 'b', 20);
  }
  while (selector.pollEvent()) {
    // drained
  }
  assert.equal(selector.current, 'a');
  assert.equal(selector.backup, 'b');
  return selector;
}

test('markSilent with no other relay heard since: the current relay stays (a blackout of every path), re-probed with backoff', () => {
  const selector = twoRelays(2000);
  // b's last answer was to a probe sent at 1980, before a's last answer (2000): nothing is known alive.
  selector.markSilent(2500, 'a');
  const e = selector.pollEvent()!;
  assert.equal(e.reason, 'relay-down');
  assert.equal(e.currentId, 'a');
  assert.equal(selector.current, 'a');
  assert.equal(selector.switches, 0);
  // Every relay is re-probed soon, backing off with the time since the silence, capped at 1 s while nothing answers.
  assert.equal(selector.recoveryProbeIntervalMs(2500, 'b'), C.RECOVERY_PROBE_INTERVAL_MS_MIN);
  assert.equal(selector.recoveryProbeIntervalMs(3500, 'b'), 500);
  assert.equal(selector.recoveryProbeIntervalMs(60_000, 'b'), C.RECOVERY_PROBE_INTERVAL_MS_ALL_DARK_MAX);
  // The current relay answers again: it stays (the driver is told, to check its session), and no relay needs recovery probes any more.
  selector.handleProbeResult(3000, 'a', 10);
  const back = selector.pollEvent()!;
  assert.equal(back.reason, 'relay-back');
  assert.equal(back.currentId, 'a');
  assert.equal(selector.pollEvent(), undefined);
  assert.equal(selector.current, 'a');
  assert.equal(selector.recoveryProbeIntervalMs(3000, 'b'), undefined);
  assert.equal(selector.pollTimeout(), undefined);
});

test('markSilent after a blackout of every path: another relay answering first gets the current one a grace period, then takes over', () => {
  const selector = twoRelays(2000);
  selector.markSilent(2500, 'a');
  selector.pollEvent();
  // b answers a probe sent after the silence; a does not: the move waits RECOVERY_GRACE_MS.
  selector.handleProbeResult(3000, 'b', 20);
  assert.equal(selector.pollEvent(), undefined);
  assert.equal(selector.pollTimeout(), 3000 + C.RECOVERY_GRACE_MS);
  selector.handleTimeout(3000 + C.RECOVERY_GRACE_MS);
  const e = selector.pollEvent()!;
  assert.equal(e.reason, 'failover');
  assert.equal(e.currentId, 'b');
  assert.equal(e.previousId, 'a');
  assert.equal(selector.switches, 1);
  // a is unreachable until it answers, and re-probed with backoff (5 s cap: b carries traffic).
  assert.equal(selector.recoveryProbeIntervalMs(3300, 'a'), 400);
  assert.equal(selector.recoveryProbeIntervalMs(100_000, 'a'), C.RECOVERY_PROBE_INTERVAL_MS_MAX);
});

test('markSilent when the backup answered since: fail over at once (a dead relay, not a dead link)', () => {
  const selector = twoRelays(2000);
  selector.handleProbeResult(2300, 'b', 20); // sent at 2280, after a's last answer
  selector.markSilent(2500, 'a');
  const e = selector.pollEvent()!;
  assert.equal(e.reason, 'failover');
  assert.equal(e.currentId, 'b');
  assert.equal(selector.switches, 1);
});

test('markUnreachable (a failed session) fails over at once even when nothing else answered since', () => {
  const selector = twoRelays(2000);
  selector.markUnreachable(2500, 'a');
  const e = selector.pollEvent()!;
  assert.equal(e.reason, 'failover');
  assert.equal(e.currentId, 'b');
});
