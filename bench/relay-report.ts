/**
 * `slipstream bench relay`'s rows (the `--json` contract in bench/relay.ts) and its text
 * output: the tables, the targets against the minimal forwarder, and a summary against
 * issue #17's targets with this run's figures.
 */
import { type CommandIo } from '../kit/command.js';
import { CAPACITY_CONNECTED_MIN, CAPACITY_LOSS_MAX, type WebRtcRows } from './relay-webrtc.js';

/** One UDP throughput row. */
export interface UdpRow {
  sizeBytes: number;
  flows: number;
  /** The UDP I/O the relay of `relayPps` ran: `batched` (the addon) or `dgram` (it could not load, or it was asked for). */
  relayUdpIo: 'batched' | 'dgram';
  relayPps: number;
  baselinePps: number;
  ratio: number;
  relayCpuUsPerPacket: number;
  baselineCpuUsPerPacket: number;
  /** CPU time over the offered-load time (1.0 = one core busy): the relay, the baseline, nginx's worker, the dgram relay. */
  relayCpuCores: number;
  baselineCpuCores: number;
  nginxCpuCores?: number;
  dgramCpuCores?: number;
  /** The tools, median over the row's measurements: datagrams/s the generator offered, its CPU and the origin's (cores). */
  offeredPps: number;
  generatorCpuCores: number;
  originCpuCores: number;
  /** With nginx installed: its delivered packets/s, the relay's over it (median of per-round ratios), its worker's CPU per packet, µs. */
  nginxPps?: number;
  nginxRatio?: number;
  nginxCpuUsPerPacket?: number;
  /** When the relay ran batched: the same relay on `dgram` in the same rounds — packets/s, ÷ baseline, CPU µs/packet, batched ÷ dgram, ÷ nginx. */
  dgramPps?: number;
  dgramRatio?: number;
  dgramCpuUsPerPacket?: number;
  relayOverDgramRatio?: number;
  dgramNginxRatio?: number;
}
/** One latency row. */
export interface LatencyRow {
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
  /** When the relay ran batched: the dgram relay's added p50/p99 in the same window, µs, and its +p99 over nginx's. */
  dgramP50AddedUs?: number;
  dgramP99AddedUs?: number;
  dgramNginxP99Ratio?: number;
}
/** One TCP row. */
export interface TcpRow {
  conns: number;
  relayGbps: number;
  baselineGbps: number;
  ratio: number;
  /** CPU time over the transfer time (cores): the forwarders, and the TCP sender and sink (iperf3's own figures when it runs). */
  relayCpuCores: number;
  baselineCpuCores: number;
  nginxCpuCores?: number;
  /** The forwarders' CPU per MiB carried, µs. */
  relayCpuUsPerMiB: number;
  baselineCpuUsPerMiB: number;
  nginxCpuUsPerMiB?: number;
  senderCpuCores: number;
  sinkCpuCores: number;
  nginxGbps?: number;
  nginxRatio?: number;
}
/**
 * The workers row: the relay with `workers: N` beside the relay with one (and the dgram
 * relay, and nginx), 100 B × 64 flows, in the same rounds as that UDP row. `…CpuCores`
 * is the process's CPU time (every thread) over the offered-load time: above 1.0, more
 * than one core was busy; `workersThreadCores` the busiest threads' (N + 1 of them).
 */
export interface WorkersRow {
  mode: 'l4' | 'tunnel';
  sizeBytes: number;
  flows: number;
  workers: number;
  workersUdpIo: 'batched' | 'dgram';
  workersPps: number;
  workersCpuCores: number;
  workersThreadCores: number[];
  workersCpuUsPerPacket: number;
  relayPps: number;
  relayCpuCores: number;
  /** Workers ÷ one worker, packets/s (median of per-round ratios); `dgramRatio`, `nginxRatio` likewise. */
  ratio: number;
  dgramPps?: number;
  dgramCpuCores?: number;
  dgramRatio?: number;
  nginxPps?: number;
  nginxRatio?: number;
}
/** The targets the tables are checked against: relay packets/s at least this × the baseline's… */
const PPS_RATIO_MIN = 0.9;
/** …and relay added p99 latency at most this × the baseline's. */
const P99_RATIO_MAX = 1.5;
/** Issue #17's targets against nginx stream with one worker: relay packets/s at least this × nginx's… */
const NGINX_PPS_RATIO_MIN = 1.3;
/** …relay added p99 at most nginx's… */
const NGINX_P99_RATIO_MAX = 1.0;
/** …TCP at least the minimal `pipe()` relay's Gbit/s… */
const TCP_RATIO_MIN = 1.0;
/** …and with several workers, more than one core busy. */
const WORKERS_CORES_MIN = 1.0;

