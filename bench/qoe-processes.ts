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

  /**
   * @param name which process it is, for messages.
   * @param keepChars output kept per stream, characters: beyond twice that, only the
   *   last `keepChars` are kept (a process that runs for hours keeps printing status lines).
   */
  constructor(
    readonly child: ChildProcess,
    readonly name = 'child',
    keepChars = Number.POSITIVE_INFINITY,
  ) {
    const trim = (text: string): string => (text.length > 2 * keepChars ? text.slice(-keepChars) : text);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (this.stdout = trim(this.stdout + c)));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr = trim(this.stderr + c)));
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
  /** Output kept per stream of each child, characters (the tail); unbounded unless set — a long `slipstream dev` sets it. */
  keepChars = Number.POSITIVE_INFINITY;
  /** Set by {@link stopAll}: no process starts after it. */
  private stopped = false;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    for (const c of this.children) c.kill('SIGKILL');
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };

  /**
   * Installs the SIGINT/SIGTERM handlers that kill the children by PID before exiting,
   * unless `handleSignals` is false (`slipstream dev` stops them gracefully itself).
   */
  constructor(private readonly handleSignals = true) {
    if (!handleSignals) return;
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  /** Every child started so far, in start order. */
  get all(): readonly BenchChild[] {
    return this.children;
  }

  /** Spawns the CLI with `args` (stdin ignored, stdout and stderr piped) and registers it; `name` says which process it is in messages (default the args). */
  start(args: readonly string[], name = args.join(' ')): BenchChild {
    // A start racing a stop (Ctrl-C while a fleet forms) would leave a process nobody stops.
    if (this.stopped) throw new Error(`not starting ${name}: the processes are being stopped`);
    const c = new BenchChild(spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }), name, this.keepChars);
    this.children.push(c);
    return c;
  }

  /** Stops every registered child (SIGTERM, then SIGKILL after the grace) and removes the signal handlers; no child starts after it. */
  async stopAll(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.children.map((c) => c.stop()));
    if (!this.handleSignals) return;
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
  }
}
