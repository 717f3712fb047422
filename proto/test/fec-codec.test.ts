/**
 * Reed-Solomon codec: round trips for any ≤ r erasures over random shapes and
 * mixed-length payloads, refusal (never a wrong packet) beyond r, identical bytes from
 * the WebAssembly SIMD and pure TypeScript kernels, and agreement with the textbook
 * baseline used by the benchmark.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TextbookReedSolomon } from '../src/fec/textbook-rs.js';
import { gfInv, gfMul, invertMatrix } from '../src/fec/gf256.js';
import { createKernel } from '../src/fec/kernel.js';
import { FEC_MAX_SHARDS, RECONSTRUCT_INCONSISTENT, RECONSTRUCT_INSUFFICIENT, ReedSolomon } from '../src/fec/rs.js';
import { emitGfKernelModule } from '../src/fec/wasm.js';

const wasm = new ReedSolomon({ backend: 'auto' });
const js = new ReedSolomon({ backend: 'js' });
const TIME_LIMIT_MS = 8000;

/** A group: k data payloads of mixed lengths, r parity, and an erasure choice. */
const groupArb = fc
  .record({ k: fc.integer({ min: 1, max: 24 }), r: fc.integer({ min: 0, max: 10 }) })
  .chain(({ k, r }) =>
    fc.record({
      k: fc.constant(k),
      r: fc.constant(r),
      data: fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { minLength: k, maxLength: k }),
      // A permutation key per shard: the first e shards in key order are erased.
      order: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: k + r, maxLength: k + r }),
      extra: fc.integer({ min: 1, max: 4 }),
    }),
  );

function encodeGroup(codec: ReedSolomon, data: Uint8Array[], k: number, r: number): Uint8Array[] {
  const maxLen = data.reduce((m, d) => Math.max(m, d.length), 0);
  const parity = Array.from({ length: r }, () => new Uint8Array(maxLen + 2));
  const shardBytes = codec.encode(data, k, r, parity);
  assert.equal(shardBytes, maxLen + 2);
  return parity;
}

function erasedOrder(order: number[]): number[] {
  return order.map((key, i) => [key, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([, i]) => i);
}

test('WebAssembly SIMD kernel is available on this runtime (Node 20)', () => {
  assert.equal(wasm.backend, 'wasm-simd');
  assert.equal(js.backend, 'js');
});

test('GF(2^8): inverses, distributivity, matrix inversion', () => {
  for (let a = 1; a < 256; a++) assert.equal(gfMul(a, gfInv(a)), 1);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), (a, b, c) => gfMul(a, b ^ c) === (gfMul(a, b) ^ gfMul(a, c))),
  );
  const m = Uint8Array.from([2, 3, 1, 1, 4, 5, 7, 1, 9]);
  const original = Uint8Array.from(m);
  assert.ok(invertMatrix(m, 3, new Uint8Array(9)));
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      let sum = 0;
      for (let x = 0; x < 3; x++) sum ^= gfMul(original[i * 3 + x], m[x * 3 + j]);
      assert.equal(sum, i === j ? 1 : 0);
    }
  }
  assert.equal(invertMatrix(Uint8Array.from([1, 1, 1, 1]), 2, new Uint8Array(4)), false);
});

test('the emitted WebAssembly module is deterministic', () => {
  assert.deepEqual(emitGfKernelModule(1), emitGfKernelModule(1));
});

