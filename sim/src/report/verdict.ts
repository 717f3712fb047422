/**
 * "What players would feel": the report's figures, Slipstream against the direct route,
 * sorted into better, worse and the same, each with the reason the run shows for it.
 *
 * The rules, in the order a player notices them:
 * - loss: better or worse when the two differ by at least {@link LOSS_SAME_ABS} and by
 *   a quarter. Better is put down to FEC when the tunnel carried repair bytes, and to
 *   the route when the direct path's loss was highest during a scripted link change;
 *   worse to a relay crash when Slipstream's loss peaked right after one.
 * - round trip p50 and p99: the same within {@link latencySame} (2 ms or 5 %). A p50
 *   that changed names the relays that carried the run by their share of it
 *   ({@link relaysByShare}: "through ams-1 for 18 s, then lon-1 for 12 s after ams-1
 *   crashed at 18 s"), not only the one in use at the end. A p99
 *   that grew while FEC was repairing is the repair's wait (a rebuilt packet arrives
 *   with the rest of its block); around a crash it is the failover.
 * - longest gap: the same within 100 ms or 15 %. When the same and a blackout of about
 *   that length was scripted, the gap is the blackout itself (it cut the last mile
 *   both paths share); a longer gap through Slipstream after a crash is the failover.
 *
 * A scripted event is blamed for what one path suffered and the other did not only when
 * the per-second series show it: the second where that path is worst falls in the
 * event's window (from its time to its end, or {@link EVENT_REACH_MS} after, whichever
 * is later), and over that window the path is worse than the other by 1 % of loss (10 ms
 * of round trip) and worse than twice its own mean elsewhere. Pure: report and marks
 * in, verdict out.
 */
import type { QoeReport } from '../scenario/run.js';
import { aggregateSeries, type AggregateSeries } from './series.js';
import { secondsText, type TimelineMark } from './timeline.js';

/** Loss difference below which the paths count as the same, fraction (0.05 %). */
export const LOSS_SAME_ABS = 0.0005;
/** How long after a scripted event its effects are still put down to it, ms. */
export const EVENT_REACH_MS = 3000;

/** Whether Slipstream made a figure better, worse, or left it the same. */
export type Change = 'better' | 'worse' | 'same';

/** One figure's comparison. */
export interface VerdictPoint {
  readonly aspect: 'loss' | 'latencyP50' | 'latencyP99' | 'longestGap';
  readonly change: Change;
  /** E.g. "loss 1.980 % → 0.061 % (FEC rebuilt what the last mile dropped, for 52 % more bytes)". */
  readonly text: string;
}

/** The verdict: every point, and the paragraph the reports print. */
export interface Verdict {
  readonly points: readonly VerdictPoint[];
  /** What else players went through, e.g. "Players changed relay 12 times in all."; may be empty. */
  readonly notes: readonly string[];
  /** "Better: …. Worse: …. The same: …." followed by the notes. */
  readonly paragraph: string;
}

const pct = (f: number): string => `${(f * 100).toFixed(f < 0.01 ? 3 : 2)} %`;
const ms = (v: number): string => `${v.toFixed(1)} ms`;

/** Latency difference below which two figures count as the same, ms: 2 ms or 5 % of the larger. */
export function latencySame(a: number, b: number): number {
  return Math.max(2, 0.05 * Math.max(a, b));
}

function compare(direct: number, slip: number, same: number): Change {
  if (Math.abs(direct - slip) < same) return 'same';
  return slip < direct ? 'better' : 'worse';
}

/** Which mark's window interval `index` (of `intervalMs`) overlaps (the latest such mark). */
function markAt(marks: readonly TimelineMark[], index: number, intervalMs: number, kinds: readonly TimelineMark['kind'][]): TimelineMark | undefined {
  const startMs = index * intervalMs;
  let found: TimelineMark | undefined;
  for (const m of marks) {
    if (!kinds.includes(m.kind)) continue;
    const end = m.atMs + Math.max(m.durationMs ?? 0, EVENT_REACH_MS);
    if (startMs + intervalMs > m.atMs && startMs < end) found = m;
  }
  return found;
}

type Series = readonly (number | null)[];

/** The interval where `series` exceeds `other` most, or undefined when it never does by more than `minExcess`. */
function worstInterval(series: Series, other: Series, minExcess: number): number | undefined {
  let best: number | undefined;
  let bestExcess = minExcess;
  series.forEach((v, i) => {
    const excess = (v ?? 0) - (other[i] ?? 0);
    if (v !== null && excess > bestExcess) {
      bestExcess = excess;
      best = i;
    }
  });
  return best;
}

