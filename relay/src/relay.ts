/**
 * The production driver of {@link RelayCore}: real `dgram`/`net` sockets, one timer,
 * the `/metrics` and `/health` HTTP endpoint, the revocation sources (revocation-sources.ts), and the
 * lifecycle (reload, drain, close). Thin on purpose: every decision is the core's.
 *
 * Hot path: a datagram arrives → `core.handleDatagram` → drain events and transmits →
 * re-arm the timer only if the core's deadline moved earlier. Received Buffers are
 * fresh per message (Node allocates them), so the core hands views of them straight
 * back to `socket.send` without copying; a prefix (PROXY/SPP/tunnel header) goes out
 * with scatter/gather (`send([prefix, bytes])`). L4 TCP connections are piped by
 * {@link TcpProxy} (tcp-proxy.ts); when they end is the core's decision too.
 */
import { randomFillSync } from 'node:crypto';
import dgram from 'node:dgram';
import { createServer, type Server as HttpServer } from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Endpoint } from '../../proto/src/transport.js';
import { LateTimer } from '../../kit/late-timer.js';
import type { RelayConfig } from './config.js';
import type { RelayCoreConfig } from './core/config-types.js';
import { dropReasonNames, RelayCore, TRANSPORT_PORT_BASE, type RelayEvent } from './core/relay-core.js';
import { ipLiteralLookup } from '../../kit/udp-lookup.js';
import type { FleetAgent } from './fleet.js';
import { FleetMembership, fleetMembershipKey } from './fleet-membership.js';
import { isSilentTcpEnd, RelayLogs } from './relay-logs.js';
import { RelayRevocations } from './revocation-sources.js';
import { createRelayMetrics, type FleetStatus } from './metrics.js';
import { checkFdLimit, FD_RESERVE, readOpenFileLimit, type OpenFileLimit } from './fd-limit.js';
import { TcpProxy } from './tcp-proxy.js';
import type { WebRtcEntry } from './webrtc.js';
import { announceUdpIo, checkReceiveBuffer, chooseUdpIo, RelayUdpBatch, type UdpIoChoice } from './udp-batch-driver.js';
import type { RelayHealth, RelayWorkerHooks } from './worker-hooks.js';

/** Datagrams an origin-facing socket holds while its UDP connect completes (about one tick). */
const UPSTREAM_PENDING_MAX = 256;

/** An origin-facing UDP socket and the peer it is connected to. */
interface UpstreamPeer {
  /** The core's socket id. */
  readonly id: number;
  readonly socket: dgram.Socket;
  address: string;
  port: number;
  state: 'none' | 'connecting' | 'connected';
  /** Datagrams waiting for the connect (state `connecting`). */
  pending: (Uint8Array | Uint8Array[])[] | undefined;
}

/**
 * The keys a SIGHUP reload cannot change, as text: the sockets and services they
 * configure are bound at start. (`socketReceiveBufferBytes` does reach listen sockets
 * a reload adds, but not the tunnel socket nor listeners kept from before.)
 */
export interface RestartOnlyValues {
  'tunnel.listen': string;
  'metrics.listen': string;
  'tunnel.webrtc': string;
  socketReceiveBufferBytes: string;
  udpIo: string;
  logLevel: string;
}

/** The restart-only values of a configuration (see {@link RestartOnlyValues}). */
export function restartOnlyValues(config: RelayConfig): RestartOnlyValues {
  const tunnel = config.core.tunnel;
  return {
    'tunnel.listen': tunnel === undefined ? 'none' : tunnel.listenAddress.includes(':') ? `[${tunnel.listenAddress}]:${tunnel.listenPort}` : `${tunnel.listenAddress}:${tunnel.listenPort}`,
    'metrics.listen': config.metricsListen === undefined ? 'off' : `${config.metricsListen.host}:${config.metricsListen.port}`,
    'tunnel.webrtc': config.webrtc === undefined ? 'none' : JSON.stringify({ ...config.webrtc, tls: config.webrtc.tls !== undefined }),
    socketReceiveBufferBytes: String(config.socketReceiveBufferBytes),
    udpIo: config.udpIo,
    logLevel: config.logLevel,
  };
}

export { FLEET_CHANGE_REGISTER_WAIT_MS } from './fleet-membership.js';

