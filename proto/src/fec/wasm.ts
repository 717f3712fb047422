/**
 * Emits, at run time, a tiny WebAssembly module with the GF(2^8) multiply-accumulate
 * kernel used by the Reed-Solomon codec. It is assembled here byte by byte (a few dozen
 * opcodes) so that the repository needs no WebAssembly toolchain and ships no binary.
 *
 * The kernel is the split-nibble technique (Plank, Greenan & Miller, "Screaming fast
 * Galois field arithmetic using Intel SIMD instructions", FAST 2013): for a
 * coefficient c, two 16-byte tables hold c·x and c·(x << 4) for x = 0..15, and
 * c·b = low[b & 15] ^ high[b >> 4]. `i8x16.swizzle` performs sixteen such lookups in
 * one instruction, so each 16 bytes of source cost a load, two shuffles, a shift, an
 * AND and three XORs.
 *
 * Exported functions (all addresses are byte offsets into the exported memory):
 * - `mulAdd(dst, src, len, tbl)`: dst[0..len) ^= c · src[0..len), where `tbl` points at
 *   c's 32 bytes of nibble tables and `len` is a multiple of {@link WASM_BLOCK_BYTES}.
 * - `mulAddRow(dst, src, srcStride, count, len, tbl)`: dst[0..len) ^= Σ_j c_j · src_j
 *   for count sources src_j = src + j·srcStride, with c_j's tables at tbl + 32·j. One
 *   pass that keeps the accumulator in a register: the encoder's hot loop.
 *
 * Binary format references: WebAssembly Core Specification §5 (binary format) and the
 * SIMD proposal's BinarySIMD.md (0xFD prefix, LEB128 sub-opcodes).
 */

/** Bytes processed per loop iteration; callers pad lengths to a multiple of this. */
export const WASM_BLOCK_BYTES = 32;

// Core opcodes (spec §5.4).
const BLOCK = 0x02;
const LOOP = 0x03;
const END = 0x0b;
const BR = 0x0c;
const BR_IF = 0x0d;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const I32_CONST = 0x41;
const I32_GE_U = 0x4f;
const I32_ADD = 0x6a;
const BLOCKTYPE_EMPTY = 0x40;
const I32 = 0x7f;
const V128 = 0x7b;
// SIMD opcodes: 0xFD prefix followed by the LEB128 sub-opcode (all < 0x80 here).
const SIMD = 0xfd;
const V128_LOAD = 0x00;
const V128_STORE = 0x0b;
const I8X16_SWIZZLE = 0x0e;
const I8X16_SPLAT = 0x0f;
const V128_AND = 0x4e;
const V128_XOR = 0x51;
const I8X16_SHR_U = 0x6d;
/** log2 of the alignment hint for v128 accesses: 16 bytes, which the codec guarantees. */
const ALIGN_16 = 4;

function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/** `i32.const` takes a signed LEB128 immediate. */
function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  while (true) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

const get = (i: number): number[] => [LOCAL_GET, i];
const set = (i: number): number[] => [LOCAL_SET, i];
const i32c = (v: number): number[] => [I32_CONST, ...sleb(v)];
const simd = (op: number): number[] => [SIMD, op];
const load = (offset: number): number[] => [SIMD, V128_LOAD, ALIGN_16, ...uleb(offset)];
const store = (offset: number): number[] => [SIMD, V128_STORE, ALIGN_16, ...uleb(offset)];

/**
 * c · v for the vector on top of the stack held in local `v`:
 * swizzle(lo, v & 0x0f) ^ swizzle(hi, v >>u 4).
 */
function mulNibbles(lo: number[], hi: number[], v: number, mask: number): number[] {
  return [
    ...lo, ...get(v), ...get(mask), ...simd(V128_AND), ...simd(I8X16_SWIZZLE),
    ...hi, ...get(v), ...i32c(4), ...simd(I8X16_SHR_U), ...simd(I8X16_SWIZZLE),
    ...simd(V128_XOR),
  ];
}

