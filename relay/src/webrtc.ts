/**
 * The browser entry (`tunnel.webrtc`): WebRTC DataChannels as another transport of the
 * tunnel, driven here so the core stays sans-IO.
 *
 * Signaling is WHIP-shaped (RFC 9725): `POST /webrtc` with the SDP offer as the body
 * (`application/sdp`) and the ticket as `Authorization: Bearer <base64url ticket>`;
 * `201 Created` answers with the SDP answer and a `Location` the client may `DELETE`
 * to hang up. Before any ICE or DTLS state exists, the peer-connection cap is checked
 * and the core checks the ticket under the budgets of a session open from the
 * requester's real IP (`RelayCore.checkSignaling`), so a flood of signaling requests
 * costs the relay no handshakes: refusals are 403 (ticket), 429 (rate, budget) and 503
 * (cap, draining). Every peer connection's ICE shares one UDP port (libdatachannel's
 * ICE UDP mux, held by an `IceUdpMuxListener` from start so a taken port fails start).
 *
 * A peer connection is, to the core, the endpoint `{ address: the browser's IP, port:
 * TRANSPORT_PORT_BASE + n }`: a message on either DataChannel is a tunnel datagram from
 * it (opens, data, FEC, probes, Close: the same frames as UDP), and the core's transmits
 * to it leave on the unreliable, unordered channel (`tunnel`, maxRetransmits 0). Per-source
 * limits therefore count the browser's real address, and revocation, drain, idle and
 * exit-relay behaviour are the core's. The reliable ordered channel (`control`) is
 * accepted and its messages are fed to the core the same way (a Close or open sent
 * reliably). When the core ends the session, or the peer connection fails, closes or
 * stays idle (`idleTimeoutMs`) or unconnected (`connectTimeoutMs`), it is reaped; an
 * offer that names, at its sender's IP, the client address of a connected peer connection
 * replaces that stale one first (`address reused`: the mux would route its checks there).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { cleanup as releaseNativeWebRtc, IceUdpMuxListener, PeerConnection, type DataChannel } from 'node-datachannel';
import { corsAllowHeaders, CORS_PREFLIGHT_MAX_AGE_S } from '../../kit/cors.js';
import type { Endpoint } from '../../proto/src/transport.js';
import { TRANSPORT_PORT_BASE } from './core/constants.js';
import { TUNNEL_SOCKET_ID } from './core/context.js';
import type { RelayCore } from './core/relay-core.js';
import type { WebRtcSpec } from './webrtc-config.js';

/** The signaling path (POST an offer; DELETE `/webrtc/<id>` hangs up). */
export const WEBRTC_SIGNALING_PATH = '/webrtc';
/** Label of the unreliable, unordered DataChannel that carries tunnel frames. */
export const WEBRTC_TUNNEL_LABEL = 'tunnel';
/** Label of the reliable, ordered DataChannel (control and the game's reliable messages). */
export const WEBRTC_CONTROL_LABEL = 'control';
/** An SDP offer larger than this is refused (413), bytes: real offers are 1–4 KiB. */
const OFFER_BYTES_MAX = 32_768;
/** How long the answer's ICE gathering may take before the request fails (500), ms: host candidates only, so milliseconds. */
const GATHER_WAIT_MS = 3000;
/** A session's Close is given this long to leave on its DataChannel before the peer connection closes, ms. */
const CLOSE_LINGER_MS = 300;
/** Period of the reaper's check, ms. */
const REAP_INTERVAL_MS = 500;
/** Signaling requests must arrive whole within this long, ms (slowloris). */
const REQUEST_TIMEOUT_MS = 5000;
/** Signaling connections open at once at most (each costs a socket; requests are short). */
const SIGNALING_CONNECTIONS_MAX = 1024;
/** A peer connection whose ICE reports `disconnected` (consent lost, maybe briefly) is closed if it has not reconnected after this long, ms. */
const DISCONNECTED_GRACE_MS = 5000;
/** A stale peer connection closed because a new offer names its client address is given this long to leave the ICE mux before the answer, ms. */
const STALE_CLOSE_WAIT_MS = 1000;

