/**
 * Pushes N evenly spaced packets through one link of a {@link SimNetwork} and measures
 * what came out: the engine behind `slipstream sim link`, usable from tests and
 * benchmarks without a child process.
 *
 * Statistics are gathered streaming, in typed arrays sized by the packet count (about
 * 9 bytes per packet plus 8 per delivered copy), never one object per packet.
 */
import { SimConfigError } from '../../../proto/src/errors.js';
import type { FateSink, PacketFate } from './fate.js';
import { DropReason, dropReasonName, validateLinkModel, type LinkModelSpec } from './link.js';
import { SimNetwork } from './network.js';

/** Inputs of {@link runLinkExperiment}. */
export interface LinkExperimentInit {
  /** Seed of the network's random streams. */
  seed: number;
  /** Packets to send, ≥ 1. */
  packets: number;
  /** Send rate, packets per second of virtual time, > 0. Packet i leaves at i·1000/pps ms. */
  pps: number;
  /** Size of every packet in bytes. Default 200. */
  sizeBytes?: number;
  /** The model of the link under test (sender → receiver). */
  model: LinkModelSpec;
}

/** Latency summary in ms over every delivered copy (nearest-rank percentiles). 0 when nothing was delivered. */
export interface LatencySummary {
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** What {@link runLinkExperiment} measured. Every field is a deterministic function of the inputs. */
export interface LinkReport {
  seed: number;
  /** Packets sent. */
  sent: number;
  /** Packets of which at least one copy arrived. */
  delivered: number;
  /** Packets of which no copy arrived. */
  lost: number;
  /** lost / sent. */
  lossRate: number;
  /** Mean length of runs of consecutive lost packets (in send order); 0 without loss. */
  meanBurstLength: number;
  /** Longest run of consecutive lost packets. */
  maxBurstLength: number;
  latencyMs: LatencySummary;
  /** Packets whose first copy arrived after a packet sent later had arrived (RFC 4737's reordered packets). */
  reordered: number;
  /** Extra copies delivered (copies beyond the first). */
  duplicated: number;
  /** Delivered copies with a flipped bit. */
  corrupted: number;
  /** Dropped packets by reason (`loss`, `blackout`, `queueFull`, `mtu`). */
  drops: Record<string, number>;
  /** Offered load, kbit/s: sizeBytes · 8 · pps / 1000. */
  offeredKbps: number;
  /**
   * Delivered bits per ms between the first and the last arrival (the first arrival's
   * own bits excluded, as they landed before the span began); 0 with fewer than two
   * arrivals. Under a saturated rate limit this is the configured rate.
   */
  throughputKbps: number;
  /** Virtual time from the first send to the last event, ms. */
  durationMs: number;
  /** Events the queue ran (sends + deliveries). */
  events: number;
}

/** Keeps report numbers short and stable in JSON (a microsecond of a millisecond is plenty). */
function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

/** Streaming statistics over the fates of one sender's packets (packetId = send index). */
class LinkStatsSink implements FateSink {
  /** Per packet: 1 once a copy arrived. */
  readonly arrived: Uint8Array;
  latencies: Float64Array;
  latencyCount = 0;
  uniqueDelivered = 0;
  duplicated = 0;
  reordered = 0;
  corrupted = 0;
  readonly drops = new Float64Array(dropReasonName.length);
  private highestArrivedId = -1;
  deliveredBytes = 0;
  firstArrivalMs = Number.NaN;
  firstArrivalBytes = 0;
  lastArrivalMs = Number.NaN;

  constructor(packets: number) {
    this.arrived = new Uint8Array(packets);
    this.latencies = new Float64Array(packets);
  }