test('any ≤ r erasures of mixed-length payloads decode to the exact originals (both kernels)', () => {
  fc.assert(
    fc.property(groupArb, ({ k, r, data, order }) => {
      const erasures = Math.min(r, Math.floor(order[0] * (r + 1)));
      for (const codec of [wasm, js]) {
        const parity = encodeGroup(codec, data, k, r);
        const shards: (Uint8Array | undefined)[] = [...data, ...parity];
        for (const i of erasedOrder(order).slice(0, erasures)) shards[i] = undefined;
        const maxLen = data.reduce((m, d) => Math.max(m, d.length), 0);
        const recovered = Array.from({ length: k }, () => new Uint8Array(maxLen));
        const lengths = new Int32Array(k).fill(-1);
        const missingData = shards.slice(0, k).filter((s) => s === undefined).length;
        assert.equal(codec.reconstruct(k, r, shards, recovered, lengths), missingData);
        for (let j = 0; j < k; j++) {
          if (shards[j] !== undefined) continue;
          assert.equal(lengths[j], data[j].length);
          assert.deepEqual(recovered[j].subarray(0, lengths[j]), data[j]);
        }
      }
    }),
    { numRuns: 300, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
});

test('more than r erasures never yield a packet', () => {
  fc.assert(
    fc.property(groupArb, ({ k, r, data, order, extra }) => {
      const erasures = Math.min(k + r, r + extra);
      const parity = encodeGroup(wasm, data, k, r);
      const shards: (Uint8Array | undefined)[] = [...data, ...parity];
      for (const i of erasedOrder(order).slice(0, erasures)) shards[i] = undefined;
      const recovered = Array.from({ length: k }, () => new Uint8Array(400));
      const lengths = new Int32Array(k).fill(-1);
      const missingData = shards.slice(0, k).filter((s) => s === undefined).length;
      const result = wasm.reconstruct(k, r, shards, recovered, lengths);
      if (missingData === 0) assert.equal(result, 0);
      else assert.equal(result, RECONSTRUCT_INSUFFICIENT);
      assert.ok(lengths.every((l) => l === -1), 'no length is reported');
    }),
    { numRuns: 300, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
});

test('WebAssembly SIMD and pure TypeScript kernels give identical parity bytes', () => {
  fc.assert(
    fc.property(groupArb, ({ k, r, data }) => {
      const a = encodeGroup(wasm, data, k, r);
      const b = encodeGroup(js, data, k, r);
      assert.deepEqual(a, b);
    }),
    { numRuns: 300, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
  // The raw kernels too, on unaligned-looking contents and every coefficient.
  const w = createKernel('wasm-simd');
  const j = createKernel('js');
  for (const kernel of [w, j]) kernel.ensureBytes(1 << 16);
  for (let c = 0; c < 256; c++) {
    for (const kernel of [w, j]) {
      for (let i = 0; i < 256; i++) kernel.bytes[16384 + i] = (i * 151 + c) & 0xff;
      kernel.bytes.fill(c, 32768, 32768 + 256);
      kernel.mulAdd(32768, 16384, 256, c);
    }
    assert.deepEqual(w.bytes.subarray(32768, 32768 + 256), j.bytes.subarray(32768, 32768 + 256));
  }
});

test('the textbook baseline computes the same code', () => {
  const baseline = new TextbookReedSolomon();
  fc.assert(
    fc.property(groupArb, ({ k, r, data }) => {
      const ours = encodeGroup(wasm, data, k, r);
      const maxLen = data.reduce((m, d) => Math.max(m, d.length), 0);
      const theirs = Array.from({ length: r }, () => new Uint8Array(maxLen + 2));
      baseline.encode(data, k, r, theirs);
      assert.deepEqual(ours, theirs);
    }),
    { numRuns: 100, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
});

test('k + r = 255, the widest group, round-trips with r erasures', () => {
  const k = 200;
  const r = FEC_MAX_SHARDS - k;
  const data = Array.from({ length: k }, (_, j) => Uint8Array.from({ length: 20 + (j % 37) }, (_, i) => (i * 13 + j) & 0xff));
  const parity = encodeGroup(wasm, data, k, r);
  const shards: (Uint8Array | undefined)[] = [...data, ...parity];
  for (let j = 0; j < r; j++) shards[j * 3] = undefined;
  const recovered = Array.from({ length: k }, () => new Uint8Array(64));
  const lengths = new Int32Array(k);
  assert.equal(wasm.reconstruct(k, r, shards, recovered, lengths), shards.slice(0, k).filter((s) => s === undefined).length);
  for (let j = 0; j < k; j++) if (shards[j] === undefined) assert.deepEqual(recovered[j].subarray(0, lengths[j]), data[j]);
  assert.throws(() => wasm.encode(data, k, r + 1, [...parity, new Uint8Array(100)]), RangeError);
});

test('shards that contradict each other are refused, and arbitrary shards never throw', () => {
  const data = [Uint8Array.of(1, 2, 3), Uint8Array.of(4)];
  const parity = encodeGroup(wasm, data, 2, 2);
  const recovered = [new Uint8Array(8), new Uint8Array(8)];
  const lengths = new Int32Array(2);
  // Parity shards of different lengths cannot be from one group.
  assert.equal(wasm.reconstruct(2, 2, [undefined, undefined, parity[0], parity[1].subarray(0, 4)], recovered, lengths), RECONSTRUCT_INCONSISTENT);
  // A data shard longer than the parity allows.
  assert.equal(wasm.reconstruct(2, 2, [new Uint8Array(9), undefined, parity[0], parity[1]], recovered, lengths), RECONSTRUCT_INCONSISTENT);
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 4 }),
      fc.array(fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined }), { minLength: 10, maxLength: 10 }),
      (k, r, shards) => {
        const out = Array.from({ length: k }, () => new Uint8Array(64));
        const result = wasm.reconstruct(k, r, shards.slice(0, k + r), out, new Int32Array(k));
        assert.ok(result >= RECONSTRUCT_INCONSISTENT && result <= r);
      },
    ),
    { numRuns: 500, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
});
