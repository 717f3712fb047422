/**
 * `slipstream sim proxy` on UDP, end to end: the built CLI in a child process on
 * loopback, real sockets, real programs (iperf3). These are issue 7's acceptance
 * checks for the proxy and for trace replay; the bounds come from the issue, and every
 * timing comparison measures its own baseline in the same test.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { TraceRecorder } from '../src/trace/recorder.js';
import { parseSlipTraceJsonl, type TraceInterval } from '../src/trace/format.js';
import { MAHIMAHI_PACKET_BYTES } from '../src/trace/mahimahi.js';
import { callApi, createProxy, median, ping, sleep, startProxyProcess, udpEcho, type PingRun, type ProxyProcess } from './proxy-harness.js';

/** The proxy's seed in this file: every random draw of the proxy (loss, jitter) follows from it. */
const SEED = 7;

let proxy: ProxyProcess;
let echo: Awaited<ReturnType<typeof udpEcho>>;
let scratch: string;

before(async () => {
  proxy = await startProxyProcess(['--seed', String(SEED)]);
  echo = await udpEcho();
  scratch = mkdtempSync(join(tmpdir(), 'slipstream-proxy-'));
});

after(async () => {
  const code = await proxy.stop();
  await echo.close();
  rmSync(scratch, { recursive: true, force: true });
  assert.equal(code, 0, `the proxy exits 0 on SIGTERM:\n${proxy.output()}`);
});

