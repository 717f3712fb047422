/**
 * Batched UDP I/O on the udp-batch addon (native/udp-batch; its .d.ts is the contract):
 * `recvmmsg`/`sendmmsg` instead of `dgram`'s Buffer, `rinfo` object, address string and
 * send request per datagram. {@link UdpBatch} reads a batch per readable event and hands
 * each datagram to one callback as a view into the shared arena with a reused
 * {@link Endpoint} (its `address` is a string cached per address id, so no string is
 * made per datagram); sends are copied into the send arena and leave in one `sendmmsg`
 * per socket at {@link UdpBatch.commit}.
 *
 * Lifetimes: a received view is valid until the batch's `onBatchEnd` returns (the next
 * `recvmmsg` reuses the arena), so a caller may queue it for sending at the batch's
 * end; the Endpoint is rewritten for the next datagram (copy its fields, never keep
 * it). Queued bytes are copied at once, so callers may reuse theirs.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Endpoint } from '../proto/src/transport.js';
import type { SockFilterInstruction, UdpBatchAddon, UdpBatchContext, UdpBatchSocket } from '../native/udp-batch/udp-batch.js';

export type { UdpBatchAddon, UdpBatchSocket, SockFilterInstruction } from '../native/udp-batch/udp-batch.js';

/** How a part does its UDP: `auto` (batched when the addon loads, else dgram), `batched` (the addon or fail), `dgram`. */
export type UdpIoMode = 'auto' | 'batched' | 'dgram';

/** The UDP I/O modes, for config validation. */
export const UDP_IO_MODES: readonly UdpIoMode[] = ['auto', 'batched', 'dgram'];

/** Environment variable that overrides every part's `udpIo` (e.g. `SLIPSTREAM_UDP_IO=dgram` runs the suite on dgram). */
export const UDP_IO_ENV = 'SLIPSTREAM_UDP_IO';

/** Datagrams read per `recvmmsg` (one readable event). */
export const UDP_BATCH_RECV_MAX = 64;
/** Bytes reserved per received datagram: the largest UDP payload fits. */
export const UDP_BATCH_SLOT_BYTES = 65536;
/** Address table entries (peers known at once; older ones are evicted and re-learnt). */
export const UDP_BATCH_ADDRESS_CAPACITY = 65536;
/** Send arena, bytes: a full arena is sent before queueing more. */
export const UDP_BATCH_SEND_ARENA_BYTES = 1 << 20;

/** The mode the environment forces, or undefined; throws on a value outside {@link UDP_IO_MODES}. */
export function udpIoModeFromEnv(env: NodeJS.ProcessEnv = process.env): UdpIoMode | undefined {
  const value = env[UDP_IO_ENV];
  if (value === undefined || value === '') return undefined;
  if (!(UDP_IO_MODES as readonly string[]).includes(value)) throw new Error(`${UDP_IO_ENV}=${value}: expected one of ${UDP_IO_MODES.join(', ')}`);
  return value as UdpIoMode;
}

let loaded: { addon: UdpBatchAddon } | { error: string } | undefined;

/** The addon, or why it cannot be used (not built, not Linux); loaded once per process. */
export function loadUdpBatch(): { addon: UdpBatchAddon } | { error: string } {
  if (loaded !== undefined) return loaded;
  if (process.platform !== 'linux') return (loaded = { error: `not available on ${process.platform} (Linux only)` });
  // From dist/kit/ (compiled) or kit/ (sources): the repository root holds native/.
  const here = fileURLToPath(new URL('.', import.meta.url));
  const candidates = [`${here}../../native/udp-batch/build/Release/udp_batch.node`, `${here}../native/udp-batch/build/Release/udp_batch.node`];
  const path = candidates.find((p) => existsSync(p));
  if (path === undefined) return (loaded = { error: 'the addon is not built (npm install builds it with node-gyp; needs g++, make, python3)' });
  try {
    loaded = { addon: createRequire(import.meta.url)(path) as UdpBatchAddon };
  } catch (error) {
    loaded = { error: `cannot load ${path}: ${(error as Error).message}` };
  }
  return loaded;
}

/** Options of {@link UdpBatch.open}. */
export interface UdpBatchOpenOptions {
  /** SO_REUSEPORT (several sockets, e.g. workers, on one port). Default false. */
  readonly reusePort?: boolean;
  /** SO_RCVBUF, bytes; 0 = OS default. */
  readonly receiveBufferBytes?: number;
  /** SO_SNDBUF, bytes; 0 = OS default. */
  readonly sendBufferBytes?: number;
}

