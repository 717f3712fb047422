/**
 * The datagram transport every driver implements: real `node:dgram` sockets in
 * production (`sdk/src/udp-transport.ts`'s `UdpTransport`), virtual sockets in the simulator
 * (`sim`'s `SimUdpSocket`). Both pass the same compliance tests.
 */

/** A UDP endpoint. `address` is an IPv4 or IPv6 literal, `port` 0–65535. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/**
 * Called once per received datagram. `bytes` is only valid during the call: drivers
 * may reuse the buffer, so copy what must be kept.
 */
export type ReceiveHandler = (bytes: Uint8Array, from: Endpoint) => void;

/** A bound datagram socket. */
export interface Transport {
  /**
   * Sends one datagram. Never throws for network conditions; a dropped datagram is
   * silent, as with UDP. The transport is done with `bytes` when `send` returns, so
   * callers may reuse the buffer at once. Sending on a closed transport is a
   * programmer error and throws a `SlipError` with code `SLIP_ERR_CLOSED`.
   */
  send(bytes: Uint8Array, to: Endpoint): void;
  /** Sets the handler for received datagrams (one handler; a later call replaces it). */
  onReceive(handler: ReceiveHandler): void;
  /** The address and port this transport is bound to. */
  localAddress(): Endpoint;
  /** Unbinds; idempotent. No datagrams are delivered after it returns. */
  close(): void;
}

/** `"address:port"` (IPv6 in brackets), for logs and map keys off the hot path. */
export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}
