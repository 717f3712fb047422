/**
 * `slipstream bench relay`: starts a real relay process (every feature on: rate limits,
 * metrics endpoint, UDP health checks, tickets in tunnel mode; FEC off) and, in the
 * same run, the minimal Node forwarder of `relay-baseline.ts`, and measures both on
 * 127.0.0.1 with the same load generator (`relay-load.ts`, its own process) and the
 * same origin (this process). Every figure is measured in this run.
 *
 * JSON contract (`--json`; later checks depend on it):
 * `{udp: [{sizeBytes, flows, relayPps, baselinePps, ratio, relayCpuUsPerPacket, baselineCpuUsPerPacket, nginxPps?, nginxRatio?, nginxCpuUsPerPacket?}],
 *   latency: [{sizeBytes, relayP50AddedUs, relayP99AddedUs, baselineP50AddedUs, baselineP99AddedUs, p99Ratio, nginxP50AddedUs?, nginxP99AddedUs?, nginxP99Ratio?}],
 *   tcp: [{conns, relayGbps, baselineGbps, ratio, nginxGbps?, nginxRatio?}],
 *   tunnel: {udp: [...same row shape...], latency: [...same row shape...]},
 *   nginx: {available: boolean, note?: string, config?: string},
 *   webrtc?: {...see bench/relay-webrtc.ts...}, settings: {...}}`
 * The baseline is the minimal Node forwarder with connected upstream sockets
 * (relay-baseline.ts). When nginx with the stream module is installed (relay-nginx.ts;
 * detected, never required) it is a third forwarder measured in the same rounds, and
 * the `nginx…` fields appear (`nginxRatio` = relay packets/s over nginx's, median of the
 * per-round ratios); without it they are absent and `nginx.note` says why.
 * `udp`/`latency`/`tcp` are L4 port mapping; `tunnel` repeats the UDP rows through the
 * tunnel port (24-byte Slipstream header inside `sizeBytes`) against the same baseline.
 * Latency rows also carry diagnostics: echo loss fractions, each forwarder's CPU per
 * echo (`relayCpuUsPerEcho`, `baselineCpuUsPerEcho`, µs) and the time it waited for a
 * CPU during the round (`relayRunQueueWaitMs`, `baselineRunQueueWaitMs`; Linux schedstat).
 * pps = datagrams delivered to the origin per second at a saturating offered load;
 * added latency = round trip through the forwarder minus the direct round trip, µs;
 * `p99Ratio` is the median over rounds of the two forwarders' added p99s divided, each
 * pair measured together in one round (as `ratio` is for packets/s; see
 * {@link addedP99Ratio}); null when no round's baseline added p99 was above 0 µs. The tables end with
 * the issue's targets checked row by row: packets/s ratio ≥ 0.9, p99 ratio ≤ 1.5.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flagCommand, type Command, type CommandIo } from '../kit/command.js';
import { bool, flagGiven, num, str, type FlagSpec } from '../kit/flags.js';
import { sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { BASELINE_SCRIPT } from './relay-baseline.js';
import { type LoadTicket } from './relay-load.js';
import { Child, cpuUs, HEALTH_PAYLOAD, measurePps, measureRttTogether, measureTcp, median, Origin, round, runQueueWaitUs, type Target } from './relay-measure.js';
import { findNginx, startNginx, type NginxProxy } from './relay-nginx.js';
import { CAPACITY_CONNECTED_MIN, CAPACITY_LOSS_MAX, webrtcRows, type WebRtcRows } from './relay-webrtc.js';
import { freePort } from '../kit/free-port.js';
import { CliUsageError } from '../proto/src/errors.js';

const FLAGS: Record<string, FlagSpec> = {
  json: { type: 'boolean', description: 'Print one JSON object instead of tables' },
  quick: { type: 'boolean', description: 'CI-sized run: 700 ms per measurement, one repeat, 3,000 latency packets' },
  'duration-ms': { type: 'integer', valueName: 'MS', min: 200, max: 60_000, description: 'Offered-load time per throughput measurement, ms (--quick: 700)', default: 2000 },
  repeat: { type: 'integer', valueName: 'N', min: 1, max: 10, description: 'Rounds per row; each round measures relay and baseline back to back, alternating which goes first; rows report medians over rounds (--quick: 1)', default: 5 },
  'latency-packets': { type: 'integer', valueName: 'N', min: 500, max: 1_000_000, description: 'Packets per latency measurement at 10,000 packets/s (--quick: 3000)', default: 20_000 },
  'skip-tunnel': { type: 'boolean', description: 'Measure L4 mode only' },
  'skip-tcp': { type: 'boolean', description: 'Skip the TCP bulk rows' },
  'skip-l4': { type: 'boolean', description: 'Skip the L4 UDP rows (and TCP): tunnel mode only' },
  'skip-throughput': { type: 'boolean', description: 'Skip the UDP packets/s rows: latency rows only' },
  'skip-nginx': { type: 'boolean', description: 'Do not measure nginx stream even when it is installed' },
  'skip-webrtc': { type: 'boolean', description: 'Skip the WebRTC (DataChannel) rows' },
  'webrtc-sessions': { type: 'string', valueName: 'N,N,…', description: 'Capacity steps of the WebRTC rows: concurrent 60 messages/s sessions per step, at most 5 steps of at most 1000 (--quick: 10)', default: '50,100,200' },
};

const CLI = fileURLToPath(new URL('../cli/slipstream.js', import.meta.url));
const BASELINE = BASELINE_SCRIPT;
const SIZES = [100, 1200];
const FLOWS = [1, 64];
/** The direct reference path sends on every 10th tick (1,000 packets/s): enough samples, little extra load on the origin. */
const DIRECT_EVERY = 10;

