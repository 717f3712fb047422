/**
 * A deterministic virtual network: hosts with addresses, directional links between host
 * pairs, optional access links per host, partitions between host groups, and virtual UDP
 * sockets that implement the same
 * {@link Transport} as the real `node:dgram` driver — so relay, SDK and coordinator cores
 * run unchanged on it, at virtual time, reproducibly from one seed.
 *
 * Nothing here reads a clock or a timer: time advances only as {@link SimNetwork.runUntil}
 * / {@link SimNetwork.runUntilIdle} run the event queue.
 *
 * The access-link model: a host's last mile (Wi-Fi, cellular, home broadband) is one
 * link per direction that every datagram of that host crosses, whatever its
 * destination — so one burst, one queue and one delay line for all its traffic. A
 * datagram from A to B crosses A's uplink (offered when sent), then the path link A→B
 * (offered when it leaves the uplink), then B's downlink (offered when it leaves the
 * path), each hop offered at the instant the datagram reaches it, so rate queues see
 * arrivals in time order. Delays add; a drop on any hop drops it (the fate names the
 * hop); a duplicate made on one hop crosses the later hops on its own. A host without
 * an access link has none of these hops, and a host talking to itself crosses none.
 */
import { ErrorCode, SimConfigError, SlipError } from '../../../proto/src/errors.js';
import { Rng } from '../../../proto/src/rng.js';
import type { Endpoint, ReceiveHandler, Transport } from '../../../proto/src/transport.js';
import { EventQueue, SimTimer, type SimEventDescription, type SimEventHandler } from './event-queue.js';
import { Hop, PacketFate, type FateSink, type HopValue } from './fate.js';
import { DropReason, LinkDirection, validateLinkModel, type DropReasonValue, type LinkModelSpec } from './link.js';

/** Options of a {@link SimNetwork}. */
export interface SimNetworkInit {
  /** Seed of every random draw the network makes (links, corruption). Default 1. */
  seed?: number;
  /** Link model for host pairs without their own (each direction separately). Default: a perfect link (no delay, no loss). */
  defaultLink?: LinkModelSpec;
  /** Receives every packet's fate. Default: none (nothing is recorded). */
  fateSink?: FateSink;
}

/** First port handed out for `bind(0)` (the IANA dynamic range, as most OSes use). */
export const EPHEMERAL_PORT_MIN = 49152;
/** Last port handed out for `bind(0)`. */
export const EPHEMERAL_PORT_MAX = 65535;

/** Event kinds the network schedules on its own behalf: a datagram reaches its socket, or the next hop of its way. */
const DELIVER = 1;
/** The datagram left the sender's uplink: offer it to the path link. */
const REACH_PATH = 2;
/** The datagram left the path link: offer it to the receiver's downlink. */
const REACH_DOWNLINK = 3;

/**
 * The copy-number bit a duplicate made on each hop sets ({@link Hop} order), so every
 * copy of one datagram has its own number and a path duplicate is copy 1 as without
 * access links.
 */
const DUPLICATE_BIT: readonly number[] = [0, 1, 2, 4];

/** Direction of an access link, from its host's side. */
export type AccessDirection = 'uplink' | 'downlink';

/** A datagram in flight. Pooled: one object per copy in flight, reused after delivery. */
class SimPacket {
  packetId = 0;
  copy = 0;
  /** The sending socket's (immutable) local address, handed to the receiver as `from`. */
  from: Endpoint | undefined = undefined;
  fromHost: SimHost | undefined = undefined;
  toHost: SimHost | undefined = undefined;
  toPort = 0;
  buffer = new Uint8Array(0);
  length = 0;
  sentAtMs = 0;
  corrupted = false;
}

