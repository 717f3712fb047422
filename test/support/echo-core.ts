/**
 * A tiny sans-IO echo core, used to show that one core runs unchanged on real UDP
 * sockets and in the simulator. It answers each valid Slipstream packet with a Data
 * packet of the same session carrying the payload back, numbered by its own reply
 * counter, and drops junk with the stateless header check (counting the reasons).
 */
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader, writeHeader } from '../../proto/src/header.js';
import type { Endpoint } from '../../proto/src/transport.js';

/** One datagram the core wants sent. */
export interface Transmit {
  readonly to: Endpoint;
  readonly bytes: Uint8Array;
}

/** The echo state machine: `handleDatagram` in, `pollTransmit` out. */
export class EchoCore {
  /** Junk packets dropped, by parse-failure code. */
  readonly dropped = new Map<number, number>();
  private readonly header = new PacketHeader();
  private readonly queue: Transmit[] = [];
  private replies = 0;

  /** Input: one received datagram at `nowMs`. */
  handleDatagram(_nowMs: number, from: Endpoint, bytes: Uint8Array): void {
    const failure = parseHeader(bytes, this.header);
    if (failure !== 0) {
      this.dropped.set(failure, (this.dropped.get(failure) ?? 0) + 1);
      return;
    }
    const reply = new Uint8Array(bytes.length);
    this.header.type = PacketType.Data;
    this.header.flags = 0;
    this.header.sequence = this.replies++;
    this.header.fecGroup = this.header.fecIndex = this.header.fecDataCount = this.header.fecParityCount = 0;
    writeHeader(this.header, reply);
    reply.set(bytes.subarray(HEADER_BYTES), HEADER_BYTES);
    this.queue.push({ to: from, bytes: reply });
  }

  /** Output: the next datagram to send, or undefined when there is none. */
  pollTransmit(): Transmit | undefined {
    return this.queue.shift();
  }
}
