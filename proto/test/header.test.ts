import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HEADER_BYTES, HEADER_MAGIC, PROTOCOL_VERSION, PacketHeader, PacketType, parseHeader, quickCheck, sessionIdFromHex, sessionIdToHex, writeHeader } from '../src/header.js';
import { ParseFailure } from '../src/errors.js';

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });

/** Arbitrary valid headers: FEC fields consistent with the type. */
const validHeader = fc
  .record({
    type: fc.constantFrom(...Object.values(PacketType)),
    flags: fc.integer({ min: 0, max: 3 }),
    sessionIdHigh: u32,
    sessionIdLow: u32,
    sequence: u32,
    fecGroup: u32,
    k: fc.integer({ min: 1, max: 254 }),
    r: fc.integer({ min: 0, max: 254 }),
    indexSeed: fc.nat(),
    fec: fc.boolean(),
  })
  .map((f) => {
    const h = new PacketHeader();
    h.type = f.type;
    h.flags = f.flags;
    h.sessionIdHigh = f.sessionIdHigh;
    h.sessionIdLow = f.sessionIdLow;
    h.sequence = f.sequence;
    const coded = f.type === PacketType.Parity || (f.fec && f.type === PacketType.Data);
    if (coded) {
      const k = Math.min(f.k, 255 - Math.max(1, f.r));
      const r = f.type === PacketType.Parity ? Math.max(1, Math.min(f.r, 255 - k)) : Math.min(f.r, 255 - k);
      h.fecGroup = f.fecGroup;
      h.fecDataCount = k;
      h.fecParityCount = r;
      h.fecIndex = f.type === PacketType.Data ? f.indexSeed % k : k + (f.indexSeed % r);
    }
    return h;
  });

test('every valid header round-trips through writeHeader/parseHeader', () => {
  fc.assert(
    fc.property(validHeader, fc.uint8Array({ maxLength: 64 }), (header, payload) => {
      const bytes = new Uint8Array(HEADER_BYTES + payload.length);
      assert.equal(writeHeader(header, bytes), HEADER_BYTES);
      bytes.set(payload, HEADER_BYTES);
      const parsed = new PacketHeader();
      assert.equal(parseHeader(bytes, parsed), 0);
      assert.deepEqual({ ...parsed }, { ...header });
    }),
    { numRuns: 2000 },
  );
});

test('arbitrary bytes never throw: parseHeader returns 0 or a typed failure', () => {
  const known = new Set<number>(Object.values(ParseFailure));
  const out = new PacketHeader();
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      const result = parseHeader(bytes, out);
      assert.ok(result === 0 || known.has(result), `unexpected result ${result}`);
    }),
    { numRuns: 5000 },
  );
});

test('bytes that look like a header (right magic and version) never throw either', () => {
  const out = new PacketHeader();
  fc.assert(
    fc.property(fc.uint8Array({ minLength: HEADER_BYTES - 2, maxLength: 40 }), (tail) => {
      const bytes = new Uint8Array(2 + tail.length);
      bytes[0] = HEADER_MAGIC;
      bytes[1] = PROTOCOL_VERSION;
      bytes.set(tail, 2);
      const result = parseHeader(bytes, out);
      if (result === 0) {
        // Whatever parsed must re-encode to the same 24 bytes.
        const again = new Uint8Array(HEADER_BYTES);
        writeHeader(out, again);
        assert.deepEqual(again, bytes.subarray(0, HEADER_BYTES));
      }
    }),
    { numRuns: 5000 },
  );
});

test('each kind of bad header gives its own failure code', () => {
  const h = new PacketHeader();
  h.type = PacketType.Data;
  const good = new Uint8Array(HEADER_BYTES);
  writeHeader(h, good);
  const out = new PacketHeader();
  const mutate = (index: number, value: number): Uint8Array => {
    const copy = good.slice();
    copy[index] = value;
    return copy;
  };
  assert.equal(parseHeader(good.subarray(0, HEADER_BYTES - 1), out), ParseFailure.TooShort);
  assert.equal(parseHeader(mutate(0, 0x00), out), ParseFailure.BadMagic);
  assert.equal(parseHeader(mutate(1, 2), out), ParseFailure.BadVersion);
  assert.equal(parseHeader(mutate(2, 0), out), ParseFailure.BadType);
  assert.equal(parseHeader(mutate(2, 200), out), ParseFailure.BadType);
  assert.equal(parseHeader(mutate(3, 0x80), out), ParseFailure.BadReserved);
  assert.equal(parseHeader(mutate(23, 1), out), ParseFailure.BadReserved);
  // FEC: index ≥ k for a data shard; parity without a group; k + r > 255.
  const fec = (type: number, index: number, k: number, r: number): Uint8Array => {
    const copy = good.slice();
    copy[2] = type;
    copy[20] = index;
    copy[21] = k;
    copy[22] = r;
    return copy;
  };
  assert.equal(parseHeader(fec(PacketType.Data, 4, 4, 2), out), ParseFailure.BadFecFields);
  assert.equal(parseHeader(fec(PacketType.Parity, 0, 0, 0), out), ParseFailure.BadFecFields);
  assert.equal(parseHeader(fec(PacketType.Parity, 1, 4, 2), out), ParseFailure.BadFecFields);
  assert.equal(parseHeader(fec(PacketType.Data, 0, 200, 100), out), ParseFailure.BadFecFields);
  assert.equal(parseHeader(fec(PacketType.Probe, 0, 1, 1), out), ParseFailure.BadFecFields);
  assert.equal(parseHeader(fec(PacketType.Parity, 5, 4, 2), out), 0);
  assert.equal(quickCheck(good), 0);
  assert.equal(quickCheck(new Uint8Array(100)), ParseFailure.BadMagic);
});

test('writeHeader refuses programmer errors with RangeError', () => {
  const h = new PacketHeader();
  h.type = PacketType.Parity;
  assert.throws(() => writeHeader(h, new Uint8Array(HEADER_BYTES)), RangeError);
  h.type = PacketType.Data;
  assert.throws(() => writeHeader(h, new Uint8Array(HEADER_BYTES - 1)), RangeError);
  h.type = 99;
  assert.throws(() => writeHeader(h, new Uint8Array(HEADER_BYTES)), RangeError);
});

test('session ids convert to and from 16 hex digits', () => {
  fc.assert(
    fc.property(u32, u32, (high, low) => {
      const hex = sessionIdToHex(high, low);
      assert.match(hex, /^[0-9a-f]{16}$/);
      assert.deepEqual(sessionIdFromHex(hex), [high, low]);
    }),
  );
  assert.equal(sessionIdFromHex('xyz'), undefined);
  assert.equal(sessionIdFromHex('0123456789abcdeg'), undefined);
});
