/**
 * `slipstream/sdk`: the client SDK for Node games. {@link connect} finds relays through
 * the coordinator, probes them, opens the tunnel session with the game backend's ticket
 * and keeps it through relay failures (sdk/README.md says how). For another transport
 * or event loop, the sans-IO {@link TunnelClient} is the same core with its inputs and
 * outputs exposed; give it {@link nodeHmacSha256}.
 *
 * ```ts
 * import { connect } from 'slipstream/sdk';
 * const conn = await connect({ coordinator: 'http://127.0.0.1:7400', origin: 'eu-game', ticketProvider });
 * conn.on('message', (bytes) => game.onPacket(bytes));
 * conn.send(new TextEncoder().encode('hello'));
 * ```
 */
export { connect, Connection, type ConnectionEvents, type ConnectOptions, type TicketGrant } from './connect.js';
export { isTicketRefusal, SlipstreamError } from './errors.js';
export { ErrorCode, type ErrorCodeValue } from '../../proto/src/errors.js';
export { nodeHmacSha256 } from '../../proto/src/wire.js';
export type { HmacSha256 } from '../../proto/src/session-mac.js';
export type { Endpoint, Transport } from '../../proto/src/transport.js';
export type { RelaySelectorInit, SelectionReason } from './core/relay-selector.js';
export * from './core/public.js';
