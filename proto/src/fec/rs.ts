/**
 * Systematic Reed-Solomon erasure codec over GF(2^8) for packets of mixed lengths.
 *
 * Code: data shards are sent as they are; parity row i has coefficients
 * 1 / ((k + i) ⊕ j) for data column j (a Cauchy matrix, see `gf256.ts`), so the
 * generator [I; C] is MDS: any k of the k + r shards rebuild the k data shards.
 * k + r ≤ 255 because the shard index is one byte on the wire.
 *
 * Mixed lengths: parity is computed over each data packet prefixed with its length as
 * two big-endian bytes and zero-padded to the group's longest, so every parity shard is
 * `2 + max(payload length)` bytes and a rebuilt data shard carries its own exact
 * length. A rebuilt shard whose prefix or padding is inconsistent is rejected, which is
 * how a garbled group (e.g. shards of two groups mixed up) fails instead of producing
 * a wrong packet.
 *
 * Performance: shards are staged into the kernel's arena and multiplied there (see
 * `kernel.ts`); matrices are built once per (k, r) and inverted once per erasure
 * pattern (cached). After warm-up, encode and reconstruct allocate nothing except a
 * cache key string per reconstruct call.
 */
import { cauchyCoefficient, invertMatrix } from './gf256.js';
import { KERNEL_ALIGN_BYTES, KERNEL_COEFFICIENT_BYTES, KERNEL_RESERVED_BYTES, createKernel, type GfKernel, type KernelBackend } from './kernel.js';

/** Most shards (data + parity) in one group: the shard index is a u8 and 255 is the field's size minus zero. */
export const FEC_MAX_SHARDS = 255;
/** Bytes of the length prefix that parity carries for every data shard (big-endian u16). */
export const FEC_LENGTH_PREFIX_BYTES = 2;
/** Longest data payload the length prefix can describe, in bytes. */
export const FEC_MAX_PAYLOAD_BYTES = 65535;
/** Largest payload a FEC sender accepts unless configured otherwise, in bytes. */
export const FEC_MAX_PAYLOAD_BYTES_DEFAULT = 1400;
/** {@link ReedSolomon.reconstruct} result: fewer than k shards of the group are present. */
export const RECONSTRUCT_INSUFFICIENT = -1;
/** {@link ReedSolomon.reconstruct} result: the shards contradict each other (lengths, prefix or padding). */
export const RECONSTRUCT_INCONSISTENT = -2;
/** Cached erasure-pattern inverses kept before the cache is cleared and rebuilt. */
const DECODE_CACHE_ENTRIES_MAX = 1024;

/** Options for {@link ReedSolomon}. */
export interface ReedSolomonInit {
  /** `auto` (default): WebAssembly SIMD when available, else pure TypeScript. */
  readonly backend?: 'auto' | KernelBackend;
}

function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

/** Below this many bytes a plain loop copies faster than creating a subarray view for `set`. */
const VIEW_COPY_BYTES_MIN = 64;

/**
 * Copies src[0..length) to dst at `at`. Short copies loop so the hot path creates no
 * view object; long ones use a transient view, since `set` is ~10× faster per byte
 * and the copy then dominates the view's cost.
 */
export function copyPrefix(src: Uint8Array, length: number, dst: Uint8Array, at: number): void {
  if (length === src.length) dst.set(src, at);
  else if (length < VIEW_COPY_BYTES_MIN) for (let b = 0; b < length; b++) dst[at + b] = src[b];
  else dst.set(src.subarray(0, length), at);
}

function checkShape(k: number, r: number): void {
  if (!Number.isInteger(k) || !Number.isInteger(r) || k < 1 || r < 0 || k + r > FEC_MAX_SHARDS) {
    throw new RangeError(`Reed-Solomon shape (k=${k}, r=${r}) is invalid: need integers k ≥ 1, r ≥ 0, k + r ≤ ${FEC_MAX_SHARDS}`);
  }
}

