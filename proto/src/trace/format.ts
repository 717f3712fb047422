/**
 * Slipstream's own path-trace format, version 1: what a client measured on a real
 * path, one line per interval. Two encodings carry the same fields:
 *
 * JSON lines (`.jsonl`): a header line, then one object per interval.
 * ```
 * {"format":"slipstream-trace","version":1,"intervalMs":1000}
 * {"tMs":0,"rttMs":42.125,"lossFraction":0.02,"jitterMs":3.5,"probes":500}
 * ```
 * CSV (`.csv`): a header row, then one row per interval; an empty `rttMs` or
 * `jitterMs` cell means "not measured" (every probe of the interval was lost).
 * ```
 * tMs,rttMs,lossFraction,jitterMs,probes
 * 0,42.125,0.02,3.5,500
 * ```
 * Fields of an interval (see {@link TraceInterval}): `tMs` start of the interval in ms
 * since the recording began (strictly increasing); `rttMs` mean round-trip time of the
 * answered probes; `lossFraction` lost probes ÷ probes sent in the interval (0–1);
 * `jitterMs` mean absolute difference between consecutive RTT samples (the IPDV-style
 * variation the SDK's selector uses); `probes` (optional) how many probes the figures
 * rest on. An interval lasts until the next line's `tMs`; the last one lasts the
 * header's `intervalMs` (JSON lines) or as long as the one before it. Blank lines and
 * lines starting with `#` are ignored; unknown keys in JSON lines are ignored so that
 * later versions can add fields.
 *
 * Parsers never throw on bad text: they return a {@link TraceParseError} naming the
 * line and field, because trace files come from users and from other tools.
 */

/** Value of the header's `format` key. */
export const SLIP_TRACE_FORMAT = 'slipstream-trace';
/** The version this build writes and reads. */
export const SLIP_TRACE_VERSION = 1;
/** CSV header row written by {@link formatTraceHeader} (the `probes` column is optional when reading). */
export const SLIP_TRACE_CSV_COLUMNS = ['tMs', 'rttMs', 'lossFraction', 'jitterMs', 'probes'] as const;
/** Largest RTT or jitter a trace may carry, ms (the same bound as the control plane's path reports). */
export const TRACE_RTT_MS_MAX = 60_000;
/** Duration of the last interval when the trace says nothing about it (one line, no header `intervalMs`). */
export const TRACE_INTERVAL_MS_DEFAULT = 1000;
/** Bounds of `intervalMs` in a header and in {@link TraceRecorder}, ms. */
export const TRACE_INTERVAL_MS_MIN = 1;
/** Upper bound of `intervalMs`, ms (one hour). */
export const TRACE_INTERVAL_MS_MAX = 3_600_000;
/** Upper bound of `tMs`, ms (about 31 years: anything later is a unit mistake). */
export const TRACE_TIME_MS_MAX = 1e12;

/** One interval of a recorded path. */
export interface TraceInterval {
  /** Start of the interval, ms since the recording began. */
  readonly tMs: number;
  /** Mean RTT of the probes answered in the interval, ms; null when none was answered. */
  readonly rttMs: number | null;
  /** Lost probes ÷ probes sent, 0–1. */
  readonly lossFraction: number;
  /** Mean |RTT difference| between consecutive answered probes, ms; null when fewer than two were answered. */
  readonly jitterMs: number | null;
  /** Probes the interval's figures rest on (answered + lost), when known. */
  readonly probes?: number;
}

/** A parsed Slipstream trace. */
export interface SlipTrace {
  /** Intervals in time order (at least one). */
  readonly intervals: TraceInterval[];
  /** How long the last interval lasts, ms. */
  readonly lastIntervalMs: number;
}

/** Why a trace did not parse: the 1-based line, the field when one is to blame, and what was expected. */
export interface TraceParseError {
  readonly line: number;
  readonly field: string | undefined;
  readonly reason: string;
}

/** The outcome of a trace parser: never an exception. */
export type TraceParseResult<T> = { readonly ok: true; readonly trace: T } | { readonly ok: false; readonly error: TraceParseError };

/** Renders a {@link TraceParseError} as one line: `line 3: rttMs: -1 is out of range; …` (no line part for line 0: the file as a whole). */
export function formatTraceParseError(error: TraceParseError): string {
  return `${error.line > 0 ? `line ${error.line}: ` : ''}${error.field === undefined ? '' : `${error.field}: `}${error.reason}`;
}

/** The encodings of the Slipstream trace format. */
export type SlipTraceEncoding = 'jsonl' | 'csv';

