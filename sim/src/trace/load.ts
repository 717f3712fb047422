/**
 * Reading trace files into the `trace` option of a link model, for the proxy's API
 * and config and for scenario files. The format is told from the content when not
 * given: a JSON object or a `tMs,…` header is a Slipstream trace; bare integers are a
 * mahimahi trace.
 */
import { readFileSync } from 'node:fs';
import { parseSlipTrace, type TraceParseError, type TraceParseResult } from '../../../proto/src/trace/format.js';
import { parseMahimahiTrace } from '../core/trace-mahimahi.js';
import type { LinkTraceSpec, TraceLossPattern, TraceShare } from '../core/trace-replay.js';

/** Trace file formats. */
export type TraceFileFormat = 'slipstream' | 'mahimahi';

/** Largest trace file read, bytes (64 MiB: ten million mahimahi lines fit). */
export const TRACE_FILE_BYTES_MAX = 64 * 1024 * 1024;

/** Replay options that come with a trace file (see `IntervalTraceSpec` / `DeliveryTraceSpec`). */
export interface TraceReplayOptions {
  /** Slipstream traces: how the round trip maps onto this direction. Default `split`. */
  readonly share?: TraceShare;
  /** Slipstream traces: start over after the last interval. Default false (mahimahi traces always loop). */
  readonly loop?: boolean;
  /** Slipstream traces: how loss is drawn. Default `spread`. */
  readonly lossPattern?: TraceLossPattern;
  /** mahimahi traces: queue in front of the schedule, packets. Default 1000. */
  readonly queuePackets?: number;
}

/** Tells the format of trace text from its first meaningful line. */
export function detectTraceFormat(text: string): TraceFileFormat {
  for (const line of text.split('\n', 1000)) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    return /^\d+$/.test(trimmed) ? 'mahimahi' : 'slipstream';
  }
  return 'slipstream';
}

/**
 * Parses trace text into a link model's `trace` option. Never throws; options that do
 * not apply to the format are an error (`field` names them), not silently dropped.
 */
export function traceSpecFromText(text: string, format: TraceFileFormat | undefined, options: TraceReplayOptions = {}): TraceParseResult<LinkTraceSpec> {
  const chosen = format ?? detectTraceFormat(text);
  if (chosen === 'mahimahi') {
    for (const key of ['share', 'loop', 'lossPattern'] as const) {
      if (options[key] !== undefined) return { ok: false, error: { line: 0, field: key, reason: `applies to Slipstream traces only; a mahimahi trace always loops and only sets the rate (use queuePackets)` } };
    }
    const parsed = parseMahimahiTrace(text);
    if (!parsed.ok) return parsed;
    return { ok: true, trace: { kind: 'mahimahi', deliveryMs: parsed.trace.deliveryMs, ...(options.queuePackets === undefined ? {} : { queuePackets: options.queuePackets }) } };
  }
  if (options.queuePackets !== undefined) return { ok: false, error: { line: 0, field: 'queuePackets', reason: 'applies to mahimahi traces only' } };
  const parsed = parseSlipTrace(text);
  if (!parsed.ok) return parsed;
  return {
    ok: true,
    trace: {
      kind: 'intervals',
      intervals: parsed.trace.intervals,
      lastIntervalMs: parsed.trace.lastIntervalMs,
      ...(options.share === undefined ? {} : { share: options.share }),
      ...(options.loop === undefined ? {} : { loop: options.loop }),
      ...(options.lossPattern === undefined ? {} : { lossPattern: options.lossPattern }),
    },
  };
}

/** Reads and parses a trace file; an unreadable or oversized file is an error at line 0. Never throws. */
export function loadTraceFile(path: string, format: TraceFileFormat | undefined, options: TraceReplayOptions = {}): TraceParseResult<LinkTraceSpec> {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > TRACE_FILE_BYTES_MAX) return { ok: false, error: { line: 0, field: undefined, reason: `${bytes.length} bytes; trace files are limited to ${TRACE_FILE_BYTES_MAX}` } };
    text = bytes.toString('utf8');
  } catch (error) {
    const failure: TraceParseError = { line: 0, field: undefined, reason: `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
    return { ok: false, error: failure };
  }
  return traceSpecFromText(text, format, options);
}
