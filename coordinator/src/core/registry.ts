/**
 * The relay registry with leases: relays register (who they are, where, what they
 * offer), then heartbeat with their load. A relay whose last heartbeat is older than
 * the lease is unhealthy and is never handed to clients; a draining relay stays
 * listed but gets no new clients; an unhealthy relay is forgotten after `retentionMs`.
 *
 * Sans-IO, str0m style: inputs `register`/`heartbeat`/`apply` (records from other
 * replicas) and `handleTimeout(nowMs)`; outputs `pollEvent()` (health transitions)
 * and `pollTimeout()` (when to call `handleTimeout` next). After each input, drain
 * `pollEvent()`. Health at a given instant never depends on sweeps having run:
 * {@link Registry.health} computes it from the record and `nowMs`.
 */
import { LEASE_MS_DEFAULT, RELAY_RETENTION_MS_DEFAULT } from './constants.js';
import { relayInfoOf, type RelayHealth, type RelayInfo, type RelayLoad } from '../../../proto/src/api/contract.js';
export type { RelayHealth, RelayInfo, RelayLoad };

/** A relay as the registry (and the store) holds it. */
export interface RelayRecord extends RelayInfo {
  /** Latest load. */
  readonly load: RelayLoad;
  /** When it (last) registered, ms. */
  readonly registeredAtMs: number;
  /** When its latest heartbeat (or registration) arrived, ms. */
  readonly lastHeartbeatAtMs: number;
  /**
   * Which fleet secret the relay last authenticated with: a short fingerprint the
   * service computes (never the secret), shared through the store so every replica can
   * tell relays still on an old secret during a rotation. Absent when not known.
   */
  readonly fleetSecretId?: string;
}

/** A record plus values derived once per update for the ranking hot loop. */
export interface RelayEntry {
  readonly record: RelayRecord;
  /** Measurement node name (`relay:<id>`). */
  readonly nodeName: string;
  /** Latitude in radians. */
  readonly latitudeRad: number;
  /** Longitude in radians. */
  readonly longitudeRad: number;
  /** cos(latitude). */
  readonly cosLatitude: number;
  /**
   * The relay's position as a unit vector (x toward 0°N 0°E, z toward the north pole):
   * the ranking bounds great-circle distances from below by the chord between two such
   * vectors (no trigonometry per relay) and skips relays the bound rules out.
   */
  readonly unitX: number;
  /** See {@link unitX}. */
  readonly unitY: number;
  /** See {@link unitX}. */
  readonly unitZ: number;
}

/**
 * The figures the ranking reads for every relay on every route, in arrays indexed like
 * {@link Registry.entryArray} (contiguous, so a 500-relay pass does not chase 1,500
 * objects scattered over the heap): updated in place on each heartbeat, rebuilt with
 * the array. Read-only for the caller.
 */
export interface RelayFigures {
  /** Latest heartbeat (or registration), ms. */
  readonly lastHeartbeatAtMs: Float64Array;
  /** `load.sessions`. */
  readonly sessions: Float64Array;
  /** `capacitySessions`. */
  readonly capacitySessions: Float64Array;
  /** `load.cpuFraction`. */
  readonly cpuFraction: Float64Array;
  /** 1 when `load.draining`, else 0. */
  readonly draining: Uint8Array;
  /** {@link RelayEntry.unitX}. */
  readonly unitX: Float64Array;
  /** {@link RelayEntry.unitY}. */
  readonly unitY: Float64Array;
  /** {@link RelayEntry.unitZ}. */
  readonly unitZ: Float64Array;
}

/** A health transition, for logs, metrics and the dashboard. */
export interface RegistryEvent {
  readonly type: 'relayUp' | 'relayDraining' | 'relayDown' | 'relayForgotten';
  readonly relayId: string;
  /** When the registry noticed, ms. */
  readonly atMs: number;
}

/** Options of a {@link Registry}. */
export interface RegistryInit {
  /** Lease, ms. Default {@link LEASE_MS_DEFAULT}. */
  leaseMs?: number;
  /** An unhealthy relay is forgotten this long after its last heartbeat, ms. Default {@link RELAY_RETENTION_MS_DEFAULT}. */
  retentionMs?: number;
}

/** Least time between two lease sweeps, ms. */
export const REGISTRY_SWEEP_INTERVAL_MS = 250;

const NO_LOAD: RelayLoad = Object.freeze({ sessions: 0, packetsPerSecond: 0, cpuFraction: 0, draining: false });

