/**
 * Collects the JSON log lines (pino) a child process writes, for tests that wait for
 * a log event. Lines that are not JSON (banners, stack traces) are skipped.
 */
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

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

/** A started process, its JSON log lines and its stderr, for tests that wait for a log event. */
export class JsonLogProcess {
  /** JSON log lines read so far. */
  readonly lines: Record<string, unknown>[] = [];
  /** Everything written to stderr so far. */
  stderr = '';
  /** Settles when the process exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(readonly child: ChildProcess) {
    collectJsonLines(child.stdout!, this.lines);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Polls every 20 ms for a line that `match`es; throws after `timeoutMs`, or at once if the process exits first. */
  async waitLog(match: (line: Record<string, unknown>) => boolean, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    for (let waited = 0; waited < timeoutMs; waited += 20) {
      const found = this.lines.find(match);
      if (found) return found;
      if (this.child.exitCode !== null) throw new Error(`process exited with ${this.child.exitCode} waiting for ${what}; stderr: ${this.stderr}`);
      await sleep(20);
    }
    throw new Error(`no log line for ${what} within ${timeoutMs} ms; last: ${JSON.stringify(this.lines.slice(-3))}`);
  }
}
