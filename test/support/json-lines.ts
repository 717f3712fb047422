/**
 * Collects the JSON log lines (pino) a child process writes, for tests that wait for
 * a log event. Lines that are not JSON (banners, stack traces) are skipped.
 */
import type { Readable } from 'node:stream';

/** Appends every JSON line read from `stream` to `into`, as it arrives. */
export function collectJsonLines(stream: Readable, into: Record<string, unknown>[]): void {
  let buffered = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        into.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  });
}
