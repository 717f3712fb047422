/**
 * The process logger: pino, JSON lines on stdout. Relay and coordinator log one line
 * per event (session start and end with totals, relay health changes), never per
 * packet. pino turns disabled levels into no-ops, so debug calls cost nothing in
 * production.
 */
import { pino, type Logger } from 'pino';

/** Log levels accepted by `--log-level` and the `logLevel` config key. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Creates a logger named after the process's role (`relay`, `coordinator`, …).
 * @param level minimum level written; default `info`, or `$SLIPSTREAM_LOG_LEVEL` when set
 */
export function createLogger(name: string, level?: LogLevel): Logger {
  const fromEnv = process.env.SLIPSTREAM_LOG_LEVEL;
  const chosen = level ?? (fromEnv && (LOG_LEVELS as readonly string[]).includes(fromEnv) ? (fromEnv as LogLevel) : 'info');
  return pino({ name, level: chosen, base: { pid: process.pid } });
}

export type { Logger };
