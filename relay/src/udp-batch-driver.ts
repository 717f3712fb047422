/**
 * The relay's UDP on the batched addon (kit/udp-batch.ts): each readable event feeds the
 * core a batch of datagrams (one `recvmmsg`), the relay's flush after the batch (once,
 * not per datagram: the core queues every input's events and transmits, and a received
 * datagram's bytes stay valid until the next `recvmmsg`) copies the core's transmits
 * into the send arena, and they leave with one `sendmmsg` per socket (runs of one size
 * to one peer as one UDP GSO message, see native/udp-batch) once every socket readable
 * in this turn of the event loop has been read (`setImmediate`: the check phase right
 * after the poll phase). So the replies of 64
 * flows, each read from its own origin-facing socket, leave the listener in one call. Origin-facing sockets are UDP-connected to their peer, as
 * on `dgram` (relay.ts `sendUpstream`), here at once (a native `connect` is synchronous).
 *
 * Which I/O runs is chosen once at start ({@link chooseUdpIo}): `udpIo` in the file,
 * overridden by `SLIPSTREAM_UDP_IO`; `auto` falls back to `dgram` when the addon cannot
 * load, and the relay says so once (`udp_io` log line, `slipstream_relay_udp_io` metric).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Endpoint } from '../../proto/src/transport.js';
import { loadUdpBatch, UdpBatch, udpIoModeFromEnv, UDP_IO_ENV, type UdpBatchAddon, type UdpIoMode } from '../../kit/udp-batch.js';
import type { RelayCore } from './core/relay-core.js';
import type { Transmit } from './core/output.js';
import type { CbpfInstruction } from './worker-steering.js';

/** The UDP I/O a relay runs, and why. */
export interface UdpIoChoice {
  /** `batched`: the udp-batch addon (recvmmsg/sendmmsg); `dgram`: Node's sockets. */
  readonly mode: 'batched' | 'dgram';
  /** The addon, when batched. */
  readonly addon: UdpBatchAddon | undefined;
  /** Why this mode (configured, forced by the environment, or the addon's load error). */
  readonly reason: string;
  /** `auto` fell back to dgram: the addon could not load. */
  readonly fellBack: boolean;
}

/**
 * Picks the relay's UDP I/O from `configured` (the file's `udpIo`) and the environment
 * ({@link UDP_IO_ENV} wins). Throws when `batched` is required and the addon cannot load.
 * (Each relay worker chooses for itself; with several, the batched sockets join the
 * ports' reuseport groups and the tunnel's is steered by session id, see workers.ts.)
 */
export function chooseUdpIo(configured: UdpIoMode): UdpIoChoice {
  const forced = udpIoModeFromEnv();
  const mode = forced ?? configured;
  const source = forced !== undefined ? `${UDP_IO_ENV}=${forced}` : `udpIo: ${configured}`;
  if (mode === 'dgram') return { mode: 'dgram', addon: undefined, reason: source, fellBack: false };
  const loaded = loadUdpBatch();
  if ('addon' in loaded) return { mode: 'batched', addon: loaded.addon, reason: source, fellBack: false };
  if (mode === 'batched') throw new Error(`${source} but the udp-batch addon cannot be used: ${loaded.error}`);
  return { mode: 'dgram', addon: undefined, reason: loaded.error, fellBack: true };
}

/**
 * Logs the choice once (`udp_io`; a warning when `auto` fell back) and exports it as
 * `slipstream_relay_udp_io{mode}` (1 for the running mode); when batched, the addon's
 * refusals as `slipstream_relay_udp_io_errors_total{kind}` (send, receive, truncated).
 */
