/**
 * The linear system a sliding-window decoder solves: one equation per useful repair
 * packet, over the source packets it is still missing.
 *
 * Columns are the decoder's ring slots (one per tracked source seq); a row is a repair
 * with every known source already subtracted, so its non-zero coefficients sit on
 * unknown sources only, and its right-hand side is a code vector (see
 * `sliding-window-code.ts`) in a pooled buffer.
 *
 * The rows are kept in reduced row echelon form as they come (on-the-fly Gaussian
 * elimination, as in Tetrys decoders): every row has a pivot column whose coefficient
 * is 1 and which is zero in every other row. In that form an unknown is determined by
 * the equations received exactly when its pivot row has no other non-zero coefficient
 * (if e_q is a combination of rows, looking at the pivot columns shows it is a
 * multiple of q's pivot row), so a row that becomes a singleton is a rebuilt source,
 * and no solvable source is left unsolved. Redundant repairs reduce to zero and are
 * dropped.
 *
 * Cost: coefficient rows are `columns` bytes and combined in scalar code; payloads are
 * combined by the codec's kernel. Nothing is allocated after construction.
 */
import { MUL_TABLE, gfInv, gfMul } from './gf256.js';
import type { BufferPool } from './pool.js';
import type { SlidingWindowCodec } from './sliding-window-code.js';

const NONE = -1;

/** The decoder's system of repair equations over its unknown sources, in reduced row echelon form. */
export class RepairEquations {
  /** Number of columns (the decoder's ring slots). */
  readonly columns: number;
  /** Buffer id of the last source returned by {@link pollSolved} (ownership passes to the caller). */
  solvedBuffer = NONE;
  /** Length of that source's code vector, in bytes (prefix included, padding possible). */
  solvedLength = 0;

  private readonly codec: SlidingWindowCodec;
  private readonly pool: BufferPool;
  /** One more row than columns: an incoming equation needs a row before it reduces to zero. */
  private readonly rows: number;
  private readonly coef: Uint8Array;
  private readonly rowBuffer: Int32Array;
  private readonly rowLength: Int32Array;
  private readonly rowPivot: Int32Array;
  private readonly rowNonzero: Int32Array;
  private readonly pivotRow: Int32Array;
  private active = 0;
  private readonly solvedColumns: Int32Array;
  private readonly solvedBuffers: Int32Array;
  private readonly solvedLengths: Int32Array;
  private solvedHead = 0;
  private solvedCount = 0;

  /**
   * @param columns ring slots of the decoder (≤ 256)
   * @param codec row arithmetic
   * @param pool where right-hand sides live (the decoder's pool)
   */
  constructor(columns: number, codec: SlidingWindowCodec, pool: BufferPool) {
    this.columns = columns;
    this.codec = codec;
    this.pool = pool;
    this.rows = columns + 1;
    this.coef = new Uint8Array(this.rows * columns);
    this.rowBuffer = new Int32Array(this.rows).fill(NONE);
    this.rowLength = new Int32Array(this.rows);
    this.rowPivot = new Int32Array(this.rows).fill(NONE);
    this.rowNonzero = new Int32Array(this.rows);
    this.pivotRow = new Int32Array(columns).fill(NONE);
    this.solvedColumns = new Int32Array(this.rows);
    this.solvedBuffers = new Int32Array(this.rows);
    this.solvedLengths = new Int32Array(this.rows);
  }

  /** Equations held (each with its own pivot unknown). */
  get size(): number {
    return this.active;
  }

  /** Whether some equation has a non-zero coefficient on `column`. */
  involves(column: number): boolean {
    if (this.active === 0) return false;
    if (this.pivotRow[column] !== NONE) return true;
    for (let r = 0; r < this.rows; r++) if (this.rowBuffer[r] !== NONE && this.coef[r * this.columns + column] !== 0) return true;
    return false;
  }

  /**
   * Adds one equation: coefficients[0..columns) (zero on known sources) and its
   * right-hand side, a pooled buffer whose ownership passes here. Reduces it against
   * the rows held; a redundant one is released. Returns whether it added rank.
   */
  addEquation(coefficients: Uint8Array, buffer: number, length: number): boolean {
    const r = this.allocateRow(buffer, length);
    const n = this.columns;
    const base = r * n;
    let nonzero = 0;
    for (let c = 0; c < n; c++) {
      this.coef[base + c] = coefficients[c];
      if (coefficients[c] !== 0) nonzero++;
    }
    this.rowNonzero[r] = nonzero;
    for (let c = 0; c < n; c++) {
      const f = this.coef[base + c];
      const p = this.pivotRow[c];
      if (f !== 0 && p !== NONE) this.addRowScaled(r, p, f);
    }
    const ranked = this.installPivot(r);
    this.collectSolved();
    return ranked;
  }

  /**
   * A source became known (it arrived): subtracts `coefficient · vector` from every
   * row that has it. src[0..srcLength) is the source's code vector.
   */
  substitute(column: number, src: Uint8Array, srcLength: number): void {
    const n = this.columns;
    const p = this.pivotRow[column];
    if (p !== NONE) {
      // Only its pivot row has it; that row then needs a new pivot among its other unknowns.
      this.rowLength[p] = this.codec.addScaled(this.pool.buffers[this.rowBuffer[p]], this.rowLength[p], src, srcLength, this.coef[p * n + column]);
      this.coef[p * n + column] = 0;
      this.rowNonzero[p]--;
      this.pivotRow[column] = NONE;
      this.rowPivot[p] = NONE;
      this.installPivot(p);
    } else {
      for (let r = 0; r < this.rows; r++) {
        if (this.rowBuffer[r] === NONE) continue;
        const f = this.coef[r * n + column];
        if (f === 0) continue;
        this.rowLength[r] = this.codec.addScaled(this.pool.buffers[this.rowBuffer[r]], this.rowLength[r], src, srcLength, f);
        this.coef[r * n + column] = 0;
        this.rowNonzero[r]--;
      }
    }
    this.collectSolved();
  }

