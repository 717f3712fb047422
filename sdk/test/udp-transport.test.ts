/**
 * `UdpTransport`, the `Transport` over `node:dgram`, beyond what the compliance suite
 * (test/transport-compliance.test.ts) asks of every transport: a send to a destination
 * no datagram can reach is counted as a send error, never thrown at the game.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UdpTransport } from '../src/udp-transport.js';

test('UdpTransport.send never throws for a destination no datagram can reach', async () => {
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
