/**
 * The heartbeat's `status` (relay/src/core/fleet-status.ts), on hand-built session
 * records: a session that carried game data since the previous snapshot is a player, an
 * open one that carried none (a warm backup) is a backup, a session from a fleet peer
 * (a two-hop exit) is neither; FEC figures are over the live sessions' lives; the
 * origins are bounded (the busiest RELAY_STATUS_ORIGINS_MAX, the rest folded) and long
 * names cut to what the coordinator accepts; downstream loss comes from the players'
 * own fecStats reports, through the real core too. The agent sends it only to a coordinator
 * that offered it at registration.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RELAY_STATUS_NAME_CHARS_MAX, RELAY_STATUS_ORIGINS_MAX } from '../../proto/src/api/contract.js';
import { FleetAgentCore, type FleetAgentSpec, type FleetRequest } from '../src/core/fleet-agent.js';
import { FleetStatus } from '../src/core/fleet-status.js';
import { FecSender } from '../../proto/src/fec/index.js';
import { Rng } from '../../proto/src/rng.js';
import { buildControlPacket } from '../../proto/src/wire.js';
import { controlOf, Harness, mintTicket, upstreamShards } from './support.js';
import type { RuleSpec } from '../src/core/config-types.js';
import { RuleStats } from '../src/core/session-base.js';
import type { TunnelSession } from '../src/core/tunnel/state.js';

/** The fields of a tunnel session the status reads. */
interface FakeSession {
  closed: boolean;
  packetsUp: number;
  originName: string;
  source: { peer: boolean };
  paths: unknown[] | undefined;
  fecReceiver: { totals: { received: number; recovered: number; unrecoverable: number } } | undefined;
  downFecTotals?: { received: number; recovered: number; unrecoverable: number };
}

/** `exit`: this relay is the session's two-hop exit (it has validated paths); `peer`: it was opened by a fleet relay. */
const session = (originName: string, packetsUp: number, peer = false, exit = false): FakeSession => ({ closed: false, packetsUp, originName, source: { peer }, paths: exit ? [] : undefined, fecReceiver: { totals: { received: 0, recovered: 0, unrecoverable: 0 } } });
const asSessions = (list: FakeSession[]): TunnelSession[] => list as unknown as TunnelSession[];

