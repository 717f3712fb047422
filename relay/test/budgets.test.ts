/**
 * Session budgets under a spoofed flood (core/budgets.ts): an L4 UDP flow whose origin
 * has not answered is cheap and goes first — a short idle timeout, the first shed when
 * a budget is full, oldest first, and no log line of its own; it becomes established on
 * its origin's first answer. Every kind (UDP, TCP, tunnel) and every rule has its own
 * budget, so a flood on one door cannot close the others, and a tunnel session (a valid
 * ticket) is never displaced by L4 state; a forged ticket cannot shed anyone's flow.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../proto/src/rng.js';
import { DropReason, type RelayCore } from '../src/core/relay-core.js';
import type { LimitsSpec } from '../src/core/config-types.js';
import { baseConfig, controlOf, forgerKey, Harness, mintTicket, openLimits, openPacket, udpRule, type Sent } from './support.js';

/** A spoofed flood's datagram: one per source address, never answered. */
function spoof(h: Harness, listener: number, i: number): Sent[] {
  return h.deliver(listener, { address: `203.0.${(i >> 8) & 255}.${i & 255}`, port: 1000 + (i >> 16) }, Uint8Array.of(0x66));
}

/** A player: its first datagram opens a flow and the origin answers it (the flow is established). */
function player(h: Harness, listener: number, address: string): Sent {
  const [up] = h.deliver(listener, { address, port: 5000 }, Uint8Array.of(0x70));
  assert.ok(up !== undefined, `the player ${address} is forwarded`);
  const [down] = h.deliver(up.socketId, up.to, Uint8Array.of(0x71));
  assert.deepEqual(down?.to, { address, port: 5000 }, `the origin's answer reaches ${address}`);
  return up;
}

/** Whether a tunnel open with `s`'s ticket from `from` is accepted. */
function opens(h: Harness, s: ReturnType<typeof mintTicket>, from = { address: '198.51.100.9', port: 4000 }): string | undefined {
  const [answer] = h.deliver(h.tunnelId, from, openPacket(s));
  return answer === undefined ? undefined : controlOf(answer.bytes)?.type;
}

function limits(overrides: Partial<LimitsSpec>): LimitsSpec {
  return { ...openLimits, ...overrides };
}

function counts(core: RelayCore): { udp: number; unreplied: number; tunnel: number } {
  return { udp: core.udpFlowCount, unreplied: core.unrepliedFlowCount, tunnel: core.tunnelSessionCount };
}