/**
 * The codec. One instance can serve many senders and receivers on one thread (it keeps
 * no per-group state); its arena grows to the largest group seen and stays there.
 */
export class ReedSolomon {
  private readonly kernel: GfKernel;
  /** Scratch for one coefficient row (≤ 255 coefficients). */
  private readonly row = new Uint8Array(FEC_MAX_SHARDS);
  private readonly missing = new Int32Array(FEC_MAX_SHARDS);
  private readonly presentData = new Int32Array(FEC_MAX_SHARDS);
  private readonly chosenParity = new Int32Array(FEC_MAX_SHARDS);
  private readonly matrixScratch = new Uint8Array(FEC_MAX_SHARDS * FEC_MAX_SHARDS);
  private readonly inverseCache = new Map<string, Uint8Array>();
  /** (k, r, table offset) whose encode tables are currently in the arena; -1 when none. */
  private encodeTablesKey = -1;

  /** @param init backend choice; defaults to the fastest available. */
  constructor(init: ReedSolomonInit = {}) {
    this.kernel = createKernel(init.backend ?? 'auto');
  }

  /** The kernel in use: `wasm-simd` or `js`. */
  get backend(): KernelBackend {
    return this.kernel.backend;
  }

  /** Length in bytes of every parity shard for data payloads whose longest is `maxPayloadBytes`. */
  static parityBytes(maxPayloadBytes: number): number {
    return FEC_LENGTH_PREFIX_BYTES + maxPayloadBytes;
  }

  /**
   * Computes the r parity shards of data[0..k) into parity[0..r), each of which must
   * hold at least {@link parityBytes}(longest payload) bytes. Returns that length; bytes
   * of parity[i] beyond it are left untouched.
   * @param dataLengths when given, payload j is data[j][0..dataLengths[j]) (lets callers
   *   pass whole pooled buffers instead of allocating views); default data[j].length
   */
  encode(data: readonly Uint8Array[], k: number, r: number, parity: readonly Uint8Array[], dataLengths?: ArrayLike<number>): number {
    checkShape(k, r);
    let maxLen = 0;
    for (let j = 0; j < k; j++) {
      const len = dataLengths ? dataLengths[j] : data[j].length;
      if (len > maxLen) maxLen = len;
    }
    if (maxLen > FEC_MAX_PAYLOAD_BYTES) throw new RangeError(`FEC payload of ${maxLen} bytes exceeds ${FEC_MAX_PAYLOAD_BYTES}`);
    const shardBytes = FEC_LENGTH_PREFIX_BYTES + maxLen;
    for (let i = 0; i < r; i++) {
      if (parity[i].length < shardBytes) throw new RangeError(`parity buffer ${i} holds ${parity[i].length} bytes; the group needs ${shardBytes}`);
    }
    if (r === 0) return shardBytes;
    const stride = roundUp(shardBytes, KERNEL_ALIGN_BYTES);
    const dataBase = KERNEL_RESERVED_BYTES;
    const parityBase = dataBase + k * stride;
    const tables = parityBase + r * stride;
    this.kernel.ensureBytes(tables + r * k * KERNEL_COEFFICIENT_BYTES);
    const tablesKey = (tables * 256 + k) * 256 + r;
    if (this.encodeTablesKey !== tablesKey) {
      for (let i = 0; i < r; i++) {
        for (let j = 0; j < k; j++) this.row[j] = cauchyCoefficient(k, i, j);
        this.kernel.writeRow(tables + i * k * KERNEL_COEFFICIENT_BYTES, this.row, k);
      }
      this.encodeTablesKey = tablesKey;
    }
    const arena = this.kernel.bytes;
    for (let j = 0; j < k; j++) this.stageData(arena, dataBase + j * stride, data[j], dataLengths ? dataLengths[j] : data[j].length, stride);
    arena.fill(0, parityBase, parityBase + r * stride);
    for (let i = 0; i < r; i++) {
      this.kernel.mulAddRow(parityBase + i * stride, dataBase, stride, k, stride, tables + i * k * KERNEL_COEFFICIENT_BYTES);
      // One view per parity shard per group; parity is a fraction of the packets.
      parity[i].set(arena.subarray(parityBase + i * stride, parityBase + i * stride + shardBytes));
    }
    return shardBytes;
  }