/** A host of the network: one address, its sockets, and its outgoing links. */
export class SimHost {
  /** @internal sockets by port. */
  readonly sockets = new Map<number, SimUdpSocket>();
  /** @internal outgoing links by destination host id (ids are dense: an array, looked up per packet). */
  readonly links: (LinkDirection | undefined)[] = [];
  /** @internal destination host ids whose links follow the default model. */
  readonly defaultLinkTo = new Set<number>();
  /** @internal how many partitions separate this host from each other host (by id). */
  readonly blockedBy = new Map<number, number>();
  /** @internal the access link every datagram this host sends crosses first, or undefined (none). */
  uplink: LinkDirection | undefined = undefined;
  /** @internal the access link every datagram this host receives crosses last, or undefined (none). */
  downlink: LinkDirection | undefined = undefined;
  private nextEphemeralPort = EPHEMERAL_PORT_MIN;

  /** @internal use {@link SimNetwork.addHost}. */
  constructor(
    private readonly network: SimNetwork,
    /** The host's address (any string; IPv4/IPv6 literals read best in logs). */
    readonly address: string,
    /** Dense id in order of creation. */
    readonly id: number,
  ) {}

  /**
   * Binds a UDP socket. Port 0 picks a free port from the ephemeral range.
   * Throws {@link SimConfigError} when the port is taken or out of range.
   */
  bind(port = 0): SimUdpSocket {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new SimConfigError('port', `port: ${port} is out of range; expected an integer from 0 to 65535`);
    }
    if (port === 0) port = this.freePort();
    else if (this.sockets.has(port)) throw new SimConfigError('port', `port: ${this.address}:${port} is already bound; close that socket or bind port 0`);
    const socket = new SimUdpSocket(this.network, this, port);
    this.sockets.set(port, socket);
    return socket;
  }

  private freePort(): number {
    const span = EPHEMERAL_PORT_MAX - EPHEMERAL_PORT_MIN + 1;
    for (let tried = 0; tried < span; tried++) {
      const port = this.nextEphemeralPort;
      this.nextEphemeralPort = port === EPHEMERAL_PORT_MAX ? EPHEMERAL_PORT_MIN : port + 1;
      if (!this.sockets.has(port)) return port;
    }
    throw new SimConfigError('port', `port: every ephemeral port (${EPHEMERAL_PORT_MIN}–${EPHEMERAL_PORT_MAX}) of ${this.address} is bound`);
  }
}

/**
 * A virtual UDP socket: the simulator's {@link Transport}. Datagrams are copied on
 * `send` (as the kernel does), so the caller may reuse its buffer at once.
 */
export class SimUdpSocket implements Transport {
  private readonly local: Endpoint;
  private handler: ReceiveHandler | undefined = undefined;
  private isClosed = false;

  /** @internal use {@link SimHost.bind}. */
  constructor(
    private readonly network: SimNetwork,
    /** The host the socket is bound on. */
    readonly host: SimHost,
    port: number,
  ) {
    this.local = Object.freeze({ address: host.address, port });
  }

  /** Sends one datagram. Throws (code `SLIP_ERR_CLOSED`) only when the socket is closed; network conditions drop silently. */
  send(bytes: Uint8Array, to: Endpoint): void {
    if (this.isClosed) throw new SlipError(ErrorCode.Closed, `socket ${this.local.address}:${this.local.port} is closed; bind a new one to send`);
    this.network.transmit(this, this.host, bytes, to.address, to.port);
  }

  /** Sets the receive handler (a later call replaces it). Without one, arriving datagrams are discarded. */
  onReceive(handler: ReceiveHandler): void {
    this.handler = handler;
  }

  /** The bound address and port (the same frozen object every call). */
  localAddress(): Endpoint {
    return this.local;
  }

  /** Whether {@link close} has been called. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Unbinds the port; idempotent. Datagrams still in flight to it are dropped (`noSocket`). */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.handler = undefined;
    if (this.host.sockets.get(this.local.port) === this) this.host.sockets.delete(this.local.port);
  }

  /** @internal called by the network with the socket's own packet buffer view. */
  deliver(bytes: Uint8Array, from: Endpoint): void {
    this.handler?.(bytes, from);
  }
}

