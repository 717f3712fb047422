/**
 * One direction of a simulated link: delay and jitter, loss (Bernoulli, Gilbert-Elliott,
 * netem's 4-state model), blackouts, duplication, reordering, corruption, a rate limit
 * with a bounded FIFO queue, and an MTU. Modelled on Linux netem (tc-netem(8)) so that
 * a model tried here can be replayed on a real interface, with one deliberate extra:
 * `keepOrder`, because netem's jitter reorders packets and real paths rarely do.
 *
 * Sans-IO: `offer(nowMs, sizeBytes)` takes the time from the caller and returns when
 * the copies arrive; the caller (the network, a benchmark) schedules the deliveries.
 * Randomness comes from the injected {@link Rng} only, so a seed fixes every fate.
 */
import { SimConfigError } from '../../../proto/src/errors.js';
import type { Rng } from '../../../proto/src/rng.js';
import { DeliverySchedule } from './trace-mahimahi.js';
import { deliveryQueuePackets, IntervalTracePlayer, validateLinkTrace, type LinkTraceSpec } from './trace-replay.js';

export type { LinkTraceSpec } from './trace-replay.js';

/** Shape of the jitter added to the fixed delay. */
export type JitterDistribution = 'uniform' | 'normal' | 'pareto';

/**
 * Loss model.
 * - `bernoulli`: each packet is lost independently with probability `p`.
 * - `gilbert-elliott`: netem `gemodel p r 1-h 1-k` order: `p` = good→bad and `r` =
 *   bad→good transition probability per packet, `lossBad` (1-h) and `lossGood` (1-k) =
 *   loss probability in the bad and good state. With lossBad 1 and lossGood 0 the loss
 *   rate is p/(p+r) and the mean burst 1/r.
 * - `4-state`: netem `loss state p13 p31 p32 p23 p14` (Salsano et al., "Definition of a
 *   general and intuitive loss model for packet networks", 2012). States: 1 = received
 *   in a gap, 2 = received in a burst, 3 = lost in a burst, 4 = isolated loss in a gap.
 *   Needs p13 + p14 ≤ 1 and p31 + p32 ≤ 1.
 */
export type LossSpec =
  | { model: 'bernoulli'; p: number }
  | { model: 'gilbert-elliott'; p: number; r: number; lossBad: number; lossGood: number }
  | { model: '4-state'; p13: number; p31: number; p32: number; p23: number; p14: number };

/** A time window (absolute virtual ms, start inclusive, end exclusive) in which every offered packet is dropped. */
export interface BlackoutWindow {
  startMs: number;
  endMs: number;
}

/**
 * The model of one link direction. Every field is optional; an empty spec is a perfect,
 * instantaneous link. Ranges are checked by {@link validateLinkModel}.
 */
export interface LinkModelSpec {
  /** Fixed one-way delay in ms, 0 to 3,600,000. Default 0. */
  delayMs?: number;
  /** Jitter in ms (0 to 3,600,000): ±J for uniform, standard deviation for normal, scale for pareto. Default 0. */
  jitterMs?: number;
  /** Jitter shape. Default `uniform` (netem's default when no distribution table is given). */
  jitterDist?: JitterDistribution;
  /** Never deliver a packet before one offered earlier (clamps its arrival up). Default false (netem behaviour). */
  keepOrder?: boolean;
  /** Loss model. Default: no loss. */
  loss?: LossSpec;
  /** Probability (0–1) that a packet is delivered twice; the copy gets its own delay. Default 0. */
  dupProbability?: number;
  /** Probability (0–1) that a packet skips the delay (netem `reorder`): it arrives as soon as it is serialized. Default 0. */
  reorderProbability?: number;
  /** Probability (0–1) that one random bit of the packet is flipped. Default 0. */
  corruptProbability?: number;
  /** Bottleneck rate in kbit/s (1 kbit = 1000 bits), > 0 and ≤ 1e9. Default: unlimited. */
  rateKbps?: number;
  /** With `rateKbps`: packets that may wait for the bottleneck, including the one being sent, 1 to 1,000,000; more are tail-dropped. Default 1000 (netem's `limit`). */
  queuePackets?: number;
  /** Largest packet in bytes (1–65,535); larger packets are dropped. Default: no limit. */
  mtuBytes?: number;
  /** Windows (absolute virtual ms) in which every offered packet is dropped. Default none. */
  blackouts?: BlackoutWindow[];
  /**
   * Follow a trace over time (see `sim/src/core/trace-replay.ts`). An `intervals` trace (a
   * recorded path) drives delay, jitter and loss, on top of `delayMs`, and excludes
   * `loss`, `jitterMs`, `jitterDist`; a `mahimahi` trace is the bottleneck and excludes
   * `rateKbps`, `queuePackets`. Every other field still applies. Default: none.
   */
  trace?: LinkTraceSpec;
}

