import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  encodeProxyV2,
  encodeProxyV2Local,
  encodeProxyV2Unspec,
  encodeSpp,
  parsePlayerDatagram,
  parseProxyHeader,
  parseProxyV2,
  parseSpp,
  PROXY_V2_IPV4_BYTES,
  PROXY_V2_IPV6_BYTES,
  PROXY_V2_TLV_PLAYER_ID,
  SPP_BYTES,
} from '../src/proxy-protocol.js';

const port = fc.integer({ min: 0, max: 65535 });
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
/** IPv6 in canonical RFC 5952 form, so that a round trip must give the same text back (IPv4-mapped ones excluded: they come back dotted). */
const ipv6 = fc
  .array(fc.nat(0xffff), { minLength: 8, maxLength: 8 })
  .filter((w) => !(w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff))
  .map((words) => canonicalV6(words));

function canonicalV6(words: number[]): string {
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength && j - i >= 2) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = (a: number, b: number): string => words.slice(a, b).map((w) => w.toString(16)).join(':');
  return bestStart === -1 ? hex(0, 8) : `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

test('PROXY v2 IPv4 round trip for TCP and UDP', () => {
  fc.assert(
    fc.property(ipv4, port, ipv4, port, fc.constantFrom('tcp' as const, 'udp' as const), fc.uint8Array({ maxLength: 64 }), (sa, sp, da, dp, transport, payload) => {
      const header = encodeProxyV2(transport, { address: sa, port: sp }, { address: da, port: dp });
      assert.equal(header.length, PROXY_V2_IPV4_BYTES);
      const datagram = new Uint8Array(header.length + payload.length);
      datagram.set(header);
      datagram.set(payload, header.length);
      const parsed = parseProxyHeader(datagram);
      assert.ok(parsed.ok);
      assert.deepEqual(parsed.header, { format: 'proxy-v2', proxied: true, transport, source: { address: sa, port: sp }, destination: { address: da, port: dp }, playerId: undefined, headerBytes: PROXY_V2_IPV4_BYTES });
      assert.deepEqual(datagram.subarray(parsed.header.headerBytes), payload);
    }),
    { interruptAfterTimeLimit: 2000 },
  );
});

test('PROXY v2 IPv6 round trip, and IPv4 mixed with IPv6 is carried IPv4-mapped', () => {
  fc.assert(
    fc.property(ipv6, port, ipv6, port, (sa, sp, da, dp) => {
      const header = encodeProxyV2('udp', { address: sa, port: sp }, { address: da, port: dp });
      assert.equal(header.length, PROXY_V2_IPV6_BYTES);
      const parsed = parseProxyV2(header);
      assert.ok(parsed.ok);
      assert.deepEqual(parsed.header.source, { address: sa, port: sp });
      assert.deepEqual(parsed.header.destination, { address: da, port: dp });
    }),
    { interruptAfterTimeLimit: 2000 },
  );
  const mixed = parseProxyV2(encodeProxyV2('tcp', { address: '203.0.113.7', port: 5000 }, { address: '2001:db8::1', port: 27015 }));
  assert.ok(mixed.ok);
  assert.deepEqual(mixed.header.source, { address: '203.0.113.7', port: 5000 });
  assert.deepEqual(mixed.header.destination, { address: '2001:db8::1', port: 27015 });
});

test('PROXY v2 over a TCP stream: incomplete prefixes ask for the full size', () => {
  const header = encodeProxyV2('tcp', { address: '198.51.100.2', port: 40000 }, { address: '10.0.0.1', port: 7000 });
  for (let cut = 1; cut < header.length; cut++) {
    const parsed = parseProxyV2(header.subarray(0, cut));
    assert.equal(parsed.ok, false);
    if (!parsed.ok) {
      assert.equal(parsed.failure, 'incomplete', `cut ${cut}`);
      assert.equal(parsed.bytesNeeded, cut < 16 ? 16 : PROXY_V2_IPV4_BYTES);
    }
  }
});

test('PROXY v2 LOCAL carries no address; TLVs are skipped', () => {
  const local = parseProxyV2(encodeProxyV2Local());
  assert.ok(local.ok);
  assert.equal(local.header.proxied, false);
  assert.equal(local.header.source, undefined);
  const base = encodeProxyV2('tcp', { address: '192.0.2.1', port: 1 }, { address: '192.0.2.2', port: 2 });
  const withTlv = new Uint8Array(base.length + 5);
  withTlv.set(base);
  withTlv.set([0x04, 0x00, 0x02, 0xaa, 0xbb], base.length); // PP2_TYPE_NOOP, 2 bytes
  withTlv[15] = 12 + 5;
  const parsed = parseProxyV2(withTlv);
  assert.ok(parsed.ok);
  assert.equal(parsed.header.headerBytes, withTlv.length);
  assert.deepEqual(parsed.header.source, { address: '192.0.2.1', port: 1 });
});

test('SPP: 38 bytes, IPv4 and IPv6 round trip', () => {
  fc.assert(
    fc.property(fc.oneof(ipv4, ipv6), port, fc.oneof(ipv4, ipv6), port, (sa, sp, da, dp) => {
      const header = encodeSpp({ address: sa, port: sp }, { address: da, port: dp });
      assert.equal(header.length, SPP_BYTES);
      assert.deepEqual([header[0], header[1]], [0x56, 0xec]);
      const parsed = parseProxyHeader(header);
      assert.ok(parsed.ok);
      assert.deepEqual(parsed.header, { format: 'spp', proxied: true, transport: 'udp', source: { address: sa, port: sp }, destination: { address: da, port: dp }, playerId: undefined, headerBytes: SPP_BYTES });
    }),
    { interruptAfterTimeLimit: 2000 },
  );
});

test('encoders refuse what is not an IP literal (programmer error)', () => {
  assert.throws(() => encodeSpp({ address: 'example.com', port: 1 }, { address: '1.2.3.4', port: 1 }), RangeError);
  assert.throws(() => encodeProxyV2('udp', { address: '1.2.3.4', port: 70000 }, { address: '1.2.3.4', port: 1 }), RangeError);
  assert.throws(() => encodeProxyV2('udp', { address: '1.2.3', port: 1 }, { address: '1.2.3.4', port: 1 }), RangeError);
});

test('arbitrary bytes never throw and never claim more bytes than given', () => {
  const prefixed = fc.oneof(
    fc.uint8Array({ maxLength: 120 }),
    fc.uint8Array({ maxLength: 100 }).map((tail) => Uint8Array.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, ...tail])),
    fc.uint8Array({ maxLength: 60 }).map((tail) => Uint8Array.from([0x56, 0xec, ...tail])),
  );
  fc.assert(
    fc.property(prefixed, (bytes) => {
      for (const parse of [parseProxyHeader, parseProxyV2, parseSpp]) {
        const result = parse(bytes);
        if (result.ok) assert.ok(result.header.headerBytes <= bytes.length);
        else if (result.failure === 'incomplete') assert.ok((result.bytesNeeded ?? 0) > bytes.length);
      }
    }),
    { numRuns: 5000, interruptAfterTimeLimit: 3000 },
  );
});

test('PROXY v2 player id TLV: exact bytes (type 0xE0, big-endian length, ASCII), parsed back with the address', () => {
  const header = encodeProxyV2('udp', { address: '198.51.100.7', port: 40001 }, { address: '10.0.0.1', port: 4433 }, { playerId: 'p-42' });
  assert.equal(PROXY_V2_TLV_PLAYER_ID, 0xe0);
  // prettier-ignore
  assert.deepEqual([...header], [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // signature
    0x21, 0x12, 0x00, 12 + 7,                                               // v2 PROXY, AF_INET DGRAM, length 19
    198, 51, 100, 7, 10, 0, 0, 1, 0x9c, 0x41, 0x11, 0x51,                   // 198.51.100.7:40001 → 10.0.0.1:4433
    0xe0, 0x00, 0x04, 0x70, 0x2d, 0x34, 0x32,                               // TLV 0xE0, 4 bytes, "p-42"
  ]);
  const datagram = Uint8Array.from([...header, 9, 8, 7]);
  const parsed = parseProxyHeader(datagram);
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.header, { format: 'proxy-v2', proxied: true, transport: 'udp', source: { address: '198.51.100.7', port: 40001 }, destination: { address: '10.0.0.1', port: 4433 }, playerId: 'p-42', headerBytes: PROXY_V2_IPV4_BYTES + 7 });
  assert.deepEqual(parsePlayerDatagram(datagram), { ok: true, format: 'proxy-v2', address: '198.51.100.7', port: 40001, playerId: 'p-42', payload: Uint8Array.of(9, 8, 7) });
  // IPv6, and the longest id.
  const id = 'x'.repeat(128);
  const v6 = parseProxyV2(encodeProxyV2('udp', { address: '2001:db8::7', port: 1 }, { address: '2001:db8::1', port: 2 }, { playerId: id }));
  assert.ok(v6.ok);
  assert.equal(v6.header.playerId, id);
  assert.equal(v6.header.headerBytes, PROXY_V2_IPV6_BYTES + 3 + 128);
});

test('PROXY v2 UNSPEC: no address, the player id only; parsePlayerDatagram gives no address, a LOCAL is not a player', () => {
  const header = encodeProxyV2Unspec({ playerId: 'alice' });
  assert.deepEqual([...header.subarray(12)], [0x21, 0x00, 0x00, 8, 0xe0, 0x00, 0x05, ...Buffer.from('alice')]);
  const datagram = Uint8Array.from([...header, 1, 2]);
  assert.deepEqual(parsePlayerDatagram(datagram), { ok: true, format: 'proxy-v2', address: undefined, port: undefined, playerId: 'alice', payload: Uint8Array.of(1, 2) });
  const bare = parseProxyV2(encodeProxyV2Unspec());
  assert.ok(bare.ok && bare.header.proxied && bare.header.source === undefined && bare.header.playerId === undefined && bare.header.headerBytes === 16);
  assert.deepEqual(parsePlayerDatagram(encodeProxyV2Local()), { ok: false, failure: 'not-proxied' });
  assert.deepEqual(parsePlayerDatagram(Uint8Array.of(1, 2, 3)), { ok: false, failure: 'no-signature' });
});

test('PROXY v2 TLVs that overrun the header, or a player id that is empty, too long or not printable ASCII, are bad-tlv', () => {
  const base = encodeProxyV2('udp', { address: '192.0.2.1', port: 1 }, { address: '192.0.2.2', port: 2 });
  const withTlv = (tlv: number[]): Uint8Array => {
    const out = Uint8Array.from([...base, ...tlv]);
    out[14] = 0;
    out[15] = 12 + tlv.length;
    return out;
  };
  assert.deepEqual(parseProxyV2(withTlv([0xe0, 0x00, 0x05, 0x61])), { ok: false, failure: 'bad-tlv' }, 'length past the header');
  assert.deepEqual(parseProxyV2(withTlv([0xe0, 0x00])), { ok: false, failure: 'bad-tlv' }, 'a cut TLV header');
  assert.deepEqual(parseProxyV2(withTlv([0xe0, 0x00, 0x00])), { ok: false, failure: 'bad-tlv' }, 'an empty id');
  assert.deepEqual(parseProxyV2(withTlv([0xe0, 0x00, 0x02, 0x61, 0x20])), { ok: false, failure: 'bad-tlv' }, 'a space');
  assert.deepEqual(parseProxyV2(withTlv([0xe0, 0x00, 0x02, 0xc3, 0xa9])), { ok: false, failure: 'bad-tlv' }, 'not ASCII');
  assert.deepEqual(parseProxyV2(withTlv([0xe0, 0x00, 129, ...new Array<number>(129).fill(0x61)])), { ok: false, failure: 'bad-tlv' }, '129 bytes');
  // Other TLVs are skipped; the player id is found after them.
  const ok = parseProxyV2(withTlv([0x04, 0x00, 0x01, 0x00, 0xe0, 0x00, 0x01, 0x62]));
  assert.ok(ok.ok && ok.header.playerId === 'b');
  for (const bad of ['', 'a b', 'é', 'x'.repeat(129)]) assert.throws(() => encodeProxyV2Unspec({ playerId: bad }), RangeError, JSON.stringify(bad));
});
