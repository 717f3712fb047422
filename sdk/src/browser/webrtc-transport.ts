/**
 * The browser's {@link TunnelFrameTransport}: one `RTCPeerConnection` per relay, opened
 * through the relay's WHIP-shaped signaling endpoint (`POST <webrtcUrl>`, the SDP offer
 * as the body, the ticket as `Authorization: Bearer <base64url>`; relay/README.md
 * "Browser entry (WebRTC)"), with the two channels the relay expects: `tunnel`
 * (unordered, `maxRetransmits: 0`), which carries every tunnel frame as one message,
 * and `control` (reliable, ordered), whose messages are tunnel frames too.
 *
 * Each relay appears to the core as a placeholder endpoint ({@link WebRtcTransport.addRelay}):
 * a frame the core sends there leaves on that relay's tunnel channel, and a message from
 * that relay is handed to the receive handler as from that endpoint. A frame for a relay
 * whose channel is not open is dropped (as UDP would) and opens the peer connection when
 * none is opening and its retry time has come: the core's probes and open retries then
 * find it. A failed or closed peer connection is dropped and retried after a backoff
 * (1 s doubling to 10 s) at the core's next frame for it; a relay that refuses the
 * signaling request is retried the same way, and {@link WebRtcTransportInit.onRefused}
 * hears why (the connection fails when the refusal is about the ticket itself).
 */
import type { Endpoint, ReceiveHandler } from '../../../proto/src/transport.js';
import type { PeerConnectionFactory, RtcConfigurationLike, RtcDataChannelLike, RtcPeerConnectionLike } from './rtc-types.js';
import type { TunnelFrameTransport } from './transport.js';

/** Label of the unreliable, unordered channel (the relay's `WEBRTC_TUNNEL_LABEL`). */
export const TUNNEL_CHANNEL_LABEL = 'tunnel';
/** Label of the reliable, ordered channel (the relay's `WEBRTC_CONTROL_LABEL`). */
export const CONTROL_CHANNEL_LABEL = 'control';
/** A frame for a tunnel channel with more than this already buffered is dropped, bytes. */
export const CHANNEL_BUFFERED_BYTES_MAX = 1 << 20;
/** First retry delay after a peer connection failed or was refused, ms. */
export const PEER_RETRY_MS_MIN = 1000;
/** Retry delays double up to this, ms. */
export const PEER_RETRY_MS_MAX = 10_000;

/** A signaling refusal: the relay's status and its JSON body's `error`, `code` (`SLIP_ERR_*`, for ticket refusals) and `message`. */
export interface SignalingRefusal {
  /** The relay that refused, by the coordinator's id. */
  readonly relayId: string;
  /** HTTP status (0: the request failed: relay unreachable, CORS, timeout). */
  readonly status: number;
  /** The body's `error` (a short reason), or the request's failure. */
  readonly error: string;
  /** The body's `code` (`SLIP_ERR_*`) for ticket refusals; undefined otherwise. */
  readonly code: string | undefined;
  /** The body's `message`, for people. */
  readonly message: string;
}

/** Options of a {@link WebRtcTransport}. */
export interface WebRtcTransportInit {
  /** The ticket bytes (sent base64url in each signaling request). */
  readonly ticket: Uint8Array;
  /** Makes the peer connections (the browser's `RTCPeerConnection`). */
  readonly createPeerConnection: PeerConnectionFactory;
  /** The peer connections' configuration (ICE servers). Default: none (the relay's address is public or local). */
  readonly rtcConfiguration?: RtcConfigurationLike;
  /** A peer connection whose tunnel channel has not opened this long after its offer went out is dropped, ms. Default 5000. */
  readonly openTimeoutMs?: number;
  /** The clock, ms (`performance.now`). */
  readonly nowMs: () => number;
  /** A relay refused (or did not answer) a signaling request. */
  readonly onRefused?: (refusal: SignalingRefusal) => void;
  /** A relay's tunnel channel opened. */
  readonly onChannelOpen?: (relayId: string) => void;
}

