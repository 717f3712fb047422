/**
 * The core decides when an L4 TCP connection ends (the driver, relay/src/tcp-proxy.ts,
 * only moves bytes): an idle connection is asked to end with a `tcpEnd` event, a
 * connection is over once both sides closed, and one whose origins all fail ends with
 * `no origin reachable`. Virtual time, no sockets.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RelayCore } from '../src/core/relay-core.js';
import { baseConfig, Harness, openLimits, udpRule } from './support.js';

const IDLE_MS = 30_000;
// No first-byte timeout unless a test sets one: the idle tests connect without bytes.
const tcpConfig = () => baseConfig({ rules: [udpRule({ name: 'lobby', protocol: 'tcp', listenPort: 7000, listenPortEnd: 7000, idleTimeoutMs: IDLE_MS })], limits: openLimits, tcp: { connectionsPerSourceMax: 1000, silentPerSourceMax: 1000, firstByteTimeoutMs: 0 } });

function admit(h: Harness, clientPort: number, address = '192.0.2.50'): Exclude<ReturnType<RelayCore['admitTcp']>, number> {
  const admission = h.core.admitTcp(h.nowMs, h.listenerIds.get(7000)!, { address, port: clientPort });
  h.drain();
  assert.equal(typeof admission, 'object');
  return admission as Exclude<ReturnType<RelayCore['admitTcp']>, number>;
}

describe('TCP connection policy in the core', () => {
  test('a connected connection without bytes for its idleTimeoutMs is asked to end once (tcpEnd idle); bytes keep it open', () => {
    const h = new Harness(tcpConfig());
    const quiet = admit(h, 41000).connId;
    const busy = admit(h, 41001).connId;
    h.core.tcpConnected(0, quiet);
    h.core.tcpConnected(0, busy);
    for (let t = 10_000; t <= IDLE_MS + 2_000; t += 10_000) {
      h.advance(t);
      h.core.tcpData(t, busy, 'down', 100);
    }
    h.advance(IDLE_MS + 5_000);
    const ends = h.eventsOf('tcpEnd');
    assert.deepEqual(ends, [{ type: 'tcpEnd', connId: quiet, reason: 'idle' }]);
    h.advance(IDLE_MS + 10_000);
    assert.equal(h.eventsOf('tcpEnd').length, 1, 'asked once while the driver closes it');
    h.core.tcpData(h.nowMs, quiet, 'up', 10);
    assert.equal(h.core.ruleStats.get('lobby')!.bytesUp, 10, 'bytes count while the connection is open');
    h.core.tcpClosed(h.nowMs, quiet, 'idle');
    h.drain();
    assert.equal(h.core.tcpConnectionCount, 1);
    assert.deepEqual(
      h.eventsOf('sessionEnd').map((e) => e.reason),
      ['idle'],
    );
    assert.equal(h.core.ruleStats.get('lobby')!.bytesUp, 10, 'a closed connection\'s bytes are not counted twice');
    assert.equal(h.eventsOf('sessionEnd')[0]!.totals.bytesUp, 10, 'session_end carries the connection\'s bytes');
  });

  test('a connection is over when both sides closed, named by the side that closed first', () => {
    const h = new Harness(tcpConfig());
    const id = admit(h, 41002).connId;
    h.core.tcpConnected(0, id);
    assert.equal(h.core.tcpSideClosed(0, id, 'origin'), undefined, 'half-closed: the client side still drains');
    assert.equal(h.core.tcpSideClosed(0, id, 'client'), 'origin closed');
  });

  test('a connect failing on every origin ends the connection: no origin reachable', () => {
    const h = new Harness(tcpConfig());
    const id = admit(h, 41003).connId;
    let next = h.core.tcpConnectFailed(0, id);
    while (next !== undefined) next = h.core.tcpConnectFailed(0, id);
    h.drain();
    assert.equal(h.core.tcpConnectionCount, 0);
    assert.deepEqual(
      h.eventsOf('sessionEnd').map((e) => e.reason),
      ['no origin reachable'],
    );
  });

  test('per source: connections that moved no byte yet are capped apart from all connections; a refusal holds nothing', () => {
    const h = new Harness({ ...tcpConfig(), tcp: { connectionsPerSourceMax: 3, silentPerSourceMax: 2, firstByteTimeoutMs: 5_000 } });
    const listener = h.listenerIds.get(7000)!;
    const a = admit(h, 1).connId;
    admit(h, 2);
    assert.equal(typeof h.core.admitTcp(0, listener, { address: '192.0.2.50', port: 3 }), 'number', 'a third silent connection from the address is refused');
    assert.equal(h.core.tcpSourceCapRefusals, 1);
    admit(h, 4, '192.0.2.51');
    h.core.tcpConnected(0, a);
    h.core.tcpData(0, a, 'down', 1);
    const c = admit(h, 5).connId;
    assert.equal(typeof h.core.admitTcp(0, listener, { address: '192.0.2.50', port: 6 }), 'number', 'three open connections: the per-source cap');
    assert.equal(h.core.tcpConnectionCount, 4, 'refusals take no place');
    h.core.tcpClosed(0, c, 'client closed');
    admit(h, 7);
  });

  test('a connected connection with no byte either way for firstByteTimeoutMs is asked to end (no first byte); one byte either way keeps it', () => {
    const h = new Harness({ ...tcpConfig(), tcp: { connectionsPerSourceMax: 100, silentPerSourceMax: 100, firstByteTimeoutMs: 5_000 } });
    const silent = admit(h, 1).connId;
    const talker = admit(h, 2).connId;
    const bannered = admit(h, 3).connId;
    admit(h, 4); // never connects: the connect timeout (the driver's) bounds it, not this one
    for (const id of [silent, talker, bannered]) h.core.tcpConnected(0, id);
    h.core.tcpData(100, talker, 'up', 1);
    h.core.tcpData(100, bannered, 'down', 1);
    h.advance(4_000);
    assert.deepEqual(h.eventsOf('tcpEnd'), []);
    h.advance(7_000);
    assert.deepEqual(h.eventsOf('tcpEnd'), [{ type: 'tcpEnd', connId: silent, reason: 'no first byte' }]);
    assert.equal(h.core.tcpFirstByteTimeouts, 1);
  });
});