/** Why a packet was dropped. Values are stable: they appear in reports and fate logs. */
export const DropReason = {
  /** Not dropped. */
  None: 0,
  /** The loss model dropped it. */
  Loss: 1,
  /** Offered during a blackout window. */
  Blackout: 2,
  /** The rate limiter's queue was full (tail drop). */
  QueueFull: 3,
  /** Larger than the link's MTU. */
  Mtu: 4,
  /** Sender and receiver are in partitioned host groups. */
  Partition: 5,
  /** The destination address is not a host of the network. */
  NoHost: 6,
  /** No socket is bound to the destination port when the packet arrives. */
  NoSocket: 7,
} as const;

/** One of the {@link DropReason} values. */
export type DropReasonValue = (typeof DropReason)[keyof typeof DropReason];

/** Names of {@link DropReason} values for reports (`queueFull`, …), indexed by value. */
export const dropReasonName: readonly string[] = ['none', 'loss', 'blackout', 'queueFull', 'mtu', 'partition', 'noHost', 'noSocket'];

/** Largest accepted delay or jitter, in ms (one hour: anything longer is a configuration mistake). */
export const LINK_DELAY_MS_MAX = 3_600_000;
/** Largest accepted rate, in kbit/s (1 Tbit/s). */
export const LINK_RATE_KBPS_MAX = 1e9;
/** Largest accepted rate-limiter queue, in packets. */
export const LINK_QUEUE_PACKETS_MAX = 1_000_000;
/** Rate-limiter queue when `rateKbps` is set without `queuePackets` (netem's default `limit`). */
export const LINK_QUEUE_PACKETS_DEFAULT = 1000;
/** Largest accepted MTU in bytes (the IPv4 total-length limit). */
export const LINK_MTU_BYTES_MAX = 65_535;
/** Shape α of the pareto (Lomax) jitter: heavy-tailed but with finite variance (α > 2). */
export const PARETO_SHAPE = 3;

const SPEC_KEYS = new Set(['delayMs', 'jitterMs', 'jitterDist', 'keepOrder', 'loss', 'dupProbability', 'reorderProbability', 'corruptProbability', 'rateKbps', 'queuePackets', 'mtuBytes', 'blackouts', 'trace']);
const LOSS_KEYS: Record<string, readonly string[]> = {
  bernoulli: ['p'],
  'gilbert-elliott': ['p', 'r', 'lossBad', 'lossGood'],
  '4-state': ['p13', 'p31', 'p32', 'p23', 'p14'],
};

function checkNumber(parameter: string, value: unknown, min: number, max: number, what: string, options: { integer?: boolean; minExclusive?: boolean } = {}): void {
  const range = `${options.minExclusive ? `greater than ${min}` : `from ${min}`} ${options.minExclusive ? 'and at most' : 'to'} ${max}${what ? ` (${what})` : ''}`;
  const kind = options.integer ? 'an integer' : 'a number';
  if (typeof value !== 'number' || !Number.isFinite(value) || (options.integer && !Number.isInteger(value))) {
    throw new SimConfigError(parameter, `${parameter}: ${String(value)} is not ${kind}; expected ${kind} ${range}`);
  }
  if (value > max || value < min || (options.minExclusive && value === min)) {
    throw new SimConfigError(parameter, `${parameter}: ${value} is out of range; expected ${kind} ${range}`);
  }
}

/**
 * Checks every field of `spec` and throws a {@link SimConfigError} naming the first bad
 * parameter (`link.loss.p`) and its accepted range. Unknown keys are errors too, so a
 * typo in a scenario file is not silently ignored.
 * @param where prefix for parameter names in messages. Default `link`.
 */