/** A partition set by {@link SimNetwork.partition}; pass it to {@link SimNetwork.heal}. */
export interface SimPartition {
  readonly groupA: readonly string[];
  readonly groupB: readonly string[];
}

/**
 * The virtual network. Typical use:
 * ```ts
 * const net = new SimNetwork({ seed: 7, defaultLink: { delayMs: 20, loss: { model: 'bernoulli', p: 0.01 } } });
 * const a = net.addHost('10.0.0.1').bind(), b = net.addHost('10.0.0.2').bind(4000);
 * b.onReceive((bytes, from) => b.send(bytes, from));
 * a.send(payload, b.localAddress());
 * net.runUntilIdle();
 * ```
 */
export class SimNetwork implements SimEventHandler {
  /** The virtual clock and event queue (also a {@link Clock} for cores). */
  readonly queue = new EventQueue();
  private readonly hostsByAddress = new Map<string, SimHost>();
  private readonly hostList: SimHost[] = [];
  private defaultLink: LinkModelSpec;
  /** High bits of every link's seed; the low 32 bits come from the host pair. */
  private readonly linkSeedHigh: number;
  private readonly corruptRng: Rng;
  private readonly userRng: Rng;
  private sink: FateSink | undefined;
  private readonly fate = new PacketFate();
  /**
   * Packets not in flight, by buffer length: a packet reused for a datagram of its own
   * length hands the receiver its buffer itself, never a view (a view is an object per
   * delivery, and a run delivers millions). A run sends a handful of distinct sizes.
   */
  private readonly pools = new Map<number, SimPacket[]>();
  private readonly partitions = new Set<SimPartition>();
  private nextPacketId = 0;

  constructor(init: SimNetworkInit = {}) {
    const seed = init.seed ?? 1;
    if (!Number.isFinite(seed)) throw new SimConfigError('seed', `seed: ${seed} is not a finite number`);
    this.defaultLink = init.defaultLink ?? {};
    validateLinkModel(this.defaultLink, 'defaultLink');
    const master = new Rng(seed);
    // 21 bits, so that high · 2^32 + low stays an exact integer (< 2^53) for Rng's seed.
    this.linkSeedHigh = master.nextUint32() >>> 11;
    this.corruptRng = master.fork();
    this.userRng = master.fork();
    this.sink = init.fateSink;
  }

  /** Current virtual time, ms. */
  now(): number {
    return this.queue.nowMs;
  }

  /** Current virtual time, ms. */
  get nowMs(): number {
    return this.queue.nowMs;
  }

  /** Datagrams sent so far (each `send` call counts once, even if duplicated or dropped). */
  get packetsSent(): number {
    return this.nextPacketId;
  }

  /** Sets or removes (undefined) the fate sink. */
  setFateSink(sink: FateSink | undefined): void {
    this.sink = sink;
  }

  /**
   * A new random stream derived from the network's seed, for cores and scenario code
   * that run on the network (so one seed fixes the whole run).
   */
  forkRng(): Rng {
    return this.userRng.fork();
  }

  /** Adds a host. Throws {@link SimConfigError} when the address is taken. */
  addHost(address: string): SimHost {
    if (this.hostsByAddress.has(address)) throw new SimConfigError('address', `address: host ${address} already exists`);
    const host = new SimHost(this, address, this.hostList.length);
    this.hostsByAddress.set(address, host);
    this.hostList.push(host);
    return host;
  }

  /** The host with `address`, or undefined. */
  host(address: string): SimHost | undefined {
    return this.hostsByAddress.get(address);
  }

  /** Every host, in order of creation. */
  get hosts(): readonly SimHost[] {
    return this.hostList;
  }

