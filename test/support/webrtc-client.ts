/**
 * A tunnel client over a WebRTC DataChannel, for end-to-end tests of the relay's
 * browser entry: node-datachannel's PeerConnection (libdatachannel, which browsers
 * interoperate with) stands in for a browser at the transport level, and the SDK's
 * sans-IO `TunnelClient` runs over the unreliable channel exactly as over UDP — every
 * transmit leaves on the channel, every message is a datagram from the relay.
 */
import { request as httpsRequest } from 'node:https';
import { cleanup, PeerConnection, type DataChannel } from 'node-datachannel';
import { TunnelClient } from '../../sdk/src/core/tunnel-client.js';
import { nodeHmacSha256 } from '../../proto/src/wire.js';
import type { TunnelClientEvent } from '../../sdk/src/core/tunnel/types.js';

/** Where the relay appears to the TunnelClient (a placeholder: the channel is the path). */
const RELAY_ENDPOINT = { address: '127.0.0.1', port: 9 };

/** The signaling answer: status and body (the SDP answer on 201, a JSON refusal otherwise). */
export interface SignalingReply {
  readonly status: number;
  readonly body: string;
  readonly location: string | null;
}

/** POSTs `offer` with `ticket` (raw bytes, sent as base64url) to `url`; an https URL is checked against `ca` (PEM) when given. */
export async function postOffer(url: string, ticket: Uint8Array | undefined, offer: string, ca?: Buffer): Promise<SignalingReply> {
  const headers: Record<string, string> = { 'content-type': 'application/sdp' };
  if (ticket !== undefined) headers.authorization = `Bearer ${Buffer.from(ticket).toString('base64url')}`;
  if (ca !== undefined) {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url, { method: 'POST', headers, ca }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), location: (res.headers.location as string | undefined) ?? null }));
      });
      req.on('error', reject);
      req.end(offer);
    });
  }
  const res = await fetch(url, { method: 'POST', headers, body: offer });
  return { status: res.status, body: await res.text(), location: res.headers.get('location') };
}

/**
 * Ends every node-datachannel peer connection and channel in this process and stops
 * libdatachannel's threads: for an after() hook of each test file that opens peer
 * connections (offerer, WebRtcTunnel), after it closed them, so its process can exit.
 */
export function releaseWebRtc(): void {
  cleanup();
}

/** A client peer connection from {@link offerer}: its two channels, its offer, and how to close it all. */
export interface Offerer {
  readonly pc: PeerConnection;
  readonly tunnel: DataChannel;
  readonly control: DataChannel;
  /** The complete SDP offer (no trickle). */
  readonly offer: string;
  /**
   * Closes both channels, then the peer connection; idempotent. Only this releases them:
   * node-datachannel frees a peer connection's or a channel's callbacks (which hold the
   * event loop) when it reports the close to a handler (each gets one here), and a
   * channel not closed itself is never reported closed once the peer connection was
   * up for a moment.
   */
  close(): void;
}

/** A peer connection with the two channels the relay expects, and its complete offer (no trickle). */
export async function offerer(name: string): Promise<Offerer> {
  const pc = new PeerConnection(name, { iceServers: [], bindAddress: '127.0.0.1' });
  pc.onStateChange(() => {});
  const tunnel = pc.createDataChannel('tunnel', { unordered: true, maxRetransmits: 0 });
  const control = pc.createDataChannel('control');
  for (const channel of [tunnel, control]) channel.onClosed(() => {});
  await new Promise<void>((resolve) => {
    pc.onGatheringStateChange((state) => state === 'complete' && resolve());
    if (pc.gatheringState() === 'complete') resolve();
  });
  const close = (): void => {
    tunnel.close();
    control.close();
    pc.close();
  };
  return { pc, tunnel, control, offer: pc.localDescription()!.sdp, close };
}