/** Mean of the non-null values of `series` inside (or outside) intervals `[from, to)`; undefined when there are none. */
function mean(series: Series, from: number, to: number, inside: boolean): number | undefined {
  let sum = 0;
  let n = 0;
  series.forEach((v, i) => {
    const isInside = i >= from && i < to;
    if (v === null || isInside !== inside) return;
    sum += v;
    n++;
  });
  return n === 0 ? undefined : sum / n;
}

/**
 * The scripted event (one of `kinds`) that `series` suffered and `other` did not: the
 * latest whose window holds the interval where `series` exceeds `other` most, provided
 * that over the whole window `series` is above `other` by more than `minExcess` and above
 * twice its own mean elsewhere. So a long window that merely happens to hold a noisy
 * second (a 30 s coordinator outage players never feel) is not blamed.
 */
function blame(marks: readonly TimelineMark[], kinds: readonly TimelineMark['kind'][], series: Series, other: Series, intervalMs: number, minExcess: number): TimelineMark | undefined {
  const worst = worstInterval(series, other, minExcess);
  const m = worst === undefined ? undefined : markAt(marks, worst, intervalMs, kinds);
  if (m === undefined) return undefined;
  const from = Math.floor(m.atMs / intervalMs);
  const to = Math.max(from + 1, Math.ceil((m.atMs + Math.max(m.durationMs ?? 0, EVENT_REACH_MS)) / intervalMs));
  const inside = mean(series, from, to, true);
  const otherInside = mean(other, from, to, true) ?? 0;
  const outside = mean(series, from, to, false);
  if (inside === undefined || inside - otherInside <= minExcess) return undefined;
  if (outside !== undefined && inside < 2 * outside) return undefined;
  return m;
}

const ALL_KINDS: readonly TimelineMark['kind'][] = ['crash', 'restart', 'outage', 'blackout', 'link'];
/** Loss excess (fraction) for a stretch of the series to count as hit by an event. */
const LOSS_BLAME_MIN = 0.01;
/** Round-trip excess for a stretch of the series to count as hit by an event, ms. */
const LATENCY_BLAME_MIN_MS = 10;

const at = (m: TimelineMark): string => `at ${secondsText(m.atMs)}`;