/** Options of {@link Relay.start}. */
export interface RelayInit {
  readonly config: RelayConfig;
  readonly logger: Logger;
  /** Wall clock for ticket expiry, Unix ms. Default `Date.now`. */
  readonly wallClockMs?: () => number;
  /** One of several relay workers on the same ports (relay/src/workers.ts); absent for a relay of one. */
  readonly worker?: RelayWorkerHooks;
}

/** Addresses the relay bound, for logs and tests (ports asked as 0 show the real one). */
export interface RelayAddresses {
  /** Per rule name: the bound listen addresses. */
  readonly rules: Record<string, Endpoint[]>;
  readonly tunnel: Endpoint | undefined;
  readonly metrics: Endpoint | undefined;
  /** The WebRTC signaling listener (`tunnel.webrtc.listen`), if any. */
  readonly webrtc: Endpoint | undefined;
}

/** A running relay. */
export class Relay {
  /** The state machine (exposed for metrics and tests). */
  readonly core: RelayCore;
  private readonly udp = new Map<number, dgram.Socket>();
  /** The UDP sockets when `udpIo` runs batched (udp-batch-driver.ts); `udp` stays empty then. */
  private readonly batched: RelayUdpBatch | undefined;
  private readonly udpIo: UdpIoChoice;
  /** Origin-facing sockets, connected to the one peer they send to (see {@link sendUpstream}). */
  private readonly upstreams = new Map<number, UpstreamPeer>();
  private readonly tcpServers = new Map<number, net.Server>();
  /** UDP sockets the core closed during the current {@link flush}, closed once its datagrams are sent. */
  private readonly closingUdp: number[] = [];
  /** Pipes of L4 TCP connections (see tcp-proxy.ts). */
  private readonly tcp: TcpProxy;
  /** The values of the keys a reload cannot change (sockets bound at start), as running. */
  private restartOnly: RestartOnlyValues;
  private readonly bound: Record<string, Endpoint[]> = {};
  private tunnelBound: Endpoint | undefined;
  private metricsBound: Endpoint | undefined;
  /** The core's timer; after a stall it lets the datagrams queued meanwhile in first (kit/late-timer.ts). */
  private readonly timer = new LateTimer({ run: () => this.onTimer(), now: () => performance.now() });
  private http: HttpServer | undefined;
  private webrtc: WebRtcEntry | undefined; // tunnel.webrtc; its native module is loaded only then
  private readonly registry: Registry;
  /** The revocation file, the coordinator's feed and its kept list (revocation-sources.ts). */
  private readonly revocations: RelayRevocations;
  private config: RelayConfig;
  /** Fleet membership across reloads (undefined until started). */
  private membership: FleetMembership | undefined;
  private startupBinds: Promise<void>[] | undefined = [];
  private closed = false;
  /** Socket errors (send failures, ICMP reports), for logs. */
  socketErrors = 0;
  /** The process's open-file limit, read at start (undefined where unknown). */
  private readonly fdLimit: OpenFileLimit | undefined = readOpenFileLimit();
  /** Refusals, unanswered flows and drops, logged as one line per reason per interval (see relay-logs.ts). */
  private readonly logs: RelayLogs;
  /** Multi-worker wiring (undefined for a relay of one). */
  private readonly hooks: RelayWorkerHooks | undefined;
  /** The tunnel socket's id once opened (hand-offs from other workers arrive there). */
  private tunnelSocketId: number | undefined;

  private constructor(
    init: RelayInit,
    private readonly logger: Logger,
  ) {
    this.config = init.config;
    this.hooks = init.worker;
    this.restartOnly = restartOnlyValues(init.config);
    const wallClockMs = init.wallClockMs ?? (() => Date.now());
    this.core = new RelayCore(this.coreConfig(init.config), { wallClockMs, randomFill: (out) => void randomFillSync(out) });
    this.udpIo = chooseUdpIo(init.config.udpIo);
    if (this.udpIo.addon !== undefined) this.batched = new RelayUdpBatch(this.udpIo.addon, this.core, () => {
        this.timer.noteInput();
        this.flush();
      });
    this.tcp = new TcpProxy(
      this.core,
      () => this.flush(),
      () => this.hasFdRoomForTcp(),
    );
    this.logs = new RelayLogs(logger, init.config.logAggregateIntervalMs, () => this.core.drops, dropReasonNames);
    this.revocations = new RelayRevocations({ core: this.core, logger, wallClockMs, config: () => this.config, flush: () => this.flush(), closed: () => this.closed });
    this.registry = createRelayMetrics(
      () => this.core,
      () => this.fleetStatus(),
      () => this.logs.totals,
    );
    announceUdpIo(logger, this.registry, this.udpIo, this.batched);
  }

