/**
 * `slipstream bench proxy`: the impairment proxy's acceptance figures, measured on this
 * machine and printed (the tests check behaviour with generous bounds; the precise
 * figures belong here, where a slow machine shows as a number rather than a failure).
 *
 * Starts `slipstream sim proxy` as a child process on 127.0.0.1 (as a user would),
 * configures it over its HTTP API, and measures, each against a baseline from the
 * same run:
 * - UDP loss through `iperf3 -u` with 5 % configured (when iperf3 is installed);
 * - the median UDP RTT increase with 30 ms of delay each way (direct path as baseline);
 * - how long an impairment change over the API takes to show in the traffic (delay
 *   and loss, several trials);
 * - TCP bulk throughput under a bandwidth limit, against the configured rate;
 * - trace record and replay: a path whose delay and loss change every second is
 *   probed and recorded with the `TraceRecorder` (as `connect --record` does), the
 *   trace is replayed by a fresh proxy and probed the same way, and each interval's
 *   RTT and loss (the recorder's own figures, means) are judged by the rule:
 *   within 10 % of the recording (`sim/src/trace/compare.ts`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { bool, num, type FlagSpec } from '../kit/flags.js';
import { flagCommand, type Command } from '../kit/command.js';
import { compareTraceIntervals, formatTraceComparison, TRACE_SPREAD_LOSS_SLACK_PACKETS, type IntervalComparison } from '../sim/src/trace/compare.js';
import { formatTraceParseError, parseSlipTraceJsonl, type TraceInterval } from '../proto/src/trace/format.js';
import { TraceRecorder } from '../proto/src/trace/recorder.js';
import { freePort } from '../kit/free-port.js';
import { answeredRtts, ping, type PingRun } from '../sim/src/proxy/udp-ping.js';
import { impairmentsOf, TRACE_SCHEDULE } from '../sim/src/proxy/trace-schedule.js';

const FLAGS: Record<string, FlagSpec> = {
  pings: { type: 'integer', valueName: 'N', min: 300, max: 100_000, description: 'Probes per side of the RTT comparison (≥ 300)', default: 500 },
  'change-trials': { type: 'integer', valueName: 'N', min: 1, max: 100, description: 'API changes timed (each for delay and for loss)', default: 5 },
  'rate-kbps': { type: 'integer', valueName: 'KBPS', min: 100, max: 1_000_000, description: 'Bandwidth limit of the TCP bulk run, kbit/s', default: 16_000 },
  'bulk-bytes': { type: 'integer', valueName: 'BYTES', min: 10_000, max: 1_000_000_000, description: 'Bytes sent in the TCP bulk run', default: 4_000_000 },
  'iperf-seconds': { type: 'integer', valueName: 'S', min: 1, max: 120, description: 'Length of the iperf3 -u run, s', default: 6 },
  'trace-probes': { type: 'integer', valueName: 'N', min: 100, max: 10_000, description: 'Probes per 1-second interval of the trace record/replay run', default: 1000 },
  seed: { type: 'integer', valueName: 'N', min: 0, max: 4294967295, description: "The proxy's seed (its loss and jitter draws)", default: 7 },
  json: { type: 'boolean', description: 'Print one JSON object instead of text' },
};

const SUMMARY = 'Impairment proxy: iperf3 loss, added RTT, API change latency, TCP throughput and trace replay vs what is configured or recorded.';
const CLI_PATH = fileURLToPath(new URL('../cli/slipstream.js', import.meta.url));

/** Everything the benchmark measured. */
export interface ProxyBenchResult {
  /** `iperf3 -u` through 5 % configured uplink loss; undefined when iperf3 is not installed. */
  readonly iperfLoss?: { readonly configuredPercent: number; readonly lostPercent: number; readonly packets: number; readonly lostPackets: number };
  readonly rtt: { readonly configuredAddedMs: number; readonly probes: number; readonly directMedianMs: number; readonly proxiedMedianMs: number; readonly addedMedianMs: number; readonly answeredDirect: number; readonly answeredProxied: number };
  /** Time from sending the API request to the first probe sent that shows the change, ms. */
  readonly apiChange: { readonly trials: number; readonly delayMs: readonly number[]; readonly lossMs: readonly number[]; readonly delayMaxMs: number; readonly lossMaxMs: number; readonly delayMedianMs: number; readonly lossMedianMs: number };
  readonly tcpThroughput: { readonly configuredKbps: number; readonly bytes: number; readonly seconds: number; readonly achievedKbps: number; readonly fraction: number };
  /** A recorded trace replayed in the proxy: per interval, recorded vs replayed and the verdict of the 10 % rule. */
  readonly traceReplay: { readonly probesPerInterval: number; readonly intervals: readonly IntervalComparison[]; readonly pass: boolean };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface ProxyChild {
  readonly api: string;
  stop(): Promise<void>;
}

function startProxy(seed: number): Promise<ProxyChild> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [CLI_PATH, 'sim', 'proxy', '--listen', '127.0.0.1:0', '--seed', String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let started = false;
    const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`sim proxy did not start within 10 s:\n${out}`));
    }, 10_000);
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = !started && /"event":"started","api":"([^"]+)"/.exec(out);
      if (m) {
        started = true;
        clearTimeout(timer);
        resolve({
          api: m[1]!,
          async stop() {
            if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
            process.kill(child.pid, 'SIGTERM');
            const killer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 3000);
            await exited;
            clearTimeout(killer);
          },
        });
      }
    });
    child.once('exit', (code) => {
      if (!started) {
        clearTimeout(timer);
        reject(new Error(`sim proxy exited with ${code} before starting:\n${out}`));
      }
    });
  });
}