interface Peer {
  readonly id: number;
  readonly endpoint: Endpoint;
  readonly pc: PeerConnection;
  readonly sessionId: string;
  tunnel: DataChannel | undefined;
  control: DataChannel | undefined;
  createdMs: number;
  lastRxMs: number;
  connected: boolean;
  closing: boolean;
  /** The latest peer-connection state libdatachannel reported. */
  state: string;
  /** Whether the core was given the peer's remote ICE address (for the tunnel origin header). */
  remoteKnown: boolean;
  /** `address:port` of the selected candidate pair's remote end once connected (the key the ICE mux routes the client's datagrams by). */
  remoteKey: string | undefined;
  /** Called once libdatachannel reports the peer connection closed (its ICE agent gone from the mux). */
  onNativeClosed: (() => void) | undefined;
}

/** What the entry needs from the relay that runs it. */
export interface WebRtcEntryInit {
  readonly spec: WebRtcSpec;
  readonly logger: Logger;
  readonly core: RelayCore;
  /** Drain the core after an input (the relay's `flush`). */
  readonly flush: () => void;
  /** The registry the entry's metrics join. */
  readonly registry: Registry;
}

/** See the module comment. */
export class WebRtcEntry {
  /** Peer connections by endpoint port. */
  private readonly peers = new Map<number, Peer>();
  /** Connected peer connections by their client's ICE address (`address:port`), see {@link staleAt}. */
  private readonly byRemote = new Map<string, Peer>();
  private nextId = 0;
  private closed = false;
  private readonly reaper: NodeJS.Timeout;
  /** Peer connections created (each after a verified ticket). */
  created = 0;
  /** Signaling requests refused, by reason. */
  readonly refused = new Map<string, number>();
  /** Peer connections reaped, by reason. */
  readonly reaped = new Map<string, number>();
  /** Messages that could not be sent (channel not open or full). */
  sendFailures = 0;

  private constructor(
    private readonly init: WebRtcEntryInit,
    private readonly server: Server,
    private readonly mux: IceUdpMuxListener,
    /** Where signaling listens. */
    readonly signaling: Endpoint,
  ) {
    this.reaper = setInterval(() => this.reap(), REAP_INTERVAL_MS);
    this.reaper.unref();
    this.registerMetrics(init.registry);
  }