function mulAddBody(): number[] {
  // params: 0 dst, 1 src, 2 len, 3 tbl; locals: 4 end (i32), 5 lo, 6 hi, 7 mask, 8 v (v128)
  const body: number[] = [
    ...get(3), ...load(0), ...set(5),
    ...get(3), ...load(16), ...set(6),
    ...i32c(0x0f), ...simd(I8X16_SPLAT), ...set(7),
    ...get(1), ...get(2), I32_ADD, ...set(4),
    BLOCK, BLOCKTYPE_EMPTY, LOOP, BLOCKTYPE_EMPTY,
    ...get(1), ...get(4), I32_GE_U, BR_IF, 1,
  ];
  for (let offset = 0; offset < WASM_BLOCK_BYTES; offset += 16) {
    body.push(
      ...get(1), ...load(offset), ...set(8),
      ...get(0),
      ...get(0), ...load(offset),
      ...mulNibbles(get(5), get(6), 8, 7),
      ...simd(V128_XOR),
      ...store(offset),
    );
  }
  body.push(
    ...get(0), ...i32c(WASM_BLOCK_BYTES), I32_ADD, ...set(0),
    ...get(1), ...i32c(WASM_BLOCK_BYTES), I32_ADD, ...set(1),
    BR, 0, END, END, END,
  );
  return [...vec([[1, I32], [4, V128]]), ...body];
}

function mulAddRowBody(): number[] {
  // params: 0 dst, 1 src, 2 srcStride, 3 count, 4 len, 5 tbl
  // locals: 6 end, 7 j, 8 p (source cursor), 9 t (table cursor) : i32
  //         10 mask, 11 v, 12 lo, 13 hi, 14.. one accumulator per 16-byte lane : v128
  const lanes = WASM_BLOCK_BYTES / 16;
  const acc = (lane: number): number => 14 + lane;
  const body: number[] = [
    ...i32c(0x0f), ...simd(I8X16_SPLAT), ...set(10),
    ...get(1), ...get(4), I32_ADD, ...set(6),
    BLOCK, BLOCKTYPE_EMPTY, LOOP, BLOCKTYPE_EMPTY, // over blocks of WASM_BLOCK_BYTES
    ...get(1), ...get(6), I32_GE_U, BR_IF, 1,
  ];
  for (let lane = 0; lane < lanes; lane++) body.push(...get(0), ...load(lane * 16), ...set(acc(lane)));
  body.push(
    ...get(1), ...set(8),
    ...get(5), ...set(9),
    ...i32c(0), ...set(7),
    BLOCK, BLOCKTYPE_EMPTY, LOOP, BLOCKTYPE_EMPTY, // over sources
    ...get(7), ...get(3), I32_GE_U, BR_IF, 1,
    ...get(9), ...load(0), ...set(12),
    ...get(9), ...load(16), ...set(13),
  );
  for (let lane = 0; lane < lanes; lane++) {
    body.push(
      ...get(8), ...load(lane * 16), ...set(11),
      ...get(acc(lane)),
      ...mulNibbles(get(12), get(13), 11, 10),
      ...simd(V128_XOR), ...set(acc(lane)),
    );
  }
  body.push(
    ...get(8), ...get(2), I32_ADD, ...set(8),
    ...get(9), ...i32c(32), I32_ADD, ...set(9),
    ...get(7), ...i32c(1), I32_ADD, ...set(7),
    BR, 0, END, END,
  );
  for (let lane = 0; lane < lanes; lane++) body.push(...get(0), ...get(acc(lane)), ...store(lane * 16));
  body.push(
    ...get(0), ...i32c(WASM_BLOCK_BYTES), I32_ADD, ...set(0),
    ...get(1), ...i32c(WASM_BLOCK_BYTES), I32_ADD, ...set(1),
    BR, 0, END, END, END,
  );
  return [...vec([[4, I32], [4 + lanes, V128]]), ...body];
}

/**
 * The module's bytes. Pure function of nothing: the same bytes on every call.
 * @param initialPages initial size of the exported memory in 64 KiB pages
 */
export function emitGfKernelModule(initialPages: number): Uint8Array {
  const funcType = (params: number): number[] => [0x60, ...vec(new Array<number[]>(params).fill([I32])), ...vec([])];
  const types = section(1, vec([funcType(4), funcType(6)]));
  const functions = section(3, vec([uleb(0), uleb(1)]));
  const memory = section(5, vec([[0x00, ...uleb(initialPages)]]));
  const exports = section(7, vec([
    [...name('memory'), 0x02, 0],
    [...name('mulAdd'), 0x00, 0],
    [...name('mulAddRow'), 0x00, 1],
  ]));
  const code = (body: number[]): number[] => [...uleb(body.length), ...body];
  const codes = section(10, vec([code(mulAddBody()), code(mulAddRowBody())]));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...types, ...functions, ...memory, ...exports, ...codes]);
}