async function api(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: { listen?: string } & Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as never) };
}

async function createProxy(base: string, definition: Record<string, unknown>): Promise<number> {
  const r = await api(base, 'POST', '/v1/proxies', definition);
  if (r.status !== 201) throw new Error(`proxy ${String(definition.name)} refused: ${r.status} ${JSON.stringify(r.body)}`);
  return Number(/:(\d+)$/.exec(r.body.listen!)![1]);
}


async function udpEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const socket = createSocket('udp4');
  socket.on('message', (bytes, from) => socket.send(bytes, from.port, from.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, close: () => new Promise((resolve) => socket.close(() => resolve())) };
}



function runProgram(command: string, args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; missing: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), timeoutMs);
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: error.message, missing: error.code === 'ENOENT' });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, missing: false });
    });
  });
}

async function benchIperf(base: string, seconds: number): Promise<ProxyBenchResult['iperfLoss']> {
  const serverPort = await freePort();
  const server = spawn('iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', String(serverPort)], { stdio: 'ignore' });
  const missing = await Promise.race([new Promise<boolean>((resolve) => server.once('error', () => resolve(true))), sleep(300).then(() => false)]);
  if (missing) return undefined;
  try {
    const udpPort = await createProxy(base, { name: 'bench-iperf-udp', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${serverPort}`, uplink: { loss: { model: 'bernoulli', p: 0.05 } } });
    await createProxy(base, { name: 'bench-iperf-tcp', protocol: 'tcp', listen: `127.0.0.1:${udpPort}`, upstream: `127.0.0.1:${serverPort}` });
    const client = await runProgram('iperf3', ['-c', '127.0.0.1', '-p', String(udpPort), '-u', '-b', '2M', '-l', '100', '-t', String(seconds), '-J', '--connect-timeout', '3000'], (seconds + 30) * 1000);
    if (client.missing) return undefined;
    if (client.code !== 0) throw new Error(`iperf3 client failed:\n${client.stdout}\n${client.stderr}`);
    const sum = (JSON.parse(client.stdout) as { end: { sum: { lost_percent: number; packets: number; lost_packets: number } } }).end.sum;
    return { configuredPercent: 5, lostPercent: sum.lost_percent, packets: sum.packets, lostPackets: sum.lost_packets };
  } finally {
    if (server.exitCode === null && server.pid !== undefined) process.kill(server.pid, 'SIGKILL');
    await api(base, 'DELETE', '/v1/proxies/bench-iperf-udp');
    await api(base, 'DELETE', '/v1/proxies/bench-iperf-tcp');
  }
}

async function benchRtt(base: string, echoPort: number, probes: number): Promise<ProxyBenchResult['rtt']> {
  const port = await createProxy(base, { name: 'bench-delay', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echoPort}`, both: { delayMs: 30 } });
  try {
    const direct = answeredRtts(await ping(echoPort, probes, 100, { graceMs: 1000, pacingTickMs: 1 }));
    const proxied = answeredRtts(await ping(port, probes, 100, { graceMs: 1000, pacingTickMs: 1 }));
    const directMedianMs = median(direct);
    const proxiedMedianMs = median(proxied);
    return { configuredAddedMs: 60, probes, directMedianMs, proxiedMedianMs, addedMedianMs: proxiedMedianMs - directMedianMs, answeredDirect: direct.length, answeredProxied: proxied.length };
  } finally {
    await api(base, 'DELETE', '/v1/proxies/bench-delay');
  }
}