/** Relays and their leases. */
export class Registry {
  /** Lease, ms. */
  readonly leaseMs: number;
  /** Retention of unhealthy relays, ms. */
  readonly retentionMs: number;
  private readonly relays = new Map<string, RelayRecord>();
  private readonly entries = new Map<string, RelayEntry>();
  /** Health last reported through events, per relay. */
  private readonly reported = new Map<string, RelayHealth>();
  private readonly events: RegistryEvent[] = [];
  private nextSweepMs: number | undefined = undefined;
  private membership = 0;
  /** {@link entryArray}'s array (undefined: to rebuild) and each relay's index in it. */
  private array: RelayEntry[] | undefined = undefined;
  /** {@link figures}, built with {@link array}. */
  private arrayFigures: RelayFigures | undefined = undefined;
  private readonly arrayIndex = new Map<string, number>();
  private lastSweepMs = Number.NEGATIVE_INFINITY;

  constructor(init: RegistryInit = {}) {
    this.leaseMs = init.leaseMs ?? LEASE_MS_DEFAULT;
    this.retentionMs = Math.max(init.retentionMs ?? RELAY_RETENTION_MS_DEFAULT, this.leaseMs);
  }

  /** Relays held (any health). */
  get size(): number {
    return this.relays.size;
  }

  /**
   * Registers (or re-registers) a relay; counts as a heartbeat. Keeps the last load when
   * re-registering. `fleetSecretId`: see {@link RelayRecord.fleetSecretId}.
   */
  register(nowMs: number, info: RelayInfo, fleetSecretId?: string): RelayRecord {
    const previous = this.relays.get(info.relayId);
    const record: RelayRecord = {
      ...relayInfoOf(info),
      load: previous?.load ?? NO_LOAD,
      registeredAtMs: nowMs,
      lastHeartbeatAtMs: nowMs,
      ...(fleetSecretId !== undefined ? { fleetSecretId } : {}),
    };
    this.put(nowMs, record);
    return record;
  }

  /**
   * Records a heartbeat. Returns undefined for a relay that is not registered (it must
   * register first). `fleetSecretId` (when given) replaces the recorded one.
   */
  heartbeat(nowMs: number, relayId: string, load: RelayLoad, fleetSecretId?: string): RelayRecord | undefined {
    const previous = this.relays.get(relayId);
    if (!previous) return undefined;
    const record: RelayRecord = { ...previous, load: { ...load }, lastHeartbeatAtMs: Math.max(nowMs, previous.lastHeartbeatAtMs), ...(fleetSecretId !== undefined ? { fleetSecretId } : {}) };
    this.put(nowMs, record);
    return record;
  }

  /** Takes a record from elsewhere (another replica, the store) if it is newer. Returns whether it was taken. */
  apply(nowMs: number, record: RelayRecord): boolean {
    const previous = this.relays.get(record.relayId);
    if (previous && previous.lastHeartbeatAtMs >= record.lastHeartbeatAtMs && previous.registeredAtMs >= record.registeredAtMs) return false;
    if (nowMs - record.lastHeartbeatAtMs >= this.retentionMs) return false;
    this.put(nowMs, record);
    return true;
  }

  /** A relay's record (any health), or undefined. */
  get(relayId: string): RelayRecord | undefined {
    return this.relays.get(relayId);
  }

  /** Every relay held, any health. */
  list(): IterableIterator<RelayRecord> {
    return this.relays.values();
  }

  /** Every relay with its derived values (the ranking hot loop). */
  listEntries(): IterableIterator<RelayEntry> {
    return this.entries.values();
  }

  /**
   * Changes when a relay is added, forgotten, moves or changes region (not on
   * heartbeats): the positions in {@link entryArray} and each relay's coordinates and
   * region stay the same while it does not.
   */
  get membershipVersion(): number {
    return this.membership;
  }

  /**
   * Every relay with its derived values as an array, in {@link listEntries} order; a
   * relay keeps its index while {@link membershipVersion} does not change (its entry
   * object is replaced in place on each heartbeat). Read-only for the caller.
   */
  entryArray(): readonly RelayEntry[] {
    if (this.array === undefined) {
      const array = (this.array = [...this.entries.values()]);
      const n = array.length;
      const figures: RelayFigures = (this.arrayFigures = {
        lastHeartbeatAtMs: new Float64Array(n),
        sessions: new Float64Array(n),
        capacitySessions: new Float64Array(n),
        cpuFraction: new Float64Array(n),
        draining: new Uint8Array(n),
        unitX: new Float64Array(n),
        unitY: new Float64Array(n),
        unitZ: new Float64Array(n),
      });
      this.arrayIndex.clear();
      array.forEach((e, i) => {
        this.arrayIndex.set(e.record.relayId, i);
        figures.unitX[i] = e.unitX;
        figures.unitY[i] = e.unitY;
        figures.unitZ[i] = e.unitZ;
        setFigures(figures, i, e.record);
      });
    }
    return this.array;
  }

