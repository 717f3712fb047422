/**
 * Forward error correction for tunnel traffic: a systematic Reed-Solomon codec over
 * GF(2^8) (WebAssembly SIMD with a pure TypeScript fallback), a sans-IO sender and
 * receiver with time-bounded groups, duplication and interleaving, and an adaptive
 * controller. See each module's comment; `slipstream bench fec` measures all of it.
 * Also a sliding-window random linear code (`sliding-window-*.ts`) with its own sans-IO
 * encoder and decoder, carried by the sender and receiver in mode `sw` (the tunnel's
 * default), whose repairs the controller's `sw` family chooses
 * (`sliding-window-model.ts` rates each choice).
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
  type FecSchemeSlidingWindow,
  FEC_SLIDING_WINDOW_MARKER,
} from './scheme.js';
export { FecSender, FecShardKind, setShardHeader, type FecSenderCounters, type FecSenderInit, type FecShardKindValue, type FecTransmit } from './sender.js';
export {
  FecReceiver,
  FEC_GROUP_TIMEOUT_MS_DEFAULT,
  FEC_STATS_INTERVAL_MS_DEFAULT,
  slidingWindowReceiverSettings,
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
  FEC_SMALL_FLOW_EXTRA_BYTES_PER_SECOND_DEFAULT,
  FEC_SW_LATE_FRACTION_MAX,
  FEC_SW_LATENCY_BUDGET_MS_DEFAULT,
  FEC_SW_REDUNDANCY_PER_LOSS,
  FEC_SW_TAIL_WINDOW_MS_MIN,
  FEC_SW_TARGET_RESIDUAL_DEFAULT,
  FEC_SW_WINDOW_PACKETS_MAX,
  type FecControllerInit,
  type FecDecision,
  type FecFamily,
} from './controller.js';
export { slidingWindowOutcome, type SlidingWindowModelInput, type SlidingWindowOutcome } from './sliding-window-model.js';
export { bernoulliResidual, fitGilbert, residualDuplicate, residualReedSolomon, stationaryLoss, type GilbertFit } from './model.js';
export { SequenceTracker, SequenceVerdict, type SequenceVerdictValue } from './sequence.js';
export {
  SLIDING_WINDOW_PACKETS_MAX,
  SlidingWindowCodec,
  sharedSlidingWindowCodec,
  slidingWindowCoefficient,
  sourceVectorPayloadLength,
  writeSourceVector,
  type SlidingWindowCodecInit,
} from './sliding-window-code.js';
export {
  SLIDING_WINDOW_MS_DEFAULT,
  SLIDING_WINDOW_MS_MAX,
  SLIDING_WINDOW_PACKETS_DEFAULT,
  SLIDING_WINDOW_PARAMETERS_DEFAULT,
  SLIDING_WINDOW_REPAIR_SPACING_MS_DEFAULT,
  SLIDING_WINDOW_REPAIR_SPACING_MS_MAX,
  SLIDING_WINDOW_REPAIRS_PER_SOURCE_DEFAULT,
  SLIDING_WINDOW_REPAIRS_PER_SOURCE_MAX,
  SlidingWindowEncoder,
  SlidingWindowShardKind,
  validateSlidingWindowParameters,
  type SlidingWindowEncoderCounters,
  type SlidingWindowEncoderInit,
  type SlidingWindowParameters,
  type SlidingWindowShardKindValue,
  type SlidingWindowTransmit,
} from './sliding-window-encoder.js';
export {
  SLIDING_WINDOW_DECODER_PACKETS_DEFAULT,
  SlidingWindowDecoder,
  type SlidingWindowDecoderInit,
  type SlidingWindowDecoderTotals,
  type SlidingWindowDelivery,
} from './sliding-window-decoder.js';
