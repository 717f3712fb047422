/**
 * What a {@link Relay} needs to run as one of several relay workers on the same ports
 * (relay/src/workers.ts): kept apart so relay.ts only calls these hooks.
 */
import type { Endpoint } from '../../proto/src/transport.js';
import type { CbpfInstruction } from './worker-steering.js';
import type { StatusTally } from './core/fleet-status.js';

/** The `/health` body of a relay (summed over workers by the primary). */
export interface RelayHealth {
  /** `draining` once SIGTERM arrived (the endpoint then answers 503). */
  readonly status: 'ok' | 'draining';
  /** Sessions open now: UDP flows, TCP connections and tunnel sessions. */
  readonly sessions: number;
  /** UDP flows open now (L4 rules). */
  readonly udpFlows: number;
  /** UDP flows whose origin has not answered yet. */
  readonly udpFlowsUnreplied: number;
  /** TCP connections open now (L4 rules). */
  readonly tcpConnections: number;
  /** Tunnel sessions open now. */
  readonly tunnelSessions: number;
  /** Every origin of every group, with whether its health checks pass. */
  readonly origins: readonly { group: string; origin: string; healthy: boolean }[];
}

/** Multi-worker wiring handed to `Relay.start` (absent for a relay of one). */
export interface RelayWorkerHooks {
  /** Bind listeners and the tunnel port with SO_REUSEPORT (every worker binds the same ports). */
  readonly reusePort: boolean;
  /**
   * A datagram arrived on the tunnel port (`bytes` and `from` valid during the call only:
   * the batched driver reuses them): returns true when it was handed (copied) to the
   * worker that owns its session (the relay then does nothing more with it), false to
   * handle it here. Allocates nothing when this worker owns it.
   */
  tunnelIntake(bytes: Uint8Array, from: Endpoint): boolean;
  /**
   * The tunnel socket is bound: `attachReuseportCbpf` attaches a classic BPF program to
   * its reuseport group (the batched driver's socket; undefined on `dgram`, whose sockets
   * cannot take one). The primary attaches the session-id steering program there.
   */
  onTunnelSocket?(attachReuseportCbpf: ((program: readonly CbpfInstruction[]) => void) | undefined): void;
  /** The primary's `/metrics` text over every worker (else the relay's own registry). */
  metricsText?(): Promise<string>;
  /** The primary's `/health` body over every worker, from its own (else its own). */
  health?(own: RelayHealth): Promise<RelayHealth>;
  /** The primary's view of the other workers' load for the fleet heartbeat (fleet-load sessions, datagrams since start, the `status` tally; refreshed every second). */
  otherWorkersLoad?(): { readonly sessions: number; readonly packets: number; readonly status: StatusTally };
  /** The primary's fleet agent learned the fleet peers' addresses: the other workers exempt them too. */
  onPeers?(addresses: readonly string[]): void;
}
