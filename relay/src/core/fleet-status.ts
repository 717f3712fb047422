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

/** One origin's players, backups and FEC counters, summed over sessions (and over relay workers). */
export interface OriginSums {
  players: number;
  backups: number;
  received: number;
  recovered: number;
  unrecoverable: number;
  downReceived: number;
  downRecovered: number;
  downUnrecoverable: number;
}

/**
 * The counters behind a {@link RelayStatus}, before ranking and ratios: what one relay
 * worker tallies of its own sessions and flows, so that several workers' tallies add up
 * ({@link mergeStatusTallies}) to the relay's status. Plain objects (structured-cloneable).
 */
export interface StatusTally {
  /** Per origin name. */
  readonly origins: Record<string, OriginSums>;
  /** Flows or connections open now, per L4 rule name. */
  readonly ruleSessions: Record<string, number>;
}

/** `into` plus `other`, in place (another worker's tally); returns `into`. */
export function mergeStatusTallies(into: StatusTally, other: StatusTally): StatusTally {
  for (const [origin, o] of Object.entries(other.origins)) {
    const sums = (into.origins[origin] ??= emptySums());
    for (const key of Object.keys(o) as (keyof OriginSums)[]) sums[key] += o[key];
  }
  for (const [rule, n] of Object.entries(other.ruleSessions)) into.ruleSessions[rule] = (into.ruleSessions[rule] ?? 0) + n;
  return into;
}

const emptySums = (): OriginSums => ({ players: 0, backups: 0, received: 0, recovered: 0, unrecoverable: 0, downReceived: 0, downRecovered: 0, downUnrecoverable: 0 });

/** `name` cut to what the coordinator accepts (a longer name would cost the whole heartbeat). */
const clip = (name: string): string => (name.length > RELAY_STATUS_NAME_CHARS_MAX ? `${name.slice(0, RELAY_STATUS_NAME_CHARS_MAX - 1)}…` : name);
const ratio = (part: number, whole: number): number => (whole === 0 ? 0 : Math.round((part / whole) * 1e6) / 1e6);

/** See the module comment. */
export class FleetStatus {
  /** Each live session's upstream packet count at the previous snapshot. */
  private readonly seen = new WeakMap<TunnelSession, number>();

  /**
   * The counters now; marks every session's counters as seen (a session is a player when
   * data came up since the previous tally).
   * @param sessions the live tunnel sessions
   * @param ruleStats counters by rule name (flows open now)
   */
  tally(sessions: Iterable<TunnelSession>, ruleStats: ReadonlyMap<string, RuleStats>): StatusTally {
    const origins: Record<string, OriginSums> = {};
    for (const session of sessions) {
      if (session.closed) continue;
      const before = this.seen.get(session) ?? 0;
      this.seen.set(session, session.packetsUp);
      // The exit of a two-hop path, opened through a fleet relay: that entry counts this player.
      if (session.paths !== undefined && session.source.peer) continue;
      const sums = (origins[session.originName] ??= emptySums());
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
    const ruleSessions: Record<string, number> = {};
    for (const [name, stats] of ruleStats) ruleSessions[name] = stats.sessionsActive;
    return { origins, ruleSessions };
  }

  /**
   * The status now ({@link tally}, plus `others`: the other relay workers' tallies).
   * @param sessions the live tunnel sessions
   * @param rules the configured L4 rules
   * @param ruleStats counters by rule name (flows open now)
   * @param originHealth every origin by group with its health (`OriginGroups.originHealth`)
   * @param others tallies of the relay's other workers (default none)
   */
  snapshot(sessions: Iterable<TunnelSession>, rules: readonly RuleSpec[], ruleStats: ReadonlyMap<string, RuleStats>, originHealth: readonly { group: string; origin: string; healthy: boolean }[], others: readonly StatusTally[] = []): RelayStatus {
    const tally = this.tally(sessions, ruleStats);
    for (const other of others) mergeStatusTallies(tally, other);
    return formatStatus(tally, rules, originHealth);
  }
}

/** A tally as the heartbeat's bounded {@link RelayStatus} (busiest origins first, ratios). */
function formatStatus(tally: StatusTally, rules: readonly RuleSpec[], originHealth: readonly { group: string; origin: string; healthy: boolean }[]): RelayStatus {
  const byOrigin = Object.entries(tally.origins);
  const ranked = byOrigin.sort((a, b) => b[1].players - a[1].players || b[1].backups - a[1].backups || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
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
    sessions: tally.ruleSessions[rule.name] ?? 0,
    origins: originHealth
      .filter((o) => o.group === rule.group)
      .slice(0, RELAY_STATUS_RULE_ORIGINS_MAX)
      .map((o) => ({ origin: clip(o.origin), healthy: o.healthy })),
  }));
  return { origins, otherPlayers, otherBackups, rules: ruleStatus };
}
