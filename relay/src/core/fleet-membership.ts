/**
 * Reload of the relay's fleet membership, as a sans-IO state machine: which fleet agent
 * runs, and when a reload's new one takes over. The rule: when a reload changes the
 * membership (the `fleet` section, the coordinator URL or the fleet secret: one opaque
 * key), a new agent starts beside the running one, and only once the coordinator
 * accepted the new agent's registration is the old one stopped, so the relay never
 * leaves the coordinator's lists (a fleet-secret rotation is a reload, no drain). If the
 * new agent cannot start, is refused (a wrong secret, an id not allowed) or hears nothing
 * within {@link FLEET_CHANGE_REGISTER_WAIT_MS} (the agent's acceptance wait,
 * relay/src/core/fleet-agent.ts), it is stopped, the running membership stays, and the
 * `kept` event says why. A membership removed by the reload (key '') is left at once.
 * Changes run one after another, one per reload; each applies the settings current when
 * it starts.
 *
 * Inputs: {@link FleetMembershipCore.reload} (the reloaded settings' key), and the
 * driver's news of the agent it was asked to start ({@link FleetMembershipCore.agentStartFailed},
 * {@link FleetMembershipCore.agentAcceptance}). Output: {@link FleetMembershipCore.pollEvent}.
 * No timer of its own: the wait is the agent's.
 */

/** How long a reload's new fleet agent may take to be accepted before the running one is kept, ms. */
export const FLEET_CHANGE_REGISTER_WAIT_MS = 10_000;

/** What the membership asks of its driver, or tells it. */
export type FleetMembershipEvent =
  /**
   * Start an agent with the settings current now (their key is `key`), call it
   * `generation`, and wait up to {@link FLEET_CHANGE_REGISTER_WAIT_MS} for its
   * acceptance; report with {@link FleetMembershipCore.agentAcceptance} or
   * {@link FleetMembershipCore.agentStartFailed}.
   */
  | { readonly type: 'join'; readonly generation: number; readonly key: string }
  /**
   * The change is done: `generation` (undefined: none, the fleet section is gone) runs
   * now with settings `key`; stop `previous` (if any).
   */
  | { readonly type: 'changed'; readonly generation: number | undefined; readonly previous: number | undefined; readonly key: string }
  /** The change failed: stop `generation` (if one was started), keep the running membership. */
  | { readonly type: 'kept'; readonly generation: number | undefined; readonly key: string; readonly reason: string };

/** See the module comment. */
export class FleetMembershipCore {
  private readonly events: FleetMembershipEvent[] = [];
  /** The key of the settings the running membership was built from ('' = not a member). */
  private runningKey: string;
  private runningGeneration: number | undefined;
  /** The settings' key of the latest reload. */
  private wantedKey: string;
  /** The change under way (an agent started, its acceptance awaited). */
  private pending: { readonly generation: number; readonly key: string } | undefined;
  /** Reloads whose change has not started yet (each runs one after another). */
  private queuedChanges = 0;
  private nextGeneration = 1;
  private closed = false;

  /**
   * @param runningKey the key of the settings the relay started with ('' = not a member)
   * @returns with generation 0 running when `runningKey` is not ''
   */
  constructor(runningKey: string) {
    this.runningKey = runningKey;
    this.wantedKey = runningKey;
    this.runningGeneration = runningKey === '' ? undefined : 0;
  }

  /** The generation of the agent that runs now (undefined: none). */
  get running(): number | undefined {
    return this.runningGeneration;
  }

  /** Whether the running membership was built from the latest reload's settings (false while a change is pending or after a refused one). */
  get settingsApplied(): boolean {
    return this.runningKey === this.wantedKey;
  }

  /** Whether `key` is the running membership's. */
  isRunning(key: string): boolean {
    return this.runningKey === key;
  }

  /** Command: a reload; `key` names its fleet settings ('' = not a member). */
  reload(key: string): void {
    if (this.closed) return;
    this.wantedKey = key;
    this.queuedChanges++;
    this.next();
  }

  /** Input: the agent of `generation` could not start (no public address, probe socket bind). */
  agentStartFailed(generation: number, reason: string): void {
    this.settle(generation, false, reason);
  }

  /** Input: the acceptance outcome of the agent of `generation` (see FleetAgentCore.awaitAcceptance). */
  agentAcceptance(generation: number, ok: boolean, reason: string): void {
    this.settle(generation, ok, reason);
  }

  /** Command: the relay closes; nothing more happens. */
  close(): void {
    this.closed = true;
    this.pending = undefined;
  }

  /** Output: the next event, or undefined. */
  pollEvent(): FleetMembershipEvent | undefined {
    return this.events.shift();
  }

  private next(): void {
    while (this.pending === undefined && this.queuedChanges > 0 && !this.closed) {
      this.queuedChanges--;
      const key = this.wantedKey;
      if (key === this.runningKey) continue;
      if (key === '') {
        const previous = this.runningGeneration;
        this.runningKey = '';
        this.runningGeneration = undefined;
        this.events.push({ type: 'changed', generation: undefined, previous, key });
        continue;
      }
      this.pending = { generation: this.nextGeneration++, key };
      this.events.push({ type: 'join', generation: this.pending.generation, key });
    }
  }

  private settle(generation: number, ok: boolean, reason: string): void {
    const pending = this.pending;
    if (this.closed || pending === undefined || pending.generation !== generation) return;
    this.pending = undefined;
    if (ok) {
      const previous = this.runningGeneration;
      this.runningKey = pending.key;
      this.runningGeneration = generation;
      this.events.push({ type: 'changed', generation, previous, key: pending.key });
    } else this.events.push({ type: 'kept', generation, key: pending.key, reason });
    this.next();
  }
}
