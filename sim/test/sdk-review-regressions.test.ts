/**
 * Regression tests for SDK defects a code review found, each named after its defect:
 * simulator scenarios (fixed seeds; `new SdkScenario({ seed, … })` replays one) and
 * direct tests of the sans-IO {@link TunnelClient} against a scripted relay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RouteAnswer } from '../../kit/coordinator-client.js';
import { decodeControl, encodeControl } from '../../proto/src/control.js';
import { ErrorCode } from '../../proto/src/errors.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../../proto/src/header.js';
import { UdpTransport } from '../../sdk/src/udp-transport.js';
import { buildControlPacket, buildPacket, PROBE_BODY_BYTES_WITH_STATUS, PROBE_STATUS_OFFSET, ProbeStatus, relayCloseMac } from '../../proto/src/wire.js';
import { candidatesFromRoute, connect } from '../../sdk/src/connect.js';
import { TunnelClient, type TunnelClientEvent } from '../../sdk/src/core/tunnel-client.js';
import { SlipstreamError } from '../../sdk/src/errors.js';
import { SdkScenario } from '../src/deployment/scenario.js';

test('defect 3: a relay that refused (draining) and comes back faster is retried, chosen, and carries traffic (3 seeds)', () => {
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

test('defect 5: after a quick relay restart the client reopens its session on SLIP_ERR_UNKNOWN_SESSION and traffic flows again (3 seeds)', () => {
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

// ---------------------------------------------------------------- scripted relay

const HIGH = 0x01234567;
const LOW = 0x89abcdef;
const KEY = new Uint8Array(32).fill(7);
const A = { address: '10.0.0.1', port: 4433 };

/** One client against one scripted relay that accepts opens and answers probes. */
function openClient(): { c: TunnelClient; events: TunnelClientEvent[]; pump: (now: number) => { type: number; bytes: Uint8Array }[] } {
  const c = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: KEY, fecModes: ['off'], warmBackup: false });
  const events: TunnelClientEvent[] = [];
  const h = new PacketHeader();
  const pump = (now: number): { type: number; bytes: Uint8Array }[] => {
    const out: { type: number; bytes: Uint8Array }[] = [];
    for (let i = 0; i < 1000; i++) {
      for (let e = c.pollEvent(); e; e = c.pollEvent()) events.push(e);
      const t = c.pollTransmit();
      if (t === undefined) break;
      parseHeader(t.bytes, h);
      out.push({ type: h.type, bytes: t.bytes });
      if (h.type === PacketType.Probe) {
        const r = new Uint8Array(t.bytes);
        r[2] = PacketType.ProbeReply;
        c.handleDatagram(now, A, r);
      } else if (h.type === PacketType.Control) {
        const m = decodeControl(t.bytes.subarray(HEADER_BYTES));
        if (m.ok && m.message.type === 'sessionOpen') c.handleDatagram(now, A, buildControlPacket(HIGH, LOW, { type: 'sessionAccept', sessionId: '0123456789abcdef', fecMode: 'off' }));
      }
    }
    return out;
  };
  c.setCandidates(0, [{ id: 'A', tunnel: A, probe: A }]);
  pump(0);
  for (let now = 5; now <= 3000 && !c.isOpen; now += 5) {
    c.handleTimeout(now);
    pump(now);
  }
  assert.ok(c.isOpen, 'the scripted relay opened the session');
  return { c, events, pump };
}

function relayClose(reason: string, key: Uint8Array | undefined): Uint8Array {
  const body = encodeControl({ type: 'sessionReject', reason, message: 'x' });
  if (key === undefined) return buildPacket(PacketType.Close, HIGH, LOW, 0, body);
  const full = new Uint8Array(body.length + 16);
  full.set(body);
  full.set(relayCloseMac(key, HIGH, LOW, body), body.length);
  return buildPacket(PacketType.Close, HIGH, LOW, 0, full);
}

test('defect 6: an unauthenticated (spoofed) Close or ticket reject for an open session is ignored; the relay-MACed Close ends it', () => {
  const { c, events, pump } = openClient();
  c.handleDatagram(3100, A, relayClose(ErrorCode.TicketRevoked, undefined));
  c.handleDatagram(3100, A, relayClose(ErrorCode.TicketRevoked, new Uint8Array(32).fill(9)));
  c.handleDatagram(3100, A, buildControlPacket(HIGH, LOW, { type: 'sessionReject', reason: ErrorCode.TicketForged, message: 'spoofed' }));
  pump(3100);
  assert.ok(c.isOpen, 'spoofs are ignored');
  assert.ok(!events.some((e) => e.type === 'failed'));
  c.handleDatagram(3200, A, relayClose(ErrorCode.TicketRevoked, KEY));
  pump(3200);
  assert.ok(!c.isOpen);
  const failed = events.find((e) => e.type === 'failed');
  assert.ok(failed && failed.type === 'failed' && failed.code === ErrorCode.TicketRevoked);
});

