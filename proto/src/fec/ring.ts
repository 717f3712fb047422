/**
 * The power-of-two rings (indexed by `(head + i) & (length - 1)`) that the FEC sender,
 * receiver and sliding-window code queue shards and packets on: {@link ShardRing}, a
 * queue of shards with their header fields, and {@link doubledRing} for owners that
 * keep their own parallel typed-array columns. A ring only grows while a caller lets
 * entries pile up, so growing runs rarely and never per packet once the rings fit the
 * working set.
 */
/** The typed arrays a ring's columns are kept in. */
export type RingColumn = Int32Array | Uint32Array | Uint16Array | Uint8Array | Float64Array;

/**
 * A ring twice as long as `ring` (same element type) holding its `count` entries from
 * `head` on, unwrapped to indices 0 … count − 1, so the grown ring's head is 0.
 * `ring.length` must be a power of two.
 */
export function doubledRing<T extends RingColumn>(ring: T, head: number, count: number): T {
  const grown = new (ring.constructor as new (length: number) => T)(ring.length * 2);
  const mask = ring.length - 1;
  for (let i = 0; i < count; i++) grown[i] = ring[(head + i) & mask];
  return grown;
}

/** Header fields each {@link ShardRing} entry holds (the most any owner needs: FecSender's five). */
export const SHARD_RING_FIELDS = 5;

/**
 * A first-in first-out queue of shards on power-of-two rings: each entry is a pool
 * buffer id and up to {@link SHARD_RING_FIELDS} unsigned 32-bit header fields whose
 * meaning the owner fixes (FecSender: group, index, k, r, kind; the sliding-window
 * encoder: kind, seq, count, seed; its decoder: seq, rebuilt). It doubles when full, so
 * once it fits the working set it allocates nothing per packet.
 */
export class ShardRing {
  private ids: Int32Array;
  private fields: Uint32Array;
  private head = 0;
  private count = 0;
  /** Slot of the entry the last {@link shift} took. */
  private taken = 0;

  /** @param capacity initial entries (a power of two) */
  constructor(capacity: number) {
    this.ids = new Int32Array(capacity);
    this.fields = new Uint32Array(capacity * SHARD_RING_FIELDS);
  }

  /** Entries queued. */
  get size(): number {
    return this.count;
  }

  /** Queues buffer `id` with its header fields (unused ones stay 0). */
  push(id: number, f0: number, f1 = 0, f2 = 0, f3 = 0, f4 = 0): void {
    if (this.count === this.ids.length) this.grow();
    const at = (this.head + this.count) & (this.ids.length - 1);
    this.ids[at] = id;
    const base = at * SHARD_RING_FIELDS;
    const f = this.fields;
    f[base] = f0;
    f[base + 1] = f1;
    f[base + 2] = f2;
    f[base + 3] = f3;
    f[base + 4] = f4;
    this.count++;
  }

  /** Takes the oldest entry and returns its buffer id (−1 when empty); read its fields with {@link takenField}. */
  shift(): number {
    if (this.count === 0) return -1;
    const at = this.head;
    this.head = (at + 1) & (this.ids.length - 1);
    this.count--;
    this.taken = at;
    return this.ids[at];
  }

  /** Field `i` (0 … SHARD_RING_FIELDS − 1) of the entry the last {@link shift} took (valid until the next push). */
  takenField(i: number): number {
    return this.fields[this.taken * SHARD_RING_FIELDS + i];
  }

  /** Doubles both rings (only while a caller lets entries pile up). */
  private grow(): void {
    const n = this.ids.length;
    const ids = new Int32Array(n * 2);
    const fields = new Uint32Array(n * 2 * SHARD_RING_FIELDS);
    for (let i = 0; i < this.count; i++) {
      const from = (this.head + i) & (n - 1);
      ids[i] = this.ids[from];
      fields.set(this.fields.subarray(from * SHARD_RING_FIELDS, (from + 1) * SHARD_RING_FIELDS), i * SHARD_RING_FIELDS);
    }
    this.ids = ids;
    this.fields = fields;
    this.head = 0;
  }
}
