/**
 * Exit relays, sans-IO: an entry forwards a session to the exit its ticket names; the
 * exit validates each entry with the path challenge and keeps several. Unit checks of
 * the protocol, then property tests: whatever entries, fake exits and clients send,
 * neither role throws, amplifies to an unauthenticated sender, or leaks sessions.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HEADER_BYTES, HEADER_MAGIC, PacketType, PROTOCOL_VERSION, sessionIdToHex } from '../../proto/src/header.js';
import { Rng } from '../../proto/src/rng.js';
import { issueTicket } from '../../proto/src/ticket.js';
import type { Endpoint } from '../../proto/src/transport.js';
import { parseCidr } from '../src/core/addr.js';
import { buildClientClose, buildControlPacket, buildPacket, buildPathResponse } from '../../proto/src/wire.js';
import { baseConfig, controlOf, Harness, openLimits, sealKey, signingKey, tunnelSpec, typeOf, WALL_EPOCH_MS, type ClientSession } from './support.js';

const ENTRY = { address: '10.0.0.1', port: 4433 };
const ENTRY_B = { address: '10.0.0.2', port: 4433 };
const EXIT = { address: '10.0.0.7', port: 4433 };
const CLIENT = { address: '198.51.100.1', port: 1000 };

function mintExitTicket(rng: Rng, exit = { relayId: 'exit-1', address: `${EXIT.address}:${EXIT.port}` }): ClientSession {
  const high = rng.nextUint32();
  const low = rng.nextUint32();
  const hex = sessionIdToHex(high, low);
  const key = rng.fillBytes(new Uint8Array(32));
  const ticket = issueTicket({ sessionId: hex, origin: 'game', issuedAtMs: WALL_EPOCH_MS, expiresAtMs: WALL_EPOCH_MS + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: key, sealNonce: rng.fillBytes(new Uint8Array(12)), exit }, signingKey, sealKey);
  return { high, low, hex, key, ticket };
}

const entryConfig = (limits = openLimits) => baseConfig({ rules: [], groups: [], limits, tunnel: tunnelSpec({ relayId: 'entry-a', fec: { modes: ['dup', 'off'], k: 4, r: 2, holdMs: 8, copies: 1, spacingMs: 2 } }) });
const exitConfig = (limits = openLimits) => baseConfig({ rules: [], groups: [], limits, upstreamBindAddress: EXIT.address, tunnel: tunnelSpec({ listenAddress: EXIT.address, relayId: 'exit-1', peerCidrs: [parseCidr('10.0.0.0/24')!] }) });
const open = (t: ClientSession): Uint8Array => buildControlPacket(t.high, t.low, { type: 'sessionOpen', ticket: t.ticket, fecModes: ['dup', 'off'] });

describe('exit relays', () => {
  test('entry: a ticket naming another exit is forwarded as it came; the exit’s packets reach the client; no origin socket until the exit fails', () => {
    const h = new Harness(entryConfig());
    const t = mintExitTicket(new Rng(1));
    const sent = h.deliver(h.tunnelId, CLIENT, open(t));
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0]!.to, EXIT, 'the open goes to the exit');
    assert.deepEqual(sent[0]!.bytes, open(t));
    assert.equal(h.eventsOf('openSocket').filter((e) => e.kind === 'upstream').length, 0);
    assert.equal(h.eventsOf('sessionStart')[0]!.exit, 'exit-1');
    // The exit challenges us (we are a new address for its session): answered with the key.
    const nonce = new Uint8Array(16).fill(7);
    const challenge = buildPacket(PacketType.PathChallenge, t.high, t.low, 0, nonce);
    const answer = h.deliver(h.tunnelId, EXIT, challenge);
    assert.deepEqual(answer.map((s) => s.to), [EXIT]);
    assert.deepEqual(answer[0]!.bytes, buildPathResponse(t.key, t.high, t.low, nonce));
    assert.equal(h.deliver(h.tunnelId, EXIT, challenge).length, 0, 'a second challenge within the keepalive period is not answered');
    // The exit's accept, data and fecStats go to the client verbatim.
    const accept = buildControlPacket(t.high, t.low, { type: 'sessionAccept', sessionId: t.hex, fecMode: 'dup', exit: 'exit-1' });
    assert.deepEqual(h.deliver(h.tunnelId, EXIT, accept).map((s) => [s.to, s.bytes]), [[CLIENT, accept]]);
    const down = buildPacket(PacketType.Data, t.high, t.low, 77, Uint8Array.of(1, 2, 3));
    assert.deepEqual(h.deliver(h.tunnelId, EXIT, down).map((s) => [s.to, s.bytes]), [[CLIENT, down]]);
    // Client data goes to the exit verbatim (FEC fields and sequence included).
    const up = buildPacket(PacketType.Data, t.high, t.low, 5, Uint8Array.of(9, 9));
    assert.deepEqual(h.deliver(h.tunnelId, CLIENT, up).map((s) => [s.to, s.bytes]), [[EXIT, up]]);
    // The same bytes from anywhere but the exit are a path change of the client, not downstream data.
    const spoofed = h.deliver(h.tunnelId, { address: EXIT.address, port: 9999 }, down);
    assert.ok(spoofed.every((s) => typeOf(s.bytes) === PacketType.PathChallenge && s.bytes.length <= down.length));
    // The client's close goes to the exit too (it drops this entry's path) and ends the session here.
    const close = buildClientClose(t.key, t.high, t.low);
    assert.deepEqual(h.deliver(h.tunnelId, CLIENT, close).map((s) => s.to), [EXIT]);
    assert.equal(h.core.tunnelSessionCount, 0);
  });

  test('entry: an exit that stays silent while traffic waits is judged dead; the entry opens its own origin socket and tells the client (accept without exit)', () => {
    const h = new Harness(entryConfig());
    const t = mintExitTicket(new Rng(2));
    h.deliver(h.tunnelId, CLIENT, open(t));
    h.deliver(h.tunnelId, EXIT, buildControlPacket(t.high, t.low, { type: 'sessionAccept', sessionId: t.hex, fecMode: 'dup', exit: 'exit-1' }));
    h.advance(5_000);
    assert.equal(h.eventsOf('sessionMoved').length, 0, 'an idle session says nothing about its exit');
    h.deliver(h.tunnelId, CLIENT, buildPacket(PacketType.Data, t.high, t.low, 1, Uint8Array.of(1)));
    const during = h.advance(5_900);
    assert.ok(during.some((s) => s.to.address === EXIT.address && controlOf(s.bytes)?.type === 'sessionOpen'), 'keepalive opens go to the quiet exit');
    assert.equal(h.eventsOf('sessionMoved').length, 0);
    const after = h.advance(6_100);
    const moved = h.eventsOf('sessionMoved');
    assert.equal(moved.length, 1);
    assert.equal(moved[0]!.what, 'origin');
    assert.equal(h.eventsOf('openSocket').filter((e) => e.kind === 'upstream').length, 1);
    const accept = after.find((s) => s.to.address === CLIENT.address && controlOf(s.bytes)?.type === 'sessionAccept');
    assert.ok(accept, 'the client hears that this relay terminates the session now');
    const m = controlOf(accept.bytes)!;
    assert.ok(m.type === 'sessionAccept' && m.exit === undefined);
    // From now on client data goes to the origin.
    const upstreamId = h.eventsOf('openSocket').find((e) => e.kind === 'upstream')!.socketId;
    const sent = h.deliver(h.tunnelId, CLIENT, buildPacket(PacketType.Data, t.high, t.low, 2, Uint8Array.of(5)));
    assert.deepEqual(sent.map((s) => [s.socketId, s.to]), [[upstreamId, { address: '10.0.0.9', port: 7777 }]]);
  });

  test('entry: an exit that never accepts (or refuses) leaves the session to the entry within the open timeout', () => {
    const h = new Harness(entryConfig());
    const t = mintExitTicket(new Rng(3));
    h.deliver(h.tunnelId, CLIENT, open(t));
    const sent = h.advance(1_000);
    const accept = sent.find((s) => s.to.address === CLIENT.address && controlOf(s.bytes)?.type === 'sessionAccept');
    assert.ok(accept, 'the entry accepts the session itself');
    const u = mintExitTicket(new Rng(4));
    h.deliver(h.tunnelId, { ...CLIENT, port: 1001 }, open(u));
    const refused = h.deliver(h.tunnelId, EXIT, buildControlPacket(u.high, u.low, { type: 'sessionReject', reason: 'SLIP_ERR_RELAY_DRAINING', message: '' }));
    assert.ok(refused.some((s) => s.to.port === 1001 && controlOf(s.bytes)?.type === 'sessionAccept'));
    assert.equal(h.eventsOf('openSocket').filter((e) => e.kind === 'upstream').length, 2);
  });

  test('exit: entries join by path challenge and stay; downstream follows the entry with the latest upstream data; one origin socket; one entry’s close keeps the session', () => {
    const h = new Harness(exitConfig());
    const t = mintExitTicket(new Rng(5));
    const accepted = h.deliver(h.tunnelId, ENTRY, open(t));
    const m = controlOf(accepted[0]!.bytes);
    assert.ok(m?.type === 'sessionAccept' && m.exit === 'exit-1', 'the accept names the exit');
    // Entry B forwards the same open: challenged, not accepted, until it proves the key.
    const challenged = h.deliver(h.tunnelId, ENTRY_B, open(t));
    assert.equal(challenged.length, 1);
    assert.equal(typeOf(challenged[0]!.bytes), PacketType.PathChallenge);
    const joined = h.deliver(h.tunnelId, ENTRY_B, buildPathResponse(t.key, t.high, t.low, challenged[0]!.bytes.subarray(HEADER_BYTES)));
    assert.ok(joined.some((s) => s.to.address === ENTRY_B.address && controlOf(s.bytes)?.type === 'sessionAccept'), 'B gets its accept at once');
    const originSocket = h.eventsOf('openSocket').filter((e) => e.kind === 'upstream');
    assert.equal(originSocket.length, 1);
    const reply = (): Endpoint[] => h.deliver(originSocket[0]!.socketId, { address: '10.0.0.9', port: 7777 }, Uint8Array.of(4, 2)).filter((s) => s.socketId === h.tunnelId).map((s) => s.to);
    assert.deepEqual(reply(), [ENTRY], 'A carried the last upstream (its open)');
    // Upstream from both entries reaches the origin through the one socket, FEC-deduplicated.
    const shard = buildPacket(PacketType.Data, t.high, t.low, 1, Uint8Array.of(0, 1, 42));
    const viaB = h.deliver(h.tunnelId, ENTRY_B, shard);
    assert.ok(viaB.every((s) => s.socketId === originSocket[0]!.socketId));
    assert.deepEqual(reply(), [ENTRY_B], 'downstream follows B');
    h.deliver(h.tunnelId, ENTRY, buildPacket(PacketType.Data, t.high, t.low, 2, Uint8Array.of(0, 1, 43)));
    assert.deepEqual(reply(), [ENTRY]);
    // A closes its part (the SDK left it): the session goes on through B.
    h.deliver(h.tunnelId, ENTRY, buildClientClose(t.key, t.high, t.low));
    assert.equal(h.core.tunnelSessionCount, 1);
    assert.deepEqual(reply(), [ENTRY_B]);
    h.deliver(h.tunnelId, ENTRY_B, buildClientClose(t.key, t.high, t.low));
    assert.equal(h.core.tunnelSessionCount, 0, 'the last path’s close ends the session');
  });

  test('exit: per-source caps count players, not entries: fleet relays (setPeers or tunnel.peerCidrs) are exempt', () => {
    const limits = { ...openLimits, sessionsPerSourceMax: 1 };
    const config = baseConfig({ rules: [], groups: [], limits, upstreamBindAddress: EXIT.address, tunnel: tunnelSpec({ listenAddress: EXIT.address, relayId: 'exit-1' }) });
    const rng = new Rng(8);
    const tickets = [mintExitTicket(rng), mintExitTicket(rng), mintExitTicket(rng)];
    const h = new Harness(config);
    h.deliver(h.tunnelId, ENTRY, open(tickets[0]!));
    h.deliver(h.tunnelId, ENTRY, open(tickets[1]!));
    assert.equal(h.core.tunnelSessionCount, 1, 'one entry address is one source without peers');
    h.core.setPeers([ENTRY.address]);
    h.deliver(h.tunnelId, ENTRY, open(tickets[1]!));
    h.deliver(h.tunnelId, ENTRY, open(tickets[2]!));
    assert.equal(h.core.tunnelSessionCount, 3);
    const byCidr = new Harness(exitConfig(limits));
    for (const t of tickets) byCidr.deliver(byCidr.tunnelId, ENTRY, open(t));
    assert.equal(byCidr.core.tunnelSessionCount, 3);
  });

  test('no exit in the ticket: accept without exit, origin socket at once (unchanged)', () => {
    const h = new Harness(entryConfig());
    const rng = new Rng(6);
    const high = rng.nextUint32();
    const low = rng.nextUint32();
    const hex = sessionIdToHex(high, low);
    const ticket = issueTicket({ sessionId: hex, origin: 'game', issuedAtMs: WALL_EPOCH_MS, expiresAtMs: WALL_EPOCH_MS + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: new Uint8Array(32), sealNonce: new Uint8Array(12) }, signingKey, sealKey);
    const sent = h.deliver(h.tunnelId, CLIENT, buildControlPacket(high, low, { type: 'sessionOpen', ticket, fecModes: ['off'] }));
    const m = controlOf(sent[0]!.bytes);
    assert.ok(m?.type === 'sessionAccept' && m.exit === undefined);
    assert.equal(h.eventsOf('openSocket').filter((e) => e.kind === 'upstream').length, 1);
  });
});

/** Bytes that look like ours often enough to get past the junk check. */
const junkArb = fc.oneof(
  fc.uint8Array({ maxLength: 120 }),
  fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 3 }), fc.uint8Array({ minLength: 20, maxLength: 120 })).map(([type, flags, rest]) => Uint8Array.from([HEADER_MAGIC, PROTOCOL_VERSION, type, flags, ...rest])),
);

