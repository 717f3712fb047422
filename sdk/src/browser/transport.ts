/**
 * The seam between the browser SDK's core and the transport that carries its tunnel
 * frames. `webrtc-transport.ts` is the one the browser `connect()` uses (an unreliable,
 * unordered DataChannel per relay, `maxRetransmits: 0`, opened through the relay's
 * signaling endpoint with the ticket); a page may drive a `TunnelClient` over any other
 * transport that meets this contract.
 *
 * Contract, the same as proto's `Transport` (which `UdpTransport` and the simulator's
 * sockets implement, and which this is a slice of):
 * - a frame is one whole tunnel datagram as `TunnelClient.pollTransmit()` gives it
 *   (header and body), sent as one DataChannel message, never split or joined;
 * - `to` is a relay endpoint exactly as the candidates handed to
 *   `TunnelClient.setCandidates` name it (`tunnel` or `probe`); the transport maps it to
 *   that relay's channel, and opens the channel when it has none yet (frames sent before
 *   it is open may be dropped, as UDP would: the core retries opens and probes);
 * - a frame received on a relay's channel is handed to the receive handler with `from`
 *   set to that same endpoint object's address and port, since the core finds the relay
 *   a datagram came from by its address;
 * - `send` never throws for network conditions; loss is silent, as with UDP.
 */
import type { Transport } from '../../../proto/src/transport.js';

/** What carries a browser `TunnelClient`'s frames to and from relays; see the module comment. */
export type TunnelFrameTransport = Pick<Transport, 'send' | 'onReceive' | 'close'>;
