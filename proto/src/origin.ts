/**
 * `slipstream/origin`: what a game server (the origin behind the relays) needs to
 * learn the player's real address. A relay rule with `proxyProtocol: v2` or `spp`
 * (relay/README.md) puts a PROXY protocol v2 or Simple Proxy Protocol header in front
 * of each UDP datagram (PROXY v2 also once at the start of a TCP connection); so does
 * a tunnel with `tunnel.proxyProtocol` (SDK and browser players), whose PROXY v2 header
 * also carries the ticket's player id (TLV {@link PROXY_V2_TLV_PLAYER_ID}, 0xE0).
 * {@link parseProxyHeader} detects either, never throws, and says where the game's
 * payload starts; {@link parsePlayerDatagram} gives `{address, port, playerId, payload}`.
 * No dependencies and no Node API: usable from any JavaScript runtime.
 *
 * ```ts
 * import { parseProxyHeader } from 'slipstream/origin';
 * socket.on('message', (msg) => {
 *   const parsed = parseProxyHeader(msg);
 *   if (!parsed.ok || !parsed.header.proxied) return;  // not from a relay, or its health check
 *  *   // source is undefined when the relay did not know the address (a PROXY v2 UNSPEC header)
 *   game.onPacket(parsed.header.source, parsed.header.playerId, msg.subarray(parsed.header.headerBytes));
 * });
 * ```
 */
export {
  encodeProxyV2,
  encodeProxyV2Local,
  encodeProxyV2Unspec,
  encodeSpp,
  parsePlayerDatagram,
  parseProxyHeader,
  parseProxyV2,
  parseSpp,
  PROXY_V2_BYTES_MAX,
  PROXY_V2_IPV4_BYTES,
  PROXY_V2_IPV6_BYTES,
  PROXY_V2_SIGNATURE,
  PROXY_V2_TLV_PLAYER_ID,
  PLAYER_ID_CHARS_MAX,
  PLAYER_ID_PATTERN,
  SPP_BYTES,
  SPP_MAGIC,
  type ProxyFormat,
  type ProxyHeader,
  type ProxyParseFailure,
  type ProxyParseResult,
  type ProxyV2Options,
  type PlayerDatagram,
  type PlayerDatagramFailure,
} from './proxy-protocol.js';
export type { Endpoint } from './transport.js';
