/**
 * The narrow context every relay sub-machine is given, built once by `RelayCore`: what
 * they may read (the configuration, the components, the lifecycle flags) and what they
 * write (the {@link RelayOutput}, the socket table, the {@link TimerTable}). Passing it
 * costs nothing per packet: sub-machines keep the reference from construction.
 */
import type { RelayCoreConfig } from './config-types.js';
import type { Listener } from './l4-rules.js';
import type { Flow } from './l4-udp.js';
import { RelayOutput, type SocketKind } from './output.js';
import { TimerTable } from './timers.js';
import type { TunnelSession } from './tunnel/session.js';

/** Packet and byte counters of one rule (the tunnel counts as rule `tunnel`). */
export class RuleStats {
  /** Datagrams (or TCP chunks) received from clients. */
  packetsUp = 0;
  bytesUp = 0;
  /** Datagrams received from origins. */
  packetsDown = 0;
  bytesDown = 0;
  /** Sessions open now. */
  sessionsActive = 0;
  /** Sessions opened since start. */
  sessionsOpened = 0;
  constructor(
    /** The rule's name. */
    readonly name: string,
    /** `udp`, `tcp` or `tunnel`. */
    readonly protocol: string,
  ) {}
}

/** Components the core is given. */
export interface RelayCoreComponents {
  /** Wall clock (Unix epoch ms) for ticket expiry: issuer and relay are different machines. */
  readonly wallClockMs: () => number;
  /** Fills a buffer with unpredictable bytes (path-challenge nonces). Production: crypto.randomFillSync; simulator: a seeded Rng. */
  readonly randomFill: (out: Uint8Array) => void;
}

/** What a socket id stands for, so a datagram reaches the sub-machine that owns it. */
export type SocketEntry =
  | { kind: 'listener'; protocol: 'udp' | 'tcp'; listener: Listener }
  | { kind: 'upstream'; flow: Flow | undefined; session: TunnelSession | undefined }
  | { kind: 'tunnel' }
  | { kind: 'health' };

/** Socket id of the one UDP health-check socket. */
export const HEALTH_SOCKET_ID = 1;
/** Socket id of the tunnel port. */
export const TUNNEL_SOCKET_ID = 2;
/** First id handed out for listeners, flows, sessions, TCP connections and checks. */
const FIRST_DYNAMIC_ID = 16;

/** See the module comment. */
export class RelayContext {
  /** The running configuration (replaced as a whole by a reload). */
  config: RelayCoreConfig;
  readonly out = new RelayOutput();
  readonly timers = new TimerTable();
  /** Open sockets by id. */
  readonly sockets = new Map<number, SocketEntry>();
  /** {@link RelayCore.drain} was called: no new sessions. */
  draining = false;
  /** {@link RelayCore.close} was called. */
  closed = false;
  /** Whether the tunnel port is open (a Close to a client needs it). */
  tunnelOpen = false;
  private nextId = FIRST_DYNAMIC_ID;

  constructor(
    config: RelayCoreConfig,
    readonly components: RelayCoreComponents,
  ) {
    this.config = config;
  }

  /** A fresh id for a socket, a session, a TCP connection or a check. */
  allocateId(): number {
    return this.nextId++;
  }

  /** Registers socket `socketId` and tells the driver to open it. */
  openSocket(socketId: number, entry: SocketEntry, protocol: 'udp' | 'tcp', address: string, port: number, rule: string): void {
    this.sockets.set(socketId, entry);
    this.out.event({ type: 'openSocket', socketId, kind: entry.kind, protocol, address, port, rule });
  }

  /** Forgets socket `socketId` and tells the driver to close it. */
  closeSocket(socketId: number, kind: SocketKind, protocol: 'udp' | 'tcp'): void {
    this.sockets.delete(socketId);
    this.out.event({ type: 'closeSocket', socketId, kind, protocol });
  }
}