type Op =
  | { kind: 'open'; ticket: number; from: number }
  | { kind: 'data'; ticket: number; from: number; size: number }
  | { kind: 'respond'; ticket: number; from: number; rightKey: boolean }
  | { kind: 'close'; ticket: number; from: number; rightKey: boolean }
  | { kind: 'fromExit'; ticket: number; from: number; what: number; size: number }
  | { kind: 'junk'; from: number; bytes: Uint8Array }
  | { kind: 'origin'; size: number }
  | { kind: 'wait'; ms: number };

const fuzzRng = new Rng(91);
const fuzzTickets = Array.from({ length: 3 }, () => mintExitTicket(fuzzRng));
// Clients, entries, the exit itself, and senders spoofing the exit's address from another port.
const fuzzPeers: Endpoint[] = [CLIENT, { address: '198.51.100.2', port: 1000 }, ENTRY, ENTRY_B, EXIT, { address: EXIT.address, port: 5 }];
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('open' as const), ticket: fc.nat(2), from: fc.nat(5) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('data' as const), ticket: fc.nat(2), from: fc.nat(5), size: fc.integer({ min: 0, max: 200 }) }), weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant('respond' as const), ticket: fc.nat(2), from: fc.nat(5), rightKey: fc.boolean() }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('close' as const), ticket: fc.nat(2), from: fc.nat(5), rightKey: fc.boolean() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('fromExit' as const), ticket: fc.nat(2), from: fc.constantFrom(4, 5), what: fc.nat(6), size: fc.integer({ min: 0, max: 100 }) }), weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant('junk' as const), from: fc.nat(5), bytes: junkArb }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('origin' as const), size: fc.integer({ min: 0, max: 200 }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 3_000 }) }), weight: 2 },
);

