/**
 * Measuring tools of `slipstream bench relay` (bench/relay.ts): the origin, child
 * processes, per-process CPU and run-queue figures from /proc, and one measurement of
 * packets/s, round trips or TCP throughput through a forwarder. Benchmark-only code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { LOAD_SCRIPT as LOAD, type LoadJob, type LoadResult } from './relay-load.js';
import { ORIGIN_SCRIPT as ORIGIN, type OriginCounts, type OriginReady } from './relay-origin.js';

export { HEALTH_PAYLOAD } from './relay-origin.js';

const MIB = 1 << 20;

/** Packets per second of each latency path (the direct reference sends on every DIRECT_EVERY-th tick). */
export const LATENCY_RATE_HZ = 10_000;
/** Latency runs made before a path that lost nearly every echo fails the bench (see measureRttTogether). */
const LATENCY_ATTEMPTS = 2;
const CLOCK_TICKS_PER_SECOND = 100;

/** Median of the numbers that are not NaN; NaN when none. */
export function median(values: number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** `value` rounded to `digits` decimals. */
export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** What the bench's measuring tools run on: UDP (`batched`: the udp-batch addon's recvmmsg/sendmmsg; `dgram`: Node's, when it cannot load or was asked for) and TCP. */
export interface BenchTools {
  readonly udp: 'batched' | 'dgram';
  /** Why `udp` is what it is (the addon's load error when `dgram`). */
  readonly udpReason: string;
  /** TCP sender and sink: `iperf3` (client and server, bench/relay-iperf.ts) or `node` (the load generator and origin children, each its own event loop). */
  readonly tcp: 'iperf3' | 'node';
  /** iperf3's version, or why the Node tools run. */
  readonly tcpReason: string;
}

/**
 * The origin, a child process (relay-origin.ts): counts datagrams, echoes when asked,
 * answers health checks, and a TCP sink beside it. Its counters are read over its pipe.
 */
export class Origin {
  private seq = 0;
  private constructor(
    readonly child: Child,
    readonly ready: OriginReady,
  ) {}
  /** Starts the origin on `udp` tools (`auto`: the addon when it loads, else dgram). */
  static async start(udp: 'auto' | 'batched' | 'dgram', children: Child[]): Promise<Origin> {
    const child = new Child(spawn(process.execPath, [ORIGIN, udp], { stdio: ['pipe', 'pipe', 'inherit'] }));
    children.push(child);
    const line = await child.waitFor((l) => l.startsWith('ready ') || l.startsWith('error '), 10_000);
    if (line.startsWith('error ')) throw new Error(`origin: ${line.slice(6)}`);
    return new Origin(child, JSON.parse(line.slice(6)) as OriginReady);
  }
  get pid(): number {
    return this.child.process.pid!;
  }
  get udpPort(): number {
    return this.ready.udpPort;
  }
  get tcpPort(): number {
    return this.ready.tcpPort;
  }
  /** Echo every datagram back (latency rows) or only count it. */
  async setEcho(on: boolean): Promise<void> {
    await this.ask(`echo ${on ? 'on' : 'off'}`);
  }
  /** Its counters now (see {@link OriginCounts}). */
  counts(): Promise<OriginCounts> {
    return this.ask('counts') as Promise<OriginCounts>;
  }
  /** Zeroes the TCP sink's byte count and first/last times. */
  async tcpReset(): Promise<void> {
    await this.ask('tcpReset');
  }
  private async ask(command: string): Promise<object> {
    const seq = ++this.seq;
    this.child.process.stdin!.write(`${seq} ${command}\n`);
    const line = await this.child.waitFor((l) => l.startsWith(`${seq} `), 10_000);
    return JSON.parse(line.slice(String(seq).length + 1)) as object;
  }
}

/** A child process we started, with its stdout lines. */
export class Child {
  readonly lines: string[] = [];
  private waiters: { match: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  constructor(readonly process: ChildProcess) {
    let buffered = '';
    process.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => (w.match(line) ? (w.resolve(line), false) : true));
      }
    });
  }
  waitFor(match: (line: string) => boolean, timeoutMs: number): Promise<string> {
    const found = this.lines.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => {
        clearTimeout(timer);
        reject(new Error(`child ${this.process.pid} exited with code ${code}; stdout: ${this.lines.slice(-5).join(' | ')}`));
      };
      const timer = setTimeout(() => (this.process.off('exit', onExit), reject(new Error(`child ${this.process.pid} printed nothing matching within ${timeoutMs} ms; stdout: ${this.lines.slice(-5).join(' | ')}`))), timeoutMs);
      // Removed once answered: the origin is asked hundreds of times in one run.
      this.waiters.push({ match, resolve: (line) => (clearTimeout(timer), this.process.off('exit', onExit), resolve(line)) });
      this.process.once('exit', onExit);
    });
  }
  stop(): Promise<void> {
    if (this.process.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.process.kill('SIGKILL'), 5000);
      this.process.once('exit', () => (clearTimeout(timer), resolve()));
      this.process.kill('SIGTERM');
    });
  }
}

