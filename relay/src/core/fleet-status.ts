/**
 * What a relay tells the coordinator about its players and L4 rules in each heartbeat
 * (`load.status`, {@link RelayStatus} in proto/src/api/contract.ts), for the dashboard's
 * players view. Sans-IO: the core hands it its sessions, rules and origin health at
 * each snapshot; it keeps, per live session, the counters it saw at the previous
 * snapshot (a WeakMap: an ended session's entry goes with it), so every figure is over
 * the span since the previous heartbeat.
 *
 * - A tunnel session is a **player** when game data came up through it since the
 *   previous snapshot, and a **backup** otherwise: the SDK opens a session on its warm
 *   backup relay too but sends it only probes, so the fleet's sum of players counts
 *   each player once. A session relayed to this relay by another fleet relay (its
 *   sender is a fleet peer: this relay is the exit of a two-hop path) is counted at its
 *   entry, not here.
 * - FEC: packets rebuilt and the loss before and after FEC, from the session's upstream
 *   FEC receiver (player → relay); sessions without FEC add nothing.
 * - Bounded: the {@link RELAY_STATUS_ORIGINS_MAX} busiest origins (players, then
 *   backups, then name), the rest folded into `otherPlayers` / `otherBackups`; the first
 *   {@link RELAY_STATUS_RULES_MAX} rules with the first
 *   {@link RELAY_STATUS_RULE_ORIGINS_MAX} origins each.
 */
import { RELAY_STATUS_NAME_CHARS_MAX, RELAY_STATUS_ORIGINS_MAX, RELAY_STATUS_RULE_ORIGINS_MAX, RELAY_STATUS_RULES_MAX, type RelayOriginPlayers, type RelayRuleStatus, type RelayStatus } from '../../../proto/src/api/contract.js';
import type { RuleSpec } from './config-types.js';
import type { RuleStats } from './session-base.js';
import type { TunnelSession } from './tunnel/state.js';

/** A session's counters at the previous snapshot. */
interface Seen {
  packetsUp: number;
  received: number;
  recovered: number;
  unrecoverable: number;
}

/** Per-origin sums while a snapshot is taken. */
interface OriginSums {
  players: number;
  backups: number;
  received: number;
  recovered: number;
  unrecoverable: number;
}

/** `name` cut to what the coordinator accepts (a longer name would cost the whole heartbeat). */
const clip = (name: string): string => (name.length > RELAY_STATUS_NAME_CHARS_MAX ? `${name.slice(0, RELAY_STATUS_NAME_CHARS_MAX - 1)}…` : name);
const ratio = (part: number, whole: number): number => (whole === 0 ? 0 : Math.round((part / whole) * 1e6) / 1e6);

/** See the module comment. */
export class FleetStatus {
  private readonly seen = new WeakMap<TunnelSession, Seen>();

  /**
   * The status now; marks every session's counters as seen.
   * @param sessions the live tunnel sessions
   * @param rules the configured L4 rules
   * @param ruleStats counters by rule name (flows open now)
   * @param originHealth every origin by group with its health (`OriginGroups.originHealth`)
   */
  snapshot(sessions: Iterable<TunnelSession>, rules: readonly RuleSpec[], ruleStats: ReadonlyMap<string, RuleStats>, originHealth: readonly { group: string; origin: string; healthy: boolean }[]): RelayStatus {
    const byOrigin = new Map<string, OriginSums>();
    for (const session of sessions) {
      if (session.closed) continue;
      const totals = session.fecReceiver?.totals;
      const now: Seen = { packetsUp: session.packetsUp, received: totals?.received ?? 0, recovered: totals?.recovered ?? 0, unrecoverable: totals?.unrecoverable ?? 0 };
      const before = this.seen.get(session) ?? { packetsUp: 0, received: 0, recovered: 0, unrecoverable: 0 };
      this.seen.set(session, now);
      // The exit of a two-hop path: the entry relay counts this player.
      if (session.source.peer) continue;
      let sums = byOrigin.get(session.originName);
      if (sums === undefined) byOrigin.set(session.originName, (sums = { players: 0, backups: 0, received: 0, recovered: 0, unrecoverable: 0 }));
      if (now.packetsUp > before.packetsUp) sums.players++;
      else sums.backups++;
      sums.received += Math.max(0, now.received - before.received);
      sums.recovered += Math.max(0, now.recovered - before.recovered);
      sums.unrecoverable += Math.max(0, now.unrecoverable - before.unrecoverable);
    }
    const ranked = [...byOrigin].sort((a, b) => b[1].players - a[1].players || b[1].backups - a[1].backups || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const origins: RelayOriginPlayers[] = ranked.slice(0, RELAY_STATUS_ORIGINS_MAX).map(([origin, s]) => {
      const judged = s.received + s.recovered + s.unrecoverable;
      return { origin: clip(origin), players: s.players, backups: s.backups, fecRecovered: s.recovered, lossBeforeFec: ratio(s.recovered + s.unrecoverable, judged), lossAfterFec: ratio(s.unrecoverable, judged) };
    });
    let otherPlayers = 0;
    let otherBackups = 0;
    for (const [, s] of ranked.slice(RELAY_STATUS_ORIGINS_MAX)) {
      otherPlayers += s.players;
      otherBackups += s.backups;
    }
    const ruleStatus: RelayRuleStatus[] = rules.slice(0, RELAY_STATUS_RULES_MAX).map((rule) => ({
      rule: clip(rule.name),
      protocol: rule.protocol,
      listen: clip(`${rule.listenAddress.includes(':') ? `[${rule.listenAddress}]` : rule.listenAddress}:${rule.listenPort}${rule.listenPortEnd !== rule.listenPort ? `-${rule.listenPortEnd}` : ''}`),
      group: clip(rule.group),
      sessions: ruleStats.get(rule.name)?.sessionsActive ?? 0,
      origins: originHealth
        .filter((o) => o.group === rule.group)
        .slice(0, RELAY_STATUS_RULE_ORIGINS_MAX)
        .map((o) => ({ origin: clip(o.origin), healthy: o.healthy })),
    }));
    return { origins, otherPlayers, otherBackups, rules: ruleStatus };
  }
}
