/**
 * Output buffers carved from slabs: the relay core and the SDK core write every
 * outgoing packet (tunnel headers, FEC shards, delivered messages) into views of one
 * slab, so there is one allocation per slab instead of one per packet. A full slab is
 * replaced, never rewritten, because whoever received a view (the kernel's send queue
 * on EAGAIN, the app holding a message) may still read it; the old slab is freed when
 * the last view goes. Sans-IO: no clock, no sockets.
 */

/** Default slab size, bytes: about 45 full 1,400-byte shards, or 2,700 tunnel headers. */
export const SLAB_BYTES_DEFAULT = 65_536;

/** Hands out fresh, never-reused `Uint8Array` views carved from slabs. */
export class SlabAllocator {
  private slab: Uint8Array;
  private offset = 0;

  /** @param slabBytes size of each slab, bytes (default {@link SLAB_BYTES_DEFAULT}) */
  constructor(private readonly slabBytes = SLAB_BYTES_DEFAULT) {
    this.slab = new Uint8Array(slabBytes);
  }

  /** A zero-filled-once view of `bytes` bytes nobody else holds; larger than a slab → its own array. */
  view(bytes: number): Uint8Array {
    if (bytes > this.slabBytes) return new Uint8Array(bytes);
    if (this.offset + bytes > this.slabBytes) {
      this.slab = new Uint8Array(this.slabBytes);
      this.offset = 0;
    }
    const view = this.slab.subarray(this.offset, this.offset + bytes);
    // 8-byte aligned starts keep views off each other's cache words.
    this.offset += (bytes + 7) & ~7;
    return view;
  }
}
