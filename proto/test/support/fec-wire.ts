/**
 * Test support for FecSender / FecReceiver specs: the shards a sender puts on the wire,
 * each with its bytes and the time it left, and a driver that pushes packets through a
 * sender while running its timers, so every spec reads the wire the same way.
 */
import type { FecSender, FecTransmit } from '../../src/fec/sender.js';

/** One shard as it left the sender: its header fields, a copy of its bytes, and the time (ms) it left. */
export interface WireShard extends FecTransmit {
  bytes: Uint8Array;
  atMs: number;
}

/** Moves everything the sender has to transmit now onto `into`, stamped `nowMs`. */
export function drainTransmits(sender: FecSender, nowMs: number, into: WireShard[]): void {
  const out = new Uint8Array(sender.maxShardBytes);
  for (let t = sender.pollTransmit(out); t !== undefined; t = sender.pollTransmit(out)) into.push({ ...t, bytes: out.slice(0, t.length), atMs: nowMs });
}

/**
 * Pushes `count` packets (`packetOf(n)`) `gapMs` apart through the sender, firing its
 * timers due before each push and all that remain after the last; returns the wire in
 * send order and the packets sent.
 */
export function sendThrough(sender: FecSender, count: number, gapMs: number, packetOf: (n: number) => Uint8Array): { wire: WireShard[]; sent: Uint8Array[] } {
  const wire: WireShard[] = [];
  const sent: Uint8Array[] = [];
  for (let n = 0; n < count; n++) {
    const now = n * gapMs;
    for (let t = sender.pollTimeout(); t !== undefined && t <= now; t = sender.pollTimeout()) {
      sender.handleTimeout(t);
      drainTransmits(sender, t, wire);
    }
    const p = packetOf(n);
    sent.push(p);
    sender.push(now, p);
    drainTransmits(sender, now, wire);
  }
  for (let t = sender.pollTimeout(); t !== undefined; t = sender.pollTimeout()) {
    sender.handleTimeout(t);
    drainTransmits(sender, t, wire);
  }
  return { wire, sent };
}