  /**
   * Rebuilds the missing data shards of one group.
   *
   * `shards[i]` is shard i as received (data payloads for i < k, parity for i ≥ k) or
   * undefined when missing. For each missing data index m, the payload is written into
   * `recovered[m]` (capacity ≥ parity length − 2) and its length into
   * `recoveredLengths[m]`. Returns the number of data shards rebuilt (0 when none was
   * missing), {@link RECONSTRUCT_INSUFFICIENT} when fewer than k shards are present, or
   * {@link RECONSTRUCT_INCONSISTENT} when the shards cannot belong to one group. Never
   * writes a wrong payload: on failure `recovered` contents are unspecified and must
   * not be used.
   * @param shardLengths when given, shard i is shards[i][0..shardLengths[i]); default shards[i].length
   */
  reconstruct(
    k: number,
    r: number,
    shards: readonly (Uint8Array | undefined)[],
    recovered: readonly Uint8Array[],
    recoveredLengths: Int32Array,
    shardLengths?: ArrayLike<number>,
  ): number {
    checkShape(k, r);
    let missingCount = 0;
    let presentCount = 0;
    for (let j = 0; j < k; j++) {
      if (shards[j] === undefined) this.missing[missingCount++] = j;
      else this.presentData[presentCount++] = j;
    }
    if (missingCount === 0) return 0;
    let parityCount = 0;
    let shardBytes = -1;
    for (let i = 0; i < r && parityCount < missingCount; i++) {
      const shard = shards[k + i];
      if (shard === undefined) continue;
      const len = shardLengths ? shardLengths[k + i] : shard.length;
      if (shardBytes === -1) shardBytes = len;
      else if (len !== shardBytes) return RECONSTRUCT_INCONSISTENT;
      this.chosenParity[parityCount++] = i;
    }
    if (parityCount < missingCount) return RECONSTRUCT_INSUFFICIENT;
    if (shardBytes < FEC_LENGTH_PREFIX_BYTES) return RECONSTRUCT_INCONSISTENT;
    for (let x = 0; x < presentCount; x++) {
      const j = this.presentData[x];
      const len = shardLengths ? shardLengths[j] : (shards[j] as Uint8Array).length;
      if (len + FEC_LENGTH_PREFIX_BYTES > shardBytes) return RECONSTRUCT_INCONSISTENT;
    }
    const inverse = this.inverseFor(k, missingCount);
    if (inverse === undefined) return RECONSTRUCT_INCONSISTENT;

    const stride = roundUp(shardBytes, KERNEL_ALIGN_BYTES);
    const dataBase = KERNEL_RESERVED_BYTES;
    const parityBase = dataBase + presentCount * stride;
    const outBase = parityBase + missingCount * stride;
    const tables = outBase + missingCount * stride;
    this.kernel.ensureBytes(tables + k * KERNEL_COEFFICIENT_BYTES);
    this.encodeTablesKey = -1;
    const arena = this.kernel.bytes;
    for (let x = 0; x < presentCount; x++) {
      const j = this.presentData[x];
      const shard = shards[j] as Uint8Array;
      this.stageData(arena, dataBase + x * stride, shard, shardLengths ? shardLengths[j] : shard.length, stride);
    }
    for (let y = 0; y < missingCount; y++) {
      const at = parityBase + y * stride;
      const shard = shards[k + this.chosenParity[y]] as Uint8Array;
      copyPrefix(shard, shardBytes, arena, at);
      arena.fill(0, at + shardBytes, at + stride);
    }
    // Syndromes: subtract the known data from each chosen parity, leaving
    // Σ_m C[i][m] · d_m over the missing data only.
    if (presentCount > 0) {
      for (let y = 0; y < missingCount; y++) {
        for (let x = 0; x < presentCount; x++) this.row[x] = cauchyCoefficient(k, this.chosenParity[y], this.presentData[x]);
        this.kernel.writeRow(tables, this.row, presentCount);
        this.kernel.mulAddRow(parityBase + y * stride, dataBase, stride, presentCount, stride, tables);
      }
    }
    arena.fill(0, outBase, outBase + missingCount * stride);
    for (let c = 0; c < missingCount; c++) {
      this.row.set(inverse.subarray(c * missingCount, (c + 1) * missingCount));
      this.kernel.writeRow(tables, this.row, missingCount);
      this.kernel.mulAddRow(outBase + c * stride, parityBase, stride, missingCount, stride, tables);
    }
    for (let c = 0; c < missingCount; c++) {
      const at = outBase + c * stride;
      const length = (arena[at] << 8) | arena[at + 1];
      const end = at + FEC_LENGTH_PREFIX_BYTES + length;
      if (length + FEC_LENGTH_PREFIX_BYTES > shardBytes) return RECONSTRUCT_INCONSISTENT;
      for (let b = end; b < at + shardBytes; b++) if (arena[b] !== 0) return RECONSTRUCT_INCONSISTENT;
    }
    for (let c = 0; c < missingCount; c++) {
      const at = outBase + c * stride;
      const length = (arena[at] << 8) | arena[at + 1];
      const m = this.missing[c];
      const out = recovered[m];
      if (out.length < length) throw new RangeError(`recovered buffer ${m} holds ${out.length} bytes; the payload needs ${length}`);
      // A view per rebuilt packet: only lost packets take this path.
      out.set(arena.subarray(at + FEC_LENGTH_PREFIX_BYTES, at + FEC_LENGTH_PREFIX_BYTES + length));
      recoveredLengths[m] = length;
    }
    return missingCount;
  }

