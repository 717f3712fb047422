/**
 * Which relay worker owns a tunnel session, and the kernel program that steers its
 * datagrams there directly.
 *
 * Session ids are minted by the coordinator (64 random bits) and carried in every tunnel
 * packet's header (bytes 4–11), and the same id reaches any relay of the fleet (relay
 * switching), so the owner is derived from the id, not stored: its low 32 bits modulo
 * the worker count. The kernel's SO_REUSEPORT hash spreads datagrams by 4-tuple, so a
 * session's datagrams may land on any worker (and move when the client's address does);
 * the worker that receives one for a session it does not own hands it to the owner
 * (workers.ts, userspace, always available). With batched UDP I/O the primary attaches
 * {@link steeringProgram} to the tunnel port's reuseport group through the udp-batch
 * addon (SO_ATTACH_REUSEPORT_CBPF): the kernel then makes the same choice and delivers
 * each tunnel datagram to its owner, and the hand-off is left for what the program does
 * not steer (datagrams before it is attached or before every worker bound).
 */
import { HEADER_BYTES, HEADER_MAGIC, readU32 } from '../../proto/src/header.js';

/** Offset of the session id's low 32 bits in a tunnel header, bytes (big-endian). */
export const SESSION_ID_LOW_OFFSET = 8;

/**
 * The worker (0-based) that owns the session of tunnel datagram `datagram`, or undefined
 * when it is not a tunnel packet (too short, wrong magic): such datagrams stay where the kernel put them.
 */
export function sessionOwner(datagram: Uint8Array, workers: number): number | undefined {
  if (datagram.length < HEADER_BYTES || datagram[0] !== HEADER_MAGIC) return undefined;
  return readU32(datagram, SESSION_ID_LOW_OFFSET) % workers;
}

/** One classic BPF instruction (`struct sock_filter`). */
export interface CbpfInstruction {
  /** Opcode (`BPF_LD | BPF_W | BPF_ABS`, …), 16 bits. */
  readonly code: number;
  /** Instructions to skip when a jump's test is true, 0–255. */
  readonly jt: number;
  /** Instructions to skip when it is false, 0–255. */
  readonly jf: number;
  /** The operand (offset, constant), 32 bits. */
  readonly k: number;
}

/**
 * The SO_ATTACH_REUSEPORT_CBPF program computing {@link sessionOwner} on a UDP payload:
 * it returns the index of the socket in the reuseport group (the workers bind in index
 * order: the primary first), and for a datagram that is not a tunnel packet an index
 * past the group (0xffffffff), which makes the kernel fall back to its 4-tuple hash.
 */
export function steeringProgram(workers: number): CbpfInstruction[] {
  const i = (code: number, k: number, jt = 0, jf = 0): CbpfInstruction => ({ code, jt, jf, k });
  return [
    i(0x80, 0), // ld len
    i(0x35, HEADER_BYTES, 0, 5), // jge #24 ? next : fallback
    i(0x30, 0), // ldb [0]
    i(0x15, HEADER_MAGIC, 0, 3), // jeq #magic ? next : fallback
    i(0x20, SESSION_ID_LOW_OFFSET), // ld [8] (big-endian word)
    i(0x94, workers), // mod #workers
    i(0x16, 0), // ret a
    i(0x06, 0xffffffff), // ret #-1: the kernel's hash
  ];
}