test('defect 5: an unauthenticated SLIP_ERR_UNKNOWN_SESSION Close makes the client reopen (and nothing more)', () => {
  const { c, pump } = openClient();
  c.handleDatagram(3100, A, relayClose(ErrorCode.UnknownSession, undefined));
  const sent = pump(3100);
  assert.ok(sent.some((p) => p.type === PacketType.Control), 'a session open went out at once');
  assert.ok(c.isOpen, 'the scripted relay accepted it again');
});

test('review: a probe reply whose status says UnknownSession reopens the session only when it comes from the probed address', () => {
  const { c, pump } = openClient();
  const h = new PacketHeader();
  /** Runs the client's timers from `fromMs` until it sends a probe (left unanswered); the transmits before it are dropped. */
  const nextProbe = (fromMs: number): { nowMs: number; bytes: Uint8Array } => {
    for (let nowMs = fromMs; nowMs < fromMs + 2000; nowMs += 5) {
      c.handleTimeout(nowMs);
      for (let t = c.pollTransmit(); t !== undefined; t = c.pollTransmit()) {
        parseHeader(t.bytes, h);
        if (h.type === PacketType.Probe) return { nowMs, bytes: t.bytes };
      }
    }
    return assert.fail('no probe within 2 s');
  };
  const unknownSessionReply = (probe: Uint8Array): Uint8Array => {
    const reply = new Uint8Array(probe);
    reply[2] = PacketType.ProbeReply;
    reply[HEADER_BYTES + PROBE_STATUS_OFFSET] = ProbeStatus.UnknownSession;
    return reply;
  };
  const opensSent = (nowMs: number): number => pump(nowMs).filter((p) => p.type === PacketType.Control && decodeControl(p.bytes.subarray(HEADER_BYTES)).ok).length;
  // A forger who guessed the probe's sequence, from its own address: ignored.
  const forged = nextProbe(3100);
  assert.equal(forged.bytes.length, HEADER_BYTES + PROBE_BODY_BYTES_WITH_STATUS, 'the SDK probes with room for the status byte');
  c.handleDatagram(forged.nowMs + 1, { address: '10.9.9.9', port: A.port }, unknownSessionReply(forged.bytes));
  assert.equal(opensSent(forged.nowMs + 1), 0, 'a reply from another address does not reopen');
  // The relay itself (it restarted): the session is opened again at once.
  const real = nextProbe(forged.nowMs + 5);
  c.handleDatagram(real.nowMs + 1, A, unknownSessionReply(real.bytes));
  assert.equal(opensSent(real.nowMs + 1), 1, 'the relay\'s reply re-sends the open');
  assert.ok(c.isOpen, 'the scripted relay accepted it again');
});

test('defect 10: send returns false when the queue before the first session drops a datagram', () => {
  const c = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: KEY, fecModes: ['off'] });
  let dropped = 0;
  for (let i = 0; i < 100; i++) if (!c.send(0, new Uint8Array(10))) dropped++;
  assert.equal(dropped, 100 - 64);
});

test('defect 10: relays that leave the candidate list leave no endpoint entries behind', () => {
  const c = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: KEY, fecModes: ['off'] });
  for (let i = 0; i < 50; i++) c.setCandidates(i, [{ id: `r${i}`, tunnel: { address: `10.0.${i}.1`, port: 4433 }, probe: { address: `10.0.${i}.1`, port: 4434 } }]);
  const byEndpoint = (c as unknown as { byEndpoint: Map<string, unknown> }).byEndpoint;
  assert.ok(byEndpoint.size <= 2 * 2, `${byEndpoint.size} entries held`);
});

test('defect 1/9: UdpTransport.send never throws for a destination no datagram can reach', async () => {
  const t = await UdpTransport.bind();
  try {
    for (const to of [{ address: '127.0.0.1', port: 0 }, { address: '127.0.0.1', port: 99_999 }, { address: 'relay.example', port: 4433 }, { address: '127.0.0.1', port: 1.5 }, { address: '::1', port: 4433 }]) {
      assert.doesNotThrow(() => t.send(Uint8Array.of(1), to), JSON.stringify(to));
    }
    assert.ok(t.stats.sendErrors >= 4);
  } finally {
    t.close();
  }
});

