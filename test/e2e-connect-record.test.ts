/**
 * Issue 7, trace recording end to end with real processes on loopback:
 * `slipstream coordinator`, one `slipstream relay`, a `slipstream sim proxy` in front of
 * the relay's tunnel port adding 15 ms and 5 % loss each way, and `slipstream connect
 * --record FILE`. The recorded file must parse with the trace loader, show the
 * impairment (RTT ≈ 30 ms plus loopback, loss ≈ 1 − 0.95²), and replay in the
 * simulator: a link that follows it reproduces its RTT and loss per interval within
 * 10 %. Only processes started here are stopped, by PID.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinatorClient } from '../coordinator/src/client.js';
import { rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { SimNetwork } from '../sim/src/core/network.js';
import { compareTraceIntervals, formatTraceComparison, TRACE_SPREAD_LOSS_SLACK_PACKETS } from '../sim/src/trace/compare.js';
import { parseSlipTrace } from '../sim/src/trace/format.js';
import { loadTraceFile } from '../sim/src/trace/load.js';
import { TraceRecorder } from '../sim/src/trace/recorder.js';
import { CLI_PATH } from './support/run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-record-'));
const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) continue;
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

class Child {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    children.add(child);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (this.stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr += c));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }
  static spawn(args: string[]): Child {
    return new Child(spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }
  async waitFor(pattern: RegExp, stream: 'stdout' | 'stderr', timeoutMs: number): Promise<RegExpExecArray> {
    for (let waited = 0; waited < timeoutMs; waited += 20) {
      const m = pattern.exec(this[stream]);
      if (m) return m;
      if (this.child.exitCode !== null) break;
      await sleep(20);
    }
    throw new Error(`no ${pattern} on ${stream} within ${timeoutMs} ms; stdout: ${this.stdout.slice(-500)} stderr: ${this.stderr.slice(-500)}`);
  }
  kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.child.pid === undefined) return;
    try {
      process.kill(this.child.pid, signal);
    } catch {
      // already gone
    }
  }
}

test('connect --record writes a trace of the impaired path that parses and replays (RTT and loss per interval within 10 %)', async (t) => {
  const seed = randomBytes(32);
  const sealKey = randomBytes(32);
  const fleetSecret = randomBytes(24).toString('base64');
  const apiKey = randomBytes(24).toString('base64');
  const origin = dgram.createSocket('udp4');
  origin.on('message', (m, from) => origin.send(m, from.port, from.address));
  await new Promise<void>((r) => origin.bind(0, '127.0.0.1', r));
  let beat: NodeJS.Timeout | undefined;
  try {
    const originPort = origin.address().port;
    const coordinatorConfig = join(dir, 'coordinator.yaml');
    writeFileSync(
      coordinatorConfig,
      ['listen: 127.0.0.1:0', 'leaseMs: 1500', 'logLevel: warn', 'origins:', `  - { name: game, address: 127.0.0.1:${originPort} }`, 'keys:', `  ticketSigningSeed: ${seed.toString('base64')}`, `  sealKey: ${sealKey.toString('base64')}`, `  fleetSecret: ${fleetSecret}`, `  apiKeys: [${apiKey}]`].join('\n'),
    );
    const coordinator = Child.spawn(['coordinator', '--config', coordinatorConfig]);
    const coordinatorUrl = (await coordinator.waitFor(/listening on (http:\/\/[0-9.:]+)/, 'stderr', 15_000))[1]!;

    const relayConfig = join(dir, 'relay.yaml');
    writeFileSync(
      relayConfig,
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: "off" }',
        'logLevel: warn',
        'tunnel:',
        '  listen: 127.0.0.1:0',
        `  ticketPublicKey: ${Buffer.from(rawPublicKey(ticketSigningKeyFromSeed(seed))).toString('base64')}`,
        `  sealKey: ${sealKey.toString('base64')}`,
        `  origins: { game: 127.0.0.1:${originPort} }`,
      ].join('\n'),
    );
    const relay = Child.spawn(['relay', '--config', relayConfig, '--log-level', 'info']);
    const tunnelPort = Number((await relay.waitFor(/"tunnel":\{"address":"[0-9.]+","port":(\d+)\}/, 'stdout', 15_000))[1]);

    // The impaired path: 15 ms and 5 % loss each way between the player and the relay.
    const proxyConfig = join(dir, 'proxy.yaml');
    writeFileSync(proxyConfig, ['proxies:', '  - name: last-mile', '    protocol: udp', '    listen: 127.0.0.1:0', `    upstream: 127.0.0.1:${tunnelPort}`, '    both: { delayMs: 15, loss: { model: bernoulli, p: 0.05 } }'].join('\n'));
    const proxy = Child.spawn(['sim', 'proxy', '--config', proxyConfig, '--listen', '127.0.0.1:0', '--seed', '7', '--log-level', 'info']);
    const proxyPort = Number((await proxy.waitFor(/"listen":"127\.0\.0\.1:(\d+)"/, 'stdout', 15_000))[1]);

    const fleet = new CoordinatorClient({ baseUrl: coordinatorUrl, fleetSecret });
    await fleet.register({ relayId: 'relay-a', region: 'local', latitude: 50, longitude: 8, tunnelAddress: `127.0.0.1:${proxyPort}`, probeAddress: `127.0.0.1:${proxyPort}`, capacitySessions: 100 });
    await fleet.reportRelayPaths('relay-a', [{ origin: 'game', rttMs: 1, jitterMs: 0, lossFraction: 0, samples: 50 }]);
    beat = setInterval(() => void fleet.heartbeat('relay-a', { sessions: 0, packetsPerSecond: 0, cpuFraction: 0.1, draining: false }).catch(() => undefined), 400);

    const file = join(dir, 'evening.jsonl');
    const gamePort = await new Promise<number>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const port = s.address().port;
        s.close(() => resolve(port));
      });
    });
    const connect = Child.spawn(['connect', '--coordinator', coordinatorUrl, '--origin', 'game', '--listen', `udp:127.0.0.1:${gamePort}`, '--api-key', apiKey, '--bind', '127.0.0.1', '--cache', join(dir, 'cache.json'), '--record', file, '--record-interval-ms', '1000']);
    await connect.waitFor(/listening: /, 'stdout', 15_000);
    // 8 s of the core's 100 ms probes to the relay in use: about 80 probes.
    await sleep(8000);
    connect.kill('SIGTERM');
    assert.equal(await connect.exited, 0, connect.stderr);

    const text = readFileSync(file, 'utf8');
    const parsed = parseSlipTrace(text);
    assert.ok(parsed.ok, `the recording parses: ${JSON.stringify(parsed.ok ? '' : parsed.error)}\n${text}`);
    const intervals = parsed.trace.intervals;
    assert.ok(intervals.length >= 6, `at least 6 one-second intervals, got ${intervals.length}:\n${text}`);
    let probes = 0;
    let lost = 0;
    let rttSum = 0;
    let rttN = 0;
    for (const i of intervals) {
      probes += i.probes ?? 0;
      lost += Math.round(i.lossFraction * (i.probes ?? 0));
      if (i.rttMs !== null) {
        rttSum += i.rttMs;
        rttN++;
      }
    }
    const meanRtt = rttSum / rttN;
    const loss = lost / probes;
    t.diagnostic(`recorded ${intervals.length} intervals, ${probes} probes: mean RTT ${meanRtt.toFixed(1)} ms (30 ms injected), loss ${(loss * 100).toFixed(1)} % (expected 9.75 %)`);
    assert.ok(probes >= 50, `probes ${probes}`);
    assert.ok(meanRtt >= 29 && meanRtt <= 60, `mean RTT ${meanRtt}`);
    assert.ok(loss > 0.02 && loss < 0.25, `loss ${loss}`);

    // Replay: the trace on both directions of a simulated link (the round trip split
    // between them), 1000 echoes per second of virtual time, judged interval by interval
    // against the recording by the 10 % rule (sim/src/trace/compare.ts). Virtual time
    // makes the RTT exact (the link's delay plus symmetric jitter, averaged over 1000
    // probes), and the `spread` loss pattern makes the loss count exact to within
    // TRACE_SPREAD_LOSS_SLACK_PACKETS of 1000 (0.4 %, the floor for intervals recorded
    // without loss), while 10 % of any loss the recording can show (≥ 1 of its ≤ 12
    // probes per interval, so ≥ 8 %) is ≥ 0.8 %.
    const loaded = loadTraceFile(file, undefined);
    assert.ok(loaded.ok, 'the trace loader reads the recording');
    const net = new SimNetwork({ seed: 3 });
    const a = net.addHost('10.0.0.1').bind();
    const b = net.addHost('10.0.0.2').bind(9);
    net.setLinkBoth('10.0.0.1', '10.0.0.2', { trace: loaded.trace });
    b.onReceive((bytes, from) => b.send(bytes, from));
    const spanMs = intervals.at(-1)!.tMs + 1000;
    const sentAtMs = new Float64Array(spanMs).fill(Number.NaN);
    const rttMs = new Float64Array(spanMs).fill(Number.NaN);
    a.onReceive((bytes) => {
      const seq = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
      rttMs[seq] = net.now() - sentAtMs[seq]!;
    });
    for (let seq = 0; seq < spanMs; seq++) {
      net.schedule(seq, (now) => {
        const stamp = new Uint8Array(4);
        new DataView(stamp.buffer).setUint32(0, seq);
        sentAtMs[seq] = now;
        a.send(stamp, b.localAddress());
      });
    }
    net.runUntil(spanMs + 5000);
    const recorder = new TraceRecorder({ startMs: 0, intervalMs: 1000, settleMs: 0 });
    for (let seq = 0; seq < spanMs; seq++) {
      if (Number.isNaN(rttMs[seq]!)) recorder.recordLoss(sentAtMs[seq]!);
      else recorder.recordReply(sentAtMs[seq]!, rttMs[seq]!);
    }
    recorder.finish();
    const lines: string[] = [];
    for (let line = recorder.pollLine(); line !== undefined; line = recorder.pollLine()) lines.push(line);
    const replayed = parseSlipTrace(`${lines.join('\n')}\n`);
    assert.ok(replayed.ok);
    const rows = compareTraceIntervals(intervals, replayed.trace.intervals, { lossFloorPackets: TRACE_SPREAD_LOSS_SLACK_PACKETS });
    const table = formatTraceComparison(rows).map((r) => `  ${r}`).join('\n');
    t.diagnostic(`recorded → replayed in the simulator, per interval:\n${table}`);
    for (const row of rows) assert.ok(row.ok, `interval at ${row.tMs} ms is not within 10 % of the recording\n${table}\n${text}`);

    relay.kill('SIGTERM');
    proxy.kill('SIGTERM');
    coordinator.kill('SIGTERM');
  } finally {
    clearInterval(beat);
    origin.close();
  }
});

test('connect --record to an unwritable path is a usage error (exit 2)', async () => {
  const child = Child.spawn(['connect', '--coordinator', 'http://127.0.0.1:1', '--origin', 'game', '--listen', 'udp:127.0.0.1:0', '--api-key', 'k', '--record', join(dir, 'no-such-dir', 'x.jsonl')]);
  assert.equal(await child.exited, 2);
  assert.match(child.stderr, /--record: cannot write/);
});
