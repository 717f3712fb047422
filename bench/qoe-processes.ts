/**
 * Child processes of `slipstream bench qoe`: the built CLI started as a long-running
 * child (coordinator, relays, `connect`, `sim proxy`) with its output collected, and
 * a registry so that every process the benchmark started is stopped by PID at the end,
 * on error and on Ctrl-C (SIGINT/SIGTERM to the benchmark). Bench code cannot import
 * test/support, so this is the benchmark's own small copy of that pattern (signalling
 * by PID is shared with it through kit/child-signal.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { signalIfRunning } from '../kit/child-signal.js';

const CLI_PATH = fileURLToPath(new URL('../cli/slipstream.js', import.meta.url));
/** How long a SIGTERMed child gets before it is SIGKILLed, ms. */
const STOP_GRACE_MS = 3000;

/** A running `node dist/cli/slipstream.js …` with its output collected. */
export class BenchChild {
  /** Everything written to stdout so far. */
  stdout = '';
  /** Everything written to stderr so far. */
  stderr = '';
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (this.stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr += c));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** True until the process exits. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Polls `stream` every 20 ms until `pattern` matches; throws with the output's tail after `timeoutMs` or on exit. */
  async waitFor(pattern: RegExp, stream: 'stdout' | 'stderr', timeoutMs: number): Promise<RegExpExecArray> {
    for (let waitedMs = 0; waitedMs < timeoutMs; waitedMs += 20) {
      const m = pattern.exec(this[stream]);
      if (m) return m;
      if (!this.running) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`no ${pattern} on ${stream} within ${timeoutMs} ms; stdout: ${this.stdout.slice(-600)} stderr: ${this.stderr.slice(-600)}`);
  }

  /** Sends `signal` by PID unless the process has already exited. */
  kill(signal: NodeJS.Signals): void {
    signalIfRunning(this.child, signal);
  }

  /** SIGTERM, then SIGKILL after {@link STOP_GRACE_MS}; resolves once it has exited. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.kill('SIGTERM');
    const killer = setTimeout(() => this.kill('SIGKILL'), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(killer);
  }
}

/** Every child started through it, stopped together by PID by {@link stopAll} (also on SIGINT/SIGTERM while installed). */
export class ChildRegistry {
  private readonly children: BenchChild[] = [];
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    for (const c of this.children) c.kill('SIGKILL');
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };

  /** Installs the SIGINT/SIGTERM handlers that kill the children by PID before exiting. */
  constructor() {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  /** Spawns the CLI with `args` (stdin ignored, stdout and stderr piped) and registers it. */
  start(args: readonly string[]): BenchChild {
    const c = new BenchChild(spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    this.children.push(c);
    return c;
  }

  /** Stops every registered child (SIGTERM, then SIGKILL after the grace) and removes the signal handlers. */
  async stopAll(): Promise<void> {
    await Promise.all(this.children.map((c) => c.stop()));
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
  }
}