export function validateLinkModel(spec: LinkModelSpec, where = 'link'): void {
  if (typeof spec !== 'object' || spec === null) throw new SimConfigError(where, `${where}: expected a link model object`);
  for (const key of Object.keys(spec)) {
    if (!SPEC_KEYS.has(key)) throw new SimConfigError(`${where}.${key}`, `${where}.${key}: unknown parameter; expected one of ${[...SPEC_KEYS].join(', ')}`);
  }
  if (spec.delayMs !== undefined) checkNumber(`${where}.delayMs`, spec.delayMs, 0, LINK_DELAY_MS_MAX, 'ms');
  if (spec.jitterMs !== undefined) checkNumber(`${where}.jitterMs`, spec.jitterMs, 0, LINK_DELAY_MS_MAX, 'ms');
  if (spec.jitterDist !== undefined && spec.jitterDist !== 'uniform' && spec.jitterDist !== 'normal' && spec.jitterDist !== 'pareto') {
    throw new SimConfigError(`${where}.jitterDist`, `${where}.jitterDist: '${String(spec.jitterDist)}' is not one of uniform, normal, pareto`);
  }
  if (spec.keepOrder !== undefined && typeof spec.keepOrder !== 'boolean') {
    throw new SimConfigError(`${where}.keepOrder`, `${where}.keepOrder: expected true or false`);
  }
  for (const key of ['dupProbability', 'reorderProbability', 'corruptProbability'] as const) {
    if (spec[key] !== undefined) checkNumber(`${where}.${key}`, spec[key], 0, 1, 'probability');
  }
  if (spec.rateKbps !== undefined) checkNumber(`${where}.rateKbps`, spec.rateKbps, 0, LINK_RATE_KBPS_MAX, 'kbit/s', { minExclusive: true });
  if (spec.queuePackets !== undefined) checkNumber(`${where}.queuePackets`, spec.queuePackets, 1, LINK_QUEUE_PACKETS_MAX, 'packets', { integer: true });
  if (spec.mtuBytes !== undefined) checkNumber(`${where}.mtuBytes`, spec.mtuBytes, 1, LINK_MTU_BYTES_MAX, 'bytes', { integer: true });
  if (spec.blackouts !== undefined) {
    if (!Array.isArray(spec.blackouts)) throw new SimConfigError(`${where}.blackouts`, `${where}.blackouts: expected a list of {startMs, endMs}`);
    spec.blackouts.forEach((window, i) => {
      const at = `${where}.blackouts[${i}]`;
      if (typeof window !== 'object' || window === null) throw new SimConfigError(at, `${at}: expected {startMs, endMs}`);
      checkNumber(`${at}.startMs`, window.startMs, 0, Number.MAX_SAFE_INTEGER, 'ms');
      checkNumber(`${at}.endMs`, window.endMs, window.startMs, Number.MAX_SAFE_INTEGER, 'ms, after startMs', { minExclusive: true });
    });
  }
  if (spec.loss !== undefined) validateLoss(spec.loss, `${where}.loss`);
  if (spec.trace !== undefined) validateLinkTrace(spec.trace, `${where}.trace`, Object.keys(spec));
}

function validateLoss(loss: LossSpec, at: string): void {
  if (typeof loss !== 'object' || loss === null) throw new SimConfigError(at, `${at}: expected a loss model object`);
  // Own keys only: a model named 'toString' must be an error, not Object.prototype's method.
  const keys = Object.prototype.hasOwnProperty.call(LOSS_KEYS, loss.model) ? LOSS_KEYS[loss.model] : undefined;
  if (keys === undefined) {
    throw new SimConfigError(`${at}.model`, `${at}.model: '${String(loss.model)}' is not one of ${Object.keys(LOSS_KEYS).join(', ')}`);
  }
  for (const key of Object.keys(loss)) {
    if (key !== 'model' && !keys.includes(key)) throw new SimConfigError(`${at}.${key}`, `${at}.${key}: unknown parameter of the ${loss.model} model; expected ${keys.join(', ')}`);
  }
  const values = loss as unknown as Record<string, unknown>;
  for (const key of keys) checkNumber(`${at}.${key}`, values[key], 0, 1, 'probability');
  if (loss.model === '4-state') {
    // Each pair is the set of exits from one state, so it must be a probability too.
    if (loss.p13 + loss.p14 > 1) throw new SimConfigError(`${at}.p14`, `${at}.p14: p13 + p14 = ${loss.p13 + loss.p14} is out of range; expected at most 1 (state 1's exits)`);
    if (loss.p31 + loss.p32 > 1) throw new SimConfigError(`${at}.p32`, `${at}.p32: p31 + p32 = ${loss.p31 + loss.p32} is out of range; expected at most 1 (state 3's exits)`);
  }
}