// ---------------------------------------------------------------- connect() on loopback

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function withCache(candidates: unknown[]): Promise<{ coordinator: string; cacheFile: string; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-sdk-review-'));
  const coordinator = `http://127.0.0.1:${await closedPort()}`;
  const cacheFile = join(dir, 'cache.json');
  writeFileSync(cacheFile, JSON.stringify({ coordinator, origin: 'game', savedAtMs: 0, candidates }));
  return { coordinator, cacheFile, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const grant = { sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: new Uint8Array(32) };

/** Runs `body` and fails if an unhandled rejection happened meanwhile (what killed the game). */
async function noUnhandled(body: () => Promise<void>): Promise<void> {
  const seen: unknown[] = [];
  const onRejection = (reason: unknown): void => void seen.push(reason);
  process.on('unhandledRejection', onRejection);
  try {
    await body();
    await sleep(50);
  } finally {
    process.off('unhandledRejection', onRejection);
  }
  assert.deepEqual(seen, [], 'no unhandled rejection');
}

test('defect 9: relay candidates with hostnames or bad ports (coordinator answer, cache file) are skipped with a typed reason, never sent to', async () => {
  const skipped: SlipstreamError[] = [];
  const legs = { relayToOrigin: { rttMs: 5 } };
  const answer = { candidates: [
    { kind: 'direct', relayId: 'host', tunnelAddress: 'relay.example:4433', probeAddress: 'relay.example:4433', costMs: 10, legs },
    { kind: 'direct', relayId: 'big', tunnelAddress: '127.0.0.1:99999', probeAddress: '127.0.0.1:99999', costMs: 10, legs },
    { kind: 'direct', relayId: 'zero', tunnelAddress: '127.0.0.1:0', probeAddress: '127.0.0.1:4434', costMs: 10, legs },
    { kind: 'direct', relayId: 'ok', tunnelAddress: '127.0.0.1:4433', probeAddress: '[::1]:4434', costMs: 10, legs },
  ] } as unknown as RouteAnswer;
  const out = candidatesFromRoute(answer, skipped);
  assert.deepEqual(out.map((c) => c.id), ['ok']);
  assert.deepEqual(skipped.map((e) => e.code), [ErrorCode.InvalidRelayAddress, ErrorCode.InvalidRelayAddress, ErrorCode.InvalidRelayAddress]);

  await noUnhandled(async () => {
    // Only invalid entries in the cache, coordinator down: a typed rejection, no crash.
    const bad = await withCache([{ id: 'h', tunnel: { address: 'relay.example', port: 4433 }, probe: { address: 'relay.example', port: 4433 } }, { id: 'p', tunnel: { address: '127.0.0.1', port: 99_999 }, probe: { address: '127.0.0.1', port: 99_999 } }]);
    try {
      await assert.rejects(connect({ coordinator: bad.coordinator, origin: 'game', cacheFile: bad.cacheFile, ticket: grant, connectTimeoutMs: 300, coordinatorTimeoutMs: 500 }), (e: unknown) => e instanceof SlipstreamError && e.code === ErrorCode.CoordinatorUnreachable);
    } finally {
      bad.cleanup();
    }
    // One invalid and one valid (silent) relay: the invalid one is skipped; the connect times out typed.
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    const port = silent.address().port;
    const mixed = await withCache([{ id: 'h', tunnel: { address: 'relay.example', port: 4433 }, probe: { address: 'relay.example', port: 4433 } }, { id: 'ok', tunnel: { address: '127.0.0.1', port }, probe: { address: '127.0.0.1', port } }]);
    try {
      await assert.rejects(connect({ coordinator: mixed.coordinator, origin: 'game', cacheFile: mixed.cacheFile, ticket: grant, connectTimeoutMs: 300, coordinatorTimeoutMs: 500, bindAddress: '127.0.0.1' }), (e: unknown) => e instanceof SlipstreamError && e.code === ErrorCode.NoRelay);
    } finally {
      mixed.cleanup();
      silent.close();
    }
  });
});

test('defect 10: a ticket provider that never answers rejects with SLIP_ERR_TICKET_PROVIDER; a bind failure is typed', async () => {
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  const port = silent.address().port;
  const cache = await withCache([{ id: 'ok', tunnel: { address: '127.0.0.1', port }, probe: { address: '127.0.0.1', port } }]);
  try {
    await assert.rejects(
      connect({ coordinator: cache.coordinator, origin: 'game', cacheFile: cache.cacheFile, ticketProvider: () => new Promise(() => undefined), ticketProviderTimeoutMs: 100, coordinatorTimeoutMs: 500 }),
      (e: unknown) => e instanceof SlipstreamError && e.code === ErrorCode.TicketProvider && /did not answer within 100 ms/.test(e.message),
    );
    // 192.0.2.1 (TEST-NET-1) is not an address of this machine: the bind fails.
    await assert.rejects(connect({ coordinator: cache.coordinator, origin: 'game', cacheFile: cache.cacheFile, ticket: grant, bindAddress: '192.0.2.1', coordinatorTimeoutMs: 500 }), (e: unknown) => e instanceof SlipstreamError && e.code === ErrorCode.BindFailed);
  } finally {
    cache.cleanup();
    silent.close();
  }
});
