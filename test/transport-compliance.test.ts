/**
 * One compliance suite for every Transport: the real `node:dgram` driver on
 * 127.0.0.1 and the simulator's virtual sockets. Each case runs on both; the last
 * one runs the same echo core on both and compares the replies byte for byte.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { UdpTransport } from '../sdk/src/udp-transport.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader, writeHeader } from '../proto/src/header.js';
import { ErrorCode, ParseFailure, SlipError } from '../proto/src/errors.js';
import type { Endpoint, Transport } from '../proto/src/transport.js';
import { SimNetwork } from '../sim/src/core/network.js';
import { EchoCore } from './support/echo-core.js';

/** How a suite gets transports and lets the world move. */
interface Harness {
  readonly name: string;
  /** A new bound transport. */
  bind(): Promise<Transport>;
  /** Lets datagrams in flight arrive; resolves when `done()` holds (or gives up). */
  settle(done: () => boolean): Promise<void>;
  /** The time cores are handed as `now` (ms). */
  nowMs(): number;
}

async function realHarness(): Promise<Harness> {
  return {
    name: 'UdpTransport (127.0.0.1)',
    bind: () => UdpTransport.bind({ address: '127.0.0.1' }),
    async settle(done) {
      // Loopback delivers in well under a millisecond; allow 2 s for a loaded machine.
      for (let waited = 0; waited < 2000 && !done(); waited += 5) await sleep(5);
      await sleep(20); // and a little more, so that unexpected extra datagrams would show
    },
    nowMs: () => performance.now(),
  };
}

async function simHarness(): Promise<Harness> {
  const network = new SimNetwork({ seed: 1, defaultLink: { delayMs: 1 } });
  let hosts = 0;
  return {
    name: 'SimUdpSocket',
    async bind() {
      return network.addHost(`10.0.0.${++hosts}`).bind();
    },
    async settle() {
      network.runUntilIdle();
    },
    nowMs: () => network.now(),
  };
}

function packet(sequence: number, payload: string): Uint8Array {
  const header = new PacketHeader();
  header.type = PacketType.Data;
  header.sessionIdHigh = 0xdeadbeef;
  header.sessionIdLow = 42;
  header.sequence = sequence;
  const body = new TextEncoder().encode(payload);
  const bytes = new Uint8Array(HEADER_BYTES + body.length);
  writeHeader(header, bytes);
  bytes.set(body, HEADER_BYTES);
  return bytes;
}

interface Received {
  bytes: Uint8Array;
  from: Endpoint;
}

function collect(transport: Transport): Received[] {
  const received: Received[] = [];
  transport.onReceive((bytes, from) => received.push({ bytes: Uint8Array.from(bytes), from: { address: from.address, port: from.port } }));
  return received;
}

/** Runs the echo core behind `server`; the driver drains pollTransmit after each input (the str0m rule). */
function serveEcho(server: Transport, core: EchoCore, harness: Harness): void {
  server.onReceive((bytes, from) => {
    core.handleDatagram(harness.nowMs(), from, bytes);
    for (let t = core.pollTransmit(); t; t = core.pollTransmit()) server.send(t.bytes, t.to);
  });
}

for (const makeHarness of [realHarness, simHarness]) {
  /** A fresh harness with two endpoints bound on it, `a` first. */
  async function twoEndpoints(): Promise<{ h: Harness; a: Transport; b: Transport }> {
    const h = await makeHarness();
    return { h, a: await h.bind(), b: await h.bind() };
  }

  describe(`Transport compliance: ${makeHarness === realHarness ? 'UdpTransport on 127.0.0.1' : 'SimUdpSocket'}`, () => {
    test('a datagram arrives intact with the sender as `from`', async () => {
      const { h, a, b } = await twoEndpoints();
      const got = collect(b);
      a.send(packet(1, 'hello'), b.localAddress());
      await h.settle(() => got.length >= 1);
      assert.equal(got.length, 1);
      assert.deepEqual(got[0]!.bytes, packet(1, 'hello'));
      assert.deepEqual(got[0]!.from, a.localAddress());
      assert.notEqual(a.localAddress().port, 0);
      assert.notDeepEqual(a.localAddress(), b.localAddress());
      a.close();
      b.close();
    });

    test('the sender may reuse its buffer as soon as send returns', async () => {
      const { h, a, b } = await twoEndpoints();
      const got = collect(b);
      const buffer = packet(1, 'first');
      a.send(buffer, b.localAddress());
      buffer.fill(0);
      await h.settle(() => got.length >= 1);
      assert.deepEqual(got[0]!.bytes, packet(1, 'first'));
      a.close();
      b.close();
    });

    test('close is idempotent, stops delivery, and send after close throws SLIP_ERR_CLOSED', async () => {
      const { h, a, b } = await twoEndpoints();
      const got = collect(b);
      b.close();
      b.close();
      a.send(packet(1, 'late'), b.localAddress());
      await h.settle(() => false);
      assert.equal(got.length, 0);
      a.close();
      assert.throws(
        () => a.send(packet(2, 'x'), b.localAddress()),
        (error: unknown) => error instanceof SlipError && error.code === ErrorCode.Closed,
      );
    });

    test('a later onReceive handler replaces the earlier one', async () => {
      const { h, a, b } = await twoEndpoints();
      const first = collect(b);
      const second = collect(b);
      a.send(packet(1, 'x'), b.localAddress());
      await h.settle(() => second.length >= 1);
      assert.equal(first.length, 0);
      assert.equal(second.length, 1);
      a.close();
      b.close();
    });
  });
}

test('the same echo core gives the same replies on real loopback sockets and in the simulator', async () => {
  const junk = [new Uint8Array([1, 2, 3]), new Uint8Array(HEADER_BYTES + 4)];
  const replies: Record<string, { sequences: number[]; payloads: string[]; dropped: [number, number][] }> = {};
  for (const makeHarness of [realHarness, simHarness]) {
    const h = await makeHarness();
    const server = await h.bind();
    const client = await h.bind();
    const core = new EchoCore();
    serveEcho(server, core, h);
    const got = collect(client);
    // Sent one at a time and awaited, so the order cannot differ between the two worlds.
    for (let i = 0; i < 20; i++) {
      client.send(packet(1000 + i, `ping ${i}`), server.localAddress());
      if (i % 7 === 3) for (const j of junk) client.send(j, server.localAddress());
      await h.settle(() => got.length >= i + 1);
    }
    const header = new PacketHeader();
    replies[h.name] = {
      sequences: got.map((r) => (parseHeader(r.bytes, header) === 0 ? header.sequence : -1)),
      payloads: got.map((r) => new TextDecoder().decode(r.bytes.subarray(HEADER_BYTES))),
      dropped: [...core.dropped.entries()].sort(),
    };
    server.close();
    client.close();
  }
  const [real, simulated] = Object.values(replies);
  assert.equal(real!.payloads.length, 20);
  assert.deepEqual(real!.payloads, Array.from({ length: 20 }, (_, i) => `ping ${i}`));
  assert.deepEqual(real!.sequences, Array.from({ length: 20 }, (_, i) => i));
  assert.deepEqual(real!.dropped, [
    [ParseFailure.TooShort, 3],
    [ParseFailure.BadMagic, 3],
  ]);
  assert.deepEqual(simulated, real);
});
