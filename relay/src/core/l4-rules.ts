/**
 * The L4 port-mapping rules and their listen sockets, shared by UDP and TCP: which
 * listeners a configuration wants (a port range is one listener per port), which a
 * reload keeps (same protocol, address and port: sockets and flows stay), opens and
 * closes, and each rule's origin group and counters. The records ({@link Listener},
 * {@link RuleRuntime}) are in l4-state.ts.
 */
import type { RelayCoreConfig, RuleSpec } from './config-types.js';
import type { RelayContext } from './context.js';
import { Listener, RuleRuntime } from './l4-state.js';
import type { OriginGroups } from './origins.js';
import { RuleStats } from './session-base.js';

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
