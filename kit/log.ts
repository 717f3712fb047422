/**
 * The process logger: pino, JSON lines on stdout. Relay and coordinator log one line
 * per event (session start and end with totals, relay health changes), never per
 * packet. pino turns disabled levels into no-ops, so debug calls cost nothing in
 * production.
 *
 * `--log-format pretty` (or `$SLIPSTREAM_LOG_FORMAT=pretty`) is for a person reading a
 * terminal: one short line per event, `12:03:04.567 INFO  relay: listening rule=game
 * port=27015`. It is formatted here from pino's own JSON line (no pino-pretty, no
 * worker thread), so the fields are exactly those of the JSON format.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

/** Log levels accepted by `--log-level` and the `logLevel` config key. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Formats accepted by `--log-format`: `json` (one JSON object a line, the default) or `pretty`. */
export const LOG_FORMATS = ['json', 'pretty'] as const;

/** One of {@link LOG_FORMATS}. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** pino's numeric levels, by number. */
const LEVEL_NAMES: Readonly<Record<number, string>> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Fields every line has, shown in the line's head rather than as `key=value`. */
const HEAD_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * One pino JSON line as a person reads it: local time with ms, level, name, message,
 * then the other fields as `key=value` (strings quoted only when they hold spaces).
 * A line that is not JSON is returned unchanged.
 */
export function prettyLogLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const time = new Date(typeof record.time === 'number' ? record.time : Date.now());
  const stamp = `${pad2(time.getHours())}:${pad2(time.getMinutes())}:${pad2(time.getSeconds())}.${String(time.getMilliseconds()).padStart(3, '0')}`;
  const level = (LEVEL_NAMES[record.level as number] ?? String(record.level)).padEnd(5);
  const fields = Object.entries(record)
    .filter(([key]) => !HEAD_FIELDS.has(key))
    .map(([key, value]) => `${key}=${formatValue(value)}`);
  const head = `${stamp} ${level} ${typeof record.name === 'string' ? `${record.name}: ` : ''}${typeof record.msg === 'string' ? record.msg : ''}`;
  return `${fields.length > 0 ? `${head} ${fields.join(' ')}` : head}\n`;
}

/** A pino destination that writes {@link prettyLogLine}s to stdout. */
function prettyStdout(): DestinationStream {
  return { write: (line: string) => void process.stdout.write(prettyLogLine(line)) };
}

/**
 * Creates a logger named after the process's role (`relay`, `coordinator`, …).
 * @param level minimum level written; default `info`, or `$SLIPSTREAM_LOG_LEVEL` when set
 * @param format `json` or `pretty`; default `json`, or `$SLIPSTREAM_LOG_FORMAT` when set
 */
export function createLogger(name: string, level?: LogLevel, format?: LogFormat): Logger {
  const fromEnv = process.env.SLIPSTREAM_LOG_LEVEL;
  const chosen = level ?? (fromEnv && (LOG_LEVELS as readonly string[]).includes(fromEnv) ? (fromEnv as LogLevel) : 'info');
  const formatEnv = process.env.SLIPSTREAM_LOG_FORMAT;
  const chosenFormat = format ?? (formatEnv && (LOG_FORMATS as readonly string[]).includes(formatEnv) ? (formatEnv as LogFormat) : 'json');
  const options = { name, level: chosen, base: { pid: process.pid } };
  return chosenFormat === 'pretty' ? pino(options, prettyStdout()) : pino(options);
}

export type { Logger };
