/**
 * `slipstream/browser`: the browser-safe part of the client SDK, ES modules with no
 * Node API (test/browser-entry.test.ts walks this entry's imports and fails on any
 * `node:*` module, Node builtin or `Buffer`; its one dependency is msgpackr, for
 * control messages). It is the same core the Node SDK runs: the sans-IO
 * {@link TunnelClient} (probing, selection with hysteresis, warm backup, failover, FEC
 * both ways), the {@link RelaySelector}, the FEC codecs, and a WebCrypto HMAC for the
 * session MACs ({@link webCryptoHmacSha256}: asynchronous, so the client queues MAC
 * jobs that {@link serveMacJobs} computes and hands back).
 *
 * What is not here yet: the WebRTC DataChannel transport and a browser `connect()`
 * (issue #15 items 1–2, built with the relay's WebRTC entry). They plug in at
 * {@link TunnelFrameTransport} (see `transport.ts` for the contract); until then a page
 * can drive a `TunnelClient` over any transport that meets it.
 */
export * from '../core/public.js';
export { RelaySelector, type RelayCandidate, type RelaySelectorInit, type SelectionEvent, type SelectionReason } from '../core/relay-selector.js';
export {
  createKernel,
  FecController,
  FecReceiver,
  FecSender,
  ReedSolomon,
  SlidingWindowDecoder,
  SlidingWindowEncoder,
  type FecControllerInit,
  type FecReceiverInit,
  type FecScheme,
  type FecSenderInit,
  type SlidingWindowParameters,
} from '../../../proto/src/fec/index.js';
export { bytesEqualConstantTime, type HmacSha256 } from '../../../proto/src/session-mac.js';
export { ErrorCode, isTicketRefusal, SlipstreamError, type ErrorCodeValue } from '../../../proto/src/errors.js';
export type { Endpoint } from '../../../proto/src/transport.js';
export { serveMacJobs, webCryptoHmacSha256, type MacJobSource, type SubtleCryptoHmac } from './webcrypto-hmac.js';
export type { TunnelFrameTransport } from './transport.js';