/** The relays players were on at the end, most used first: "relay-a", "relay-a and relay-b", or "4 relays". */
function relaysAtEnd(report: QoeReport): string | undefined {
  const counts = new Map<string, number>();
  for (const c of report.clients) if (c.slipstream.relay !== null) counts.set(c.slipstream.relay, (counts.get(c.slipstream.relay) ?? 0) + 1);
  const names = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map((e) => e[0]);
  if (names.length === 0) return undefined;
  if (names.length > 3) return `${names.length} relays`;
  return names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]!}`;
}

/** A relay's part of the run: intervals with a player on it, summed over players, and when it first carried most of them. */
interface RelayShare {
  readonly relay: string;
  intervals: number;
  /** First interval in which it carried more players than any other relay; undefined when it never did. */
  firstMajority: number | undefined;
}

/** A relay that carried less than this share of the run and never most of the players is not named, fraction. */
export const RELAY_SHARE_NAMED_MIN = 0.05;
/** More relays than this named are summed up as "N relays, mostly X". */
const RELAYS_NAMED_MAX = 3;

/**
 * The relays that carried the run, by their share of it, from the per-interval relay
 * series: in the order they took over most of the players, each with its time (one
 * player: seconds; several: the share of player time), and the crash that handed over
 * to the next one, e.g. "ams-1 for 18 s, then lon-1 for 12 s after ams-1 crashed at 18 s"
 * or "relay-fra for 39 % of the run, then relay-ams for 61 % after relay-fra crashed at 25 s".
 * Relays under {@link RELAY_SHARE_NAMED_MIN} that never carried most players are left
 * out. Without relay series, the relays in use at the end ({@link relaysAtEnd}).
 */
export function relaysByShare(report: QoeReport, marks: readonly TimelineMark[]): string | undefined {
  const shares = new Map<string, RelayShare>();
  const count = Math.max(0, ...report.clients.map((c) => c.series.slipstream.relay.length));
  let total = 0;
  for (let i = 0; i < count; i++) {
    const here = new Map<string, number>();
    for (const c of report.clients) {
      const relay = c.series.slipstream.relay[i];
      if (relay === null || relay === undefined) continue;
      here.set(relay, (here.get(relay) ?? 0) + 1);
      let share = shares.get(relay);
      if (share === undefined) shares.set(relay, (share = { relay, intervals: 0, firstMajority: undefined }));
      share.intervals++;
      total++;
    }
    const top = [...here].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
    if (top !== undefined) shares.get(top[0])!.firstMajority ??= i;
  }
  if (total === 0) return relaysAtEnd(report);
  const named = [...shares.values()].filter((s) => s.firstMajority !== undefined || s.intervals >= RELAY_SHARE_NAMED_MIN * total);
  const byShare = [...named].sort((a, b) => b.intervals - a.intervals || (a.relay < b.relay ? -1 : 1));
  const intervalMs = report.clients[0]?.series.intervalMs ?? 1000;
  const players = report.clients.length;
  const time = (s: RelayShare, first = false): string => (players === 1 ? secondsText(s.intervals * intervalMs) : `${Math.round((100 * s.intervals) / total)} %${first ? ' of the run' : ''}`);
  if (named.length === 1) return named[0]!.relay;
  if (named.length > RELAYS_NAMED_MAX) return `${named.length} relays, mostly ${byShare[0]!.relay} (${time(byShare[0]!, true)})`;
  const leaders = named.filter((s) => s.firstMajority !== undefined).sort((a, b) => a.firstMajority! - b.firstMajority!);
  const parts = leaders.map((s, k) => {
    if (k === 0) return `${s.relay} for ${time(s, true)}`;
    // The latest crash of a relay listed before, between the previous leader's start and the end of this one's first interval.
    const before = leaders.slice(0, k).map((l) => l.relay);
    const fromMs = leaders[k - 1]!.firstMajority! * intervalMs;
    const toMs = (s.firstMajority! + 1) * intervalMs;
    const crash = marks.filter((m) => m.kind === 'crash' && m.relay !== undefined && before.includes(m.relay) && m.atMs >= fromMs && m.atMs <= toMs).pop();
    return `then ${s.relay} for ${time(s)}${crash !== undefined ? ` after ${crash.relay!} crashed ${at(crash)}` : ''}`;
  });
  const others = byShare.filter((s) => s.firstMajority === undefined).map((s) => `${s.relay} for ${time(s)}`);
  return [...parts, ...(others.length > 0 ? [`and ${others.join(' and ')}`] : [])].join(', ');
}

function lossPoint(report: QoeReport, agg: AggregateSeries, marks: readonly TimelineMark[]): VerdictPoint {
  const d = report.direct.loss;
  const s = report.slipstream.loss;
  const change = Math.abs(d - s) < LOSS_SAME_ABS || Math.abs(d - s) < 0.25 * Math.max(d, s) ? 'same' : s < d ? 'better' : 'worse';
  const why: string[] = [];
  if (change === 'better') {
    const link = blame(marks, ['link', 'blackout'], agg.direct.loss, agg.slipstream.loss, agg.intervalMs, LOSS_BLAME_MIN);
    if (link !== undefined) why.push(`the relays' route avoided ${link.label} ${at(link)}`);
    if (report.slipstream.fecOverhead > 0.005) why.push(`FEC rebuilt what the last mile dropped, for ${(report.slipstream.fecOverhead * 100).toFixed(0)} % more bytes`);
  } else if (change === 'worse') {
    const crash = blame(marks, ALL_KINDS, agg.slipstream.loss, agg.direct.loss, agg.intervalMs, LOSS_BLAME_MIN);
    if (crash?.kind === 'crash') why.push(`packets on their way through ${crash.relay!} when it crashed ${at(crash)} were lost until the failover`);
    else if (crash !== undefined) why.push(`${crash.label} ${at(crash)}`);
    else why.push('the relay path loses more than the direct route');
  }
  return { aspect: 'loss', change, text: `loss ${pct(d)} → ${pct(s)}${why.length > 0 ? ` (${why.join('; ')})` : ''}` };
}

