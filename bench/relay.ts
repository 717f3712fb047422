/**
 * `slipstream bench relay`: starts a real relay process (every feature on: rate limits,
 * metrics endpoint, UDP health checks, tickets in tunnel mode; FEC off; `udpIo` from
 * `--udp-io`, default `auto`: batched when the addon loads) and, in the same run, the
 * same relay forced onto `dgram` (when the first runs batched), a relay with
 * `workers: N` (`--workers`), and the minimal Node forwarder of `relay-baseline.ts`, and
 * measures them on 127.0.0.1 with the same load generator (`relay-load.ts`, its own
 * process) and the same origin (`relay-origin.ts`, its own process). Every figure is
 * measured in this run.
 *
 * The tools are built so that the forwarder measured is the bottleneck, not them: the
 * generator blasts with `sendmmsg` and the origin reads with `recvmmsg` (the udp-batch
 * addon, `--tools-udp-io`; `dgram` when it cannot load, ~5–7 µs of CPU per datagram,
 * which on 2 cores capped every forwarder near 100k packets/s), and TCP runs between
 * `iperf3 -c` and `iperf3 -s` when installed (`--tcp-tools`; else a Node sender and the
 * origin's Node sink, each in its own process). Which tools ran is in `tools`, and
 * every row gives the tools' CPU beside the forwarders' so a reader can see who was busy.
 *
 * JSON contract (`--json`; later checks depend on it):
 * `{udp: [{sizeBytes, flows, relayUdpIo, relayPps, baselinePps, ratio, relayCpuUsPerPacket, baselineCpuUsPerPacket, relayCpuCores, baselineCpuCores,
 *          offeredPps, generatorCpuCores, originCpuCores, nginxPps?, nginxRatio?, nginxCpuUsPerPacket?, nginxCpuCores?,
 *          dgramPps?, dgramRatio?, dgramCpuUsPerPacket?, dgramCpuCores?, relayOverDgramRatio?, dgramNginxRatio?}],
 *   latency: [{sizeBytes, relayP50AddedUs, relayP99AddedUs, baselineP50AddedUs, baselineP99AddedUs, p99Ratio, nginxP50AddedUs?, nginxP99AddedUs?, nginxP99Ratio?,
 *              dgramP50AddedUs?, dgramP99AddedUs?, dgramNginxP99Ratio?}],
 *   tcp: [{conns, relayGbps, baselineGbps, ratio, relayCpuCores, baselineCpuCores, relayCpuUsPerMiB, baselineCpuUsPerMiB, senderCpuCores, sinkCpuCores,
 *          nginxGbps?, nginxRatio?, nginxCpuCores?, nginxCpuUsPerMiB?}],
 *   tunnel: {udp: [...same row shape...], latency: [...same row shape...]},
 *   nginx: {available: boolean, note?: string, config?: string},
 *   udpIo: {relay: 'batched'|'dgram', reason: string, dgramRows: boolean, note?: string},
 *   workers: {available: boolean, count?, udpIo?, reason?, note?: string, rows: [{mode, sizeBytes, flows, workers, workersUdpIo, workersPps, workersCpuCores,
 *             workersThreadCores: number[], workersCpuUsPerPacket, relayPps, relayCpuCores, ratio, dgramPps?, dgramCpuCores?, dgramRatio?, nginxPps?, nginxRatio?}]},
 *   tools: {udp: 'batched'|'dgram', udpReason: string, tcp: 'iperf3'|'node', tcpReason: string},
 *   webrtc?: {...see bench/relay-webrtc.ts...}, settings: {...}}`
 * `…CpuCores` is a process's CPU time (user + system, /proc) over the offered-load time
 * (1.0 = one core busy; the TCP rows' over the sink's transfer time; `…CpuUsPerMiB` the
 * forwarder's CPU per MiB carried, µs, which a busy machine disturbs less); `offeredPps` the
 * datagrams/s the generator sent, `generatorCpuCores` and `originCpuCores` the tools'
 * own, each the median over every measurement of the row (all forwarders); TCP
 * `senderCpuCores`/`sinkCpuCores` likewise (iperf3's own figures when it runs).
 * `relay…` is the relay as run (`relayUdpIo` says which I/O: `batched`, or `dgram` when
 * the addon cannot load or `dgram` was asked for — then `udpIo.note` says why and no
 * `dgram…` fields appear); `dgram…` the same relay on the `dgram` fallback, measured in
 * the same rounds (`dgramRatio` ÷ baseline, `dgramNginxRatio` ÷ nginx,
 * `relayOverDgramRatio` batched ÷ dgram). The workers rows (L4 and tunnel, 100 B × 64
 * flows, in the same rounds as that UDP row) give the `workers: N` relay's packets/s and
 * CPU time over the offered-load time (`…CpuCores`; above 1.0 more than one core was
 * busy; `workersThreadCores` its busiest N + 1 threads), beside workers: 1 (`relay…`,
 * `ratio` = workers ÷ it) and the dgram relay (`dgramRatio` = workers ÷ it).
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
 * the targets against the minimal forwarder checked row by row (packets/s ratio ≥ 0.9,
 * p99 ratio ≤ 1.5), then issue #17's with this run's figures (bench/relay-report.ts).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { flagCommand, type Command, type CommandIo } from '../kit/command.js';
import { bool, flagGiven, num, str, type FlagSpec } from '../kit/flags.js';
import { sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { BASELINE_SCRIPT } from './relay-baseline.js';
import { type LoadTicket } from './relay-load.js';
import { Child, cpuUs, measurePps, measureRttTogether, measureTcp, median, Origin, round, runQueueWaitUs, type BenchTools, type PpsResult, type TcpResult, type Target } from './relay-measure.js';
import { findIperf3, measureTcpIperf3, startIperf3Server } from './relay-iperf.js';
import { findNginx, startNginx, type NginxProxy } from './relay-nginx.js';
import { relayConfigText, startBenchRelay, UDP_IO_ENV, type BenchRelay, type BenchUdpIo } from './relay-procs.js';
import { printTables, type LatencyRow, type TcpRow, type UdpRow, type WorkersRow } from './relay-report.js';
import { webrtcRows } from './relay-webrtc.js';
import { freePort } from '../kit/free-port.js';
import { udpIoModeFromEnv } from '../kit/udp-batch.js';
import { CliUsageError } from '../proto/src/errors.js';

/** `--workers` when not given: 2 on a machine with at least 2 cores, else 0 (no workers row). */
const DEFAULT_WORKERS = availableParallelism() >= 2 ? 2 : 0;

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
  'skip-latency': { type: 'boolean', description: 'Skip the round-trip latency rows (on a crowded machine they can fail the run: a path that lost nearly every echo)' },
  'skip-nginx': { type: 'boolean', description: 'Do not measure nginx stream even when it is installed' },
  'skip-webrtc': { type: 'boolean', description: 'Skip the WebRTC (DataChannel) rows' },
  'udp-io': { type: 'string', valueName: 'MODE', choices: ['auto', 'batched', 'dgram'], description: 'udpIo of the measured relay and of the workers row\'s relay (auto: batched when the addon loads); SLIPSTREAM_UDP_IO in the environment overrides it', default: 'auto' },
  'tools-udp-io': { type: 'string', valueName: 'MODE', choices: ['auto', 'batched', 'dgram'], description: 'UDP I/O of the bench\'s own load generator and origin (auto: the udp-batch addon when it loads, else dgram); SLIPSTREAM_UDP_IO in the environment overrides it', default: 'auto' },
  'tcp-tools': { type: 'string', valueName: 'TOOLS', choices: ['auto', 'iperf3', 'node'], description: 'TCP sender and sink of the TCP rows: iperf3 (client and server, whole seconds per measurement) or the bench\'s Node child processes; auto: iperf3 when installed', default: 'auto' },
  'skip-dgram': { type: 'boolean', description: 'Do not measure the dgram relay beside the batched one' },
  workers: { type: 'integer', valueName: 'N', min: 0, max: 64, description: `Workers of the workers row (a relay with workers: N beside workers: 1, L4 and tunnel 100 B × 64 flows); 0 or 1: no workers row (default: 2 on a machine with ≥ 2 cores, else 0; here ${DEFAULT_WORKERS})` },
  'webrtc-sessions': { type: 'string', valueName: 'N,N,…', description: 'Capacity steps of the WebRTC rows: concurrent 60 messages/s sessions per step, at most 5 steps of at most 1000 (--quick: 10)', default: '50,100,200' },
};

