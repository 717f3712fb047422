/**
 * The sans-IO client core as both SDK entries publish it (`slipstream/sdk` for Node,
 * `slipstream/browser`): the {@link TunnelClient} and the types of its inputs and
 * outputs, listed once so the two entries cannot drift apart.
 */
export {
  TunnelClient,
  type ClientTransmit,
  type MacJob,
  type PathInfo,
  type PathReport,
  type TunnelCandidate,
  type TunnelClientEvent,
  type TunnelClientInit,
  type TunnelStats,
} from './tunnel-client.js';
