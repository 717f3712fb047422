/**
 * Packet fates: what happened to every datagram sent through a {@link SimNetwork}
 * (delivered after some latency, or dropped for a reason). The network fills one reused
 * {@link PacketFate} per event and hands it to an optional {@link FateSink}; with no sink
 * nothing is recorded and nothing is allocated.
 */
import { DropReason, dropReasonName, type DropReasonValue } from './link.js';

/**
 * The hop of a datagram's way on which a link dropped it: the sender's access link
 * (uplink), the path between the two hosts, or the receiver's access link (downlink).
 * Values are stable: they appear in fate logs.
 */
export const Hop = {
  /** Not dropped by a link (delivered, or dropped for a host-level reason: noHost, partition, noSocket). */
  None: 0,
  /** The path link from the sender's host to the receiver's. */
  Path: 1,
  /** The sender's access link, uplink direction. */
  Uplink: 2,
  /** The receiver's access link, downlink direction. */
  Downlink: 3,
} as const;

/** One of the {@link Hop} values. */
export type HopValue = (typeof Hop)[keyof typeof Hop];

/** Names of {@link Hop} values for logs (`uplink`, …), indexed by value. */
export const hopName: readonly string[] = ['none', 'path', 'uplink', 'downlink'];

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
  /** The hop whose link dropped the datagram ({@link Hop}); `Hop.None` when delivered or dropped for a host-level reason. */
  hop: HopValue = Hop.None;

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
  /** Present only when a link dropped the datagram: which hop's (`uplink`, `path`, `downlink`). */
  readonly hop?: string;
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
      ...(fate.hop === Hop.None ? {} : { hop: hopName[fate.hop] ?? String(fate.hop) }),
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