describe('unreplied L4 flows', () => {
  test('a full UDP budget sheds the oldest unreplied flow for a new one; established flows are never shed', () => {
    const h = new Harness(baseConfig({ limits: limits({ sessionsMax: 100, udpFlowsMax: 10, tunnelSessionsMax: 50 }) }));
    const listener = h.listenerIds.get(27015)!;
    const players = ['198.51.100.1', '198.51.100.2', '198.51.100.3'].map((address) => player(h, listener, address));
    for (let i = 0; i < 1000; i++) spoof(h, listener, i);
    assert.deepEqual(counts(h.core), { udp: 10, unreplied: 7, tunnel: 0 }, 'the budget holds 10: the 3 players and the 7 newest spoofed flows');
    assert.equal(h.core.shedFlowCount, 1000 - 7);
    // The flows left are the newest: the oldest went first.
    const shed = h.eventsOf('flowUnreplied');
    assert.equal(shed.length, 993);
    assert.ok(shed.every((e) => e.reason === 'shed'));
    assert.equal(shed[0]!.client, '203.0.0.0:1000', 'the oldest first');
    // Each shed flow hands its origin-facing socket to the flow that displaced it: no kernel socket made and closed per spoofed datagram.
    assert.equal(h.eventsOf('openSocket').filter((e) => e.kind === 'upstream').length, 10);
    assert.equal(h.eventsOf('closeSocket').filter((e) => e.kind === 'upstream').length, 0);
    // The players' flows are untouched: same upstream socket, still forwarded.
    for (const [i, address] of ['198.51.100.1', '198.51.100.2', '198.51.100.3'].entries()) {
      const [up] = h.deliver(listener, { address, port: 5000 }, Uint8Array.of(1));
      assert.equal(up?.socketId, players[i]!.socketId, `${address} keeps its flow`);
    }
    // A new player during the flood is admitted (it sheds a spoofed flow) and established by its origin's answer.
    player(h, listener, '198.51.100.4');
    assert.deepEqual(counts(h.core), { udp: 10, unreplied: 6, tunnel: 0 });
    assert.equal(h.core.drops[DropReason.SessionCap], 0, 'nobody was refused');
  });

  test('when established flows fill the budget, a new flow is refused and nobody is shed', () => {
    const h = new Harness(baseConfig({ limits: limits({ sessionsMax: 100, udpFlowsMax: 4 }) }));
    const listener = h.listenerIds.get(27015)!;
    for (let i = 1; i <= 4; i++) player(h, listener, `198.51.100.${i}`);
    assert.deepEqual(spoof(h, listener, 1), []);
    assert.equal(h.core.drops[DropReason.SessionCap], 1);
    assert.deepEqual(counts(h.core), { udp: 4, unreplied: 0, tunnel: 0 });
    assert.equal(h.core.shedFlowCount, 0);
  });

  test('an unreplied flow ends after limits.unrepliedIdleTimeoutMs; an established one keeps the rule idle timeout', () => {
    const h = new Harness(baseConfig({ limits: limits({ unrepliedIdleTimeoutMs: 5000 }) }));
    const listener = h.listenerIds.get(27015)!;
    player(h, listener, '198.51.100.1');
    spoof(h, listener, 1);
    h.advance(4000);
    assert.deepEqual(counts(h.core), { udp: 2, unreplied: 1, tunnel: 0 });
    h.advance(6500);
    assert.deepEqual(counts(h.core), { udp: 1, unreplied: 0, tunnel: 0 }, 'the unreplied flow went idle after 5 s');
    assert.deepEqual(h.eventsOf('flowUnreplied').map((e) => e.reason), ['idle']);
    h.advance(59_000);
    assert.equal(h.core.udpFlowCount, 1, 'the established flow stays for the rule idle timeout');
    h.advance(61_500);
    assert.equal(h.core.udpFlowCount, 0);
  });

  test('an unreplied flow logs no start; its start is logged at the origin\'s first answer, and only an established flow logs an end', () => {
    const h = new Harness();
    const listener = h.listenerIds.get(27015)!;
    const [up] = spoof(h, listener, 1);
    assert.equal(h.eventsOf('sessionStart').length, 0, 'no line for a datagram nobody answered');
    h.deliver(up!.socketId, up!.to, Uint8Array.of(2));
    assert.deepEqual(h.eventsOf('sessionStart').map((e) => [e.kind, e.client]), [['udp', '203.0.0.1:1000']]);
    h.deliver(up!.socketId, up!.to, Uint8Array.of(3));
    assert.equal(h.eventsOf('sessionStart').length, 1, 'once');
    h.core.close(h.nowMs);
    h.drain();
    assert.equal(h.eventsOf('sessionEnd').length, 1);
    assert.equal(h.eventsOf('flowUnreplied').length, 0);
  });

  test('unreplied flows do not count in the load reported to the coordinator', () => {
    const h = new Harness(baseConfig({ limits: limits({ sessionsMax: 100, udpFlowsMax: 50, tunnelSessionsMax: 50 }) }));
    const listener = h.listenerIds.get(27015)!;
    for (let i = 0; i < 200; i++) spoof(h, listener, i);
    player(h, listener, '198.51.100.1');
    assert.equal(h.core.sessionCount, 50);
    assert.equal(h.core.loadSessionCount, 1);
    assert.equal(h.core.fleetLoadSessionCount, 0, 'no tunnel session, and the one established flow leaves the tunnel its whole budget');
  });
});