  /** Binds the ICE UDP mux port and the signaling listener; rejects with the reason if either bind fails. */
  static async start(init: WebRtcEntryInit): Promise<WebRtcEntry> {
    const spec = init.spec;
    let mux: IceUdpMuxListener;
    try {
      mux = new IceUdpMuxListener(spec.udpMuxPort, spec.listenAddress);
    } catch (error) {
      throw new Error(`cannot bind the WebRTC ICE UDP mux on ${spec.listenAddress}:${spec.udpMuxPort} (tunnel.webrtc.udpMuxPort): ${(error as Error).message}`);
    }
    // The server exists before the entry it hands requests to (it binds first).
    const holder: { entry?: WebRtcEntry } = {};
    const handler = (req: IncomingMessage, res: ServerResponse): void => holder.entry!.onRequest(req, res);
    const server = spec.tls === undefined ? createHttpServer(handler) : createHttpsServer({ cert: spec.tls.cert, key: spec.tls.key }, handler);
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.headersTimeout = REQUEST_TIMEOUT_MS;
    server.maxConnections = SIGNALING_CONNECTIONS_MAX;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', (error: NodeJS.ErrnoException) => reject(new Error(`cannot listen for WebRTC signaling on ${spec.listenAddress}:${spec.listenPort} (tunnel.webrtc.listen): ${error.code ?? error.message}`)));
        server.listen(spec.listenPort, spec.listenAddress, resolve);
      });
    } catch (error) {
      mux.stop();
      throw error;
    }
    const address = server.address();
    const bound = typeof address === 'object' && address !== null ? { address: address.address, port: address.port } : { address: spec.listenAddress, port: spec.listenPort };
    const entry = new WebRtcEntry(init, server, mux, bound);
    holder.entry = entry;
    init.logger.info({ event: 'listening', protocol: spec.tls === undefined ? 'http' : 'https', rule: 'webrtc', address: bound.address, port: bound.port, udpMuxPort: spec.udpMuxPort }, 'listening');
    return entry;
  }

  /**
   * The signaling URL the coordinator hands browsers: `tunnel.webrtc.publicUrl`, else
   * built from the bound listener (undefined when that is 0.0.0.0 or ::, which no
   * browser can reach).
   */
  get advertisedUrl(): string | undefined {
    const spec = this.init.spec;
    if (spec.publicUrl !== undefined) return spec.publicUrl;
    const host = this.signaling.address;
    if (host === '0.0.0.0' || host === '::') return undefined;
    return `${spec.tls === undefined ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${this.signaling.port}${WEBRTC_SIGNALING_PATH}`;
  }

  /** Peer connections open now. */
  get peerConnectionCount(): number {
    return this.peers.size;
  }

  // ---------------------------------------------------------------- data path

  /** Sends a core transmit addressed to a peer connection's endpoint (`port` ≥ TRANSPORT_PORT_BASE) on its unreliable channel. */
  send(port: number, prefix: Uint8Array | undefined, bytes: Uint8Array): void {
    const peer = this.peers.get(port);
    const channel = peer?.tunnel;
    if (channel === undefined || !channel.isOpen()) {
      this.sendFailures++;
      return;
    }
    try {
      if (!channel.sendMessageBinary(prefix === undefined ? bytes : Buffer.concat([prefix, bytes]))) this.sendFailures++;
    } catch {
      this.sendFailures++;
    }
  }

  /** A session ended in the core (`client` as the event names it): a peer connection it ran on is closed once its Close has left. */
  onSessionEnd(client: string): void {
    const port = Number(client.slice(client.lastIndexOf(':') + 1));
    if (!(port >= TRANSPORT_PORT_BASE)) return;
    const peer = this.peers.get(port);
    if (peer === undefined || peer.closing) return;
    peer.closing = true;
    setTimeout(() => this.closePeer(peer, 'session ended'), CLOSE_LINGER_MS).unref();
  }

  private onChannel(peer: Peer, channel: DataChannel): void {
    const label = channel.getLabel();
    if (label === WEBRTC_TUNNEL_LABEL) peer.tunnel = channel;
    else if (label === WEBRTC_CONTROL_LABEL) peer.control = channel;
    else {
      // Only the two channels the protocol names: anything else is a client bug.
      channel.close();
      return;
    }
    channel.onMessage((message) => this.onChannelMessage(peer, message));
    // The client closing its tunnel channel (or its peer connection) ends the peer connection now.
    // The control channel gets a close handler too: node-datachannel frees a channel's
    // callbacks (which hold the event loop) only when it reports the close to one, so
    // without it a closed relay (close(), as embedded) would keep its process alive.
    if (label === WEBRTC_TUNNEL_LABEL) channel.onClosed(() => setImmediate(() => this.closePeer(peer, 'channel closed')));
    else channel.onClosed(() => {});
  }

  private onChannelMessage(peer: Peer, message: string | Buffer | ArrayBuffer): void {
    if (this.closed || typeof message === 'string') return;
    const now = performance.now();
    peer.lastRxMs = now;
    const bytes = message instanceof ArrayBuffer ? new Uint8Array(message) : message;
    if (!peer.remoteKnown) this.noteRemote(peer);
    this.init.core.handleDatagram(now, TUNNEL_SOCKET_ID, peer.endpoint, bytes);
    this.init.flush();
  }

  // ---------------------------------------------------------------- signaling

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const cors = corsAllowHeaders(this.init.spec.allowOrigins, req.headers.origin);
    if (cors !== undefined) {
      for (const [name, value] of Object.entries(cors)) res.setHeader(name, value);
      res.setHeader('access-control-expose-headers', 'location');
    }
    const url = req.url ?? '';
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'access-control-allow-methods': 'POST, DELETE, OPTIONS', 'access-control-allow-headers': 'authorization, content-type', 'access-control-max-age': String(CORS_PREFLIGHT_MAX_AGE_S) }).end();
      return;
    }
    if (req.method === 'POST' && url === WEBRTC_SIGNALING_PATH) {
      // A request that breaks off (reset mid-body) is the client's problem, never the relay's.
      this.onOffer(req, res).catch((error: Error) => {
        if (!res.headersSent && !res.destroyed) this.refuse(res, 400, 'bad_request', error.message);
        else res.destroy();
      });
      return;
    }
    if (req.method === 'DELETE' && url.startsWith(`${WEBRTC_SIGNALING_PATH}/`)) {
      const peer = [...this.peers.values()].find((p) => `${WEBRTC_SIGNALING_PATH}/${p.id}-${p.sessionId}` === url);
      if (peer === undefined) return reply(res, 404, 'no such peer connection');
      this.closePeer(peer, 'hung up');
      res.writeHead(200).end();
      return;
    }
    reply(res, 404, `POST an SDP offer to ${WEBRTC_SIGNALING_PATH}`);
  }

  private async onOffer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const auth = req.headers.authorization ?? '';
    const match = /^Bearer ([A-Za-z0-9_-]+={0,2})$/.exec(auth);
    if (match === null) {
      req.resume();
      return this.refuse(res, 401, 'no_ticket', 'expected the ticket as Authorization: Bearer <base64url>');
    }
    const offer = await readBody(req, OFFER_BYTES_MAX);
    if (offer === undefined) return this.refuse(res, 413, 'offer_too_large', `the SDP offer is larger than ${OFFER_BYTES_MAX} bytes`);
    if (!offer.startsWith('v=0')) return this.refuse(res, 400, 'bad_offer', 'the body is not an SDP offer (application/sdp, starting with v=0)');
    if (this.closed) return this.refuse(res, 503, 'closing', 'this relay is shutting down');
    if (this.peers.size >= this.init.spec.peerConnectionsMax) return this.refuse(res, 503, 'peer_connections_max', `this relay holds its maximum of ${this.init.spec.peerConnectionsMax} peer connections; connect to another relay`);
    const address = realAddress(req);
    const verdict = this.init.core.checkSignaling(performance.now(), address, Buffer.from(match[1]!, 'base64url'));
    // Refusals counted by the core's drops show on /metrics too; a flush writes nothing new.
    if (!verdict.ok) {
      const status = verdict.refusal === 'ticket' || verdict.refusal === 'denied' ? 403 : verdict.refusal === 'rateLimited' ? 429 : 503;
      return this.refuse(res, status, verdict.refusal, verdict.detail, verdict.code);
    }
    // One peer connection per session: signaling again with a ticket (a reload, a
    // second tab) replaces the earlier one, so one ticket cannot pile them up.
    for (const other of this.peers.values()) if (other.sessionId === verdict.sessionId) this.closePeer(other, 'replaced');
    await this.closeStale(offer, address);
    if (this.closed) return this.refuse(res, 503, 'closing', 'this relay is shutting down');
    const id = this.nextId++;
    const endpoint = { address, port: TRANSPORT_PORT_BASE + id };
    const spec = this.init.spec;
    let pc: PeerConnection;
    try {
      pc = new PeerConnection(`webrtc-${id}`, { iceServers: [], enableIceUdpMux: true, portRangeBegin: spec.udpMuxPort, portRangeEnd: spec.udpMuxPort, bindAddress: spec.listenAddress });
    } catch (error) {
      return this.refuse(res, 500, 'peer_connection_failed', `cannot create a peer connection: ${(error as Error).message}`);
    }
    this.created++;
    const now = performance.now();
    const peer: Peer = { id, endpoint, pc, sessionId: verdict.sessionId, tunnel: undefined, control: undefined, createdMs: now, lastRxMs: now, connected: false, closing: false, state: 'new', remoteKnown: false, remoteKey: undefined, onNativeClosed: undefined };
    this.peers.set(endpoint.port, peer);
    pc.onDataChannel((channel) => this.onChannel(peer, channel));
    pc.onStateChange((state) => {
      peer.state = state;
      if (state === 'closed') peer.onNativeClosed?.();
      if (state === 'connected') {
        peer.connected = true;
        this.noteRemoteKey(peer);
      } else if (state === 'failed' || state === 'closed') setImmediate(() => this.closePeer(peer, `peer connection ${state}`));
      else if (state === 'disconnected') setTimeout(() => peer.state === 'disconnected' && this.closePeer(peer, 'peer connection disconnected'), DISCONNECTED_GRACE_MS).unref();
    });
    try {
      pc.setRemoteDescription(withoutCandidates(offer), 'offer');
      const answer = await gathered(pc);
      if (answer === undefined) {
        this.closePeer(peer, 'gathering timed out');
        return this.refuse(res, 500, 'gathering_timeout', 'the relay could not gather its ICE candidates in time');
      }
      const advertised = spec.publicIceAddress === undefined ? answer : withCandidateAddress(answer, spec.publicIceAddress);
      res.writeHead(201, { 'content-type': 'application/sdp', location: `${WEBRTC_SIGNALING_PATH}/${id}-${verdict.sessionId}` }).end(advertised);
      this.init.logger.info({ event: 'webrtc_peer', session: verdict.sessionId, client: address, peer: id }, 'webrtc peer connection');
    } catch (error) {
      this.closePeer(peer, 'bad offer');
      return this.refuse(res, 400, 'bad_offer', `the SDP offer was not accepted: ${(error as Error).message}`);
    }
  }

  private refuse(res: ServerResponse, status: number, reason: string, detail: string, code?: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: reason, ...(code !== undefined ? { code } : {}), message: detail }));
  }

  // ---------------------------------------------------------------- reaping

  private reap(): void {
    const now = performance.now();
    const spec = this.init.spec;
    for (const peer of [...this.peers.values()]) {
      if (!peer.connected && now - peer.createdMs > spec.connectTimeoutMs) this.closePeer(peer, 'connect timeout');
      else if (now - peer.lastRxMs > spec.idleTimeoutMs) this.closePeer(peer, 'idle');
    }
  }

  /**
   * Tells the core the peer's real address (the selected ICE candidate pair's remote
   * end) before its first message: a tunnel origin header (`tunnel.proxyProtocol`) says
   * it, never the endpoint's synthetic port. Without a selected pair the header has no address.
   */
  private noteRemote(peer: Peer): void {
    const remote = selectedRemote(peer);
    if (remote === undefined) return;
    peer.remoteKnown = true;
    this.init.core.setTransportRemote(peer.endpoint.port, { address: remote.address, port: remote.port });
  }

  /**
   * The ICE UDP mux routes every datagram from a client address it has seen to the ICE
   * agent that first saw it, before looking at a STUN username. A peer connection whose
   * client vanished without a close (a killed tab or process, a lost network) keeps its
   * agent, and so its address, until it is reaped; a new client that gets the same
   * address:port (an ephemeral port reused, a NAT mapping reused) then has its ICE
   * checks delivered to the dead peer's agent, and its own never connects. An address
   * is held by one socket at a time, so a connected peer at an address the new offer
   * names as its own is stale: it is closed (`address reused`) and its agent given up to
   * {@link STALE_CLOSE_WAIT_MS} to leave the mux before the new one is created. Only
   * candidates at the requester's own IP count, so an offer can displace only peer
   * connections from its own address.
   */
  private async closeStale(offer: string, requester: string): Promise<void> {
    const stale = offeredAddresses(offer, requester)
      .map((key) => this.byRemote.get(key))
      .filter((p): p is Peer => p !== undefined);
    if (stale.length === 0) return;
    const gone = stale.map(
      (peer) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, STALE_CLOSE_WAIT_MS);
          peer.onNativeClosed = () => {
            clearTimeout(timer);
            resolve();
          };
          this.closePeer(peer, 'address reused');
          if (peer.state === 'closed') resolve();
        }),
    );
    await Promise.all(gone);
  }

  /** Records a connected peer's client ICE address (see {@link closeStale}). */
  private noteRemoteKey(peer: Peer): void {
    const remote = selectedRemote(peer);
    if (remote === undefined || this.peers.get(peer.endpoint.port) !== peer) return;
    const key = addressKey(remote.address, remote.port);
    if (peer.remoteKey !== undefined && this.byRemote.get(peer.remoteKey) === peer) this.byRemote.delete(peer.remoteKey);
    peer.remoteKey = key;
    this.byRemote.set(key, peer);
  }

  private closePeer(peer: Peer, reason: string): void {
    if (this.peers.get(peer.endpoint.port) !== peer) return;
    this.peers.delete(peer.endpoint.port);
    if (peer.remoteKey !== undefined && this.byRemote.get(peer.remoteKey) === peer) this.byRemote.delete(peer.remoteKey);
    this.init.core.setTransportRemote(peer.endpoint.port, undefined);
    this.reaped.set(reason, (this.reaped.get(reason) ?? 0) + 1);
    try {
      peer.pc.close();
    } catch {
      // Already torn down natively: nothing left to free.
    }
    this.init.logger.info({ event: 'webrtc_peer_closed', session: peer.sessionId, client: peer.endpoint.address, peer: peer.id, reason }, 'webrtc peer connection closed');
  }

  /** Closes every peer connection, the signaling listener and the mux port. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.reaper);
    for (const peer of [...this.peers.values()]) this.closePeer(peer, 'relay closing');
    this.server.close();
    this.server.closeAllConnections();
    this.mux.stop();
  }

  private registerMetrics(registry: Registry): void {
    const peers = this.peers;
    const created = (): number => this.created;
    new Gauge({
      name: 'slipstream_relay_webrtc_peer_connections',
      help: 'WebRTC peer connections open now (tunnel.webrtc.peerConnectionsMax caps it).',
      registers: [registry],
      collect() {
        this.set(peers.size);
      },
    });
    new Counter({
      name: 'slipstream_relay_webrtc_peer_connections_created_total',
      help: 'WebRTC peer connections created since start (each only after its ticket verified).',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(created());
      },
    });
    const byReason: [string, string, Map<string, number>][] = [
      ['slipstream_relay_webrtc_signaling_refused_total', 'WebRTC signaling requests refused before any ICE/DTLS work, by reason.', this.refused],
      ['slipstream_relay_webrtc_peer_connections_closed_total', 'WebRTC peer connections closed (reaped), by reason.', this.reaped],
    ];
    for (const [name, help, map] of byReason) {
      new Counter({
        name,
        help,
        labelNames: ['reason'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [reason, count] of map) this.inc({ reason }, count);
        },
      });
    }
  }
}

/**
 * Stops libdatachannel's threads, which otherwise keep the process alive after every
 * peer connection closed. Process-wide (every peer connection in the process ends):
 * for the end of `slipstream relay`, not for a relay embedded beside other WebRTC users.
 */
