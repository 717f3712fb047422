/**
 * `tunnel.proxyProtocol`: what a tunnel session's origin learns about its player. The
 * header's exact bytes (address, ticket player id TLV 0xE0), the origin's replies
 * untouched, a migration followed, a reload applied, WebRTC's synthetic ports never
 * written (the driver's remote ICE address, or no address), and exit relays: the entry
 * says the player's address in the open it forwards, the exit believes it only from a
 * fleet relay.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HEADER_BYTES, PacketType } from '../../proto/src/header.js';
import { encodeProxyV2, parseProxyHeader, parsePlayerDatagram } from '../../proto/src/proxy-protocol.js';
import { Rng } from '../../proto/src/rng.js';
import { buildControlPacket, buildPacket, buildPathResponse } from '../../proto/src/wire.js';
import { parseCidr } from '../src/core/addr.js';
import type { TunnelSpec } from '../src/core/config-types.js';
import { DATAGRAM_BYTES_MAX, TRANSPORT_PORT_BASE } from '../src/core/constants.js';
import { DropReason } from '../src/core/relay-core.js';
import { baseConfig, controlOf, Harness, mintTicket, openPacket, tunnelSpec, type ClientSession } from './support.js';

const CLIENT = { address: '198.51.100.20', port: 50000 };
const ORIGIN = { address: '10.0.0.9', port: 7777 };
const RELAY = { address: '10.0.0.1', port: 4433 };

const harness = (tunnel: Partial<TunnelSpec>): Harness => new Harness(baseConfig({ rules: [], groups: [], tunnel: tunnelSpec(tunnel) }));
const data = (s: ClientSession, sequence: number, payload: Uint8Array): Uint8Array => buildPacket(PacketType.Data, s.high, s.low, sequence, payload);

/** Opens `s` from `from` and returns what one data packet of `payload` sends to the origin. */
function upstream(h: Harness, s: ClientSession, from: { address: string; port: number }, payload = Uint8Array.of(1, 2, 3)): Uint8Array {
  h.deliver(h.tunnelId, from, openPacket(s));
  const sent = h.deliver(h.tunnelId, from, data(s, 1, payload));
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0]!.to, ORIGIN);
  return sent[0]!.bytes;
}