/** Numeric tags for the hot path (a string compare per packet would cost more). */
const LossKind = { None: 0, Bernoulli: 1, GilbertElliott: 2, FourState: 3, Spread: 4 } as const;
const Jitter = { Uniform: 0, Normal: 1, Pareto: 2 } as const;
/** Gilbert-Elliott states. */
const GOOD = 0;
const BAD = 1;
/** netem 4-state states (numbered as in the paper). */
const GAP_RX = 1;
const BURST_RX = 2;
const BURST_LOSS = 3;
const GAP_LOSS = 4;

/**
 * One direction of a link. Create one per direction (and fork the network's `Rng` for
 * each, so that a change in one link's draws does not shift another's).
 *
 * Order of effects for an offered packet, as in netem: blackout, MTU, loss, rate queue
 * (tail drop), corruption, reorder or delay + jitter, then duplication (the copy takes
 * its own rate-queue slot and its own delay, and never the reorder shortcut).
 */
export class LinkDirection {
  /** Arrival times (ms) of the copies of the last offered packet; entries `[0, n)` are valid. Reused by every offer. */
  readonly deliverAtMs = new Float64Array(2);
  /** Why the last offered packet was dropped ({@link DropReason}), or `DropReason.None`. */
  lastDropReason: DropReasonValue = DropReason.None;
  /** Whether the first copy of the last offered packet must be corrupted (one random bit flipped). The duplicate, as in netem, is a clean clone. */
  lastCorrupted = false;
  /** Whether the first copy of the last offered packet took the reorder shortcut (skipped the delay). */
  lastReordered = false;

  private readonly rng: Rng;
  private spec: LinkModelSpec = {};
  // The spec flattened into numbers for the hot path.
  private delayMs = 0;
  private jitterMs = 0;
  private jitterKind: number = Jitter.Uniform;
  private keepOrder = false;
  private lossKind: number = LossKind.None;
  private lossA = 0;
  private lossB = 0;
  private lossC = 0;
  private lossD = 0;
  private lossE = 0;
  private lossState = 0;
  private dupProbability = 0;
  private reorderProbability = 0;
  private corruptProbability = 0;
  private rateKbps = 0;
  private queuePackets = LINK_QUEUE_PACKETS_DEFAULT;
  private mtuBytes = Number.POSITIVE_INFINITY;
  private blackoutStartMs = new Float64Array(0);
  private blackoutEndMs = new Float64Array(0);
  private blackoutEndMaxMs = Number.NEGATIVE_INFINITY;
  /** Latest arrival handed out so far: the floor for `keepOrder`. */
  private lastArrivalMs = Number.NEGATIVE_INFINITY;
  /** When the bottleneck finishes serializing everything accepted so far (ms). */
  private linkFreeAtMs = Number.NEGATIVE_INFINITY;
  /** Ring of serialization finish times of packets still in the rate queue (non-decreasing). */
  private queueFinishMs = new Float64Array(0);
  private queueMask = 0;
  private queueHead = 0;
  private queueCount = 0;
  /** An `intervals` trace in force, or undefined. */
  private intervalTrace: IntervalTracePlayer | undefined;
  /** When the interval trace's figures next change (ms); -Infinity forces a look at the first offer. */
  private traceNextMs = Number.NEGATIVE_INFINITY;
  /** The spec's own `delayMs`, to which an interval trace adds its delay. */
  private baseDelayMs = 0;
  /** A `mahimahi` trace's bottleneck in force, or undefined. */
  private deliveryTrace: DeliverySchedule | undefined;
  /** Spread loss (trace replay): accumulated loss credit and the dithered threshold at which the next loss falls. */
  private spreadCredit = 0;
  private spreadThreshold = 1;

  /**
   * @param spec the model; validated (throws {@link SimConfigError})
   * @param rng this direction's own random stream
   */
  constructor(spec: LinkModelSpec, rng: Rng) {
    this.rng = rng;
    this.setModel(spec);
  }

  /** The model in force (as given to the constructor or the last {@link setModel}). */
  get model(): Readonly<LinkModelSpec> {
    return this.spec;
  }

