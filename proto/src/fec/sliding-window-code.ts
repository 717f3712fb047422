/**
 * The arithmetic of the sliding-window random linear code (RLC) over GF(2^8), in the
 * approach of RFC 8681 ("Sliding Window Random Linear Code (RLC) Forward Erasure
 * Correction (FEC) Schemes for FECFRAME") and Tetrys (RFC 9407's sliding-window
 * family): source packets carry a sequence number and go out unchanged; a repair
 * packet covers a window of consecutive source packets (first source seq, count) and
 * carries their linear combination with coefficients drawn from a seed it names.
 *
 * Symbols: as in the Reed-Solomon codec (`rs.ts`), source packet s enters the code as
 * the vector v_s = [u16 length, big-endian][payload][zeros…], zero-extended as far as
 * needed. A repair over window W with seed σ carries Σ_{s ∈ W} c(σ, s) · v_s truncated
 * to 2 + the window's longest payload (everything beyond is zero). Because padding is
 * zeros, rows of different lengths combine by zero-extending the shorter one, and a
 * rebuilt vector carries its own exact length; a rebuilt vector whose prefix exceeds it
 * or whose padding is not zero is refused, never delivered.
 *
 * Coefficients: c(σ, s) is a 32-bit hash of (seed, source seq) mapped to 1–255
 * ({@link slidingWindowCoefficient}). Unlike RFC 8681's TinyMT32 stream indexed by the
 * position in the window, it depends on the absolute source seq, so a source has the
 * same coefficient in a repair whatever the window's start: both ends compute it
 * without agreeing on window boundaries. Never zero, so every repair really covers its
 * whole window (RFC 8681's density threshold at its maximum).
 *
 * Capacity: a set of lost sources is rebuilt exactly when the received repairs' rows,
 * restricted to those sources, have full column rank. With random coefficients a
 * square system of n unknowns that the windows allow (each lost source matched to a
 * distinct covering repair) is singular with probability about 1/255 (at most n/255 by
 * Schwartz–Zippel), the price of a rateless code over GF(2^8).
 *
 * Performance: rows are staged into the arena of the same GF(2^8) kernel as the
 * Reed-Solomon codec (`kernel.ts`: WebAssembly SIMD, pure TypeScript fallback) and
 * multiplied there; one {@link SlidingWindowCodec} keeps no per-flow state and serves
 * every encoder and decoder of a thread ({@link sharedSlidingWindowCodec}).
 */
import { gfInv } from './gf256.js';
import { KERNEL_ALIGN_BYTES, KERNEL_COEFFICIENT_BYTES, KERNEL_RESERVED_BYTES, createKernel, type GfKernel, type KernelBackend } from './kernel.js';
import { FEC_LENGTH_PREFIX_BYTES, FEC_MAX_PAYLOAD_BYTES, copyPrefix } from './rs.js';

/** Most source packets one repair covers (its window's count), and the most a decoder tracks: the count fits the header's u8 data-count field. */
export const SLIDING_WINDOW_PACKETS_MAX = 255;

/**
 * The coefficient of source `sourceSeq` (u32) in the repair with seed `seed` (u32): a
 * field element from 1 to 255. A murmur3-style 32-bit finalizer over a mix of both, so
 * consecutive seeds and seqs give unrelated coefficients. Allocates nothing.
 */
export function slidingWindowCoefficient(seed: number, sourceSeq: number): number {
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul((sourceSeq | 0) ^ 0x7f4a7c15, 0x85ebca77)) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return 1 + ((h >>> 0) % 255);
}

/**
 * Writes source payload[0..length) as its code vector [u16 length][payload] at dst[0..)
 * and returns the vector's length (length + {@link FEC_LENGTH_PREFIX_BYTES}).
 */
export function writeSourceVector(payload: Uint8Array, length: number, dst: Uint8Array): number {
  dst[0] = length >>> 8;
  dst[1] = length & 0xff;
  copyPrefix(payload, length, dst, FEC_LENGTH_PREFIX_BYTES);
  return length + FEC_LENGTH_PREFIX_BYTES;
}

/**
 * The payload length a rebuilt code vector row[0..rowLength) describes, or -1 when it
 * cannot be one source's vector: shorter than the prefix, a prefix beyond the row, or
 * non-zero padding after the payload (the signature of garbled or mismatched inputs).
 */
export function sourceVectorPayloadLength(row: Uint8Array, rowLength: number): number {
  if (rowLength < FEC_LENGTH_PREFIX_BYTES) return -1;
  const length = (row[0] << 8) | row[1];
  const end = FEC_LENGTH_PREFIX_BYTES + length;
  if (end > rowLength) return -1;
  for (let b = end; b < rowLength; b++) if (row[b] !== 0) return -1;
  return length;
}

/** Options for {@link SlidingWindowCodec}. */
export interface SlidingWindowCodecInit {
  /** `auto` (default): WebAssembly SIMD when available, else pure TypeScript. */
  readonly backend?: 'auto' | KernelBackend;
}

function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

/**
 * Row arithmetic on code vectors held in caller buffers (the encoder's and decoder's
 * pools): multiply-accumulate of many rows into one, and scaling. Keeps no per-flow
 * state; its arena grows to the largest window seen and stays there.
 */
export class SlidingWindowCodec {
  private readonly kernel: GfKernel;