export function announceUdpIo(logger: Logger, registry: Registry, choice: UdpIoChoice, batched: RelayUdpBatch | undefined): void {
  const line = { event: 'udp_io', mode: choice.mode, reason: choice.reason };
  if (choice.mode === 'batched') logger.info(line, 'udp i/o: batched (recvmmsg/sendmmsg)');
  else if (choice.fellBack) logger.warn(line, `udp i/o: dgram, the udp-batch addon is unavailable (${choice.reason})`);
  else logger.info(line, `udp i/o: dgram (${choice.reason})`);
  new Gauge({
    name: 'slipstream_relay_udp_io',
    help: 'The UDP I/O the relay runs: mode batched (recvmmsg/sendmmsg addon) or dgram (the fallback); 1 for the running one.',
    labelNames: ['mode'],
    registers: [registry],
    // Relay workers each run a choice: 1 where any of them runs that mode, not the count of workers.
    aggregator: 'max',
    collect() {
      this.set({ mode: 'batched' }, choice.mode === 'batched' ? 1 : 0);
      this.set({ mode: 'dgram' }, choice.mode === 'dgram' ? 1 : 0);
    },
  });
  if (batched === undefined) return;
  new Counter({
    name: 'slipstream_relay_udp_io_errors_total',
    help: 'Batched UDP I/O: datagrams the kernel refused to send (full send buffer, unreachable), receive errors (ICMP reports), datagrams truncated (over 64 KiB); kind send|receive|truncated.',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const s = batched.stats();
      this.reset();
      this.inc({ kind: 'send' }, s.sendErrors + s.queueErrors);
      this.inc({ kind: 'receive' }, s.receiveErrors);
      this.inc({ kind: 'truncated' }, s.truncated);
    },
  });
}

/** `net.core.rmem_max`, bytes, or undefined where unreadable (not Linux). */
export function readRmemMax(): number | undefined {
  try {
    return Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim());
  } catch {
    return undefined;
  }
}

const warnedCapped = new Set<string>();

/**
 * SO_SNDBUF of batched listen and tunnel sockets, bytes: one commit sends up to the send
 * arena (1 MiB) through one socket at once, and a full send buffer drops the rest
 * (counted in `slipstream_relay_udp_io_errors_total{kind="send"}`) where `dgram` would
 * queue. Capped by `net.core.wmem_max` unless the relay may force it (root).
 */
export const BATCHED_SEND_BUFFER_BYTES = 2 * 1024 * 1024;

/**
 * Warns once per socket kind (`socket_buffer_capped`) when the kernel granted less
 * receive buffer than asked: `net.core.rmem_max` caps SO_RCVBUF (relay/README.md says
 * how to raise it). `grantedBytes` is the read-back SO_RCVBUF, halved (Linux doubles it).
 */
export function checkReceiveBuffer(logger: Logger, kind: string, requestedBytes: number, grantedBytes: number): void {
  if (requestedBytes <= 0 || grantedBytes >= requestedBytes || warnedCapped.has(kind)) return;
  warnedCapped.add(kind);
  logger.warn(
    { event: 'socket_buffer_capped', kind, requestedBytes, grantedBytes, rmemMax: readRmemMax() },
    `${kind} sockets got a ${grantedBytes}-byte receive buffer instead of ${requestedBytes}: raise net.core.rmem_max (sysctl -w net.core.rmem_max=${requestedBytes}) or bursts are dropped by the kernel`,
  );
}

/** The relay's sockets on the addon, numbered by the core's socket ids. */
export class RelayUdpBatch {
  /** True from the first datagram read in a loop turn to that turn's check phase: the relay's flush then queues, and sends and closes wait. */
  inBatch = false;
  private readonly io: UdpBatch;
  /** Core socket id → native socket id. */
  private readonly native = new Map<number, number>();
  /** Native socket id → core socket id. */
  private readonly coreIds: number[] = [];
  /** Native socket ids of origin-facing sockets (connected to their peer). */
  private readonly upstream: boolean[] = [];
  /** The tunnel socket's native id when a worker's intake hook sees its datagrams first (-1: none). */
  private tunnelNative = -1;
  private tunnelIntake: ((bytes: Uint8Array, from: Endpoint) => boolean) | undefined;
  private nowMs = 0;
  /** A socket's batch ended: the next datagram reads the clock again (one read per batch, not per datagram). */
  private clockStale = true;
  /** The core took a datagram of this batch: drain it at the batch's end. */
  private fed = false;
  private readonly endBound = (): void => this.end();

  /**
   * @param flush the relay's drain of the core (events, transmits, closes, timer); called after each socket's batch and once more in the check phase
   */
  constructor(
    addon: UdpBatchAddon,
    private readonly core: RelayCore,
    private readonly flush: () => void,
  ) {
    this.io = new UdpBatch(addon, (id, from, bytes) => this.onDatagram(id, from, bytes), () => this.onBatchEnd());
  }

