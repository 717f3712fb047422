/**
 * Bulk GF(2^8) multiply-accumulate kernels behind the Reed-Solomon codec.
 *
 * Both kernels work on one byte arena addressed by offsets, because WebAssembly can
 * only touch its own linear memory: the codec stages shards into the arena, runs the
 * kernel, and copies results out. Two implementations give identical bytes:
 * - {@link WasmSimdKernel}: split-nibble tables with `i8x16.swizzle` (see `wasm.ts`);
 * - {@link JsKernel}: pure TypeScript, one 256-byte row of the multiplication table per
 *   coefficient, four bytes per 32-bit word; used where WebAssembly SIMD is missing.
 *
 * Arena layout contract: offsets and lengths handed to the kernels are multiples of
 * {@link KERNEL_ALIGN_BYTES}; the first {@link KERNEL_RESERVED_BYTES} bytes belong to
 * the kernel (the WebAssembly kernel keeps all 256 coefficients' nibble tables there).
 */
import { MUL_TABLE, writeNibbleTables } from './gf256.js';
import { WASM_BLOCK_BYTES, emitGfKernelModule } from './wasm.js';

/** Alignment of every offset and length given to a kernel, in bytes. */
export const KERNEL_ALIGN_BYTES = WASM_BLOCK_BYTES;
/** Bytes at the start of the arena that belong to the kernel: 256 coefficients × 32 bytes of nibble tables. */
export const KERNEL_RESERVED_BYTES = 256 * 32;
/** Bytes a coefficient row needs per coefficient in the arena (two 16-byte nibble tables). */
export const KERNEL_COEFFICIENT_BYTES = 32;
const PAGE_BYTES = 65536;

/** Which implementation a codec runs on. */
export type KernelBackend = 'wasm-simd' | 'js';

/** A GF(2^8) multiply-accumulate engine over a growable byte arena. */
export interface GfKernel {
  /** `wasm-simd` or `js`. */
  readonly backend: KernelBackend;
  /** The arena. Replaced by {@link ensureBytes} when it grows: re-read after growing. */
  readonly bytes: Uint8Array;
  /** Grows the arena to at least `size` bytes (never shrinks). */
  ensureBytes(size: number): void;
  /**
   * Writes what {@link mulAddRow} needs for the coefficients `coefficients[0..count)` at
   * arena offset `tableOffset` ({@link KERNEL_COEFFICIENT_BYTES} × count bytes reserved).
   */
  writeRow(tableOffset: number, coefficients: Uint8Array, count: number): void;
  /** arena[dst..dst+len) ^= c · arena[src..src+len). */
  mulAdd(dst: number, src: number, len: number, c: number): void;
  /**
   * arena[dst..dst+len) ^= Σ_j c_j · arena[src + j·srcStride ..+len) for j < count, with
   * the c_j prepared by {@link writeRow} at `tableOffset`.
   */
  mulAddRow(dst: number, src: number, srcStride: number, count: number, len: number, tableOffset: number): void;
}

/**
 * The slice of the WebAssembly JS API used here. Declared locally because the project
 * compiles against lib ES2022 + @types/node, neither of which declares `WebAssembly`.
 */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(deltaPages: number): number;
}

interface KernelExports {
  memory: WasmMemory;
  mulAdd(dst: number, src: number, len: number, tbl: number): void;
  mulAddRow(dst: number, src: number, srcStride: number, count: number, len: number, tbl: number): void;
}

/** Split-nibble kernel in WebAssembly SIMD, assembled at run time by `wasm.ts`. */
export class WasmSimdKernel implements GfKernel {
  /** Always `wasm-simd`. */
  readonly backend = 'wasm-simd' as const;
  private arena: Uint8Array;
  private readonly exports: KernelExports;

  /** Throws if this runtime cannot compile the module (no WebAssembly SIMD); see {@link createKernel}. */
  constructor() {
    const api = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
    if (!api) throw new Error('WebAssembly is not available in this runtime');
    const module = new api.Module(emitGfKernelModule(1));
    this.exports = new api.Instance(module, {}).exports as KernelExports;
    this.arena = new Uint8Array(this.exports.memory.buffer);
    for (let c = 0; c < 256; c++) writeNibbleTables(c, this.arena, c * 32);
  }

