/**
 * The udp-batch addon (udp_batch.c, built at `npm install` by build.mjs into
 * build/Release/udp_batch.node; Linux only): UDP sockets read with `recvmmsg` and written
 * with `sendmmsg`, polled on Node's own libuv loop, with datagrams handed over in shared
 * arenas and peers named by numeric address ids (no object or string per datagram).
 * Load it through kit/udp-batch.ts (`loadUdpBatch()`), which says why when it cannot.
 *
 * Receive: `onReadable(socketId)` (given to {@link UdpBatchAddon.createContext}) runs
 * when a started socket has datagrams (level-triggered: whatever is left is announced
 * again on the next loop turn). Call {@link UdpBatchAddon.recv}; for datagram `i < n`,
 * `recvMeta[4i]` is its offset in `recvArena`, `[4i+1]` its length in bytes, `[4i+2]`
 * the source's address id, `[4i+3]` the source port. At `NEW = 4 * batchMax`,
 * `recvMeta[NEW]` counts the address ids this receive assigned (new sources, or ids
 * reused for another address) and `recvMeta[NEW + 1 …]` lists them: fetch their text
 * once with {@link UdpBatchAddon.addressText} and cache it by id. The arena is reused by
 * the next `recv` on any socket of the context.
 *
 * Send: write each message's bytes into `sendArena` and its entry into `sendMeta`
 * (`[4i]` socket id, `[4i+1]` offset, `[4i+2]` length, `[4i+3]` destination address id
 * or -1 for the socket's connected peer), then {@link UdpBatchAddon.send}: one
 * `sendmmsg` per socket. A run of consecutive entries of one socket to one destination,
 * all of one length but the last (which may be shorter), leaves as one UDP GSO message
 * (`UDP_SEGMENT`, Linux ≥ 4.18; up to 64 datagrams and 60,000 bytes): the kernel builds
 * and routes one buffer and cuts it into the same datagrams, which a receiver gets one
 * by one, in order. Where the kernel or the route refuses GSO (no checksum offload,
 * IPsec, a segment over the path MTU) the run is sent again datagram by datagram and
 * that socket stops using GSO. A message the kernel refuses (full send buffer,
 * unreachable, wrong family) is counted in `stats().sendErrors` (per datagram) and
 * skipped, as `dgram` would.
 *
 * Address ids index a table of `addressCapacity` entries (address + port). A full table
 * evicts the oldest entry not used since the last `send` (second-chance clock), so an
 * id stays valid from the `recv` or `addressId` that returned it until the next `send`;
 * after that it may name another address (a later `recv` then lists it as assigned,
 * and `addressId` returns it for the new address).
 */
export interface UdpBatchContext {
  /** Opaque handle passed to every other call. */
  readonly handle: object;
  /** Received datagrams, `batchMax` slots of `slotBytes`. */
  readonly recvArena: Uint8Array;
  /** See the module comment (length `5 * batchMax + 1`). */
  readonly recvMeta: Int32Array;
  /** Outgoing datagrams' bytes (`sendArenaBytes`). */
  readonly sendArena: Uint8Array;
  /** Outgoing datagrams' entries (`4 * sendMessagesMax`). */
  readonly sendMeta: Int32Array;
  /** Messages one `send` takes at most (1024, the kernel's UIO_MAXIOV). */
  readonly sendMessagesMax: number;
}

/** A bound socket (see {@link UdpBatchAddon.open}). */
export interface UdpBatchSocket {
  /** Socket id within its context (small integer, reused after close). */
  readonly id: number;
  /** Bound address (IP literal) and port (the real one when 0 was asked). */
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /**
   * SO_RCVBUF / SO_SNDBUF as the kernel granted them, bytes (Linux's doubled figure
   * halved, so it compares with the request). Under a request, the kernel capped it at
   * `net.core.rmem_max` / `wmem_max` (the addon asks with SO_RCVBUFFORCE first, which
   * root or CAP_NET_ADMIN may use past the cap).
   */
  readonly receiveBufferBytes: number;
  readonly sendBufferBytes: number;
}

/** One classic BPF instruction (`struct sock_filter`, linux/filter.h). */
export interface SockFilterInstruction {
  /** Opcode (u16), e.g. BPF_LD | BPF_W | BPF_ABS = 0x20. */
  readonly code: number;
  /** Jump offsets if true / false (u8). */
  readonly jt: number;
  readonly jf: number;
  /** Generic field (u32): offset, constant, or return value. */
  readonly k: number;
}

