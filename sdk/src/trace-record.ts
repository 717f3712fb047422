/**
 * Recording what the SDK measured on a real path, as a Slipstream trace
 * (`proto/src/trace/format.ts`) that the simulator and `slipstream sim proxy` replay:
 * `connect({ record })` and `slipstream connect --record FILE`.
 *
 * The tunnel core probes the relay in use every 100 ms (its liveness signal); this tap
 * watches those probes go out and their replies come back on the driver's socket —
 * the core's own measurements, no extra traffic — and feeds the outcomes to the
 * sans-IO {@link TraceRecorder}: the round trip (minus the time the relay held the
 * probe, as the core computes it), and a loss for every probe not answered within
 * {@link PROBE_TIMEOUT_MS}. Only probes to the relay carrying traffic count, so the
 * trace follows the path the game used, across switches.
 */
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../../proto/src/header.js';
import type { Endpoint } from '../../proto/src/transport.js';
import { parseProbeReplyBody } from '../../proto/src/wire.js';
import type { SlipTraceEncoding } from '../../proto/src/trace/format.js';
import { TraceRecorder } from '../../proto/src/trace/recorder.js';
import { PROBE_TIMEOUT_MS } from './core/constants.js';

/** Options of a recording (`ConnectOptions.record`). */
export interface RecordOptions {
  /** Called with every trace line (no line ending), the header first. */
  readonly onLine: (line: string) => void;
  /** Interval length, ms (1–3,600,000). Default 1000. */
  readonly intervalMs?: number;
  /** `jsonl` (default) or `csv`. */
  readonly encoding?: SlipTraceEncoding;
}

/** Probes a connection may have outstanding at most (older ones are judged lost): the core's own bound. */
const OUTSTANDING_MAX = 256;

/** See the module comment. The driver calls {@link sent}, {@link received}, {@link tick} and {@link finish}. */
export class ProbeTraceTap {
  private readonly recorder: TraceRecorder;
  private readonly header = new PacketHeader();
  /** Outstanding probes to the relay in use: sequence → send time (ms), oldest first. */
  private readonly outstanding = new Map<number, number>();

  /**
   * @param startMs the driver's time at which the recording starts (trace time 0)
   * @param isCurrentProbe whether a probe endpoint belongs to the relay carrying traffic now
   */
  constructor(
    private readonly options: RecordOptions,
    startMs: number,
    private readonly isCurrentProbe: (to: Endpoint) => boolean,
  ) {
    // Settle past the loss timeout, so every probe of an interval is judged before it is written.
    this.recorder = new TraceRecorder({ startMs, intervalMs: options.intervalMs, settleMs: PROBE_TIMEOUT_MS + 500, encoding: options.encoding });
    this.drain();
  }

  /** A datagram the core sent (probes to the current relay are noted). */
  sent(nowMs: number, to: Endpoint, bytes: Uint8Array): void {
    if (bytes.length < HEADER_BYTES || bytes[2] !== PacketType.Probe || !this.isCurrentProbe(to)) return;
    if (parseHeader(bytes, this.header) !== 0) return;
    if (this.outstanding.size >= OUTSTANDING_MAX) {
      const [seq, sentMs] = this.outstanding.entries().next().value as [number, number];
      this.outstanding.delete(seq);
      this.recorder.recordLoss(sentMs);
    }
    this.outstanding.set(this.header.sequence, nowMs);
  }

  /** A datagram the socket received (probe replies to noted probes are recorded). */
  received(nowMs: number, bytes: Uint8Array): void {
    if (bytes.length < HEADER_BYTES || bytes[2] !== PacketType.ProbeReply) return;
    if (parseHeader(bytes, this.header) !== 0) return;
    const sentMs = this.outstanding.get(this.header.sequence);
    if (sentMs === undefined) return;
    const fields = parseProbeReplyBody(bytes.subarray(HEADER_BYTES));
    if (fields === undefined) return;
    this.outstanding.delete(this.header.sequence);
    // Time the relay held the probe is not path delay (as the core measures it).
    this.recorder.recordReply(sentMs, Math.max(0, nowMs - sentMs - Math.max(0, fields.relaySendMs - fields.relayReceiveMs)));
  }

  /** Judges probes older than the loss timeout lost and writes the intervals that are done. Call every few hundred ms. */
  tick(nowMs: number): void {
    for (const [seq, sentMs] of this.outstanding) {
      if (nowMs - sentMs < PROBE_TIMEOUT_MS) break;
      this.outstanding.delete(seq);
      this.recorder.recordLoss(sentMs);
    }
    this.recorder.handleTimeout(nowMs);
    this.drain();
  }

  /** Ends the recording: probes still outstanding are left out (their fate is unknown), every open interval is written. */
  finish(): void {
    this.outstanding.clear();
    this.recorder.finish();
    this.drain();
  }

  private drain(): void {
    for (let line = this.recorder.pollLine(); line !== undefined; line = this.recorder.pollLine()) this.options.onLine(line);
  }
}
