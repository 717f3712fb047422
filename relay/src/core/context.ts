/**
 * The narrow context every relay sub-machine is given, built once by `RelayCore`: what
 * they may read (the configuration, the components, the lifecycle flags) and what they
 * write (the {@link RelayOutput}, the socket table, the {@link TimerTable}). Passing it
 * costs nothing per packet: sub-machines keep the reference from construction.
 *
 * The context sits below every sub-machine: it imports only leaves (the records its
 * socket table names live in l4-state.ts and tunnel/state.ts), never a sub-machine, so
 * the import graph has no circle.
 */
import type { RelayCoreConfig } from './config-types.js';
import type { Flow, Listener } from './l4-state.js';
import { RelayOutput, type SocketKind } from './output.js';
import type { TimerTable } from '../../../proto/src/timer-table.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import { relayTimerTable, type TimerKey } from './timers.js';
import type { TunnelSession } from './tunnel/state.js';

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
  readonly timers: TimerTable<TimerKey> = relayTimerTable();
  /** Open sockets by id. */
  readonly sockets = new Map<number, SocketEntry>();
  /** {@link RelayCore.drain} was called: no new sessions. */
  draining = false;
  /** {@link RelayCore.close} was called. */
  closed = false;
  /** Whether the tunnel port is open (a Close to a client needs it). */
  tunnelOpen = false;
  /**
   * The real remote address of each driver transport (a WebRTC peer connection's
   * selected ICE candidate), by its synthetic endpoint port (≥ TRANSPORT_PORT_BASE), as
   * the driver reported it ({@link RelayCore.setTransportRemote}): what a tunnel
   * origin header says for such a player (tunnel/origin-header.ts).
   */
  readonly transportRemotes = new Map<number, Endpoint>();
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
