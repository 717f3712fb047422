/**
 * The slice of the browser's WebRTC API the browser SDK uses, declared here because the
 * project compiles against lib ES2022 + @types/node, without the DOM library (as
 * `webcrypto-hmac.ts` declares its slice of WebCrypto). A real `RTCPeerConnection`
 * satisfies these shapes; so does any object a test or another runtime hands in.
 */

/** An `RTCDataChannel`, as far as the SDK uses it. */
export interface RtcDataChannelLike {
  binaryType: string;
  readonly readyState: string;
  /** Bytes queued and not yet sent. */
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: unknown) => void) | null;
  onmessage: ((event: { readonly data: unknown }) => void) | null;
}

/** An `RTCPeerConnection`, as far as the SDK uses it. */
export interface RtcPeerConnectionLike {
  readonly connectionState: string;
  createDataChannel(label: string, init?: { ordered?: boolean; maxRetransmits?: number }): RtcDataChannelLike;
  createOffer(): Promise<{ type: string; sdp?: string }>;
  setLocalDescription(description: { type: string; sdp?: string }): Promise<void>;
  setRemoteDescription(description: { type: 'answer'; sdp: string }): Promise<void>;
  readonly localDescription: { readonly sdp: string } | null;
  onconnectionstatechange: ((event: unknown) => void) | null;
  close(): void;
}

/** `RTCPeerConnection`'s configuration, as far as the SDK sets it. */
export interface RtcConfigurationLike {
  iceServers?: { urls: string | string[]; username?: string; credential?: string }[];
}

/** Makes a peer connection: `new RTCPeerConnection(configuration)` in a browser. */
export type PeerConnectionFactory = (configuration: RtcConfigurationLike) => RtcPeerConnectionLike;

/** The browser's `RTCPeerConnection` as a factory, or undefined where there is none (Node, a worker). */
export function browserPeerConnectionFactory(): PeerConnectionFactory | undefined {
  const ctor = (globalThis as { RTCPeerConnection?: new (configuration: RtcConfigurationLike) => RtcPeerConnectionLike }).RTCPeerConnection;
  return ctor === undefined ? undefined : (configuration) => new ctor(configuration);
}
