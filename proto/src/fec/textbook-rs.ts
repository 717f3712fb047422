/**
 * The textbook Reed-Solomon codec the benchmark compares against: the same Cauchy code,
 * length-prefix layout and field as `proto/src/fec/rs.ts`, but multiplied byte by byte
 * through log/exp tables (`exp[log a + log b]`, with the zero test per byte), the way
 * most tutorials and many small libraries do it. Producing identical parity is part of
 * the check: the benchmark compares the two codecs' bytes before timing them.
 *
 * Reference code for the codec tests and the benchmark (`bench fec`): the product never uses it.
 */
import { cauchyCoefficient, EXP, gfInv, gfMul, LOG } from './gf256.js';

/** dst[0..len) ^= c · src[0..len), one log/exp lookup per byte. */
function mulAddTextbook(dst: Uint8Array, src: Uint8Array, srcOffset: number, len: number, dstOffset: number, c: number): void {
  if (c === 0) return;
  const logC = LOG[c];
  for (let i = 0; i < len; i++) {
    const s = src[srcOffset + i];
    if (s !== 0) dst[dstOffset + i] ^= EXP[logC + LOG[s]];
  }
}

/** Textbook systematic Cauchy Reed-Solomon over GF(2^8), byte at a time. */
export class TextbookReedSolomon {
  private staged = new Uint8Array(0);

  /** Same contract as `ReedSolomon.encode`: parity of data[0..k) into parity[0..r); returns the parity length. */
  encode(data: readonly Uint8Array[], k: number, r: number, parity: readonly Uint8Array[]): number {
    let maxLen = 0;
    for (let j = 0; j < k; j++) maxLen = Math.max(maxLen, data[j].length);
    const shardBytes = maxLen + 2;
    for (let i = 0; i < r; i++) parity[i].fill(0, 0, shardBytes);
    for (let j = 0; j < k; j++) {
      const len = data[j].length;
      const prefix0 = len >>> 8;
      const prefix1 = len & 0xff;
      for (let i = 0; i < r; i++) {
        const c = cauchyCoefficient(k, i, j);
        const p = parity[i];
        p[0] ^= gfMul(c, prefix0);
        p[1] ^= gfMul(c, prefix1);
        mulAddTextbook(p, data[j], 0, len, 2, c);
      }
    }
    return shardBytes;
  }

  /**
   * Rebuilds missing data shards (same contract as `ReedSolomon.reconstruct`, success
   * path only): Gauss-Jordan on the k×k matrix of the received rows, then every
   * missing shard as a byte-wise combination of the k received ones.
   */
  reconstruct(k: number, r: number, shards: readonly (Uint8Array | undefined)[], recovered: Uint8Array[], recoveredLengths: Int32Array): number {
    const rows: number[] = [];
    for (let i = 0; i < k + r && rows.length < k; i++) if (shards[i] !== undefined) rows.push(i);
    if (rows.length < k) return -1;
    let shardBytes = 0;
    for (let i = k; i < k + r; i++) if (shards[i] !== undefined) shardBytes = shards[i]!.length;
    if (shardBytes === 0) return 0;
    // Generator rows of the received shards: identity for data, Cauchy for parity.
    const m: number[][] = rows.map((row) => Array.from({ length: k }, (_, j) => (row < k ? (row === j ? 1 : 0) : cauchyCoefficient(k, row - k, j))));
    const inv: number[][] = Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => (i === j ? 1 : 0)));
    for (let col = 0; col < k; col++) {
      let pivot = col;
      while (m[pivot][col] === 0) pivot++;
      [m[col], m[pivot]] = [m[pivot], m[col]];
      [inv[col], inv[pivot]] = [inv[pivot], inv[col]];
      const scale = gfInv(m[col][col]);
      for (let j = 0; j < k; j++) {
        m[col][j] = gfMul(m[col][j], scale);
        inv[col][j] = gfMul(inv[col][j], scale);
      }
      for (let row = 0; row < k; row++) {
        const f = m[row][col];
        if (row === col || f === 0) continue;
        for (let j = 0; j < k; j++) {
          m[row][j] ^= gfMul(f, m[col][j]);
          inv[row][j] ^= gfMul(f, inv[col][j]);
        }
      }
    }
    // Stage the received shards in the prefixed, padded form.
    if (this.staged.length < k * shardBytes) this.staged = new Uint8Array(k * shardBytes);
    const staged = this.staged;
    staged.fill(0, 0, k * shardBytes);
    rows.forEach((row, x) => {
      const s = shards[row]!;
      if (row < k) {
        staged[x * shardBytes] = s.length >>> 8;
        staged[x * shardBytes + 1] = s.length & 0xff;
        staged.set(s, x * shardBytes + 2);
      } else {
        staged.set(s, x * shardBytes);
      }
    });
    let count = 0;
    const out = new Uint8Array(shardBytes);
    for (let m2 = 0; m2 < k; m2++) {
      if (shards[m2] !== undefined) continue;
      out.fill(0);
      for (let x = 0; x < k; x++) mulAddTextbook(out, staged, x * shardBytes, shardBytes, 0, inv[m2][x]);
      const len = (out[0] << 8) | out[1];
      recovered[m2].set(out.subarray(2, 2 + len));
      recoveredLengths[m2] = len;
      count++;
    }
    return count;
  }
}
