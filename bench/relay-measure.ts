/**
 * Measuring tools of `slipstream bench relay` (bench/relay.ts): the origin, child
 * processes, per-process CPU and run-queue figures from /proc, and one measurement of
 * packets/s, round trips or TCP throughput through a forwarder. Benchmark-only code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { LOAD_SCRIPT as LOAD, type LoadJob, type LoadResult } from './relay-load.js';

/** Packets per second of each latency path (the direct reference sends on every DIRECT_EVERY-th tick). */
export const LATENCY_RATE_HZ = 10_000;
/** Latency runs made before a path that lost nearly every echo fails the bench (see measureRttTogether). */
const LATENCY_ATTEMPTS = 2;
/** What the relay's UDP health checks send; the origin answers it and does not count it. */
export const HEALTH_PAYLOAD = Buffer.from('HC');
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

/** The origin: counts datagrams, echoes when asked, answers health checks; a TCP sink beside it. */
export class Origin {
  received = 0;
  echo = false;
  tcpBytes = 0;
  private constructor(
    readonly udp: dgram.Socket,
    readonly tcp: net.Server,
  ) {
    udp.on('message', (message, from) => {
      if (message.length === HEALTH_PAYLOAD.length && message.equals(HEALTH_PAYLOAD)) return void udp.send(message, from.port, from.address);
      this.received++;
      if (this.echo) udp.send(message, from.port, from.address);
    });
  }
  static async start(): Promise<Origin> {
    const udp = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const tcp = net.createServer((socket) => {
      socket.on('data', (chunk: Buffer) => (origin.tcpBytes += chunk.length));
      socket.on('error', () => undefined);
    });
    const origin = new Origin(udp, tcp);
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    return origin;
  }
  get udpPort(): number {
    return this.udp.address().port;
  }
  get tcpPort(): number {
    return (this.tcp.address() as net.AddressInfo).port;
  }
  close(): void {
    this.udp.close();
    this.tcp.close();
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
      const timer = setTimeout(() => reject(new Error(`child ${this.process.pid} printed nothing matching within ${timeoutMs} ms; stdout: ${this.lines.slice(-5).join(' | ')}`)), timeoutMs);
      this.waiters.push({ match, resolve: (line) => (clearTimeout(timer), resolve(line)) });
      this.process.once('exit', (code) => (clearTimeout(timer), reject(new Error(`child ${this.process.pid} exited with code ${code}; stdout: ${this.lines.slice(-5).join(' | ')}`))));
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

/** A `blast` measurement: delivered datagrams/s, the target's CPU per delivered datagram (µs), its CPU time over the offered-load time (1.0 = one core busy) and each thread's (busiest first). */
export interface PpsResult {
  pps: number;
  cpuUsPerPacket: number;
  cpuCores: number;
  threadCores: number[];
}

/** Datagrams/s `target` delivers to the origin under a `blast` job, and its CPU per delivered datagram, µs. */
export async function measurePps(origin: Origin, target: Target, job: Omit<LoadJob, 'port'>): Promise<PpsResult> {
  origin.echo = false;
  const before = origin.received;
  const cpuBefore = cpuUs(target.pid);
  const threadsBefore = threadCpuUs(target.pid);
  await runLoad({ ...job, port: target.udpPort });
  // Let what is in flight land, so both targets are judged the same way.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const delivered = origin.received - before;
  const cpu = cpuUs(target.pid) - cpuBefore;
  const wallUs = job.durationMs * 1000;
  const threadCores = [...threadCpuUs(target.pid)].map(([tid, us]) => (us - (threadsBefore.get(tid) ?? 0)) / wallUs).sort((a, b) => b - a);
  return { pps: delivered / (job.durationMs / 1000), cpuUsPerPacket: delivered > 0 ? cpu / delivered : Number.NaN, cpuCores: cpu / wallUs, threadCores };
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
    origin.echo = true;
    const result = await runLoad({ mode: 'latency', port: 0, flows: 1, sizeBytes: 0, durationMs: 0, rateHz: LATENCY_RATE_HZ, count, tunnel: undefined, paths });
    origin.echo = false;
    const expected = paths!.map((p) => Math.ceil(count / (p.every ?? 1)));
    const starved = result.rttUsByPath!.findIndex((path, i) => path.received < expected[i]! / 10);
    if (starved === -1) return result.rttUsByPath!.map((path, i) => ({ p50: path.p50, p99: path.p99, lossFraction: 1 - path.received / expected[i]! }));
    seen.push(`${result.rttUsByPath![starved]!.received} of ${expected[starved]}`);
  }
  throw new Error(`latency run lost nearly every echo ${LATENCY_ATTEMPTS} times (${seen.join(', then ')}): the machine stalled the forwarders; run again when it is quieter`);
}

/** TCP bulk throughput through the forwarder on `port` with `conns` connections for `durationMs`, Gbit/s. */
export async function measureTcp(origin: Origin, port: number, conns: number, durationMs: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0x42);
  const sockets: net.Socket[] = [];
  for (let i = 0; i < conns; i++) {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    sockets.push(socket);
  }
  const startBytes = origin.tcpBytes;
  const startMs = performance.now();
  const endMs = startMs + durationMs;
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          const pump = (): void => {
            while (performance.now() < endMs) if (!socket.write(chunk)) return void socket.once('drain', pump);
            resolve();
          };
          pump();
        }),
    ),
  );
  const bytes = origin.tcpBytes - startBytes;
  const gbps = (bytes * 8) / ((performance.now() - startMs) / 1000) / 1e9;
  for (const socket of sockets) socket.destroy();
  return gbps;
}