  /**
   * `config.core` with `limits.sessionsMax` kept under the open-file limit (see
   * fd-limit.ts), warning (`fd_limit`) when the file asks for more than the process can hold.
   */
  private coreConfig(config: RelayConfig): RelayCoreConfig {
    const core = config.core;
    const sessionsMax = checkFdLimit(this.logger, core.limits.sessionsMax, core.rules.some((r) => r.protocol === 'tcp'), this.fdLimit);
    return sessionsMax === core.limits.sessionsMax ? core : { ...core, limits: { ...core.limits, sessionsMax } };
  }

  /**
   * Whether a TCP connection's two descriptors leave half of {@link FD_RESERVE} free: a
   * relay out of descriptors stops accepting everywhere, `/metrics` included.
   */
  private hasFdRoomForTcp(): boolean {
    if (this.fdLimit === undefined) return true;
    if (this.udp.size + (this.batched?.size ?? 0) + this.tcp.socketCount + this.tcpServers.size + 2 <= this.fdLimit.soft - FD_RESERVE / 2) return true;
    this.logs.aggregate('tcp_refused_fd_limit', 'fd_limit', { openFilesSoft: this.fdLimit.soft });
    return false;
  }

  /** Starts a relay: binds every listener, the tunnel port and the metrics endpoint. Rejects if a bind fails. */
  static async start(init: RelayInit): Promise<Relay> {
    const relay = new Relay(init, init.logger);
    // The list the relay last held, before the tunnel opens: a ticket revoked before a
    // restart stays refused while the coordinator is unreachable.
    relay.revocations.load();
    relay.core.start(performance.now());
    relay.flush();
    try {
      await Promise.all(relay.startupBinds!);
      relay.startupBinds = undefined;
      await relay.startHttp();
      if (init.config.webrtc !== undefined) relay.webrtc = await (await import('./webrtc.js')).WebRtcEntry.start({ spec: init.config.webrtc, logger: init.logger, core: relay.core, flush: () => relay.flush(), registry: relay.registry });
    } catch (error) {
      relay.close();
      throw error;
    }
    await relay.revocations.start();
    try {
      relay.membership = await relay.joinFleet(relay.config);
    } catch (error) {
      relay.close();
      throw error;
    }
    return relay;
  }

  /** Where everything listens. */
  addresses(): RelayAddresses {
    return { rules: this.bound, tunnel: this.tunnelBound, metrics: this.metricsBound, webrtc: this.webrtc?.signaling };
  }

  /** The metrics registry (for tests). */
  get metrics(): Registry {
    return this.registry;
  }

  // ---------------------------------------------------------------- driver loop

  private onMessage(socketId: number, message: Buffer, rinfo: dgram.RemoteInfo): void {
    this.timer.noteInput();
    this.core.handleDatagram(performance.now(), socketId, rinfo, message);
    this.flush();
  }

  private onTimer(): void {
    this.core.handleTimeout(performance.now());
    this.flush();
  }