/**
 * Called per received datagram: `socketId` as {@link UdpBatch.open} returned it, `from`
 * reused (see the module comment), `bytes` valid until the batch's end (`onBatchEnd` returned).
 */
export type UdpBatchDatagramHandler = (socketId: number, from: Endpoint, bytes: Uint8Array) => void;

/** Sockets sharing one arena and address table; see the module comment. */
export class UdpBatch {
  /** Datagrams refused at send (bad address, table full; the kernel's refusals are in `addon.stats`). */
  queueErrors = 0;
  private readonly ctx: UdpBatchContext;
  private readonly handle: object;
  private readonly recvMeta: Int32Array;
  private readonly recvBuffer: ArrayBuffer;
  private readonly recvByteOffset: number;
  private readonly sendArena: Uint8Array;
  private readonly sendMeta: Int32Array;
  private readonly sendMax: number;
  private sendCount = 0;
  private sendOffset = 0;
  /** Per address id: its text as received (canonical), and the cache key that maps to it. */
  private readonly idText: (string | undefined)[] = [];
  private readonly idKey: (string | undefined)[] = [];
  private readonly idKeyPort: Int32Array = new Int32Array(UDP_BATCH_ADDRESS_CAPACITY);
  /** Send-side cache: address text → port → address id. */
  private readonly ids = new Map<string, Map<number, number>>();
  /** Per socket id: the peer it is connected to (undefined: none). */
  private readonly connectedAddress: (string | undefined)[] = [];
  private readonly connectedPort: number[] = [];
  private readonly batchTexts: string[] = new Array<string>(UDP_BATCH_RECV_MAX).fill('');
  private readonly from: { address: string; port: number } = { address: '', port: 0 };
  private readonly onReadableBound = (socketId: number): void => this.onReadable(socketId);

  /**
   * @param addon from {@link loadUdpBatch}
   * @param onDatagram per received datagram
   * @param onBatchEnd after each received batch (commit here, after draining what the datagrams caused)
   */
  constructor(
    readonly addon: UdpBatchAddon,
    private readonly onDatagram: UdpBatchDatagramHandler,
    private readonly onBatchEnd: (socketId: number) => void,
  ) {
    this.ctx = addon.createContext(this.onReadableBound, UDP_BATCH_RECV_MAX, UDP_BATCH_SLOT_BYTES, UDP_BATCH_ADDRESS_CAPACITY, UDP_BATCH_SEND_ARENA_BYTES);
    this.handle = this.ctx.handle;
    this.recvMeta = this.ctx.recvMeta;
    this.recvBuffer = this.ctx.recvArena.buffer as ArrayBuffer;
    this.recvByteOffset = this.ctx.recvArena.byteOffset;
    this.sendArena = this.ctx.sendArena;
    this.sendMeta = this.ctx.sendMeta;
    this.sendMax = this.ctx.sendMessagesMax;
  }

  /** Binds a socket and starts receiving on it. Throws an Error with `code` (EADDRINUSE, …) when the bind fails. */
  open(address: string, port: number, options: UdpBatchOpenOptions = {}): UdpBatchSocket {
    const socket = this.addon.open(this.handle, address, port, options.reusePort === true ? 1 : 0, options.receiveBufferBytes ?? 0, options.sendBufferBytes ?? 0);
    this.connectedAddress[socket.id] = undefined;
    this.addon.start(this.handle, socket.id);
    return socket;
  }

  /** Closes a socket (idempotent), after sending what is queued. */
  close(socketId: number): void {
    // Its queued datagrams leave first: the id may be reused by the next open.
    if (this.sendCount > 0) this.commit();
    this.addon.close(this.handle, socketId);
    this.connectedAddress[socketId] = undefined;
  }

  /** Whether the socket keeps the process alive (default yes). */
  setRef(socketId: number, ref: boolean): void {
    this.addon.setRef(this.handle, socketId, ref);
  }

  /**
   * Attaches a classic BPF program steering an SO_REUSEPORT group's datagrams (see
   * `attachReuseportCbpf` in native/udp-batch/udp-batch.d.ts): it reads the UDP payload
   * and returns the index, in bind order, of the group's socket that gets the datagram.
   */
  attachReuseportCbpf(socketId: number, instructions: readonly SockFilterInstruction[]): void {
    this.addon.attachReuseportCbpf(this.handle, socketId, instructions);
  }

  /** Counters of the native side (truncated datagrams, kernel send refusals, address table). */
  stats(): ReturnType<UdpBatchAddon['stats']> {
    return this.addon.stats(this.handle);
  }

