/**
 * Kernel socket buffer sizes for `connect`'s UDP sockets (the tunnel socket and the
 * local `udp:` listen sockets). A game's burst (a frame's worth of datagrams at once)
 * must fit in the receive buffer while the event loop is busy elsewhere; the OS default
 * (Linux: 208 KiB) overflows on a loaded machine, and every overflow is a datagram lost
 * before the tunnel. The relay raises its buffers the same way (`socketReceiveBufferBytes`).
 */
import type dgram from 'node:dgram';

/**
 * Default SO_RCVBUF/SO_SNDBUF asked for each of connect's UDP sockets, bytes: 4 MiB,
 * about 6 s of a 5 Mbit/s stream, or 3 500 full 1 200-byte datagrams. The kernel caps
 * the request at `net.core.rmem_max` / `wmem_max` (Linux default 208 KiB; the relay's
 * deploy/sysctl/90-slipstream.conf raises both to 32 MiB). 0 keeps the OS default.
 */
export const SOCKET_BUFFER_BYTES_DEFAULT = 4 * 1024 * 1024;

/** Largest buffer a flag or option may ask for, bytes (1 GiB, as the relay's config). */
export const SOCKET_BUFFER_BYTES_MAX = 1 << 30;

/** Buffer sizes asked of, or granted by, the kernel, bytes; 0 asked = the OS default. */
export interface SocketBufferSizes {
  /** SO_RCVBUF, bytes. */
  readonly receiveBytes: number;
  /** SO_SNDBUF, bytes. */
  readonly sendBytes: number;
}

/** `dgram.createSocket` options asking for `asked` (a 0 size is left to the OS). */
export function bufferSocketOptions(asked: SocketBufferSizes): { recvBufferSize?: number; sendBufferSize?: number } {
  return { ...(asked.receiveBytes > 0 ? { recvBufferSize: asked.receiveBytes } : {}), ...(asked.sendBytes > 0 ? { sendBufferSize: asked.sendBytes } : {}) };
}

// Linux doubles the size set with setsockopt (the other half is its bookkeeping) and
// getsockopt reports the doubled value; halving gives the size in the units asked. The
// OS default (net.core.rmem_default) is kept in the doubled units, so it reads as half.
const KERNEL_REPORT_FACTOR = process.platform === 'linux' ? 2 : 1;

/**
 * The sizes the kernel granted a bound socket, bytes, in the units they were asked in
 * (on Linux, half of what getsockopt reports, so the OS default of 208 KiB reads 104 KiB).
 * A granted size below the one asked means the kernel capped it at `net.core.rmem_max` /
 * `wmem_max`.
 */
export function grantedBufferSizes(socket: dgram.Socket): SocketBufferSizes {
  return { receiveBytes: Math.floor(socket.getRecvBufferSize() / KERNEL_REPORT_FACTOR), sendBytes: Math.floor(socket.getSendBufferSize() / KERNEL_REPORT_FACTOR) };
}

/**
 * Why `granted` falls short of `asked` (the kernel capped it), as one sentence for a
 * user, or undefined when every non-zero size asked was granted.
 */
export function bufferCapProblem(what: string, asked: SocketBufferSizes, granted: SocketBufferSizes): string | undefined {
  const short: string[] = [];
  if (asked.receiveBytes > 0 && granted.receiveBytes < asked.receiveBytes) short.push(`receive ${granted.receiveBytes} of ${asked.receiveBytes} bytes asked (net.core.rmem_max)`);
  if (asked.sendBytes > 0 && granted.sendBytes < asked.sendBytes) short.push(`send ${granted.sendBytes} of ${asked.sendBytes} bytes asked (net.core.wmem_max)`);
  if (short.length === 0) return undefined;
  return `the kernel capped the ${what} socket buffers: ${short.join(', ')}; bursts may overflow them. Raise the sysctls (deploy/sysctl/90-slipstream.conf) or ask for less`;
}

/** `rcvbuf R sndbuf S bytes` (exact, for scripts and tests), for connect's started line. */
export function describeBufferSizes(sizes: SocketBufferSizes): string {
  return `rcvbuf ${sizes.receiveBytes} sndbuf ${sizes.sendBytes} bytes`;
}

/** Why `bytes` cannot be a buffer size option (not an integer in 0–{@link SOCKET_BUFFER_BYTES_MAX}), or undefined. */
export function bufferSizeProblem(bytes: number | undefined): string | undefined {
  if (bytes === undefined || (Number.isInteger(bytes) && bytes >= 0 && bytes <= SOCKET_BUFFER_BYTES_MAX)) return undefined;
  return `${String(bytes)} is not an integer in 0–${SOCKET_BUFFER_BYTES_MAX} bytes (0 = OS default)`;
}