  /** Packets waiting in (or being serialized by) the rate limiter at `nowMs`. */
  queuedPackets(nowMs: number): number {
    this.drainQueue(nowMs);
    return this.queueCount + (this.deliveryTrace === undefined ? 0 : this.deliveryTrace.queued(nowMs));
  }

  /**
   * Replaces the model; it applies to packets offered afterwards (packets already in
   * flight keep their arrival times). Loss-model state is kept when the loss model's
   * kind is unchanged, so retuning a Gilbert-Elliott link does not end a burst early.
   * Throws {@link SimConfigError} on a bad spec, leaving the old model in force.
   */
  setModel(spec: LinkModelSpec): void {
    validateLinkModel(spec);
    this.spec = { ...spec, blackouts: spec.blackouts?.map((w) => ({ ...w })) };
    if (spec.blackouts === undefined) delete this.spec.blackouts;
    this.delayMs = spec.delayMs ?? 0;
    this.jitterMs = spec.jitterMs ?? 0;
    this.jitterKind = spec.jitterDist === 'normal' ? Jitter.Normal : spec.jitterDist === 'pareto' ? Jitter.Pareto : Jitter.Uniform;
    this.keepOrder = spec.keepOrder ?? false;
    this.dupProbability = spec.dupProbability ?? 0;
    this.reorderProbability = spec.reorderProbability ?? 0;
    this.corruptProbability = spec.corruptProbability ?? 0;
    this.mtuBytes = spec.mtuBytes ?? Number.POSITIVE_INFINITY;
    this.setLoss(spec.loss);
    this.setRate(spec.rateKbps ?? 0, spec.queuePackets ?? LINK_QUEUE_PACKETS_DEFAULT);
    const windows = spec.blackouts ?? [];
    this.blackoutStartMs = Float64Array.from(windows, (w) => w.startMs);
    this.blackoutEndMs = Float64Array.from(windows, (w) => w.endMs);
    this.blackoutEndMaxMs = windows.reduce((max, w) => Math.max(max, w.endMs), Number.NEGATIVE_INFINITY);
    this.setTrace(spec.trace);
  }

  private setTrace(trace: LinkTraceSpec | undefined): void {
    this.baseDelayMs = this.delayMs;
    this.intervalTrace = undefined;
    this.deliveryTrace = undefined;
    this.traceNextMs = Number.NEGATIVE_INFINITY;
    if (trace === undefined) return;
    if (trace.kind === 'mahimahi') {
      this.deliveryTrace = new DeliverySchedule(Float64Array.from(trace.deliveryMs), deliveryQueuePackets(trace), trace.startMs);
      return;
    }
    this.intervalTrace = new IntervalTracePlayer(trace);
    this.jitterKind = Jitter.Normal;
    const spread = (trace.lossPattern ?? 'spread') === 'spread';
    if (this.lossKind !== (spread ? LossKind.Spread : LossKind.Bernoulli)) {
      this.lossKind = spread ? LossKind.Spread : LossKind.Bernoulli;
      this.spreadCredit = 0;
      this.spreadThreshold = 0.5 + this.rng.nextFloat();
    }
  }

  /** Applies the interval trace's figures for `nowMs` (called only when they change). */
  private followTrace(nowMs: number): void {
    const player = this.intervalTrace!;
    player.advance(nowMs);
    this.traceNextMs = player.nextChangeMs;
    this.delayMs = this.baseDelayMs + player.delayMs;
    this.jitterMs = player.jitterSdMs;
    this.lossA = player.lossProbability;
  }