/** CPU time (user + system) of a process so far, µs, from /proc (Linux; `statPath`: another stat file of the same format, a thread's); NaN elsewhere. */
export function cpuUs(pid: number, statPath = `/proc/${pid}/stat`): number {
  try {
    const fields = readFileSync(statPath, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND) * 1e6;
  } catch {
    return Number.NaN;
  }
}

/** Time a process has spent runnable but waiting for a CPU so far, µs, from /proc/PID/schedstat (Linux); NaN elsewhere. */
export function runQueueWaitUs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1000;
  } catch {
    return Number.NaN;
  }
}

/** Runs the load generator child (relay-load.ts) with `job` and returns its result; throws on its error. */
export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const child = new Child(spawn(process.execPath, [LOAD, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const line = await child.waitFor((l) => l.startsWith('{'), job.durationMs + 30_000);
  await child.stop();
  const result = JSON.parse(line) as LoadResult;
  if (result.error) throw new Error(`load generator: ${result.error}`);
  return result;
}

/** A forwarder under measurement: its ports and the process whose CPU counts (nginx: its worker). */
export interface Target {
  readonly name: 'relay' | 'dgram' | 'workers' | 'baseline' | 'nginx';
  readonly pid: number;
  readonly udpPort: number;
  readonly tcpPort: number;
}

/** CPU time (user + system) of each thread of a process so far, µs, by thread id, from /proc/PID/task (Linux); empty elsewhere. */
export function threadCpuUs(pid: number): Map<number, number> {
  const byThread = new Map<number, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const us = cpuUs(Number(tid), `/proc/${pid}/task/${tid}/stat`);
      if (!Number.isNaN(us)) byThread.set(Number(tid), us);
    }
  } catch {
    // not Linux, or the process is gone: no per-thread figures
  }
  return byThread;
}

/**
 * A `blast` measurement: delivered datagrams/s, the target's CPU per delivered datagram
 * (µs), its CPU time over the offered-load time (1.0 = one core busy) and each thread's
 * (busiest first); the tools' own: datagrams/s the generator offered, and the generator's
 * and the origin's CPU time over the same time (cores).
 */
export interface PpsResult {
  pps: number;
  cpuUsPerPacket: number;
  cpuCores: number;
  threadCores: number[];
  offeredPps: number;
  generatorCpuCores: number;
  originCpuCores: number;
}

/** Datagrams/s `target` delivers to the origin under a `blast` job, and its CPU per delivered datagram, µs. */
export async function measurePps(origin: Origin, target: Target, job: Omit<LoadJob, 'port'>): Promise<PpsResult> {
  await origin.setEcho(false);
  const before = await origin.counts();
  const cpuBefore = cpuUs(target.pid);
  const threadsBefore = threadCpuUs(target.pid);
  const load = await runLoad({ ...job, port: target.udpPort });
  // Let what is in flight land, so both targets are judged the same way.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const after = await origin.counts();
  const delivered = after.received - before.received;
  const cpu = cpuUs(target.pid) - cpuBefore;
  const wallUs = job.durationMs * 1000;
  const threadCores = [...threadCpuUs(target.pid)].map(([tid, us]) => (us - (threadsBefore.get(tid) ?? 0)) / wallUs).sort((a, b) => b - a);
  return {
    pps: delivered / (job.durationMs / 1000),
    cpuUsPerPacket: delivered > 0 ? cpu / delivered : Number.NaN,
    cpuCores: cpu / wallUs,
    threadCores,
    offeredPps: load.sent / ((load.windowMs ?? job.durationMs) / 1000),
    generatorCpuCores: (load.cpuUs ?? Number.NaN) / ((load.windowMs ?? job.durationMs) * 1000),
    // The origin's CPU over the window and the 100 ms after it, as a share of the window.
    originCpuCores: (after.cpuUs - before.cpuUs) / wallUs,
  };
}