export function releaseWebRtc(): void {
  releaseNativeWebRtc();
}

/** The requester's IP as the core's per-source tables key it (IPv4-mapped IPv6 unwrapped). */
function realAddress(req: IncomingMessage): string {
  const address = req.socket.remoteAddress ?? '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function reply(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: status === 404 ? 'not_found' : 'bad_request', message }));
}

/** The body as text, or undefined when it exceeds `bytesMax` (the rest is discarded). */
async function readBody(req: IncomingMessage, bytesMax: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > bytesMax) {
      req.resume();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The client end of a peer's selected ICE candidate pair, or undefined before one is selected (or when the native call throws). */
function selectedRemote(peer: Peer): { address: string; port: number } | undefined {
  try {
    return peer.pc.getSelectedCandidatePair()?.remote;
  } catch {
    return undefined;
  }
}

/** `address:port` as {@link offeredAddresses} and the mux see it (IPv4-mapped IPv6 unwrapped, lower case). */
function addressKey(address: string, port: number): string {
  const lower = address.toLowerCase();
  return `${lower.startsWith('::ffff:') && lower.includes('.') ? lower.slice(7) : lower}:${port}`;
}

/**
 * The UDP addresses (`address:port`) an offer's ICE candidates name at `requester`'s IP:
 * where its checks will come from. mDNS (`.local`) and other hosts' addresses are left out.
 */
export function offeredAddresses(offer: string, requester: string): string[] {
  const own = addressKey(requester, 0).slice(0, -2);
  const keys: string[] = [];
  for (const line of offer.split(/\r?\n/)) {
    const candidate = /^a=candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) /.exec(line);
    if (candidate === null || candidate[1]!.toLowerCase() !== 'udp') continue;
    const key = addressKey(candidate[2]!, Number(candidate[3]));
    if (key.slice(0, key.lastIndexOf(':')) === own) keys.push(key);
  }
  return keys;
}