  /** @param init backend choice; defaults to the fastest available. */
  constructor(init: SlidingWindowCodecInit = {}) {
    this.kernel = createKernel(init.backend ?? 'auto');
  }

  /** The kernel in use: `wasm-simd` or `js`. */
  get backend(): KernelBackend {
    return this.kernel.backend;
  }

  /**
   * dst ^= Σ_j coefficients[j] · rows[j] for j < count, where dst holds dst[0..dstLength)
   * (0: dst counts as all zeros, which is how a repair is encoded) and row j is
   * rows[j][0..rowLengths[j]); shorter operands are zero-extended. Writes
   * dst[0..L) and returns L, the longest operand length; dst must hold L bytes.
   */
  accumulate(dst: Uint8Array, dstLength: number, rows: readonly Uint8Array[], rowLengths: ArrayLike<number>, coefficients: Uint8Array, count: number): number {
    let length = dstLength;
    for (let j = 0; j < count; j++) if (rowLengths[j] > length) length = rowLengths[j];
    if (length > FEC_LENGTH_PREFIX_BYTES + FEC_MAX_PAYLOAD_BYTES) throw new RangeError(`code vector of ${length} bytes exceeds ${FEC_LENGTH_PREFIX_BYTES + FEC_MAX_PAYLOAD_BYTES}`);
    if (dst.length < length) throw new RangeError(`accumulate: dst holds ${dst.length} bytes; the rows need ${length}`);
    if (count === 0) return dstLength;
    const stride = roundUp(Math.max(length, 1), KERNEL_ALIGN_BYTES);
    const outAt = KERNEL_RESERVED_BYTES;
    const rowsAt = outAt + stride;
    const tables = rowsAt + count * stride;
    this.kernel.ensureBytes(tables + count * KERNEL_COEFFICIENT_BYTES);
    const arena = this.kernel.bytes;
    this.stage(arena, outAt, dst, dstLength, stride);
    for (let j = 0; j < count; j++) this.stage(arena, rowsAt + j * stride, rows[j], rowLengths[j], stride);
    this.kernel.writeRow(tables, coefficients, count);
    this.kernel.mulAddRow(outAt, rowsAt, stride, count, stride, tables);
    this.unstage(arena, outAt, dst, length);
    return length;
  }

  /**
   * dst ^= c · src with dst[0..dstLength) and src[0..srcLength), zero-extending the
   * shorter; returns the new length of dst (the longer of the two).
   */
  addScaled(dst: Uint8Array, dstLength: number, src: Uint8Array, srcLength: number, c: number): number {
    if (c === 0) return dstLength;
    const length = dstLength > srcLength ? dstLength : srcLength;
    if (dst.length < length) throw new RangeError(`addScaled: dst holds ${dst.length} bytes; the rows need ${length}`);
    const stride = roundUp(Math.max(length, 1), KERNEL_ALIGN_BYTES);
    const dstAt = KERNEL_RESERVED_BYTES;
    const srcAt = dstAt + stride;
    this.kernel.ensureBytes(srcAt + stride);
    const arena = this.kernel.bytes;
    this.stage(arena, dstAt, dst, dstLength, stride);
    this.stage(arena, srcAt, src, srcLength, stride);
    this.kernel.mulAdd(dstAt, srcAt, stride, c);
    this.unstage(arena, dstAt, dst, length);
    return length;
  }

  /** row[0..length) *= c, for c ≠ 0 (scaling by 1 is free). */
  scale(row: Uint8Array, length: number, c: number): void {
    if (c === 1 || length === 0) return;
    if (c === 0) throw new RangeError('scale: a code row cannot be scaled by 0');
    const stride = roundUp(length, KERNEL_ALIGN_BYTES);
    const outAt = KERNEL_RESERVED_BYTES;
    const srcAt = outAt + stride;
    this.kernel.ensureBytes(srcAt + stride);
    const arena = this.kernel.bytes;
    arena.fill(0, outAt, outAt + stride);
    this.stage(arena, srcAt, row, length, stride);
    this.kernel.mulAdd(outAt, srcAt, stride, c);
    this.unstage(arena, outAt, row, length);
  }

  /** row[0..length) /= c: the normalization of a pivot to 1. */
  divide(row: Uint8Array, length: number, c: number): void {
    this.scale(row, length, gfInv(c));
  }

  private stage(arena: Uint8Array, at: number, src: Uint8Array, length: number, stride: number): void {
    if (length > 0) copyPrefix(src, length, arena, at);
    arena.fill(0, at + length, at + stride);
  }

  private unstage(arena: Uint8Array, at: number, dst: Uint8Array, length: number): void {
    // A view per row operation: rows are only combined for repairs and losses.
    if (length < 64) for (let b = 0; b < length; b++) dst[b] = arena[at + b];
    else dst.set(arena.subarray(at, at + length));
  }
}

let sharedCodec: SlidingWindowCodec | undefined;

/**
 * The thread's shared sliding-window codec (fastest backend), created on first use:
 * what an encoder or decoder uses when given none. It keeps no per-flow state, so one
 * serves every flow and saves each the WebAssembly compile and arena.
 */
export function sharedSlidingWindowCodec(): SlidingWindowCodec {
  sharedCodec ??= new SlidingWindowCodec();
  return sharedCodec;
}
