/**
 * `tunnel.webrtc` in `relay.yaml` → {@link WebRtcSpec}: the browser entry's signaling
 * listener, its TLS files, CORS, the ICE UDP mux port and the peer-connection limits
 * (relay/README.md, "Browser entry (WebRTC)", documents the same table). Read at start
 * only: a reload keeps the running entry.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConfigPath, ConfigReader } from '../../kit/config.js';
import { readCorsOrigins } from '../../kit/cors.js';
import { splitHostPort } from './core/addr.js';

/** Peer connections at most, default. */
export const WEBRTC_PEER_CONNECTIONS_MAX_DEFAULT = 1000;
/** A peer connection with no DataChannel message this long is reaped, ms, default. */
export const WEBRTC_IDLE_TIMEOUT_MS_DEFAULT = 30_000;
/** A peer connection not connected (ICE + DTLS + SCTP) this long after its answer is reaped, ms, default. */
export const WEBRTC_CONNECT_TIMEOUT_MS_DEFAULT = 10_000;

/** The validated `tunnel.webrtc` section. */
export interface WebRtcSpec {
  /** Signaling listener address (an IP literal). */
  readonly listenAddress: string;
  /** Signaling listener port (0 = any, for tests). */
  readonly listenPort: number;
  /** The one UDP port every peer connection's ICE uses (libdatachannel's ICE UDP mux), on `listenAddress`. */
  readonly udpMuxPort: number;
  /** PEM certificate chain and key for HTTPS signaling, or undefined: plain HTTP (loopback only). */
  readonly tls: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  /** Page origins allowed by CORS (`*` = any); empty = no CORS headers (same-origin pages only). */
  readonly allowOrigins: readonly string[];
  /** Concurrent peer connections at most; signaling over it answers 503. */
  readonly peerConnectionsMax: number;
  /** A peer connection with no DataChannel message this long is reaped, ms. */
  readonly idleTimeoutMs: number;
  /** A peer connection not connected this long after its answer is reaped, ms. */
  readonly connectTimeoutMs: number;
  /** The signaling URL advertised to the coordinator (`publicUrl`), or undefined: built from the bound listener. */
  readonly publicUrl: string | undefined;
  /**
   * The ICE candidate the SDP answers advertise instead of the mux's own address and port
   * (`publicIceAddress`, IP:port): where browsers send their ICE/DTLS/SCTP datagrams when
   * the mux port is reached through a 1:1 NAT, a port forward or a UDP proxy. Undefined:
   * the mux's bound address.
   */
  readonly publicIceAddress: { readonly address: string; readonly port: number } | undefined;
}

const WEBRTC_KEYS = ['listen', 'udpMuxPort', 'certFile', 'keyFile', 'allowOrigins', 'peerConnectionsMax', 'idleTimeoutMs', 'connectTimeoutMs', 'publicUrl', 'publicIceAddress'];

/** Parses `tunnel.webrtc`, or undefined when the section is absent. Throws the reader's ConfigError naming the key. */
export function webrtcSpec(reader: ConfigReader): WebRtcSpec | undefined {
  const p: ConfigPath = ['tunnel', 'webrtc'];
  if (!reader.has(p)) return undefined;
  reader.rejectUnknownKeys(p, WEBRTC_KEYS);
  const listenText = reader.string([...p, 'listen'], { patternText: 'IP:port for signaling, e.g. 0.0.0.0:8443' });
  const listen = splitHostPort(listenText);
  if (!listen || listen.portEnd !== listen.port || isIP(listen.host) === 0) reader.fail([...p, 'listen'], `'${listenText}' is not accepted; expected IP:port (an IP literal, port 0–65535)`);
  const udpMuxPort = reader.number([...p, 'udpMuxPort'], { min: 1, max: 65_535, integer: true, ...(listen.port > 0 ? { default: listen.port } : {}) });
  const hasCert = reader.has([...p, 'certFile']);
  if (hasCert !== reader.has([...p, 'keyFile'])) reader.fail([...p, hasCert ? 'keyFile' : 'certFile'], 'missing; HTTPS signaling needs both certFile and keyFile (PEM)');
  let tls: WebRtcSpec['tls'];
  if (hasCert) tls = { cert: readPem(reader, [...p, 'certFile']), key: readPem(reader, [...p, 'keyFile']) };
  else if (!isLoopback(listen.host)) reader.fail([...p, 'listen'], `plain HTTP signaling on ${listen.host} is refused (browsers on HTTPS pages need HTTPS, and tickets would cross the network in clear); give certFile and keyFile, or listen on loopback (127.0.0.0/8, ::1) for development`);
  const allowOrigins = readCorsOrigins(reader, [...p, 'allowOrigins']);
  let publicIceAddress: WebRtcSpec['publicIceAddress'];
  if (reader.has([...p, 'publicIceAddress'])) {
    const text = reader.string([...p, 'publicIceAddress'], { patternText: 'IP:port of the ICE UDP mux as browsers reach it, e.g. 203.0.113.7:3478' });
    const ice = splitHostPort(text);
    if (!ice || ice.portEnd !== ice.port || isIP(ice.host) === 0 || ice.port < 1) reader.fail([...p, 'publicIceAddress'], `'${text}' is not accepted; expected IP:port (an IP literal, port 1–65535)`);
    publicIceAddress = { address: ice.host, port: ice.port };
  }
  if (reader.has([...p, 'publicUrl']) && reader.string([...p, 'publicUrl']).length > 256) reader.fail([...p, 'publicUrl'], 'longer than 256 characters; expected a shorter URL');
  return {
    listenAddress: listen.host,
    listenPort: listen.port,
    udpMuxPort,
    tls,
    allowOrigins,
    peerConnectionsMax: reader.number([...p, 'peerConnectionsMax'], { min: 1, max: 100_000, integer: true, default: WEBRTC_PEER_CONNECTIONS_MAX_DEFAULT }),
    idleTimeoutMs: reader.number([...p, 'idleTimeoutMs'], { min: 1000, max: 3_600_000, integer: true, unit: 'ms', default: WEBRTC_IDLE_TIMEOUT_MS_DEFAULT }),
    connectTimeoutMs: reader.number([...p, 'connectTimeoutMs'], { min: 1000, max: 60_000, integer: true, unit: 'ms', default: WEBRTC_CONNECT_TIMEOUT_MS_DEFAULT }),
    publicIceAddress,
    publicUrl: reader.has([...p, 'publicUrl']) ? reader.string([...p, 'publicUrl'], { pattern: /^https?:\/\/[^\s/]+\/\S*$/, patternText: 'the public signaling URL, e.g. https://relay-1.example.com:8443/webrtc (at most 256 characters)' }) : undefined,
  };
}

function readPem(reader: ConfigReader, path: ConfigPath): Buffer {
  const file = reader.string(path, { pattern: /^\S(.*\S)?$/, patternText: 'a PEM file path' });
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    reader.fail(path, `cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (!bytes.toString('latin1').includes('-----BEGIN ')) reader.fail(path, `'${file}' is not PEM (no '-----BEGIN' line)`);
  return bytes;
}

function isLoopback(host: string): boolean {
  return host === '::1' || /^127\./.test(host);
}