  /**
   * Sets the model of the link from host `from` to host `to` (one direction). Takes
   * effect for packets sent afterwards; packets in flight keep their arrival times.
   * @returns the link direction (also a handle for later `setModel` calls)
   */
  setLink(from: string, to: string, spec: LinkModelSpec): LinkDirection {
    const src = this.requireHost(from, 'from');
    const dst = this.requireHost(to, 'to');
    validateLinkModel(spec, `link ${from}→${to}`);
    src.defaultLinkTo.delete(dst.id);
    const existing = src.links[dst.id];
    if (existing) {
      existing.setModel(spec);
      return existing;
    }
    const link = new LinkDirection(spec, this.linkRng(src, dst));
    src.links[dst.id] = link;
    return link;
  }

  /** Sets the same model on both directions between `a` and `b` (each direction keeps its own random stream and queue). */
  setLinkBoth(a: string, b: string, spec: LinkModelSpec): void {
    this.setLink(a, b, spec);
    this.setLink(b, a, spec);
  }

  /** The link direction from `from` to `to` (created with the default model if none was set). */
  link(from: string, to: string): LinkDirection {
    return this.resolveLink(this.requireHost(from, 'from'), this.requireHost(to, 'to'));
  }

  /**
   * Sets the model of `address`'s access link in one direction, creating it on first
   * use (see the module comment: every datagram the host sends crosses its uplink,
   * every datagram it receives its downlink, besides the path link). Takes effect for
   * datagrams offered to it afterwards. Throws {@link SimConfigError} on an unknown
   * host or a bad spec.
   * @returns the link direction (also a handle for later `setModel` calls)
   */
  setAccessLink(address: string, direction: AccessDirection, spec: LinkModelSpec): LinkDirection {
    const host = this.requireHost(address, 'address');
    validateLinkModel(spec, `access ${address} ${direction}`);
    const existing = direction === 'uplink' ? host.uplink : host.downlink;
    if (existing) {
      existing.setModel(spec);
      return existing;
    }
    const link = new LinkDirection(spec, this.accessRng(host, direction));
    if (direction === 'uplink') host.uplink = link;
    else host.downlink = link;
    return link;
  }

  /** `address`'s access link in `direction`, or undefined when it has none. */
  accessLink(address: string, direction: AccessDirection): LinkDirection | undefined {
    const host = this.requireHost(address, 'address');
    return direction === 'uplink' ? host.uplink : host.downlink;
  }

  /**
   * The fixed one-way delay (the models' `delayMs`, no jitter, queue or trace) from
   * `from` to `to`: the sender's uplink, the path link and the receiver's downlink, ms.
   * For what the simulator models without datagrams (an HTTP round trip).
   */
  modelDelayMs(from: string, to: string): number {
    const src = this.requireHost(from, 'from');
    const dst = this.requireHost(to, 'to');
    let delayMs = this.resolveLink(src, dst).model.delayMs ?? 0;
    if (src !== dst) delayMs += (src.uplink?.model.delayMs ?? 0) + (dst.downlink?.model.delayMs ?? 0);
    return delayMs;
  }

  /** Replaces the default model, also on every host pair that has not had its own set. */
  setDefaultLink(spec: LinkModelSpec): void {
    validateLinkModel(spec, 'defaultLink');
    this.defaultLink = spec;
    for (const host of this.hostList) {
      for (const id of host.defaultLinkTo) if (id !== host.id) host.links[id]?.setModel(spec);
    }
  }

  /**
   * Cuts every host of `groupA` off from every host of `groupB`, both directions, until
   * healed. Packets sent across the cut are dropped (`partition`), and so are packets
   * already in flight that arrive while it holds.
   */
  partition(groupA: readonly string[], groupB: readonly string[]): SimPartition {
    const a = groupA.map((address) => this.requireHost(address, 'groupA'));
    const b = groupB.map((address) => this.requireHost(address, 'groupB'));
    const handle: SimPartition = Object.freeze({ groupA: [...groupA], groupB: [...groupB] });
    this.partitions.add(handle);
    this.adjustBlocks(a, b, 1);
    return handle;
  }