describe('budgets per kind and per rule', () => {
  test('a tunnel session is never displaced by L4 state, and a new one is admitted during a flood that fills the ceiling', () => {
    // Ceiling 20, UDP may take all of it; tunnel 5.
    const h = new Harness(baseConfig({ limits: limits({ sessionsMax: 20, udpFlowsMax: 20, tunnelSessionsMax: 5 }) }));
    const listener = h.listenerIds.get(27015)!;
    const rng = new Rng(7);
    for (let i = 0; i < 3; i++) assert.equal(opens(h, mintTicket(rng), { address: `198.51.100.${10 + i}`, port: 4000 }), 'sessionAccept');
    for (let i = 0; i < 500; i++) spoof(h, listener, i);
    assert.deepEqual(counts(h.core), { udp: 17, unreplied: 17, tunnel: 3 }, 'the flood takes what the tunnel sessions leave of the ceiling');
    assert.equal(h.eventsOf('sessionEnd').length, 0, 'no tunnel session ended');
    // A new tunnel session: its verified ticket sheds an unreplied flow.
    assert.equal(opens(h, mintTicket(rng)), 'sessionAccept');
    assert.deepEqual(counts(h.core), { udp: 16, unreplied: 16, tunnel: 4 });
  });

  test('the tunnel budget is the tunnel\'s: full, it refuses with SLIP_ERR_RELAY_FULL while L4 players are still admitted', () => {
    const h = new Harness(baseConfig({ limits: limits({ sessionsMax: 100, udpFlowsMax: 50, tunnelSessionsMax: 2 }) }));
    const listener = h.listenerIds.get(27015)!;
    const rng = new Rng(8);
    assert.equal(opens(h, mintTicket(rng), { address: '198.51.100.20', port: 1 }), 'sessionAccept');
    assert.equal(opens(h, mintTicket(rng), { address: '198.51.100.21', port: 1 }), 'sessionAccept');
    const [answer] = h.deliver(h.tunnelId, { address: '198.51.100.22', port: 1 }, openPacket(mintTicket(rng)));
    const reject = controlOf(answer!.bytes);
    assert.equal(reject?.type, 'sessionReject');
    assert.equal(reject?.type === 'sessionReject' ? reject.reason : '', 'SLIP_ERR_RELAY_FULL');
    player(h, listener, '198.51.100.1');
  });

  test('a forged ticket sheds no flow: only a verified one may make room', () => {
    const h = new Harness(baseConfig({ limits: limits({ sessionsMax: 10, udpFlowsMax: 10, tunnelSessionsMax: 5 }) }));
    const listener = h.listenerIds.get(27015)!;
    for (let i = 0; i < 10; i++) spoof(h, listener, i);
    const rng = new Rng(9);
    for (let i = 0; i < 20; i++) opens(h, mintTicket(rng, { key: forgerKey }), { address: `198.51.100.${i}`, port: 2 });
    assert.equal(h.core.shedFlowCount, 0);
    assert.deepEqual(counts(h.core), { udp: 10, unreplied: 10, tunnel: 0 });
  });

  test('a rule budget keeps a flood on one rule from taking another rule\'s room, even with flows its origin answers', () => {
    const rules = [udpRule({ name: 'flooded', sessionsMax: 5 }), udpRule({ name: 'quiet', listenPort: 27016, listenPortEnd: 27016, sessionsMax: 5 })];
    const h = new Harness(baseConfig({ rules, limits: limits({ sessionsMax: 100, udpFlowsMax: 10 }) }));
    const flooded = h.listenerIds.get(27015)!;
    const quiet = h.listenerIds.get(27016)!;
    // The flood's flows are answered by their origin (a game server answering a query): established, never shed.
    for (let i = 0; i < 50; i++) {
      const [up] = spoof(h, flooded, i);
      if (up !== undefined) h.deliver(up.socketId, up.to, Uint8Array.of(1));
    }
    assert.equal(h.core.udpFlowCount, 5, 'the flooded rule holds its own budget only');
    assert.equal(h.core.drops[DropReason.SessionCap], 45);
    for (let i = 1; i <= 5; i++) player(h, quiet, `198.51.100.${i}`);
    assert.equal(h.core.udpFlowCount, 10);
    // Unanswered flood flows on the flooded rule shed only that rule's unreplied flows.
    const h2 = new Harness(baseConfig({ rules, limits: limits({ sessionsMax: 100, udpFlowsMax: 10 }) }));
    const quiet2 = h2.listenerIds.get(27016)!;
    const waiting = h2.deliver(quiet2, { address: '198.51.100.50', port: 9 }, Uint8Array.of(1));
    assert.equal(waiting.length, 1, 'a player on the quiet rule, its origin not answered yet');
    for (let i = 0; i < 100; i++) spoof(h2, h2.listenerIds.get(27015)!, i);
    assert.equal(h2.core.udpFlowCount, 6, 'the flooded rule 5, the quiet rule 1');
    assert.ok(!h2.eventsOf('flowUnreplied').some((e) => e.rule === 'quiet'), 'the quiet rule\'s waiting player was not shed');
  });

  test('a shed flow\'s socket goes to the new flow only on the same origin group; otherwise it is closed and a new one opened', () => {
    const rules = [udpRule({ name: 'a' }), udpRule({ name: 'b', listenPort: 27016, listenPortEnd: 27016, group: 'other' })];
    const groups = [
      { name: 'g', origins: [{ address: '10.0.0.8', port: 7000, portEnd: 7000 }], healthCheck: { mode: 'none' as const, intervalMs: 1000, timeoutMs: 500, failuresToDown: 1, successesToUp: 1, udpPayload: Uint8Array.of(0) } },
      { name: 'other', origins: [{ address: '10.0.0.7', port: 7000, portEnd: 7000 }], healthCheck: { mode: 'none' as const, intervalMs: 1000, timeoutMs: 500, failuresToDown: 1, successesToUp: 1, udpPayload: Uint8Array.of(0) } },
    ];
    const h = new Harness(baseConfig({ rules, groups, limits: limits({ sessionsMax: 100, udpFlowsMax: 3 }) }));
    for (let i = 0; i < 3; i++) spoof(h, h.listenerIds.get(27015)!, i);
    const upstream = (type: 'openSocket' | 'closeSocket'): number[] => h.eventsOf(type).filter((e) => e.kind === 'upstream').map((e) => e.socketId);
    assert.equal(upstream('openSocket').length, 3);
    const [up] = h.deliver(h.listenerIds.get(27016)!, { address: '198.51.100.1', port: 5000 }, Uint8Array.of(1));
    assert.equal(up?.to.address, '10.0.0.7', 'the new flow goes to its own group\'s origin');
    assert.deepEqual(upstream('closeSocket'), [upstream('openSocket')[0]], 'the shed flow\'s socket (the oldest) is closed');
    assert.equal(upstream('openSocket').length, 4, 'and the new flow has a socket of its own');
    assert.equal(up?.socketId, upstream('openSocket')[3]);
    assert.equal(h.core.udpFlowCount, 3);
  });
});