function latencyPoints(report: QoeReport, agg: AggregateSeries, marks: readonly TimelineMark[], lossChange: Change): VerdictPoint[] {
  const out: VerdictPoint[] = [];
  const d50 = report.direct.latencyMs.p50;
  const s50 = report.slipstream.latencyMs.p50;
  const relays = relaysByShare(report, marks);
  if (d50 !== null && s50 !== null) {
    const change = compare(d50, s50, latencySame(d50, s50));
    const through = relays !== undefined ? `: through ${relays}` : '';
    const why = change === 'better' ? ` (a faster whole path than the direct route${through})` : change === 'worse' ? ` (a longer detour than the direct route${through})` : '';
    out.push({ aspect: 'latencyP50', change, text: `round trip p50 ${ms(d50)} → ${ms(s50)}${why}` });
  }
  const d99 = report.direct.latencyMs.p99;
  const s99 = report.slipstream.latencyMs.p99;
  if (d99 !== null && s99 !== null) {
    const change = compare(d99, s99, latencySame(d99, s99));
    const why: string[] = [];
    if (change === 'worse') {
      if (report.slipstream.fecOverhead > 0.005 && lossChange !== 'worse') why.push('a bigger p99 from FEC repair: a packet rebuilt from parity arrives only with the rest of its block, so the worst 1 % wait for their neighbours');
      const crash = marks.find((m) => m.kind === 'crash');
      if (crash !== undefined && report.slipstream.switches > 0) why.push(`answers delayed around the failover after ${crash.relay!} crashed ${at(crash)}`);
      if (why.length === 0) why.push('the relay path is more jittery than the direct route');
    } else if (change === 'better') {
      const link = blame(marks, ['link', 'blackout'], agg.direct.latencyP99Ms, agg.slipstream.latencyP99Ms, agg.intervalMs, LATENCY_BLAME_MIN_MS);
      const p50Better = d50 !== null && s50 !== null && compare(d50, s50, latencySame(d50, s50)) === 'better';
      why.push(link !== undefined ? `the relays' route avoided ${link.label} ${at(link)}` : p50Better ? 'the shorter whole path, at the tail too' : "the relays' route has fewer slow moments than the direct one");
    }
    out.push({ aspect: 'latencyP99', change, text: `round trip p99 ${ms(d99)} → ${ms(s99)}${why.length > 0 ? ` (${why.join('; ')})` : ''}` });
  }
  return out;
}

function gapPoint(report: QoeReport, agg: AggregateSeries, marks: readonly TimelineMark[]): VerdictPoint {
  const d = report.direct.longestGapMs;
  const s = report.slipstream.longestGapMs;
  const change = compare(d, s, Math.max(100, 0.15 * Math.max(d, s)));
  const text = `longest gap ${ms(d)} → ${ms(s)}`;
  if (change === 'same') {
    const blackout = marks.find((m) => m.kind === 'blackout' && m.durationMs !== undefined && Math.abs(m.durationMs - Math.max(d, s)) <= Math.max(300, 0.3 * m.durationMs));
    if (blackout !== undefined) return { aspect: 'longestGap', change, text: `${text} (the gap is the blackout itself, ${at(blackout)}: it cut the last mile both paths share, so no route can avoid it)` };
    return { aspect: 'longestGap', change, text };
  }
  if (change === 'worse') {
    // Without a loss spike to go by, a crash the players switched away from still explains a longer silence.
    const cause = blame(marks, ALL_KINDS, agg.slipstream.loss, agg.direct.loss, agg.intervalMs, LOSS_BLAME_MIN) ?? (report.slipstream.switches > 0 ? marks.find((m) => m.kind === 'crash') : undefined);
    const why = cause?.kind === 'crash' ? `the failover after ${cause.relay!} crashed ${at(cause)}: the time to notice the relay is gone and move to the warm backup` : cause !== undefined ? `${cause.label} ${at(cause)}` : 'the relay path went silent for longer than the direct route';
    return { aspect: 'longestGap', change, text: `${text} (${why})` };
  }
  const cause = blame(marks, ['link', 'outage', 'blackout'], agg.direct.loss, agg.slipstream.loss, agg.intervalMs, LOSS_BLAME_MIN);
  return { aspect: 'longestGap', change, text: `${text} (${cause !== undefined ? `Slipstream kept answers coming through ${cause.label} ${at(cause)}` : 'Slipstream kept answers coming when the direct route went quiet'})` };
}

function sentence(head: string, points: readonly VerdictPoint[]): string {
  return points.length === 0 ? '' : `${head}: ${points.map((p) => p.text).join('; ')}.`;
}

/** The verdict of `report` (see the module comment); `marks` are the scenario's scripted events. */
export function verdict(report: QoeReport, marks: readonly TimelineMark[]): Verdict {
  const agg = aggregateSeries(report);
  const loss = lossPoint(report, agg, marks);
  const points = [loss, ...latencyPoints(report, agg, marks, loss.change), gapPoint(report, agg, marks)];
  const by = (c: Change): VerdictPoint[] => points.filter((p) => p.change === c);
  const notes = report.slipstream.switches > 0 ? [`Players changed relay ${report.slipstream.switches} time${report.slipstream.switches === 1 ? '' : 's'} in all.`] : [];
  const paragraph = [sentence('Better', by('better')), sentence('Worse', by('worse')), sentence('The same', by('same')), ...notes].filter((x) => x !== '').join(' ');
  return { points, notes, paragraph };
}
