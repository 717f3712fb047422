/**
 * The L4 port-mapping rules and their listen sockets, shared by UDP and TCP: which
 * listeners a configuration wants (a port range is one listener per port), which a
 * reload keeps (same protocol, address and port: sockets and flows stay), opens and
 * closes, and each rule's origin group and counters.
 */
import type { RelayCoreConfig, RuleSpec } from './config-types.js';
import { RuleStats, type RelayContext } from './context.js';
import type { Flow } from './l4-udp.js';
import type { OriginGroup, OriginGroups } from './origins.js';

/** One listen socket of a rule. */
export class Listener {
  /** Flows by client port; same port, other address → chained through {@link Flow.nextInChain}. */
  readonly flowsByPort = new Map<number, Flow>();
  constructor(
    readonly socketId: number,
    readonly key: string,
    public rule: RuleRuntime,
    public port: number,
    public portOffset: number,
  ) {}

  /** `udp` or `tcp`, from its rule. */
  get protocol(): 'udp' | 'tcp' {
    return this.rule.spec.protocol;
  }
}

/** A configured rule as running: its spec, counters (kept by name across reloads), group and listeners. */
export class RuleRuntime {
  readonly listeners: Listener[] = [];
  constructor(
    public spec: RuleSpec,
    readonly stats: RuleStats,
    public group: OriginGroup,
  ) {}
}

/** See the module comment. */
export class L4Rules {
  readonly rules = new Map<string, RuleRuntime>();
  private readonly listeners = new Map<string, Listener>();

  /**
   * @param ruleStats the core's counters by rule name (shared: the tunnel keeps `tunnel` there)
   */
  constructor(
    private readonly ctx: RelayContext,
    private readonly ruleStats: Map<string, RuleStats>,
  ) {}

  /**
   * Adopts `config`'s rules. Listeners whose protocol, address and port are unchanged
   * keep their sockets and flows; `onListenerRemoved` ends the flows of a removed one
   * before its socket closes.
   */
  apply(config: RelayCoreConfig, groups: OriginGroups, onListenerRemoved: (listener: Listener) => void): void {
    const wantListeners = new Map<string, { rule: RuleSpec; port: number; offset: number }>();
    for (const rule of config.rules) {
      // Port 0 (an OS-chosen port) is keyed by rule name, so that reloads keep its socket.
      for (let port = rule.listenPort; port <= rule.listenPortEnd; port++) wantListeners.set(`${rule.protocol}/${rule.listenAddress}/${port}${port === 0 ? `/${rule.name}` : ''}`, { rule, port, offset: port - rule.listenPort });
    }
    for (const [key, listener] of this.listeners) {
      if (wantListeners.has(key)) continue;
      onListenerRemoved(listener);
      this.listeners.delete(key);
      this.ctx.closeSocket(listener.socketId, 'listener', listener.protocol);
    }
    const oldRules = new Map(this.rules);
    this.rules.clear();
    for (const spec of config.rules) {
      const stats = oldRules.get(spec.name)?.stats ?? this.ruleStats.get(spec.name) ?? new RuleStats(spec.name, spec.protocol);
      this.ruleStats.set(spec.name, stats);
      this.rules.set(spec.name, new RuleRuntime(spec, stats, groups.group(spec.group)));
    }
    for (const [key, want] of wantListeners) {
      const rule = this.rules.get(want.rule.name)!;
      let listener = this.listeners.get(key);
      if (listener) {
        listener.rule = rule;
        listener.portOffset = want.offset;
      } else {
        listener = new Listener(this.ctx.allocateId(), key, rule, want.port, want.offset);
        this.listeners.set(key, listener);
        this.ctx.openSocket(listener.socketId, { kind: 'listener', protocol: want.rule.protocol, listener }, want.rule.protocol, want.rule.listenAddress, want.port, want.rule.name);
      }
      rule.listeners.push(listener);
    }
  }

  /** Closes every listen socket (the core is closing). */
  close(): void {
    for (const listener of this.listeners.values()) this.ctx.closeSocket(listener.socketId, 'listener', listener.protocol);
    this.listeners.clear();
  }
}
