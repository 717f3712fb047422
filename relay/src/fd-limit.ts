/**
 * The process's open-file limit against `limits.sessionsMax`, and log lines an error
 * storm cannot multiply. Every UDP flow and tunnel session holds an origin-facing
 * socket and every TCP connection two, so a relay allowed more sessions than it has
 * file descriptors fails with `EMFILE` once full: new sockets, the accept of TCP
 * listeners and of `/metrics` all stop until sessions end. Node cannot raise the limit
 * (no `setrlimit`), so the driver reads it at start (`/proc/self/limits`), warns, and
 * keeps the session cap under it with room for the relay's own sockets.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';

/** File descriptors kept out of the session cap: listeners, `/metrics` connections, the log, health checks, fleet probes. */
export const FD_RESERVE = 128;

/** The smallest session cap the fd limit can lower `sessionsMax` to (a tiny limit still runs, and says so). */
const SESSIONS_MAX_FLOOR = 16;

/** An open-file limit, descriptors; `Infinity` when unlimited. */
export interface OpenFileLimit {
  readonly soft: number;
  readonly hard: number;
}

/**
 * The "Max open files" line of `/proc/self/limits` (or of `text`), or undefined where
 * it cannot be read (not Linux): the relay then runs without the check.
 */
export function readOpenFileLimit(text?: string): OpenFileLimit | undefined {
  let source = text;
  if (source === undefined) {
    try {
      source = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const line = source.split('\n').find((l) => l.startsWith('Max open files'));
  const fields = line?.slice('Max open files'.length).trim().split(/\s+/);
  if (fields === undefined || fields.length < 2) return undefined;
  const value = (field: string): number => (field === 'unlimited' ? Number.POSITIVE_INFINITY : Number(field));
  const soft = value(fields[0]!);
  const hard = value(fields[1]!);
  return Number.isFinite(soft) || soft === Number.POSITIVE_INFINITY ? { soft, hard } : undefined;
}

/**
 * The session cap the relay runs with under `limit`: `sessionsMax`, or, when that many
 * origin-facing sockets (one each) and {@link FD_RESERVE} would not fit, the soft limit
 * less the reserve (at least 16). TCP connections hold two descriptors each; the TCP
 * proxy refuses a connection that would leave less than the reserve.
 */
export function sessionsMaxWithinFdLimit(sessionsMax: number, limit: OpenFileLimit | undefined): number {
  if (limit === undefined || sessionsMax + FD_RESERVE <= limit.soft) return sessionsMax;
  return Math.max(SESSIONS_MAX_FLOOR, Math.min(sessionsMax, limit.soft - FD_RESERVE));
}

/**
 * Checks `sessionsMax` against the open-file limit and warns (`fd_limit`) when the
 * relay cannot hold that many sessions; returns the cap to run with (see
 * {@link sessionsMaxWithinFdLimit}).
 */
export function checkFdLimit(logger: Logger, sessionsMax: number, hasTcpRules: boolean, limit: OpenFileLimit | undefined): number {
  if (limit === undefined) return sessionsMax;
  const capped = sessionsMaxWithinFdLimit(sessionsMax, limit);
  // TCP connections hold two descriptors: worth a warning even when UDP would fit.
  const neededFds = sessionsMax * (hasTcpRules ? 2 : 1) + FD_RESERVE;
  if (neededFds <= limit.soft) return capped;
  const raise = limit.hard > limit.soft ? `raise the soft limit (up to the hard limit ${limit.hard}: ulimit -n, or LimitNOFILE= in the systemd unit)` : `raise the limit (ulimit -n / LimitNOFILE=; the hard limit is ${limit.hard})`;
  logger.warn(
    { event: 'fd_limit', sessionsMax, openFilesSoft: limit.soft, openFilesHard: limit.hard, neededFds, sessionsMaxRunning: capped },
    `limits.sessionsMax ${sessionsMax} needs up to ${neededFds} open files but the soft limit is ${limit.soft}: ${raise}, or lower limits.sessionsMax.${capped < sessionsMax ? ` Running with a session cap of ${capped} so that the relay and /metrics keep working.` : ' TCP connections beyond the limit are refused.'}`,
  );
  return capped;
}
