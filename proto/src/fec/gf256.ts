/**
 * Arithmetic in GF(2^8) with the primitive polynomial x^8 + x^4 + x^3 + x^2 + 1
 * (0x11d), the field used by most packet-erasure Reed-Solomon codecs (Rizzo's fec.c,
 * Jerasure, ISA-L). Addition is XOR; multiplication goes through log/exp tables here,
 * and through split-nibble tables in the bulk kernels (see `kernel.ts`).
 *
 * These scalar helpers are used to build coefficient matrices and nibble tables, once
 * per (k, r) or per erasure pattern, never per byte of payload.
 */

/** The reduction polynomial, x^8 + x^4 + x^3 + x^2 + 1. */
export const GF_POLYNOMIAL = 0x11d;

/** exp[i] = g^i for the generator g = 2, doubled in length so that exp[log a + log b] needs no modulo. */
export const EXP = new Uint8Array(510);
/** log[a] = i such that g^i = a, for a ≠ 0 (log[0] is unused). */
export const LOG = new Uint8Array(256);
{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    EXP[i + 255] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= GF_POLYNOMIAL;
  }
}

/** Product of two field elements (0–255). */
export function gfMul(a: number, b: number): number {
  if (a === 0 || b === 0) return 0;
  return EXP[LOG[a] + LOG[b]];
}

/** Multiplicative inverse of a non-zero field element. */
export function gfInv(a: number): number {
  if (a === 0) throw new RangeError('gfInv: 0 has no inverse in GF(2^8)');
  return EXP[255 - LOG[a]];
}

/**
 * The full 256×256 multiplication table, `MUL_TABLE[a * 256 + b] = a·b` (64 KiB).
 * Used by the pure-TypeScript kernel, which looks up one row per coefficient.
 */
export const MUL_TABLE: Uint8Array = (() => {
  const table = new Uint8Array(65536);
  for (let a = 1; a < 256; a++) {
    for (let b = 1; b < 256; b++) table[a * 256 + b] = EXP[LOG[a] + LOG[b]];
  }
  return table;
})();

/**
 * Writes the two 16-entry split-nibble tables for coefficient `c` into `out` at
 * `offset`: bytes 0–15 are c·x for x = 0..15 (low nibble), bytes 16–31 are c·(x << 4)
 * (high nibble). Because multiplication distributes over XOR,
 * c·b = low[b & 15] ^ high[b >> 4]; this is what lets a 16-lane byte shuffle
 * (i8x16.swizzle, pshufb) multiply 16 bytes at once.
 */
export function writeNibbleTables(c: number, out: Uint8Array, offset: number): void {
  for (let x = 0; x < 16; x++) {
    out[offset + x] = gfMul(c, x);
    out[offset + 16 + x] = gfMul(c, x << 4);
  }
}

/**
 * Coefficient of parity row `row` (0-based) for data column `column` in a systematic
 * Cauchy code with `k` data shards: 1 / (x_row + y_column) with x_row = k + row and
 * y_column = column. The x and y values are distinct field elements whenever
 * k + r ≤ 256, and every square submatrix of a Cauchy matrix is invertible, which is
 * exactly the MDS property: any k of the k + r shards determine the data.
 */
export function cauchyCoefficient(k: number, row: number, column: number): number {
  return gfInv((k + row) ^ column);
}

/**
 * Inverts the n×n matrix `m` (row-major, field elements) in place by Gauss-Jordan
 * elimination. Returns false, leaving `m` in an unspecified state, when the matrix is
 * singular (never happens for Cauchy submatrices; checked because a corrupt header
 * could otherwise produce garbage). `scratch` needs n·n bytes.
 */
export function invertMatrix(m: Uint8Array, n: number, scratch: Uint8Array): boolean {
  const inv = scratch;
  inv.fill(0, 0, n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let col = 0; col < n; col++) {
    let pivot = col;
    while (pivot < n && m[pivot * n + col] === 0) pivot++;
    if (pivot === n) return false;
    if (pivot !== col) {
      for (let j = 0; j < n; j++) {
        const a = m[col * n + j];
        m[col * n + j] = m[pivot * n + j];
        m[pivot * n + j] = a;
        const b = inv[col * n + j];
        inv[col * n + j] = inv[pivot * n + j];
        inv[pivot * n + j] = b;
      }
    }
    const scale = gfInv(m[col * n + col]);
    for (let j = 0; j < n; j++) {
      m[col * n + j] = gfMul(m[col * n + j], scale);
      inv[col * n + j] = gfMul(inv[col * n + j], scale);
    }
    for (let row = 0; row < n; row++) {
      const factor = row === col ? 0 : m[row * n + col];
      if (factor === 0) continue;
      for (let j = 0; j < n; j++) {
        m[row * n + j] ^= gfMul(factor, m[col * n + j]);
        inv[row * n + j] ^= gfMul(factor, inv[col * n + j]);
      }
    }
  }
  m.set(inv.subarray(0, n * n));
  return true;
}