/** A TunnelClient session over a DataChannel; see the module comment. */
export class WebRtcTunnel {
  readonly events: TunnelClientEvent[] = [];
  readonly messages: Uint8Array[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly pc: PeerConnection,
    private readonly channel: DataChannel,
    /**
     * The reliable channel, unused here but held: node-datachannel closes the peer
     * connection when a channel's wrapper is garbage-collected before it connects.
     */
    readonly control: DataChannel,
    readonly client: TunnelClient,
    /** Closes both channels and the peer connection ({@link Offerer.close}). */
    private readonly closePeer: () => void,
  ) {}

  /**
   * Signals to `url` with the ticket, waits (bounded) for the tunnel channel to open,
   * and starts a TunnelClient over it. Rejects with the signaling reply on a refusal.
   */
  static async connect(url: string, init: { sessionId: string; ticket: Uint8Array; sessionKey: Uint8Array }, options: { openTimeoutMs?: number; ca?: Buffer } = {}): Promise<WebRtcTunnel> {
    const openTimeoutMs = options.openTimeoutMs ?? 10_000;
    const { pc, tunnel, control, offer, close } = await offerer(`client-${init.sessionId}`);
    const reply = await postOffer(url, init.ticket, offer, options.ca);
    if (reply.status !== 201) {
      close();
      throw new Error(`signaling refused: ${reply.status} ${reply.body}`);
    }
    try {
      try {
      pc.setRemoteDescription(reply.body, 'answer');
    } catch (error) {
      close();
      throw new Error(`the answer was not accepted (peer connection ${pc.state()}): ${(error as Error).message}`);
    }
    } catch (error) {
      throw new Error(`${(error as Error).message}; state ${pc.state()}, ice ${pc.iceState()}, signaling ${pc.signalingState()}, gathering ${pc.gatheringState()}; answer: ${JSON.stringify(reply.body)}`);
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        close();
        reject(new Error('the tunnel DataChannel did not open'));
      }, openTimeoutMs);
      tunnel.onOpen(() => {
        clearTimeout(timer);
        resolve();
      });
      if (tunnel.isOpen()) {
        clearTimeout(timer);
        resolve();
      }
    });
    const client = new TunnelClient({ ...init, hmac: nodeHmacSha256, fecModes: ['off'], warmBackup: false });
    const self = new WebRtcTunnel(pc, tunnel, control, client, close);
    tunnel.onMessage((message) => {
      if (typeof message === 'string' || self.closed) return;
      client.handleDatagram(performance.now(), RELAY_ENDPOINT, message instanceof ArrayBuffer ? new Uint8Array(message) : message);
      self.drain();
    });
    client.setCandidates(performance.now(), [{ id: 'relay', tunnel: RELAY_ENDPOINT, probe: RELAY_ENDPOINT }]);
    self.drain();
    return self;
  }

  /** Whether the tunnel session is open. */
  get isOpen(): boolean {
    return this.client.isOpen;
  }

  /** Sends a game datagram to the origin. */
  send(payload: Uint8Array): boolean {
    const ok = this.client.send(performance.now(), payload);
    this.drain();
    return ok;
  }

  /** Closes the client and the peer connection (the relay sees it close). */
  close(): void {
    if (this.closed) return;
    this.client.close(performance.now());
    this.drain();
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.closePeer();
  }

  private drain(): void {
    const client = this.client;
    for (let e = client.pollEvent(); e !== undefined; e = client.pollEvent()) {
      this.events.push(e);
      if (e.type === 'message') this.messages.push(e.bytes);
    }
    for (let tx = client.pollTransmit(); tx !== undefined; tx = client.pollTransmit()) {
      if (this.channel.isOpen()) this.channel.sendMessageBinary(tx.bytes);
    }
    if (this.closed) return;
    const deadline = client.pollTimeout();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = deadline === undefined ? undefined : setTimeout(() => this.onTimer(), Math.max(0, deadline - performance.now()));
  }

  private onTimer(): void {
    this.timer = undefined;
    this.client.handleTimeout(performance.now());
    this.drain();
  }
}
