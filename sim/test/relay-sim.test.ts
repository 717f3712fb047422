/**
 * The relay core on the simulator's virtual network (fixed seeds): L4 affinity and
 * failover under loss and delay, and a tunnel session migrating to a new client port
 * while the origin keeps seeing the same relay socket. A failure prints its seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../../proto/src/header.js';
import { Rng } from '../../proto/src/rng.js';
import type { Endpoint } from '../../proto/src/transport.js';
import { SimNetwork } from '../src/core/network.js';
import { SimRelay } from '../src/drivers/relay-driver.js';
import { buildControlPacket, buildPacket, buildPathResponse } from '../../proto/src/wire.js';
import { baseConfig, mintTicket, tunnelSpec, udpRule, WALL_EPOCH_MS } from '../../relay/test/support.js';

const RELAY = '10.0.0.1';
const ORIGINS = ['10.0.0.8', '10.0.0.9'];

function withSeed(seed: number, body: () => void): void {
  try {
    body();
  } catch (error) {
    (error as Error).message += `\n  reproduce: seed ${seed} (relay/test/sim.test.ts)`;
    throw error;
  }
}

/** Origins echo each datagram prefixed with their index, so clients can tell who answered. */
function startOrigins(net: SimNetwork, port: number): { received: Map<string, number>[] } {
  const received = ORIGINS.map(() => new Map<string, number>());
  ORIGINS.forEach((address, index) => {
    const socket = net.addHost(address).bind(port);
    socket.onReceive((bytes, from) => {
      const key = `${from.address}:${from.port}`;
      received[index]!.set(key, (received[index]!.get(key) ?? 0) + 1);
      const reply = new Uint8Array(bytes.length + 1);
      reply[0] = index;
      reply.set(bytes, 1);
      socket.send(reply, from);
    });
  });
  return { received };
}

for (const seed of [7, 8]) {
  test(`L4 UDP: affinity under 1 % loss, failover within interval + timeout after an origin is cut off (seed ${seed})`, () =>
    withSeed(seed, () => {
      const net = new SimNetwork({ seed, defaultLink: { delayMs: 10, jitterMs: 2, loss: { model: 'bernoulli', p: 0.01 } } });
      startOrigins(net, 7000);
      const health = { mode: 'udp' as const, intervalMs: 1000, timeoutMs: 300, failuresToDown: 1, successesToUp: 2, udpPayload: Uint8Array.of(0x48) };
      const relay = new SimRelay({
        network: net,
        host: net.addHost(RELAY),
        config: baseConfig({ rules: [udpRule({ listenAddress: RELAY })], groups: [{ name: 'g', origins: ORIGINS.map((address) => ({ address, port: 7000, portEnd: 7000 })), healthCheck: health }], upstreamBindAddress: RELAY, tunnel: undefined }),
        seed,
      });
      const clients = Array.from({ length: 12 }, (_, i) => net.addHost(`10.1.0.${i + 1}`).bind());
      const answers = clients.map(() => [] as { atMs: number; origin: number }[]);
      clients.forEach((socket, i) => socket.onReceive((bytes) => answers[i]!.push({ atMs: net.now(), origin: bytes[0]! })));
      const sendUntilMs = 16_000;
      const cutAtMs = 8_000;
      for (let t = 0; t < sendUntilMs; t += 20) {
        net.schedule(t, () => clients.forEach((socket, i) => socket.send(Uint8Array.of(i, t & 0xff), { address: RELAY, port: 27015 })));
      }
      let cutOrigin = -1;
      net.schedule(cutAtMs, () => {
        // Cut off whichever origin serves client 0, so that at least one flow must move.
        cutOrigin = answers[0]!.at(-1)!.origin;
        net.partition([RELAY], [ORIGINS[cutOrigin]!]);
      });
      net.runUntil(sendUntilMs + 1000);
      let moved = 0;
      for (const [i, list] of answers.entries()) {
        const before = list.filter((a) => a.atMs < cutAtMs);
        assert.ok(before.length > 0.95 * (cutAtMs / 20) * 0.97, `client ${i} got ${before.length} answers before the cut`);
        assert.equal(new Set(before.map((a) => a.origin)).size, 1, `client ${i} stayed on one origin`);
        const settled = list.filter((a) => a.atMs > cutAtMs + health.intervalMs + health.timeoutMs + 100);
        assert.ok(settled.length > 0, `client ${i} is answered after the cut`);
        assert.ok(settled.every((a) => a.origin !== cutOrigin), `client ${i} moved off the cut origin`);
        if (before[0]!.origin === cutOrigin) {
          moved++;
          const firstAfter = list.find((a) => a.atMs > cutAtMs && a.origin !== cutOrigin)!;
          assert.ok(firstAfter.atMs - cutAtMs <= health.intervalMs + health.timeoutMs + 100, `client ${i} answered again after ${firstAfter.atMs - cutAtMs} ms`);
        }
      }
      assert.ok(moved >= 1);
      assert.equal(relay.core.udpFlowCount, 12);
      relay.close();
    }));
}

