/**
 * The relay's fleet membership across reloads, as a thin driver of the sans-IO
 * {@link FleetMembershipCore}: it starts the {@link FleetAgent} the core asks for (with
 * the settings of the latest reload), reports its acceptance outcome back, stops the
 * agent the core retires, and logs `fleet_changed` / `fleet_change_failed`. The rule
 * (the new membership must be accepted before the old one stops; refused or silent for
 * {@link FLEET_CHANGE_REGISTER_WAIT_MS} keeps the running one) is the core's.
 */
import type { Logger } from 'pino';
import type { RelayConfig } from './config.js';
import { FLEET_CHANGE_REGISTER_WAIT_MS, FleetMembershipCore } from './core/fleet-membership.js';
import { FleetAgent, type FleetRelayView } from './fleet.js';
import type { FleetStatus } from './metrics.js';

export { FLEET_CHANGE_REGISTER_WAIT_MS } from './core/fleet-membership.js';

/**
 * What fleet membership is made of: the `fleet` section, the coordinator URL and the
 * fleet secret. A reload that changes any of them re-joins (see {@link FleetMembership.reload});
 * '' when the relay is not a fleet member (or `config` is undefined). Internal: it holds
 * the secret, never log it.
 */
export function fleetMembershipKey(config: RelayConfig | undefined): string {
  if (config?.fleet === undefined || config.coordinatorUrl === undefined || (config.coordinatorFleetSecret === undefined && config.coordinatorIdentity === undefined)) return '';
  return JSON.stringify([config.fleet, config.coordinatorUrl, config.coordinatorFleetSecret, config.coordinatorIdentity]);
}

/** Options of a {@link FleetMembership}. */
export interface FleetMembershipInit {
  readonly logger: Logger;
  /** What agents read of the relay. */
  readonly relay: FleetRelayView;
  /** Where agents' probe sockets bind (the relay's `upstreamBindAddress`). */
  readonly bindAddress: () => string;
  /** After a change took effect (the relay's revocation feed moves with the membership). */
  readonly onChanged: () => void;
}

/** See the module comment. */
export class FleetMembership {
  private readonly core: FleetMembershipCore;
  private readonly agents = new Map<number, FleetAgent>();
  /** The configuration each pending agent was started with, by generation. */
  private readonly joining = new Map<number, RelayConfig>();
  /** The configuration of the latest reload (what a `join` builds its agent from). */
  private config: RelayConfig;
  /** The configuration the running membership was built from (its fleet section, URL and secret). */
  private runningConfig: RelayConfig;
  /** SIGTERM received: an agent started by a later reload must say so too. */
  private draining = false;
  private closed = false;

  private constructor(
    private readonly init: FleetMembershipInit,
    config: RelayConfig,
  ) {
    this.config = config;
    this.runningConfig = config;
    this.core = new FleetMembershipCore(fleetMembershipKey(config));
  }

  /** Joins the fleet with `config` when it has a `fleet` section; rejects when the agent cannot start (no public address, probe socket bind). */
  static async start(init: FleetMembershipInit, config: RelayConfig): Promise<FleetMembership> {
    const membership = new FleetMembership(init, config);
    const agent = await membership.startAgent(config);
    if (agent !== undefined) membership.agents.set(0, agent);
    return membership;
  }

  /** The running agent (undefined when not a fleet member). */
  get agent(): FleetAgent | undefined {
    const running = this.core.running;
    return running === undefined ? undefined : this.agents.get(running);
  }

  /** Whether `config`'s fleet settings are the running membership's. */
  isRunning(config: RelayConfig): boolean {
    return this.core.isRunning(fleetMembershipKey(config));
  }

  /** For the metrics: undefined when the relay neither runs a fleet agent nor is configured to. */
  status(): FleetStatus | undefined {
    if (this.agent === undefined && fleetMembershipKey(this.config) === '') return undefined;
    return { accepted: this.agent?.accepted ?? false, settingsApplied: this.core.settingsApplied };
  }