  /** The WebAssembly memory as bytes. */
  get bytes(): Uint8Array {
    return this.arena;
  }

  /** Grows the WebAssembly memory in whole 64 KiB pages. */
  ensureBytes(size: number): void {
    const have = this.exports.memory.buffer.byteLength;
    if (size <= have) return;
    this.exports.memory.grow(Math.ceil((size - have) / PAGE_BYTES));
    this.arena = new Uint8Array(this.exports.memory.buffer);
  }

  /** Copies each coefficient's nibble tables next to each other. */
  writeRow(tableOffset: number, coefficients: Uint8Array, count: number): void {
    const arena = this.arena;
    for (let j = 0; j < count; j++) arena.copyWithin(tableOffset + j * 32, coefficients[j] * 32, coefficients[j] * 32 + 32);
  }

  /** One swizzle pair per 16 bytes. */
  mulAdd(dst: number, src: number, len: number, c: number): void {
    if (c !== 0) this.exports.mulAdd(dst, src, len, c * 32);
  }

  /** Accumulates in registers across all sources, storing each 32-byte block once. */
  mulAddRow(dst: number, src: number, srcStride: number, count: number, len: number, tableOffset: number): void {
    this.exports.mulAddRow(dst, src, srcStride, count, len, tableOffset);
  }
}

/** Pure TypeScript kernel: one multiplication-table row per coefficient, four bytes per word. */
export class JsKernel implements GfKernel {
  /** Always `js`. */
  readonly backend = 'js' as const;
  private arena = new Uint8Array(KERNEL_RESERVED_BYTES);
  private words = new Uint32Array(this.arena.buffer);

  /** The arena. */
  get bytes(): Uint8Array {
    return this.arena;
  }

  /** Reallocates and copies; growth is geometric so a steady state never reallocates. */
  ensureBytes(size: number): void {
    if (size <= this.arena.length) return;
    const next = new Uint8Array(Math.max(size, this.arena.length * 2));
    next.set(this.arena);
    this.arena = next;
    this.words = new Uint32Array(next.buffer);
  }

  /** Stores the coefficients themselves; the table rows come from {@link MUL_TABLE}. */
  writeRow(tableOffset: number, coefficients: Uint8Array, count: number): void {
    this.arena.set(coefficients.subarray(0, count), tableOffset);
  }

  /** Word-at-a-time table lookups; byte order does not matter since each byte maps independently. */
  mulAdd(dst: number, src: number, len: number, c: number): void {
    if (c === 0) return;
    const words = this.words;
    const base = c << 8;
    const table = MUL_TABLE;
    let d = dst >>> 2;
    const end = (src + len) >>> 2;
    for (let s = src >>> 2; s < end; s++, d++) {
      const w = words[s];
      words[d] ^=
        table[base | (w & 0xff)] |
        (table[base | ((w >>> 8) & 0xff)] << 8) |
        (table[base | ((w >>> 16) & 0xff)] << 16) |
        (table[base | (w >>> 24)] << 24);
    }
  }

  /** A {@link mulAdd} per source; the JavaScript engine gains nothing from fusing them. */
  mulAddRow(dst: number, src: number, srcStride: number, count: number, len: number, tableOffset: number): void {
    for (let j = 0; j < count; j++) this.mulAdd(dst, src + j * srcStride, len, this.arena[tableOffset + j]);
  }
}

/**
 * The fastest kernel this runtime supports: WebAssembly SIMD when it compiles, else the
 * pure TypeScript one. `prefer: 'js'` forces the fallback (tests compare the two).
 */
export function createKernel(prefer: 'auto' | KernelBackend = 'auto'): GfKernel {
  if (prefer === 'js') return new JsKernel();
  try {
    return new WasmSimdKernel();
  } catch (error) {
    if (prefer === 'wasm-simd') throw error;
    return new JsKernel();
  }
}
