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
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { SimNetwork } from '../sim/src/core/network.js';
import { compareTraceIntervals, formatTraceComparison, TRACE_SPREAD_LOSS_SLACK_PACKETS } from '../sim/src/trace/compare.js';
import { parseSlipTrace } from '../proto/src/trace/format.js';
import { loadTraceFile } from '../sim/src/trace/load.js';
import { TraceRecorder } from '../proto/src/trace/recorder.js';
import { CliProcess } from './support/cli-process.js';
import { announceRelay, fleetKeys, startCoordinator, startTunnelRelay } from './support/local-fleet.js';
import { freePort, udpEchoOrigin } from './support/sockets.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-record-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('connect --record writes a trace of the impaired path that parses and replays (RTT and loss per interval within 10 %)', async (t) => {
  const keys = fleetKeys();
  const origin = await udpEchoOrigin();
  let beat: NodeJS.Timeout | undefined;
  try {
    const originPort = origin.port;
    const { proc: coordinator, url: coordinatorUrl } = await startCoordinator(dir, keys, originPort);

    const relayConfig = join(dir, 'relay.yaml');
    writeFileSync(
      relayConfig,
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: "off" }',
        'logLevel: warn',
        'tunnel:',
        '  listen: 127.0.0.1:0',
        `  ticketPublicKey: ${keys.publicKey}`,
        `  sealKey: ${keys.sealKey.toString('base64')}`,
        `  origins: { game: 127.0.0.1:${originPort} }`,
      ].join('\n'),
    );
    const { proc: relay, tunnelPort } = await startTunnelRelay(relayConfig);

    // The impaired path: 15 ms and 5 % loss each way between the player and the relay.
    const proxyConfig = join(dir, 'proxy.yaml');
    writeFileSync(proxyConfig, ['proxies:', '  - name: last-mile', '    protocol: udp', '    listen: 127.0.0.1:0', `    upstream: 127.0.0.1:${tunnelPort}`, '    both: { delayMs: 15, loss: { model: bernoulli, p: 0.05 } }'].join('\n'));
    const proxy = CliProcess.start(['sim', 'proxy', '--config', proxyConfig, '--listen', '127.0.0.1:0', '--seed', '7', '--log-level', 'info']);
    const proxyPort = Number((await proxy.waitFor(/"listen":"127\.0\.0\.1:(\d+)"/, 'stdout', 15_000))[1]);

    const fleet = new CoordinatorClient({ baseUrl: coordinatorUrl, fleetSecret: keys.fleetSecret });
    beat = await announceRelay(fleet, { relayId: 'relay-a', tunnelAddress: `127.0.0.1:${proxyPort}`, originRttMs: 1 });

    const file = join(dir, 'evening.jsonl');
    const gamePort = await freePort('udp');
    const connect = CliProcess.start(['connect', '--coordinator', coordinatorUrl, '--origin', 'game', '--listen', `udp:127.0.0.1:${gamePort}`, '--api-key', keys.apiKey, '--bind', '127.0.0.1', '--cache', join(dir, 'cache.json'), '--record', file, '--record-interval-ms', '1000']);
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
    origin.socket.close();
  }
});

test('connect --record to an unwritable path is a usage error (exit 2)', async () => {
  const child = CliProcess.start(['connect', '--coordinator', 'http://127.0.0.1:1', '--origin', 'game', '--listen', 'udp:127.0.0.1:0', '--api-key', 'k', '--record', join(dir, 'no-such-dir', 'x.jsonl')]);
  assert.equal(await child.exited, 2);
  assert.match(child.stderr, /--record: cannot write/);
});
