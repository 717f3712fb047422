/**
 * Signalling a child process by PID only while it still runs, so that stopping a
 * process twice, or one that has already exited, is harmless. Used by the benchmarks
 * and the end-to-end tests, which start the CLI as real child processes.
 */
import type { ChildProcess } from 'node:child_process';

/** Sends `signal` to `child` by PID unless it has already exited (an exit that races the signal is ignored). */
export function signalIfRunning(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    // already gone
  }
}
