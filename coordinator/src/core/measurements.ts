/**
 * Smoothed path measurements with their age: relay→relay (the mesh), relay→origin,
 * and client prefix→relay (from SDK reports). Each report carries the figures of one
 * probe window (RTT, jitter, loss, sample count); the table folds it into an
 * exponentially weighted figure whose weight grows with the report's sample count and
 * with the age of what it replaces. Figures not refreshed within `staleMs` expire.
 *
 * Sans-IO: every method takes `nowMs` from the caller (any consistent timeline; the
 * HTTP driver uses wall-clock ms because replicas share records through the store).
 */
import {
  CLIENT_PREFIXES_MAX,
  MEASUREMENT_CONFIDENT_SAMPLES,
  MEASUREMENT_HALF_LIFE_MS_DEFAULT,
  MEASUREMENT_SAMPLES_MAX,
  MEASUREMENT_SMOOTHING_SAMPLES_DEFAULT,
  MEASUREMENT_STALE_MS_DEFAULT,
} from './constants.js';

/** The figures of a path. */
export interface PathFigures {
  /** Round-trip time, ms. */
  readonly rttMs: number;
  /** Jitter (mean absolute RTT variation, RFC 3550 §6.4.1 style), ms. */
  readonly jitterMs: number;
  /** Fraction of probes lost, 0..1. */
  readonly lossFraction: number;
}

/** One probe window's result, as reported. */
export interface PathSample extends PathFigures {
  /** Probes sent in the window (0 → the report is ignored). */
  readonly samples: number;
}

/**
 * Node names used as measurement endpoints: `relay:<id>`, `origin:<name>`,
 * `client:<prefix>`. Build them with these helpers so that the spelling is one.
 */
export const node = {
  /** A relay. */
  relay: (relayId: string): string => memo(relayNames, 'relay:', relayId),
  /** An origin (game server or group) by the name relays and tickets use. */
  origin: (name: string): string => memo(originNames, 'origin:', name),
  /** A client prefix such as `203.0.113.0/24`. */
  client: (prefix: string): string => `client:${prefix}`,
} as const;

/**
 * Ranking looks names up for every relay on every route request; building the string
 * each time would allocate and re-hash it, so names are interned (bounded).
 */
const relayNames = new Map<string, string>();
const originNames = new Map<string, string>();
/** Interned names kept at most per kind; beyond it the memo starts over. */
const NAME_MEMO_MAX = 100_000;

function memo(cache: Map<string, string>, prefix: string, id: string): string {
  let name = cache.get(id);
  if (name === undefined) {
    if (cache.size >= NAME_MEMO_MAX) cache.clear();
    name = prefix + id;
    cache.set(id, name);
  }
  return name;
}

/** A smoothed measurement as stored and replicated. */
export interface MeasurementRecord extends PathFigures {
  /** Measuring end (see {@link node}). */
  readonly from: string;
  /** Measured end (see {@link node}). */
  readonly to: string;
  /** Probe samples folded in so far (capped). */
  readonly samples: number;
  /** Reports folded in so far. */
  readonly reports: number;
  /** When the latest report arrived, ms. */
  readonly updatedAtMs: number;
}

/** A measurement as ranking sees it: figures plus how much to trust them. */
export interface MeasurementView extends MeasurementRecord {
  /** Time since the latest report, ms. */
  readonly ageMs: number;
  /** 0..1: sample confidence (samples / {@link MEASUREMENT_CONFIDENT_SAMPLES}, capped) × freshness (1 − age/stale). */
  readonly confidence: number;
}

/** Options of a {@link MeasurementTable}. */
export interface MeasurementTableInit {
  /** Figures older than this expire, ms. Default {@link MEASUREMENT_STALE_MS_DEFAULT}. */
  staleMs?: number;
  /** Samples at which a report weighs half. Default {@link MEASUREMENT_SMOOTHING_SAMPLES_DEFAULT}. */
  smoothingSamples?: number;
  /** The old figure's weight halves every this many ms. Default {@link MEASUREMENT_HALF_LIFE_MS_DEFAULT}. */
  halfLifeMs?: number;
  /** Most client prefixes (`client:*` measuring ends) held; the least recently reported one is dropped beyond it. Default {@link CLIENT_PREFIXES_MAX}. */
  clientPrefixesMax?: number;
}

