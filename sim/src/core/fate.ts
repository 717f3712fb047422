/**
 * Packet fates: what happened to every datagram sent through a {@link SimNetwork}
 * (delivered after some latency, or dropped for a reason). The network fills one reused
 * {@link PacketFate} per event and hands it to an optional {@link FateSink}; with no sink
 * nothing is recorded and nothing is allocated.
 */
import { DropReason, dropReasonName, type DropReasonValue } from './link.js';

/**
 * One fate, as the network reports it. The network reuses the object: a sink must copy
 * what it keeps before returning.
 */
export class PacketFate {
  /** Network-wide send counter (0, 1, 2, …): both copies of a duplicated packet share it. */
  packetId = 0;
  /** 0 for the original, 1 for a duplicate made by the link. */
  copy = 0;
  /** Sender's address and port. */
  fromAddress = '';
  fromPort = 0;
  /** Destination address and port as given to `send`. */
  toAddress = '';
  toPort = 0;
  /** Datagram size in bytes. */
  sizeBytes = 0;
  /** Virtual time of the `send` call, ms. */
  sentAtMs = 0;
  /** Virtual time of delivery, or of the drop, ms. */
  atMs = 0;
  /** {@link DropReason.None} when delivered. */
  dropReason: DropReasonValue = DropReason.None;
  /** Whether the delivered bytes had a bit flipped by the link. */
  corrupted = false;

  /** True when the datagram reached a socket. */
  get delivered(): boolean {
    return this.dropReason === DropReason.None;
  }

  /** Delivery (or drop) time minus send time, ms. */
  get latencyMs(): number {
    return this.atMs - this.sentAtMs;
  }
}

/** Receives every fate. `fate` is only valid during the call. */
export interface FateSink {
  record(fate: PacketFate): void;
}

/** A plain copy of a {@link PacketFate}, as kept by {@link FateLog}. */
export interface FateEntry {
  readonly packetId: number;
  readonly copy: number;
  readonly from: string;
  readonly to: string;
  readonly sizeBytes: number;
  readonly sentAtMs: number;
  readonly atMs: number;
  readonly delivered: boolean;
  /** Drop reason name (`loss`, `queueFull`, …), or `none` when delivered. */
  readonly reason: string;
  readonly latencyMs: number;
  readonly corrupted: boolean;
}

/**
 * A sink that keeps every fate as a plain object: for tests and small scenarios (it
 * allocates per packet; use a streaming sink for million-packet runs).
 */
export class FateLog implements FateSink {
  /** Every fate in the order the network reported it. */
  readonly entries: FateEntry[] = [];

  record(fate: PacketFate): void {
    this.entries.push({
      packetId: fate.packetId,
      copy: fate.copy,
      from: `${fate.fromAddress}:${fate.fromPort}`,
      to: `${fate.toAddress}:${fate.toPort}`,
      sizeBytes: fate.sizeBytes,
      sentAtMs: fate.sentAtMs,
      atMs: fate.atMs,
      delivered: fate.delivered,
      reason: dropReasonName[fate.dropReason] ?? String(fate.dropReason),
      latencyMs: fate.latencyMs,
      corrupted: fate.corrupted,
    });
  }

  /** The delivered fates. */
  delivered(): FateEntry[] {
    return this.entries.filter((entry) => entry.delivered);
  }

  /** The dropped fates, optionally only those with drop reason `reason` (a {@link DropReason} value). */
  dropped(reason?: DropReasonValue): FateEntry[] {
    const name = reason === undefined ? undefined : dropReasonName[reason];
    return this.entries.filter((entry) => !entry.delivered && (name === undefined || entry.reason === name));
  }

  /** Forgets every entry. */
  clear(): void {
    this.entries.length = 0;
  }
}