const BASELINE = BASELINE_SCRIPT;
const SIZES = [100, 1200];
const FLOWS = [1, 64];
/** The UDP row the workers row rides on: 100 B × 64 flows (many flows, so the kernel spreads them over the workers). */
const WORKERS_SIZE_BYTES = 100;
const WORKERS_FLOWS = 64;
/** The direct reference path sends on every 10th tick (1,000 packets/s): enough samples, little extra load on the origin. */
const DIRECT_EVERY = 10;



interface Settings {
  durationMs: number;
  repeat: number;
  latencyPackets: number;
  tunnel: boolean;
  tcp: boolean;
  l4: boolean;
  throughput: boolean;
  /** Measure the latency rows (`--skip-latency`: not). */
  latency: boolean;
  nginx: boolean;
  /** The measured relay's `udpIo` (and the workers relay's). */
  udpIo: BenchUdpIo;
  /** UDP I/O of the load generator and the origin. */
  toolsUdpIo: BenchUdpIo;
  /** TCP sender and sink: iperf3 when installed (`auto`), or `node`. */
  tcpTools: 'auto' | 'iperf3' | 'node';
  /** Measure the dgram relay beside a batched one. */
  dgram: boolean;
  /** Workers of the workers row; ≤ 1: none. */
  workers: number;
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
  const children: Child[] = [];
  let nginxProxy: NginxProxy | undefined;
  const progress = (text: string): void => {
    if (!json) io.err(text);
  };
  try {
    // The origin first (the relays' configs name its ports); stopped last (children stop in reverse).
    const origin = await Origin.start(settings.toolsUdpIo, children);
    // TCP: iperf3 when installed (and the TCP rows run), else the Node sender and sink.
    const foundIperf = settings.tcp && settings.l4 && settings.tcpTools !== 'node' ? findIperf3() : ({ ok: false, reason: settings.tcpTools === 'node' ? '--tcp-tools node given' : 'no TCP rows' } as const);
    if (settings.tcpTools === 'iperf3' && !foundIperf.ok) throw new CliUsageError('--tcp-tools', `--tcp-tools iperf3: ${foundIperf.reason}`);
    const iperf = foundIperf.ok ? await startIperf3Server(foundIperf, children) : undefined;
    const tcpOriginPort = iperf ? iperf.port : origin.tcpPort;
    const tools: BenchTools = {
      udp: origin.ready.udp,
      udpReason: origin.ready.reason,
      tcp: iperf ? 'iperf3' : 'node',
      tcpReason: iperf ? iperf.version : foundIperf.ok ? '' : foundIperf.reason,
    };
    progress(`tools: load generator and origin on ${tools.udp} UDP (${tools.udpReason}); TCP sender and sink: ${tools.tcp} (${tools.tcpReason})\n`);
    const seed = randomBytes(32);
    const signingKey = ticketSigningKeyFromSeed(seed);
    const sealKey = randomBytes(32);
    const relayConfig = (udpIo: BenchUdpIo, workers: number, webrtcLines: string[]): string =>
      relayConfigText({ originUdpPort: origin.udpPort, originTcpPort: tcpOriginPort, ticketPublicKeyBase64: Buffer.from(rawPublicKey(signingKey)).toString('base64'), sealKeyBase64: sealKey.toString('base64'), udpIo, workers, webrtcLines });
    const webrtcLines = settings.webrtcSessions
      ? ['  webrtc:', '    listen: 127.0.0.1:0', `    udpMuxPort: ${await freePort('udp')}`, // Room for every step's peer connections at once: the relay reaps a closed one only when it sees it close.
          `    peerConnectionsMax: ${settings.webrtcSessions.reduce((a, b) => a + b, 0) + 200}`]
      : [];
    // The relay as configured (batched when the addon loads, with the default `auto`)…
    const main = await startBenchRelay('relay', dir, relayConfig(settings.udpIo, 1, webrtcLines), {}, children);
    const relay = main.target;
    const tunnelPort = main.tunnelPort;
    // …and, when that one runs batched, the same relay on the dgram fallback, in the same rounds.
    const dgramRelay = main.udpIo.mode === 'batched' && settings.dgram ? await startBenchRelay('dgram', dir, relayConfig('dgram', 1, []), { [UDP_IO_ENV]: 'dgram' }, children) : undefined;
    const udpIoInfo = {
      relay: main.udpIo.mode,
      reason: main.udpIo.reason,
      dgramRows: dgramRelay !== undefined,
      ...(dgramRelay ? {} : { note: main.udpIo.mode === 'batched' ? 'dgram rows absent: --skip-dgram given' : `dgram only: the relay runs dgram (${main.udpIo.reason}), so its rows are the dgram path's and no batched rows exist` }),
    };
    if (udpIoInfo.note) progress(`${udpIoInfo.note}\n`);
    // The workers row's relay: `workers: N`, the same `udpIo` (with several workers the relay may run dgram; it says which).
    // A relay that refuses to start with workers (a bind or config error) leaves the row out, saying why.
    let workersStartError: string | undefined;
    const workersRelay =
      settings.workers > 1 && settings.l4 && settings.throughput
        ? await startBenchRelay('workers', dir, relayConfig(settings.udpIo, settings.workers, []), {}, children).catch((err: unknown) => void (workersStartError = err instanceof Error ? err.message : String(err)))
        : undefined;
    if (workersStartError !== undefined) progress(`workers row absent: the relay with workers: ${settings.workers} did not start: ${workersStartError}\n`);
    const baselineChild = new Child(spawn(process.execPath, [BASELINE, '0', '0', String(origin.udpPort), String(tcpOriginPort)], { stdio: ['ignore', 'pipe', 'inherit'] }));
    children.push(baselineChild);
    const ready = (await baselineChild.waitFor((l) => l.startsWith('ready'), 10_000)).split(' ');
    const baseline: Target = { name: 'baseline', pid: baselineChild.process.pid!, udpPort: Number(ready[1]), tcpPort: Number(ready[2]) };
    const found = settings.nginx ? findNginx() : ({ ok: false, reason: '--skip-nginx given' } as const);
    if (found.ok) nginxProxy = await startNginx(found, dir, origin.udpPort, tcpOriginPort);
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

    const relayMetricsPort = main.metricsPort;
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
    const workersRows: WorkersRow[] = [];
    /** A relay's target in `mode`: its rule port (L4) or its tunnel port. */
    const relayIn = (mode: 'l4' | 'tunnel', r: BenchRelay): Target => (mode === 'l4' ? r.target : { ...r.target, udpPort: r.tunnelPort });
    const udpRows = async (mode: 'l4' | 'tunnel'): Promise<UdpRow[]> => {
      const rows: UdpRow[] = [];
      for (const sizeBytes of SIZES) {
        for (const flows of FLOWS) {
          const withWorkers = workersRelay !== undefined && sizeBytes === WORKERS_SIZE_BYTES && flows === WORKERS_FLOWS;
          // Every forwarder of the row, measured back to back in each round, the order rotating.
          const targets: { target: Target; tunnel: boolean }[] = [
            { target: relayIn(mode, main), tunnel: mode === 'tunnel' },
            ...(dgramRelay ? [{ target: relayIn(mode, dgramRelay), tunnel: mode === 'tunnel' }] : []),
            { target: baseline, tunnel: false },
            ...(nginx ? [{ target: nginx, tunnel: false }] : []),
            ...(withWorkers ? [{ target: relayIn(mode, workersRelay), tunnel: mode === 'tunnel' }] : []),
          ];
          const rounds: Partial<Record<Target['name'], PpsResult>>[] = [];
          for (let r = 0; r < settings.repeat; r++) {
            const job = { mode: 'blast' as const, udp: settings.toolsUdpIo, flows, sizeBytes, durationMs: settings.durationMs, rateHz: 0, count: 0 };
            const results = await rotated(r, targets.map(({ target, tunnel }) => () => measurePps(origin, target, { ...job, tunnel: tunnel ? tickets(flows) : undefined })));
            rounds.push(Object.fromEntries(targets.map(({ target }, i) => [target.name, results[i]!])));
          }
          /** The median over rounds of `f` applied to each round's results of `a` (and `b`). */
          const med = (a: Target['name'], f: (x: PpsResult) => number): number => median(rounds.map((x) => f(x[a]!)));
          const ratio = (a: Target['name'], b: Target['name']): number => round(median(rounds.map((x) => x[a]!.pps / x[b]!.pps)), 3);
          const roundRatios = (a: Target['name'], b: Target['name']): number[] => rounds.map((x) => round(x[a]!.pps / x[b]!.pps, 3));
          const tool = (f: (x: PpsResult) => number): number => median(rounds.flatMap((x) => Object.values(x).map(f)));
          const row = {
            sizeBytes,
            flows,
            relayUdpIo: main.udpIo.mode,
            relayPps: Math.round(med('relay', (x) => x.pps)),
            baselinePps: Math.round(med('baseline', (x) => x.pps)),
            ratio: ratio('relay', 'baseline'),
            relayCpuUsPerPacket: round(med('relay', (x) => x.cpuUsPerPacket), 2),
            baselineCpuUsPerPacket: round(med('baseline', (x) => x.cpuUsPerPacket), 2),
            relayCpuCores: round(med('relay', (x) => x.cpuCores), 2),
            baselineCpuCores: round(med('baseline', (x) => x.cpuCores), 2),
            roundRatios: roundRatios('relay', 'baseline'),
            // The tools, over every measurement of the row: what the generator offered and what it and the origin cost.
            offeredPps: Math.round(tool((x) => x.offeredPps)),
            generatorCpuCores: round(tool((x) => x.generatorCpuCores), 2),
            originCpuCores: round(tool((x) => x.originCpuCores), 2),
            ...(nginx
              ? {
                  nginxPps: Math.round(med('nginx', (x) => x.pps)),
                  nginxRatio: ratio('relay', 'nginx'),
                  nginxCpuUsPerPacket: round(med('nginx', (x) => x.cpuUsPerPacket), 2),
                  nginxCpuCores: round(med('nginx', (x) => x.cpuCores), 2),
                  roundNginxRatios: roundRatios('relay', 'nginx'),
                }
              : {}),
            ...(dgramRelay
              ? {
                  dgramPps: Math.round(med('dgram', (x) => x.pps)),
                  dgramRatio: ratio('dgram', 'baseline'),
                  dgramCpuUsPerPacket: round(med('dgram', (x) => x.cpuUsPerPacket), 2),
                  dgramCpuCores: round(med('dgram', (x) => x.cpuCores), 2),
                  relayOverDgramRatio: ratio('relay', 'dgram'),
                  ...(nginx ? { dgramNginxRatio: ratio('dgram', 'nginx') } : {}),
                }
              : {}),
          };
          progress(`${mode} udp ${sizeBytes} B × ${flows} flows: offered ${row.offeredPps} pps (generator ${row.generatorCpuCores} cores, origin ${row.originCpuCores}); relay (${main.udpIo.mode}) ${row.relayPps} pps ${row.relayCpuCores} cores ${row.relayCpuUsPerPacket} µs/pkt, baseline ${row.baselinePps} pps, ratio ${row.ratio} (rounds ${row.roundRatios.join(' ')})${row.nginxPps !== undefined ? `; nginx ${row.nginxPps} pps ${row.nginxCpuCores} cores ${row.nginxCpuUsPerPacket} µs/pkt, relay/nginx ${row.nginxRatio} (rounds ${row.roundNginxRatios!.join(' ')})` : ''}${row.dgramPps !== undefined ? `; dgram relay ${row.dgramPps} pps, ratio ${row.dgramRatio}${row.dgramNginxRatio !== undefined ? `, /nginx ${row.dgramNginxRatio}` : ''}` : ''}\n`);
          rows.push(row);
          if (withWorkers) {
            const cores = (name: Target['name']): number => round(med(name, (x) => x.cpuCores), 2);
            const threads = Array.from({ length: settings.workers + 1 }, (_, i) => round(median(rounds.map((x) => x.workers!.threadCores[i] ?? 0)), 2));
            const w: WorkersRow = {
              mode,
              sizeBytes,
              flows,
              workers: settings.workers,
              workersUdpIo: workersRelay.udpIo.mode,
              workersPps: Math.round(med('workers', (x) => x.pps)),
              workersCpuCores: cores('workers'),
              workersThreadCores: threads,
              workersCpuUsPerPacket: round(med('workers', (x) => x.cpuUsPerPacket), 2),
              relayPps: row.relayPps,
              relayCpuCores: cores('relay'),
              ratio: ratio('workers', 'relay'),
              ...(dgramRelay ? { dgramPps: row.dgramPps!, dgramCpuCores: cores('dgram'), dgramRatio: ratio('workers', 'dgram') } : {}),
              ...(nginx ? { nginxPps: row.nginxPps!, nginxRatio: ratio('workers', 'nginx') } : {}),
            };
            progress(`${mode} workers: ${w.workers} (${w.workersUdpIo}) ${sizeBytes} B × ${flows} flows: ${w.workersPps} pps, ${w.workersCpuCores} cores busy (threads ${w.workersThreadCores.join(' ')}); workers: 1 ${w.relayPps} pps, ${w.relayCpuCores} cores; ratio ${w.ratio}${w.dgramRatio !== undefined ? `, ÷ dgram ${w.dgramRatio}` : ''}\n`);
            workersRows.push(w);
          }
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
        const samples: { relay: Rtt; baseline: Rtt; nginx: Rtt | undefined; dgram: Rtt | undefined; relayLoopP99Us: number; relayLoopMaxUs: number; relaySessions: number; relayCpuUs: number; baselineCpuUs: number; relayWaitUs: number; baselineWaitUs: number }[] = [];
        for (let r = 0; r < settings.repeat; r++) {
          await relayLoopDelay();
          const cpuBefore = [cpuUs(relay.pid), cpuUs(baseline.pid)];
          const waitBefore = [runQueueWaitUs(relay.pid), runQueueWaitUs(baseline.pid)];
          const paths = [
            { port: origin.udpPort, sizeBytes: mode === 'tunnel' ? sizeBytes - 24 : sizeBytes, every: DIRECT_EVERY },
            { port: relayIn(mode, main).udpPort, sizeBytes, tunnel: mode === 'tunnel' ? tickets(1)[0] : undefined },
            { port: baseline.udpPort, sizeBytes },
            ...(nginx ? [{ port: nginx.udpPort, sizeBytes }] : []),
            ...(dgramRelay ? [{ port: relayIn(mode, dgramRelay).udpPort, sizeBytes, tunnel: mode === 'tunnel' ? tickets(1)[0] : undefined }] : []),
          ];
          // Rotate the order the paths are opened and listed in, round by round.
          const order = paths.map((_, i) => (i + r) % paths.length);
          const rtts = await measureRttTogether(origin, order.map((i) => paths[i]!), settings.latencyPackets).then((all) => paths.map((_, i) => all[order.indexOf(i)]!));
          const [direct, viaRelay, viaBaseline] = rtts;
          const viaNginx = nginx ? rtts[3] : undefined;
          const viaDgram = dgramRelay ? rtts[nginx ? 4 : 3] : undefined;
          const cpuAfter = [cpuUs(relay.pid), cpuUs(baseline.pid)];
          const waitAfter = [runQueueWaitUs(relay.pid), runQueueWaitUs(baseline.pid)];
          const relayLoop = await relayLoopDelay();
          samples.push({
            relay: { p50: viaRelay!.p50 - direct!.p50, p99: viaRelay!.p99 - direct!.p99, lossFraction: viaRelay!.lossFraction },
            baseline: { p50: viaBaseline!.p50 - direct!.p50, p99: viaBaseline!.p99 - direct!.p99, lossFraction: viaBaseline!.lossFraction },
            nginx: viaNginx ? { p50: viaNginx.p50 - direct!.p50, p99: viaNginx.p99 - direct!.p99, lossFraction: viaNginx.lossFraction } : undefined,
            dgram: viaDgram ? { p50: viaDgram.p50 - direct!.p50, p99: viaDgram.p99 - direct!.p99, lossFraction: viaDgram.lossFraction } : undefined,
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
          ...(dgramRelay
            ? {
                dgramP50AddedUs: round(median(samples.map((x) => x.dgram!.p50)), 1),
                dgramP99AddedUs: round(median(samples.map((x) => x.dgram!.p99)), 1),
                dgramEchoLossFraction: round(median(samples.map((x) => x.dgram!.lossFraction ?? 0)), 4),
                ...(nginx ? { dgramNginxP99Ratio: round(median(samples.map((x) => addedP99Ratio(x.dgram!.p99, x.nginx!.p99))), 3) } : {}),
              }
            : {}),
        };
        progress(`${mode} latency ${sizeBytes} B at 10k pps: relay +${row.relayP50AddedUs}/+${row.relayP99AddedUs} µs (p50/p99), baseline +${row.baselineP50AddedUs}/+${row.baselineP99AddedUs} µs; relay loop delay p99 ${row.relayEventLoopDelayP99Us} µs, max ${row.relayEventLoopDelayMaxUs} µs; echo loss relay ${row.relayEchoLossFraction} baseline ${row.baselineEchoLossFraction}; CPU/echo relay ${row.relayCpuUsPerEcho} µs baseline ${row.baselineCpuUsPerEcho} µs; run-queue wait relay ${row.relayRunQueueWaitMs} ms baseline ${row.baselineRunQueueWaitMs} ms; rounds ${row.roundP99AddedUs.map((x) => `${x.relay}/${x.baseline}`).join(' ')}; relay sessions ${row.relaySessionsAfter.join(' ')}${row.nginxP99AddedUs !== undefined ? `; nginx +${row.nginxP50AddedUs}/+${row.nginxP99AddedUs} µs, relay/nginx p99 ratio ${row.nginxP99Ratio}` : ''}${row.dgramP99AddedUs !== undefined ? `; dgram relay +${row.dgramP50AddedUs}/+${row.dgramP99AddedUs} µs` : ''}\n`);
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
    const latency = settings.l4 && settings.latency ? await latencyRows('l4') : [];
    const tcp: TcpRow[] = [];
    if (settings.tcp && settings.l4) {
      for (const conns of [1, 4]) {
        const rounds: { relay: TcpResult; baseline: TcpResult; nginx: TcpResult | undefined }[] = [];
        for (let r = 0; r < settings.repeat; r++) {
          const steps = [relay, baseline, ...(nginx ? [nginx] : [])].map((target) => () => (iperf ? measureTcpIperf3(iperf, target, conns, settings.durationMs) : measureTcp(origin, target, conns, settings.durationMs)));
          const [viaRelay, viaBaseline, viaNginx] = await rotated(r, steps);
          rounds.push({ relay: viaRelay!, baseline: viaBaseline!, nginx: viaNginx });
        }
        const med = (f: (x: (typeof rounds)[number]) => number, digits: number): number => round(median(rounds.map(f)), digits);
        const all = rounds.flatMap((x) => [x.relay, x.baseline, ...(x.nginx ? [x.nginx] : [])]);
        const row = {
          conns,
          relayGbps: med((x) => x.relay.gbps, 3),
          baselineGbps: med((x) => x.baseline.gbps, 3),
          ratio: med((x) => x.relay.gbps / x.baseline.gbps, 3),
          roundRatios: rounds.map((x) => round(x.relay.gbps / x.baseline.gbps, 3)),
          relayCpuCores: med((x) => x.relay.cpuCores, 2),
          baselineCpuCores: med((x) => x.baseline.cpuCores, 2),
          relayCpuUsPerMiB: med((x) => x.relay.cpuUsPerMiB, 1),
          baselineCpuUsPerMiB: med((x) => x.baseline.cpuUsPerMiB, 1),
          // The tools, over every measurement of the row.
          senderCpuCores: round(median(all.map((x) => x.senderCpuCores)), 2),
          sinkCpuCores: round(median(all.map((x) => x.sinkCpuCores)), 2),
          ...(nginx ? { nginxGbps: med((x) => x.nginx!.gbps, 3), nginxRatio: med((x) => x.relay.gbps / x.nginx!.gbps, 3), nginxCpuCores: med((x) => x.nginx!.cpuCores, 2), nginxCpuUsPerMiB: med((x) => x.nginx!.cpuUsPerMiB, 1) } : {}),
        };
        progress(`tcp ${conns} conns: relay ${row.relayGbps} Gbit/s (${row.relayCpuCores} cores, ${row.relayCpuUsPerMiB} µs/MiB), baseline ${row.baselineGbps} Gbit/s (${row.baselineCpuCores} cores, ${row.baselineCpuUsPerMiB} µs/MiB), sender ${row.senderCpuCores} / sink ${row.sinkCpuCores} cores, ratio ${row.ratio} (rounds ${row.roundRatios.join(' ')})${row.nginxGbps !== undefined ? `; nginx ${row.nginxGbps} Gbit/s, relay/nginx ${row.nginxRatio}` : ''}\n`);
        tcp.push(row);
      }
    }
    const tunnel = settings.tunnel ? { udp: settings.throughput ? await udpRows('tunnel') : [], latency: settings.latency ? await latencyRows('tunnel') : [] } : undefined;
    const webrtc = settings.webrtcSessions
      ? await webrtcRows({ origin, relay, tunnelPort, signalingUrl: `http://127.0.0.1:${main.webrtcPort!}/webrtc`, tickets, repeat: settings.repeat, durationMs: settings.durationMs, capacitySessions: settings.webrtcSessions, throughput: settings.throughput, progress })
      : undefined;
    const workers = workersRelay
      ? { available: true, count: settings.workers, udpIo: workersRelay.udpIo.mode, reason: workersRelay.udpIo.reason, rows: workersRows }
      : { available: false, note: `workers row absent: ${workersStartError !== undefined ? `the relay with workers: ${settings.workers} did not start: ${workersStartError}` : settings.workers <= 1 ? `--workers ${settings.workers}` : '--skip-l4 or --skip-throughput given'}`, rows: [] };
    return { udp, latency, tcp, ...(tunnel ? { tunnel } : {}), ...(webrtc ? { webrtc } : {}), nginx: nginxInfo, udpIo: udpIoInfo, workers, tools, settings };
  } finally {
    for (const child of children.reverse()) await child.stop();
    await nginxProxy?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
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
  summary: 'Relay (batched and dgram UDP I/O, workers) vs a minimal Node forwarder and nginx on loopback: UDP pps, added latency, TCP throughput, L4 and tunnel mode.',
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
      latency: !bool(values, 'skip-latency'),
      nginx: !bool(values, 'skip-nginx'),
      udpIo: str(values, 'udp-io') as BenchUdpIo,
      toolsUdpIo: udpIoModeFromEnv() ?? (str(values, 'tools-udp-io') as BenchUdpIo),
      tcpTools: str(values, 'tcp-tools') as Settings['tcpTools'],
      dgram: !bool(values, 'skip-dgram'),
      workers: flagGiven(argv, 'workers') ? num(values, 'workers')! : DEFAULT_WORKERS,
      webrtcSessions: bool(values, 'skip-webrtc') ? undefined : quick && !flagGiven(argv, 'webrtc-sessions') ? [10] : parseSessionSteps(str(values, 'webrtc-sessions')!),
    };
    const result = await runBench(settings, io, bool(values, 'json'));
    if (bool(values, 'json')) io.out(`${JSON.stringify(result)}\n`);
    else printTables(result, io);
    return 0;
  },
});