/** One UDP throughput row. */
interface UdpRow {
  sizeBytes: number;
  flows: number;
  relayPps: number;
  baselinePps: number;
  ratio: number;
  relayCpuUsPerPacket: number;
  baselineCpuUsPerPacket: number;
  /** With nginx installed: its delivered packets/s, the relay's over it (median of per-round ratios), its worker's CPU per packet, µs. */
  nginxPps?: number;
  nginxRatio?: number;
  nginxCpuUsPerPacket?: number;
}
/** One latency row. */
interface LatencyRow {
  sizeBytes: number;
  relayP50AddedUs: number;
  relayP99AddedUs: number;
  baselineP50AddedUs: number;
  baselineP99AddedUs: number;
  /** Median over rounds of relay +p99 / baseline +p99, each pair from one round. */
  p99Ratio: number;
  /** With nginx installed: its added p50/p99, µs, and the relay's +p99 over it (median of per-round ratios). */
  nginxP50AddedUs?: number;
  nginxP99AddedUs?: number;
  nginxP99Ratio?: number;
}
/** The targets the tables are checked against: relay packets/s at least this × the baseline's… */
const PPS_RATIO_MIN = 0.9;
/** …and relay added p99 latency at most this × the baseline's. */
const P99_RATIO_MAX = 1.5;
/** Issue #17's targets against nginx stream with one worker: relay packets/s at least this × nginx's… */
const NGINX_PPS_RATIO_MIN = 1.3;
/** …and relay added p99 at most nginx's. */
const NGINX_P99_RATIO_MAX = 1.0;
/** One TCP row. */
interface TcpRow {
  conns: number;
  relayGbps: number;
  baselineGbps: number;
  ratio: number;
  nginxGbps?: number;
  nginxRatio?: number;
}


interface Settings {
  durationMs: number;
  repeat: number;
  latencyPackets: number;
  tunnel: boolean;
  tcp: boolean;
  l4: boolean;
  throughput: boolean;
  nginx: boolean;
  /** Capacity steps of the WebRTC rows; undefined: no WebRTC rows. */
  webrtcSessions: number[] | undefined;
}

/** Runs `steps` in the order rotated by `round`, so that no forwarder always goes first; results in the original order. */
async function rotated<T>(round: number, steps: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array<T>(steps.length);
  for (let i = 0; i < steps.length; i++) {
    const k = (i + round) % steps.length;
    results[k] = await steps[k]!();
  }
  return results;
}

