/**
 * `offeredAddresses`: the UDP addresses an SDP offer's candidates name at the
 * requester's own IP (where its ICE checks will come from), by which the relay finds a
 * stale peer connection holding that address in the ICE mux.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { offeredAddresses } from '../src/webrtc.js';

const OFFER = [
  'v=0',
  'a=candidate:1 1 UDP 2122317823 127.0.0.1 40001 typ host',
  'a=candidate:2 1 udp 2122317823 198.51.100.7 40002 typ srflx raddr 10.0.0.2 rport 40002',
  'a=candidate:3 1 TCP 2122317823 127.0.0.1 9 typ host tcptype active',
  'a=candidate:4 1 UDP 2122317823 0e4b3a1c-7d2f.local 40003 typ host',
  'a=candidate:5 1 UDP 2122317823 ::FFFF:127.0.0.1 40004 typ host',
  'a=end-of-candidates',
].join('\r\n');

test('UDP candidates at the requester IP only: no TCP, no mDNS names, no other hosts; IPv4-mapped unwrapped', () => {
  assert.deepEqual(offeredAddresses(OFFER, '127.0.0.1'), ['127.0.0.1:40001', '127.0.0.1:40004']);
  assert.deepEqual(offeredAddresses(OFFER, '::ffff:198.51.100.7'), ['198.51.100.7:40002']);
  assert.deepEqual(offeredAddresses(OFFER, '203.0.113.1'), []);
  assert.deepEqual(offeredAddresses('v=0\r\na=candidate:junk', '127.0.0.1'), [], 'junk lines are ignored');
});