describe('fleet status', () => {
  test('players are sessions that carried data since the last snapshot; backups the rest; a two-hop exit\'s session is counted at its entry, a player beside a relay is a player', () => {
    const status = new FleetStatus();
    const playing = session('game', 10);
    const backup = session('game', 0);
    const exitOfTwoHop = session('game', 50, true, true);
    // A player whose address is a fleet relay's too (relays and players on one host, as `slipstream dev` runs them) is still a player.
    const besideARelay = session('game', 3, true);
    let s = status.snapshot(asSessions([playing, backup, exitOfTwoHop, besideARelay]), [], new Map(), []);
    assert.deepEqual(s.origins.map((o) => [o.origin, o.players, o.backups]), [['game', 2, 1]]);
    // Nothing moved since: all idle now.
    s = status.snapshot(asSessions([playing, backup, exitOfTwoHop]), [], new Map(), []);
    assert.deepEqual(s.origins.map((o) => [o.players, o.backups]), [[0, 2]]);
    // The backup takes over (a failover): it is the player now.
    backup.packetsUp = 5;
    s = status.snapshot(asSessions([playing, backup]), [], new Map(), []);
    assert.deepEqual(s.origins.map((o) => [o.players, o.backups]), [[1, 1]]);
  });

  test('FEC figures are the upstream receivers\' over the lives of the sessions open now', () => {
    const status = new FleetStatus();
    const a = session('game', 100);
    const b = session('game', 0);
    a.fecReceiver!.totals = { received: 90, recovered: 8, unrecoverable: 2 };
    b.fecReceiver = undefined;
    let [o] = status.snapshot(asSessions([a, b]), [], new Map(), []).origins;
    assert.deepEqual([o!.fecRecovered, o!.lossBeforeFec, o!.lossAfterFec], [8, 0.1, 0.02]);
    a.packetsUp = 200;
    a.fecReceiver!.totals = { received: 190, recovered: 8, unrecoverable: 2 };
    [o] = status.snapshot(asSessions([a, b]), [], new Map(), []).origins;
    assert.deepEqual([o!.fecRecovered, o!.lossBeforeFec, o!.lossAfterFec], [8, 0.05, 0.01], 'a clean span lowers the session\'s loss');
    assert.deepEqual([o!.downLossBeforeFec, o!.downLossAfterFec], [0, 0], 'no player reported its downstream: 0');
  });

  test('downstream loss before and after FEC is the players\' own receivers\' (their fecStats), summed over the sessions open now, apart from upstream', () => {
    const status = new FleetStatus();
    const a = session('game', 100);
    const b = session('game', 50);
    const silent = session('game', 10);
    a.downFecTotals = { received: 180, recovered: 15, unrecoverable: 5 };
    b.downFecTotals = { received: 200, recovered: 0, unrecoverable: 0 };
    const [o] = status.snapshot(asSessions([a, b, silent]), [], new Map(), []).origins;
    assert.deepEqual([o!.downLossBeforeFec, o!.downLossAfterFec], [0.05, 0.0125]);
    assert.deepEqual([o!.lossBeforeFec, o!.lossAfterFec], [0, 0], 'the upstream figures stay the upstream receivers\'');
  });

  test('through the relay core: a session\'s fecStats reports add up into its origin\'s downstream loss in the heartbeat status', () => {
    const h = new Harness();
    const s = mintTicket(new Rng(41));
    const client = { address: '198.51.100.21', port: 50001 };
    const answer = h.deliver(h.tunnelId, client, buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['rs', 'off'] }));
    assert.equal(controlOf(answer[0]!.bytes)?.type, 'sessionAccept');
    const sender = new FecSender({ scheme: { mode: 'rs', k: 4, r: 2, interleave: 1, holdMs: 8 }, maxPayloadBytes: 1400 });
    for (const shard of upstreamShards(s, sender, 0, new Uint8Array(40).fill(1))) h.deliver(h.tunnelId, client, shard);
    const report = (received: number, recovered: number, unrecoverable: number): void => {
      h.deliver(h.tunnelId, client, buildControlPacket(s.high, s.low, { type: 'fecStats', intervalMs: 1000, received, recovered, unrecoverable, duplicates: 0, parityReceived: 10, wirePackets: received + recovered + unrecoverable, wireLost: recovered + unrecoverable, lossBursts: 1 }));
    };
    report(90, 8, 2);
    report(100, 0, 0);
    const [o] = h.core.fleetStatus().origins;
    assert.equal(o!.origin, 'game');
    assert.equal(o!.players, 1);
    assert.deepEqual([o!.downLossBeforeFec, o!.downLossAfterFec], [0.05, 0.01]);
  });

  test(`at most ${RELAY_STATUS_ORIGINS_MAX} origins, the busiest; the rest folded; long names cut; rules with their group's origins`, () => {
    const sessions: FakeSession[] = [];
    for (let i = 0; i < RELAY_STATUS_ORIGINS_MAX + 4; i++) for (let k = 0; k <= i; k++) sessions.push(session(`origin-${String(i).padStart(2, '0')}`, 1));
    sessions.push(session('x'.repeat(300), 0));
    const rules: RuleSpec[] = [{ name: 'game-udp', protocol: 'udp', listenAddress: '::', listenPort: 27015, listenPortEnd: 27020, group: 'game' } as RuleSpec];
    const stats = new Map([['game-udp', Object.assign(new RuleStats('game-udp', 'udp'), { sessionsActive: 3 })]]);
    const s = new FleetStatus().snapshot(asSessions(sessions), rules, stats, [
      { group: 'game', origin: '10.0.1.10:27015', healthy: true },
      { group: 'other', origin: '10.0.9.9:1', healthy: true },
      { group: 'game', origin: '10.0.1.11:27015', healthy: false },
    ]);
    assert.equal(s.origins.length, RELAY_STATUS_ORIGINS_MAX);
    assert.equal(s.origins[0]!.origin, `origin-${RELAY_STATUS_ORIGINS_MAX + 3}`, 'busiest first');
    // Left out: origin-00..origin-03 (1+2+3+4 players) and the long-named backup.
    assert.deepEqual([s.otherPlayers, s.otherBackups], [10, 1]);
    const long = new FleetStatus().snapshot(asSessions([session('x'.repeat(300), 1)]), [], new Map(), []).origins[0]!.origin;
    assert.equal(long.length, RELAY_STATUS_NAME_CHARS_MAX);
    assert.deepEqual(s.rules, [{ rule: 'game-udp', protocol: 'udp', listen: '[::]:27015-27020', group: 'game', sessions: 3, origins: [{ origin: '10.0.1.10:27015', healthy: true }, { origin: '10.0.1.11:27015', healthy: false }] }]);
  });

  test('the agent sends status only to a coordinator that offered it at registration', () => {
    const spec: FleetAgentSpec = { relayId: 'fra-1', region: 'eu', latitude: 50, longitude: 8, tunnelAddress: '192.0.2.1:4433', probeAddress: '192.0.2.1:4433', capacitySessions: 10, heartbeatIntervalMs: 1000, meshRefreshMs: 60_000, probeIntervalMs: 1000, probeTimeoutMs: 500, reportIntervalMs: 5000, originProbe: 'none' };
    const status = { origins: [], otherPlayers: 0, otherBackups: 0, rules: [] };
    for (const offered of [undefined, true]) {
      let asked = 0;
      const core = new FleetAgentCore(spec, { load: () => ({ sessions: 0, packetsPerSecond: 0, cpuFraction: 0 }), origins: () => new Map(), status: () => (asked++, status) });
      core.start(0);
      const requests: FleetRequest[] = [];
      const drain = (): void => {
        while (core.pollEvent() !== undefined);
        for (let r = core.pollRequest(); r !== undefined; r = core.pollRequest()) requests.push(r);
      };
      drain();
      const register = requests.find((r) => r.kind === 'register')!;
      core.handleResponse(0, register.id, { ok: true, body: { relayId: 'fra-1', leaseMs: 3000, heartbeatIntervalMs: 1000, ticketPublicKey: '', relays: [], ...(offered ? { heartbeatStatus: true } : {}) } });
      drain();
      const hb = requests.find((r) => r.kind === 'heartbeat') as Extract<FleetRequest, { kind: 'heartbeat' }>;
      assert.deepEqual(hb.load.status, offered ? status : undefined, `offered: ${offered}`);
      assert.equal(asked, offered ? 1 : 0, 'the snapshot is taken only when it is sent');
    }
  });
});
