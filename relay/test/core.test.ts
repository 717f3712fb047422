import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeControl } from '../../proto/src/control.js';
import { ErrorCode } from '../../proto/src/errors.js';
import { FecSender, FecReceiver } from '../../proto/src/fec/index.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../../proto/src/header.js';
import { parseProxyHeader } from '../../proto/src/proxy-protocol.js';
import { Rng } from '../../proto/src/rng.js';
import { parseCidr } from '../src/core/addr.js';
import { DropReason } from '../src/core/relay-core.js';
import { buildClientClose, buildControlPacket, buildPacket, buildPathResponse, buildProbe, openRelayClose, parseProbeReplyBody, PROBE_BODY_BYTES_MIN, PROBE_BODY_BYTES_WITH_STATUS } from '../../proto/src/wire.js';
import { baseConfig, controlOf, forgerKey, Harness, mintTicket, noHealth, openLimits, tunnelSpec, typeOf, udpRule, upstreamShards, type ClientSession } from './support.js';

const ORIGIN_A = '10.0.0.8';
const ORIGIN_B = '10.0.0.9';

function clientIps(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `198.51.100.${i + 1}`);
}

describe('L4 UDP mapping', () => {
  test('affinity: each flow keeps its upstream socket and origin across 1,000 datagrams; a returning client lands on the same origin', () => {
    const h = new Harness();
    const listener = h.listenerIds.get(27015)!;
    const byFlow = new Map<string, { sockets: Set<number>; origins: Set<string> }>();
    for (let i = 0; i < 1000; i++) {
      for (const ip of clientIps(8)) {
        h.nowMs = i;
        for (const sent of h.deliver(listener, { address: ip, port: 40000 }, Uint8Array.of(i & 0xff, 1, 2))) {
          let seen = byFlow.get(ip);
          if (!seen) byFlow.set(ip, (seen = { sockets: new Set(), origins: new Set() }));
          seen.sockets.add(sent.socketId);
          seen.origins.add(`${sent.to.address}:${sent.to.port}`);
        }
      }
    }
    assert.equal(byFlow.size, 8);
    for (const [ip, seen] of byFlow) {
      assert.equal(seen.sockets.size, 1, `${ip} used one upstream socket`);
      assert.equal(seen.origins.size, 1, `${ip} reached one origin`);
    }
    assert.equal(h.core.udpFlowCount, 8);
    assert.equal(new Set([...byFlow.values()].map((s) => [...s.origins][0])).size, 2, 'the hash spreads 8 clients over both origins');
    // The same client from a new port (NAT rebinding, a restart) hashes to the same origin.
    const first = [...byFlow.get('198.51.100.3')!.origins][0];
    const again = h.deliver(listener, { address: '198.51.100.3', port: 50123 }, Uint8Array.of(9));
    assert.equal(`${again[0]!.to.address}:${again[0]!.to.port}`, first);
  });

  test('replies go back to the client; datagrams on a flow socket from anyone but its origin are dropped', () => {
    const h = new Harness();
    const listener = h.listenerIds.get(27015)!;
    const [up] = h.deliver(listener, { address: '198.51.100.1', port: 40000 }, Uint8Array.of(1));
    const back = h.deliver(up!.socketId, up!.to, Uint8Array.of(7, 7));
    assert.deepEqual(back, [{ socketId: listener, to: { address: '198.51.100.1', port: 40000 }, bytes: Uint8Array.of(7, 7) }]);
    assert.deepEqual(h.deliver(up!.socketId, { address: '203.0.113.66', port: up!.to.port }, Uint8Array.of(6)), []);
    assert.equal(h.core.drops[DropReason.UnknownSource], 1);
  });

  test('PROXY v2 and SPP headers carry the real client address to the origin', () => {
    for (const proxyProtocol of ['v2', 'spp'] as const) {
      const h = new Harness(baseConfig({ rules: [udpRule({ proxyProtocol })] }));
      const [up] = h.deliver(h.listenerIds.get(27015)!, { address: '198.51.100.77', port: 41234 }, Uint8Array.of(0xde, 0xad));
      const parsed = parseProxyHeader(up!.bytes);
      assert.ok(parsed.ok, proxyProtocol);
      assert.equal(parsed.header.format, proxyProtocol === 'v2' ? 'proxy-v2' : 'spp');
      assert.deepEqual(parsed.header.source, { address: '198.51.100.77', port: 41234 });
      assert.deepEqual(parsed.header.destination, { address: '10.0.0.1', port: 27015 });
      assert.deepEqual(up!.bytes.subarray(parsed.header.headerBytes), Uint8Array.of(0xde, 0xad));
    }
  });

  test('port ranges map listen port n to origin port base + (n − listen base)', () => {
    const h = new Harness(baseConfig({ rules: [udpRule({ listenPortEnd: 27017 })], groups: [{ name: 'g', origins: [{ address: ORIGIN_A, port: 7000, portEnd: 7002 }], healthCheck: noHealth }] }));
    assert.equal(h.listenerIds.size, 3);
    const [up] = h.deliver(h.listenerIds.get(27016)!, { address: '198.51.100.1', port: 1 }, Uint8Array.of(1));
    assert.deepEqual(up!.to, { address: ORIGIN_A, port: 7001 });
  });

  test('an origin failing its UDP health checks is taken out; its flows move at their next datagram', () => {
    const health = { mode: 'udp' as const, intervalMs: 1000, timeoutMs: 300, failuresToDown: 1, successesToUp: 2, udpPayload: Uint8Array.of(0x48) };
    const h = new Harness(baseConfig({ groups: [{ name: 'g', origins: [{ address: ORIGIN_A, port: 7000, portEnd: 7000 }, { address: ORIGIN_B, port: 7000, portEnd: 7000 }], healthCheck: health }] }));
    const listener = h.listenerIds.get(27015)!;
    const onA = clientIps(16).filter((ip) => h.deliver(listener, { address: ip, port: 1 }, Uint8Array.of(1))[0]!.to.address === ORIGIN_A);
    assert.ok(onA.length > 0);
    // First round at start: both answer. Round at t = 1000: only B does.
    h.advance(0);
    h.deliver(h.healthId, { address: ORIGIN_A, port: 7000 }, Uint8Array.of(0x48));
    h.deliver(h.healthId, { address: ORIGIN_B, port: 7000 }, Uint8Array.of(0x48));
    h.advance(1000);
    const checks = h.sent.filter((s) => s.socketId === h.healthId);
    assert.ok(checks.length >= 2, 'both origins checked');
    h.deliver(h.healthId, { address: ORIGIN_B, port: 7000 }, Uint8Array.of(0x48));
    h.advance(1300);
    assert.deepEqual(h.eventsOf('originHealth').map((e) => [e.origin, e.healthy]), [[`${ORIGIN_A}:7000`, false]]);
    for (const ip of onA) assert.equal(h.deliver(listener, { address: ip, port: 1 }, Uint8Array.of(2))[0]!.to.address, ORIGIN_B);
    assert.equal(h.eventsOf('sessionMoved').length, onA.length);
    // A comes back after two answered rounds.
    for (const t of [2000, 3000]) {
      h.advance(t);
      h.deliver(h.healthId, { address: ORIGIN_A, port: 7000 }, Uint8Array.of(0x48));
      h.deliver(h.healthId, { address: ORIGIN_B, port: 7000 }, Uint8Array.of(0x48));
    }
    assert.deepEqual(h.eventsOf('originHealth').at(-1), { type: 'originHealth', group: 'g', origin: `${ORIGIN_A}:7000`, healthy: true });
  });

  test('deny/allow CIDRs, per-source session caps and per-session rate limits', () => {
    const h = new Harness(
      baseConfig({
        rules: [udpRule({ allow: [parseCidr('198.51.100.0/24')!], deny: [parseCidr('198.51.100.13')!] })],
        limits: { ...openLimits, sessionsPerSourceMax: 2, sessionPacketsPerSecond: 10, burstMs: 1000 },
      }),
    );
    const listener = h.listenerIds.get(27015)!;
    assert.equal(h.deliver(listener, { address: '203.0.113.1', port: 1 }, Uint8Array.of(1)).length, 0, 'not in allow');
    assert.equal(h.deliver(listener, { address: '198.51.100.13', port: 1 }, Uint8Array.of(1)).length, 0, 'denied');
    assert.equal(h.core.drops[DropReason.Denied], 2);
    for (const port of [1, 2, 3]) h.deliver(listener, { address: '198.51.100.1', port }, Uint8Array.of(1));
    assert.equal(h.core.udpFlowCount, 2);
    assert.equal(h.core.drops[DropReason.SessionCap], 1);
    let forwarded = 0;
    for (let i = 0; i < 30; i++) forwarded += h.deliver(listener, { address: '198.51.100.1', port: 1 }, Uint8Array.of(1)).length;
    assert.equal(forwarded, 9, 'a 10 packets/s bucket one second deep holds 10 (one already spent)');
    assert.ok(h.core.drops[DropReason.RateLimitedSession]! >= 21);
  });

  test('idle flows close with their totals and free their per-source state', () => {
    const h = new Harness();
    const listener = h.listenerIds.get(27015)!;
    const [up] = h.deliver(listener, { address: '198.51.100.1', port: 1 }, Uint8Array.of(1, 2, 3));
    h.deliver(up!.socketId, up!.to, Uint8Array.of(4));
    h.advance(59_000);
    assert.equal(h.core.udpFlowCount, 1);
    h.advance(61_500);
    assert.equal(h.core.udpFlowCount, 0);
    const end = h.eventsOf('sessionEnd')[0]!;
    assert.equal(end.reason, 'idle');
    assert.deepEqual({ ...end.totals, durationMs: 0 }, { packetsUp: 1, bytesUp: 3, packetsDown: 1, bytesDown: 1, durationMs: 0 });
    assert.ok(h.eventsOf('closeSocket').some((e) => e.socketId === up!.socketId));
    h.advance(200_000);
    assert.equal(h.core.sourceCount, 0);
  });

  test('mass idle expiry is spread over short sweep steps instead of one long stall', () => {
    const h = new Harness();
    const listener = h.listenerIds.get(27015)!;
    for (let port = 1; port <= 100; port++) {
      // Each origin answers once: established flows have the rule's idle timeout (unreplied ones a shorter one).
      const [up] = h.deliver(listener, { address: '198.51.100.1', port }, Uint8Array.of(1));
      h.deliver(up!.socketId, up!.to, Uint8Array.of(2));
    }
    h.advance(59_999);
    assert.equal(h.core.udpFlowCount, 100);
    h.advance(60_000);
    assert.equal(h.core.udpFlowCount, 100 - 32, 'one step closes at most 32');
    h.advance(60_020);
    assert.equal(h.core.udpFlowCount, 0, 'the rest follow within milliseconds');
  });

  test('reconfigure keeps live flows and applies new limits; removing an origin moves its flows', () => {
    const h = new Harness();
    const listener = h.listenerIds.get(27015)!;
    const ips = clientIps(8);
    const before = new Map(ips.map((ip) => [ip, h.deliver(listener, { address: ip, port: 1 }, Uint8Array.of(1))[0]!]));
    h.core.reconfigure(h.nowMs, baseConfig({ groups: [{ name: 'g', origins: [{ address: ORIGIN_B, port: 7000, portEnd: 7000 }], healthCheck: noHealth }] }));
    h.drain();
    assert.equal(h.eventsOf('closeSocket').length, 0, 'no socket closed by the reload');
    for (const ip of ips) {
      const [after] = h.deliver(listener, { address: ip, port: 1 }, Uint8Array.of(2));
      assert.equal(after!.socketId, before.get(ip)!.socketId, 'same upstream socket');
      assert.equal(after!.to.address, ORIGIN_B);
    }
    assert.equal(h.core.udpFlowCount, 8);
  });

  test('drain: no new flows, live ones keep forwarding', () => {
    const h = new Harness();
    const listener = h.listenerIds.get(27015)!;
    h.deliver(listener, { address: '198.51.100.1', port: 1 }, Uint8Array.of(1));
    h.core.drain();
    assert.equal(h.deliver(listener, { address: '198.51.100.1', port: 1 }, Uint8Array.of(1)).length, 1);
    assert.equal(h.deliver(listener, { address: '198.51.100.2', port: 1 }, Uint8Array.of(1)).length, 0);
    assert.equal(h.core.drops[DropReason.Draining], 1);
  });
});