  /**
   * Offers one packet of `sizeBytes` at `nowMs`. Returns how many copies get delivered
   * (0 = dropped, 1, or 2 when duplicated); their arrival times are `deliverAtMs[0..n-1]`.
   * When 0, {@link lastDropReason} says why; {@link lastCorrupted} says whether to
   * corrupt the first copy. Offers must come in non-decreasing `nowMs`.
   */
  offer(nowMs: number, sizeBytes: number): number {
    this.lastCorrupted = false;
    this.lastReordered = false;
    if (nowMs >= this.traceNextMs && this.intervalTrace !== undefined) this.followTrace(nowMs);
    if (nowMs < this.blackoutEndMaxMs && this.inBlackout(nowMs)) return this.drop(DropReason.Blackout);
    if (sizeBytes > this.mtuBytes) return this.drop(DropReason.Mtu);
    if (this.lossKind !== LossKind.None && this.lose()) return this.drop(DropReason.Loss);
    let departMs = nowMs;
    if (this.rateKbps > 0) {
      departMs = this.serialize(nowMs, sizeBytes);
      if (departMs < 0) return this.drop(DropReason.QueueFull);
    } else if (this.deliveryTrace !== undefined) {
      departMs = this.deliveryTrace.admit(nowMs, sizeBytes);
      if (departMs < 0) return this.drop(DropReason.QueueFull);
    }
    this.lastDropReason = DropReason.None;
    const rng = this.rng;
    if (this.corruptProbability > 0 && rng.nextFloat() < this.corruptProbability) this.lastCorrupted = true;
    if (this.reorderProbability > 0 && rng.nextFloat() < this.reorderProbability) {
      // netem's reorder: the packet goes out at once, ahead of the delay line.
      this.lastReordered = true;
      this.deliverAtMs[0] = departMs;
    } else {
      this.deliverAtMs[0] = this.delayed(departMs);
    }
    if (this.dupProbability > 0 && rng.nextFloat() < this.dupProbability) {
      // netem re-enqueues the clone, so it takes its own slot in the rate queue and
      // draws its own delay.
      let dupDepartMs = departMs;
      if (this.rateKbps > 0) {
        dupDepartMs = this.serialize(nowMs, sizeBytes);
        if (dupDepartMs < 0) return 1;
      } else if (this.deliveryTrace !== undefined) {
        dupDepartMs = this.deliveryTrace.admit(nowMs, sizeBytes);
        if (dupDepartMs < 0) return 1;
      }
      this.deliverAtMs[1] = this.delayed(dupDepartMs);
      return 2;
    }
    return 1;
  }

  private drop(reason: DropReasonValue): number {
    this.lastDropReason = reason;
    return 0;
  }

  private inBlackout(nowMs: number): boolean {
    const starts = this.blackoutStartMs;
    const ends = this.blackoutEndMs;
    for (let i = 0; i < starts.length; i++) {
      if (nowMs >= starts[i]! && nowMs < ends[i]!) return true;
    }
    return false;
  }

  /** Arrival time of a copy that leaves the bottleneck at `departMs`. */
  private delayed(departMs: number): number {
    let arrivalMs = departMs + this.delayMs;
    const jitterMs = this.jitterMs;
    if (jitterMs > 0) {
      const rng = this.rng;
      switch (this.jitterKind) {
        case Jitter.Uniform:
          arrivalMs += jitterMs * (2 * rng.nextFloat() - 1);
          break;
        case Jitter.Normal:
          arrivalMs += jitterMs * rng.nextNormal();
          break;
        default:
          // Lomax (Pareto type II) with scale J: never negative, so the fixed delay is a
          // floor, as on a real path where queueing only adds; 1 - u avoids u = 0.
          arrivalMs += jitterMs * (Math.pow(1 - rng.nextFloat(), -1 / PARETO_SHAPE) - 1);
          break;
      }
      // A packet cannot arrive before it left.
      if (arrivalMs < departMs) arrivalMs = departMs;
    }
    if (this.keepOrder && arrivalMs < this.lastArrivalMs) arrivalMs = this.lastArrivalMs;
    if (arrivalMs > this.lastArrivalMs) this.lastArrivalMs = arrivalMs;
    return arrivalMs;
  }

  /** Advances the loss model by one packet; true when the packet is lost. */
  private lose(): boolean {
    const u = this.rng.nextFloat();
    switch (this.lossKind) {
      case LossKind.Bernoulli:
        return u < this.lossA;
      case LossKind.GilbertElliott: {
        // As netem's loss_gilb_ell(): this packet's fate follows the state it found;
        // the transition applies to the next packet.
        if (this.lossState === GOOD) {
          if (u < this.lossA) this.lossState = BAD;
          return this.lossD > 0 && this.rng.nextFloat() < this.lossD;
        }
        if (u < this.lossB) this.lossState = GOOD;
        return this.lossC > 0 && this.rng.nextFloat() < this.lossC;
      }
      case LossKind.Spread: {
        // Error diffusion: the credit grows by p per packet and a loss spends 1 of it,
        // so an interval loses its fraction to within a packet or two; the random
        // threshold in [0.5, 1.5) keeps the spacing from being periodic (a periodic
        // pattern would line up with FEC groups and hide or exaggerate bursts).
        this.spreadCredit += this.lossA;
        if (this.spreadCredit < this.spreadThreshold) return false;
        this.spreadCredit -= 1;
        this.spreadThreshold = 0.5 + u;
        return true;
      }
      default:
        return this.loseFourState(u);
    }
  }

