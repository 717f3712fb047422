/**
 * The built `slipstream` CLI started as a long-running child process (a coordinator, a
 * relay, `connect`, `sim proxy`…) for end-to-end tests, with everything it writes
 * collected so a test can wait for a line. Every process started here is SIGKILLed, by
 * PID, in a root-level `after` hook of the test file that imports this module, so a
 * failing test leaves no process (and no port it holds) behind. Tests that want a clean
 * exit still stop their processes themselves (`kill('SIGTERM')`, `stop()`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI_PATH } from './run-cli.js';
import { signalIfRunning } from '../../kit/child-signal.js';

const started = new Set<ChildProcess>();
after(() => {
  for (const child of started) signalIfRunning(child, 'SIGKILL');
});

/** A running `node dist/cli/slipstream.js …` with its output collected. */
export class CliProcess {
  /** Everything written to stdout so far. */
  stdout = '';
  /** Everything written to stderr so far. */
  stderr = '';
  /** stdout and stderr together, in the order the chunks arrived. */
  output = '';
  /** Resolves with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    started.add(child);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      this.stdout += c;
      this.output += c;
    });
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      this.stderr += c;
      this.output += c;
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /**
   * Spawns the CLI with `args` (stdin ignored, stdout and stderr piped); `env` replaces
   * the environment when given; `nodeArgs` go to node before the script (V8 flags).
   */
  static start(args: readonly string[], env?: NodeJS.ProcessEnv, nodeArgs: readonly string[] = []): CliProcess {
    return new CliProcess(spawn(process.execPath, [...nodeArgs, CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) }));
  }

  /**
   * Polls `stream` every 20 ms until `pattern` matches and returns the match. Throws,
   * with the tail of both streams, after `timeoutMs` or once the process has exited
   * without printing it.
   */
  async waitFor(pattern: RegExp, stream: 'stdout' | 'stderr', timeoutMs: number): Promise<RegExpExecArray> {
    for (let waited = 0; waited < timeoutMs; waited += 20) {
      const m = pattern.exec(this[stream]);
      if (m) return m;
      if (this.child.exitCode !== null) break;
      await sleep(20);
    }
    throw new Error(`no ${pattern} on ${stream} within ${timeoutMs} ms; stdout: ${this.stdout.slice(-800)} stderr: ${this.stderr.slice(-800)}`);
  }

  /** Sends `signal` by PID unless the process has already exited. */
  kill(signal: NodeJS.Signals): void {
    signalIfRunning(this.child, signal);
  }

  /** SIGTERM (unless already exited), then waits for the exit. */
  async stop(): Promise<void> {
    this.kill('SIGTERM');
    await this.exited;
  }
}