function exitPacket(t: ClientSession, what: number, size: number, key: Uint8Array): Uint8Array {
  switch (what) {
    case 0:
      return buildPacket(PacketType.PathChallenge, t.high, t.low, 0, new Uint8Array(16).fill(size & 0xff));
    case 1:
      return buildControlPacket(t.high, t.low, { type: 'sessionAccept', sessionId: t.hex, fecMode: 'dup', exit: 'exit-1' });
    case 2:
      return buildControlPacket(t.high, t.low, { type: 'sessionReject', reason: 'SLIP_ERR_RELAY_FULL', message: 'x'.repeat(size) });
    case 3:
      return buildPacket(PacketType.Close, t.high, t.low, 0, new Uint8Array(size));
    case 4:
      return buildClientClose(key, t.high, t.low);
    case 5: {
      // A parity shard (index 1 of a k = 1, r = 1 group 1).
      const p = buildPacket(PacketType.Data, t.high, t.low, size, new Uint8Array(size));
      p[2] = PacketType.Parity;
      p[19] = 1;
      p[20] = 1;
      p[21] = 1;
      p[22] = 1;
      return p;
    }
    default:
      return buildPacket(PacketType.Data, t.high, t.low, size, new Uint8Array(size));
  }
}

for (const role of ['entry', 'exit'] as const) {
  test(`${role} role: arbitrary sequences from clients, entries and (fake) exits never throw, never amplify to unauthenticated senders, never leak`, () => {
    const seen = { sessions: 0, forwarded: 0 };
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 10, maxLength: 120 }), (ops) => {
        const limits = { ...openLimits, unauthenticatedPacketsPerSecond: 50, sessionsMax: 32 };
        const h = new Harness(role === 'entry' ? entryConfig(limits) : exitConfig(limits), 7);
        const ledger = new Map<string, { in: number; out: number }>();
        const note = (peer: Endpoint, dir: 'in' | 'out', n: number): void => {
          const key = `${peer.address}|${peer.port}`;
          const e = ledger.get(key) ?? { in: 0, out: 0 };
          e[dir] += n;
          ledger.set(key, e);
        };
        const challenges = new Map<string, Uint8Array>();
        const send = (from: Endpoint, bytes: Uint8Array): void => {
          note(from, 'in', bytes.length);
          for (const s of h.deliver(h.tunnelId, from, bytes)) {
            if (s.socketId !== h.tunnelId) continue;
            note(s.to, 'out', s.bytes.length);
            if (typeOf(s.bytes) === PacketType.PathChallenge) challenges.set(`${s.to.address}|${s.to.port}`, s.bytes.slice(HEADER_BYTES));
          }
        };
        for (const op of ops) {
          switch (op.kind) {
            case 'open':
              send(fuzzPeers[op.from]!, open(fuzzTickets[op.ticket]!));
              break;
            case 'data': {
              const t = fuzzTickets[op.ticket]!;
              send(fuzzPeers[op.from]!, buildPacket(PacketType.Data, t.high, t.low, op.size, new Uint8Array(op.size)));
              break;
            }
            case 'respond': {
              const t = fuzzTickets[op.ticket]!;
              const from = fuzzPeers[op.from]!;
              send(from, buildPathResponse(op.rightKey ? t.key : new Uint8Array(32), t.high, t.low, challenges.get(`${from.address}|${from.port}`) ?? new Uint8Array(16)));
              break;
            }
            case 'close': {
              const t = fuzzTickets[op.ticket]!;
              send(fuzzPeers[op.from]!, buildClientClose(op.rightKey ? t.key : new Uint8Array(32), t.high, t.low));
              break;
            }
            case 'fromExit': {
              const t = fuzzTickets[op.ticket]!;
              send(fuzzPeers[op.from]!, exitPacket(t, op.what, op.size, t.key));
              break;
            }
            case 'junk':
              send(fuzzPeers[op.from]!, op.bytes);
              break;
            case 'origin':
              for (const e of h.eventsOf('openSocket').filter((x) => x.kind === 'upstream')) h.deliver(e.socketId, { address: '10.0.0.9', port: 7777 }, new Uint8Array(op.size));
              break;
            case 'wait':
              h.advance(h.nowMs + op.ms);
              break;
          }
        }
        // Senders that held a session, or joined one, are authenticated; the exit the
        // tickets name is answered only as their protocol says (bounded, checked below).
        const authenticated = new Set<string>();
        for (const e of h.eventsOf('sessionStart')) authenticated.add(e.client.replace(/^\[?(.*?)\]?:(\d+)$/, '$1|$2'));
        for (const e of h.eventsOf('sessionMoved')) if (e.what === 'client') authenticated.add(e.to.replace(/ \(.*\)$/, '').replace(/^\[?(.*?)\]?:(\d+)$/, '$1|$2'));
        for (const [key, e] of ledger) {
          if (authenticated.has(key) || key === `${EXIT.address}|${EXIT.port}`) continue;
          assert.ok(e.out <= e.in, `amplification to ${key}: ${e.out} out for ${e.in} in`);
        }
        assert.ok(h.core.unauthenticatedBytesOut <= h.core.unauthenticatedBytesIn);
        seen.sessions += h.eventsOf('sessionStart').length;
        seen.forwarded += h.sent.length;
        h.advance(h.nowMs + 200_000);
        assert.equal(h.core.sessionCount, 0, 'every session ends once idle');
        const opens = h.eventsOf('openSocket').filter((e) => e.kind === 'upstream').length;
        const closes = h.eventsOf('closeSocket').filter((e) => e.kind === 'upstream').length;
        assert.equal(closes, opens, 'every origin socket opened was closed');
      }),
      { numRuns: 100 },
    );
    assert.ok(seen.sessions > 30 && seen.forwarded > 100, JSON.stringify(seen));
  });
}
