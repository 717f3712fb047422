/**
 * The WebRTC rows of `slipstream bench relay` (issue #15): the relay's browser entry
 * (`tunnel.webrtc`) driven by node-datachannel sessions (relay-webrtc-load.ts, its own
 * process), beside the UDP tunnel in the same rounds.
 *
 * - `throughput`: DataChannel messages/s the relay forwards to the origin at a
 *   saturating offered load, and the relay's CPU per message, each round measured
 *   back to back with the UDP tunnel at the same frame size and session count (order
 *   alternating); `ratio` = WebRTC messages/s over UDP tunnel packets/s, median of the
 *   per-round ratios.
 * - `capacity`: sessions each sending 60 messages/s (a browser game's tick; 100-byte
 *   frames, echoed by the origin), in steps; per step the relay's CPU as a fraction of
 *   one core, echo loss and round trips. `sessionsPerCore` extrapolates linearly from the
 *   largest step with echo loss under {@link CAPACITY_LOSS_MAX} and at least
 *   {@link CAPACITY_CONNECTED_MIN} of its sessions connected (connected sessions ÷ the
 *   core fraction they took): on a shared 2-core machine the load generator cannot drive one
 *   relay core to saturation, so the figure is per core, not a measured maximum.
 *   `heldSessions` is the sessions connected in that step (measured, not extrapolated).
 */
import { spawn } from 'node:child_process';
import { Child, cpuUs, measurePps, median, round, type Origin, type Target } from './relay-measure.js';
import type { LoadTicket } from './relay-load.js';
import { WEBRTC_LOAD_SCRIPT, type WebRtcLoadJob, type WebRtcLoadResult } from './relay-webrtc-load.js';

/** Messages per second a capacity session sends: a browser game's tick. */
export const CAPACITY_RATE_HZ = 60;
/** Frame size of the capacity sessions, bytes (24-byte header inside). */
const CAPACITY_SIZE_BYTES = 100;
/** Echo loss under which a capacity step counts as held. */
export const CAPACITY_LOSS_MAX = 0.01;
/** Fraction of a step's sessions that must connect for it to count (on a loaded machine an odd peer connection times out; the figures use the sessions that connected). */
export const CAPACITY_CONNECTED_MIN = 0.95;
/** Pause between capacity steps, ms. */
const STEP_PAUSE_MS = 2000;
/** Frame sizes of the throughput rows, bytes. */
const SIZES = [100, 1200];
/** Sessions of the throughput rows. */
const SESSIONS = [1, 16];
/** Connect phase budget per child: signaling, ICE, DTLS and SCTP for every session, ms (plus per session). */
const CONNECT_BUDGET_MS = 15_000;
const CONNECT_BUDGET_PER_SESSION_MS = 100;

/** One throughput row. */
export interface WebRtcThroughputRow {
  sizeBytes: number;
  sessions: number;
  webrtcMps: number;
  tunnelPps: number;
  ratio: number;
  webrtcCpuUsPerMessage: number;
  tunnelCpuUsPerPacket: number;
  roundRatios: number[];
}

/** One capacity step. */
export interface WebRtcCapacityStep {
  sessions: number;
  connected: number;
  relayCpuFraction: number;
  relayCpuUsPerMessage: number;
  echoLossFraction: number;
  rttP50Ms: number;
  rttP99Ms: number;
  connectMs: number;
  /** Why sessions did not connect (the first failure), when some did not. */
  firstFailure?: string;
}

/** The `webrtc` section of the bench's JSON. */
export interface WebRtcRows {
  throughput: WebRtcThroughputRow[];
  capacity: { rateHz: number; sizeBytes: number; steps: WebRtcCapacityStep[]; sessionsPerCore: number | null; heldSessions: number | null };
}

/** What the rows need from the bench. */
export interface WebRtcContext {
  readonly origin: Origin;
  /** The relay (its PID is the CPU counted) and its tunnel port. */
  readonly relay: Target;
  readonly tunnelPort: number;
  readonly signalingUrl: string;
  readonly tickets: (n: number) => LoadTicket[];
  readonly repeat: number;
  readonly durationMs: number;
  /** Capacity steps: sessions per step, in order. */
  readonly capacitySessions: readonly number[];
  /** False (`--skip-throughput`): capacity steps only. */
  readonly throughput: boolean;
  readonly progress: (text: string) => void;
}

