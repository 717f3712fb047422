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
 * {@link connect} is the browser driver of that core, with the Node SDK's shape: candidates
 * from the coordinator, one peer connection per relay to a few relays through their
 * signaling endpoints ({@link WebRtcTransport}, an unreliable DataChannel each), the
 * core's probes over them, the best path with the same hysteresis, a warm backup and
 * failover to it. A page may also drive a `TunnelClient` itself over any
 * {@link TunnelFrameTransport} (see `transport.ts` for the contract).
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
export { BROWSER_RELAYS_MAX_DEFAULT, BrowserConnection, connect, type BrowserConnectionEvents, type BrowserConnectOptions, type TicketGrant } from './connect.js';
export { browserCandidatesFromRoute, type BrowserCandidate } from './coordinator-fetch.js';
export { Emitter } from './emitter.js';
export type { PeerConnectionFactory, RtcConfigurationLike, RtcDataChannelLike, RtcPeerConnectionLike } from './rtc-types.js';
export { CONTROL_CHANNEL_LABEL, TUNNEL_CHANNEL_LABEL, WebRtcTransport, type SignalingRefusal, type WebRtcTransportInit } from './webrtc-transport.js';
