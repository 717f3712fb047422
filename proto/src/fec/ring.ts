/**
 * Growing the fixed power-of-two rings (parallel typed arrays indexed by
 * `(head + i) & (length - 1)`) that the FEC sender, receiver and sliding-window code
 * queue shards on. A ring only grows while a caller lets entries pile up, so this runs
 * rarely and never per packet once the rings fit the working set.
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
