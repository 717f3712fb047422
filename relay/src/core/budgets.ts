/**
 * Session budgets: how many sessions of each kind the relay holds, so that a flood on
 * one door cannot close the others. Three kinds — L4 UDP flows, L4 TCP connections,
 * tunnel sessions — each with its own budget (`limits.udpFlowsMax`,
 * `limits.tcpConnectionsMax`, `limits.tunnelSessionsMax`), every L4 rule with its own
 * (`rules[i].sessionsMax`), and `limits.sessionsMax` over all of them together.
 *
 * What a full budget does depends on what holds it. An L4 UDP flow whose origin has
 * not answered yet (unreplied, as conntrack calls it) cost its sender nothing but one
 * datagram from any address, spoofed or not: it is the first thing shed. A new session
 * that finds its budget full makes room by ending the oldest unreplied flow in that
 * budget (the rule's for a rule budget, any rule's for the UDP and overall budgets);
 * only when there is none is it refused. Established flows, TCP connections and tunnel
 * sessions (which cost a valid ticket) are never displaced.
 *
 * A leaf: it sees the sessions only through {@link SessionCounts} and sheds through
 * {@link UnrepliedShedder}, both given by `RelayCore`.
 */
import type { LimitsSpec } from './config-types.js';
import type { RuleStats } from './session-base.js';

/** A kind of session, each with its own budget. */
export const SessionKind = {
  Udp: 0,
  Tcp: 1,
  Tunnel: 2,
} as const;

/** One of {@link SessionKind}. */
export type SessionKindValue = (typeof SessionKind)[keyof typeof SessionKind];

/** What the budgets count (live numbers, read at each admission). */
export interface SessionCounts {
  /** L4 UDP flows open now (replied or not). */
  readonly udpFlowCount: number;
  /** L4 TCP connections open now. */
  readonly tcpConnectionCount: number;
  /** Tunnel sessions open now. */
  readonly tunnelSessionCount: number;
}

/** Ends unreplied L4 UDP flows on demand. */
export interface UnrepliedShedder {
  /** Unreplied L4 UDP flows open now (over every rule). */
  unrepliedCount(): number;
  /**
   * Ends the oldest unreplied flow of the rule counted by `rule`, or of any rule when
   * `rule` is undefined. False when there is none to end. `forNewFlow`: the room is for
   * a new UDP flow, which may take over the shed flow's socket.
   */
  shedOldestUnreplied(nowMs: number, rule: RuleStats | undefined, forNewFlow: boolean): boolean;
}

/** The budget of `kind` under `limits`: its own key, else the overall `sessionsMax`. */
export function kindBudget(limits: LimitsSpec, kind: SessionKindValue): number {
  const own = kind === SessionKind.Udp ? limits.udpFlowsMax : kind === SessionKind.Tcp ? limits.tcpConnectionsMax : limits.tunnelSessionsMax;
  return own === undefined ? limits.sessionsMax : Math.min(own, limits.sessionsMax);
}

/** See the module comment. */
export class SessionBudgets {
  /** Unreplied flows ended to make room for another session, since start. */
  shed = 0;

  constructor(
    private readonly limits: () => LimitsSpec,
    private readonly counts: SessionCounts,
    private readonly shedder: UnrepliedShedder,
  ) {}

  /** Sessions open now, every kind together. */
  get total(): number {
    const c = this.counts;
    return c.udpFlowCount + c.tcpConnectionCount + c.tunnelSessionCount;
  }

  /**
   * Whether a session of `kind` could be admitted now, without ending anything: its
   * budgets have room, or what fills them is unreplied flows that would be shed. For
   * checks before costly work (a ticket's signature) whose sender has not proved
   * anything yet: such a sender must not be able to shed anyone's flow.
   */
  wouldAdmit(kind: SessionKindValue, rule: RuleStats | undefined, ruleMax: number | undefined): boolean {
    const limits = this.limits();
    const sheddable = this.shedder.unrepliedCount() > 0;
    if (rule !== undefined && ruleMax !== undefined && rule.sessionsActive >= ruleMax && !(kind === SessionKind.Udp && sheddable)) return false;
    if (this.kindCount(kind) >= kindBudget(limits, kind) && !(kind === SessionKind.Udp && sheddable)) return false;
    return this.total < limits.sessionsMax || sheddable;
  }

  /**
   * Room for one more session of `kind` (on the rule counted by `rule`, whose own
   * budget is `ruleMax`, for L4): true when every budget it falls under has room,
   * after ending the oldest unreplied flows that fill them; false to refuse it.
   */
  admit(nowMs: number, kind: SessionKindValue, rule: RuleStats | undefined, ruleMax: number | undefined): boolean {
    const limits = this.limits();
    const udp = kind === SessionKind.Udp;
    if (rule !== undefined && ruleMax !== undefined && rule.sessionsActive >= ruleMax) {
      if (!udp || !this.shedOne(nowMs, rule, true)) return false;
    }
    if (this.kindCount(kind) >= kindBudget(limits, kind)) {
      if (!udp || !this.shedOne(nowMs, undefined, true)) return false;
    }
    if (this.total >= limits.sessionsMax && !this.shedOne(nowMs, undefined, udp)) return false;
    return true;
  }

  private shedOne(nowMs: number, rule: RuleStats | undefined, forNewFlow: boolean): boolean {
    if (!this.shedder.shedOldestUnreplied(nowMs, rule, forNewFlow)) return false;
    this.shed++;
    return true;
  }

  private kindCount(kind: SessionKindValue): number {
    const c = this.counts;
    return kind === SessionKind.Udp ? c.udpFlowCount : kind === SessionKind.Tcp ? c.tcpConnectionCount : c.tunnelSessionCount;
  }
}
