/**
 * Runs one flow through FecSender → simulated link → FecReceiver in virtual time and
 * measures, per phase of the path, what the application saw: residual loss, the
 * redundancy's extra bytes, and how much later than the bare path packets arrived.
 *
 * The event loop is small and exact: five sources of events (the flow's next packet,
 * the sender's timer, arrivals from the link in arrival order, the receiver's timer,
 * and receiver reports travelling back to the sender one path delay later, as a real
 * tunnel would carry them), always taking the earliest. Every figure is counted from
 * what the receiver actually delivered, checked byte-for-byte against what was sent.
 */
import { FecController, type FecControllerInit } from '../proto/src/fec/controller.js';
import { FecReceiver, type FecIntervalStats } from '../proto/src/fec/receiver.js';
import type { ReedSolomon } from '../proto/src/fec/rs.js';
import { formatScheme, type FecScheme } from '../proto/src/fec/scheme.js';
import { FecSender } from '../proto/src/fec/sender.js';
import { Rng } from '../proto/src/rng.js';
import { LinkDirection, type LinkModelSpec } from '../sim/src/core/link.js';

/** One stretch of the path: a link model for a number of packets. */
export interface FlowPhase {
  /** Short label for tables, e.g. `2%`. */
  readonly label: string;
  /** Loss model etc. for this phase (delay and ordering are set by the flow). */
  readonly link: LinkModelSpec;
  /** Application packets sent during the phase. */
  readonly packets: number;
}

/** Inputs of {@link runFlow}. */
export interface FlowInit {
  /** Seed of the link's and the payloads' random streams. */
  readonly seed: number;
  /** Application packets per second (evenly spaced). */
  readonly packetRatePps: number;
  /** Phases, in order. */
  readonly phases: readonly FlowPhase[];
  /** Fixed protection; ignored when `adaptive` is given. */
  readonly scheme?: FecScheme;
  /** Run the adaptive controller with these options instead of a fixed scheme. */
  readonly adaptive?: FecControllerInit;
  /** Codec shared by sender and receiver. */
  readonly codec: ReedSolomon;
  /** One-way path delay in ms (no jitter, so "added latency" is FEC's alone). Default 20. */
  readonly delayMs?: number;
  /** Payload size range in bytes (uniform). Default 80–160, game-like. */
  readonly payloadBytesMin?: number;
  readonly payloadBytesMax?: number;
}

/** What one phase measured. */
export interface PhaseResult {
  readonly label: string;
  /** Application packets sent in the phase. */
  readonly sent: number;
  /** Of those, delivered (once). */
  readonly delivered: number;
  /** 1 − delivered/sent (fraction). */
  readonly residual: number;
  /** Redundant bytes (parity + copies) / data bytes sent in the phase (fraction). */
  readonly overhead: number;
  /** 99th percentile of (arrival − send − path delay) over delivered packets, ms (0.1 ms bins). */
  readonly addedLatencyMsP99: number;
  /** Largest added latency, ms. */
  readonly addedLatencyMsMax: number;
  /** Wire loss the link applied to this phase's shards (fraction). */
  readonly wireLoss: number;
  /** The scheme that protected most of the phase's packets, e.g. `rs(2,2)/20ms`. */
  readonly mainScheme: string;
}

/** Totals over the whole flow. */
export interface FlowResult {
  readonly phases: PhaseResult[];
  /** Packets delivered twice to the application: always 0 unless dedup is broken. */
  readonly deliveredTwice: number;
  /** Delivered packets whose bytes differed from what was sent: always 0 unless the codec is broken. */
  readonly corrupted: number;
  /** Virtual time simulated, ms. */
  readonly durationMs: number;
}

const LATENCY_BIN_MS = 0.1;
const LATENCY_BINS = 20000;
const PACKET_NUMBER_BYTES = 4;

/** Content byte i of packet n: lets the receiver side check every delivered byte. */
function patternByte(n: number, i: number): number {
  return (n * 31 + i * 7 + (n >>> 8)) & 0xff;
}

