/**
 * Issue 13: access links. A host's last mile is one link per direction that every
 * datagram of that host crosses, whatever its destination: one burst takes the copies
 * to every destination, one rate queue serves all of the host's traffic, the SDK's
 * probes cross it like game packets, and the fate log names the hop that dropped a
 * datagram. Scenario files declare it with `access:` on a host entry.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../proto/src/errors.js';
import { FateLog, type FateEntry } from '../src/core/fate.js';
import { SimNetwork } from '../src/core/network.js';
import { parseScenario } from '../src/scenario/load.js';
import { ScenarioRun } from '../src/scenario/run.js';

const SEED = 1313;
const A = '10.0.0.1';
const B = '10.0.0.2';
const C = '10.0.0.3';

/** A network of A, B and C with a sink on each of B and C (port 1); returns A's socket. */
function threeHosts(net: SimNetwork) {
  const a = net.addHost(A).bind(1);
  const b = net.addHost(B).bind(1);
  const c = net.addHost(C).bind(1);
  const received = { b: 0, c: 0 };
  b.onReceive(() => received.b++);
  c.onReceive(() => received.c++);
  return { a, b, c, received };
}

/** Runs the network until idle; returns `pick` of every delivered datagram, in delivery order. */
function deliveredWhenIdle<T>(net: SimNetwork, log: FateLog, pick: (fate: FateEntry) => T): T[] {
  net.runUntilIdle();
  return log.delivered().map(pick);
}

