/**
 * Analytic residual-loss model the adaptive controller uses to compare schemes.
 *
 * The path is fitted with a two-state Gilbert-Elliott chain per wire packet (lossBad 1,
 * lossGood 0, as netem's `gemodel p r`): from a measured loss rate L and mean burst B,
 * r = 1/B (bad→good) and p = r·L/(1−L) (good→bad). B = 1/(1−L) recovers Bernoulli loss.
 * The chain's correlation after d packets is λ^d with λ = 1 − p − r, which is why
 * spacing copies or interleaving groups d packets apart helps against bursts.
 */

/** A Gilbert-Elliott chain: per-packet transition probabilities. */
export interface GilbertFit {
  /** Good → bad transition probability per packet. */
  readonly p: number;
  /** Bad → good transition probability per packet (1 / mean burst). */
  readonly r: number;
}

/** Highest loss rate the fit accepts; above it the chain degenerates (always bad). */
const LOSS_RATE_FIT_MAX = 0.95;

/**
 * Fits the chain to a loss rate (fraction) and mean burst length (packets, ≥ 1).
 * Bursts shorter than Bernoulli's own 1/(1−L) are raised to it (a chain with lossBad 1
 * cannot produce them).
 */
export function fitGilbert(lossRate: number, meanBurstPackets: number): GilbertFit {
  const loss = Math.min(Math.max(lossRate, 0), LOSS_RATE_FIT_MAX);
  const burst = Math.max(meanBurstPackets, 1, 1 / (1 - loss));
  const r = 1 / burst;
  return { p: (r * loss) / (1 - loss), r };
}

/** P(bad at step d | bad at step 0). */
function badAfterBad(fit: GilbertFit, d: number): number {
  const pi = fit.p / (fit.p + fit.r);
  return pi + (1 - pi) * Math.pow(1 - fit.p - fit.r, d);
}

/** P(bad at step d | good at step 0). */
function badAfterGood(fit: GilbertFit, d: number): number {
  const pi = fit.p / (fit.p + fit.r);
  return pi * (1 - Math.pow(1 - fit.p - fit.r, d));
}

/** Stationary loss rate of the chain. */
export function stationaryLoss(fit: GilbertFit): number {
  return fit.p + fit.r === 0 ? 0 : fit.p / (fit.p + fit.r);
}

/**
 * Residual loss (fraction of packets never delivered) when each packet is sent
 * 1 + `copies` times, consecutive copies `distancePackets` wire packets apart: all
 * copies must fall in the bad state.
 */
export function residualDuplicate(fit: GilbertFit, copies: number, distancePackets: number): number {
  return stationaryLoss(fit) * Math.pow(badAfterBad(fit, Math.max(1, distancePackets)), copies);
}

const dpMass = new Float64Array(512);
const dpLost = new Float64Array(512);
const dpNextMass = new Float64Array(512);
const dpNextLost = new Float64Array(512);

/**
 * Residual loss of a systematic MDS (k, r) code whose k + r shards sit `spacingPackets`
 * wire packets apart (the interleave depth): the expected number of data shards lost in
 * groups that lost more than r shards, divided by k. Exact for the fitted chain, by
 * dynamic programming over (shards lost so far, chain state). With spacing → ∞ this is
 * the Bernoulli bound p·P[Bin(k+r−1, p) ≥ r].
 */
export function residualReedSolomon(fit: GilbertFit, k: number, r: number, spacingPackets: number): number {
  const n = k + r;
  const cap = r + 1;
  const d = Math.max(1, spacingPackets);
  const bb = badAfterBad(fit, d);
  const gb = badAfterGood(fit, d);
  const pi = stationaryLoss(fit);
  // State index: lostCount * 2 + (bad ? 1 : 0), lostCount capped at r + 1.
  const states = (cap + 1) * 2;
  dpMass.fill(0, 0, states);
  dpLost.fill(0, 0, states);
  dpMass[0] = 1 - pi;
  dpMass[1 * 2 + 1] = pi;
  dpLost[1 * 2 + 1] = pi; // shard 0 is data
  for (let i = 1; i < n; i++) {
    const isData = i < k ? 1 : 0;
    dpNextMass.fill(0, 0, states);
    dpNextLost.fill(0, 0, states);
    for (let c = 0; c <= cap; c++) {
      for (let s = 0; s < 2; s++) {
        const mass = dpMass[c * 2 + s];
        if (mass === 0) continue;
        const lost = dpLost[c * 2 + s];
        const toBad = s === 1 ? bb : gb;
        const toGood = 1 - toBad;
        dpNextMass[c * 2] += mass * toGood;
        dpNextLost[c * 2] += lost * toGood;
        const c2 = Math.min(c + 1, cap);
        dpNextMass[c2 * 2 + 1] += mass * toBad;
        dpNextLost[c2 * 2 + 1] += (lost + isData * mass) * toBad;
      }
    }
    dpMass.set(dpNextMass.subarray(0, states));
    dpLost.set(dpNextLost.subarray(0, states));
  }
  return (dpLost[cap * 2] + dpLost[cap * 2 + 1]) / k;
}

/** The systematic MDS bound under Bernoulli loss p: p·P[Bin(k+r−1, p) ≥ r]. */
export function bernoulliResidual(k: number, r: number, p: number): number {
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  const n = k + r - 1;
  let below = 0;
  let term = Math.pow(1 - p, n);
  for (let i = 0; i < r; i++) {
    below += term;
    term *= ((n - i) / (i + 1)) * (p / (1 - p));
  }
  return p * Math.max(0, 1 - below);
}
