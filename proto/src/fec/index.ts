/**
 * Forward error correction for tunnel traffic: a systematic Reed-Solomon codec over
 * GF(2^8) (WebAssembly SIMD with a pure TypeScript fallback), a sans-IO sender and
 * receiver with time-bounded groups, duplication and interleaving, and an adaptive
 * controller. See each module's comment; `slipstream bench fec` measures all of it.
 */
export { ReedSolomon, sharedReedSolomon, FEC_LENGTH_PREFIX_BYTES, FEC_MAX_PAYLOAD_BYTES, FEC_MAX_SHARDS, RECONSTRUCT_INCONSISTENT, RECONSTRUCT_INSUFFICIENT, type ReedSolomonInit } from './rs.js';
export { createKernel, JsKernel, WasmSimdKernel, type GfKernel, type KernelBackend } from './kernel.js';
export { gfInv, gfMul, GF_POLYNOMIAL } from './gf256.js';
export {
  FEC_COPIES_MAX,
  FEC_HOLD_MS_DEFAULT,
  FEC_HOLD_MS_MAX,
  FEC_INTERLEAVE_MAX,
  FEC_MAX_PAYLOAD_BYTES_DEFAULT,
  FEC_OFF,
  FEC_SPACING_MS_MAX,
  formatScheme,
  sameScheme,
  schemeOverhead,
  validateScheme,
  type FecScheme,
  type FecSchemeDuplicate,
  type FecSchemeOff,
  type FecSchemeRs,
} from './scheme.js';
export { FecSender, FecShardKind, setShardHeader, type FecSenderCounters, type FecSenderInit, type FecShardKindValue, type FecTransmit } from './sender.js';
export {
  FecReceiver,
  FEC_GROUP_TIMEOUT_MS_DEFAULT,
  FEC_STATS_INTERVAL_MS_DEFAULT,
  type FecIntervalStats,
  type FecReceiverEvent,
  type FecReceiverInit,
  type FecReceiverTotals,
} from './receiver.js';
export {
  FecController,
  FEC_LATENCY_BUDGET_MS_DEFAULT,
  FEC_OVERHEAD_MAX_DEFAULT,
  FEC_TARGET_RESIDUAL_DEFAULT,
  type FecControllerInit,
  type FecDecision,
} from './controller.js';
export { bernoulliResidual, fitGilbert, residualDuplicate, residualReedSolomon, stationaryLoss, type GilbertFit } from './model.js';
export { SequenceTracker, SequenceVerdict, type SequenceVerdictValue } from './sequence.js';