/** One trial: probes at 1000/s; after 200 ms a delay change, after 700 ms a loss change; ms from each request to the first probe sent that shows it. */
async function changeTrial(base: string, echoPort: number, name: string): Promise<{ delayMs: number; lossMs: number }> {
  const port = await createProxy(base, { name, protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echoPort}` });
  try {
    let delayAt = Number.NaN;
    let lossAt = Number.NaN;
    const pending: Promise<unknown>[] = [];
    const run = await ping(port, 1200, 1000, { graceMs: 500, pacingTickMs: 1, onSent: (seq, at) => {
      if (seq === 200) {
        delayAt = at;
        pending.push(api(base, 'PUT', `/v1/proxies/${name}/impairments`, { both: { delayMs: 50 } }));
      }
      if (seq === 700) {
        lossAt = at;
        pending.push(api(base, 'PUT', `/v1/proxies/${name}/impairments`, { uplink: { delayMs: 50, loss: { model: 'bernoulli', p: 1 } } }));
      }
    } });
    await Promise.all(pending);
    let delayMs = Number.NaN;
    for (let seq = 200; seq < 700; seq++) {
      if (run.rttMs[seq]! >= 95) {
        delayMs = run.sentAtMs[seq]! - delayAt;
        break;
      }
    }
    let lossMs = Number.NaN;
    for (let seq = 700; seq < 1200; seq++) {
      if (Number.isNaN(run.rttMs[seq]!)) {
        lossMs = run.sentAtMs[seq]! - lossAt;
        break;
      }
    }
    return { delayMs, lossMs };
  } finally {
    await api(base, 'DELETE', `/v1/proxies/${name}`);
  }
}

async function benchTcp(base: string, rateKbps: number, bytes: number): Promise<ProxyBenchResult['tcpThroughput']> {
  let received = 0;
  let firstAt = Number.NaN;
  let lastAt = Number.NaN;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const sink = createServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      const now = performance.now();
      if (Number.isNaN(firstAt)) firstAt = now;
      received += chunk.length;
      lastAt = now;
      if (received >= bytes) done();
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const sinkPort = (sink.address() as AddressInfo).port;
  const port = await createProxy(base, { name: 'bench-tcp', protocol: 'tcp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${sinkPort}`, uplink: { rateKbps } });
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => undefined);
  try {
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (!socket.write(sent + chunk.length <= bytes ? chunk : chunk.subarray(0, bytes - sent))) await new Promise<void>((resolve) => socket.once('drain', () => resolve()));
    }
    // Bounded: at a tenth of the configured rate it would have long finished.
    const limitMs = ((bytes * 8) / rateKbps) * 10 + 10_000;
    await Promise.race([finished, sleep(limitMs)]);
    const seconds = (lastAt - firstAt) / 1000;
    // The first chunk arrives at once (the link starts idle); the rate is what followed it.
    const achievedKbps = seconds > 0 ? ((received - Math.min(received, 64 * 1024)) * 8) / 1000 / seconds : Number.NaN;
    return { configuredKbps: rateKbps, bytes: received, seconds, achievedKbps, fraction: achievedKbps / rateKbps };
  } finally {
    socket.destroy();
    await api(base, 'DELETE', '/v1/proxies/bench-tcp');
    await new Promise<void>((resolve) => sink.close(() => resolve()));
  }
}