  /** Drains the core: events first (they open sockets), then datagrams, then the sockets the events closed, then the timer. */
  private flush(): void {
    const core = this.core;
    for (let event = core.pollEvent(); event !== undefined; event = core.pollEvent()) this.onEvent(event);
    for (let tx = core.pollTransmit(); tx !== undefined; tx = core.pollTransmit()) {
      if (tx.port >= TRANSPORT_PORT_BASE) {
        this.webrtc?.send(tx.port, tx.prefix, tx.bytes);
        continue;
      }
      if (this.batched !== undefined) {
        this.batched.send(tx);
        continue;
      }
      const socket = this.udp.get(tx.socketId);
      if (socket === undefined) continue;
      // dgram throws synchronously for a bad destination (ERR_SOCKET_BAD_PORT, a
      // malformed address): a condition of one peer, never a reason to crash.
      try {
        const upstream = this.upstreams.get(tx.socketId);
        if (upstream !== undefined) this.sendUpstream(upstream, tx.address, tx.port, tx.prefix === undefined ? tx.bytes : [tx.prefix, tx.bytes]);
        else if (tx.prefix === undefined) socket.send(tx.bytes, tx.port, tx.address);
        else socket.send([tx.prefix, tx.bytes], tx.port, tx.address);
      } catch {
        this.socketErrors++;
      }
    }
    // Within a batch, sends and closes wait for its end (one sendmmsg per socket).
    if (this.batched?.inBatch !== true) this.closeSockets();
    const deadline = core.pollTimeout();
    if (deadline !== undefined && deadline < this.timer.deadline) this.timer.arm(deadline);
  }

  /** Sends what the batched driver queued, then closes the UDP sockets the core closed. */
  private closeSockets(): void {
    this.batched?.commit();
    for (const socketId of this.closingUdp) {
      this.batched?.close(socketId);
      const socket = this.udp.get(socketId);
      if (socket === undefined) continue;
      this.udp.delete(socketId);
      this.upstreams.delete(socketId);
      socket.close();
    }
    this.closingUdp.length = 0;
  }

  private onEvent(event: RelayEvent): void {
    switch (event.type) {
      case 'openSocket':
        if (event.protocol === 'tcp') this.openTcpListener(event.socketId, event.address, event.port, event.rule);
        else this.openUdp(event.socketId, event.kind, event.address, event.port, event.rule);
        return;
      case 'closeSocket': {
        // Closed after this flush's datagrams went out: a session's last words (the Close
        // each tunnel client gets at shutdown) are queued before its socket's close.
        if (this.udp.has(event.socketId) || this.batched?.has(event.socketId)) this.closingUdp.push(event.socketId);
        const server = this.tcpServers.get(event.socketId);
        if (server) {
          this.tcpServers.delete(event.socketId);
          server.close();
        }
        return;
      }
      case 'sessionStart':
        this.logger.info({ event: 'session_start', kind: event.kind, session: event.id, rule: event.rule, client: event.client, origin: event.origin, fecMode: event.fecMode, ...(event.exit !== undefined ? { exit: event.exit } : {}) }, 'session start');
        return;
      case 'sessionEnd':
        this.webrtc?.onSessionEnd(event.client);
        // A connection that never moved a byte (a slowloris closed by the first-byte timeout): one line per reason per interval.
        if (isSilentTcpEnd(event)) {
          this.logs.aggregate('session_end', event.reason, { kind: event.kind, session: event.id, rule: event.rule, client: event.client, origin: event.origin, durationMs: event.totals.durationMs });
          return;
        }
        this.logger.info({ event: 'session_end', kind: event.kind, session: event.id, rule: event.rule, client: event.client, origin: event.origin, reason: event.reason, ...event.totals }, 'session end');
        return;
      case 'sessionMoved':
        this.logger.info({ event: 'session_moved', kind: event.kind, session: event.id, rule: event.rule, what: event.what, from: event.from, to: event.to }, 'session moved');
        return;
      case 'sessionRefused':
        // One line per reason per interval: a sender can cause one of these per datagram.
        this.logs.aggregate('session_refused', event.reason, { session: event.id, client: event.client, detail: event.detail });
        return;
      case 'flowUnreplied':
        this.logs.aggregate('udp_flow_unreplied', event.reason, { rule: event.rule, client: event.client, origin: event.origin });
        return;
      case 'originHealth':
        this.logger.warn({ event: 'origin_health', group: event.group, origin: event.origin, healthy: event.healthy }, event.healthy ? 'origin up' : 'origin down');
        return;
      case 'tcpCheck':
        this.runTcpCheck(event.checkId, event.address, event.port, event.timeoutMs);
        return;
      case 'tcpEnd':
        this.tcp.end(event.connId, event.reason);
        return;
    }
  }

