/**
 * The "what players would feel" verdict on synthetic reports, one rule at a time: FEC
 * lowers loss and raises p99; a gap of the blackout's length on both paths is the
 * blackout itself; a longer gap right after a crash is the failover; the p50 names the
 * relays by their share of the run and the crash between them; a direct-path loss
 * spike during a scripted link change is the route the relays avoided; equal figures
 * are "the same". Also: the scripted events' labels from a shipped scenario, and the
 * HTML renderer escaping every text it is given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { QoeReport } from '../src/scenario/run.js';
import type { PathQoe } from '../src/scenario/qoe.js';
import { loadScenario } from '../src/scenario/load.js';
import { verdict, type Change } from '../src/report/verdict.js';
import { timelineMarks, type TimelineMark } from '../src/report/timeline.js';
import { escapeHtml, niceStep, renderHtmlReport } from '../src/report/html.js';

const SECONDS = 60;

interface Side {
  loss: number;
  p50: number;
  p99: number;
  gap: number;
  /** Loss per second (the rest: `loss`). */
  spikes?: Record<number, number>;
}

function path(s: Side): PathQoe {
  return { loss: s.loss, latencyMs: { p50: s.p50, p99: s.p99 }, jitterMs: 1, longestGapMs: s.gap };
}

function lossSeries(s: Side): number[] {
  return Array.from({ length: SECONDS }, (_, i) => s.spikes?.[i] ?? s.loss);
}

/** A two-player report with flat series apart from the spikes (`relays`: each player's relay per second, instead of relay-a all along). */
function report(direct: Side, slip: Side, extra: { switches?: number; fecOverhead?: number; name?: string; relays?: (string | null)[][] } = {}): QoeReport {
  const slipstream = { ...path(slip), switches: extra.switches ?? 0, fecOverhead: extra.fecOverhead ?? 0 };
  const relays = extra.relays ?? [new Array<string>(SECONDS).fill('relay-a'), new Array<string>(SECONDS).fill('relay-a')];
  const clients = relays.map((series, i) => ({
    name: extra.name ?? `p-${i + 1}`,
    origin: 'game',
    direct: path(direct),
    slipstream: { ...slipstream, relay: series[series.length - 1] ?? null },
    series: {
      intervalMs: 1000,
      direct: { loss: lossSeries(direct), latencyMs: new Array<number>(SECONDS).fill(direct.p50) },
      slipstream: { loss: lossSeries(slip), latencyMs: new Array<number>(SECONDS).fill(slip.p50), relay: series },
    },
  }));
  return { scenario: 'synthetic', seed: 1, durationMs: SECONDS * 1000, players: clients.length, direct: path(direct), slipstream, clients };
}

const mark = (kind: TimelineMark['kind'], atMs: number, label: string, durationMs?: number, relay?: string): TimelineMark => ({ kind, atMs, label, durationMs, relay });

function change(r: QoeReport, marks: TimelineMark[], aspect: string): { change: Change; text: string } {
  const p = verdict(r, marks).points.find((x) => x.aspect === aspect);
  assert.ok(p, aspect);
  return p;
}

test('verdict: FEC lowers loss and raises p99, and says so', () => {
  const r = report({ loss: 0.02, p50: 60, p99: 70, gap: 80 }, { loss: 0.001, p50: 60, p99: 95, gap: 80 }, { fecOverhead: 0.5 });
  const loss = change(r, [], 'loss');
  assert.equal(loss.change, 'better');
  assert.match(loss.text, /loss 2\.00 % → 0\.100 % \(FEC rebuilt what the last mile dropped, for 50 % more bytes\)/);
  const p99 = change(r, [], 'latencyP99');
  assert.equal(p99.change, 'worse');
  assert.match(p99.text, /a bigger p99 from FEC repair/);
  assert.equal(change(r, [], 'latencyP50').change, 'same');
  const v = verdict(r, []);
  assert.match(v.paragraph, /^Better: loss .*\. Worse: round trip p99 .*\. The same: round trip p50 .*; longest gap .*\.$/);
});

test('verdict: a gap of the blackout on both paths is the blackout itself', () => {
  const r = report({ loss: 0.03, p50: 60, p99: 70, gap: 1510 }, { loss: 0.03, p50: 60, p99: 70, gap: 1540 });
  const gap = change(r, [mark('blackout', 20_000, 'blackout 1.5 s: phone access', 1500)], 'longestGap');
  assert.equal(gap.change, 'same');
  assert.match(gap.text, /the gap is the blackout itself, at 20 s: it cut the last mile both paths share/);
  // Without a blackout of that length, no such claim.
  assert.doesNotMatch(change(r, [mark('blackout', 20_000, 'short', 200)], 'longestGap').text, /blackout/);
});

