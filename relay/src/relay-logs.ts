/**
 * The relay driver's log lines that a sender could otherwise multiply: refusals,
 * unanswered flows, TCP connections that ended without a byte (a slowloris closed by the
 * first-byte timeout) and socket errors go through a {@link LogAggregator} (at most one
 * line per event and reason per `logAggregateIntervalMs`), and the core's per-packet
 * drop counters become one `dropped` line per reason per interval. Split from relay.ts,
 * which keeps the sockets and the lifecycle.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { LogAggregator, type AggregatedLine } from './log-aggregator.js';

/**
 * Events that a sender (or a storm of socket errors) can cause once per packet, logged
 * through the {@link LogAggregator}: at most one line per event and reason per
 * `logAggregateIntervalMs`, each with its message and level.
 */
export const AGGREGATED_EVENTS = {
  session_refused: { msg: 'sessions refused', level: 'info' },
  udp_flow_unreplied: { msg: 'udp flows ended without a reply from their origin', level: 'info' },
  accept_failed: { msg: 'TCP accept failed', level: 'warn' },
  bind_failed: { msg: 'bind failed', level: 'warn' },
  tcp_refused_fd_limit: { msg: 'TCP connections refused: too few file descriptors left (see the fd_limit warning)', level: 'warn' },
  session_end: { msg: 'TCP connections ended without a byte either way', level: 'info' },
} as const satisfies Record<string, { msg: string; level: 'info' | 'warn' }>;
/** One of {@link AGGREGATED_EVENTS}. */
export type AggregatedEvent = keyof typeof AGGREGATED_EVENTS;

/**
 * End reasons of a TCP connection that its sender chooses when it never sends a byte
 * (relay/src/core/l4-tcp.ts and the TCP driver): closed by the first-byte timeout, by
 * the idle timeout, or by the client itself (a close or a reset). A slowloris or a
 * connect-and-leave storm causes one per connection.
 */
export const SILENT_TCP_END_REASONS: readonly string[] = ['no first byte', 'idle', 'client closed', 'client reset'];

/**
 * Whether a `sessionEnd` is logged through the aggregator (`session_end` lines with a
 * `count`, at most one per reason per interval) rather than as a line of its own: a TCP
 * connection that moved no byte either way and ended for one of
 * {@link SILENT_TCP_END_REASONS}. Every session that carried data keeps its own line.
 */
export function isSilentTcpEnd(event: { readonly kind: string; readonly reason: string; readonly totals: { readonly bytesUp: number; readonly bytesDown: number } }): boolean {
  return event.kind === 'tcp' && event.totals.bytesUp === 0 && event.totals.bytesDown === 0 && SILENT_TCP_END_REASONS.includes(event.reason);
}

/** Aggregated event lines and per-interval drop lines for one relay; timers are unref'd. */
export class RelayLogs {
  private readonly aggregator: LogAggregator;
  private aggregatorTimer: NodeJS.Timeout | undefined;
  private aggregatorDeadline = Number.POSITIVE_INFINITY;
  /** Drop counters as of the last `dropped` lines, by reason. */
  private readonly dropsLogged: Float64Array;
  private dropsTimer: NodeJS.Timeout | undefined;
  private closed = false;

  /**
   * @param intervalMs `logAggregateIntervalMs`: the longest a key's counted events wait for their line, ms
   * @param drops the core's drop counters by reason index (read at each interval)
   * @param dropReasonNames the name of each drop reason index
   */
  constructor(
    private readonly logger: Logger,
    private intervalMs: number,
    private readonly drops: () => Float64Array,
    private readonly dropReasonNames: readonly string[],
  ) {
    this.aggregator = new LogAggregator(intervalMs);
    this.dropsLogged = new Float64Array(drops().length);
    this.armDropsTimer();
  }

  /** Lines written per event so far, for `/metrics`. */
  get totals(): LogAggregator['totals'] {
    return this.aggregator.totals;
  }

  /** Counts one occurrence of `event` for `reason`; logs it now only if it is the first of a quiet reason. */
  aggregate(event: AggregatedEvent, reason: string, sample: Record<string, unknown>): void {
    const line = this.aggregator.record(performance.now(), event, reason, sample);
    if (line !== undefined) this.logAggregated(line);
    const deadline = this.aggregator.pollTimeout();
    if (deadline !== undefined && deadline < this.aggregatorDeadline) {
      if (this.aggregatorTimer !== undefined) clearTimeout(this.aggregatorTimer);
      this.aggregatorDeadline = deadline;
      this.aggregatorTimer = setTimeout(() => this.onAggregatorTimer(), Math.max(0, deadline - performance.now()));
      this.aggregatorTimer.unref();
    }
  }

  /** A reload's new `logAggregateIntervalMs`. */
  setIntervalMs(intervalMs: number): void {
    if (intervalMs === this.intervalMs) return;
    this.intervalMs = intervalMs;
    this.aggregator.intervalMs = intervalMs;
    this.armDropsTimer();
  }

  /** Stops the timers; idempotent. */
  close(): void {
    this.closed = true;
    if (this.aggregatorTimer) clearTimeout(this.aggregatorTimer);
    if (this.dropsTimer) clearInterval(this.dropsTimer);
  }

  private onAggregatorTimer(): void {
    this.aggregatorTimer = undefined;
    this.aggregatorDeadline = Number.POSITIVE_INFINITY;
    for (const line of this.aggregator.handleTimeout(performance.now())) this.logAggregated(line);
    const deadline = this.aggregator.pollTimeout();
    if (deadline === undefined || this.closed) return;
    this.aggregatorDeadline = deadline;
    this.aggregatorTimer = setTimeout(() => this.onAggregatorTimer(), Math.max(0, deadline - performance.now()));
    this.aggregatorTimer.unref();
  }

  private logAggregated(line: AggregatedLine): void {
    const { msg, level } = AGGREGATED_EVENTS[line.event as AggregatedEvent];
    const fields = { event: line.event, reason: line.reason, count: line.count, ...(line.intervalMs > 0 ? { intervalMs: line.intervalMs } : {}), ...line.sample };
    this.logger[level](fields, line.intervalMs > 0 ? `${msg}: ${line.count} in the last ${line.intervalMs / 1000} s (one sample shown)` : msg);
  }

  /**
   * Drops are counted per packet in the core; every `logAggregateIntervalMs` each reason
   * that moved gets one `dropped` line with how many (none when nothing was dropped).
   */
  private armDropsTimer(): void {
    if (this.dropsTimer !== undefined) clearInterval(this.dropsTimer);
    this.dropsTimer = setInterval(() => this.logDrops(), this.intervalMs);
    this.dropsTimer.unref();
  }

  private logDrops(): void {
    const drops = this.drops();
    const intervalMs = this.intervalMs;
    for (let i = 0; i < drops.length; i++) {
      const count = drops[i]! - this.dropsLogged[i]!;
      if (count <= 0) continue;
      this.dropsLogged[i] = drops[i]!;
      this.logger.info({ event: 'dropped', reason: this.dropReasonNames[i], count, intervalMs }, `dropped ${count} packets (${this.dropReasonNames[i]}) in the last ${intervalMs / 1000} s`);
    }
  }
}