/** Runs the generator child; `onWindow` at the start of its measured window. */
async function runWebRtcLoad(job: WebRtcLoadJob, onWindow: () => void): Promise<WebRtcLoadResult> {
  // The job goes on stdin: hundreds of tickets do not fit in one argument (E2BIG).
  const child = new Child(spawn(process.execPath, [WEBRTC_LOAD_SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] }));
  child.process.stdin!.end(JSON.stringify(job));
  try {
    const limitMs = job.connectBudgetMs + job.durationMs + 30_000;
    const first = await child.waitFor((l) => l.startsWith('{'), limitMs);
    if (first.includes('"phase"')) onWindow();
    const line = first.includes('"phase"') ? await child.waitFor((l) => l.startsWith('{') && !l.includes('"phase"'), limitMs) : first;
    const result = JSON.parse(line) as WebRtcLoadResult;
    if (result.error) throw new Error(`webrtc load generator: ${result.error}`);
    return result;
  } finally {
    await child.stop();
  }
}

function connectBudgetMs(sessions: number): number {
  return CONNECT_BUDGET_MS + sessions * CONNECT_BUDGET_PER_SESSION_MS;
}

/** DataChannel messages/s delivered to the origin and relay CPU per message, one blast. */
async function measureWebRtcMps(ctx: WebRtcContext, sizeBytes: number, sessions: number): Promise<{ mps: number; cpuUsPerMessage: number }> {
  await ctx.origin.setEcho(false);
  let before: Promise<number> = Promise.resolve(0);
  let cpuBefore = 0;
  await runWebRtcLoad({ mode: 'blast', signalingUrl: ctx.signalingUrl, sessions: ctx.tickets(sessions), sizeBytes, durationMs: ctx.durationMs, rateHz: 0, connectBudgetMs: connectBudgetMs(sessions) }, () => {
    // The origin is a child process: its count is asked for at once (a pipe round trip, well under a ms).
    before = ctx.origin.counts().then((c) => c.received);
    cpuBefore = cpuUs(ctx.relay.pid);
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const delivered = (await ctx.origin.counts()).received - (await before);
  const cpu = cpuUs(ctx.relay.pid) - cpuBefore;
  return { mps: delivered / (ctx.durationMs / 1000), cpuUsPerMessage: delivered > 0 ? cpu / delivered : Number.NaN };
}

/** One capacity step: `sessions` at 60 messages/s, echoed. */
async function capacityStep(ctx: WebRtcContext, sessions: number): Promise<WebRtcCapacityStep> {
  await ctx.origin.setEcho(true);
  let cpuBefore = 0;
  let startMs = 0;
  try {
    const result = await runWebRtcLoad(
      { mode: 'steady', signalingUrl: ctx.signalingUrl, sessions: ctx.tickets(sessions), sizeBytes: CAPACITY_SIZE_BYTES, durationMs: ctx.durationMs, rateHz: CAPACITY_RATE_HZ, connectBudgetMs: connectBudgetMs(sessions) },
      () => {
        cpuBefore = cpuUs(ctx.relay.pid);
        startMs = performance.now();
      },
    );
    // The window's CPU: the generator's own linger (echoes still arriving) is inside it, as is the relay's work for them.
    const cpu = cpuUs(ctx.relay.pid) - cpuBefore;
    const wallUs = (performance.now() - startMs) * 1000;
    return {
      sessions,
      connected: result.connected,
      relayCpuFraction: round(cpu / wallUs, 3),
      // Both directions: each message is forwarded to the origin and its echo back.
      relayCpuUsPerMessage: round(cpu / Math.max(1, result.sent + result.received), 2),
      echoLossFraction: round(1 - result.received / Math.max(1, result.sent), 4),
      rttP50Ms: result.rttMs?.p50 ?? Number.NaN,
      rttP99Ms: result.rttMs?.p99 ?? Number.NaN,
      connectMs: result.connectMs,
      ...(result.firstFailure !== undefined ? { firstFailure: result.firstFailure } : {}),
    };
  } finally {
    await ctx.origin.setEcho(false);
  }
}

/** Measures the WebRTC rows (see the module comment). */
export async function webrtcRows(ctx: WebRtcContext): Promise<WebRtcRows> {
  const throughput: WebRtcThroughputRow[] = [];
  for (const sizeBytes of ctx.throughput ? SIZES : []) {
    for (const sessions of SESSIONS) {
      const rounds: { webrtc: { mps: number; cpuUsPerMessage: number }; tunnel: { pps: number; cpuUsPerPacket: number } }[] = [];
      for (let r = 0; r < ctx.repeat; r++) {
        const runTunnel = (): Promise<{ pps: number; cpuUsPerPacket: number }> => measurePps(ctx.origin, { ...ctx.relay, udpPort: ctx.tunnelPort }, { mode: 'blast', flows: sessions, sizeBytes, durationMs: ctx.durationMs, rateHz: 0, count: 0, tunnel: ctx.tickets(sessions) });
        if (r % 2 === 0) {
          const webrtc = await measureWebRtcMps(ctx, sizeBytes, sessions);
          rounds.push({ webrtc, tunnel: await runTunnel() });
        } else {
          const tunnel = await runTunnel();
          rounds.push({ webrtc: await measureWebRtcMps(ctx, sizeBytes, sessions), tunnel });
        }
      }
      const row: WebRtcThroughputRow = {
        sizeBytes,
        sessions,
        webrtcMps: Math.round(median(rounds.map((x) => x.webrtc.mps))),
        tunnelPps: Math.round(median(rounds.map((x) => x.tunnel.pps))),
        ratio: round(median(rounds.map((x) => x.webrtc.mps / x.tunnel.pps)), 3),
        webrtcCpuUsPerMessage: round(median(rounds.map((x) => x.webrtc.cpuUsPerMessage)), 2),
        tunnelCpuUsPerPacket: round(median(rounds.map((x) => x.tunnel.cpuUsPerPacket)), 2),
        roundRatios: rounds.map((x) => round(x.webrtc.mps / x.tunnel.pps, 3)),
      };
      ctx.progress(`webrtc ${sizeBytes} B × ${sessions} sessions: ${row.webrtcMps} messages/s (${row.webrtcCpuUsPerMessage} µs relay CPU each), UDP tunnel ${row.tunnelPps} packets/s (${row.tunnelCpuUsPerPacket} µs), ratio ${row.ratio} (rounds ${row.roundRatios.join(' ')})\n`);
      throughput.push(row);
    }
  }
  const steps: WebRtcCapacityStep[] = [];
  for (const sessions of ctx.capacitySessions) {
    // Let the relay see the previous step's peer connections close before the next connects.
    await new Promise((resolve) => setTimeout(resolve, STEP_PAUSE_MS));
    const step = await capacityStep(ctx, sessions);
    ctx.progress(`webrtc capacity ${sessions} sessions × ${CAPACITY_RATE_HZ} msg/s: ${step.connected} connected in ${step.connectMs} ms, relay CPU ${(step.relayCpuFraction * 100).toFixed(1)} % of a core (${step.relayCpuUsPerMessage} µs/message), echo loss ${step.echoLossFraction}, RTT p50/p99 ${step.rttP50Ms}/${step.rttP99Ms} ms${step.firstFailure ? `; not connected: ${step.firstFailure}` : ''}\n`);
    steps.push(step);
  }
  const good = steps.filter((s) => s.connected >= CAPACITY_CONNECTED_MIN * s.sessions && s.echoLossFraction < CAPACITY_LOSS_MAX && s.relayCpuFraction > 0);
  const largest = good[good.length - 1];
  return {
    throughput,
    capacity: {
      rateHz: CAPACITY_RATE_HZ,
      sizeBytes: CAPACITY_SIZE_BYTES,
      steps,
      sessionsPerCore: largest ? Math.floor(largest.connected / largest.relayCpuFraction) : null,
      heldSessions: largest && largest.relayCpuFraction < 1 ? largest.connected : null,
    },
  };
}
