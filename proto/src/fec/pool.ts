/**
 * Reference-counted pool of fixed-capacity byte buffers, so the FEC sender and
 * receiver keep packets (a group's data until parity is computed, duplicates until
 * they are due, shards until a group decodes) without allocating per packet once the
 * pool has grown to the working set.
 */
export class BufferPool {
  /** Capacity of every buffer, in bytes. */
  readonly capacityBytes: number;
  /** Buffers by id. */
  readonly buffers: Uint8Array[] = [];
  /** Bytes in use in each buffer (set by the owner). */
  lengths = new Int32Array(16);
  private refs = new Int32Array(16);
  private free: number[] = [];

  /** @param capacityBytes size of every buffer */
  constructor(capacityBytes: number) {
    this.capacityBytes = capacityBytes;
  }

  /** Buffers currently referenced. */
  get inUse(): number {
    return this.buffers.length - this.free.length;
  }

  /** A buffer id with one reference. */
  acquire(): number {
    const id = this.free.pop();
    if (id !== undefined) {
      this.refs[id] = 1;
      return id;
    }
    const fresh = this.buffers.length;
    this.buffers.push(new Uint8Array(this.capacityBytes));
    if (fresh >= this.refs.length) {
      const refs = new Int32Array(this.refs.length * 2);
      refs.set(this.refs);
      this.refs = refs;
      const lengths = new Int32Array(this.lengths.length * 2);
      lengths.set(this.lengths);
      this.lengths = lengths;
    }
    this.refs[fresh] = 1;
    return fresh;
  }

  /** A copy of src[0..length) in a fresh buffer; returns its id. */
  acquireCopy(src: Uint8Array, length: number): number {
    const id = this.acquire();
    const dst = this.buffers[id];
    if (length === src.length) dst.set(src);
    else for (let b = 0; b < length; b++) dst[b] = src[b];
    this.lengths[id] = length;
    return id;
  }

  /** Adds a reference. */
  retain(id: number): void {
    this.refs[id]++;
  }

  /**
   * Copies `length` bytes of buffer `id`, from byte `from` on, to the start of `out`
   * (the caller has checked that `out` holds them) and drops one reference to the
   * buffer. A whole buffer goes by one `set`; short copies byte by byte, where the loop
   * beats a `subarray` view and `set`.
   */
  copyOutAndRelease(id: number, from: number, length: number, out: Uint8Array): void {
    const src = this.buffers[id];
    if (from === 0 && length === src.length) out.set(src);
    else if (length < 64) for (let b = 0; b < length; b++) out[b] = src[from + b];
    else out.set(src.subarray(from, from + length));
    this.release(id);
  }

  /** Drops a reference; the buffer returns to the pool at zero. */
  release(id: number): void {
    if (--this.refs[id] === 0) this.free.push(id);
  }
}
