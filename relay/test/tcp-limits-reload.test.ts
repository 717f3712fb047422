/**
 * The core's side of TCP byte-rate limits (`RelayCore.tcpData`) and of a reload that
 * narrows `tunnel.origins`, with virtual time (no sockets): the end-to-end tests in
 * test/e2e-relay-limits-reload.test.ts show the same on a real process.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeControl } from '../../proto/src/control.js';
import { ErrorCode } from '../../proto/src/errors.js';
import { HEADER_BYTES, PacketType } from '../../proto/src/header.js';
import { Rng } from '../../proto/src/rng.js';
import { RelayCore } from '../src/core/relay-core.js';
import { buildControlPacket, openRelayClose } from '../../proto/src/wire.js';
import { baseConfig, Harness, mintTicket, openLimits, tunnelSpec, typeOf, udpRule } from './support.js';

const tcpConfig = (connectionBytesPerSecond: number, bytesPerSecond: number) =>
  baseConfig({
    rules: [udpRule({ name: 'lobby', protocol: 'tcp', listenPort: 7000, listenPortEnd: 7000, connectionBytesPerSecond, bytesPerSecond })],
    limits: { ...openLimits, burstMs: 100 },
  });

function admit(h: Harness, clientPort: number): number {
  const admission = h.core.admitTcp(h.nowMs, h.listenerIds.get(7000)!, { address: '192.0.2.50', port: clientPort });
  h.drain();
  assert.equal(typeof admission, 'object');
  return (admission as Exclude<ReturnType<RelayCore['admitTcp']>, number>).connId;
}

describe('TCP byte-rate limits in the core', () => {
  test('a connection reads its burst freely, then is told to pause for the debt at its rate; each direction apart', () => {
    const h = new Harness(tcpConfig(100_000, 0));
    const id = admit(h, 40000);
    // The bucket holds max(64 KiB, 100 ms at 100 kB/s) = 65,536 bytes.
    assert.equal(h.core.tcpData(0, id, 'up', 65_536), 0);
    assert.equal(h.core.tcpData(0, id, 'up', 10_000), 100, '10 kB of debt at 100 kB/s is 100 ms');
    assert.equal(h.core.tcpData(0, id, 'down', 65_536), 0, 'the other direction has its own bucket');
    // After the pause the debt is paid; the next chunk goes into debt again.
    assert.equal(h.core.tcpData(100, id, 'up', 5_000), 50);
    assert.equal(h.core.tcpThrottles, 2);
  });

  test('bytesPerSecond is shared by the rule’s connections; a reload changes live connections’ rates and removes limits', () => {
    const h = new Harness(tcpConfig(0, 100_000));
    const a = admit(h, 40001);
    const b = admit(h, 40002);
    assert.equal(h.core.tcpData(0, a, 'up', 65_536), 0);
    assert.equal(h.core.tcpData(0, b, 'up', 20_000), 200, 'b pays for what a took from the shared bucket');
    // Reload: per-connection 50 kB/s, no rule limit.
    h.core.reconfigure(0, tcpConfig(50_000, 0));
    h.drain();
    assert.equal(h.core.tcpData(1000, b, 'up', 65_536 + 50_000), 1000, 'the live connection has the new rate (50 kB of debt at 50 kB/s)');
    h.core.reconfigure(1000, tcpConfig(0, 0));
    h.drain();
    assert.equal(h.core.tcpData(1000, a, 'up', 10_000_000), 0, 'unlimited after the limit is removed');
    h.core.tcpClosed(1000, a, 'client closed');
    assert.equal(h.core.tcpData(1000, a, 'up', 1), 0, 'a closed connection is not limited');
  });
});

describe('reload narrowing tunnel.origins', () => {
  test('sessions whose origin is removed or moved end with an authenticated SLIP_ERR_TICKET_WRONG_ORIGIN Close; the others stay', () => {
    const origins = (entries: [string, string, number][]) => tunnelSpec({ origins: new Map(entries.map(([name, address, port]) => [name, { address, port }])) });
    const config = (entries: [string, string, number][]) => baseConfig({ tunnel: origins(entries) });
    const h = new Harness(config([['game', '10.0.0.9', 7777], ['other', '10.0.0.10', 7777], ['third', '10.0.0.11', 7777]]));
    const rng = new Rng(7);
    const sessions = ['game', 'other', 'third'].map((origin) => mintTicket(rng, { origin }));
    sessions.forEach((s, i) => {
      const sent = h.deliver(h.tunnelId, { address: '198.51.100.7', port: 50000 + i }, buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'] }));
      assert.equal(sent.length, 1);
    });
    assert.equal(h.core.tunnelSessionCount, 3);
    // 'game' is removed; 'third' now names another address; 'other' is unchanged.
    h.core.reconfigure(10, config([['other', '10.0.0.10', 7777], ['third', '10.0.0.12', 7777]]));
    const sent = h.drain();
    assert.equal(h.core.tunnelSessionCount, 1);
    const closes = sent.filter((x) => typeOf(x.bytes) === PacketType.Close);
    assert.deepEqual(closes.map((x) => x.to.port).sort(), [50000, 50002]);
    for (const close of closes) {
      const s = sessions[close.to.port - 50000]!;
      const body = openRelayClose(s.key, s.high, s.low, close.bytes.subarray(HEADER_BYTES));
      assert.ok(body !== undefined, 'MACed with the session key');
      const decoded = decodeControl(body);
      assert.ok(decoded.ok && decoded.message.type === 'sessionReject' && decoded.message.reason === ErrorCode.TicketWrongOrigin);
    }
    assert.deepEqual(h.eventsOf('sessionEnd').map((e) => e.id).sort(), [sessions[0]!.hex, sessions[2]!.hex].sort());
  });
});
