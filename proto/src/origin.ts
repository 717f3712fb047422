/**
 * `slipstream/origin`: what a game server (the origin behind the relays) needs to
 * learn the player's real address. A relay rule with `proxyProtocol: v2` or `spp`
 * (relay/README.md) puts a PROXY protocol v2 or Simple Proxy Protocol header in front
 * of each UDP datagram (PROXY v2 also once at the start of a TCP connection); {@link parseProxyHeader} detects
 * either, never throws, and says where the game's payload starts. No dependencies and
 * no Node API: usable from any JavaScript runtime.
 *
 * ```ts
 * import { parseProxyHeader } from 'slipstream/origin';
 * socket.on('message', (msg) => {
 *   const parsed = parseProxyHeader(msg);
 *   if (!parsed.ok || !parsed.header.proxied) return;  // not from a relay, or its health check
 *   game.onPacket(parsed.header.source, msg.subarray(parsed.header.headerBytes));
 * });
 * ```
 */
export {
  encodeProxyV2,
  encodeProxyV2Local,
  encodeSpp,
  parseProxyHeader,
  parseProxyV2,
  parseSpp,
  PROXY_V2_BYTES_MAX,
  PROXY_V2_IPV4_BYTES,
  PROXY_V2_IPV6_BYTES,
  PROXY_V2_SIGNATURE,
  SPP_BYTES,
  SPP_MAGIC,
  type ProxyFormat,
  type ProxyHeader,
  type ProxyParseFailure,
  type ProxyParseResult,
} from './proxy-protocol.js';
export type { Endpoint } from './transport.js';