  /** The ranking's per-relay figures, indexed like {@link entryArray} (see {@link RelayFigures}). */
  figures(): RelayFigures {
    this.entryArray();
    return this.arrayFigures!;
  }

  /** Health of `record` at `nowMs`: unhealthy once `nowMs − lastHeartbeatAtMs ≥ leaseMs`. */
  health(nowMs: number, record: RelayRecord): RelayHealth {
    if (nowMs - record.lastHeartbeatAtMs >= this.leaseMs) return 'unhealthy';
    return record.load.draining ? 'draining' : 'healthy';
  }

  /** Sweeps leases: emits `relayDown` for lapsed leases, forgets relays past retention. */
  handleTimeout(nowMs: number): void {
    this.lastSweepMs = nowMs;
    let next = Number.POSITIVE_INFINITY;
    for (const [relayId, record] of this.relays) {
      const silentMs = nowMs - record.lastHeartbeatAtMs;
      if (silentMs >= this.retentionMs) {
        this.relays.delete(relayId);
        this.entries.delete(relayId);
        this.membershipChanged();
        this.reported.delete(relayId);
        this.events.push({ type: 'relayForgotten', relayId, atMs: nowMs });
        continue;
      }
      this.noteHealth(nowMs, record);
      const due = silentMs < this.leaseMs ? record.lastHeartbeatAtMs + this.leaseMs : record.lastHeartbeatAtMs + this.retentionMs;
      if (due < next) next = due;
    }
    this.nextSweepMs = Number.isFinite(next) ? next : undefined;
  }

  /**
   * When {@link handleTimeout} should run next, ms; undefined with no relays. Sweeps
   * are at least {@link REGISTRY_SWEEP_INTERVAL_MS} apart (with hundreds of relays some
   * lease is always about to lapse), so events may trail a lapse by that much; answers
   * never do, since {@link health} is computed at the instant asked.
   */
  pollTimeout(): number | undefined {
    return this.nextSweepMs === undefined ? undefined : Math.max(this.nextSweepMs, this.lastSweepMs + REGISTRY_SWEEP_INTERVAL_MS);
  }

  /** The next health transition, or undefined. */
  pollEvent(): RegistryEvent | undefined {
    return this.events.shift();
  }

  private put(nowMs: number, record: RelayRecord): void {
    this.relays.set(record.relayId, record);
    const previous = this.entries.get(record.relayId);
    const moved = !previous || previous.record.latitude !== record.latitude || previous.record.longitude !== record.longitude;
    if (moved || previous.record.region !== record.region) this.membershipChanged();
    if (moved) {
      const latitudeRad = (record.latitude * Math.PI) / 180;
      const longitudeRad = (record.longitude * Math.PI) / 180;
      const cosLatitude = Math.cos(latitudeRad);
      this.entries.set(record.relayId, {
        record,
        nodeName: previous?.nodeName ?? `relay:${record.relayId}`,
        latitudeRad,
        longitudeRad,
        cosLatitude,
        unitX: cosLatitude * Math.cos(longitudeRad),
        unitY: cosLatitude * Math.sin(longitudeRad),
        unitZ: Math.sin(latitudeRad),
      });
    } else {
      const entry: RelayEntry = { ...previous, record };
      this.entries.set(record.relayId, entry);
      if (this.array !== undefined) {
        const i = this.arrayIndex.get(record.relayId)!;
        this.array[i] = entry;
        setFigures(this.arrayFigures!, i, record);
      }
    }
    this.noteHealth(nowMs, record);
    const due = nowMs - record.lastHeartbeatAtMs < this.leaseMs ? record.lastHeartbeatAtMs + this.leaseMs : record.lastHeartbeatAtMs + this.retentionMs;
    if (this.nextSweepMs === undefined || due < this.nextSweepMs) this.nextSweepMs = due;
  }

  private membershipChanged(): void {
    this.membership++;
    this.array = undefined;
    this.arrayFigures = undefined;
  }

  private noteHealth(nowMs: number, record: RelayRecord): void {
    const health = this.health(nowMs, record);
    if (this.reported.get(record.relayId) === health) return;
    this.reported.set(record.relayId, health);
    const type = health === 'healthy' ? 'relayUp' : health === 'draining' ? 'relayDraining' : 'relayDown';
    this.events.push({ type, relayId: record.relayId, atMs: nowMs });
  }
}

function setFigures(f: RelayFigures, i: number, record: RelayRecord): void {
  f.lastHeartbeatAtMs[i] = record.lastHeartbeatAtMs;
  f.sessions[i] = record.load.sessions;
  f.capacitySessions[i] = record.capacitySessions;
  f.cpuFraction[i] = record.load.cpuFraction;
  f.draining[i] = record.load.draining ? 1 : 0;
}