  /** Copies [u16 length][payload[0..length)] into a slot and zero-pads it to `stride`. */
  private stageData(arena: Uint8Array, at: number, payload: Uint8Array, length: number, stride: number): void {
    arena[at] = length >>> 8;
    arena[at + 1] = length & 0xff;
    copyPrefix(payload, length, arena, at + FEC_LENGTH_PREFIX_BYTES);
    arena.fill(0, at + FEC_LENGTH_PREFIX_BYTES + length, at + stride);
  }

  /**
   * Inverse of C[chosen parity][missing data] (n×n, row-major), cached by erasure
   * pattern, since a lossy path repeats the same few patterns.
   */
  private inverseFor(k: number, n: number): Uint8Array | undefined {
    let key = `${k}:`;
    for (let c = 0; c < n; c++) key += `${this.missing[c]},`;
    key += '/';
    for (let y = 0; y < n; y++) key += `${this.chosenParity[y]},`;
    const cached = this.inverseCache.get(key);
    if (cached) return cached;
    const matrix = new Uint8Array(n * n);
    for (let y = 0; y < n; y++) {
      for (let c = 0; c < n; c++) matrix[y * n + c] = cauchyCoefficient(k, this.chosenParity[y], this.missing[c]);
    }
    if (!invertMatrix(matrix, n, this.matrixScratch)) return undefined;
    if (this.inverseCache.size >= DECODE_CACHE_ENTRIES_MAX) this.inverseCache.clear();
    this.inverseCache.set(key, matrix);
    return matrix;
  }
}

let sharedCodec: ReedSolomon | undefined;

/**
 * The thread's shared codec (fastest backend), created on first use: what a
 * {@link FecSender} or {@link FecReceiver} uses when given none. A codec keeps no
 * per-group state, so one serves every flow; sharing it saves each flow the
 * WebAssembly compile and arena (~1 ms and 64 KiB), which a relay opening sessions
 * or a simulation of many players would otherwise pay per session.
 */
export function sharedReedSolomon(): ReedSolomon {
  sharedCodec ??= new ReedSolomon();
  return sharedCodec;
}