  /**
   * Reload: when the fleet section, the coordinator URL or the fleet secret changed,
   * re-joins in the background (`fleet_changed` in the log, or `fleet_change_failed`
   * with the reason the running membership was kept).
   */
  reload(config: RelayConfig): void {
    if (this.closed) return;
    this.config = config;
    this.core.reload(fleetMembershipKey(config));
    this.flush();
  }

  /** SIGTERM: the running agent (and any started later) tells the coordinator; resolves when it answered or failed. */
  async setDraining(): Promise<void> {
    this.draining = true;
    await this.agent?.setDraining();
  }

  /** Stops every agent; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.core.close();
    for (const agent of this.agents.values()) agent.close();
    this.agents.clear();
  }

  private async startAgent(config: RelayConfig): Promise<FleetAgent | undefined> {
    const spec = config.fleet;
    if (spec === undefined || config.coordinatorUrl === undefined || (config.coordinatorFleetSecret === undefined && config.coordinatorIdentity === undefined)) return undefined;
    const agent = new FleetAgent({ spec, coordinatorUrl: config.coordinatorUrl, fleetSecret: config.coordinatorFleetSecret, identity: config.coordinatorIdentity, bindAddress: this.init.bindAddress(), logger: this.init.logger, relay: this.init.relay });
    await agent.start();
    return agent;
  }

  private flush(): void {
    for (let e = this.core.pollEvent(); e !== undefined; e = this.core.pollEvent()) {
      if (e.type === 'join') void this.join(e.generation, this.config);
      else if (e.type === 'kept') {
        const config = (e.generation !== undefined ? this.joining.get(e.generation) : undefined) ?? this.config;
        if (e.generation !== undefined) this.retire(e.generation);
        this.init.logger.error({ event: 'fleet_change_failed', relayId: config.fleet?.relayId ?? null, coordinator: config.coordinatorUrl ?? null, err: e.reason }, 'the new fleet settings cannot be applied; keeping the running membership');
      } else {
        const previous = e.previous === undefined ? undefined : this.agents.get(e.previous);
        const joined = e.generation !== undefined;
        const config = joined ? (this.joining.get(e.generation!) ?? this.config) : this.config;
        const secretChanged = previous !== undefined && joined && this.runningConfig.coordinatorFleetSecret !== config.coordinatorFleetSecret;
        this.runningConfig = config;
        if (e.generation !== undefined) this.joining.delete(e.generation);
        if (e.previous !== undefined) this.retire(e.previous);
        this.init.onChanged();
        this.init.logger.info(
          { event: 'fleet_changed', relayId: config.fleet?.relayId ?? null, coordinator: config.coordinatorUrl ?? null, secretChanged, left: previous !== undefined && !joined },
          joined ? 'fleet membership re-joined with the reloaded settings' : 'left the fleet (no fleet section now)',
        );
      }
    }
  }

  private async join(generation: number, config: RelayConfig): Promise<void> {
    this.joining.set(generation, config);
    let agent: FleetAgent | undefined;
    try {
      agent = await this.startAgent(config);
    } catch (error) {
      this.core.agentStartFailed(generation, error instanceof Error ? error.message : String(error));
      return this.flush();
    }
    if (this.closed) return agent?.close();
    // A `join` has a fleet section (a removed one is left without an agent).
    this.agents.set(generation, agent!);
    // Before the first heartbeat, so a draining relay is never offered as open.
    if (this.draining) void agent!.setDraining();
    const outcome = await agent!.firstRegistration(FLEET_CHANGE_REGISTER_WAIT_MS);
    if (this.closed) return;
    this.core.agentAcceptance(generation, outcome.ok, outcome.ok ? 'accepted' : outcome.reason);
    this.flush();
  }

  private retire(generation: number): void {
    this.agents.get(generation)?.close();
    this.agents.delete(generation);
    this.joining.delete(generation);
  }
}