  /**
   * Queues `prefix` (optional) then `bytes` as one datagram to `address:port` on
   * `socketId` (copied now; sent at {@link commit}). `connect`: the socket talks to one
   * peer — it is UDP-connected to it (on the first send, and again when the peer
   * changes), which spares the kernel a route lookup per datagram and lets only that
   * peer's datagrams in. Returns false (and counts) when the address is not an IP literal.
   */
  queue(socketId: number, address: string, port: number, prefix: Uint8Array | undefined, bytes: Uint8Array, connect = false): boolean {
    const prefixBytes = prefix === undefined ? 0 : prefix.length;
    const length = prefixBytes + bytes.length;
    if (this.sendCount === this.sendMax || this.sendOffset + length > this.sendArena.length) this.commit();
    let addressId: number;
    if (connect && this.connectedAddress[socketId] === address && this.connectedPort[socketId] === port) addressId = -1;
    else {
      addressId = this.idFor(address, port);
      if (addressId < 0) {
        this.queueErrors++;
        return false;
      }
      if (connect) {
        // Datagrams already queued for the old peer leave before the association changes.
        if (this.connectedAddress[socketId] !== undefined && this.sendCount > 0) this.commit();
        if (this.addon.connect(this.handle, socketId, addressId) === 0) {
          this.connectedAddress[socketId] = address;
          this.connectedPort[socketId] = port;
          addressId = -1;
        } else this.connectedAddress[socketId] = undefined;
      }
    }
    const offset = this.sendOffset;
    if (prefix !== undefined) this.sendArena.set(prefix, offset);
    this.sendArena.set(bytes, offset + prefixBytes);
    const m = this.sendCount * 4;
    const meta = this.sendMeta;
    meta[m] = socketId;
    meta[m + 1] = offset;
    meta[m + 2] = length;
    meta[m + 3] = addressId;
    this.sendCount++;
    // 8-byte aligned starts.
    this.sendOffset = (offset + length + 7) & ~7;
    return true;
  }

  /** Sends everything queued: one `sendmmsg` per socket. Also ends the address ids' epoch (call it after every batch). */
  commit(): void {
    this.addon.send(this.handle, this.sendCount);
    this.sendCount = 0;
    this.sendOffset = 0;
  }

  /** The address id of `address:port`, cached; negative when not an IP literal (or the table is full this epoch). */
  private idFor(address: string, port: number): number {
    let byPort = this.ids.get(address);
    const cached = byPort?.get(port);
    if (cached !== undefined) return cached;
    const id = this.addon.addressId(this.handle, address, port);
    if (id < 0) return id;
    // One key per id: the id may have named another address (evicted) or another spelling.
    this.forget(id);
    this.idText[id] = this.addon.addressText(this.handle, id);
    if (byPort === undefined) this.ids.set(address, (byPort = new Map()));
    byPort.set(port, id);
    this.idKey[id] = address;
    this.idKeyPort[id] = port;
    return id;
  }

  /** Drops the send cache's key of `id` (its address changed). */
  private forget(id: number): void {
    const key = this.idKey[id];
    if (key === undefined) return;
    this.idKey[id] = undefined;
    const byPort = this.ids.get(key);
    if (byPort === undefined) return;
    if (byPort.get(this.idKeyPort[id]!) === id) byPort.delete(this.idKeyPort[id]!);
    if (byPort.size === 0) this.ids.delete(key);
  }

  private onReadable(socketId: number): void {
    const addon = this.addon;
    const count = addon.recv(this.handle, socketId);
    const meta = this.recvMeta;
    const assignedAt = 4 * UDP_BATCH_RECV_MAX;
    const assigned = meta[assignedAt]!;
    for (let k = 0; k < assigned; k++) {
      const id = meta[assignedAt + 1 + k]!;
      this.forget(id);
      this.idText[id] = addon.addressText(this.handle, id);
    }
    // Texts first: a commit inside the batch (a full arena, a socket closed) ends the
    // epoch, after which a later send could reassign an id this batch still names.
    const texts = this.batchTexts;
    for (let i = 0; i < count; i++) texts[i] = this.idText[meta[i * 4 + 2]!]!;
    const from = this.from;
    for (let i = 0; i < count; i++) {
      const m = i * 4;
      from.address = texts[i]!;
      from.port = meta[m + 3]!;
      this.onDatagram(socketId, from, new Uint8Array(this.recvBuffer, this.recvByteOffset + meta[m]!, meta[m + 1]!));
    }
    this.onBatchEnd(socketId);
  }
}