  /** Removes one partition; idempotent. */
  heal(partition: SimPartition): void {
    if (!this.partitions.delete(partition)) return;
    this.adjustBlocks(
      partition.groupA.map((address) => this.requireHost(address, 'groupA')),
      partition.groupB.map((address) => this.requireHost(address, 'groupB')),
      -1,
    );
  }

  /** Removes every partition. */
  healAll(): void {
    for (const partition of [...this.partitions]) this.heal(partition);
  }

  /** Whether a partition currently separates `a` from `b`. */
  isPartitioned(a: string, b: string): boolean {
    const src = this.hostsByAddress.get(a);
    const dst = this.hostsByAddress.get(b);
    return src !== undefined && dst !== undefined && (src.blockedBy.get(dst.id) ?? 0) > 0;
  }

  /**
   * Calls `callback(nowMs)` once at virtual time `atMs` (past times run now).
   * @returns the timer; `clear()` cancels it, `set()` re-arms it
   */
  schedule(atMs: number, callback: (nowMs: number) => void, label?: SimEventDescription): SimTimer {
    const timer = new SimTimer(this.queue, callback, label);
    timer.set(atMs);
    return timer;
  }

  /**
   * A reusable, initially disarmed timer: what a driver uses for a core's `pollTimeout()`.
   * `label` (what it is for, on which host) names it in diagnostics such as the livelock guard's.
   */
  createTimer(callback: (nowMs: number) => void, label?: SimEventDescription): SimTimer {
    return new SimTimer(this.queue, callback, label);
  }

  /** @internal Diagnostics: a delivery (or a hop reached), by its endpoints. */
  describeEvent(kind: number, payload: unknown): SimEventDescription {
    const packet = payload as SimPacket;
    const hop = kind === REACH_PATH ? ' (leaving the uplink)' : kind === REACH_DOWNLINK ? ' (reaching the downlink)' : '';
    return { what: `datagram ${packet.from!.address}:${packet.from!.port} → ${packet.toHost!.address}:${packet.toPort}${hop}`, host: packet.toHost!.address };
  }

  /** Runs every event due at or before `untilMs` and leaves the clock at `untilMs`. Returns the events run. */
  runUntil(untilMs: number): number {
    return this.queue.runUntil(untilMs);
  }

  /** Runs until no event is left (or `maxEvents` ran, against self-rescheduling loops). Returns the events run. */
  runUntilIdle(maxEvents?: number): number {
    return this.queue.runUntilIdle(maxEvents);
  }

  /** Runs the next event, if any. */
  step(): boolean {
    return this.queue.dispatchNext();
  }

  /** @internal the send path of {@link SimUdpSocket}. */
  transmit(socket: SimUdpSocket, src: SimHost, bytes: Uint8Array, toAddress: string, toPort: number): void {
    const packetId = this.nextPacketId++;
    const nowMs = this.queue.nowMs;
    const dst = this.hostsByAddress.get(toAddress);
    if (dst === undefined) {
      if (this.sink) this.reportDrop(socket, packetId, 0, toAddress, toPort, bytes.length, nowMs, nowMs, DropReason.NoHost);
      return;
    }
    if (this.partitions.size > 0 && (src.blockedBy.get(dst.id) ?? 0) > 0) {
      if (this.sink) this.reportDrop(socket, packetId, 0, toAddress, toPort, bytes.length, nowMs, nowMs, DropReason.Partition);
      return;
    }
    const packet = this.takePacket(bytes.length);
    packet.packetId = packetId;
    packet.copy = 0;
    packet.from = socket.localAddress();
    packet.fromHost = src;
    packet.toHost = dst;
    packet.toPort = toPort;
    packet.sentAtMs = nowMs;
    packet.buffer.set(bytes);
    packet.corrupted = false;
    if (src.uplink !== undefined && src !== dst) this.cross(packet, src.uplink, Hop.Uplink, nowMs);
    else this.cross(packet, src.links[dst.id] ?? this.resolveLink(src, dst), Hop.Path, nowMs);
  }