describe('access links', () => {
  it('one burst on the uplink drops the copies to two destinations sent in the same instant', () => {
    const log = new FateLog();
    const net = new SimNetwork({ seed: SEED, defaultLink: { delayMs: 5 }, fateSink: log });
    const { a, b, c } = threeHosts(net);
    // Good → bad after the first packet and never back: the first packet passes, then a burst.
    net.setAccessLink(A, 'uplink', { loss: { model: 'gilbert-elliott', p: 1, r: 0, lossBad: 1, lossGood: 0 } });
    a.send(new Uint8Array(10), b.localAddress());
    net.runUntil(10);
    a.send(new Uint8Array(10), b.localAddress());
    a.send(new Uint8Array(10), c.localAddress());
    net.runUntilIdle();
    assert.deepEqual(
      log.entries.map((f) => [f.to, f.delivered, f.reason, f.hop]),
      [
        [`${B}:1`, true, 'none', undefined],
        [`${B}:1`, false, 'loss', 'uplink'],
        [`${C}:1`, false, 'loss', 'uplink'],
      ],
    );
  });

  it('losses to two destinations go together on an access link, apart on per-pair links', (t) => {
    // Bursty loss (Gilbert-Elliott, ~9 %, mean burst 5) on the sender's last mile, as an
    // access link and as the old per-destination links: count the instants at which
    // exactly one of the two same-instant copies was lost.
    const gilbert = { loss: { model: 'gilbert-elliott' as const, p: 0.02, r: 0.2, lossBad: 1, lossGood: 0 } };
    const split = (access: boolean): { lost: number; split: number } => {
      const net = new SimNetwork({ seed: SEED, defaultLink: { delayMs: 1 } });
      const { a, b, c, received } = threeHosts(net);
      if (access) net.setAccessLink(A, 'uplink', gilbert);
      else for (const to of [B, C]) net.setLink(A, to, gilbert);
      let lost = 0;
      let oneOnly = 0;
      for (let i = 0; i < 5000; i++) {
        const before = { b: received.b, c: received.c };
        a.send(new Uint8Array(10), b.localAddress());
        a.send(new Uint8Array(10), c.localAddress());
        net.runUntil(net.nowMs + 10);
        const gotB = received.b > before.b;
        const gotC = received.c > before.c;
        lost += (gotB ? 0 : 1) + (gotC ? 0 : 1);
        if (gotB !== gotC) oneOnly++;
      }
      return { lost, split: oneOnly };
    };
    const shared = split(true);
    const perPair = split(false);
    t.diagnostic(`lost / split instants of 5000: access link ${shared.lost} / ${shared.split}, per-pair links ${perPair.lost} / ${perPair.split}`);
    assert.ok(shared.lost > 500 && perPair.lost > 500, `both lose ~9 % (${shared.lost}, ${perPair.lost} of 10000)`);
    // Shared: a split happens only at a burst's edge (~2 per burst of ~5 instants' worth of packets);
    // per pair, almost every loss is a split.
    assert.ok(shared.split < perPair.split / 3, `splits: access link ${shared.split}, per-pair links ${perPair.split}`);
  });

  it("the access link's rate queue is shared by all of the host's traffic, on the way out and on the way in", () => {
    const log = new FateLog();
    const net = new SimNetwork({ seed: SEED, defaultLink: { delayMs: 5 }, fateSink: log });
    const { a, b, c } = threeHosts(net);
    // 1000 kbit/s: a 1000-byte datagram takes 8 ms to serialize.
    net.setAccessLink(A, 'uplink', { rateKbps: 1000 });
    a.send(new Uint8Array(1000), b.localAddress());
    a.send(new Uint8Array(1000), c.localAddress());
    assert.deepEqual(
      deliveredWhenIdle(net, log, (f) => [f.to, f.atMs]),
      [
        [`${B}:1`, 13],
        [`${C}:1`, 21],
      ],
    );
    // Downlink: B and C send to A at once; the second waits for the first at A's downlink,
    // offered when each arrives there (C's path is 10 ms longer, so it arrives second).
    log.clear();
    net.setAccessLink(A, 'downlink', { rateKbps: 1000 });
    net.setLink(C, A, { delayMs: 6 });
    const start = net.nowMs;
    b.send(new Uint8Array(1000), a.localAddress());
    c.send(new Uint8Array(1000), a.localAddress());
    assert.deepEqual(
      deliveredWhenIdle(net, log, (f) => [f.from, f.atMs - start]),
      [
        [`${B}:1`, 13],
        [`${C}:1`, 21],
      ],
    );
  });

  it('delays add up hop by hop, and a host talking to itself crosses no access link', () => {
    const log = new FateLog();
    const net = new SimNetwork({ seed: SEED, defaultLink: { delayMs: 5 }, fateSink: log });
    const { a, b } = threeHosts(net);
    net.setAccessLink(A, 'uplink', { delayMs: 7 });
    net.setAccessLink(B, 'downlink', { delayMs: 11 });
    const self = net.host(A)!.bind(2);
    a.send(new Uint8Array(4), b.localAddress());
    a.send(new Uint8Array(4), self.localAddress());
    assert.deepEqual(
      deliveredWhenIdle(net, log, (f) => [f.to, f.latencyMs]),
      [
        [`${A}:2`, 0],
        [`${B}:1`, 23],
      ],
    );
    assert.equal(net.modelDelayMs(A, B), 23);
    assert.equal(net.modelDelayMs(B, A), 5);
  });

  it('the fate log names the hop that dropped a datagram', () => {
    const log = new FateLog();
    const net = new SimNetwork({ seed: SEED, defaultLink: { delayMs: 1 }, fateSink: log });
    const { a, b, c } = threeHosts(net);
    net.setAccessLink(A, 'uplink', { mtuBytes: 100 });
    net.setLink(A, B, { mtuBytes: 50 });
    net.setAccessLink(C, 'downlink', { mtuBytes: 20 });
    a.send(new Uint8Array(200), b.localAddress()); // too big for A's uplink
    a.send(new Uint8Array(60), b.localAddress()); // too big for the path A→B
    a.send(new Uint8Array(30), c.localAddress()); // too big for C's downlink
    a.send(new Uint8Array(10), c.localAddress()); // delivered
    net.runUntilIdle();
    const fates = new Map(log.entries.map((f) => [f.packetId, f]));
    assert.deepEqual(
      [0, 1, 2, 3].map((id) => [fates.get(id)!.reason, fates.get(id)!.hop]),
      [
        ['mtu', 'uplink'],
        ['mtu', 'path'],
        ['mtu', 'downlink'],
        ['none', undefined],
      ],
    );
    // The downlink drop happens when the datagram reaches it, after the path's delay.
    assert.equal(fates.get(2)!.atMs, 1);
  });

  it("a duplicate made on the uplink crosses the path on its own, and every copy has its own number", () => {
    const log = new FateLog();
    const net = new SimNetwork({ seed: SEED, defaultLink: { delayMs: 2 }, fateSink: log });
    const { a, b } = threeHosts(net);
    net.setAccessLink(A, 'uplink', { dupProbability: 1 });
    net.setLink(A, B, { dupProbability: 1 });
    a.send(new Uint8Array(8), b.localAddress());
    net.runUntilIdle();
    assert.deepEqual(log.delivered().map((f) => f.copy).sort(), [0, 1, 2, 3]);
  });

  it('the same seed gives the same fates; the access link draws from its own stream', () => {
    const run = (seed: number): string => {
      const log = new FateLog();
      const net = new SimNetwork({ seed, defaultLink: { delayMs: 3, loss: { model: 'bernoulli', p: 0.1 } }, fateSink: log });
      const { a, b, c } = threeHosts(net);
      net.setAccessLink(A, 'uplink', { loss: { model: 'bernoulli', p: 0.2 }, jitterMs: 2 });
      net.setAccessLink(C, 'downlink', { loss: { model: 'bernoulli', p: 0.2 } });
      for (let i = 0; i < 200; i++) {
        a.send(new Uint8Array(8), b.localAddress());
        a.send(new Uint8Array(8), c.localAddress());
        net.runUntil(net.nowMs + 5);
      }
      net.runUntilIdle();
      return JSON.stringify(log.entries);
    };
    assert.equal(run(5), run(5));
    assert.notEqual(run(5), run(6));
  });
});

