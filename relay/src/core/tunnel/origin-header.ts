/**
 * What a tunnel session's origin learns about its player (`tunnel.proxyProtocol`, or a
 * named origin's own `proxyProtocol`): a
 * PROXY v2 or SPP header in front of every datagram this relay sends to the origin, as
 * L4 UDP rules do (the origin's replies carry none). Built once per session and again
 * only when the player's address changes (a validated migration) or a reload changes
 * the mode, so the packet path pays one comparison.
 *
 * The address in it is the player's as this relay sees it:
 * - a UDP session: the client's source address and port (after a migration, the new one);
 * - a WebRTC session: the peer connection's remote ICE address, which the driver gives
 *   ({@link TransportRemotes}); its endpoint's synthetic port (≥ TRANSPORT_PORT_BASE)
 *   is never written. Without a remote address (the driver gave none): no address;
 * - an exit relay's session (the ticket names this relay as exit): the address the
 *   session was opened from, unless that is a fleet relay (an entry forwarding it): then
 *   no address — an entry's address is not the player's.
 * "No address" is PROXY v2 with family UNSPEC (the player id TLV only) and, in SPP,
 * which cannot say so, `::` port 0. The player id (the ticket's `playerId`) is a PROXY
 * v2 TLV of type 0xE0 (`PROXY_V2_TLV_PLAYER_ID`); SPP has no room for it.
 */
import { encodeProxyV2, encodeProxyV2Unspec, encodeSpp, writeIpAs16 } from '../../../../proto/src/proxy-protocol.js';
import type { Endpoint } from '../../../../proto/src/transport.js';
import type { TunnelSpec } from '../config-types.js';
import { TRANSPORT_PORT_BASE } from '../constants.js';
import type { TunnelSession } from './state.js';

/** The real remote addresses of driver transports (WebRTC peer connections), by their synthetic endpoint port. */
export type TransportRemotes = ReadonlyMap<number, Endpoint>;

/** SPP's stand-in for an unknown player address (it has no "unknown"). */
const SPP_UNKNOWN: Endpoint = { address: '::', port: 0 };
/** The relay's address when its configured one is not an IP literal. */
const UNSPECIFIED: Endpoint = { address: '0.0.0.0', port: 0 };
const IP_SCRATCH = new Uint8Array(16);

/**
 * The header for datagrams from `session` to its origin under `tunnel`, or undefined
 * (`none`). The mode is the session's ({@link originMode}); the header is cached on the
 * session (see the module comment).
 */
export function originHeader(session: TunnelSession, tunnel: TunnelSpec, remotes: TransportRemotes): Uint8Array | undefined {
  const mode = session.proxyProtocol;
  if (mode === 'none') return undefined;
  // Exit role: downstream follows the latest entry, so the player is who opened the session.
  const exitRole = session.paths !== undefined;
  const address = exitRole ? session.openedFromAddress : session.clientAddress;
  const port = exitRole ? session.openedFromPort : session.clientPort;
  if (session.originPrefixMode === mode && session.originPrefixAddress === address && session.originPrefixPort === port) return session.originPrefix;
  const player = address === undefined ? undefined : playerEndpoint(address, port, remotes);
  // The tunnel's listen address as configured (an IP literal; a config built in code that gives none says 0.0.0.0:0).
  const relay = ipEndpoint(tunnel.listenAddress, tunnel.listenPort) ?? UNSPECIFIED;
  const playerId = session.playerId === undefined ? {} : { playerId: session.playerId };
  session.originPrefix = mode === 'v2' ? (player === undefined ? encodeProxyV2Unspec(playerId) : encodeProxyV2('udp', player, relay, playerId)) : encodeSpp(player ?? SPP_UNKNOWN, relay);
  session.originPrefixMode = mode;
  session.originPrefixAddress = address;
  session.originPrefixPort = port;
  return session.originPrefix;
}

/** The header mode for a session to `origin` (a resolved ticket origin): the named origin's own, else the tunnel's. */
export function originMode(tunnel: TunnelSpec, origin: { readonly proxyProtocol?: 'none' | 'v2' | 'spp' }): 'none' | 'v2' | 'spp' {
  return origin.proxyProtocol ?? tunnel.proxyProtocol ?? 'none';
}

/**
 * The endpoint to write for a session whose client endpoint is (`address`, `port`):
 * itself for a UDP client, the real remote address for a driver transport, undefined
 * when that is unknown or not an IP literal and a port of 0–65535.
 */
export function playerEndpoint(address: string, port: number, remotes: TransportRemotes): Endpoint | undefined {
  const real = port >= TRANSPORT_PORT_BASE ? remotes.get(port) : { address, port };
  return real === undefined ? undefined : ipEndpoint(real.address, real.port);
}

/** `{address, port}` when it is an IP literal and a port of 0–65535 (what the encoders take without throwing), else undefined. */
function ipEndpoint(address: string, port: number): Endpoint | undefined {
  if (!Number.isInteger(port) || port < 0 || port > 65_535 || !writeIpAs16(address, IP_SCRATCH, 0)) return undefined;
  return { address, port };
}
