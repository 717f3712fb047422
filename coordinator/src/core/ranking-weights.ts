/**
 * The ranking's weights (coordinator `ranking:` config), in a leaf file so the ranking
 * and the per-origin view it keeps (origin-view.ts) both use them without importing
 * each other.
 */

/** Ranking weights; defaults in constants.ts. */
export interface RankingWeights {
  /** Ms of cost per 1 % of path loss. Default `LOSS_PENALTY_MS_PER_PERCENT_DEFAULT` (constants.ts). */
  readonly lossPenaltyMsPerPercent: number;
  /** Cost per ms of path jitter. Default `JITTER_WEIGHT_DEFAULT` (constants.ts). */
  readonly jitterWeight: number;
  /** Load fraction where the load penalty starts. Default `LOAD_KNEE_FRACTION_DEFAULT` (constants.ts). */
  readonly loadKneeFraction: number;
  /** Load penalty at full load, ms. Default `LOAD_PENALTY_MS_AT_FULL_DEFAULT` (constants.ts). */
  readonly loadPenaltyMsAtFull: number;
  /** Cost of an extra relay hop, ms. Default `HOP_PENALTY_MS_DEFAULT` (constants.ts). */
  readonly hopPenaltyMs: number;
  /** Least gain for a two-hop route over its entry's direct route, ms. Default `TWO_HOP_GAIN_MS_MIN_DEFAULT` (constants.ts). */
  readonly twoHopGainMsMin: number;
}
