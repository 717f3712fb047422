/**
 * A scenario's scripted events as the reports show them: one mark per timeline event,
 * with its time, a kind a reader recognises (a relay crash, an outage, a handover or a
 * link change) and a short label naming what it hit, so the text report can list them
 * and the HTML report can draw them on its plots. Pure: scenario in, marks out.
 *
 * Names are folded back into what the file said where that is shorter: a player
 * group's members become the group's name, so "phone access" rather than twelve hosts.
 */
import type { LinkModelSpec, LossSpec } from '../core/link.js';
import type { AccessHop, DirectedPair, Scenario, ScenarioEvent } from '../scenario/schema.js';

/** What kind of scripted event a mark is (the reports colour and explain by it). */
export type TimelineKind = 'crash' | 'restart' | 'outage' | 'blackout' | 'link';

/** One scripted event as the reports show it. */
export interface TimelineMark {
  /** Virtual time of the event, ms from the run's start. */
  readonly atMs: number;
  /** How long its effect lasts, ms; undefined when it lasts to the end (a crash, a permanent link change). */
  readonly durationMs: number | undefined;
  readonly kind: TimelineKind;
  /** The relay a crash or restart hit; undefined for the other kinds. */
  readonly relay: string | undefined;
  /** Short human label, e.g. "relay-fra crashes", "blackout 1.5 s: phone access". */
  readonly label: string;
}

/** Seconds as the reports print them: "25 s", "1.5 s", "600 ms". */
export function secondsText(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s.toFixed(0) : s.toFixed(1)} s`;
}

/** Host names → the shortest description: whole player groups by their name, then up to three more hosts, then a count. */
function hostsText(scenario: Scenario, hosts: readonly string[]): string {
  const left = new Set(hosts);
  const parts: string[] = [];
  for (const g of scenario.clients) {
    if (g.members.length > 1 && g.members.every((m) => left.has(m))) {
      parts.push(g.name);
      for (const m of g.members) left.delete(m);
    }
  }
  const rest = [...left];
  parts.push(...rest.slice(0, 3));
  if (rest.length > 3) parts.push(`${rest.length - 3} more`);
  return parts.join(', ');
}

/** "a → b", or "a ↔ b" when the pairs are both directions between two sides (a `between`/`↔` selector). */
function pairsText(scenario: Scenario, pairs: readonly DirectedPair[]): string {
  const first = pairs[0];
  if (first !== undefined) {
    const left = new Set(pairs.filter((p) => p[1] === first[1]).map((p) => p[0]));
    const right = new Set(pairs.filter((p) => p[0] === first[0]).map((p) => p[1]));
    const key = (a: string, b: string): string => `${a}\u0000${b}`;
    const have = new Set(pairs.map((p) => key(p[0], p[1])));
    const expected = [...left].flatMap((a) => [...right].flatMap((b) => [key(a, b), key(b, a)]));
    if (expected.length === have.size && expected.every((k) => have.has(k))) return `${hostsText(scenario, [...left])} ↔ ${hostsText(scenario, [...right])}`;
  }
  const from = [...new Set(pairs.map((p) => p[0]))];
  const to = [...new Set(pairs.map((p) => p[1]))];
  return `${hostsText(scenario, from)} → ${hostsText(scenario, to)}`;
}

function accessText(scenario: Scenario, hops: readonly AccessHop[]): string {
  const directions = new Set(hops.map((h) => h[1]));
  const which = directions.size === 1 ? ` ${[...directions][0]!}` : '';
  return `${hostsText(scenario, [...new Set(hops.map((h) => h[0]))])} access${which}`;
}

function lossText(loss: LossSpec): string {
  switch (loss.model) {
    case 'bernoulli':
      return `loss ${+(loss.p * 100).toFixed(2)} %`;
    case 'gilbert-elliott':
      return 'bursty loss';
    default:
      return `${loss.model} loss`;
  }
}

/** The keys of a `set` that a reader cares about, e.g. "delay 25 ms, jitter 8 ms, loss 2 %". */
function modelText(m: LinkModelSpec): string {
  const parts: string[] = [];
  if (m.delayMs !== undefined) parts.push(`delay ${m.delayMs} ms`);
  if (m.jitterMs !== undefined) parts.push(`jitter ${m.jitterMs} ms`);
  if (m.loss !== undefined) parts.push(lossText(m.loss));
  if (m.rateKbps !== undefined) parts.push(`rate ${m.rateKbps} kbit/s`);
  if (m.trace !== undefined) parts.push('trace');
  const shown = new Set(['delayMs', 'jitterMs', 'loss', 'rateKbps', 'trace']);
  const other = Object.keys(m).filter((k) => !shown.has(k));
  if (other.length > 0) parts.push(other.join(', '));
  return parts.join(', ');
}

function where(scenario: Scenario, e: { readonly pairs: readonly DirectedPair[]; readonly access: readonly AccessHop[] }): string {
  return e.access.length > 0 ? accessText(scenario, e.access) : pairsText(scenario, e.pairs);
}

function mark(scenario: Scenario, e: ScenarioEvent): TimelineMark {
  switch (e.kind) {
    case 'crash':
      return { atMs: e.atMs, durationMs: undefined, kind: 'crash', relay: e.relay, label: `${e.relay} crashes` };
    case 'restart':
      return { atMs: e.atMs, durationMs: undefined, kind: 'restart', relay: e.relay, label: `${e.relay} restarts` };
    case 'blackout':
      return { atMs: e.atMs, durationMs: e.durationMs, kind: 'blackout', relay: undefined, label: `blackout ${secondsText(e.durationMs)}: ${where(scenario, e)}` };
    case 'set': {
      const forText = e.forMs === undefined ? '' : ` for ${secondsText(e.forMs)}`;
      return { atMs: e.atMs, durationMs: e.forMs, kind: 'link', relay: undefined, label: `${where(scenario, e)}: ${modelText(e.set)}${forText}` };
    }
    case 'partition': {
      const forText = e.forMs === undefined ? '' : ` for ${secondsText(e.forMs)}`;
      const everyoneElse = e.a.length + e.b.length === scenario.hosts.length;
      const what = everyoneElse && e.a.length <= e.b.length ? `${hostsText(scenario, e.a)} cut off` : everyoneElse ? `${hostsText(scenario, e.b)} cut off` : `partition ${hostsText(scenario, e.a)} | ${hostsText(scenario, e.b)}`;
      return { atMs: e.atMs, durationMs: e.forMs, kind: 'outage', relay: undefined, label: `${what}${forText}` };
    }
  }
}

/** The scenario's timeline as marks, in time order. */
export function timelineMarks(scenario: Scenario): TimelineMark[] {
  return scenario.events.map((e) => mark(scenario, e));
}