/** RTTs of the probes that came back. */
function answered(run: PingRun): number[] {
  return [...run.rttMs].filter((rtt) => !Number.isNaN(rtt));
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Runs a program to completion (killed after `timeoutMs`); spawn failures reject, so a missing program fails the test. */
function runProgram(command: string, args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => process.kill(child.pid!, 'SIGKILL'), timeoutMs);
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(error.code === 'ENOENT' ? new Error(`${command} is not installed; install it (apt-get install -y ${command}) — this test needs it and does not skip`) : error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('sim proxy: UDP', () => {
  it('iperf3 -u through a proxy set to 5 % loss reports 5 % ± 0.5 % loss', async () => {
    // iperf3 -u also opens a TCP control connection to the same port, so the proxy runs
    // a TCP proxy (no impairment) and a UDP proxy (5 % loss on the data direction) on one port.
    const serverPort = await freePort();
    const server = spawn('iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', String(serverPort)], { stdio: 'ignore' });
    const serverFailed = new Promise<Error>((resolve) => server.on('error', (error) => resolve(new Error(`iperf3 is not installed (${error.message}); install it: apt-get install -y iperf3`))));
    try {
      const spawnError = await Promise.race([serverFailed, sleep(300).then(() => undefined)]);
      if (spawnError) throw spawnError;
      const udpPort = await createProxy(proxy.api, { name: 'iperf-udp', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${serverPort}`, uplink: { loss: { model: 'bernoulli', p: 0.05 } } });
      await createProxy(proxy.api, { name: 'iperf-tcp', protocol: 'tcp', listen: `127.0.0.1:${udpPort}`, upstream: `127.0.0.1:${serverPort}` });
      // 100-byte datagrams at 2 Mbit/s for 6 s: 15,000 packets, so the binomial standard
      // deviation of the loss (0.18 %) is well inside the ±0.5 % the issue asks for.
      const client = await runProgram('iperf3', ['-c', '127.0.0.1', '-p', String(udpPort), '-u', '-b', '2M', '-l', '100', '-t', '6', '-J', '--connect-timeout', '3000'], 30_000);
      assert.equal(client.code, 0, `iperf3 client failed:\n${client.stdout}\n${client.stderr}`);
      const report = JSON.parse(client.stdout) as { end: { sum: { lost_percent: number; packets: number; lost_packets: number } } };
      const { lost_percent: lostPercent, packets, lost_packets: lost } = report.end.sum;
      assert.ok(packets >= 10_000, `iperf3 sent ${packets} packets; the check needs ≥ 10,000`);
      assert.ok(Math.abs(lostPercent - 5) <= 0.5, `iperf3 reports ${lostPercent} % loss (${lost}/${packets}); expected 5 % ± 0.5 %`);
      const stats = (await callApi(proxy.api, 'GET', '/v1/proxies/iperf-udp')).body.stats;
      assert.ok(stats.uplink.dropped.loss > 0 && stats.downlink.dropped.loss === 0, 'loss only on the uplink, as configured');
      process.stdout.write(`# iperf3 -u through 5 % loss: ${lostPercent.toFixed(3)} % (${lost}/${packets})\n`);
    } finally {
      if (server.exitCode === null && server.pid !== undefined) process.kill(server.pid, 'SIGKILL');
      await callApi(proxy.api, 'DELETE', '/v1/proxies/iperf-udp');
      await callApi(proxy.api, 'DELETE', '/v1/proxies/iperf-tcp');
    }
  });

  it('30 ms delay each way grows the median ping RTT by 60 ms ± 2 ms over the direct path', async () => {
    const port = await createProxy(proxy.api, { name: 'delay', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}`, both: { delayMs: 30 } });
    try {
      // 300 probes each, 100 per second: medians of that many loopback RTTs move by far less than the bound.
      const direct = answered(await ping(echo.port, 300, 100, { graceMs: 200 }));
      const proxied = answered(await ping(port, 300, 100, { graceMs: 300 }));
      assert.equal(direct.length, 300);
      assert.equal(proxied.length, 300);
      const growthMs = median(proxied) - median(direct);
      process.stdout.write(`# 30 ms each way: median RTT direct ${median(direct).toFixed(3)} ms, through the proxy ${median(proxied).toFixed(3)} ms, growth ${growthMs.toFixed(3)} ms\n`);
      assert.ok(Math.abs(growthMs - 60) <= 2, `median RTT grew by ${growthMs.toFixed(3)} ms; expected 60 ± 2 ms`);
    } finally {
      await callApi(proxy.api, 'DELETE', '/v1/proxies/delay');
    }
  });

  it('impairment changes over the API take effect within 100 ms', async () => {
    const port = await createProxy(proxy.api, { name: 'live', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}` });
    try {
      let changeAtMs = Number.NaN;
      let answeredAtMs = Number.NaN;
      let lossAtMs = Number.NaN;
      let lossAnsweredAtMs = Number.NaN;
      // 500 probes per second for 1.6 s: at 300 ms add 50 ms of delay each way, at 900 ms set 100 % loss.
      const run = await ping(port, 800, 500, {
        graceMs: 400,
        onSent: (seq, atMs) => {
          if (seq === 150) {
            changeAtMs = atMs;
            void callApi(proxy.api, 'PUT', '/v1/proxies/live/impairments', { both: { delayMs: 50 } }).then((r) => {
              assert.equal(r.status, 200);
              answeredAtMs = performance.now();
            });
          }
          if (seq === 450) {
            lossAtMs = atMs;
            void callApi(proxy.api, 'PUT', '/v1/proxies/live/impairments', { uplink: { delayMs: 50, loss: { model: 'bernoulli', p: 1 } } }).then((r) => {
              assert.equal(r.status, 200);
              lossAnsweredAtMs = performance.now();
            });
          }
        },
      });
      // Delay: the first probe sent after the request whose RTT shows the new 100 ms.
      let firstDelayed = -1;
      for (let seq = 150; seq < 450; seq++) {
        if (run.rttMs[seq]! >= 95) {
          firstDelayed = seq;
          break;
        }
      }
      assert.ok(firstDelayed >= 0, 'some probe shows the new delay');
      const delayEffectMs = run.sentAtMs[firstDelayed]! - changeAtMs;
      // Loss: the first probe sent after the request that is lost.
      let firstLost = -1;
      for (let seq = 450; seq < 800; seq++) {
        if (Number.isNaN(run.rttMs[seq]!)) {
          firstLost = seq;
          break;
        }
      }
      assert.ok(firstLost >= 0, 'some probe is lost after loss is set to 1');
      const lossEffectMs = run.sentAtMs[firstLost]! - lossAtMs;
      process.stdout.write(`# API change → first packet reflecting it: delay ${delayEffectMs.toFixed(1)} ms (request answered after ${(answeredAtMs - changeAtMs).toFixed(1)} ms), loss ${lossEffectMs.toFixed(1)} ms (answered after ${(lossAnsweredAtMs - lossAtMs).toFixed(1)} ms)\n`);
      assert.ok(delayEffectMs <= 100, `the new delay showed ${delayEffectMs.toFixed(1)} ms after the request; expected ≤ 100 ms`);
      assert.ok(lossEffectMs <= 100, `the new loss showed ${lossEffectMs.toFixed(1)} ms after the request; expected ≤ 100 ms`);
      // And it holds: every probe sent after the answer (plus slack for the request's own trip) reflects it.
      for (let seq = 0; seq < 800; seq++) {
        const sent = run.sentAtMs[seq]!;
        if (sent > answeredAtMs + 5 && sent < lossAtMs) assert.ok(run.rttMs[seq]! >= 95, `probe ${seq} sent after the delay change has RTT ${run.rttMs[seq]}`);
        if (sent > lossAnsweredAtMs + 5) assert.ok(Number.isNaN(run.rttMs[seq]!), `probe ${seq} sent after loss 1 was answered`);
      }
    } finally {
      await callApi(proxy.api, 'DELETE', '/v1/proxies/live');
    }
  });

  it('a mahimahi trace sets the throughput: delivered bytes follow the trace', async () => {
    // One period of 1000 ms: 250 opportunities in the first half (one per 2 ms: 6 Mbit/s),
    // 50 in the second (one per 10 ms: 1.2 Mbit/s).
    const lines: number[] = [];
    for (let t = 2; t <= 500; t += 2) lines.push(t);
    for (let t = 510; t <= 1000; t += 10) lines.push(t);
    const file = join(scratch, 'steps.mahi');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const sink = await udpEcho();
    let receivedBytes = 0;
    const arrivals: number[] = [];
    sink.socket.removeAllListeners('message');
    sink.socket.on('message', (bytes) => {
      arrivals.push(performance.now());
      receivedBytes += bytes.length;
    });
    const port = await createProxy(proxy.api, { name: 'mahi', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${sink.port}`, uplink: { trace: { file, queuePackets: 2000 } } });
    try {
      // Offer 1400-byte datagrams at 8.4 Mbit/s (750 per second) for 2 s: more than the trace carries in either half.
      const run = await ping(port, 1500, 750, { sizeBytes: 1400, graceMs: 0 });
      const startMs = run.sentAtMs[0]!;
      const endMs = startMs + 2000;
      const bins = [0, 0, 0, 0];
      for (const at of arrivals) {
        const rel = at - startMs;
        if (rel >= 0 && at < endMs) bins[Math.min(3, Math.floor(rel / 500))]! += 1400;
      }
      // Byte-granular as mm-link: each opportunity carries 1500 bytes of the 1400-byte datagrams.
      const highBytes = 250 * MAHIMAHI_PACKET_BYTES;
      const lowBytes = 50 * MAHIMAHI_PACKET_BYTES;
      const expected = [highBytes, lowBytes, highBytes, lowBytes];
      process.stdout.write(`# mahimahi steps 6 → 1.2 Mbit/s: delivered bytes per 500 ms ${bins.join(', ')} (trace ${expected.join(', ')})\n`);
      bins.forEach((bytes, i) => assert.ok(Math.abs(bytes - expected[i]!) <= 0.1 * expected[i]!, `half-period ${i}: ${bytes} bytes delivered; the trace allows ${expected[i]} (±10 %)`));
      assert.ok(receivedBytes > 0);
    } finally {
      await callApi(proxy.api, 'DELETE', '/v1/proxies/mahi');
      await sink.close();
    }
  });

  it('a trace recorded with TraceRecorder and replayed in the proxy reproduces loss and RTT per interval within 10 %', async () => {
    // Record: probe a path whose figures change every second (changed over the API), and
    // feed the outcomes to a TraceRecorder, as the SDK and `connect --record` will.
    // Every interval is lossy (round-trip loss 8–25 %) and has ≥ 30 ms RTT, so 10 % of
    // each figure is several packets and several ms: 1000 probes per interval put the
    // replay's counting error (a packet or two per direction) and the path's own
    // overhead (well under a millisecond) far inside it.
    const schedule = [
      { delayMs: 15, jitterMs: 1, p: 0.05 },
      { delayMs: 30, jitterMs: 3, p: 0.1 },
      { delayMs: 45, jitterMs: 4, p: 0.13 },
      { delayMs: 20, jitterMs: 2, p: 0.07 },
      { delayMs: 35, jitterMs: 1, p: 0.04 },
    ];
    const model = (step: (typeof schedule)[number]): Record<string, unknown> => ({ delayMs: step.delayMs, jitterMs: step.jitterMs, jitterDist: 'normal', loss: { model: 'bernoulli', p: step.p } });
    const recordPort = await createProxy(proxy.api, { name: 'evening', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}`, both: model(schedule[0]!) });
    const probes = schedule.length * 1000;
    const recorded = await (async () => {
      let startMs = Number.NaN;
      const pending: Promise<unknown>[] = [];
      const run = await ping(recordPort, probes, 1000, {
        graceMs: 600,
        onSent: (seq, atMs) => {
          if (seq === 0) startMs = atMs;
          // Change the path at each whole second after the first probe.
          if (seq > 0 && seq % 1000 === 0) pending.push(callApi(proxy.api, 'PUT', '/v1/proxies/evening/impairments', { both: model(schedule[seq / 1000]!) }));
        },
      });
      await Promise.all(pending);
      return { run, startMs };
    })();
    await callApi(proxy.api, 'DELETE', '/v1/proxies/evening');
    const record = (run: PingRun, startMs: number): { text: string; intervals: TraceInterval[] } => {
      const recorder = new TraceRecorder({ startMs, intervalMs: 1000, settleMs: 600 });
      for (let seq = 0; seq < run.sentAtMs.length; seq++) {
        // A loaded machine may pace the last probes late; they would open a sixth, thin interval.
        if (run.sentAtMs[seq]! >= startMs + schedule.length * 1000) continue;
        if (Number.isNaN(run.rttMs[seq]!)) recorder.recordLoss(run.sentAtMs[seq]!);
        else recorder.recordReply(run.sentAtMs[seq]!, run.rttMs[seq]!);
      }
      recorder.finish();
      const lines: string[] = [];
      for (let line = recorder.pollLine(); line !== undefined; line = recorder.pollLine()) lines.push(line);
      const text = `${lines.join('\n')}\n`;
      const parsed = parseSlipTraceJsonl(text);
      assert.ok(parsed.ok, `the recorder's output parses: ${JSON.stringify(!parsed.ok && parsed.error)}`);
      return { text, intervals: parsed.trace.intervals };
    };
    const original = record(recorded.run, recorded.startMs);
    assert.equal(original.intervals.length, schedule.length, 'one line per interval');
    const file = join(scratch, 'evening.jsonl');
    writeFileSync(file, original.text);

    // Replay: a fresh proxy whose both directions follow the file; probe it the same way.
    const replayPort = await createProxy(proxy.api, { name: 'replay', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}`, both: { trace: { file } } });
    try {
      const run = await ping(replayPort, probes, 1000, { graceMs: 600 });
      const replayed = record(run, run.sentAtMs[0]!);
      assert.equal(replayed.intervals.length, schedule.length);
      const rows: string[] = [];
      for (let i = 0; i < schedule.length; i++) {
        const a = original.intervals[i]!;
        const b = replayed.intervals[i]!;
        rows.push(`t ${a.tMs}: RTT ${a.rttMs!.toFixed(2)} → ${b.rttMs!.toFixed(2)} ms, loss ${(a.lossFraction * 100).toFixed(2)} → ${(b.lossFraction * 100).toFixed(2)} %, jitter ${a.jitterMs!.toFixed(2)} → ${b.jitterMs!.toFixed(2)} ms (${a.probes}/${b.probes} probes)`);
      }
      process.stdout.write(`# trace record → replay per interval:\n${rows.map((r) => `#   ${r}`).join('\n')}\n`);
      for (let i = 0; i < schedule.length; i++) {
        const a = original.intervals[i]!;
        const b = replayed.intervals[i]!;
        assert.ok(Math.abs(b.rttMs! - a.rttMs!) <= 0.1 * a.rttMs!, `interval ${i}: replayed RTT ${b.rttMs} vs recorded ${a.rttMs} (±10 %)\n${rows.join('\n')}`);
        assert.ok(Math.abs(b.lossFraction - a.lossFraction) <= 0.1 * a.lossFraction, `interval ${i}: replayed loss ${b.lossFraction} vs recorded ${a.lossFraction} (±10 %)\n${rows.join('\n')}`);
      }
    } finally {
      await callApi(proxy.api, 'DELETE', '/v1/proxies/replay');
    }
  });
});