function fail<T>(line: number, field: string | undefined, reason: string): TraceParseResult<T> {
  return { ok: false, error: { line, field, reason } };
}

/** Splits text into lines without the line ending (LF or CRLF). */
function lines(text: string): string[] {
  return text.split(/\r?\n/);
}

function isSkipped(line: string): boolean {
  const trimmed = line.trim();
  return trimmed === '' || trimmed.startsWith('#');
}

/** Checks one numeric field; returns a reason, or undefined when fine. */
function checkRange(value: unknown, min: number, max: number, options: { nullable?: boolean; integer?: boolean } = {}): string | undefined {
  if (value === null && options.nullable) return undefined;
  const expected = `expected ${options.integer ? 'an integer' : 'a number'} from ${min} to ${max}${options.nullable ? ' or null' : ''}`;
  if (typeof value !== 'number' || !Number.isFinite(value) || (options.integer && !Number.isInteger(value))) return `${typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value))} is not ${options.integer ? 'an integer' : 'a number'}; ${expected}`;
  if (value < min || value > max) return `${value} is out of range; ${expected}`;
  return undefined;
}

/** Validates one interval's fields (already typed as unknown values) and the time order. */
function checkInterval(line: number, fields: Record<string, unknown>, previousTMs: number): TraceParseResult<TraceInterval> {
  const bounds: [string, number, number, { nullable?: boolean; integer?: boolean }][] = [
    ['tMs', 0, TRACE_TIME_MS_MAX, {}],
    ['rttMs', 0, TRACE_RTT_MS_MAX, { nullable: true }],
    ['lossFraction', 0, 1, {}],
    ['jitterMs', 0, TRACE_RTT_MS_MAX, { nullable: true }],
  ];
  for (const [field, min, max, options] of bounds) {
    if (!(field in fields) || fields[field] === undefined) return fail(line, field, 'missing');
    const reason = checkRange(fields[field], min, max, options);
    if (reason !== undefined) return fail(line, field, reason);
  }
  const tMs = fields.tMs as number;
  if (!(tMs > previousTMs)) return fail(line, 'tMs', `${tMs} is not after the previous interval's ${previousTMs}; intervals must be in strictly increasing time order`);
  const interval: { -readonly [K in keyof TraceInterval]: TraceInterval[K] } = {
    tMs,
    rttMs: fields.rttMs as number | null,
    lossFraction: fields.lossFraction as number,
    jitterMs: fields.jitterMs as number | null,
  };
  if (fields.probes !== undefined && fields.probes !== null) {
    const reason = checkRange(fields.probes, 0, Number.MAX_SAFE_INTEGER, { integer: true });
    if (reason !== undefined) return fail(line, 'probes', reason);
    interval.probes = fields.probes as number;
  }
  return { ok: true, trace: interval };
}

function finish(intervals: TraceInterval[], headerIntervalMs: number | undefined, lastLine: number): TraceParseResult<SlipTrace> {
  if (intervals.length === 0) return fail(lastLine, undefined, 'no intervals; expected at least one interval line');
  const n = intervals.length;
  const lastIntervalMs = headerIntervalMs ?? (n >= 2 ? intervals[n - 1]!.tMs - intervals[n - 2]!.tMs : TRACE_INTERVAL_MS_DEFAULT);
  return { ok: true, trace: { intervals, lastIntervalMs } };
}

/** Parses the JSON-lines encoding (header line first). Never throws. */
export function parseSlipTraceJsonl(text: string): TraceParseResult<SlipTrace> {
  const all = lines(text);
  let headerSeen = false;
  let headerIntervalMs: number | undefined;
  const intervals: TraceInterval[] = [];
  let previousTMs = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < all.length; i++) {
    const raw = all[i]!;
    if (isSkipped(raw)) continue;
    const lineNo = i + 1;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      return fail(lineNo, undefined, `not valid JSON (${(error as Error).message}); expected one JSON object per line`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(lineNo, undefined, 'expected a JSON object');
    const fields = value as Record<string, unknown>;
    if (!headerSeen) {
      if (fields.format !== SLIP_TRACE_FORMAT) return fail(lineNo, 'format', `${JSON.stringify(fields.format) ?? 'missing'}; the first line must be the header {"format":"${SLIP_TRACE_FORMAT}","version":${SLIP_TRACE_VERSION}}`);
      if (fields.version !== SLIP_TRACE_VERSION) return fail(lineNo, 'version', `${JSON.stringify(fields.version) ?? 'missing'} is not supported; this build reads version ${SLIP_TRACE_VERSION}`);
      if (fields.intervalMs !== undefined) {
        const reason = checkRange(fields.intervalMs, TRACE_INTERVAL_MS_MIN, TRACE_INTERVAL_MS_MAX);
        if (reason !== undefined) return fail(lineNo, 'intervalMs', reason);
        headerIntervalMs = fields.intervalMs as number;
      }
      headerSeen = true;
      continue;
    }
    const checked = checkInterval(lineNo, fields, previousTMs);
    if (!checked.ok) return checked;
    intervals.push(checked.trace);
    previousTMs = checked.trace.tMs;
  }
  if (!headerSeen) return fail(all.length, 'format', `empty; expected the header {"format":"${SLIP_TRACE_FORMAT}","version":${SLIP_TRACE_VERSION}} and interval lines`);
  return finish(intervals, headerIntervalMs, all.length);
}