/**
 * Round trips over several paths at once (see LoadJob.paths); per path, in order.
 * Lost echoes are reported (as lossFraction), not fatal, unless nearly everything was
 * lost on a path: that is a stalled machine (a forwarder descheduled long enough for its
 * socket buffer to overflow), not a figure, so the run is made once more before the
 * bench gives up with what it saw both times.
 */
export async function measureRttTogether(origin: Origin, paths: LoadJob['paths'], count: number): Promise<{ p50: number; p99: number; lossFraction: number }[]> {
  const seen: string[] = [];
  for (let attempt = 1; attempt <= LATENCY_ATTEMPTS; attempt++) {
    await origin.setEcho(true);
    const result = await runLoad({ mode: 'latency', port: 0, flows: 1, sizeBytes: 0, durationMs: 0, rateHz: LATENCY_RATE_HZ, count, tunnel: undefined, paths });
    await origin.setEcho(false);
    const expected = paths!.map((p) => Math.ceil(count / (p.every ?? 1)));
    const starved = result.rttUsByPath!.findIndex((path, i) => path.received < expected[i]! / 10);
    if (starved === -1) return result.rttUsByPath!.map((path, i) => ({ p50: path.p50, p99: path.p99, lossFraction: 1 - path.received / expected[i]! }));
    seen.push(`${result.rttUsByPath![starved]!.received} of ${expected[starved]}`);
  }
  throw new Error(`latency run lost nearly every echo ${LATENCY_ATTEMPTS} times (${seen.join(', then ')}): the machine stalled the forwarders; run again when it is quieter`);
}

/** A TCP bulk measurement: throughput where it lands (the origin's sink), Gbit/s; the forwarder's, the sender's and the sink's CPU time over the window (cores). */
export interface TcpResult {
  gbps: number;
  cpuCores: number;
  /** The forwarder's CPU per MiB carried, µs (cores ÷ throughput: comparable however busy the machine was). */
  cpuUsPerMiB: number;
  senderCpuCores: number;
  sinkCpuCores: number;
}

/**
 * TCP bulk throughput through `target`'s TCP port with `conns` connections for
 * `durationMs`: the load generator child writes, the origin child's sink counts; the
 * throughput is the bytes the sink read over its first-to-last-byte time.
 */
export async function measureTcp(origin: Origin, target: Target, conns: number, durationMs: number): Promise<TcpResult> {
  await origin.tcpReset();
  const before = await origin.counts();
  const cpuBefore = cpuUs(target.pid);
  const load = await runLoad({ mode: 'tcp', port: target.tcpPort, flows: conns, sizeBytes: 0, durationMs, rateHz: 0, count: 0, tunnel: undefined });
  // The last bytes land after the sender closed: wait until the sink has been quiet for 50 ms.
  let after = await origin.counts();
  for (let i = 0; i < 40; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = await origin.counts();
    if (now.tcpBytes === after.tcpBytes) break;
    after = now;
  }
  const sinkMs = after.tcpLastMs - after.tcpFirstMs;
  const windowUs = (load.windowMs ?? durationMs) * 1000;
  // The forwarder's and the sink's CPU over the whole measurement (connects and drain
  // included: a slight overstatement) as a share of the longer of the two windows.
  const busyUs = Math.max(windowUs, sinkMs * 1000);
  const cpu = cpuUs(target.pid) - cpuBefore;
  return {
    gbps: sinkMs > 0 ? (after.tcpBytes * 8) / (sinkMs / 1000) / 1e9 : Number.NaN,
    cpuCores: cpu / busyUs,
    cpuUsPerMiB: after.tcpBytes > 0 ? cpu / (after.tcpBytes / MIB) : Number.NaN,
    senderCpuCores: (load.cpuUs ?? Number.NaN) / windowUs,
    sinkCpuCores: (after.cpuUs - before.cpuUs) / busyUs,
  };
}