  /** netem's loss_4state(): move, then lose when the new state is a loss state. */
  private loseFourState(u: number): boolean {
    const p13 = this.lossA;
    const p31 = this.lossB;
    const p32 = this.lossC;
    const p23 = this.lossD;
    const p14 = this.lossE;
    switch (this.lossState) {
      case GAP_RX:
        if (u < p14) {
          this.lossState = GAP_LOSS;
          return true;
        }
        if (u < p14 + p13) {
          this.lossState = BURST_LOSS;
          return true;
        }
        return false;
      case BURST_RX:
        if (u < p23) {
          this.lossState = BURST_LOSS;
          return true;
        }
        return false;
      case BURST_LOSS:
        if (u < p32) {
          this.lossState = BURST_RX;
          return false;
        }
        if (u < p32 + p31) {
          this.lossState = GAP_RX;
          return false;
        }
        return true;
      default:
        // An isolated loss is always followed by a received packet.
        this.lossState = GAP_RX;
        return false;
    }
  }

  private setLoss(loss: LossSpec | undefined): void {
    const before = this.lossKind;
    this.lossA = this.lossB = this.lossC = this.lossD = this.lossE = 0;
    if (loss === undefined) {
      this.lossKind = LossKind.None;
    } else if (loss.model === 'bernoulli') {
      this.lossKind = LossKind.Bernoulli;
      this.lossA = loss.p;
    } else if (loss.model === 'gilbert-elliott') {
      this.lossKind = LossKind.GilbertElliott;
      this.lossA = loss.p;
      this.lossB = loss.r;
      this.lossC = loss.lossBad;
      this.lossD = loss.lossGood;
    } else {
      this.lossKind = LossKind.FourState;
      this.lossA = loss.p13;
      this.lossB = loss.p31;
      this.lossC = loss.p32;
      this.lossD = loss.p23;
      this.lossE = loss.p14;
    }
    if (this.lossKind !== before) this.lossState = this.lossKind === LossKind.FourState ? GAP_RX : GOOD;
  }

  private setRate(rateKbps: number, queuePackets: number): void {
    this.rateKbps = rateKbps;
    this.queuePackets = queuePackets;
    // The ring must hold the new limit and whatever is already queued (a shrunk limit
    // drops new arrivals, not packets already accepted).
    let capacity = 1;
    while (capacity < Math.max(queuePackets, this.queueCount)) capacity *= 2;
    if (rateKbps > 0 && capacity !== this.queueFinishMs.length) {
      const ring = new Float64Array(capacity);
      for (let i = 0; i < this.queueCount; i++) ring[i] = this.queueFinishMs[(this.queueHead + i) & this.queueMask]!;
      this.queueFinishMs = ring;
      this.queueMask = capacity - 1;
      this.queueHead = 0;
    }
  }

  private drainQueue(nowMs: number): void {
    const ring = this.queueFinishMs;
    const mask = this.queueMask;
    while (this.queueCount > 0 && ring[this.queueHead]! <= nowMs) {
      this.queueHead = (this.queueHead + 1) & mask;
      this.queueCount--;
    }
  }

  /** Admits a packet to the rate queue; returns when its last bit leaves (ms), or -1 on tail drop. */
  private serialize(nowMs: number, sizeBytes: number): number {
    this.drainQueue(nowMs);
    if (this.queueCount >= this.queuePackets) return -1;
    const startMs = this.linkFreeAtMs > nowMs ? this.linkFreeAtMs : nowMs;
    // kbit/s = bits per ms, so bits / rateKbps is the serialization time in ms.
    const finishMs = startMs + (sizeBytes * 8) / this.rateKbps;
    this.linkFreeAtMs = finishMs;
    this.queueFinishMs[(this.queueHead + this.queueCount) & this.queueMask] = finishMs;
    this.queueCount++;
    return finishMs;
  }
}
