/**
 * The relay selector on the simulator's virtual network: a client probes relays
 * through real link models (delay, jitter, loss) and feeds the answers to the same
 * RelaySelector the SDK uses. Fixed seeds; failures print the seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimNetwork } from '../../sim/src/core/network.js';
import type { LinkModelSpec } from '../../sim/src/core/link.js';
import { RelaySelector, type RelaySelectorInit, type SelectionEvent } from '../src/core/relay-selector.js';

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
  const seed = 4;
  const { selector, events } = runProbing(seed, [
    { id: 'lossy', link: { delayMs: 20, loss: { model: 'bernoulli', p: 0.05 } } },
    { id: 'clean', link: { delayMs: 24 } },
  ], 60_000);
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
