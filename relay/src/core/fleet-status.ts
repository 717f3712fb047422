/**
 * What a relay tells the coordinator about its players and L4 rules in each heartbeat
 * (`load.status`, {@link RelayStatus} in proto/src/api/contract.ts), for the dashboard's
 * players view. Sans-IO: the core hands it its sessions, rules and origin health at
 * each snapshot; it keeps, per live session, its upstream packet count at the previous
 * snapshot (a WeakMap: an ended session's entry goes with it).
 *
 * - A tunnel session is a **player** when game data came up through it since the
 *   previous snapshot, and a **backup** otherwise: the SDK opens a session on its warm
 *   backup relay too but sends it only probes, so the fleet's sum of players counts
 *   each player once. A session this relay holds as the exit of a two-hop path (its
 *   ticket names this relay as exit) opened through another fleet relay is counted at
 *   that entry, not here.
 * - FEC: packets rebuilt and the loss before and after FEC over the lives of the
 *   sessions open now, from their upstream FEC receivers (player → relay): steady
 *   figures even at a game's packet rate, where one heartbeat's span holds a loss or
 *   none. Sessions without FEC add nothing. The downstream direction (relay → player)
 *   the same way, from the players' own FEC receivers as their `fecStats` reports
 *   told it (`TunnelSession.downFecTotals`).
 * - Bounded: the {@link RELAY_STATUS_ORIGINS_MAX} busiest origins (players, then
 *   backups, then name), the rest folded into `otherPlayers` / `otherBackups`; the first
 *   {@link RELAY_STATUS_RULES_MAX} rules with the first
 *   {@link RELAY_STATUS_RULE_ORIGINS_MAX} origins each.
 */
import { RELAY_STATUS_NAME_CHARS_MAX, RELAY_STATUS_ORIGINS_MAX, RELAY_STATUS_RULE_ORIGINS_MAX, RELAY_STATUS_RULES_MAX, type RelayOriginPlayers, type RelayRuleStatus, type RelayStatus } from '../../../proto/src/api/contract.js';
import type { RuleSpec } from './config-types.js';
import type { RuleStats } from './session-base.js';
import type { TunnelSession } from './tunnel/state.js';

/** Per-origin sums while a snapshot is taken. */
interface OriginSums {
  players: number;
  backups: number;
  received: number;
  recovered: number;
  unrecoverable: number;
  downReceived: number;
  downRecovered: number;
  downUnrecoverable: number;
}

/** `name` cut to what the coordinator accepts (a longer name would cost the whole heartbeat). */
const clip = (name: string): string => (name.length > RELAY_STATUS_NAME_CHARS_MAX ? `${name.slice(0, RELAY_STATUS_NAME_CHARS_MAX - 1)}…` : name);
const ratio = (part: number, whole: number): number => (whole === 0 ? 0 : Math.round((part / whole) * 1e6) / 1e6);

/** See the module comment. */
export class FleetStatus {
  /** Each live session's upstream packet count at the previous snapshot. */
  private readonly seen = new WeakMap<TunnelSession, number>();

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
      const before = this.seen.get(session) ?? 0;
      this.seen.set(session, session.packetsUp);
      // The exit of a two-hop path, opened through a fleet relay: that entry counts this player.
      if (session.paths !== undefined && session.source.peer) continue;
      let sums = byOrigin.get(session.originName);
      if (sums === undefined) byOrigin.set(session.originName, (sums = { players: 0, backups: 0, received: 0, recovered: 0, unrecoverable: 0, downReceived: 0, downRecovered: 0, downUnrecoverable: 0 }));
      if (session.packetsUp > before) sums.players++;
      else sums.backups++;
      const down = session.downFecTotals;
      if (down !== undefined) {
        sums.downReceived += down.received;
        sums.downRecovered += down.recovered;
        sums.downUnrecoverable += down.unrecoverable;
      }
      const totals = session.fecReceiver?.totals;
      if (totals === undefined) continue;
      sums.received += totals.received;
      sums.recovered += totals.recovered;
      sums.unrecoverable += totals.unrecoverable;
    }
    const ranked = [...byOrigin].sort((a, b) => b[1].players - a[1].players || b[1].backups - a[1].backups || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const origins: RelayOriginPlayers[] = ranked.slice(0, RELAY_STATUS_ORIGINS_MAX).map(([origin, s]) => {
      const judged = s.received + s.recovered + s.unrecoverable;
      const downJudged = s.downReceived + s.downRecovered + s.downUnrecoverable;
      return {
        origin: clip(origin),
        players: s.players,
        backups: s.backups,
        fecRecovered: s.recovered,
        lossBeforeFec: ratio(s.recovered + s.unrecoverable, judged),
        lossAfterFec: ratio(s.unrecoverable, judged),
        downLossBeforeFec: ratio(s.downRecovered + s.downUnrecoverable, downJudged),
        downLossAfterFec: ratio(s.downUnrecoverable, downJudged),
      };
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