test('verdict: a longer gap after a crash is the failover; worse loss right after it too', () => {
  const marks = [mark('crash', 25_000, 'relay-a crashes', undefined, 'relay-a'), mark('restart', 40_000, 'relay-a restarts', undefined, 'relay-a')];
  const r = report({ loss: 0.001, p50: 60, p99: 70, gap: 50 }, { loss: 0.004, p50: 40, p99: 45, gap: 400, spikes: { 25: 0.15 } }, { switches: 2 });
  const gap = change(r, marks, 'longestGap');
  assert.equal(gap.change, 'worse');
  assert.match(gap.text, /longest gap 50\.0 ms → 400\.0 ms \(the failover after relay-a crashed at 25 s/);
  const loss = change(r, marks, 'loss');
  assert.equal(loss.change, 'worse');
  assert.match(loss.text, /through relay-a when it crashed at 25 s were lost until the failover/);
  assert.equal(change(r, marks, 'latencyP50').change, 'better');
  assert.match(verdict(r, marks).paragraph, /Players changed relay 2 times in all\.$/);
});

test('verdict: loss the direct route took during a link change is the route the relays avoided', () => {
  const marks = [mark('link', 30_000, 'player → game: bursty loss for 15 s', 15_000)];
  const r = report({ loss: 0.01, p50: 80, p99: 90, gap: 60, spikes: { 31: 0.08, 32: 0.1 } }, { loss: 0.0001, p50: 50, p99: 55, gap: 40 });
  const loss = change(r, marks, 'loss');
  assert.equal(loss.change, 'better');
  assert.match(loss.text, /the relays' route avoided player → game: bursty loss for 15 s at 30 s/);
});

test('verdict: a long event window that merely holds a noisy second is not blamed', () => {
  // A 30 s coordinator outage players never feel; the direct path's noisiest second falls in it.
  const marks = [mark('outage', 15_000, 'coordinator cut off for 30 s', 30_000), mark('link', 15_000, 'player ↔ game: delay 45 ms', 30_000)];
  const r = report({ loss: 0.02, p50: 80, p99: 90, gap: 60, spikes: { 20: 0.05 } }, { loss: 0.002, p50: 50, p99: 55, gap: 40 }, { fecOverhead: 0.4 });
  const loss = change(r, marks, 'loss');
  assert.equal(loss.change, 'better');
  assert.doesNotMatch(loss.text, /avoided/);
  assert.doesNotMatch(change(r, marks, 'longestGap').text, /coordinator|player ↔ game/);
});

test('verdict: equal figures are the same, with no reasons invented', () => {
  const r = report({ loss: 0.01, p50: 50, p99: 60, gap: 100 }, { loss: 0.0102, p50: 51, p99: 61, gap: 120 });
  const v = verdict(r, []);
  assert.ok(v.points.every((p) => p.change === 'same'), JSON.stringify(v.points));
  assert.match(v.paragraph, /^The same: loss 1\.00 % → 1\.02 %; round trip p50 50\.0 ms → 51\.0 ms; round trip p99 60\.0 ms → 61\.0 ms; longest gap 100\.0 ms → 120\.0 ms\.$/);
});

/** `seconds` of `relay` per entry, back to back (null: no relay yet). */
const relayRun = (...spans: [string | null, number][]): (string | null)[] => spans.flatMap(([relay, seconds]) => new Array<string | null>(seconds).fill(relay));

test('verdict: the p50 names the relays by their share of the run, in the order they took over, and the crash that handed over (one player: seconds)', () => {
  const marks = [mark('crash', 18_000, 'ams-1 killed', undefined, 'ams-1')];
  const r = report({ loss: 0.04, p50: 60, p99: 63, gap: 54 }, { loss: 0.004, p50: 41, p99: 80, gap: 307 }, { switches: 1, relays: [relayRun([null, 1], ['ams-1', 17], ['lon-1', 42])] });
  const p50 = change(r, marks, 'latencyP50');
  assert.equal(p50.change, 'better');
  assert.equal(p50.text, 'round trip p50 60.0 ms → 41.0 ms (a faster whole path than the direct route: through ams-1 for 17 s, then lon-1 for 42 s after ams-1 crashed at 18 s)');
  // Without a crash between them, the hand-over is not explained; a longer path says "detour".
  const detour = change(report({ loss: 0.01, p50: 40, p99: 50, gap: 50 }, { loss: 0.01, p50: 60, p99: 70, gap: 50 }, { relays: [relayRun(['ams-1', 20], ['lon-1', 40])] }), marks.map((m) => ({ ...m, atMs: 50_000 })), 'latencyP50');
  assert.equal(detour.change, 'worse');
  assert.equal(detour.text, 'round trip p50 40.0 ms → 60.0 ms (a longer detour than the direct route: through ams-1 for 20 s, then lon-1 for 40 s)');
});

test('verdict: several players: each relay\'s share of player time; a relay that never carried most of them is named after the others, one under 5 % not at all; more than 3 are summed up', () => {
  const marks = [mark('crash', 25_000, 'relay-fra crashes', undefined, 'relay-fra')];
  const relays = [
    relayRun(['relay-fra', 25], ['relay-ams', 35]),
    relayRun(['relay-fra', 25], ['relay-ams', 35]),
    relayRun(['relay-fra', 26], ['relay-ams', 34]),
    relayRun(['relay-iad', 60]),
    relayRun(['relay-fra', 25], ['relay-sin', 2], ['relay-ams', 33]),
  ];
  const r = report({ loss: 0.01, p50: 80, p99: 90, gap: 50 }, { loss: 0.002, p50: 50, p99: 60, gap: 270 }, { switches: 4, relays });
  assert.match(change(r, marks, 'latencyP50').text, /\(a faster whole path than the direct route: through relay-fra for 34 % of the run, then relay-ams for 46 % after relay-fra crashed at 25 s, and relay-iad for 20 %\)$/);
  const many = report({ loss: 0.01, p50: 80, p99: 90, gap: 50 }, { loss: 0.002, p50: 50, p99: 60, gap: 50 }, { relays: ['a', 'b', 'c', 'd'].map((x) => relayRun([`relay-${x}`, 60])) });
  assert.match(change(many, [], 'latencyP50').text, /through 4 relays, mostly relay-a \(25 % of the run\)\)$/);
  // One relay all along: just its name.
  assert.match(change(report({ loss: 0.01, p50: 80, p99: 90, gap: 50 }, { loss: 0.002, p50: 50, p99: 60, gap: 50 }), [], 'latencyP50').text, /\(a faster whole path than the direct route: through relay-a\)$/);
});

test('timeline marks: the shipped scenarios label their events by what the file said', () => {
  const file = (name: string): string => fileURLToPath(new URL(`../../../sim/scenarios/${name}.yaml`, import.meta.url));
  const handover = timelineMarks(loadScenario(file('mobile-handover')));
  assert.deepEqual(
    handover.map((m) => [m.atMs, m.kind, m.durationMs]),
    [
      [20_000, 'blackout', 1500],
      [21_500, 'link', undefined],
      [45_000, 'blackout', 600],
    ],
  );
  assert.match(handover[0]!.label, /^blackout 1\.5 s: phone access$/);
  assert.match(handover[1]!.label, /^phone access: delay 25 ms, jitter 8 ms, loss 2 %$/);
  const evening = timelineMarks(loadScenario(file('congested-evening')));
  assert.deepEqual(evening.map((m) => m.label), ['player ↔ game: delay 45 ms, bursty loss for 15 s']);
  const outage = timelineMarks(loadScenario(file('coordinator-outage')));
  assert.deepEqual(
    outage.map((m) => [m.kind, m.label]),
    [
      ['outage', 'coordinator cut off for 30 s'],
      ['crash', 'relay-iad crashes'],
    ],
  );
});

test('html: every text is escaped, the page is self-contained, ticks are nice', () => {
  assert.equal(escapeHtml(`<a href="x">&'`), '&lt;a href=&quot;x&quot;&gt;&amp;&#39;');
  const r = { ...report({ loss: 0.01, p50: 50, p99: 60, gap: 100 }, { loss: 0.001, p50: 40, p99: 50, gap: 80 }, { name: '<script>alert(1)</script>' }), scenario: 'a&b' };
  const html = renderHtmlReport(r, [mark('crash', 25_000, '<img src=x onerror=alert(1)>', undefined, 'r')]);
  assert.doesNotMatch(html, /<script|<img/);
  assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.match(html, /Slipstream scenario report: a&amp;b/);
  assert.match(html, /<svg id="plot-rtt"[\s\S]*<svg id="plot-loss"[\s\S]*<svg id="plot-relay"/);
  assert.deepEqual([niceStep(100), niceStep(82), niceStep(0.3), niceStep(60, 10), niceStep(0)], [20, 20, 0.1, 10, 1]);
});