describe('tunnel.proxyProtocol', () => {
  test('v2: the client address and the ticket player id (TLV 0xE0) before each datagram, exact bytes; the origin replies with plain payload', () => {
    const h = harness({ proxyProtocol: 'v2' });
    const s = mintTicket(new Rng(1), { playerId: 'p-42' });
    const bytes = upstream(h, s, CLIENT);
    // prettier-ignore
    assert.deepEqual([...bytes], [
      0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x12, 0x00, 19,
      198, 51, 100, 20, 10, 0, 0, 1, 0xc3, 0x50, 0x11, 0x51, // 198.51.100.20:50000 → 10.0.0.1:4433
      0xe0, 0x00, 0x04, 0x70, 0x2d, 0x34, 0x32,             // player id "p-42"
      1, 2, 3,
    ]);
    assert.deepEqual(parsePlayerDatagram(bytes), { ok: true, format: 'proxy-v2', address: CLIENT.address, port: CLIENT.port, playerId: 'p-42', payload: Uint8Array.of(1, 2, 3) });
    // Every datagram carries it; the origin's reply reaches the client as it was sent.
    const second = h.deliver(h.tunnelId, CLIENT, data(s, 2, Uint8Array.of(4)));
    assert.deepEqual(second[0]!.bytes, Uint8Array.from([...bytes.subarray(0, 35), 4]));
    const [down] = h.deliver(second[0]!.socketId, ORIGIN, Uint8Array.of(9, 8));
    assert.deepEqual(down!.to, CLIENT);
    assert.deepEqual(down!.bytes.subarray(HEADER_BYTES), Uint8Array.of(9, 8));
  });

  test('v2 without a player id; spp (38 bytes, no player id); none sends the payload alone', () => {
    const v2 = upstream(harness({ proxyProtocol: 'v2' }), mintTicket(new Rng(2)), CLIENT);
    assert.deepEqual(v2, Uint8Array.from([...encodeProxyV2('udp', CLIENT, RELAY), 1, 2, 3]));
    const spp = upstream(harness({ proxyProtocol: 'spp' }), mintTicket(new Rng(3), { playerId: 'p-42' }), CLIENT);
    assert.equal(spp.length, 38 + 3);
    assert.deepEqual(parsePlayerDatagram(spp), { ok: true, format: 'spp', address: CLIENT.address, port: CLIENT.port, playerId: undefined, payload: Uint8Array.of(1, 2, 3) });
    assert.deepEqual(upstream(harness({}), mintTicket(new Rng(4), { playerId: 'p-42' }), CLIENT), Uint8Array.of(1, 2, 3));
  });

  test('a validated migration moves the address in the header; a reload changes the mode of live sessions at their next datagram', () => {
    const h = harness({ proxyProtocol: 'v2' });
    const s = mintTicket(new Rng(5), { playerId: 'p-5' });
    upstream(h, s, CLIENT);
    const moved = { address: '203.0.113.50', port: 61000 };
    const [challenge] = h.deliver(h.tunnelId, moved, data(s, 2, new Uint8Array(40)));
    h.deliver(h.tunnelId, moved, buildPathResponse(s.key, s.high, s.low, challenge!.bytes.subarray(HEADER_BYTES)));
    const [after] = h.deliver(h.tunnelId, moved, data(s, 3, Uint8Array.of(7)));
    assert.deepEqual(parsePlayerDatagram(after!.bytes), { ok: true, format: 'proxy-v2', address: moved.address, port: moved.port, playerId: 'p-5', payload: Uint8Array.of(7) });
    h.core.reconfigure(h.nowMs, baseConfig({ rules: [], groups: [], tunnel: tunnelSpec({ proxyProtocol: 'none' }) }));
    h.drain();
    assert.deepEqual(h.deliver(h.tunnelId, moved, data(s, 4, Uint8Array.of(8)))[0]!.bytes, Uint8Array.of(8));
  });

  test("a named origin's own proxyProtocol wins over the tunnel's; host:port origins take the tunnel's; a reload changes it for live sessions", () => {
    const origins = new Map([
      ['game', { address: '10.0.0.9', port: 7777, proxyProtocol: 'v2' as const }],
      ['plain', { address: '10.0.0.10', port: 7778, proxyProtocol: 'none' as const }],
    ]);
    const h = harness({ proxyProtocol: 'spp', origins });
    const game = mintTicket(new Rng(30), { playerId: 'g' });
    const viaGame = parsePlayerDatagram(upstream(h, game, CLIENT));
    assert.ok(viaGame.ok && viaGame.format === 'proxy-v2' && viaGame.playerId === 'g');
    const plain = mintTicket(new Rng(31), { origin: 'plain' });
    h.deliver(h.tunnelId, CLIENT, openPacket(plain));
    const [toPlain] = h.deliver(h.tunnelId, CLIENT, data(plain, 1, Uint8Array.of(2)));
    assert.deepEqual([toPlain!.to, toPlain!.bytes], [{ address: '10.0.0.10', port: 7778 }, Uint8Array.of(2)]);
    const direct = mintTicket(new Rng(32), { origin: '192.0.2.5:9000' });
    h.deliver(h.tunnelId, CLIENT, openPacket(direct));
    const viaDirect = parsePlayerDatagram(h.deliver(h.tunnelId, CLIENT, data(direct, 1, Uint8Array.of(3)))[0]!.bytes);
    assert.ok(viaDirect.ok && viaDirect.format === 'spp');
    // A reload: 'plain' gets v2; its live session's next datagram carries it.
    h.core.reconfigure(h.nowMs, baseConfig({ rules: [], groups: [], tunnel: tunnelSpec({ proxyProtocol: 'spp', origins: new Map([...origins, ['plain', { address: '10.0.0.10', port: 7778, proxyProtocol: 'v2' as const }]]) }) }));
    h.drain();
    const afterReload = parsePlayerDatagram(h.deliver(h.tunnelId, CLIENT, data(plain, 2, Uint8Array.of(4)))[0]!.bytes);
    assert.ok(afterReload.ok && afterReload.format === 'proxy-v2' && afterReload.address === CLIENT.address);
  });

  test('a datagram that the header would push over the largest UDP payload is dropped (TooLarge), not cut', () => {
    const h = harness({ proxyProtocol: 'v2' });
    const s = mintTicket(new Rng(6), { playerId: 'p-6' });
    upstream(h, s, CLIENT);
    const before = h.core.drops[DropReason.TooLarge];
    assert.deepEqual(h.deliver(h.tunnelId, CLIENT, data(s, 2, new Uint8Array(DATAGRAM_BYTES_MAX - HEADER_BYTES))), []);
    assert.equal(h.core.drops[DropReason.TooLarge], before + 1);
  });

  test('WebRTC sessions: the synthetic port is never written; the remote ICE address when the driver gave it, else no address (v2 UNSPEC, SPP ::0)', () => {
    const peerPort = TRANSPORT_PORT_BASE + 5;
    const browser = { address: '198.51.100.30', port: peerPort };
    // The driver gave no remote address: UNSPEC with the player id.
    const unknown = upstream(harness({ proxyProtocol: 'v2' }), mintTicket(new Rng(7), { playerId: 'web-1' }), browser);
    assert.deepEqual(parsePlayerDatagram(unknown), { ok: true, format: 'proxy-v2', address: undefined, port: undefined, playerId: 'web-1', payload: Uint8Array.of(1, 2, 3) });
    const spp = parseProxyHeader(upstream(harness({ proxyProtocol: 'spp' }), mintTicket(new Rng(8)), browser));
    assert.ok(spp.ok);
    assert.deepEqual(spp.header.source, { address: '::', port: 0 });
    // The driver reported the peer connection's selected remote candidate: that address and port.
    const h = harness({ proxyProtocol: 'v2' });
    h.core.setTransportRemote(peerPort, { address: '198.51.100.30', port: 53124 });
    const known = parsePlayerDatagram(upstream(h, mintTicket(new Rng(9), { playerId: 'web-2' }), browser));
    assert.deepEqual(known, { ok: true, format: 'proxy-v2', address: '198.51.100.30', port: 53124, playerId: 'web-2', payload: Uint8Array.of(1, 2, 3) });
    assert.ok(known.ok && known.port !== (peerPort & 0xffff), 'not the synthetic port cut to 16 bits');
    // A remote that is not an IP and port (a driver bug) is not written either.
    const bad = harness({ proxyProtocol: 'v2' });
    bad.core.setTransportRemote(peerPort, { address: 'relay.example', port: 1 });
    const parsedBad = parsePlayerDatagram(upstream(bad, mintTicket(new Rng(10)), browser));
    assert.ok(parsedBad.ok && parsedBad.address === undefined);
  });
});