interface RelayPeer {
  readonly id: string;
  /** The signaling URL for the next attempt. */
  url: string;
  readonly endpoint: Endpoint;
  pc: RtcPeerConnectionLike | undefined;
  tunnel: RtcDataChannelLike | undefined;
  control: RtcDataChannelLike | undefined;
  /** Where to DELETE to hang up (the signaling answer's Location), once known. */
  location: string | undefined;
  /** Settles when the current attempt opened (true) or failed (false). */
  opening: Promise<boolean> | undefined;
  retryAtMs: number;
  backoffMs: number;
}

/** Base64url of `bytes` (no padding), for the Authorization header. */
function base64url(bytes: Uint8Array): string {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** See the module comment. */
export class WebRtcTransport implements TunnelFrameTransport {
  private readonly relays = new Map<string, RelayPeer>();
  private readonly byEndpoint = new Map<string, RelayPeer>();
  private handler: ReceiveHandler | undefined;
  private closed = false;
  private readonly bearer: string;
  /** Frames dropped because the relay's channel was not open (or its send threw). */
  dropped = 0;
  /** Peer connections created. */
  peerConnections = 0;

  /** Opens nothing yet: peer connections open on {@link open} or on the first send to a relay. */
  constructor(private readonly init: WebRtcTransportInit) {
    this.bearer = base64url(init.ticket);
  }

  /**
   * Registers a relay by id and signaling URL (a new URL replaces the old one for later
   * attempts) and returns the placeholder endpoint the core knows it by: `webrtc/<id>`, port 1.
   */
  addRelay(id: string, url: string): Endpoint {
    const known = this.relays.get(id);
    if (known !== undefined && known.url === url) return known.endpoint;
    if (known !== undefined) {
      known.url = url;
      return known.endpoint;
    }
    const endpoint = { address: `webrtc/${id}`, port: 1 };
    const peer: RelayPeer = { id, url, endpoint, pc: undefined, tunnel: undefined, control: undefined, location: undefined, opening: undefined, retryAtMs: 0, backoffMs: PEER_RETRY_MS_MIN };
    this.relays.set(id, peer);
    this.byEndpoint.set(`${endpoint.address}|${endpoint.port}`, peer);
    return endpoint;
  }

  /** Closes `id`'s peer connection (hanging up at the relay) and forgets the relay: the core no longer uses it. */
  forget(id: string): void {
    const peer = this.relays.get(id);
    if (peer === undefined) return;
    this.drop(peer, true);
    this.relays.delete(id);
    this.byEndpoint.delete(`${peer.endpoint.address}|${peer.endpoint.port}`);
  }

  /** The relays registered (by id). */
  get relayIds(): string[] {
    return [...this.relays.keys()];
  }

  /** Whether `id`'s tunnel channel is open now. */
  isOpen(id: string): boolean {
    return this.relays.get(id)?.tunnel?.readyState === 'open';
  }

  /** Opens `id`'s peer connection now unless one is open or opening; resolves whether its tunnel channel opened. */
  open(id: string): Promise<boolean> {
    const peer = this.relays.get(id);
    if (peer === undefined || this.closed) return Promise.resolve(false);
    if (peer.tunnel?.readyState === 'open') return Promise.resolve(true);
    return (peer.opening ??= this.connect(peer).finally(() => (peer.opening = undefined)));
  }

  /**
   * Sends one tunnel frame to the relay at `to` (its placeholder endpoint) over its tunnel
   * channel. Never throws: with no open channel, or more than
   * {@link CHANNEL_BUFFERED_BYTES_MAX} buffered, the frame is dropped (counted in
   * `dropped`), as a datagram would be lost.
   */
  send(bytes: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    const peer = this.byEndpoint.get(`${to.address}|${to.port}`);
    if (peer === undefined) return;
    const channel = peer.tunnel;
    if (channel === undefined || channel.readyState !== 'open') {
      this.dropped++;
      if (peer.opening === undefined && this.init.nowMs() >= peer.retryAtMs) void this.open(peer.id);
      return;
    }
    // A channel whose buffer backs up (a congested path) drops, as a full socket would: late game datagrams are worthless.
    if (channel.bufferedAmount > CHANNEL_BUFFERED_BYTES_MAX) {
      this.dropped++;
      return;
    }
    try {
      channel.send(bytes);
    } catch {
      // A full or closing channel: lost, as a datagram would be.
      this.dropped++;
    }
  }

  /** Sets the one handler of frames from every relay's tunnel channel (with that relay's placeholder endpoint). */
  onReceive(handler: ReceiveHandler): void {
    this.handler = handler;
  }

  /** Closes every peer connection (after hanging up at each relay, best effort). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handler = undefined;
    for (const peer of this.relays.values()) this.drop(peer, true);
  }

  private async connect(peer: RelayPeer): Promise<boolean> {
    this.drop(peer, true);
    const pc = this.init.createPeerConnection(this.init.rtcConfiguration ?? {});
    this.peerConnections++;
    const tunnel = pc.createDataChannel(TUNNEL_CHANNEL_LABEL, { ordered: false, maxRetransmits: 0 });
    const control = pc.createDataChannel(CONTROL_CHANNEL_LABEL);
    peer.pc = pc;
    peer.tunnel = tunnel;
    peer.control = control;
    for (const channel of [tunnel, control]) {
      channel.binaryType = 'arraybuffer';
      channel.onmessage = (event) => {
        if (peer.pc !== pc || this.handler === undefined || !(event.data instanceof ArrayBuffer)) return;
        this.handler(new Uint8Array(event.data), peer.endpoint);
      };
    }
    const lost = (): void => {
      if (peer.pc !== pc) return;
      this.drop(peer, false);
      this.backoff(peer);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') lost();
    };
    tunnel.onclose = lost;
    const opened = new Promise<boolean>((resolve) => {
      tunnel.onopen = () => resolve(true);
      setTimeout(() => resolve(false), this.init.openTimeoutMs ?? 5000);
    });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      const offer = pc.localDescription?.sdp ?? '';
      const res = await fetch(peer.url, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${this.bearer}` }, body: offer, signal: AbortSignal.timeout(this.init.openTimeoutMs ?? 5000) });
      const body = await res.text();
      if (res.status !== 201) {
        let parsed: { error?: unknown; code?: unknown; message?: unknown } = {};
        try {
          parsed = JSON.parse(body) as typeof parsed;
        } catch {
          // not JSON: the status says enough
        }
        this.refused(peer, pc, { relayId: peer.id, status: res.status, error: String(parsed.error ?? 'http_error'), code: typeof parsed.code === 'string' ? parsed.code : undefined, message: String(parsed.message ?? body.slice(0, 200)) });
        return false;
      }
      const location = res.headers.get('location');
      peer.location = location === null ? undefined : new URL(location, peer.url).toString();
      if (peer.pc !== pc) return false;
      await pc.setRemoteDescription({ type: 'answer', sdp: body });
    } catch (error) {
      this.refused(peer, pc, { relayId: peer.id, status: 0, error: 'unreachable', code: undefined, message: error instanceof Error ? error.message : String(error) });
      return false;
    }
    const ok = await opened;
    if (peer.pc !== pc) return false;
    if (!ok) {
      lost();
      return false;
    }
    peer.backoffMs = PEER_RETRY_MS_MIN;
    this.init.onChannelOpen?.(peer.id);
    return true;
  }

  private refused(peer: RelayPeer, pc: RtcPeerConnectionLike, refusal: SignalingRefusal): void {
    if (peer.pc === pc) {
      this.drop(peer, false);
      this.backoff(peer);
    }
    if (!this.closed) this.init.onRefused?.(refusal);
  }

  private backoff(peer: RelayPeer): void {
    peer.retryAtMs = this.init.nowMs() + peer.backoffMs;
    peer.backoffMs = Math.min(PEER_RETRY_MS_MAX, peer.backoffMs * 2);
  }

  /** Closes `peer`'s peer connection; with `hangUp`, also DELETEs its signaling resource (best effort). */
  private drop(peer: RelayPeer, hangUp: boolean): void {
    const pc = peer.pc;
    const location = peer.location;
    peer.pc = undefined;
    peer.tunnel = undefined;
    peer.control = undefined;
    peer.location = undefined;
    if (pc === undefined) return;
    pc.onconnectionstatechange = null;
    try {
      pc.close();
    } catch {
      // already closed
    }
    if (hangUp && location !== undefined) void fetch(location, { method: 'DELETE' }).catch(() => undefined);
  }
}