test('tunnel: a client that changes port keeps its session (path challenge), under 2 % loss (seed 21)', () =>
  withSeed(21, () => {
    const net = new SimNetwork({ seed: 21, defaultLink: { delayMs: 15, loss: { model: 'bernoulli', p: 0.02 } } });
    const origin = net.addHost('10.0.0.9').bind(7777);
    const originSources = new Set<string>();
    let originReceived = 0;
    origin.onReceive((bytes, from) => {
      originSources.add(`${from.address}:${from.port}`);
      originReceived++;
      origin.send(bytes, from);
    });
    const relay = new SimRelay({ network: net, host: net.addHost(RELAY), config: baseConfig({ rules: [], tunnel: tunnelSpec({ listenAddress: RELAY }), upstreamBindAddress: RELAY }), seed: 21, wallEpochMs: WALL_EPOCH_MS });
    const s = mintTicket(new Rng(21));
    const clientHost = net.addHost('10.2.0.1');
    let socket = clientHost.bind();
    const tunnel: Endpoint = { address: RELAY, port: 4433 };
    let accepted = false;
    const echoesAt: { atMs: number; port: number }[] = [];
    const header = new PacketHeader();
    const listen = (sock: typeof socket): void =>
      sock.onReceive((bytes) => {
        if (parseHeader(bytes, header) !== 0) return;
        if (header.type === PacketType.Control) accepted = true;
        if (header.type === PacketType.PathChallenge) sock.send(buildPathResponse(s.key, s.high, s.low, bytes.subarray(HEADER_BYTES)), tunnel);
        if (header.type === PacketType.Data) echoesAt.push({ atMs: net.now(), port: sock.localAddress().port });
      });
    listen(socket);
    const openPacket = buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'] });
    for (let t = 0; t < 1000; t += 100) net.schedule(t, () => !accepted && socket.send(openPacket, tunnel));
    let seq = 0;
    for (let t = 1000; t < 12_000; t += 20) net.schedule(t, () => socket.send(buildPacket(PacketType.Data, s.high, s.low, ++seq, new Uint8Array(48)), tunnel));
    const firstPort = socket.localAddress().port;
    net.schedule(6000, () => {
      // NAT rebinding: the same host, a new source port; the old socket is gone.
      socket.close();
      socket = clientHost.bind();
      listen(socket);
    });
    net.runUntil(13_000);
    assert.ok(accepted);
    assert.equal(originSources.size, 1, 'the origin saw one relay socket for the whole session');
    assert.ok(originReceived > 0.9 * (11_000 / 20) * 0.96 * 0.9, `origin received ${originReceived}`);
    const after = echoesAt.filter((e) => e.atMs > 6500);
    assert.ok(after.length > 200, `${after.length} echoes after the move`);
    assert.ok(after.every((e) => e.port !== firstPort));
    assert.equal(relay.core.tunnelSessionCount, 1);
    assert.equal(relay.events.filter((e) => e.type === 'sessionMoved').length, 1);
    relay.close();
  }));