const SCENARIO = `version: 1
duration: 12s
warmup: 1s
regions: [eu]
coordinator: { region: eu }
origins:
  - { name: game, region: eu }
relays:
  - { name: relay-fra, region: eu }
clients:
  - name: player
    traffic: { kind: game, packetsPerSecond: 20, bytes: 100 }
    start: 1s
ACCESS
links:
  - { between: [player, relay-fra], model: { delayMs: 5 } }
  - { between: [player, game], model: { delayMs: 20 } }
`;

describe('access links in scenarios', () => {
  it("the SDK's probes cross the player's access link: the relay's measured RTT includes it both ways", (t) => {
    const rttOf = (access: string): number => {
      const run = new ScenarioRun(parseScenario('probe.yaml', SCENARIO.replace('ACCESS', access)), 1);
      run.run();
      return run.deployment.clients[0]!.tunnel!.core.relaySelector.figures('relay-fra')!.rttMs!;
    };
    const without = rttOf('');
    const withAccess = rttOf('    access: { uplink: { delayMs: 15 }, downlink: { delayMs: 10 } }');
    t.diagnostic(`relay-fra RTT: ${without} ms without, ${withAccess} ms with the access link`);
    assert.ok(Math.abs(without - 10) < 3, `path only: ${without} ms`);
    assert.ok(Math.abs(withAccess - without - 25) < 3, `with a 15 + 10 ms access link: ${withAccess} ms vs ${without} ms`);
  });

  it('access: reads uplink, downlink and both (merged); events change access links', () => {
    const s = parseScenario(
      'ok.yaml',
      SCENARIO.replace('ACCESS', '    access: { both: { delayMs: 4, loss: 0.01 }, downlink: { delayMs: 9 } }') + 'events:\n  - { at: 5s, access: player, direction: uplink, set: { loss: 0.2 }, for: 1s }\n  - { at: 6s, access: player, blackout: 500ms }\n',
    );
    assert.deepEqual(
      s.access.map((a) => [a.hop, a.model]),
      [
        [['player', 'uplink'], { delayMs: 4, loss: { model: 'bernoulli', p: 0.01 } }],
        [['player', 'downlink'], { delayMs: 9, loss: { model: 'bernoulli', p: 0.01 } }],
      ],
    );
    assert.deepEqual(s.events[0]!.kind === 'set' && s.events[0]!.access, [['player', 'uplink']]);
    assert.deepEqual(s.events[1]!.kind === 'blackout' && s.events[1]!.access, [
      ['player', 'uplink'],
      ['player', 'downlink'],
    ]);
    // And it runs: the blackout and the restore apply to the access links.
    const run = new ScenarioRun(s, 1);
    run.run();
    assert.equal(run.network.accessLink('10.64.0.1', 'uplink')!.model.loss?.model, 'bernoulli');
  });

  it('bad access keys and events → file:line: key: reason', () => {
    const expectError = (text: string, pattern: RegExp): void =>
      assert.throws(
        () => parseScenario('bad.yaml', text),
        (e: unknown) => e instanceof ConfigError && pattern.test(e.message) && !e.message.includes('\n'),
        `expected ${pattern}`,
      );
    expectError(SCENARIO.replace('ACCESS', '    access: { uplnk: { delayMs: 4 } }'), /^bad\.yaml:14: clients\[0\]\.access\.uplnk: unknown key.*uplink, downlink, both/);
    expectError(SCENARIO.replace('ACCESS', '    access: { uplink: { delayMs: -4 } }'), /^bad\.yaml:14: clients\[0\]\.access\.uplink\.delayMs: -4 is out of range/);
    expectError(SCENARIO.replace('ACCESS', '    access: {}'), /^bad\.yaml:14: clients\[0\]\.access: is empty/);
    expectError(SCENARIO.replace('ACCESS', '') + 'events:\n  - { at: 5s, access: player, blackout: 1s }\n', /^bad\.yaml:19: events\[0\]\.access: 'player' has no uplink access link/);
    expectError(SCENARIO.replace('ACCESS', '    access: { both: {} }') + 'events:\n  - { at: 5s, access: player, link: "player↔game", blackout: 1s }\n', /^bad\.yaml:19: events\[0\]: give either link: .* or access:/);
    expectError(SCENARIO.replace('ACCESS', '    access: { both: {} }') + 'events:\n  - { at: 5s, access: player, direction: sideways, blackout: 1s }\n', /events\[0\]\.direction: .*sideways/);
  });
});
