/**
 * What a {@link Relay} needs to run as one of several relay workers on the same ports
 * (relay/src/workers.ts): kept apart so relay.ts only calls these hooks.
 */
import type dgram from 'node:dgram';

/** The `/health` body of a relay (summed over workers by the primary). */
export interface RelayHealth {
  /** `draining` once SIGTERM arrived (the endpoint then answers 503). */
  readonly status: 'ok' | 'draining';
  readonly sessions: number;
  readonly udpFlows: number;
  readonly udpFlowsUnreplied: number;
  readonly tcpConnections: number;
  readonly tunnelSessions: number;
  readonly origins: readonly { group: string; origin: string; healthy: boolean }[];
}

/** Multi-worker wiring handed to `Relay.start` (absent for a relay of one). */
export interface RelayWorkerHooks {
  /** Bind listeners and the tunnel port with SO_REUSEPORT (every worker binds the same ports). */
  readonly reusePort: boolean;
  /**
   * A datagram arrived on the tunnel port: returns true when it was handed to the worker
   * that owns its session (the relay then does nothing more with it), false to handle it here.
   */
  tunnelIntake(message: Buffer, rinfo: dgram.RemoteInfo): boolean;
  /** The tunnel socket is bound (where a kernel steering program would be attached). */
  onTunnelSocket?(socket: dgram.Socket): void;
  /** The primary's `/metrics` text over every worker (else the relay's own registry). */
  metricsText?(): Promise<string>;
  /** The primary's `/health` body over every worker, from its own (else its own). */
  health?(own: RelayHealth): Promise<RelayHealth>;
  /** The primary's view of the other workers' load for the fleet heartbeat (fleet-load sessions, datagrams since start; refreshed every second). */
  otherWorkersLoad?(): { readonly sessions: number; readonly packets: number };
  /** The primary's fleet agent learned the fleet peers' addresses: the other workers exempt them too. */
  onPeers?(addresses: readonly string[]): void;
}