  /**
   * Offers `packet` to the link of `hop` at `nowMs` and schedules what follows for each
   * copy that gets through: the next hop, or the delivery. A drop ends the packet here.
   */
  private cross(packet: SimPacket, link: LinkDirection, hop: HopValue, nowMs: number): void {
    const copies = link.offer(nowMs, packet.length);
    if (copies === 0) {
      if (this.sink) this.reportPacketFate(packet, nowMs, link.lastDropReason, false, hop);
      this.releasePacket(packet);
      return;
    }
    const dst = packet.toHost!;
    const next = hop === Hop.Uplink ? REACH_PATH : hop === Hop.Path && dst.downlink !== undefined && dst !== packet.fromHost ? REACH_DOWNLINK : DELIVER;
    // The duplicate is a clean clone of what entered the hop (netem corrupts the original only).
    const duplicate = copies === 2 ? this.clonePacket(packet, packet.copy | DUPLICATE_BIT[hop]!) : undefined;
    if (link.lastCorrupted && packet.length > 0) {
      packet.corrupted = true;
      const bit = this.corruptRng.nextInt(packet.length * 8);
      packet.buffer[bit >>> 3]! ^= 1 << (bit & 7);
    }
    this.queue.schedule(link.deliverAtMs[0]!, this, next, packet);
    if (duplicate !== undefined) this.queue.schedule(link.deliverAtMs[1]!, this, next, duplicate);
  }

  /** A pooled packet whose buffer is exactly `length` bytes (see {@link pools}). */
  private takePacket(length: number): SimPacket {
    let pool = this.pools.get(length);
    if (pool === undefined) this.pools.set(length, (pool = []));
    let packet = pool.pop();
    if (packet === undefined) {
      packet = new SimPacket();
      packet.buffer = new Uint8Array(length);
    }
    packet.length = length;
    return packet;
  }

  private clonePacket(packet: SimPacket, copy: number): SimPacket {
    const clone = this.takePacket(packet.length);
    clone.packetId = packet.packetId;
    clone.copy = copy;
    clone.from = packet.from;
    clone.fromHost = packet.fromHost;
    clone.toHost = packet.toHost;
    clone.toPort = packet.toPort;
    clone.sentAtMs = packet.sentAtMs;
    clone.buffer.set(packet.buffer);
    clone.corrupted = packet.corrupted;
    return clone;
  }

  private releasePacket(packet: SimPacket): void {
    packet.from = undefined;
    packet.fromHost = undefined;
    packet.toHost = undefined;
    this.pools.get(packet.buffer.length)!.push(packet);
  }

  /** @internal runs a delivery, or takes a datagram on to its next hop. */
  handleEvent(kind: number, payload: unknown, nowMs: number): void {
    const packet = payload as SimPacket;
    const src = packet.fromHost!;
    const dst = packet.toHost!;
    if (kind === REACH_PATH) {
      this.cross(packet, src.links[dst.id] ?? this.resolveLink(src, dst), Hop.Path, nowMs);
      return;
    }
    if (kind === REACH_DOWNLINK) {
      this.cross(packet, dst.downlink!, Hop.Downlink, nowMs);
      return;
    }
    let reason: DropReasonValue = DropReason.None;
    let socket: SimUdpSocket | undefined;
    if (this.partitions.size > 0 && (src.blockedBy.get(dst.id) ?? 0) > 0) {
      reason = DropReason.Partition;
    } else {
      socket = dst.sockets.get(packet.toPort);
      if (socket === undefined) reason = DropReason.NoSocket;
    }
    if (this.sink) this.reportPacketFate(packet, nowMs, reason, packet.corrupted, Hop.None);
    if (socket !== undefined) {
      const buffer = packet.buffer;
      socket.deliver(packet.length === buffer.length ? buffer : buffer.subarray(0, packet.length), packet.from!);
    }
    this.releasePacket(packet);
  }