/** Smoothed measurements keyed by (from, to). */
export class MeasurementTable {
  /** Expiry age, ms. */
  readonly staleMs: number;
  /** Samples at which a report weighs half. */
  readonly smoothingSamples: number;
  /** The old figure's weight halves every this many ms. */
  readonly halfLifeMs: number;
  private readonly byFrom = new Map<string, Map<string, MeasurementRecord>>();
  private count = 0;
  private readonly clientPrefixesMax: number;
  /** `client:*` measuring ends held, least recently written first (bounded by `clientPrefixesMax`). */
  private readonly clientFroms = new Set<string>();
  private relayVersion = 0;

  constructor(init: MeasurementTableInit = {}) {
    this.staleMs = init.staleMs ?? MEASUREMENT_STALE_MS_DEFAULT;
    this.smoothingSamples = init.smoothingSamples ?? MEASUREMENT_SMOOTHING_SAMPLES_DEFAULT;
    this.halfLifeMs = init.halfLifeMs ?? MEASUREMENT_HALF_LIFE_MS_DEFAULT;
    this.clientPrefixesMax = Math.max(1, init.clientPrefixesMax ?? CLIENT_PREFIXES_MAX);
  }

  /**
   * Changes whenever a figure measured by a relay (relay→origin, relay→relay) is added,
   * replaced or dropped, and when stale figures are dropped; client figures leave it
   * alone. Caches of relay figures (the ranking's origin views) compare it.
   */
  get relayFiguresVersion(): number {
    return this.relayVersion;
  }

  /** Client prefixes with figures held (at most `clientPrefixesMax`). */
  get clientPrefixes(): number {
    return this.clientFroms.size;
  }

  /** Number of (from, to) figures held. */
  get size(): number {
    return this.count;
  }

  /**
   * Folds one report into the figure for (from, to) and returns the new record
   * (which the driver writes to the store). A report with 0 samples changes nothing
   * and returns undefined.
   */
  report(nowMs: number, from: string, to: string, sample: PathSample): MeasurementRecord | undefined {
    const record = foldSample(nowMs, this.raw(from, to), from, to, sample, this);
    if (record) this.put(record);
    return record;
  }

  /**
   * Takes a record made elsewhere (another replica, the store) if it is newer than
   * the one held. Returns whether it was taken.
   */
  apply(record: MeasurementRecord): boolean {
    const previous = this.raw(record.from, record.to);
    if (previous && previous.updatedAtMs >= record.updatedAtMs) return false;
    this.put(record);
    return true;
  }

  /**
   * Puts `record` in place of whatever (from, to) holds, whatever its time: for a
   * figure computed outside the table (client reports, core/client-reports.ts).
   */
  replace(record: MeasurementRecord): void {
    this.put(record);
  }

  /** The figure for (from, to) with its age and confidence, or undefined when absent or stale. */
  get(nowMs: number, from: string, to: string): MeasurementView | undefined {
    const record = this.raw(from, to);
    if (!record) return undefined;
    return this.view(nowMs, record);
  }

  /** {@link get} for a record already in hand. */
  view(nowMs: number, record: MeasurementRecord): MeasurementView | undefined {
    const ageMs = Math.max(0, nowMs - record.updatedAtMs);
    if (ageMs >= this.staleMs) return undefined;
    return {
      from: record.from,
      to: record.to,
      rttMs: record.rttMs,
      jitterMs: record.jitterMs,
      lossFraction: record.lossFraction,
      samples: record.samples,
      reports: record.reports,
      updatedAtMs: record.updatedAtMs,
      ageMs,
      confidence: this.confidence(nowMs, record),
    };
  }

  /** The record for (from, to) when present and not stale at `nowMs` (no copy: the ranking hot path). */
  fresh(nowMs: number, from: string, to: string): MeasurementRecord | undefined {
    const record = this.byFrom.get(from)?.get(to);
    return record !== undefined && nowMs - record.updatedAtMs < this.staleMs ? record : undefined;
  }

  /** 0..1: sample confidence (samples / {@link MEASUREMENT_CONFIDENT_SAMPLES}, capped) × freshness (1 − age/stale). */
  confidence(nowMs: number, record: MeasurementRecord): number {
    const ageMs = Math.max(0, nowMs - record.updatedAtMs);
    if (ageMs >= this.staleMs) return 0;
    return Math.min(1, record.samples / MEASUREMENT_CONFIDENT_SAMPLES) * (1 - ageMs / this.staleMs);
  }