/**
 * The offer without its ICE candidates. The relay then sends nothing until the client's
 * own checks reach the mux port (it learns the client's address from them, as a
 * peer-reflexive candidate, RFC 8445 §7.3.1.3): an offer cannot aim the relay's STUN
 * checks at a third party, and no check or DTLS handshake reaches a client before it
 * holds the answer (libdatachannel clients fail the DTLS fingerprint check otherwise).
 */
function withoutCandidates(offer: string): string {
  return offer
    .split(/\r?\n/)
    .filter((line) => !line.startsWith('a=candidate:') && !line.startsWith('a=end-of-candidates'))
    .join('\r\n');
}

/**
 * The answer with every ICE candidate's address and port replaced by `publicIceAddress`
 * (`tunnel.webrtc.publicIceAddress`): the mux is reached there (a 1:1 NAT, a port forward,
 * a UDP proxy). The relay learns the client's address from its checks (peer-reflexive),
 * so only the answer changes.
 */
export function withCandidateAddress(answer: string, to: Endpoint): string {
  const family = to.address.includes(':') ? 'IP6' : 'IP4';
  return answer
    .split(/\r?\n/)
    .map((line) => {
      const candidate = /^(a=candidate:\S+ \d+ \S+ \d+ )(\S+) (\d+)( .*)$/.exec(line);
      if (candidate !== null) return `${candidate[1]}${to.address} ${to.port}${candidate[4]}`;
      if (line.startsWith('c=IN ')) return `c=IN ${family} ${to.address}`;
      return line;
    })
    .join('\r\n');
}

/** The local description once ICE gathering completes (one SDP, no trickle), or undefined after {@link GATHER_WAIT_MS}. */
function gathered(pc: PeerConnection): Promise<string | undefined> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      resolve(pc.localDescription()?.sdp);
    };
    const timer = setTimeout(() => resolve(undefined), GATHER_WAIT_MS);
    pc.onGatheringStateChange((state) => {
      if (state === 'complete') done();
    });
    if (pc.gatheringState() === 'complete') done();
  });
}