/** Probe outcomes → trace intervals through the TraceRecorder (probes sent after `intervals` seconds are left out). */
function recordTrace(run: PingRun, startMs: number, intervals: number): { text: string; intervals: TraceInterval[] } {
  const recorder = new TraceRecorder({ startMs, intervalMs: 1000, settleMs: 0 });
  for (let seq = 0; seq < run.sentAtMs.length; seq++) {
    const sentAt = run.sentAtMs[seq]!;
    if (Number.isNaN(sentAt) || sentAt >= startMs + intervals * 1000) continue;
    if (Number.isNaN(run.rttMs[seq]!)) recorder.recordLoss(sentAt);
    else recorder.recordReply(sentAt, run.rttMs[seq]!);
  }
  recorder.finish();
  const lines: string[] = [];
  for (let line = recorder.pollLine(); line !== undefined; line = recorder.pollLine()) lines.push(line);
  const text = `${lines.join('\n')}\n`;
  const parsed = parseSlipTraceJsonl(text);
  if (!parsed.ok) throw new Error(`the recorder wrote an unreadable trace: ${formatTraceParseError(parsed.error)}`);
  return { text, intervals: [...parsed.trace.intervals] };
}

/** Records a changing path with the TraceRecorder, replays the trace in a fresh proxy, and compares per interval. */
async function benchTraceReplay(base: string, echoPort: number, probesPerInterval: number): Promise<ProxyBenchResult['traceReplay']> {
  const n = TRACE_SCHEDULE.length;
  const recordPort = await createProxy(base, { name: 'bench-record', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echoPort}`, both: impairmentsOf(TRACE_SCHEDULE[0]) });
  let recording: { text: string; intervals: TraceInterval[] };
  try {
    let startMs = Number.NaN;
    const changes: Promise<unknown>[] = [];
    const run = await ping(recordPort, n * probesPerInterval, probesPerInterval, { graceMs: 2000, pacingTickMs: 1, onSent: (seq, atMs) => {
      if (seq === 0) startMs = atMs;
      if (seq > 0 && seq % probesPerInterval === 0) changes.push(api(base, 'PUT', '/v1/proxies/bench-record/impairments', { both: impairmentsOf(TRACE_SCHEDULE[seq / probesPerInterval]!) }));
    } });
    await Promise.all(changes);
    recording = recordTrace(run, startMs, n);
  } finally {
    await api(base, 'DELETE', '/v1/proxies/bench-record');
  }
  const replayPort = await createProxy(base, { name: 'bench-replay', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echoPort}`, both: { trace: { text: recording.text } } });
  try {
    const run = await ping(replayPort, n * probesPerInterval, probesPerInterval, { graceMs: 2000, pacingTickMs: 1 });
    const replayed = recordTrace(run, run.sentAtMs[0]!, n);
    const intervals = compareTraceIntervals(recording.intervals, replayed.intervals, { lossFloorPackets: TRACE_SPREAD_LOSS_SLACK_PACKETS });
    return { probesPerInterval, intervals, pass: intervals.length === n && intervals.every((x) => x.ok) };
  } finally {
    await api(base, 'DELETE', '/v1/proxies/bench-replay');
  }
}