  /** Open sockets. */
  get size(): number {
    return this.native.size;
  }

  /** The addon's counters, and datagrams refused before the kernel (an address that is not an IP literal). */
  stats(): ReturnType<UdpBatch['stats']> & { queueErrors: number } {
    return { ...this.io.stats(), queueErrors: this.io.queueErrors };
  }

  /** Whether the core socket `socketId` runs on the addon (a batched socket). */
  has(socketId: number): boolean {
    return this.native.has(socketId);
  }

  /**
   * Binds the core's socket `socketId` (with SO_REUSEPORT when `reusePort`: relay
   * workers on one port); returns the bound address. Throws (Error with `code`) when the bind fails.
   */
  open(socketId: number, kind: string, address: string, port: number, receiveBufferBytes: number, reusePort = false): Endpoint & { receiveBufferBytes: number } {
    const socket = this.io.open(address, port, { receiveBufferBytes, sendBufferBytes: kind === 'upstream' ? 0 : BATCHED_SEND_BUFFER_BYTES, reusePort });
    this.native.set(socketId, socket.id);
    this.coreIds[socket.id] = socketId;
    this.upstream[socket.id] = kind === 'upstream';
    return { address: socket.address, port: socket.port, receiveBufferBytes: socket.receiveBufferBytes };
  }

  /**
   * Relay workers: every datagram of the core's socket `socketId` (the tunnel's) goes to
   * `intake` first, which takes those another worker owns (see worker-hooks.ts).
   */
  setTunnelIntake(socketId: number, intake: (bytes: Uint8Array, from: Endpoint) => boolean): void {
    this.tunnelNative = this.native.get(socketId) ?? -1;
    this.tunnelIntake = intake;
  }

  /** Attaches a classic BPF program to the reuseport group of the core's socket `socketId` (throws when the kernel refuses it). */
  attachReuseportCbpf(socketId: number, program: readonly CbpfInstruction[]): void {
    const id = this.native.get(socketId);
    if (id === undefined) throw new Error(`no batched socket ${socketId}`);
    this.io.attachReuseportCbpf(id, program);
  }

  /** Queues a transmit of the core (copied now; sent at {@link commit}). */
  send(tx: Transmit): void {
    const id = this.native.get(tx.socketId);
    if (id !== undefined) this.io.queue(id, tx.address, tx.port, tx.prefix, tx.bytes, this.upstream[id]);
  }

  /** Sends what is queued (one `sendmmsg` per socket). */
  commit(): void {
    this.io.commit();
  }

  /** Closes the core's socket (after sending what is queued). */
  close(socketId: number): void {
    const id = this.native.get(socketId);
    if (id === undefined) return;
    this.native.delete(socketId);
    if (id === this.tunnelNative) this.tunnelNative = -1;
    this.io.close(id);
  }

  /** Closes every batched socket this relay opened. */
  closeAll(): void {
    for (const socketId of [...this.native.keys()]) this.close(socketId);
  }

  private onDatagram(id: number, from: Endpoint, bytes: Uint8Array): void {
    // Another worker's session: handed over (copied), nothing queued here.
    if (id === this.tunnelNative && this.tunnelIntake!(bytes, from)) return;
    if (this.clockStale) {
      this.clockStale = false;
      this.nowMs = performance.now();
    }
    if (!this.inBatch) {
      this.inBatch = true;
      setImmediate(this.endBound);
    }
    this.core.handleDatagram(this.nowMs, this.coreIds[id]!, from, bytes);
    this.fed = true;
  }

  /**
   * A socket's batch ended: the core's output of the whole batch is drained now, before
   * the next `recvmmsg` reuses the arena its transmits' bytes point into. (Draining after
   * every datagram instead changes nothing but the cost: events still come before the
   * transmits they announce sockets for, and sends and closes wait for the check phase.)
   */
  private onBatchEnd(): void {
    this.clockStale = true;
    if (!this.fed) return;
    this.fed = false;
    this.flush();
  }

  private end(): void {
    this.inBatch = false;
    this.flush();
  }
}