  /** A drop at the sender's host, before the datagram became a packet (no destination host, a partition). */
  private reportDrop(socket: SimUdpSocket, packetId: number, copy: number, toAddress: string, toPort: number, sizeBytes: number, sentAtMs: number, atMs: number, reason: DropReasonValue): void {
    this.recordFate(packetId, copy, socket.localAddress(), toAddress, toPort, sizeBytes, sentAtMs, atMs, reason, false, Hop.None);
  }

  /** `packet`'s fate at `atMs`: delivered (reason None) or dropped, by the link of `hop` or (Hop.None) at the destination host. */
  private reportPacketFate(packet: SimPacket, atMs: number, reason: DropReasonValue, corrupted: boolean, hop: HopValue): void {
    this.recordFate(packet.packetId, packet.copy, packet.from!, packet.toHost!.address, packet.toPort, packet.length, packet.sentAtMs, atMs, reason, corrupted, hop);
  }

  /** Fills the one reused fate record and hands it to the sink (no allocation per datagram). */
  private recordFate(packetId: number, copy: number, from: Endpoint, toAddress: string, toPort: number, sizeBytes: number, sentAtMs: number, atMs: number, reason: DropReasonValue, corrupted: boolean, hop: HopValue): void {
    const fate = this.fate;
    fate.packetId = packetId;
    fate.copy = copy;
    fate.fromAddress = from.address;
    fate.fromPort = from.port;
    fate.toAddress = toAddress;
    fate.toPort = toPort;
    fate.sizeBytes = sizeBytes;
    fate.sentAtMs = sentAtMs;
    fate.atMs = atMs;
    fate.dropReason = reason;
    fate.corrupted = corrupted;
    fate.hop = hop;
    this.sink!.record(fate);
  }

  private resolveLink(src: SimHost, dst: SimHost): LinkDirection {
    let link = src.links[dst.id];
    if (link === undefined) {
      // A host talking to itself goes over loopback: perfect unless set explicitly.
      link = new LinkDirection(src === dst ? {} : this.defaultLink, this.linkRng(src, dst));
      src.links[dst.id] = link;
      src.defaultLinkTo.add(dst.id);
    }
    return link;
  }

  /**
   * Each direction's stream depends only on the seed and the two host ids, not on the
   * order in which links were first used, so adding traffic on one pair does not change
   * the fates on another.
   */
  private linkRng(src: SimHost, dst: SimHost): Rng {
    const low = (Math.imul(src.id + 1, 0x01000193) ^ Math.imul(dst.id + 1, 0x9e3779b1)) >>> 0;
    return new Rng(this.linkSeedHigh * 4294967296 + low);
  }

  /** An access link's stream: from the seed, the host id and the direction only (as {@link linkRng}). */
  private accessRng(host: SimHost, direction: AccessDirection): Rng {
    const low = (Math.imul(host.id + 1, 0x85ebca6b) ^ (direction === 'uplink' ? 0x27d4eb2f : 0x165667b1)) >>> 0;
    return new Rng(this.linkSeedHigh * 4294967296 + low);
  }

  private adjustBlocks(a: readonly SimHost[], b: readonly SimHost[], delta: number): void {
    for (const x of a) {
      for (const y of b) {
        if (x === y) continue;
        for (const [from, to] of [
          [x, y],
          [y, x],
        ] as const) {
          const count = (from.blockedBy.get(to.id) ?? 0) + delta;
          if (count > 0) from.blockedBy.set(to.id, count);
          else from.blockedBy.delete(to.id);
        }
      }
    }
  }

  private requireHost(address: string, parameter: string): SimHost {
    const host = this.hostsByAddress.get(address);
    if (host === undefined) throw new SimConfigError(parameter, `${parameter}: no host has address ${address}; add it with addHost first`);
    return host;
  }
}