/** Runs every measurement against a fresh proxy process. */
export async function runProxyBench(options: { pings: number; changeTrials: number; rateKbps: number; bulkBytes: number; iperfSeconds: number; traceProbes: number; seed: number }): Promise<ProxyBenchResult> {
  const proxy = await startProxy(options.seed);
  const echo = await udpEcho();
  try {
    const iperfLoss = await benchIperf(proxy.api, options.iperfSeconds);
    const rtt = await benchRtt(proxy.api, echo.port, options.pings);
    const delayMs: number[] = [];
    const lossMs: number[] = [];
    for (let i = 0; i < options.changeTrials; i++) {
      const trial = await changeTrial(proxy.api, echo.port, `bench-change-${i}`);
      delayMs.push(trial.delayMs);
      lossMs.push(trial.lossMs);
    }
    const apiChange = { trials: options.changeTrials, delayMs, lossMs, delayMaxMs: Math.max(...delayMs), lossMaxMs: Math.max(...lossMs), delayMedianMs: median(delayMs), lossMedianMs: median(lossMs) };
    const tcpThroughput = await benchTcp(proxy.api, options.rateKbps, options.bulkBytes);
    const traceReplay = await benchTraceReplay(proxy.api, echo.port, options.traceProbes);
    return { ...(iperfLoss ? { iperfLoss } : {}), rtt, apiChange, tcpThroughput, traceReplay };
  } finally {
    await echo.close();
    await proxy.stop();
  }
}

/** The figures as text, next to what the issue asks for. */
export function formatProxyBench(r: ProxyBenchResult): string {
  const f = (n: number, d = 2): string => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
  return [
    'impairment proxy (slipstream sim proxy on 127.0.0.1, measured from this process)',
    '',
    r.iperfLoss
      ? `iperf3 -u loss, ${r.iperfLoss.configuredPercent} % configured:   ${f(r.iperfLoss.lostPercent, 3)} % (${r.iperfLoss.lostPackets}/${r.iperfLoss.packets} packets; target 5 % ± 0.5 %)`
      : 'iperf3 -u loss:                     skipped (iperf3 is not installed)',
    `RTT added by 30 ms each way:        ${f(r.rtt.addedMedianMs, 3)} ms median (direct ${f(r.rtt.directMedianMs, 3)} ms, proxied ${f(r.rtt.proxiedMedianMs, 3)} ms; ${r.rtt.answeredDirect}/${r.rtt.answeredProxied} of ${r.rtt.probes} probes; target 60 ± 2 ms)`,
    `API change → traffic shows it:      delay median ${f(r.apiChange.delayMedianMs, 1)} ms, max ${f(r.apiChange.delayMaxMs, 1)} ms; loss median ${f(r.apiChange.lossMedianMs, 1)} ms, max ${f(r.apiChange.lossMaxMs, 1)} ms (${r.apiChange.trials} trials; target ≤ 100 ms)`,
    `TCP bulk under ${r.tcpThroughput.configuredKbps} kbit/s:         ${f(r.tcpThroughput.achievedKbps, 0)} kbit/s = ${f(r.tcpThroughput.fraction * 100, 1)} % of configured (${r.tcpThroughput.bytes} bytes in ${f(r.tcpThroughput.seconds, 2)} s)`,
    `trace recorded and replayed:        ${r.traceReplay.pass ? 'PASS' : 'FAIL'}: every interval's mean RTT and loss within 10 % of the recording (${r.traceReplay.probesPerInterval} probes per interval; loss floor ${TRACE_SPREAD_LOSS_SLACK_PACKETS} packets)`,
    ...formatTraceComparison(r.traceReplay.intervals).map((line) => `  ${line}`),
    '',
  ].join('\n');
}

/** `slipstream bench proxy`. */
export const proxyBenchCommand: Command = flagCommand({
  path: 'bench proxy',
  summary: SUMMARY,
  flags: FLAGS,
  async run({ values }, io) {
    const result = await runProxyBench({ pings: num(values, 'pings')!, changeTrials: num(values, 'change-trials')!, rateKbps: num(values, 'rate-kbps')!, bulkBytes: num(values, 'bulk-bytes')!, iperfSeconds: num(values, 'iperf-seconds')!, traceProbes: num(values, 'trace-probes')!, seed: num(values, 'seed')! });
    io.out(bool(values, 'json') ? `${JSON.stringify(result)}\n` : formatProxyBench(result));
    return 0;
  },
});
