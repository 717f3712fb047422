import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { CONTROL_VERSION, controlSchemas, decodeControl, encodeControl, type ControlMessage, type ControlMessageType } from '../src/control.js';
import { ParseFailure } from '../src/errors.js';

type Spec = (typeof controlSchemas)[ControlMessageType][never];

/** An arbitrary value that satisfies one field spec (generated from the schema itself). */
function arbitraryFor(spec: Spec): fc.Arbitrary<unknown> {
  const s = spec as { kind: string; maxChars?: number; pattern?: RegExp; min?: number; max?: number; integer?: boolean; maxBytes?: number; maxItems?: number };
  const text = (): fc.Arbitrary<string> =>
    s.pattern ? fc.stringMatching(s.pattern).filter((v) => v.length <= (s.maxChars ?? 256)) : fc.string({ maxLength: s.maxChars ?? 256 });
  switch (s.kind) {
    case 'string':
      return text();
    case 'number':
      return s.integer ? fc.integer({ min: s.min!, max: s.max! }) : fc.double({ min: s.min!, max: s.max!, noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'bytes':
      return fc.uint8Array({ maxLength: Math.min(s.maxBytes!, 512) });
    case 'strings':
      return fc.array(text(), { maxLength: Math.min(s.maxItems ?? 16, 16) });
    default:
      throw new Error(`no arbitrary for ${s.kind}`);
  }
}

const types = Object.keys(controlSchemas) as ControlMessageType[];
const arbitraryMessage: fc.Arbitrary<ControlMessage> = fc.oneof(
  ...types.map((type) => {
    const fields = Object.fromEntries(Object.entries(controlSchemas[type]).map(([name, spec]) => [name, arbitraryFor(spec as Spec)]));
    return fc.record(fields).map((f) => ({ type, ...f }) as ControlMessage);
  }),
);

function normalise(value: unknown): unknown {
  // msgpackr gives Buffers for bin fields; compare bytes, and -0 encodes as 0.
  if (value instanceof Uint8Array) return Array.from(value);
  if (typeof value === 'number' && Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(normalise);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalise(v)]));
  return value;
}

test('every control message type round-trips', () => {
  fc.assert(
    fc.property(arbitraryMessage, (message) => {
      const decoded = decodeControl(encodeControl(message));
      assert.ok(decoded.ok, decoded.ok ? '' : `failed: ${decoded.detail}`);
      assert.deepEqual(normalise(decoded.message), normalise(message));
    }),
    { numRuns: 3000 },
  );
});

test('arbitrary bytes never throw: decodeControl returns a typed failure', () => {
  const known = new Set<number>(Object.values(ParseFailure));
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const result = decodeControl(bytes);
      if (!result.ok) assert.ok(known.has(result.failure));
    }),
    { numRuns: 10_000 },
  );
});

test('arbitrary msgpack values never throw and are refused unless they match a schema', () => {
  fc.assert(
    fc.property(fc.anything({ withNullPrototype: false, withBigInt: false, withDate: true, withTypedArray: true }), (value) => {
      let bytes: Uint8Array;
      try {
        bytes = pack(value);
      } catch {
        return;
      }
      const result = decodeControl(bytes);
      assert.equal(result.ok, false);
    }),
    { numRuns: 3000 },
  );
});

test('decode refuses wrong version, unknown type, missing, extra and mistyped fields', () => {
  const good = { v: CONTROL_VERSION, t: 'revoke', sessionIds: ['0123456789abcdef'] };
  assert.equal(decodeControl(pack(good)).ok, true);
  const failure = (value: unknown): number | undefined => {
    const r = decodeControl(pack(value));
    return r.ok ? undefined : r.failure;
  };
  assert.equal(failure({ ...good, v: 2 }), ParseFailure.BadVersion);
  assert.equal(failure({ ...good, t: 'nope' }), ParseFailure.BadType);
  assert.equal(failure({ ...good, t: 'toString' }), ParseFailure.BadType);
  assert.equal(failure({ v: 1, t: 'revoke' }), ParseFailure.BadShape);
  assert.equal(failure({ ...good, extra: 1 }), ParseFailure.BadShape);
  assert.equal(failure({ ...good, sessionIds: ['not-hex'] }), ParseFailure.BadShape);
  assert.equal(failure({ v: 1, t: 'relayHeartbeat', relayId: 'a', sessions: -1, packetsPerSecond: 0, cpuFraction: 0, draining: false }), ParseFailure.BadShape);
  assert.equal(failure([1, 2, 3]), ParseFailure.BadShape);
  const trailing = new Uint8Array([...pack(good), 0x01]);
  assert.equal((decodeControl(trailing) as { failure: number }).failure, ParseFailure.BadEncoding);
  assert.equal((decodeControl(new Uint8Array(0)) as { failure: number }).failure, ParseFailure.TooShort);
  assert.equal((decodeControl(new Uint8Array(20_000)) as { failure: number }).failure, ParseFailure.TooLong);
});

test('encode refuses invalid messages with RangeError naming the field', () => {
  assert.throws(() => encodeControl({ type: 'pathReport', reporterId: 'a', targetId: 'b', rttMs: -1, jitterMs: 0, lossFraction: 0, samples: 1 }), /pathReport\.rttMs/);
});
