/**
 * `ipLiteralLookup` (kit/udp-lookup.ts), the `lookup` the relay, the SDK transport
 * and the simulator proxy give their UDP sockets: an IP literal is answered in the same
 * call (no `dns.lookup`, no deferred tick per datagram); anything else still resolves.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { ipLiteralLookup } from '../udp-lookup.js';

describe('ipLiteralLookup', () => {
  test('answers IPv4 and IPv6 literals synchronously, with their family', () => {
    for (const [address, family] of [['127.0.0.1', 4], ['203.0.113.9', 4], ['::1', 6], ['2001:db8::1', 6]] as const) {
      let answer: [Error | null, string, number] | undefined;
      ipLiteralLookup(address, family, (error, resolved, resolvedFamily) => (answer = [error, resolved, resolvedFamily]));
      assert.deepEqual(answer, [null, address, family], address);
    }
  });

  test('a name goes to dns.lookup, later (localhost, from /etc/hosts: no resolver needed)', async () => {
    let answeredAtOnce = false;
    const resolved = new Promise<[Error | null, string, number]>((resolve) =>
      ipLiteralLookup('localhost', 4, (...r) => {
        answeredAtOnce = true;
        resolve(r);
      }),
    );
    assert.equal(answeredAtOnce, false, 'dns.lookup answers asynchronously');
    assert.deepEqual(await resolved, [null, '127.0.0.1', 4]);
  });

  test('a dgram socket using it delivers to an IP literal, and still to a name', async () => {
    const receiver = dgram.createSocket('udp4');
    const sender = dgram.createSocket({ type: 'udp4', lookup: ipLiteralLookup });
    try {
      receiver.bind(0, '127.0.0.1');
      await once(receiver, 'listening');
      const port = receiver.address().port;
      const got: string[] = [];
      receiver.on('message', (m) => got.push(m.toString()));
      sender.send('by literal', port, '127.0.0.1');
      sender.send('by name', port, 'localhost');
      for (let i = 0; i < 200 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got.sort(), ['by literal', 'by name']);
    } finally {
      receiver.close();
      sender.close();
    }
  });
});