  /**
   * A source will stay unknown (its slot is being reused): eliminates it from the
   * system at the cost of one equation, since the slot must be zero in every row.
   */
  forget(column: number): void {
    const n = this.columns;
    let chosen = this.pivotRow[column];
    if (chosen === NONE) {
      for (let r = 0; r < this.rows && chosen === NONE; r++) if (this.rowBuffer[r] !== NONE && this.coef[r * n + column] !== 0) chosen = r;
      if (chosen === NONE) return;
      const inverse = gfInv(this.coef[chosen * n + column]);
      for (let r = 0; r < this.rows; r++) {
        if (r === chosen || this.rowBuffer[r] === NONE) continue;
        const f = this.coef[r * n + column];
        if (f !== 0) this.addRowScaled(r, chosen, gfMul(f, inverse));
      }
    }
    // The chosen row's own pivot column becomes free: no other row has it.
    this.pivotRow[this.rowPivot[chosen]] = NONE;
    this.pool.release(this.rowBuffer[chosen]);
    this.freeRow(chosen);
    this.collectSolved();
  }

  /**
   * Output: the column of the next source the system determined, or -1. Its code
   * vector is then in {@link solvedBuffer} (owned by the caller from now on) with
   * {@link solvedLength}; the column is zero in every remaining row.
   */
  pollSolved(): number {
    if (this.solvedCount === 0) return NONE;
    const at = this.solvedHead;
    this.solvedHead = (at + 1) % this.rows;
    this.solvedCount--;
    this.solvedBuffer = this.solvedBuffers[at];
    this.solvedLength = this.solvedLengths[at];
    return this.solvedColumns[at];
  }

  /** Releases every row (the decoder is being reset). */
  clear(): void {
    for (let r = 0; r < this.rows; r++) {
      if (this.rowBuffer[r] === NONE) continue;
      this.pool.release(this.rowBuffer[r]);
      this.freeRow(r);
    }
    this.pivotRow.fill(NONE);
  }

  private allocateRow(buffer: number, length: number): number {
    for (let r = 0; r < this.rows; r++) {
      if (this.rowBuffer[r] !== NONE) continue;
      this.rowBuffer[r] = buffer;
      this.rowLength[r] = length;
      this.rowPivot[r] = NONE;
      this.active++;
      return r;
    }
    throw new Error('RepairEquations: no free row (more rows than unknowns)');
  }

  private freeRow(r: number): void {
    this.coef.fill(0, r * this.columns, (r + 1) * this.columns);
    this.rowBuffer[r] = NONE;
    this.rowPivot[r] = NONE;
    this.rowNonzero[r] = 0;
    this.active--;
  }

  /** Row dst += f · row src, coefficients and right-hand side. */
  private addRowScaled(dst: number, src: number, f: number): void {
    const n = this.columns;
    const d = dst * n;
    const s = src * n;
    const table = f << 8;
    let nonzero = 0;
    for (let c = 0; c < n; c++) {
      const v = this.coef[d + c] ^ MUL_TABLE[table | this.coef[s + c]];
      this.coef[d + c] = v;
      if (v !== 0) nonzero++;
    }
    this.rowNonzero[dst] = nonzero;
    this.rowLength[dst] = this.codec.addScaled(this.pool.buffers[this.rowBuffer[dst]], this.rowLength[dst], this.pool.buffers[this.rowBuffer[src]], this.rowLength[src], f);
  }

  /**
   * Gives row r (reduced against every pivot, pivot-less) a pivot: its first non-zero
   * column, scaled to 1 and cleared from every other row. A zero row is released.
   * Returns whether the row was kept.
   */
  private installPivot(r: number): boolean {
    const n = this.columns;
    const base = r * n;
    if (this.rowNonzero[r] === 0) {
      this.pool.release(this.rowBuffer[r]);
      this.freeRow(r);
      return false;
    }
    let q = 0;
    while (this.coef[base + q] === 0) q++;
    const pivot = this.coef[base + q];
    if (pivot !== 1) {
      const table = gfInv(pivot) << 8;
      for (let c = q; c < n; c++) this.coef[base + c] = MUL_TABLE[table | this.coef[base + c]];
      this.codec.divide(this.pool.buffers[this.rowBuffer[r]], this.rowLength[r], pivot);
    }
    for (let other = 0; other < this.rows; other++) {
      if (other === r || this.rowBuffer[other] === NONE) continue;
      const f = this.coef[other * n + q];
      if (f !== 0) this.addRowScaled(other, r, f);
    }
    this.pivotRow[q] = r;
    this.rowPivot[r] = q;
    return true;
  }

  /** Moves every singleton row (only its pivot left) to the solved queue. */
  private collectSolved(): void {
    for (let r = 0; r < this.rows; r++) {
      if (this.rowBuffer[r] === NONE || this.rowNonzero[r] !== 1) continue;
      const q = this.rowPivot[r];
      const at = (this.solvedHead + this.solvedCount) % this.rows;
      this.solvedColumns[at] = q;
      this.solvedBuffers[at] = this.rowBuffer[r];
      this.solvedLengths[at] = this.rowLength[r];
      this.solvedCount++;
      this.pivotRow[q] = NONE;
      this.freeRow(r);
    }
  }
}
