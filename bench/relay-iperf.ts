/**
 * The TCP tools of `slipstream bench relay` when `iperf3` is installed (detected, never
 * required): an `iperf3 -s` server is the TCP origin of every forwarder, and each TCP
 * measurement is one `iperf3 -c` run through the forwarder's TCP port. Both are C
 * programs in their own processes: on this 2-core machine the iperf3 receiver cost
 * ~0.27 of a core at 12.6 Gbit/s where the Node sink (relay-origin.ts) cost ~0.7 at
 * 9.7 (measured on loopback without a forwarder), so less of the machine goes to the
 * tools and more to the forwarder measured. Without iperf3 (or with `--tcp-tools node`)
 * the Node sender (relay-load.ts `tcp`) and sink run instead. Benchmark-only code.
 *
 * iperf3 takes whole seconds: a measurement lasts `durationMs` rounded up to seconds.
 * It opens a control connection beside its `conns` data connections, all through the
 * forwarder; its figures are the receiver's bytes over the receiver's time. The server's
 * own complaints (stderr) are dropped: a failed run is retried and reported by the client.
 */
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import { Child, cpuUs, type TcpResult, type Target } from './relay-measure.js';

/** Where iperf3 is, or why it cannot be used. */
export function findIperf3(): { ok: true; path: string; version: string } | { ok: false; reason: string } {
  for (const path of ['/usr/bin/iperf3', '/usr/local/bin/iperf3', 'iperf3']) {
    try {
      const version = execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 5000 }).split('\n')[0]!.trim();
      return { ok: true, path, version };
    } catch {
      // not there: try the next
    }
  }
  return { ok: false, reason: 'iperf3 is not installed' };
}

/** A running `iperf3 -s` on 127.0.0.1. */
export interface Iperf3Server {
  readonly path: string;
  readonly version: string;
  readonly port: number;
  readonly child: Child;
}

/** A free TCP port on 127.0.0.1 (iperf3 cannot report the port it bound to 0). */
async function freeTcpPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts `iperf3 -s` (pushed onto `children` at once, so the caller stops it) and waits until it accepts connections. */
export async function startIperf3Server(found: { path: string; version: string }, children: Child[]): Promise<Iperf3Server> {
  const port = await freeTcpPort();
  const child = new Child(spawn(found.path, ['-s', '-B', '127.0.0.1', '-p', String(port), '--forceflush'], { stdio: ['ignore', 'pipe', 'ignore'] }));
  children.push(child);
  await child.waitFor((l) => l.includes('Server listening'), 10_000);
  return { ...found, port, child };
}

/** The part of `iperf3 -c -J`'s output read here. */
interface Iperf3Json {
  error?: string;
  end?: { sum_received?: { bytes: number; seconds: number }; cpu_utilization_percent?: { host_total: number; remote_total: number } };
}

/** Runs of `iperf3 -c` a measurement makes before it fails (see {@link measureTcpIperf3}). */
const IPERF3_ATTEMPTS = 3;

/**
 * TCP bulk throughput through `target`'s TCP port: one `iperf3 -c` run with `conns`
 * parallel connections (see the module comment). A run that fails before its transfer
 * (on a loaded machine iperf3's control connection was seen reset through a forwarder
 * while the server finished the previous test) is made again after 500 ms, up to
 * {@link IPERF3_ATTEMPTS} runs; then the bench fails with what iperf3 said.
 */
export async function measureTcpIperf3(server: Iperf3Server, target: Target, conns: number, durationMs: number): Promise<TcpResult> {
  const errors: string[] = [];
  for (let attempt = 1; attempt <= IPERF3_ATTEMPTS; attempt++) {
    const result = await iperf3Once(server, target, conns, durationMs);
    if (typeof result !== 'string') return result;
    errors.push(result);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`iperf3 through ${target.name} (port ${target.tcpPort}) failed ${IPERF3_ATTEMPTS} times: ${errors.join('; ')}`);
}

/** One `iperf3 -c` run: its figures, or what went wrong. */
async function iperf3Once(server: Iperf3Server, target: Target, conns: number, durationMs: number): Promise<TcpResult | string> {
  const seconds = Math.max(1, Math.ceil(durationMs / 1000));
  const cpuBefore = cpuUs(target.pid);
  const child = spawn(server.path, ['-c', '127.0.0.1', '-p', String(target.tcpPort), '-t', String(seconds), '-P', String(conns), '-J'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), seconds * 1000 + 30_000);
  await new Promise<void>((resolve) => child.once('close', () => resolve()));
  clearTimeout(timer);
  let result: Iperf3Json;
  try {
    result = JSON.parse(out) as Iperf3Json;
  } catch {
    return `iperf3 -c printed no JSON (exit ${child.exitCode}): ${out.slice(0, 200)}`;
  }
  if (result.error !== undefined || result.end?.sum_received === undefined) return result.error ?? 'no sum_received in its output';
  const received = result.end.sum_received;
  const utilization = result.end.cpu_utilization_percent;
  // The forwarder's CPU over the whole run (control connection and setup included).
  const cpu = cpuUs(target.pid) - cpuBefore;
  return {
    gbps: (received.bytes * 8) / received.seconds / 1e9,
    cpuCores: cpu / (received.seconds * 1e6),
    cpuUsPerMiB: received.bytes > 0 ? cpu / (received.bytes / (1 << 20)) : Number.NaN,
    senderCpuCores: utilization ? utilization.host_total / 100 : Number.NaN,
    sinkCpuCores: utilization ? utilization.remote_total / 100 : Number.NaN,
  };
}
