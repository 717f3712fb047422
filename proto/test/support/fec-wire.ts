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

/**
 * A test packet of `lengthBytes` (at least 2) that names itself: bytes 0–1 hold `n`
 * (big-endian, low 16 bits), the rest a pattern of `n` and the position stepped by
 * `fillStep`, so a rebuilt packet that differs anywhere fails a deep-equal.
 */
export function numberedPacket(n: number, lengthBytes: number, fillStep: number): Uint8Array {
  const p = new Uint8Array(Math.max(2, lengthBytes));
  p[0] = n >> 8;
  p[1] = n & 0xff;
  for (let i = 2; i < p.length; i++) p[i] = (n * fillStep + i) & 0xff;
  return p;
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