const fixed = (x: number | null | undefined, digits = 3): string => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(digits));
const kpps = (pps: number | undefined): string => (pps === undefined ? 'n/a' : `${(pps / 1000).toFixed(0)}k`);

/** The text tables of one run's result, then the targets checked. */
export function printTables(result: Record<string, unknown>, io: CommandIo): void {
  const udp = result.udp as UdpRow[];
  const latency = result.latency as LatencyRow[];
  const tcp = result.tcp as TcpRow[];
  const tunnel = result.tunnel as { udp: UdpRow[]; latency: LatencyRow[] } | undefined;
  const udpTable = (title: string, rows: UdpRow[]): void => {
    if (rows.length === 0) return; // skipped (--skip-throughput, --skip-l4)
    const withNginx = rows[0]!.nginxPps !== undefined;
    const withDgram = rows[0]!.dgramPps !== undefined;
    io.out(`\n${title}; relay runs ${rows[0]!.relayUdpIo}\n  size B  flows   relay pps  baseline pps  ratio  relay µs/pkt  baseline µs/pkt${withNginx ? '   nginx pps  vs nginx  nginx µs/pkt' : ''}${withDgram ? '   dgram pps  dgram ratio  dgram vs nginx  dgram µs/pkt' : ''}\n`);
    for (const r of rows) {
      const nginxCells = withNginx ? `  ${String(r.nginxPps).padStart(10)}  ${r.nginxRatio!.toFixed(3).padStart(8)}  ${String(r.nginxCpuUsPerPacket).padStart(12)}` : '';
      const dgramCells = withDgram ? `  ${String(r.dgramPps).padStart(10)}  ${fixed(r.dgramRatio).padStart(11)}  ${fixed(r.dgramNginxRatio).padStart(14)}  ${String(r.dgramCpuUsPerPacket).padStart(12)}` : '';
      io.out(`  ${String(r.sizeBytes).padStart(6)}  ${String(r.flows).padStart(5)}  ${String(r.relayPps).padStart(10)}  ${String(r.baselinePps).padStart(12)}  ${r.ratio.toFixed(3).padStart(5)}  ${String(r.relayCpuUsPerPacket).padStart(12)}  ${String(r.baselineCpuUsPerPacket).padStart(15)}${nginxCells}${dgramCells}\n`);
    }
    // Who was busy: when the generator offered far more than a forwarder delivered, the forwarder was the bottleneck.
    io.out(`  CPU cores busy (process CPU time ÷ load time)\n  size B  flows  offered pps  generator  origin  relay  baseline${withNginx ? '  nginx' : ''}${withDgram ? '  dgram' : ''}\n`);
    for (const r of rows) {
      io.out(`  ${String(r.sizeBytes).padStart(6)}  ${String(r.flows).padStart(5)}  ${String(r.offeredPps).padStart(11)}  ${fixed(r.generatorCpuCores, 2).padStart(9)}  ${fixed(r.originCpuCores, 2).padStart(6)}  ${fixed(r.relayCpuCores, 2).padStart(5)}  ${fixed(r.baselineCpuCores, 2).padStart(8)}${withNginx ? `  ${fixed(r.nginxCpuCores, 2).padStart(5)}` : ''}${withDgram ? `  ${fixed(r.dgramCpuCores, 2).padStart(5)}` : ''}\n`);
    }
  };
  const tools = result.tools as { udp: string; udpReason: string; tcp: string; tcpReason: string } | undefined;
  if (tools) io.out(`Tools: load generator and origin on ${tools.udp} UDP (${tools.udpReason}); TCP sender and sink ${tools.tcp} (${tools.tcpReason})\n`);
  const latencyTable = (title: string, rows: LatencyRow[]): void => {
    if (rows.length === 0) return;
    const withNginx = rows[0]!.nginxP99AddedUs !== undefined;
    const withDgram = rows[0]!.dgramP99AddedUs !== undefined;
    io.out(`\n${title}\n  size B  relay +p50 µs  relay +p99 µs  baseline +p50 µs  baseline +p99 µs  p99 ratio${withNginx ? '  nginx +p50 µs  nginx +p99 µs  p99 vs nginx' : ''}${withDgram ? '  dgram +p50 µs  dgram +p99 µs' : ''}\n`);
    for (const r of rows) {
      const nginxCells = withNginx ? `  ${String(r.nginxP50AddedUs).padStart(13)}  ${String(r.nginxP99AddedUs).padStart(13)}  ${fixed(r.nginxP99Ratio).padStart(12)}` : '';
      const dgramCells = withDgram ? `  ${String(r.dgramP50AddedUs).padStart(13)}  ${String(r.dgramP99AddedUs).padStart(13)}` : '';
      io.out(`  ${String(r.sizeBytes).padStart(6)}  ${String(r.relayP50AddedUs).padStart(13)}  ${String(r.relayP99AddedUs).padStart(13)}  ${String(r.baselineP50AddedUs).padStart(16)}  ${String(r.baselineP99AddedUs).padStart(16)}  ${fixed(r.p99Ratio).padStart(9)}${nginxCells}${dgramCells}\n`);
    }
  };
  udpTable('L4 UDP forwarding (max delivered packets/s; relay CPU per packet)', udp);
  latencyTable('L4 UDP round-trip latency added at 10,000 packets/s', latency);
  if (tcp.length > 0) {
    const withNginx = tcp[0]!.nginxGbps !== undefined;
    io.out(`\nL4 TCP bulk throughput (cores: CPU time ÷ transfer time)\n  conns  relay Gbit/s  baseline Gbit/s  ratio${withNginx ? '  nginx Gbit/s  vs nginx' : ''}  relay cores  baseline cores${withNginx ? '  nginx cores' : ''}  sender  sink  relay µs/MiB  baseline µs/MiB${withNginx ? '  nginx µs/MiB' : ''}\n`);
    for (const r of tcp) io.out(`  ${String(r.conns).padStart(5)}  ${String(r.relayGbps).padStart(12)}  ${String(r.baselineGbps).padStart(15)}  ${r.ratio.toFixed(3).padStart(5)}${withNginx ? `  ${String(r.nginxGbps).padStart(12)}  ${r.nginxRatio!.toFixed(3).padStart(8)}` : ''}  ${fixed(r.relayCpuCores, 2).padStart(11)}  ${fixed(r.baselineCpuCores, 2).padStart(14)}${withNginx ? `  ${fixed(r.nginxCpuCores, 2).padStart(11)}` : ''}  ${fixed(r.senderCpuCores, 2).padStart(6)}  ${fixed(r.sinkCpuCores, 2).padStart(4)}  ${fixed(r.relayCpuUsPerMiB, 1).padStart(12)}  ${fixed(r.baselineCpuUsPerMiB, 1).padStart(15)}${withNginx ? `  ${fixed(r.nginxCpuUsPerMiB, 1).padStart(12)}` : ''}\n`);
  }
  if (tunnel) {
    udpTable('Tunnel mode UDP forwarding (tickets; FEC off)', tunnel.udp);
    latencyTable('Tunnel mode round-trip latency added at 10,000 packets/s', tunnel.latency);
  }
  const workers = result.workers as { available: boolean; count?: number; udpIo?: string; reason?: string; note?: string; rows: WorkersRow[] } | undefined;
  if (workers && workers.rows.length > 0) {
    io.out(`\nRelay workers: ${workers.count} (${workers.udpIo}: ${workers.reason}) beside workers: 1, same rounds (cores = process CPU time ÷ load time)\n  mode    size B  flows  workers pps  cores  busiest threads   1-worker pps  cores  ratio${workers.rows[0]!.dgramPps !== undefined ? '  dgram pps  cores  vs dgram' : ''}${workers.rows[0]!.nginxPps !== undefined ? '  vs nginx' : ''}\n`);
    for (const w of workers.rows) {
      const dgramCells = w.dgramPps !== undefined ? `  ${String(w.dgramPps).padStart(9)}  ${fixed(w.dgramCpuCores, 2).padStart(5)}  ${fixed(w.dgramRatio).padStart(8)}` : '';
      io.out(`  ${w.mode.padEnd(6)}  ${String(w.sizeBytes).padStart(6)}  ${String(w.flows).padStart(5)}  ${String(w.workersPps).padStart(11)}  ${w.workersCpuCores.toFixed(2).padStart(5)}  ${w.workersThreadCores.map((c) => c.toFixed(2)).join(' ').padEnd(15)}  ${String(w.relayPps).padStart(12)}  ${w.relayCpuCores.toFixed(2).padStart(5)}  ${w.ratio.toFixed(3).padStart(5)}${dgramCells}${w.nginxRatio !== undefined ? `  ${w.nginxRatio.toFixed(3).padStart(8)}` : ''}\n`);
    }
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
  // The targets against the minimal forwarder, row by row, so a reader need not compare columns by eye.
  const checks: string[] = [];
  const pps = (mode: string, rows: UdpRow[]): void => {
    for (const r of rows) checks.push(`${r.ratio >= PPS_RATIO_MIN ? 'ok   ' : 'BELOW'} ${mode} ${r.sizeBytes} B × ${r.flows} flows: packets/s ratio ${r.ratio.toFixed(3)} (target ≥ ${PPS_RATIO_MIN})`);
  };
  const p99 = (mode: string, rows: LatencyRow[]): void => {
    for (const r of rows) {
      if (Number.isNaN(r.p99Ratio) || r.p99Ratio === null) checks.push(`n/a   ${mode} ${r.sizeBytes} B: no p99 ratio (the baseline added no measurable p99 in any round)`);
      else checks.push(`${r.p99Ratio <= P99_RATIO_MAX ? 'ok   ' : 'ABOVE'} ${mode} ${r.sizeBytes} B: p99 added latency ratio ${r.p99Ratio.toFixed(3)} (target ≤ ${P99_RATIO_MAX})`);
    }
  };
  pps('L4', udp);
  p99('L4', latency);
  if (tunnel) {
    pps('tunnel', tunnel.udp);
    p99('tunnel', tunnel.latency);
  }
  if (checks.length > 0) io.out(`\nTargets (relay vs the minimal forwarder, this run)\n${checks.map((c) => `  ${c}\n`).join('')}`);
  const summary = issue17Summary(udp, latency, tcp, tunnel, workers?.rows ?? []);
  if (summary.length > 0) io.out(`\nIssue #17 targets, this run's figures (vs nginx stream with one worker; TCP vs the minimal pipe() relay; ratios are medians of per-round ratios, figures medians of rounds)\n${summary.map((c) => `  ${c}\n`).join('')}`);
  const nginx = result.nginx as { available: boolean; note?: string } | undefined;
  if (nginx && !nginx.available) io.out(`\n${nginx.note}\n`);
  const udpIo = result.udpIo as { note?: string } | undefined;
  if (udpIo?.note) io.out(`\n${udpIo.note}\n`);
  if (workers && !workers.available && workers.note) io.out(`\n${workers.note}\n`);
}

/**
 * Issue #17's "How we will know", one line per check with the figures measured: UDP
 * packets/s ≥ 1.3× nginx's (the relay as run, with the dgram relay's ratio beside it),
 * added p99 ≤ nginx's, TCP ≥ 1.0× the minimal `pipe()` relay, and with several workers
 * more than one core busy. `ok`, `BELOW`/`ABOVE`, or `n/a` when nginx did not run.
 */
export function issue17Summary(udp: UdpRow[], latency: LatencyRow[], tcp: TcpRow[], tunnel: { udp: UdpRow[]; latency: LatencyRow[] } | undefined, workers: WorkersRow[]): string[] {
  const lines: string[] = [];
  const pps = (mode: string, rows: UdpRow[]): void => {
    for (const r of rows) {
      const what = `${mode} ${r.sizeBytes} B × ${r.flows} flows`;
      if (r.nginxRatio === undefined) {
        lines.push(`n/a   ${what}: relay (${r.relayUdpIo}) ${kpps(r.relayPps)} packets/s; no nginx in this run (target ≥ ${NGINX_PPS_RATIO_MIN}× nginx)`);
        continue;
      }
      const dgram = r.dgramNginxRatio !== undefined ? `; dgram ${kpps(r.dgramPps)} = ${r.dgramNginxRatio.toFixed(2)}×` : '';
      lines.push(`${r.nginxRatio >= NGINX_PPS_RATIO_MIN ? 'ok   ' : 'BELOW'} ${what}: relay (${r.relayUdpIo}) ${kpps(r.relayPps)} packets/s vs nginx ${kpps(r.nginxPps)} = ${r.nginxRatio.toFixed(2)}× (target ≥ ${NGINX_PPS_RATIO_MIN}×)${dgram}; CPU µs/packet relay ${fixed(r.relayCpuUsPerPacket, 2)}, nginx ${fixed(r.nginxCpuUsPerPacket, 2)}${r.dgramCpuUsPerPacket !== undefined ? `, dgram ${fixed(r.dgramCpuUsPerPacket, 2)}` : ''}`);
    }
  };
  const p99 = (mode: string, rows: LatencyRow[]): void => {
    for (const r of rows) {
      const what = `${mode} ${r.sizeBytes} B`;
      if (r.nginxP99Ratio === undefined) lines.push(`n/a   ${what}: relay added p99 ${r.relayP99AddedUs} µs; no nginx in this run (target ≤ nginx's)`);
      else if (r.nginxP99Ratio === null || Number.isNaN(r.nginxP99Ratio)) lines.push(`n/a   ${what}: relay added p99 ${r.relayP99AddedUs} µs; nginx added no measurable p99 in any round`);
      else lines.push(`${r.nginxP99Ratio <= NGINX_P99_RATIO_MAX ? 'ok   ' : 'ABOVE'} ${what}: added p99 relay ${r.relayP99AddedUs} µs vs nginx ${r.nginxP99AddedUs} µs = ${r.nginxP99Ratio.toFixed(2)}× (target ≤ ${NGINX_P99_RATIO_MAX}×)${r.dgramP99AddedUs !== undefined ? `; dgram ${r.dgramP99AddedUs} µs` : ''}`);
    }
  };
  pps('L4', udp);
  p99('L4', latency);
  for (const r of tcp) lines.push(`${r.ratio >= TCP_RATIO_MIN ? 'ok   ' : 'BELOW'} TCP ${r.conns} conn${r.conns === 1 ? '' : 's'}: relay ${r.relayGbps} Gbit/s vs pipe() ${r.baselineGbps} Gbit/s = ${r.ratio.toFixed(2)}× (target ≥ ${TCP_RATIO_MIN}×)`);
  if (tunnel) {
    pps('tunnel', tunnel.udp);
    p99('tunnel', tunnel.latency);
  }
  for (const w of workers) lines.push(`${w.workersCpuCores > WORKERS_CORES_MIN ? 'ok   ' : 'BELOW'} workers: ${w.workers} (${w.workersUdpIo}) ${w.mode} ${w.sizeBytes} B × ${w.flows} flows: ${w.workersCpuCores.toFixed(2)} cores busy (target > ${WORKERS_CORES_MIN}), ${kpps(w.workersPps)} packets/s = ${w.ratio.toFixed(2)}× workers: 1${w.nginxRatio !== undefined ? `, ${w.nginxRatio.toFixed(2)}× nginx` : ''}`);
  return lines;
}