/** Runs the flow; deterministic for a given init. */
export function runFlow(init: FlowInit): FlowResult {
  const delayMs = init.delayMs ?? 20;
  const minBytes = Math.max(PACKET_NUMBER_BYTES, init.payloadBytesMin ?? 80);
  const maxBytes = Math.max(minBytes, init.payloadBytesMax ?? 160);
  const rng = new Rng(init.seed);
  const linkRng = rng.fork();
  const sizeRng = rng.fork();
  const pathSpec = (phase: FlowPhase): LinkModelSpec => ({ ...phase.link, delayMs, keepOrder: true });
  const link = new LinkDirection(pathSpec(init.phases[0]), linkRng);
  const controller = init.adaptive ? new FecController(init.adaptive) : undefined;
  const sender = new FecSender({ codec: init.codec, maxPayloadBytes: maxBytes, scheme: init.scheme, controller });
  const receiver = new FecReceiver({ codec: init.codec, maxPayloadBytes: maxBytes });

  const total = init.phases.reduce((sum, p) => sum + p.packets, 0);
  const phaseEnd: number[] = [];
  init.phases.reduce((end, p) => (phaseEnd.push(end + p.packets), end + p.packets), 0);
  const sentAtMs = new Float64Array(total);
  const lengths = new Uint16Array(total);
  const delivered = new Uint8Array(total);
  const phaseOf = new Uint8Array(total);
  const histograms = init.phases.map(() => new Uint32Array(LATENCY_BINS + 1));
  const latencyMax = init.phases.map(() => 0);
  const wireOffered = init.phases.map(() => 0);
  const wireLost = init.phases.map(() => 0);
  const schemeCounts = init.phases.map(() => new Map<string, number>());
  const counterMarks: { data: number; redundant: number }[] = [];
  let deliveredTwice = 0;
  let corrupted = 0;

  // Arrivals in arrival-time order (a fixed delay with keepOrder keeps them FIFO; the
  // insertion below also copes with ties and reordering).
  const arrivals: { atMs: number; seq: number; groupId: number; index: number; k: number; r: number; phase: number; bytes: Uint8Array }[] = [];
  let arrivalHead = 0;
  const feedback: { atMs: number; stats: FecIntervalStats }[] = [];
  let feedbackHead = 0;

  const txBuf = new Uint8Array(sender.maxShardBytes);
  const rxBuf = new Uint8Array(receiver.maxShardBytes);
  const payload = new Uint8Array(maxBytes);
  const intervalMs = 1000 / init.packetRatePps;
  let pushed = 0;
  let phase = 0;
  let schemeLabel = formatScheme(sender.scheme);
  let schemeShown = sender.scheme;
  let now = 0;

  const markCounters = (): void => {
    const c = sender.counters;
    counterMarks.push({ data: c.dataBytes, redundant: c.parityBytes + c.duplicateBytes });
  };
  markCounters();

  const drainSender = (): void => {
    for (let t = sender.pollTransmit(txBuf); t !== undefined; t = sender.pollTransmit(txBuf)) {
      wireOffered[phase]++;
      const copies = link.offer(now, t.length);
      if (copies === 0) {
        wireLost[phase]++;
        continue;
      }
      for (let c = 0; c < copies; c++) {
        const item = { atMs: link.deliverAtMs[c], seq: t.seq, groupId: t.groupId, index: t.index, k: t.k, r: t.r, phase, bytes: txBuf.slice(0, t.length) };
        let at = arrivals.length;
        arrivals.push(item);
        while (at > arrivalHead && arrivals[at - 1].atMs > item.atMs) {
          arrivals[at] = arrivals[at - 1];
          at--;
        }
        arrivals[at] = item;
      }
    }
  };

  const drainReceiver = (): void => {
    for (let len = receiver.pollDelivered(rxBuf); len >= 0; len = receiver.pollDelivered(rxBuf)) {
      const n = ((rxBuf[0] << 24) | (rxBuf[1] << 16) | (rxBuf[2] << 8) | rxBuf[3]) >>> 0;
      if (n >= total || len !== lengths[n]) {
        corrupted++;
        continue;
      }
      let ok = true;
      for (let i = PACKET_NUMBER_BYTES; i < len; i++) {
        if (rxBuf[i] !== patternByte(n, i)) {
          ok = false;
          break;
        }
      }
      if (!ok) {
        corrupted++;
        continue;
      }
      if (delivered[n] === 1) {
        deliveredTwice++;
        continue;
      }
      delivered[n] = 1;
      const p = phaseOf[n];
      const added = Math.max(0, now - sentAtMs[n] - delayMs);
      if (added > latencyMax[p]) latencyMax[p] = added;
      histograms[p][Math.min(LATENCY_BINS, Math.ceil(added / LATENCY_BIN_MS - 1e-9))]++;
    }
    for (let e = receiver.pollEvent(); e !== undefined; e = receiver.pollEvent()) {
      // The report rides back over the reverse path.
      feedback.push({ atMs: now + delayMs, stats: e.stats });
    }
  };

  while (true) {
    const tPush = pushed < total ? pushed * intervalMs : Number.POSITIVE_INFINITY;
    const tSender = sender.pollTimeout() ?? Number.POSITIVE_INFINITY;
    const tArrival = arrivalHead < arrivals.length ? arrivals[arrivalHead].atMs : Number.POSITIVE_INFINITY;
    const tFeedback = feedbackHead < feedback.length ? feedback[feedbackHead].atMs : Number.POSITIVE_INFINITY;
    if (tPush === Number.POSITIVE_INFINITY && tSender === Number.POSITIVE_INFINITY && tArrival === Number.POSITIVE_INFINITY) break;
    const tReceiver = receiver.pollTimeout() ?? Number.POSITIVE_INFINITY;
    const t = Math.min(tPush, tSender, tArrival, tFeedback, tReceiver);
    now = t;
    if (tArrival === t) {
      const a = arrivals[arrivalHead++];
      receiver.handleShard(now, a.seq, a.groupId, a.index, a.k, a.r, a.bytes);
      drainReceiver();
    } else if (tFeedback === t) {
      const f = feedback[feedbackHead++];
      sender.handleFeedback(now, f.stats, 2 * delayMs);
      drainSender();
    } else if (tSender === t) {
      sender.handleTimeout(now);
      drainSender();
    } else if (tPush === t) {
      const n = pushed;
      if (n === phaseEnd[phase]) {
        phase++;
        markCounters();
        link.setModel(pathSpec(init.phases[phase]));
      }
      const length = minBytes + sizeRng.nextInt(maxBytes - minBytes + 1);
      payload[0] = n >>> 24;
      payload[1] = (n >>> 16) & 0xff;
      payload[2] = (n >>> 8) & 0xff;
      payload[3] = n & 0xff;
      for (let i = PACKET_NUMBER_BYTES; i < length; i++) payload[i] = patternByte(n, i);
      sentAtMs[n] = now;
      lengths[n] = length;
      phaseOf[n] = phase;
      pushed++;
      if (sender.scheme !== schemeShown) {
        schemeShown = sender.scheme;
        schemeLabel = formatScheme(schemeShown);
      }
      const counts = schemeCounts[phase];
      counts.set(schemeLabel, (counts.get(schemeLabel) ?? 0) + 1);
      sender.push(now, payload.subarray(0, length));
      drainSender();
    } else {
      receiver.handleTimeout(now);
      drainReceiver();
    }
    if (arrivalHead > 4096 && arrivalHead * 2 > arrivals.length) {
      arrivals.splice(0, arrivalHead);
      arrivalHead = 0;
    }
    if (feedbackHead > 1024) {
      feedback.splice(0, feedbackHead);
      feedbackHead = 0;
    }
  }
  markCounters();

  const phases: PhaseResult[] = init.phases.map((p, i) => {
    const start = i === 0 ? 0 : phaseEnd[i - 1];
    let got = 0;
    for (let n = start; n < phaseEnd[i]; n++) got += delivered[n];
    const data = counterMarks[i + 1].data - counterMarks[i].data;
    const redundant = counterMarks[i + 1].redundant - counterMarks[i].redundant;
    let main = '';
    let mainCount = -1;
    for (const [label, count] of schemeCounts[i]) {
      if (count > mainCount) {
        main = label;
        mainCount = count;
      }
    }
    return {
      label: p.label,
      sent: p.packets,
      delivered: got,
      residual: 1 - got / p.packets,
      overhead: data > 0 ? redundant / data : 0,
      addedLatencyMsP99: percentileMs(histograms[i], 0.99),
      addedLatencyMsMax: latencyMax[i],
      wireLoss: wireOffered[i] > 0 ? wireLost[i] / wireOffered[i] : 0,
      mainScheme: main,
    };
  });
  return { phases, deliveredTwice, corrupted, durationMs: now };
}

/** Nearest-rank percentile of a latency histogram, in ms (upper edge of the bin). */
function percentileMs(histogram: Uint32Array, q: number): number {
  let count = 0;
  for (let i = 0; i < histogram.length; i++) count += histogram[i];
  if (count === 0) return 0;
  const rank = Math.ceil(q * count);
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i];
    if (seen >= rank) return Math.round(i * LATENCY_BIN_MS * 10) / 10;
  }
  return LATENCY_BINS * LATENCY_BIN_MS;
}