  private openUdp(socketId: number, kind: string, address: string, port: number, rule: string): void {
    const type = net.isIPv6(address) ? 'udp6' : 'udp4';
    // Origin-facing sockets have their own size: one per flow, and the kernel drops
    // replies arriving while the process is stalled once the default (~208 KiB, under
    // 100 datagrams of 1200 B) is full.
    const receive = kind === 'upstream' ? this.config.upstreamReceiveBufferBytes : this.config.socketReceiveBufferBytes;
    const reusePort = this.hooks?.reusePort === true && kind !== 'upstream';
    if (kind === 'tunnel') this.tunnelSocketId = socketId;
    if (this.batched !== undefined) return this.openBatched(socketId, kind, address, port, rule, receive, reusePort);
    const socket = dgram.createSocket({ type, lookup: ipLiteralLookup, ...(receive > 0 ? { recvBufferSize: receive } : {}), ...(reusePort ? { reusePort } : {}) });
    this.udp.set(socketId, socket);
    if (kind === 'upstream') this.upstreams.set(socketId, { id: socketId, socket, address: '', port: 0, state: 'none', pending: undefined });
    const hooks = this.hooks;
    // A tunnel datagram for a session another worker owns goes there (workers.ts).
    if (kind === 'tunnel' && hooks !== undefined) socket.on('message', (message, rinfo) => hooks.tunnelIntake(message, rinfo) || this.onMessage(socketId, message, rinfo));
    else socket.on('message', (message, rinfo) => this.onMessage(socketId, message, rinfo));
    const listening = new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(new Error(`cannot bind udp ${address}:${port}${rule ? ` (rule ${rule})` : ''}: ${(error as NodeJS.ErrnoException).code ?? error.message}`));
      socket.once('error', onError);
      socket.bind(port, address, () => {
        socket.off('error', onError);
        // ICMP errors and send failures are conditions of the network: count, never crash.
        socket.on('error', () => this.socketErrors++);
        // Linux reports SO_RCVBUF doubled.
        this.onUdpBound(kind, rule, socket.address(), receive, receive > 0 ? Math.floor(socket.getRecvBufferSize() / 2) : 0);
        if (kind === 'tunnel') this.hooks?.onTunnelSocket?.(undefined);
        resolve();
      });
    });
    this.awaitUdpBind(kind, listening);
  }

  private openBatched(socketId: number, kind: string, address: string, port: number, rule: string, receive: number, reusePort: boolean): void {
    const batched = this.batched!;
    try {
      const bound = batched.open(socketId, kind, address, port, receive, reusePort);
      this.onUdpBound(kind, rule, bound, receive, bound.receiveBufferBytes);
      const hooks = this.hooks;
      if (kind === 'tunnel' && hooks !== undefined) {
        // Workers: misdelivered datagrams are handed over; the primary steers the group by session id (workers.ts).
        batched.setTunnelIntake(socketId, (bytes, from) => hooks.tunnelIntake(bytes, from));
        hooks.onTunnelSocket?.((program) => batched.attachReuseportCbpf(socketId, program));
      }
    } catch (error) {
      this.awaitUdpBind(kind, Promise.reject(new Error(`cannot bind udp ${address}:${port}${rule ? ` (rule ${rule})` : ''}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)));
    }
  }

  /** A bind's outcome: start waits for listeners and the tunnel; others' failures (one per flow when out of descriptors, EMFILE) are aggregated. */
  private awaitUdpBind(kind: string, listening: Promise<void>): void {
    if (this.startupBinds && (kind === 'listener' || kind === 'tunnel')) this.startupBinds.push(listening);
    else listening.catch((error: Error) => this.logs.aggregate('bind_failed', 'bind', { err: error.message }));
  }

  private onUdpBound(kind: string, rule: string, bound: Endpoint, receiveRequested: number, receiveGranted: number): void {
    if (kind === 'listener') (this.bound[rule] ??= []).push({ address: bound.address, port: bound.port });
    if (kind === 'tunnel') this.tunnelBound = { address: bound.address, port: bound.port };
    if (kind === 'listener' || kind === 'tunnel') this.logger.info({ event: 'listening', protocol: 'udp', rule, address: bound.address, port: bound.port }, 'listening');
    checkReceiveBuffer(this.logger, kind, receiveRequested, receiveGranted);
  }

  /**
   * Sends on an origin-facing socket, connecting it (UDP `connect`) to the peer it
   * sends to: each such socket talks to one origin, and a connected socket's sends skip
   * Node's per-send address lookup (a `dns.lookup` and a tick) and the kernel's
   * per-datagram route lookup, and the kernel then delivers only that origin's replies
   * (the core checks the source anyway). Datagrams sent while the connect completes (a
   * tick) wait in a short queue; a new peer (an L4 flow failing over) disconnects first.
   */
  private sendUpstream(peer: UpstreamPeer, address: string, port: number, data: Uint8Array | Uint8Array[]): void {
    if (peer.state === 'connected') {
      if (peer.port === port && peer.address === address) {
        peer.socket.send(data);
        return;
      }
      peer.socket.disconnect();
      peer.state = 'none';
    }
    if (peer.state === 'connecting') {
      if (peer.port === port && peer.address === address && peer.pending!.length < UPSTREAM_PENDING_MAX) peer.pending!.push(data);
      else this.socketErrors++;
      return;
    }
    peer.state = 'connecting';
    peer.address = address;
    peer.port = port;
    peer.pending = [data];
    peer.socket.connect(port, address, (error?: Error) => {
      if (this.upstreams.get(peer.id) !== peer) return;
      const pending = peer.pending ?? [];
      peer.pending = undefined;
      if (error !== undefined) {
        // Not connectable (e.g. a family mismatch): send unconnected, as before.
        peer.state = 'none';
        this.socketErrors++;
        for (const d of pending) peer.socket.send(d, port, address);
        return;
      }
      peer.state = 'connected';
      for (const d of pending) peer.socket.send(d);
    });
  }

  // ---------------------------------------------------------------- TCP

  private openTcpListener(socketId: number, address: string, port: number, rule: string): void {
    // pauseOnConnect: the client is read only once admitted (early bytes are held until its origin connects).
    // allowHalfOpen: a client's FIN (`shutdown(SHUT_WR)`) must not close the way back: the origin's answer still flows.
    const server = net.createServer({ pauseOnConnect: true, noDelay: true, allowHalfOpen: true }, (socket) => this.tcp.accept(socketId, socket));
    this.tcpServers.set(socketId, server);
    const listening = new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(new Error(`cannot bind tcp ${address}:${port} (rule ${rule}): ${(error as NodeJS.ErrnoException).code ?? error.message}`));
      server.once('error', onError);
      server.listen({ port, host: address, ...(this.hooks?.reusePort === true ? { reusePort: true } : {}) }, () => {
        server.off('error', onError);
        // Accept errors (EMFILE when out of descriptors) repeat per connection attempt: aggregated.
        server.on('error', (error: NodeJS.ErrnoException) => {
          this.socketErrors++;
          this.logs.aggregate('accept_failed', error.code ?? 'error', { rule, err: error.code ?? error.message });
        });
        const bound = server.address() as net.AddressInfo;
        (this.bound[rule] ??= []).push({ address: bound.address, port: bound.port });
        this.logger.info({ event: 'listening', protocol: 'tcp', rule, address: bound.address, port: bound.port }, 'listening');
        resolve();
      });
    });
    if (this.startupBinds) this.startupBinds.push(listening);
    else listening.catch((error: Error) => this.logs.aggregate('bind_failed', 'bind', { err: error.message }));
  }

  private runTcpCheck(checkId: number, address: string, port: number, timeoutMs: number): void {
    const socket = net.connect({ host: address, port });
    let done = false;
    const report = (ok: boolean): void => {
      if (done) return;
      done = true;
      socket.destroy();
      this.core.handleCheckResult(performance.now(), checkId, ok);
      this.flush();
    };
    socket.setTimeout(timeoutMs, () => report(false));
    socket.on('connect', () => report(true));
    socket.on('error', () => report(false));
  }

  // ---------------------------------------------------------------- HTTP

  private async startHttp(): Promise<void> {
    const listen = this.config.metricsListen;
    if (!listen) return;
    const server = createServer((request, response) => {
      if (request.url === '/metrics') {
        (this.hooks?.metricsText?.() ?? this.registry.metrics()).then(
          (text) => response.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
          () => response.writeHead(500).end(),
        );
        return;
      }
      if (request.url === '/health' || request.url === '/healthz') {
        // 503 while draining, so load balancers and the coordinator stop sending players here.
        const reply = (body: RelayHealth): void => void response.writeHead(body.status === 'draining' ? 503 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        const own = this.health();
        if (this.hooks?.health === undefined) reply(own);
        else this.hooks.health(own).then(reply, () => response.writeHead(500).end());
        return;
      }
      response.writeHead(404).end();
    });
    this.http = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) => reject(new Error(`cannot bind metrics ${listen.host}:${listen.port}: ${(error as NodeJS.ErrnoException).code ?? error.message}`)));
      server.listen(listen.port, listen.host, () => resolve());
    });
    const bound = server.address() as net.AddressInfo;
    this.metricsBound = { address: bound.address, port: bound.port };
    this.logger.info({ event: 'listening', protocol: 'http', rule: 'metrics', address: bound.address, port: bound.port }, 'listening');
  }

  /** What `/health` says of this relay (of this worker, with several). */
  health(): RelayHealth {
    const core = this.core;
    return { status: core.isDraining ? 'draining' : 'ok', sessions: core.sessionCount, udpFlows: core.udpFlowCount, udpFlowsUnreplied: core.unrepliedFlowCount, tcpConnections: core.tcpConnectionCount, tunnelSessions: core.tunnelSessionCount, origins: core.originHealth() };
  }

  /** A tunnel datagram another worker received for a session this one owns: handled as if it arrived on this tunnel socket. */
  deliverTunnel(bytes: Uint8Array, from: Endpoint): void {
    if (this.tunnelSocketId === undefined || this.closed) return;
    this.core.handleDatagram(performance.now(), this.tunnelSocketId, from, bytes);
    this.flush();
  }

  /**
   * Registers with the coordinator and starts heartbeats and path probes when `config`
   * has a `fleet` section; later reloads move the membership (see {@link FleetMembership}).
   * Rejects when the agent cannot start (no public address, probe socket bind).
   */
  private joinFleet(config: RelayConfig): Promise<FleetMembership> {
    return FleetMembership.start(
      {
        logger: this.logger,
        bindAddress: () => this.config.core.upstreamBindAddress,
        onChanged: () => this.revocations.follow(),
        relay: {
          // Against the tunnel's budget; unreplied L4 flows, shed on demand, do not count (a spoofed flood must not look like a full relay).
          // With several workers, the load is the relay's: the other workers' too.
          sessions: () => this.core.fleetLoadSessionCount + (this.hooks?.otherWorkersLoad?.().sessions ?? 0),
          packetsTotal: () => {
            let n = this.hooks?.otherWorkersLoad?.().packets ?? 0;
            for (const s of this.core.ruleStats.values()) n += s.packetsUp + s.packetsDown;
            return n;
          },
          tunnelBound: () => this.tunnelBound,
          webrtcUrl: () => this.webrtc?.advertisedUrl,
          origins: () => this.config.core.tunnel?.origins ?? new Map(),
          setPeers: (addresses) => {
            this.core.setPeers(addresses);
            this.hooks?.onPeers?.([...addresses]);
          },
          // With several workers, the threads' players and flows are added in.
          status: () => this.core.fleetStatus(this.hooks?.otherWorkersLoad === undefined ? [] : [this.hooks.otherWorkersLoad().status]),
        },
      },
      config,
    );
  }

  /** For the metrics: undefined when the relay neither runs a fleet agent nor is configured to. */
  private fleetStatus(): FleetStatus | undefined {
    if (this.membership === undefined) return fleetMembershipKey(this.config) === '' ? undefined : { accepted: false, settingsApplied: false };
    return this.membership.status();
  }

  /** The fleet agent, when `fleet` is configured (for tests). */
  get fleet(): FleetAgent | undefined {
    return this.membership?.agent;
  }

  /** Revokes session ids pushed by a feed (the coordinator's). */
  revoke(sessionIds: readonly string[]): void {
    this.core.revoke(performance.now(), sessionIds);
    this.flush();
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * SIGHUP: adopt a new configuration without dropping live sessions. Keys bound at
   * start (see {@link restartOnlyValues}) keep their running values; each one the file
   * now changes is named in one `reload_needs_restart` warning, at every reload until
   * the relay restarts. Tunnel sessions whose origin the new `tunnel.origins` /
   * `allowOriginCidrs` no longer allow end (the core tells their clients why). A new
   * `fleet` section, coordinator URL or fleet secret re-joins the fleet in the background
   * (`fleet_changed` in the log; see {@link FleetMembership}).
   * @returns the restart-only keys whose change was not applied (also logged)
   */
  reload(config: RelayConfig): string[] {
    const wanted = restartOnlyValues(config);
    const pending: { key: string; running: string; configured: string }[] = [];
    // A tunnel section added or removed is applied (the core opens or closes the port); only a moved one is not.
    if (wanted['tunnel.listen'] === 'none' || this.restartOnly['tunnel.listen'] === 'none') this.restartOnly = { ...this.restartOnly, 'tunnel.listen': wanted['tunnel.listen'] };
    for (const key of Object.keys(wanted) as (keyof RestartOnlyValues)[]) {
      if (wanted[key] !== this.restartOnly[key]) pending.push({ key, running: this.restartOnly[key], configured: wanted[key] });
    }
    if (pending.length > 0) {
      this.logger.warn(
        { event: 'reload_needs_restart', keys: pending.map((p) => p.key), changes: pending },
        `reload cannot apply ${pending.map((p) => `${p.key} (running ${p.running}, file ${p.configured})`).join(', ')}: restart the relay for ${pending.length === 1 ? 'this change' : 'these changes'}`,
      );
    }
    const previous = this.config;
    this.config = config;
    this.core.reconfigure(performance.now(), this.coreConfig(config));
    this.flush();
    this.logs.setIntervalMs(config.logAggregateIntervalMs);
    this.revocations.reload(previous, config);
    // A fleet member's revocation feed moves with its membership (once the coordinator
    // accepted the new settings); otherwise it follows the file at once.
    if (fleetMembershipKey(config) === '' || this.membership?.isRunning(config) === true) this.revocations.follow();
    this.membership?.reload(config);
    return pending.map((p) => p.key);
  }

  /**
   * SIGTERM: take no new sessions (TCP listeners stop accepting; UDP listeners stay
   * open for live flows), serve live ones until they end or `deadlineMs` passes, then
   * close: sessions left at the deadline end as `drain deadline`, each tunnel client told
   * by an authenticated Close (`SLIP_ERR_RELAY_DRAINING`). Resolves with the sessions
   * still open at the deadline (0 = clean).
   * @param othersDrained with relay workers, the primary's: settles when the other workers have drained. Until then (or the deadline) the primary stays open even with no session of its own, since it is the relay the operator and the coordinator see: /health answers `draining`, the fleet membership says draining, and the tunnel port's reuseport group keeps its first socket.
   */
  async drain(deadlineMs: number, othersDrained?: Promise<unknown>): Promise<number> {
    this.core.drain();
    let othersDone = othersDrained === undefined;
    const done = (): void => void (othersDone = true);
    othersDrained?.then(done, done);
    // The coordinator hears it first, so no new players are sent here while we drain.
    await this.membership?.setDraining();
    for (const server of this.tcpServers.values()) server.close();
    const until = performance.now() + deadlineMs;
    while ((this.core.sessionCount > 0 || !othersDone) && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, Math.min(100, Math.max(1, until - performance.now()))));
    const left = this.core.sessionCount;
    if (left > 0 && !this.closed) {
      // The deadline passed with sessions left: each tunnel client gets an authenticated
      // Close (the core's close), sent before the sockets close so the SDK fails over now.
      this.core.close(performance.now(), 'drain deadline');
      this.flush();
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.close();
    return left;
  }

  /** Closes everything now; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.core.close(performance.now());
    this.flush();
    this.webrtc?.close();
    this.timer.stop();
    this.logs.close();
    this.revocations.close();
    this.membership?.close();
    for (const socket of this.udp.values()) socket.close();
    this.udp.clear();
    this.batched?.closeAll();
    this.upstreams.clear();
    for (const server of this.tcpServers.values()) server.close();
    this.tcpServers.clear();
    this.tcp.close();
    this.http?.close();
    this.http?.closeAllConnections();
  }
}
