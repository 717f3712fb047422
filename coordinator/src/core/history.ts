/**
 * Per-relay time series for the dashboard's graphs: RTT, jitter and loss sampled at
 * a fixed interval into fixed-size rings (no allocation per sample once a relay's
 * ring exists). Sans-IO.
 */
import { HISTORY_POINTS } from './constants.js';
import type { PathFigures } from './measurements.js';
import type { RelaySeries } from '../../../proto/src/api/contract.js';
export type { RelaySeries };

class Ring {
  readonly t = new Float64Array(HISTORY_POINTS);
  readonly rtt = new Float64Array(HISTORY_POINTS);
  readonly jitter = new Float64Array(HISTORY_POINTS);
  readonly loss = new Float64Array(HISTORY_POINTS);
  next = 0;
  length = 0;
}

/** Rings of {@link HISTORY_POINTS} samples per relay. */
export class RelayHistory {
  private readonly rings = new Map<string, Ring>();

  /** Appends a sample for `relayId` (`figures` undefined → a gap). */
  sample(nowMs: number, relayId: string, figures: PathFigures | undefined): void {
    let ring = this.rings.get(relayId);
    if (!ring) {
      ring = new Ring();
      this.rings.set(relayId, ring);
    }
    const i = ring.next;
    ring.t[i] = nowMs;
    ring.rtt[i] = figures ? figures.rttMs : Number.NaN;
    ring.jitter[i] = figures ? figures.jitterMs : Number.NaN;
    ring.loss[i] = figures ? figures.lossFraction : Number.NaN;
    ring.next = (i + 1) % HISTORY_POINTS;
    if (ring.length < HISTORY_POINTS) ring.length++;
  }

  /** The series of `relayId`, oldest first (empty when never sampled). */
  series(relayId: string): RelaySeries {
    const ring = this.rings.get(relayId);
    const out: RelaySeries = { tMs: [], rttMs: [], jitterMs: [], lossFraction: [] };
    if (!ring) return out;
    const start = (ring.next - ring.length + HISTORY_POINTS) % HISTORY_POINTS;
    const nn = (x: number): number | null => (Number.isNaN(x) ? null : Math.round(x * 1000) / 1000);
    for (let k = 0; k < ring.length; k++) {
      const i = (start + k) % HISTORY_POINTS;
      out.tMs.push(ring.t[i]!);
      out.rttMs.push(nn(ring.rtt[i]!));
      out.jitterMs.push(nn(ring.jitter[i]!));
      out.lossFraction.push(ring.loss[i]! === ring.loss[i]! ? Math.round(ring.loss[i]! * 1e6) / 1e6 : null);
    }
    return out;
  }

  /** Drops a relay's ring. */
  forget(relayId: string): void {
    this.rings.delete(relayId);
  }
}