/** Opens a tunnel session from `from`; returns the relay's answer. */
function open(h: Harness, s: ClientSession, from: { address: string; port: number }, fecModes = ['off']) {
  const packet = buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes });
  const answer = h.deliver(h.tunnelId, from, packet);
  return { packet, answer };
}

function data(s: ClientSession, sequence: number, payload: Uint8Array): Uint8Array {
  return buildPacket(PacketType.Data, s.high, s.low, sequence, payload);
}

describe('tunnel mode', () => {
  const client = { address: '198.51.100.20', port: 50000 };

  test('a valid ticket opens a session; data flows both ways; the accept is no larger than the open', () => {
    const h = new Harness();
    const rng = new Rng(11);
    const s = mintTicket(rng);
    const { packet, answer } = open(h, s, client);
    assert.equal(answer.length, 1);
    assert.ok(answer[0]!.bytes.length <= packet.length);
    assert.deepEqual(controlOf(answer[0]!.bytes), { type: 'sessionAccept', sessionId: s.hex, fecMode: 'off' });
    const [up] = h.deliver(h.tunnelId, client, data(s, 1, Uint8Array.of(1, 2, 3)));
    assert.deepEqual(up!.to, { address: '10.0.0.9', port: 7777 });
    assert.deepEqual(up!.bytes, Uint8Array.of(1, 2, 3));
    const [down] = h.deliver(up!.socketId, up!.to, Uint8Array.of(9, 8));
    assert.deepEqual(down!.to, client);
    const header = new PacketHeader();
    assert.equal(parseHeader(down!.bytes, header), 0);
    assert.equal(header.type, PacketType.Data);
    assert.deepEqual([header.sessionIdHigh, header.sessionIdLow], [s.high, s.low]);
    assert.deepEqual(down!.bytes.subarray(HEADER_BYTES), Uint8Array.of(9, 8));
  });

  test('expired, forged, wrong-origin, mismatched and revoked tickets are refused with typed reasons', () => {
    const h = new Harness(baseConfig({ tunnel: tunnelSpec({ allowOriginCidrs: [parseCidr('192.0.2.0/24')!] }) }));
    const rng = new Rng(12);
    const revoked = mintTicket(rng);
    h.core.setRevoked(0, new Set([revoked.hex]));
    const cases: [ClientSession, string][] = [
      [mintTicket(rng, { expiresInMs: -120_000 }), ErrorCode.TicketExpired],
      [mintTicket(rng, { key: forgerKey }), ErrorCode.TicketForged],
      [mintTicket(rng, { origin: 'other-game' }), ErrorCode.TicketWrongOrigin],
      [mintTicket(rng, { origin: '127.0.0.1:22' }), ErrorCode.TicketWrongOrigin],
      [mintTicket(rng, { origin: '203.0.113.5:7777' }), ErrorCode.TicketWrongOrigin],
      [mintTicket(rng, { sessionIdHex: '00000000000000aa' }), ErrorCode.TicketMismatch],
      [revoked, ErrorCode.TicketRevoked],
    ];
    for (const [s, reason] of cases) {
      const { packet, answer } = open(h, s, client);
      assert.equal(answer.length, 1, reason);
      assert.ok(answer[0]!.bytes.length <= packet.length, 'a refusal is never larger than the request');
      const message = controlOf(answer[0]!.bytes);
      assert.equal(message?.type, 'sessionReject');
      assert.equal(message?.type === 'sessionReject' && message.reason, reason);
    }
    assert.equal(h.core.tunnelSessionCount, 0);
    // An origin inside allowOriginCidrs is fine.
    const ok = open(h, mintTicket(rng, { origin: '192.0.2.10:9000' }), client);
    assert.equal(controlOf(ok.answer[0]!.bytes)?.type, 'sessionAccept');
  });

  test('a port change keeps the session after a path challenge answered with the key; a spoofed change does not move it', () => {
    const h = new Harness();
    const rng = new Rng(13);
    const s = mintTicket(rng);
    open(h, s, client);
    const [first] = h.deliver(h.tunnelId, client, data(s, 1, new Uint8Array(40)));
    const upstreamSocket = first!.socketId;
    const moved = { address: client.address, port: 50001 };
    // A spoofer who knows the session id but not the key: its packet is challenged, its answer fails.
    const spoofer = { address: '203.0.113.99', port: 4444 };
    const [challengeToSpoofer] = h.deliver(h.tunnelId, spoofer, data(s, 2, new Uint8Array(40)));
    assert.equal(typeOf(challengeToSpoofer!.bytes), PacketType.PathChallenge);
    assert.ok(challengeToSpoofer!.bytes.length <= HEADER_BYTES + 40);
    const wrongKey = new Uint8Array(32).fill(7);
    assert.deepEqual(h.deliver(h.tunnelId, spoofer, buildPathResponse(wrongKey, s.high, s.low, challengeToSpoofer!.bytes.subarray(HEADER_BYTES))), []);
    assert.equal(h.core.tunnelSessionClient(s.hex), `${client.address}:${client.port}`);
    const [down1] = h.deliver(upstreamSocket, { address: '10.0.0.9', port: 7777 }, Uint8Array.of(5));
    assert.deepEqual(down1!.to, client, 'downstream still goes to the real client');
    // The real client's new port: data is held back until it proves the key.
    const challenged = h.deliver(h.tunnelId, moved, data(s, 3, new Uint8Array(40)));
    assert.equal(challenged.length, 1);
    assert.equal(typeOf(challenged[0]!.bytes), PacketType.PathChallenge);
    assert.deepEqual(h.deliver(h.tunnelId, moved, buildPathResponse(s.key, s.high, s.low, challenged[0]!.bytes.subarray(HEADER_BYTES))), []);
    assert.equal(h.core.tunnelSessionClient(s.hex), `${moved.address}:${moved.port}`);
    const [up2] = h.deliver(h.tunnelId, moved, data(s, 4, Uint8Array.of(1)));
    assert.equal(up2!.socketId, upstreamSocket, 'the origin-facing socket is kept');
    const [down2] = h.deliver(upstreamSocket, { address: '10.0.0.9', port: 7777 }, Uint8Array.of(6));
    assert.deepEqual(down2!.to, moved);
    // A challenge answered from another address than the one challenged does not count.
    const other = { address: client.address, port: 50002 };
    const [c3] = h.deliver(h.tunnelId, other, data(s, 5, new Uint8Array(40)));
    h.deliver(h.tunnelId, { address: client.address, port: 50003 }, buildPathResponse(s.key, s.high, s.low, c3!.bytes.subarray(HEADER_BYTES)));
    assert.equal(h.core.tunnelSessionClient(s.hex), `${moved.address}:${moved.port}`);
  });

  test('revocation ends a live session within the call, telling the client why', () => {
    const h = new Harness();
    const s = mintTicket(new Rng(14));
    open(h, s, client);
    assert.equal(h.core.tunnelSessionCount, 1);
    h.core.setRevoked(h.nowMs, new Set([s.hex]));
    const sent = h.drain();
    assert.equal(h.core.tunnelSessionCount, 0);
    const close = sent.find((x) => typeOf(x.bytes) === PacketType.Close)!;
    assert.deepEqual(close.to, client);
    // The relay's Close for a held session carries the reason MACed with the session key.
    const reason = openRelayClose(s.key, s.high, s.low, close.bytes.subarray(HEADER_BYTES));
    assert.ok(reason, 'the Close is authenticated');
    const decoded = decodeControl(reason);
    assert.ok(decoded.ok && decoded.message.type === 'sessionReject' && decoded.message.reason === ErrorCode.TicketRevoked);
    assert.equal(h.eventsOf('sessionEnd')[0]!.reason, 'revoked');
    // The revoked ticket cannot reopen it.
    assert.equal((controlOf(open(h, s, client).answer[0]!.bytes) as { reason: string }).reason, ErrorCode.TicketRevoked);
  });

  test('a client closes its session only with the key', () => {
    const h = new Harness();
    const s = mintTicket(new Rng(15));
    open(h, s, client);
    h.deliver(h.tunnelId, client, buildClientClose(new Uint8Array(32), s.high, s.low));
    assert.equal(h.core.tunnelSessionCount, 1);
    h.deliver(h.tunnelId, client, buildClientClose(s.key, s.high, s.low));
    assert.equal(h.core.tunnelSessionCount, 0);
  });

  test('probes are answered with timestamps, never larger than the probe; short probes are dropped', () => {
    const h = new Harness();
    h.nowMs = 1234.5;
    const probe = buildProbe(0, 0, 77, 42.25, 40);
    const [reply] = h.deliver(h.tunnelId, client, probe);
    assert.equal(reply!.bytes.length, probe.length);
    assert.equal(typeOf(reply!.bytes), PacketType.ProbeReply);
    assert.deepEqual(parseProbeReplyBody(reply!.bytes.subarray(HEADER_BYTES)), { clientStampMs: 42.25, relayReceiveMs: 1234.5, relaySendMs: 1234.5, sessionUnknown: true });
    const short = buildPacket(PacketType.Probe, 0, 0, 1, new Uint8Array(8));
    assert.deepEqual(h.deliver(h.tunnelId, client, short), []);
    assert.equal(h.core.drops[DropReason.ProbeTooShort], 1);
  });

  test('a probe reply\'s status byte says UnknownSession exactly when the relay holds no session with the probe\'s id (probes long enough for it only)', () => {
    const h = new Harness();
    const s = mintTicket(new Rng(17));
    const replyOf = (bodyBytes: number): { bytes: Uint8Array; sessionUnknown: boolean } => {
      const [reply] = h.deliver(h.tunnelId, client, buildProbe(s.high, s.low, 1, 0, bodyBytes));
      assert.equal(typeOf(reply!.bytes), PacketType.ProbeReply);
      assert.equal(parseHeader(reply!.bytes, new PacketHeader()), 0, 'the header is unchanged (older clients parse it)');
      return { bytes: reply!.bytes, sessionUnknown: parseProbeReplyBody(reply!.bytes.subarray(HEADER_BYTES))!.sessionUnknown };
    };
    assert.equal(replyOf(PROBE_BODY_BYTES_WITH_STATUS).sessionUnknown, true, 'before the open');
    // A 24-byte body (relay mesh probes, older clients) has no status byte: the reply is the old one.
    const short = replyOf(PROBE_BODY_BYTES_MIN);
    assert.equal(short.bytes.length, HEADER_BYTES + PROBE_BODY_BYTES_MIN);
    assert.equal(short.sessionUnknown, false);
    open(h, s, client);
    assert.equal(replyOf(PROBE_BODY_BYTES_WITH_STATUS).sessionUnknown, false, 'while the session is held');
    h.deliver(h.tunnelId, client, buildClientClose(s.key, s.high, s.low));
    assert.equal(replyOf(PROBE_BODY_BYTES_WITH_STATUS).sessionUnknown, true, 'after it closed');
  });

  test('FEC rs both ways: parity follows downstream data; a lost upstream shard is rebuilt from parity', () => {
    const h = new Harness();
    const s = mintTicket(new Rng(16));
    const { answer } = open(h, s, client, ['rs', 'off']);
    assert.deepEqual(controlOf(answer[0]!.bytes), { type: 'sessionAccept', sessionId: s.hex, fecMode: 'rs' });
    // Downstream: four origin datagrams make a full (4, 2) group: four data + two parity.
    const upSocket = (() => {
      const [up] = h.deliver(h.tunnelId, client, data(s, 1, Uint8Array.of(0)));
      return up!.socketId;
    })();
    const down: Uint8Array[] = [];
    for (let i = 0; i < 4; i++) down.push(...h.deliver(upSocket, { address: '10.0.0.9', port: 7777 }, new Uint8Array(30).fill(i)).map((x) => x.bytes));
    assert.deepEqual(down.map(typeOf), [1, 1, 1, 1, 2, 2]);
    // The client decodes them with the FEC receiver, even losing two data shards.
    const receiver = new FecReceiver({ maxPayloadBytes: 1400 });
    const header = new PacketHeader();
    for (const packet of [down[0]!, down[3]!, down[4]!, down[5]!]) {
      parseHeader(packet, header);
      receiver.handleShard(h.nowMs, header.sequence, header.fecGroup, header.fecIndex, header.fecDataCount, header.fecParityCount, packet.subarray(HEADER_BYTES));
    }
    const out = new Uint8Array(1400);
    const delivered: number[] = [];
    for (let n = receiver.pollDelivered(out); n >= 0; n = receiver.pollDelivered(out)) delivered.push(out[0]!);
    assert.deepEqual(delivered.sort(), [0, 1, 2, 3]);
    // Upstream: the client's FEC sender; shard 2 is lost; the relay rebuilds it.
    const sender = new FecSender({ scheme: { mode: 'rs', k: 4, r: 2, interleave: 1, holdMs: 8 }, maxPayloadBytes: 1400 });
    const shards: Uint8Array[] = [];
    for (let i = 0; i < 4; i++) shards.push(...upstreamShards(s, sender, h.nowMs, new Uint8Array(20).fill(10 + i)));
    assert.equal(shards.length, 6);
    const toOrigin: number[] = [];
    for (const [i, shard] of shards.entries()) if (i !== 2) for (const x of h.deliver(h.tunnelId, client, shard)) toOrigin.push(x.bytes[0]!);
    assert.deepEqual(toOrigin.sort(), [10, 11, 12, 13]);
    assert.equal(h.core.fecRecovered, 1);
  });
});