/** Parses one CSV cell: empty → null, otherwise a number (NaN when not numeric, caught by the range check). */
function csvCell(cell: string): number | null {
  const trimmed = cell.trim();
  if (trimmed === '') return null;
  return Number(trimmed);
}

/** Parses the CSV encoding (header row first). Never throws. */
export function parseSlipTraceCsv(text: string): TraceParseResult<SlipTrace> {
  const all = lines(text);
  let columns: string[] | undefined;
  const intervals: TraceInterval[] = [];
  let previousTMs = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < all.length; i++) {
    const raw = all[i]!;
    if (isSkipped(raw)) continue;
    const lineNo = i + 1;
    const cells = raw.split(',');
    if (columns === undefined) {
      columns = cells.map((c) => c.trim());
      const required = SLIP_TRACE_CSV_COLUMNS.slice(0, 4);
      const ok = columns.length >= 4 && columns.length <= 5 && required.every((name, k) => columns![k] === name) && (columns.length === 4 || columns[4] === 'probes');
      if (!ok) return fail(lineNo, undefined, `header row '${raw.trim()}' is not '${required.join(',')}' (optionally followed by ',probes')`);
      continue;
    }
    if (cells.length !== columns.length) return fail(lineNo, undefined, `${cells.length} cells; expected ${columns.length} (${columns.join(',')})`);
    const fields: Record<string, unknown> = {};
    for (let k = 0; k < columns.length; k++) {
      const value = csvCell(cells[k]!);
      // Only rttMs, jitterMs and probes may be empty; a missing tMs or loss is an error.
      fields[columns[k]!] = value === null && (columns[k] === 'tMs' || columns[k] === 'lossFraction') ? undefined : value;
    }
    const checked = checkInterval(lineNo, fields, previousTMs);
    if (!checked.ok) return checked;
    intervals.push(checked.trace);
    previousTMs = checked.trace.tMs;
  }
  if (columns === undefined) return fail(all.length, undefined, `empty; expected the header row '${SLIP_TRACE_CSV_COLUMNS.join(',')}' and interval rows`);
  return finish(intervals, undefined, all.length);
}

/** Parses either encoding, told apart by the first meaningful line (`{` → JSON lines). Never throws. */
export function parseSlipTrace(text: string): TraceParseResult<SlipTrace> {
  const first = lines(text).find((line) => !isSkipped(line));
  return first !== undefined && first.trim().startsWith('{') ? parseSlipTraceJsonl(text) : parseSlipTraceCsv(text);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** The header line of an encoding (no line ending). */
export function formatTraceHeader(encoding: SlipTraceEncoding, intervalMs: number): string {
  return encoding === 'jsonl' ? JSON.stringify({ format: SLIP_TRACE_FORMAT, version: SLIP_TRACE_VERSION, intervalMs }) : SLIP_TRACE_CSV_COLUMNS.join(',');
}

/** One interval line (no line ending); RTT and jitter to µs, loss to 6 decimals. */
export function formatTraceInterval(encoding: SlipTraceEncoding, interval: TraceInterval): string {
  const rtt = interval.rttMs === null ? null : round(interval.rttMs, 3);
  const jitter = interval.jitterMs === null ? null : round(interval.jitterMs, 3);
  const loss = round(interval.lossFraction, 6);
  if (encoding === 'jsonl') {
    return JSON.stringify(interval.probes === undefined ? { tMs: interval.tMs, rttMs: rtt, lossFraction: loss, jitterMs: jitter } : { tMs: interval.tMs, rttMs: rtt, lossFraction: loss, jitterMs: jitter, probes: interval.probes });
  }
  return `${interval.tMs},${rtt ?? ''},${loss},${jitter ?? ''},${interval.probes ?? ''}`;
}