  record(fate: PacketFate): void {
    if (fate.dropReason !== DropReason.None) {
      if (fate.copy === 0) this.drops[fate.dropReason]!++;
      return;
    }
    const id = fate.packetId;
    if (this.latencyCount === this.latencies.length) {
      const grown = new Float64Array(this.latencies.length * 2);
      grown.set(this.latencies);
      this.latencies = grown;
    }
    this.latencies[this.latencyCount++] = fate.atMs - fate.sentAtMs;
    if (fate.corrupted) this.corrupted++;
    if (this.arrived[id] === 1) {
      this.duplicated++;
    } else {
      this.arrived[id] = 1;
      this.uniqueDelivered++;
      if (id < this.highestArrivedId) this.reordered++;
      else this.highestArrivedId = id;
    }
    if (Number.isNaN(this.firstArrivalMs)) {
      this.firstArrivalMs = fate.atMs;
      this.firstArrivalBytes = fate.sizeBytes;
    }
    this.lastArrivalMs = fate.atMs;
    this.deliveredBytes += fate.sizeBytes;
  }
}

/** Nearest-rank percentile of a sorted array (q in (0, 1]). */
function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Address of the sending host in {@link runLinkExperiment}. */
export const EXPERIMENT_SENDER = '10.0.0.1';
/** Address of the receiving host in {@link runLinkExperiment}. */
export const EXPERIMENT_RECEIVER = '10.0.0.2';
/** Packet size when {@link LinkExperimentInit.sizeBytes} is not given, bytes. */
export const EXPERIMENT_SIZE_BYTES_DEFAULT = 200;

/**
 * Runs the experiment to completion (every packet delivered or dropped) in virtual time.
 * Throws {@link SimConfigError} when the model is invalid.
 */
export function runLinkExperiment(init: LinkExperimentInit): LinkReport {
  const packets = init.packets;
  const sizeBytes = init.sizeBytes ?? EXPERIMENT_SIZE_BYTES_DEFAULT;
  if (!Number.isInteger(packets) || packets < 1) throw new SimConfigError('packets', `packets: ${packets} is out of range; expected an integer ≥ 1`);
  if (!Number.isFinite(init.pps) || init.pps <= 0) throw new SimConfigError('pps', `pps: ${init.pps} is out of range; expected a number greater than 0 (packets per second)`);
  if (!Number.isInteger(sizeBytes) || sizeBytes < 0 || sizeBytes > 65535) throw new SimConfigError('sizeBytes', `sizeBytes: ${sizeBytes} is out of range; expected an integer from 0 to 65535`);
  validateLinkModel(init.model);
  const intervalMs = 1000 / init.pps;
  const stats = new LinkStatsSink(packets);
  const network = new SimNetwork({ seed: init.seed, fateSink: stats });
  const sender = network.addHost(EXPERIMENT_SENDER).bind();
  const receiverHost = network.addHost(EXPERIMENT_RECEIVER);
  network.setLink(EXPERIMENT_SENDER, EXPERIMENT_RECEIVER, init.model);
  const receiver = receiverHost.bind(9000);
  const to = receiver.localAddress();
  const payload = new Uint8Array(sizeBytes);
  let sent = 0;
  // One timer re-armed per packet: the send loop allocates nothing per packet.
  const sendTimer = network.createTimer(() => {
    sender.send(payload, to);
    sent++;
    // Multiply rather than accumulate, so that send times do not drift.
    if (sent < packets) sendTimer.set(sent * intervalMs);
  });
  sendTimer.set(0);
  const events = network.runUntilIdle();

  let lost = 0;
  let runs = 0;
  let maxRun = 0;
  let run = 0;
  const arrived = stats.arrived;
  for (let i = 0; i < packets; i++) {
    if (arrived[i] === 0) {
      lost++;
      if (run === 0) runs++;
      run++;
      if (run > maxRun) maxRun = run;
    } else {
      run = 0;
    }
  }

  const latencies = stats.latencies.subarray(0, stats.latencyCount).sort();
  let sum = 0;
  for (let i = 0; i < latencies.length; i++) sum += latencies[i]!;
  const drops: Record<string, number> = {};
  for (const reason of [DropReason.Loss, DropReason.Blackout, DropReason.QueueFull, DropReason.Mtu]) drops[dropReasonName[reason]!] = stats.drops[reason]!;
  const spanMs = stats.lastArrivalMs - stats.firstArrivalMs;

  return {
    seed: init.seed,
    sent,
    delivered: stats.uniqueDelivered,
    lost,
    lossRate: round(lost / sent),
    meanBurstLength: round(runs === 0 ? 0 : lost / runs),
    maxBurstLength: maxRun,
    latencyMs: {
      min: round(latencies.length ? latencies[0]! : 0),
      mean: round(latencies.length ? sum / latencies.length : 0),
      p50: round(percentile(latencies, 0.5)),
      p90: round(percentile(latencies, 0.9)),
      p99: round(percentile(latencies, 0.99)),
      max: round(latencies.length ? latencies[latencies.length - 1]! : 0),
    },
    reordered: stats.reordered,
    duplicated: stats.duplicated,
    corrupted: stats.corrupted,
    drops,
    offeredKbps: round((sizeBytes * 8 * init.pps) / 1000),
    throughputKbps: round(spanMs > 0 ? ((stats.deliveredBytes - stats.firstArrivalBytes) * 8) / spanMs : 0),
    durationMs: round(network.nowMs),
    events,
  };
}