  /** Every figure measured from `from` (stale ones included until {@link expire} runs). */
  from(from: string): ReadonlyMap<string, MeasurementRecord> | undefined {
    return this.byFrom.get(from);
  }

  /** Every record held. */
  *records(): IterableIterator<MeasurementRecord> {
    for (const inner of this.byFrom.values()) yield* inner.values();
  }

  /** Drops figures that are stale at `nowMs`; returns how many. */
  expire(nowMs: number): number {
    let dropped = 0;
    for (const [from, inner] of this.byFrom) {
      for (const [to, record] of inner) {
        if (nowMs - record.updatedAtMs >= this.staleMs) {
          inner.delete(to);
          dropped++;
        }
      }
      if (inner.size === 0) this.dropFrom(from);
    }
    this.count -= dropped;
    if (dropped > 0) this.relayVersion++;
    return dropped;
  }

  /** Drops every figure from or to `name` (a forgotten relay). */
  forget(name: string): void {
    this.relayVersion++;
    const inner = this.byFrom.get(name);
    if (inner) {
      this.count -= inner.size;
      this.dropFrom(name);
    }
    for (const [from, map] of this.byFrom) {
      if (map.delete(name)) this.count--;
      if (map.size === 0) this.dropFrom(from);
    }
  }

  private raw(from: string, to: string): MeasurementRecord | undefined {
    return this.byFrom.get(from)?.get(to);
  }

  private dropFrom(from: string): void {
    if (!from.startsWith('client:')) this.relayVersion++;
    this.byFrom.delete(from);
    this.clientFroms.delete(from);
  }

  private put(record: MeasurementRecord): void {
    if (record.from.startsWith('client:')) {
      // Client prefixes come from unauthenticated reports: keep them bounded, least recently reported out first.
      if (this.clientFroms.has(record.from)) this.clientFroms.delete(record.from);
      else {
        while (this.clientFroms.size >= this.clientPrefixesMax) {
          const oldest = this.clientFroms.values().next().value as string;
          this.count -= this.byFrom.get(oldest)?.size ?? 0;
          this.dropFrom(oldest);
        }
      }
      this.clientFroms.add(record.from);
    } else this.relayVersion++;
    let inner = this.byFrom.get(record.from);
    if (!inner) {
      inner = new Map();
      this.byFrom.set(record.from, inner);
    }
    if (!inner.has(record.to)) this.count++;
    inner.set(record.to, record);
  }
}

/** How {@link foldSample} weighs a report against the figure it updates. */
export interface FoldRules {
  /** Figures older than this are replaced, not folded into, ms. */
  readonly staleMs: number;
  /** Samples at which a report weighs half. */
  readonly smoothingSamples: number;
  /** The old figure's weight halves every this many ms. */
  readonly halfLifeMs: number;
}

/**
 * One report folded into `previous` (the exponentially weighted rule of the module
 * comment): the new record for (from, to), or undefined when the report has no samples.
 */
export function foldSample(nowMs: number, previous: MeasurementRecord | undefined, from: string, to: string, sample: PathSample, rules: FoldRules): MeasurementRecord | undefined {
  if (!(sample.samples > 0)) return undefined;
  if (!previous || nowMs - previous.updatedAtMs >= rules.staleMs) {
    return { from, to, rttMs: sample.rttMs, jitterMs: sample.jitterMs, lossFraction: sample.lossFraction, samples: Math.min(sample.samples, MEASUREMENT_SAMPLES_MAX), reports: 1, updatedAtMs: nowMs };
  }
  const ageMs = Math.max(0, nowMs - previous.updatedAtMs);
  const bySamples = sample.samples / (sample.samples + rules.smoothingSamples);
  const byAge = 1 - 2 ** (-ageMs / rules.halfLifeMs);
  const w = Math.max(bySamples, byAge);
  return {
    from,
    to,
    rttMs: previous.rttMs + w * (sample.rttMs - previous.rttMs),
    jitterMs: previous.jitterMs + w * (sample.jitterMs - previous.jitterMs),
    lossFraction: previous.lossFraction + w * (sample.lossFraction - previous.lossFraction),
    samples: Math.min(previous.samples + sample.samples, MEASUREMENT_SAMPLES_MAX),
    reports: previous.reports + 1,
    updatedAtMs: Math.max(nowMs, previous.updatedAtMs),
  };
}