describe('tunnel.proxyProtocol with exit relays', () => {
  const ENTRY = { address: '10.0.0.1', port: 4433 };
  const EXIT = { address: '10.0.0.7', port: 4433 };
  const exitTicket = (seed: number, playerId = 'p-x'): ClientSession => mintTicket(new Rng(seed), { playerId, exit: { relayId: 'exit-1', address: `${EXIT.address}:${EXIT.port}` } });
  const entry = (proxyProtocol: 'none' | 'v2'): Harness => harness({ relayId: 'entry-a', proxyProtocol });
  const exit = (): Harness => new Harness(baseConfig({ rules: [], groups: [], upstreamBindAddress: EXIT.address, tunnel: tunnelSpec({ listenAddress: EXIT.address, relayId: 'exit-1', peerCidrs: [parseCidr('10.0.0.0/24')!], proxyProtocol: 'v2' }) }));
  const openWith = (s: ClientSession, client?: string): Uint8Array => buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'], ...(client !== undefined ? { client } : {}) });

  test('the entry (proxyProtocol set) says the player address in the open it forwards and re-sends, replacing one the player wrote; without the key an open goes as it came, minus a client field', () => {
    const s = exitTicket(11);
    const h = entry('v2');
    const [fwd] = h.deliver(h.tunnelId, CLIENT, openWith(s, '192.0.2.66:1'));
    assert.deepEqual(fwd!.to, EXIT);
    const open = controlOf(fwd!.bytes);
    assert.ok(open?.type === 'sessionOpen');
    assert.equal(open.client, `${CLIENT.address}:${CLIENT.port}`);
    assert.deepEqual(open.ticket, s.ticket);
    // The player's later opens (keepalives, retries) go as the entry's copy: never with a client the player wrote.
    const [again] = h.deliver(h.tunnelId, CLIENT, openWith(s, '192.0.2.66:1'));
    assert.deepEqual(again!.to, EXIT);
    assert.deepEqual(again!.bytes, fwd!.bytes);
    const plain = entry('none');
    assert.deepEqual(plain.deliver(plain.tunnelId, CLIENT, openPacket(s))[0]!.bytes, openPacket(s));
    // An entry without the key still drops a client field the player wrote (the exit may have the key).
    const strip = entry('none');
    const stripped = controlOf(strip.deliver(strip.tunnelId, CLIENT, openWith(s, '192.0.2.66:1'))[0]!.bytes);
    assert.ok(stripped?.type === 'sessionOpen' && stripped.client === undefined);
    const [later] = strip.deliver(strip.tunnelId, CLIENT, openWith(s, '192.0.2.66:1'));
    const laterOpen = controlOf(later!.bytes);
    assert.ok(laterOpen?.type === 'sessionOpen' && laterOpen.client === undefined);
    // A WebRTC player whose remote the entry does not know: no client field at all.
    const web = entry('v2');
    const [webOpen] = web.deliver(web.tunnelId, { address: CLIENT.address, port: TRANSPORT_PORT_BASE + 1 }, openPacket(s));
    const decoded = controlOf(webOpen!.bytes);
    assert.ok(decoded?.type === 'sessionOpen' && decoded.client === undefined);
  });

  test('the exit writes the address a fleet relay says, no address when it says none, and the real source for a player that opens directly (its own client field ignored)', () => {
    const cases: [string, { address: string; port: number }, string | undefined, string | undefined, number | undefined][] = [
      ['entry says', ENTRY, '198.51.100.20:50000', '198.51.100.20', 50000],
      ['entry says nothing', ENTRY, undefined, undefined, undefined],
      ['player direct, forging', CLIENT, '192.0.2.66:1', CLIENT.address, CLIENT.port],
    ];
    let seed = 20;
    for (const [name, from, client, address, port] of cases) {
      const h = exit();
      const s = exitTicket(seed++, 'p-exit');
      h.deliver(h.tunnelId, from, openWith(s, client));
      const [up] = h.deliver(h.tunnelId, from, data(s, 1, Uint8Array.of(5)));
      assert.deepEqual(up?.to, ORIGIN, name);
      assert.deepEqual(parsePlayerDatagram(up!.bytes), { ok: true, format: 'proxy-v2', address, port, playerId: 'p-exit', payload: Uint8Array.of(5) }, name);
    }
  });
});