/** The addon's exports. Bad arguments throw TypeError/RangeError; socket calls throw an Error whose `code` is the errno name (EADDRINUSE, …). */
export interface UdpBatchAddon {
  /**
   * A context: arenas, address table and a set of sockets.
   * @param onReadable called with a socket id when it has datagrams (runs as an I/O callback: ticks and microtasks drain after it)
   * @param batchMax datagrams per `recv` (1–1024; typical 64)
   * @param slotBytes bytes per received datagram (64–65536); longer ones are dropped and counted (`stats().truncated`)
   * @param addressCapacity address table entries (4 × batchMax … 2^24)
   * @param sendArenaBytes send arena size (64 KiB – 64 MiB)
   */
  createContext(onReadable: (socketId: number) => void, batchMax: number, slotBytes: number, addressCapacity: number, sendArenaBytes: number): UdpBatchContext;
  /**
   * Creates a non-blocking UDP socket and binds it (IPv6 sockets are dual-stack unless
   * flag 2). `flags`: 1 = SO_REUSEPORT, 2 = IPV6_V6ONLY. Buffer sizes in bytes, 0 = OS default.
   */
  open(ctx: object, address: string, port: number, flags: number, receiveBufferBytes: number, sendBufferBytes: number): UdpBatchSocket;
  /** Starts announcing the socket's datagrams through `onReadable`. */
  start(ctx: object, socketId: number): void;
  /** Whether the socket keeps the event loop alive (default true, as a dgram socket). */
  setRef(ctx: object, socketId: number, ref: boolean): void;
  /** Stops polling and closes the socket; idempotent. */
  close(ctx: object, socketId: number): void;
  /** Reads up to `batchMax` datagrams into the arena (one `recvmmsg`); returns how many (0 when none). */
  recv(ctx: object, socketId: number): number;
  /** The IP literal of an address id, as `dgram` would give it (`::ffff:1.2.3.4` on dual-stack sockets), or undefined when unused. */
  addressText(ctx: object, addressId: number): string | undefined;
  /** The address id of an IP literal and port: ≥ 0; -1 when not an IP literal or port out of 0–65535; -2 when the table is full of ids in use since the last `send`. */
  addressId(ctx: object, address: string, port: number): number;
  /** UDP `connect` to an address id (-1 dissolves the association): 0 or -errno. IPv4 peers of IPv6 sockets are mapped. */
  connect(ctx: object, socketId: number, addressId: number): number;
  /** Sends `count` messages described in `sendMeta`; returns how many were attempted. Ends the address table's epoch. */
  send(ctx: object, count: number): number;
  /**
   * Attaches a classic BPF program choosing the receiving socket of an SO_REUSEPORT
   * group (SO_ATTACH_REUSEPORT_CBPF): it runs on each datagram's UDP payload (offset 0
   * is the first payload byte) and returns the index of the socket in the group (in
   * bind order); an index out of range falls back to the kernel's hash. Attach it to
   * one socket of the group (opened with flag 1); it applies to the whole group.
   * Throws with the errno name when the kernel refuses the program (EINVAL: invalid
   * program).
   * @param instructions 1–4096 instructions, e.g.
   *   `[{ code: 0x20, jt: 0, jf: 0, k: 4 }, { code: 0x94, jt: 0, jf: 0, k: 2 }, { code: 0x16, jt: 0, jf: 0, k: 0 }]`
   *   (A = payload[4..8] as u32 big-endian; A %= 2; return A)
   */
  attachReuseportCbpf(ctx: object, socketId: number, instructions: readonly SockFilterInstruction[]): void;
  /** The socket's file descriptor (diagnostics; the addon owns and closes it). */
  fd(ctx: object, socketId: number): number;
  /** Counters since the context was created. */
  stats(ctx: object): {
    truncated: number;
    receiveErrors: number;
    sendErrors: number;
    addressEvictions: number;
    addressTableFull: number;
    addresses: number;
    /** UDP GSO messages the kernel took, and the datagrams they carried. */
    gsoMessages: number;
    gsoDatagrams: number;
  };
}