async function runBench(settings: Settings, io: CommandIo, json: boolean): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-bench-relay-'));
  const origin = await Origin.start();
  const children: Child[] = [];
  let nginxProxy: NginxProxy | undefined;
  const progress = (text: string): void => {
    if (!json) io.err(text);
  };
  try {
    const seed = randomBytes(32);
    const signingKey = ticketSigningKeyFromSeed(seed);
    const sealKey = randomBytes(32);
    const config = [
      'logLevel: warn',
      'upstreamBindAddress: 127.0.0.1',
      'socketReceiveBufferBytes: 8388608',
      // Origin-facing sockets too (the baseline's upstream sockets get the same): with
      // the OS default (~208 KiB) a stall of a few ms at 10,000 packets/s of 1200 B
      // overflows them, and echoes are lost in both forwarders.
      'upstreamReceiveBufferBytes: 8388608',
      'metrics:',
      '  listen: 127.0.0.1:0',
      'limits:',
      // Every limit on, set above what the bench offers so that it measures their cost, not their effect.
      '  sessionsMax: 100000',
      '  sessionsPerSourceMax: 1000',
      '  newSessionsPerSourcePerSecond: 1000',
      '  sourcePacketsPerSecond: 10000000',
      '  sourceBytesPerSecond: 10000000000',
      '  sessionPacketsPerSecond: 10000000',
      '  sessionBytesPerSecond: 10000000000',
      '  unauthenticatedPacketsPerSecond: 1000',
      '  ticketVerificationsPerSecond: 100000',
      '  ticketVerificationsPerSourcePerSecond: 100000',
      'originGroups:',
      '  bench:',
      `    origins: [127.0.0.1:${origin.udpPort}]`,
      '    healthCheck:',
      '      mode: udp',
      '      intervalMs: 1000',
      '      timeoutMs: 500',
      `      udpPayloadHex: '${HEALTH_PAYLOAD.toString('hex')}'`,
      '  benchTcp:',
      `    origins: [127.0.0.1:${origin.tcpPort}]`,
      'rules:',
      '  - name: bench-udp',
      '    protocol: udp',
      '    listen: 127.0.0.1:0',
      '    group: bench',
      '  - name: bench-tcp',
      '    protocol: tcp',
      '    listen: 127.0.0.1:0',
      '    group: benchTcp',
      'tunnel:',
      '  listen: 127.0.0.1:0',
      `  ticketPublicKey: ${Buffer.from(rawPublicKey(signingKey)).toString('base64')}`,
      `  sealKey: ${sealKey.toString('base64')}`,
      '  origins:',
      `    bench: 127.0.0.1:${origin.udpPort}`,
      '  fec:',
      '    modes: [off]',
      ...(settings.webrtcSessions
        ? ['  webrtc:', '    listen: 127.0.0.1:0', `    udpMuxPort: ${await freePort('udp')}`, // Room for every step's peer connections at once: the relay reaps a closed one only when it sees it close.
            `    peerConnectionsMax: ${settings.webrtcSessions.reduce((a, b) => a + b, 0) + 200}`]
        : []),
    ].join('\n');
    const configPath = join(dir, 'relay.yaml');
    writeFileSync(configPath, config);
    const relayChild = new Child(spawn(process.execPath, [CLI, 'relay', '--config', configPath, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit'] }));
    children.push(relayChild);
    const started = JSON.parse(await relayChild.waitFor((l) => l.includes('"relay started"'), 15_000)) as { addresses: { rules: Record<string, { port: number }[]>; tunnel: { port: number }; metrics?: { port: number }; webrtc?: { port: number } } };
    const relay: Target = { name: 'relay', pid: relayChild.process.pid!, udpPort: started.addresses.rules['bench-udp']![0]!.port, tcpPort: started.addresses.rules['bench-tcp']![0]!.port };
    const tunnelPort = started.addresses.tunnel.port;
    const baselineChild = new Child(spawn(process.execPath, [BASELINE, '0', '0', String(origin.udpPort), String(origin.tcpPort)], { stdio: ['ignore', 'pipe', 'inherit'] }));
    children.push(baselineChild);
    const ready = (await baselineChild.waitFor((l) => l.startsWith('ready'), 10_000)).split(' ');
    const baseline: Target = { name: 'baseline', pid: baselineChild.process.pid!, udpPort: Number(ready[1]), tcpPort: Number(ready[2]) };
    const found = settings.nginx ? findNginx() : ({ ok: false, reason: '--skip-nginx given' } as const);
    if (found.ok) nginxProxy = await startNginx(found, dir, origin.udpPort, origin.tcpPort);
    const nginx: Target | undefined = nginxProxy ? { name: 'nginx', pid: nginxProxy.workerPid, udpPort: nginxProxy.udpPort, tcpPort: nginxProxy.tcpPort } : undefined;
    const nginxInfo = nginxProxy ? { available: true, config: readFileSync(join(dir, 'nginx.conf'), 'utf8') } : { available: false, note: `nginx rows absent: ${found.ok ? 'not started' : found.reason}` };
    if (!nginxProxy) progress(`${nginxInfo.note}\n`);

    let ticketCounter = 0;
    const tickets = (n: number): LoadTicket[] =>
      Array.from({ length: n }, () => {
        const idHigh = 0x5b000000 + (ticketCounter >>> 16);
        const idLow = (Date.now() & 0xffff0000) + (ticketCounter++ & 0xffff);
        const sessionId = sessionIdToHex(idHigh >>> 0, idLow >>> 0);
        const sessionKey = randomBytes(32);
        const ticket = issueTicket({ sessionId, origin: 'bench', issuedAtMs: Date.now(), expiresAtMs: Date.now() + 3_600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey, sealNonce: randomBytes(12) }, signingKey, sealKey);
        return { ticketBase64: Buffer.from(ticket).toString('base64'), idHigh: idHigh >>> 0, idLow: idLow >>> 0, sessionKeyBase64: sessionKey.toString('base64') };
      });

    const relayMetricsPort = started.addresses.metrics?.port;
    /** The relay's event-loop delay since the previous call, µs (its /metrics resets the window at each scrape). */
    const relayLoopDelay = async (): Promise<{ p99: number; max: number }> => {
      if (relayMetricsPort === undefined) return { p99: Number.NaN, max: Number.NaN };
      const text = await (await fetch(`http://127.0.0.1:${relayMetricsPort}/metrics`)).text();
      const pick = (q: string): number => Number(new RegExp(`slipstream_relay_event_loop_delay_seconds\\{quantile="${q}"\\} ([0-9.e+-]+)`).exec(text)?.[1] ?? Number.NaN) * 1e6;
      return { p99: pick('0.99'), max: pick('1') };
    };
    // Rounds: every row measures the relay and the baseline back to back, the order
    // alternating between rounds, so that a busy moment of the shared machine hits both
    // alike; rows report the median over rounds (ratios: the median of the per-round
    // ratios, each from one adjacent relay/baseline pair).
    const udpRows = async (mode: 'l4' | 'tunnel'): Promise<UdpRow[]> => {
      const rows: UdpRow[] = [];
      for (const sizeBytes of SIZES) {
        for (const flows of FLOWS) {
          type Pps = { pps: number; cpuUsPerPacket: number };
          const rounds: { relay: Pps; baseline: Pps; nginx: Pps | undefined }[] = [];
          for (let r = 0; r < settings.repeat; r++) {
            const job = { mode: 'blast' as const, flows, sizeBytes, durationMs: settings.durationMs, rateHz: 0, count: 0 };
            const steps = [
              () => measurePps(origin, mode === 'l4' ? relay : { ...relay, udpPort: tunnelPort }, { ...job, tunnel: mode === 'tunnel' ? tickets(flows) : undefined }),
              () => measurePps(origin, baseline, { ...job, tunnel: undefined }),
              ...(nginx ? [() => measurePps(origin, nginx, { ...job, tunnel: undefined })] : []),
            ];
            const [viaRelay, viaBaseline, viaNginx] = await rotated(r, steps);
            rounds.push({ relay: viaRelay!, baseline: viaBaseline!, nginx: viaNginx });
          }
          const row = {
            sizeBytes,
            flows,
            relayPps: Math.round(median(rounds.map((x) => x.relay.pps))),
            baselinePps: Math.round(median(rounds.map((x) => x.baseline.pps))),
            ratio: round(median(rounds.map((x) => x.relay.pps / x.baseline.pps)), 3),
            relayCpuUsPerPacket: round(median(rounds.map((x) => x.relay.cpuUsPerPacket)), 2),
            baselineCpuUsPerPacket: round(median(rounds.map((x) => x.baseline.cpuUsPerPacket)), 2),
            roundRatios: rounds.map((x) => round(x.relay.pps / x.baseline.pps, 3)),
            ...(nginx
              ? {
                  nginxPps: Math.round(median(rounds.map((x) => x.nginx!.pps))),
                  nginxRatio: round(median(rounds.map((x) => x.relay.pps / x.nginx!.pps)), 3),
                  nginxCpuUsPerPacket: round(median(rounds.map((x) => x.nginx!.cpuUsPerPacket)), 2),
                  roundNginxRatios: rounds.map((x) => round(x.relay.pps / x.nginx!.pps, 3)),
                }
              : {}),
          };
          progress(`${mode} udp ${sizeBytes} B × ${flows} flows: relay ${row.relayPps} pps, baseline ${row.baselinePps} pps, ratio ${row.ratio} (rounds ${row.roundRatios.join(' ')})${row.nginxPps !== undefined ? `; nginx ${row.nginxPps} pps, relay/nginx ${row.nginxRatio} (rounds ${row.roundNginxRatios!.join(' ')})` : ''}\n`);
          rows.push(row);
        }
      }
      return rows;
    };
    const latencyRows = async (mode: 'l4' | 'tunnel'): Promise<LatencyRow[]> => {
      const rows: LatencyRow[] = [];
      for (const sizeBytes of SIZES) {
        // Direct, relay and baseline in each round, in a rotating order, so that a busy
        // moment on the machine hits all three alike; added latency is taken against the
        // same round's direct run, and the median over rounds is kept.
        // Relay, baseline and direct are measured together: one generator interleaves
        // their packets (relay and baseline at 10,000 packets/s each, the direct
        // reference at 1,000), so whatever else the shared machine does hits all three
        // in the same instants; added latency is each path's percentile minus the direct
        // path's from the same window. The median over rounds is kept.
        type Rtt = { p50: number; p99: number; lossFraction?: number };
        const samples: { relay: Rtt; baseline: Rtt; nginx: Rtt | undefined; relayLoopP99Us: number; relayLoopMaxUs: number; relaySessions: number; relayCpuUs: number; baselineCpuUs: number; relayWaitUs: number; baselineWaitUs: number }[] = [];
        for (let r = 0; r < settings.repeat; r++) {
          await relayLoopDelay();
          const cpuBefore = [cpuUs(relay.pid), cpuUs(baseline.pid)];
          const waitBefore = [runQueueWaitUs(relay.pid), runQueueWaitUs(baseline.pid)];
          const paths = [
            { port: origin.udpPort, sizeBytes: mode === 'tunnel' ? sizeBytes - 24 : sizeBytes, every: DIRECT_EVERY },
            { port: mode === 'l4' ? relay.udpPort : tunnelPort, sizeBytes, tunnel: mode === 'tunnel' ? tickets(1)[0] : undefined },
            { port: baseline.udpPort, sizeBytes },
            ...(nginx ? [{ port: nginx.udpPort, sizeBytes }] : []),
          ];
          // Rotate the order the paths are opened and listed in, round by round.
          const order = paths.map((_, i) => (i + r) % paths.length);
          const [direct, viaRelay, viaBaseline, viaNginx] = await measureRttTogether(origin, order.map((i) => paths[i]!), settings.latencyPackets).then((rtts) => paths.map((_, i) => rtts[order.indexOf(i)]!));
          const cpuAfter = [cpuUs(relay.pid), cpuUs(baseline.pid)];
          const waitAfter = [runQueueWaitUs(relay.pid), runQueueWaitUs(baseline.pid)];
          const relayLoop = await relayLoopDelay();
          samples.push({
            relay: { p50: viaRelay!.p50 - direct!.p50, p99: viaRelay!.p99 - direct!.p99, lossFraction: viaRelay!.lossFraction },
            baseline: { p50: viaBaseline!.p50 - direct!.p50, p99: viaBaseline!.p99 - direct!.p99, lossFraction: viaBaseline!.lossFraction },
            nginx: viaNginx ? { p50: viaNginx.p50 - direct!.p50, p99: viaNginx.p99 - direct!.p99, lossFraction: viaNginx.lossFraction } : undefined,
            relayLoopP99Us: relayLoop.p99,
            relayLoopMaxUs: relayLoop.max,
            relaySessions: await relaySessionCount(),
            relayCpuUs: cpuAfter[0]! - cpuBefore[0]!,
            baselineCpuUs: cpuAfter[1]! - cpuBefore[1]!,
            relayWaitUs: waitAfter[0]! - waitBefore[0]!,
            baselineWaitUs: waitAfter[1]! - waitBefore[1]!,
          });
        }
        const row = {
          sizeBytes,
          relayP50AddedUs: round(median(samples.map((x) => x.relay.p50)), 1),
          relayP99AddedUs: round(median(samples.map((x) => x.relay.p99)), 1),
          baselineP50AddedUs: round(median(samples.map((x) => x.baseline.p50)), 1),
          baselineP99AddedUs: round(median(samples.map((x) => x.baseline.p99)), 1),
          p99Ratio: round(median(samples.map((x) => addedP99Ratio(x.relay.p99, x.baseline.p99))), 3),
          roundP99AddedUs: samples.map((x) => ({ relay: round(x.relay.p99, 0), baseline: round(x.baseline.p99, 0) })),
          relayEventLoopDelayP99Us: round(median(samples.map((x) => x.relayLoopP99Us)), 0),
          relayEventLoopDelayMaxUs: round(median(samples.map((x) => x.relayLoopMaxUs)), 0),
          relaySessionsAfter: samples.map((x) => x.relaySessions),
          relayEchoLossFraction: round(median(samples.map((x) => x.relay.lossFraction ?? 0)), 4),
          baselineEchoLossFraction: round(median(samples.map((x) => x.baseline.lossFraction ?? 0)), 4),
          // CPU (user + system) each forwarder spent per echo sent through it, both directions, µs.
          relayCpuUsPerEcho: round(median(samples.map((x) => x.relayCpuUs / settings.latencyPackets)), 2),
          baselineCpuUsPerEcho: round(median(samples.map((x) => x.baselineCpuUs / settings.latencyPackets)), 2),
          // Time each forwarder was runnable but waiting for a CPU during the round (the shared machine's contention), ms.
          relayRunQueueWaitMs: round(median(samples.map((x) => x.relayWaitUs / 1000)), 1),
          baselineRunQueueWaitMs: round(median(samples.map((x) => x.baselineWaitUs / 1000)), 1),
          ...(nginx
            ? {
                nginxP50AddedUs: round(median(samples.map((x) => x.nginx!.p50)), 1),
                nginxP99AddedUs: round(median(samples.map((x) => x.nginx!.p99)), 1),
                nginxP99Ratio: round(median(samples.map((x) => addedP99Ratio(x.relay.p99, x.nginx!.p99))), 3),
                nginxEchoLossFraction: round(median(samples.map((x) => x.nginx!.lossFraction ?? 0)), 4),
              }
            : {}),
        };
        progress(`${mode} latency ${sizeBytes} B at 10k pps: relay +${row.relayP50AddedUs}/+${row.relayP99AddedUs} µs (p50/p99), baseline +${row.baselineP50AddedUs}/+${row.baselineP99AddedUs} µs; relay loop delay p99 ${row.relayEventLoopDelayP99Us} µs, max ${row.relayEventLoopDelayMaxUs} µs; echo loss relay ${row.relayEchoLossFraction} baseline ${row.baselineEchoLossFraction}; CPU/echo relay ${row.relayCpuUsPerEcho} µs baseline ${row.baselineCpuUsPerEcho} µs; run-queue wait relay ${row.relayRunQueueWaitMs} ms baseline ${row.baselineRunQueueWaitMs} ms; rounds ${row.roundP99AddedUs.map((x) => `${x.relay}/${x.baseline}`).join(' ')}; relay sessions ${row.relaySessionsAfter.join(' ')}${row.nginxP99AddedUs !== undefined ? `; nginx +${row.nginxP50AddedUs}/+${row.nginxP99AddedUs} µs, relay/nginx p99 ratio ${row.nginxP99Ratio}` : ''}\n`);
        rows.push(row);
      }
      return rows;
    };
    const relaySessionCount = async (): Promise<number> => {
      if (relayMetricsPort === undefined) return Number.NaN;
      const body = (await (await fetch(`http://127.0.0.1:${relayMetricsPort}/health`)).json()) as { sessions: number };
      return body.sessions;
    };

    const udp = settings.l4 && settings.throughput ? await udpRows('l4') : [];
    const latency = settings.l4 ? await latencyRows('l4') : [];
    const tcp: TcpRow[] = [];
    if (settings.tcp && settings.l4) {
      for (const conns of [1, 4]) {
        const rounds: { relay: number; baseline: number; nginx: number | undefined }[] = [];
        for (let r = 0; r < settings.repeat; r++) {
          const steps = [relay, baseline, ...(nginx ? [nginx] : [])].map((target) => () => measureTcp(origin, target.tcpPort, conns, settings.durationMs));
          const [viaRelay, viaBaseline, viaNginx] = await rotated(r, steps);
          rounds.push({ relay: viaRelay!, baseline: viaBaseline!, nginx: viaNginx });
        }
        const relayGbps = median(rounds.map((x) => x.relay));
        const baselineGbps = median(rounds.map((x) => x.baseline));
        const ratio = median(rounds.map((x) => x.relay / x.baseline));
        const row = {
          conns,
          relayGbps: round(relayGbps, 3),
          baselineGbps: round(baselineGbps, 3),
          ratio: round(ratio, 3),
          roundRatios: rounds.map((x) => round(x.relay / x.baseline, 3)),
          ...(nginx ? { nginxGbps: round(median(rounds.map((x) => x.nginx!)), 3), nginxRatio: round(median(rounds.map((x) => x.relay / x.nginx!)), 3) } : {}),
        };
        progress(`tcp ${conns} conns: relay ${row.relayGbps} Gbit/s, baseline ${row.baselineGbps} Gbit/s, ratio ${row.ratio} (rounds ${row.roundRatios.join(' ')})${row.nginxGbps !== undefined ? `; nginx ${row.nginxGbps} Gbit/s, relay/nginx ${row.nginxRatio}` : ''}\n`);
        tcp.push(row);
      }
    }
    const tunnel = settings.tunnel ? { udp: settings.throughput ? await udpRows('tunnel') : [], latency: await latencyRows('tunnel') } : undefined;
    const webrtc = settings.webrtcSessions
      ? await webrtcRows({ origin, relay, tunnelPort, signalingUrl: `http://127.0.0.1:${started.addresses.webrtc!.port}/webrtc`, tickets, repeat: settings.repeat, durationMs: settings.durationMs, capacitySessions: settings.webrtcSessions, throughput: settings.throughput, progress })
      : undefined;
    return { udp, latency, tcp, ...(tunnel ? { tunnel } : {}), ...(webrtc ? { webrtc } : {}), nginx: nginxInfo, settings };
  } finally {
    for (const child of children.reverse()) await child.stop();
    await nginxProxy?.stop();
    origin.close();
    rmSync(dir, { recursive: true, force: true });
  }
}


function printTables(result: Record<string, unknown>, io: CommandIo): void {
  const udp = result.udp as UdpRow[];
  const latency = result.latency as LatencyRow[];
  const tcp = result.tcp as TcpRow[];
  const tunnel = result.tunnel as { udp: UdpRow[]; latency: LatencyRow[] } | undefined;
  const udpTable = (title: string, rows: UdpRow[]): void => {
    if (rows.length === 0) return; // skipped (--skip-throughput, --skip-l4)
    const withNginx = rows[0]!.nginxPps !== undefined;
    io.out(`\n${title}\n  size B  flows   relay pps  baseline pps  ratio  relay µs/pkt  baseline µs/pkt${withNginx ? '   nginx pps  vs nginx  nginx µs/pkt' : ''}\n`);
    for (const r of rows) {
      const nginxCells = withNginx ? `  ${String(r.nginxPps).padStart(10)}  ${r.nginxRatio!.toFixed(3).padStart(8)}  ${String(r.nginxCpuUsPerPacket).padStart(12)}` : '';
      io.out(`  ${String(r.sizeBytes).padStart(6)}  ${String(r.flows).padStart(5)}  ${String(r.relayPps).padStart(10)}  ${String(r.baselinePps).padStart(12)}  ${r.ratio.toFixed(3).padStart(5)}  ${String(r.relayCpuUsPerPacket).padStart(12)}  ${String(r.baselineCpuUsPerPacket).padStart(15)}${nginxCells}\n`);
    }
  };
  const latencyTable = (title: string, rows: LatencyRow[]): void => {
    if (rows.length === 0) return;
    const withNginx = rows[0]!.nginxP99AddedUs !== undefined;
    const ratioText = (ratio: number | null | undefined): string => (ratio === null || ratio === undefined || Number.isNaN(ratio) ? 'n/a' : ratio.toFixed(3));
    io.out(`\n${title}\n  size B  relay +p50 µs  relay +p99 µs  baseline +p50 µs  baseline +p99 µs  p99 ratio${withNginx ? '  nginx +p50 µs  nginx +p99 µs  p99 vs nginx' : ''}\n`);
    for (const r of rows) {
      const nginxCells = withNginx ? `  ${String(r.nginxP50AddedUs).padStart(13)}  ${String(r.nginxP99AddedUs).padStart(13)}  ${ratioText(r.nginxP99Ratio).padStart(12)}` : '';
      io.out(`  ${String(r.sizeBytes).padStart(6)}  ${String(r.relayP50AddedUs).padStart(13)}  ${String(r.relayP99AddedUs).padStart(13)}  ${String(r.baselineP50AddedUs).padStart(16)}  ${String(r.baselineP99AddedUs).padStart(16)}  ${ratioText(r.p99Ratio).padStart(9)}${nginxCells}\n`);
    }
  };
  udpTable('L4 UDP forwarding (max delivered packets/s; relay CPU per packet)', udp);
  latencyTable('L4 UDP round-trip latency added at 10,000 packets/s', latency);
  if (tcp.length > 0) {
    const withNginx = tcp[0]!.nginxGbps !== undefined;
    io.out(`\nL4 TCP bulk throughput\n  conns  relay Gbit/s  baseline Gbit/s  ratio${withNginx ? '  nginx Gbit/s  vs nginx' : ''}\n`);
    for (const r of tcp) io.out(`  ${String(r.conns).padStart(5)}  ${String(r.relayGbps).padStart(12)}  ${String(r.baselineGbps).padStart(15)}  ${r.ratio.toFixed(3).padStart(5)}${withNginx ? `  ${String(r.nginxGbps).padStart(12)}  ${r.nginxRatio!.toFixed(3).padStart(8)}` : ''}\n`);
  }
  if (tunnel) {
    udpTable('Tunnel mode UDP forwarding (tickets; FEC off)', tunnel.udp);
    latencyTable('Tunnel mode round-trip latency added at 10,000 packets/s', tunnel.latency);
  }
  // The issue's targets, row by row, so a reader need not compare columns by eye.
  const checks: string[] = [];
  const pps = (mode: string, rows: UdpRow[]): void => {
    for (const r of rows) checks.push(`${r.ratio >= PPS_RATIO_MIN ? 'ok   ' : 'BELOW'} ${mode} ${r.sizeBytes} B × ${r.flows} flows: packets/s ratio ${r.ratio.toFixed(3)} (target ≥ ${PPS_RATIO_MIN})`);
  };
  const p99 = (mode: string, rows: LatencyRow[]): void => {
    for (const r of rows) {
      if (Number.isNaN(r.p99Ratio)) checks.push(`n/a   ${mode} ${r.sizeBytes} B: no p99 ratio (the baseline added no measurable p99 in any round)`);
      else checks.push(`${r.p99Ratio <= P99_RATIO_MAX ? 'ok   ' : 'ABOVE'} ${mode} ${r.sizeBytes} B: p99 added latency ratio ${r.p99Ratio.toFixed(3)} (target ≤ ${P99_RATIO_MAX})`);
    }
  };
  pps('L4', udp);
  p99('L4', latency);
  if (tunnel) {
    pps('tunnel', tunnel.udp);
    p99('tunnel', tunnel.latency);
  }
  const webrtc = result.webrtc as WebRtcRows | undefined;
  if (webrtc && webrtc.throughput.length > 0) {
    io.out('\nWebRTC DataChannel forwarding beside the UDP tunnel (max delivered messages/s; relay CPU per message)\n  size B  sessions  webrtc msg/s  tunnel pkt/s  ratio  webrtc µs/msg  tunnel µs/pkt\n');
    for (const r of webrtc.throughput) io.out(`  ${String(r.sizeBytes).padStart(6)}  ${String(r.sessions).padStart(8)}  ${String(r.webrtcMps).padStart(12)}  ${String(r.tunnelPps).padStart(12)}  ${r.ratio.toFixed(3).padStart(5)}  ${String(r.webrtcCpuUsPerMessage).padStart(13)}  ${String(r.tunnelCpuUsPerPacket).padStart(13)}\n`);
  }
  if (webrtc) {
    const c = webrtc.capacity;
    io.out(`\nWebRTC sessions at ${c.rateHz} messages/s (${c.sizeBytes} B, echoed)\n  sessions  connected  relay CPU % of a core  µs/message  echo loss  RTT p50 ms  RTT p99 ms\n`);
    for (const st of c.steps) io.out(`  ${String(st.sessions).padStart(8)}  ${String(st.connected).padStart(9)}  ${(st.relayCpuFraction * 100).toFixed(1).padStart(21)}  ${String(st.relayCpuUsPerMessage).padStart(10)}  ${st.echoLossFraction.toFixed(4).padStart(9)}  ${String(st.rttP50Ms).padStart(10)}  ${String(st.rttP99Ms).padStart(10)}\n`);
    io.out(c.sessionsPerCore === null ? `  no step held (≥ ${CAPACITY_CONNECTED_MIN * 100} % of its sessions connected, echo loss < ${CAPACITY_LOSS_MAX * 100} %)\n` : `  one relay core holds ≈ ${c.sessionsPerCore} such sessions (extrapolated from the largest step held: ${c.heldSessions ?? 'n/a'} sessions connected)\n`);
  }
  if (checks.length > 0) io.out(`\nTargets (relay vs the minimal forwarder, this run)\n${checks.map((c) => `  ${c}\n`).join('')}`);
  // Issue #17's targets against nginx stream (one worker), when it ran.
  const nginxChecks: string[] = [];
  const vsNginx = (mode: string, udpRows: UdpRow[], latencyRows: LatencyRow[]): void => {
    for (const r of udpRows) if (r.nginxRatio !== undefined) nginxChecks.push(`${r.nginxRatio >= NGINX_PPS_RATIO_MIN ? 'ok   ' : 'BELOW'} ${mode} ${r.sizeBytes} B × ${r.flows} flows: packets/s vs nginx ${r.nginxRatio.toFixed(3)} (target ≥ ${NGINX_PPS_RATIO_MIN})`);
    for (const r of latencyRows) {
      if (r.nginxP99Ratio === undefined) continue;
      if (r.nginxP99Ratio === null || Number.isNaN(r.nginxP99Ratio)) nginxChecks.push(`n/a   ${mode} ${r.sizeBytes} B: no p99 ratio vs nginx (nginx added no measurable p99 in any round)`);
      else nginxChecks.push(`${r.nginxP99Ratio <= NGINX_P99_RATIO_MAX ? 'ok   ' : 'ABOVE'} ${mode} ${r.sizeBytes} B: p99 added latency vs nginx ${r.nginxP99Ratio.toFixed(3)} (target ≤ ${NGINX_P99_RATIO_MAX})`);
    }
  };
  vsNginx('L4', udp, latency);
  if (tunnel) vsNginx('tunnel', tunnel.udp, tunnel.latency);
  if (nginxChecks.length > 0) io.out(`\nTargets vs nginx stream, one worker (issue #17; this run)\n${nginxChecks.map((c) => `  ${c}\n`).join('')}`);
  const nginx = result.nginx as { available: boolean; note?: string } | undefined;
  if (nginx && !nginx.available) io.out(`\n${nginx.note}\n`);
}

/**
 * One round's p99 ratio: the relay's added p99 over the baseline's, both µs against the
 * same window's direct path. On a noisy machine a forwarded path's p99 can come out below
 * the direct one's; the relay cannot take latency away, so an added p99 below 0 counts as
 * 0 (ratio 0, never negative). NaN (no ratio) when the baseline added nothing measurable
 * (≤ 0 µs), since dividing by it says nothing.
 */
export function addedP99Ratio(relayAddedP99Us: number, baselineAddedP99Us: number): number {
  if (!(baselineAddedP99Us > 0)) return Number.NaN;
  return Math.max(0, relayAddedP99Us) / baselineAddedP99Us;
}

/** `--webrtc-sessions`: 1 to 5 comma-separated counts, each 1–1000. */
function parseSessionSteps(text: string): number[] {
  const steps = text.split(',').map((x) => Number(x.trim()));
  if (steps.length === 0 || steps.length > 5 || steps.some((n) => !Number.isInteger(n) || n < 1 || n > 1000)) throw new CliUsageError('--webrtc-sessions', `--webrtc-sessions: '${text}' is not 1 to 5 comma-separated session counts of 1–1000`);
  return steps;
}

/** The `bench relay` command. */
export const relayBenchCommand: Command = flagCommand({
  path: 'bench relay',
  summary: 'Relay vs a minimal Node forwarder on loopback: UDP pps, added latency, TCP throughput, L4 and tunnel mode.',
  flags: FLAGS,
  async run({ values }, io, argv) {
    const quick = bool(values, 'quick');
    const settings: Settings = {
      durationMs: quick && !flagGiven(argv, 'duration-ms') ? 700 : num(values, 'duration-ms')!,
      repeat: quick && !flagGiven(argv, 'repeat') ? 1 : num(values, 'repeat')!,
      latencyPackets: quick && !flagGiven(argv, 'latency-packets') ? 3000 : num(values, 'latency-packets')!,
      tunnel: !bool(values, 'skip-tunnel'),
      tcp: !bool(values, 'skip-tcp'),
      l4: !bool(values, 'skip-l4'),
      throughput: !bool(values, 'skip-throughput'),
      nginx: !bool(values, 'skip-nginx'),
      webrtcSessions: bool(values, 'skip-webrtc') ? undefined : quick && !flagGiven(argv, 'webrtc-sessions') ? [10] : parseSessionSteps(str(values, 'webrtc-sessions')!),
    };
    const result = await runBench(settings, io, bool(values, 'json'));
    if (bool(values, 'json')) io.out(`${JSON.stringify(result)}\n`);
    else printTables(result, io);
    return 0;
  },
});
