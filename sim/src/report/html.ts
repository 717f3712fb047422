/**
 * The HTML report of `slipstream sim run --html FILE`: one self-contained page (inline
 * CSS and SVG, no script, nothing fetched) drawn by hand from the per-second series the
 * JSON report already has:
 * - round trip over time, direct vs Slipstream: the median player and the p99 player
 *   (each player's median round trip per second);
 * - loss over time, direct vs Slipstream (mean over the players);
 * - the relay each player was on, one coloured band per player (the first
 *   {@link RELAY_BAND_PLAYERS_MAX}), grey where it had none;
 * - the scripted events (crash, restart, outage, blackout, link change) as marks on
 *   every plot (a line at the event, a shaded band while it lasts), and listed;
 * - the "what players would feel" verdict ({@link verdict}) and the summary figures.
 *
 * Pure: report and marks in, a string out; every text from the report is escaped.
 * Elements the Chromium test checks carry ids and data attributes (`#plot-rtt`,
 * `#plot-loss`, `#plot-relay`, `path.series[data-series]`, `g.event-mark[data-kind]`).
 */
import type { QoeReport } from '../scenario/run.js';
import { aggregateSeries } from './series.js';
import { secondsText, type TimelineMark } from './timeline.js';
import { verdict } from './verdict.js';

/** Players drawn one band each in the relay plot; the rest are counted under it. */
export const RELAY_BAND_PLAYERS_MAX = 24;

const WIDTH = 960;
const MARGIN = { right: 20, top: 34, bottom: 40 } as const;
/** Left margin bounds, px: room for the y ticks, or for the player names of the relay band (at most {@link NAME_CHARS_MAX} characters). */
const LEFT_MIN = 60;
const NAME_CHARS_MAX = 22;
/** Rough width of one character of an 11 px label, px. */
const CHAR_PX = 6.6;
const PLOT_HEIGHT = 240;
const BAND_ROW = 14;

const DIRECT_COLOUR = '#2563eb';
const SLIP_COLOUR = '#ea580c';
/** Relay colours, in order of first use; a relay past the list reuses them. */
const RELAY_COLOURS = ['#0d9488', '#9333ea', '#ca8a04', '#db2777', '#4f46e5', '#65a30d', '#0891b2', '#b91c1c', '#7c3aed', '#059669'];
const NO_RELAY_COLOUR = '#d4d4d8';
const MARK_COLOUR: Record<TimelineMark['kind'], string> = { crash: '#dc2626', restart: '#16a34a', outage: '#7c2d12', blackout: '#111827', link: '#a16207' };

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** A "nice" tick step (1, 2 or 5 × 10^k) giving at most `target` steps up to `max`. */
export function niceStep(max: number, target = 5): number {
  if (!(max > 0)) return 1;
  const base = 10 ** Math.floor(Math.log10(max / target));
  for (const m of [1, 2, 5, 10]) if (max / (base * m) <= target) return base * m;
  return base * 10;
}

const fixed = (v: number): string => (Math.round(v * 10) / 10).toString();

interface Line {
  readonly name: string;
  readonly key: string;
  readonly colour: string;
  readonly dashed: boolean;
  readonly values: readonly (number | null)[];
}

interface Frame {
  /** Left edge of the plotting area, px (the same on every plot, so their time axes line up). */
  readonly left: number;
  readonly durationMs: number;
  readonly intervalMs: number;
  readonly height: number;
  readonly x: (ms: number) => number;
}

function frame(left: number, durationMs: number, intervalMs: number, height: number): Frame {
  const span = WIDTH - left - MARGIN.right;
  return { left, durationMs, intervalMs, height, x: (ms) => left + (span * Math.min(Math.max(ms, 0), durationMs)) / Math.max(1, durationMs) };
}

/** The time axis at the bottom of a plot: ticks in seconds. */
function timeAxis(f: Frame): string {
  const bottom = MARGIN.top + f.height;
  const step = niceStep(f.durationMs / 1000, 10);
  const out = [`<line class="axis" x1="${f.left}" y1="${bottom}" x2="${WIDTH - MARGIN.right}" y2="${bottom}"/>`];
  for (let s = 0; s * 1000 <= f.durationMs + 1e-9; s += step) {
    const x = fixed(f.x(s * 1000));
    out.push(`<line class="tick" x1="${x}" y1="${bottom}" x2="${x}" y2="${bottom + 5}"/><text class="tick-label" x="${x}" y="${bottom + 17}" text-anchor="middle">${fixed(s)}</text>`);
  }
  out.push(`<text class="axis-label" x="${WIDTH - MARGIN.right}" y="${bottom + 33}" text-anchor="end">time (s)</text>`);
  return out.join('');
}

/** Scripted events on a plot: a shaded band while one lasts, a line at its start, its label staggered on top. */
function eventMarks(f: Frame, marks: readonly TimelineMark[]): string {
  const top = MARGIN.top;
  const bottom = MARGIN.top + f.height;
  return marks
    .map((m, i) => {
      const x = f.x(m.atMs);
      const colour = MARK_COLOUR[m.kind];
      const band = m.durationMs === undefined ? '' : `<rect class="event-window" x="${fixed(x)}" y="${top}" width="${fixed(Math.max(1, f.x(m.atMs + m.durationMs) - x))}" height="${f.height}" fill="${colour}" fill-opacity="0.08"/>`;
      const labelY = top - 6 - (i % 2) * 12;
      const anchor = x > WIDTH - 200 ? 'end' : 'start';
      const dx = anchor === 'end' ? -3 : 3;
      return `<g class="event-mark" data-kind="${m.kind}" data-at-ms="${m.atMs}">${band}<line x1="${fixed(x)}" y1="${top - 2}" x2="${fixed(x)}" y2="${bottom}" stroke="${colour}" stroke-width="1.5" stroke-dasharray="4 3"/><text x="${fixed(x + dx)}" y="${labelY}" text-anchor="${anchor}" fill="${colour}" class="event-label">${escapeHtml(`${secondsText(m.atMs)} ${m.label}`)}</text><title>${escapeHtml(`${secondsText(m.atMs)}: ${m.label}`)}</title></g>`;
    })
    .join('');
}

/** A line plot of per-interval values: y axis from 0 with ticks, one path per line (broken where a value is null), a legend. */
function linePlot(id: string, title: string, unit: string, lines: readonly Line[], f: Frame, marks: readonly TimelineMark[], scale = 1): string {
  let max = 0;
  for (const l of lines) for (const v of l.values) if (v !== null) max = Math.max(max, v * scale);
  const step = niceStep(max > 0 ? max * 1.05 : 1);
  let top = Math.max(step, Math.ceil((max * 1.05) / step) * step);
  // The legend sits in the top left: one more step when the lines would run under it.
  const legendHeight = Math.ceil(lines.length / 2) * 16 + 12;
  if (max > top * (1 - legendHeight / f.height)) top += step;
  const bottom = MARGIN.top + f.height;
  const y = (v: number): number => bottom - (f.height * v * scale) / top;
  const grid: string[] = [];
  for (let v = 0; v <= top + 1e-9; v += step) {
    const yy = fixed(bottom - (f.height * v) / top);
    grid.push(`<line class="grid" x1="${f.left}" y1="${yy}" x2="${WIDTH - MARGIN.right}" y2="${yy}"/><text class="tick-label" x="${f.left - 6}" y="${yy}" dy="4" text-anchor="end">${+v.toPrecision(6)}</text>`);
  }
  const paths = lines.map((l) => {
    const parts: string[] = [];
    let open = false;
    l.values.forEach((v, i) => {
      if (v === null) {
        open = false;
        return;
      }
      const xx = fixed(f.x((i + 0.5) * f.intervalMs));
      const yy = fixed(y(v));
      parts.push(`${open ? 'L' : 'M'}${xx} ${yy}`);
      // A lone point still shows: the round cap of a zero-length segment draws a dot.
      if (!open && (l.values[i + 1] ?? null) === null) parts.push(`L${xx} ${yy}`);
      open = true;
    });
    const points = l.values.filter((v) => v !== null).length;
    return `<path class="series" data-series="${l.key}" data-points="${points}" d="${parts.join(' ')}" fill="none" stroke="${l.colour}" stroke-width="${l.dashed ? 1.5 : 2}" stroke-linecap="round" stroke-linejoin="round"${l.dashed ? ' stroke-dasharray="6 4"' : ''}><title>${escapeHtml(l.name)}</title></path>`;
  });
  const legend = lines
    .map((l, i) => {
      const lx = f.left + 10 + (i % 2) * 260;
      const ly = bottom - f.height + 14 + Math.floor(i / 2) * 16;
      return `<g class="legend-item"><line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${l.colour}" stroke-width="2"${l.dashed ? ' stroke-dasharray="6 4"' : ''}/><text x="${lx + 30}" y="${ly}" dy="4">${escapeHtml(l.name)}</text></g>`;
    })
    .join('');
  const height = MARGIN.top + f.height + MARGIN.bottom;
  return `<figure><figcaption>${escapeHtml(title)}</figcaption><svg id="${id}" class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img" aria-label="${escapeHtml(title)}">${grid.join('')}<text class="axis-label" x="${f.left - 6}" y="${MARGIN.top - 22}" text-anchor="end">${escapeHtml(unit)}</text>${eventMarks(f, marks)}${paths.join('')}${timeAxis(f)}<rect class="legend-box" x="${f.left + 4}" y="${bottom - f.height + 4}" width="${lines.length > 2 ? 520 : 260}" height="${Math.ceil(lines.length / 2) * 16 + 4}"/>${legend}</svg></figure>`;
}

/** A player's name cut to {@link NAME_CHARS_MAX} characters for the band's label (the full name is in each cell's tooltip). */
function shortName(name: string): string {
  return name.length > NAME_CHARS_MAX ? `${name.slice(0, NAME_CHARS_MAX - 1)}…` : name;
}

/** One band per player (the first {@link RELAY_BAND_PLAYERS_MAX}): the relay in use each interval, coloured; a legend of relays. */
function relayPlot(report: QoeReport, left: number, durationMs: number, intervalMs: number, marks: readonly TimelineMark[]): string {
  const shown = report.clients.slice(0, RELAY_BAND_PLAYERS_MAX);
  const relays: string[] = [];
  for (const c of shown) for (const r of c.series.slipstream.relay) if (r !== null && !relays.includes(r)) relays.push(r);
  relays.sort();
  const colour = (r: string | null): string => (r === null ? NO_RELAY_COLOUR : RELAY_COLOURS[relays.indexOf(r) % RELAY_COLOURS.length]!);
  const f = frame(left, durationMs, intervalMs, Math.max(1, shown.length) * BAND_ROW);
  const rows = shown.map((c, row) => {
    const yy = MARGIN.top + row * BAND_ROW;
    const cells: string[] = [];
    // Runs of the same relay become one rect (the relay is sampled at each interval's end).
    const series = c.series.slipstream.relay;
    let start = 0;
    for (let i = 1; i <= series.length; i++) {
      if (i < series.length && series[i] === series[start]) continue;
      const x0 = f.x(start * intervalMs);
      const x1 = f.x(i * intervalMs);
      const r = series[start] ?? null;
      cells.push(`<rect class="relay-cell" data-relay="${escapeHtml(r ?? '')}" x="${fixed(x0)}" y="${yy + 1}" width="${fixed(Math.max(0.5, x1 - x0))}" height="${BAND_ROW - 2}" fill="${colour(r)}"><title>${escapeHtml(`${c.name}: ${r ?? 'no relay'}, ${secondsText(start * intervalMs)}–${secondsText(i * intervalMs)}`)}</title></rect>`);
      start = i;
    }
    return `<g class="relay-row" data-player="${escapeHtml(c.name)}"><text class="tick-label" x="${f.left - 6}" y="${yy + BAND_ROW / 2}" dy="4" text-anchor="end">${escapeHtml(shortName(c.name))}</text>${cells.join('')}</g>`;
  });
  const bottom = MARGIN.top + f.height;
  const legendItems = [...relays.map((r) => [r, colour(r)] as const), ['no relay', NO_RELAY_COLOUR] as const];
  const legend = legendItems
    .map(([name, c], i) => {
      const lx = f.left + i * 130;
      const ly = bottom + 52;
      return `<g class="legend-item"><rect x="${lx}" y="${ly - 8}" width="14" height="12" fill="${c}"/><text x="${lx + 20}" y="${ly}" dy="2">${escapeHtml(name)}</text></g>`;
    })
    .join('');
  const height = bottom + 64;
  const more = report.clients.length > shown.length ? ` (the first ${shown.length} of ${report.clients.length} players)` : '';
  const title = `Relay in use per player${more}`;
  return `<figure><figcaption>${escapeHtml(title)}</figcaption><svg id="plot-relay" class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img" aria-label="${escapeHtml(title)}">${eventMarks(f, marks)}${rows.join('')}${timeAxis(f)}${legend}</svg></figure>`;
}

const pct = (f: number): string => `${(f * 100).toFixed(3)} %`;
const msText = (v: number | null): string => (v === null ? '—' : `${v.toFixed(1)} ms`);

function summaryTable(report: QoeReport): string {
  const d = report.direct;
  const s = report.slipstream;
  const rows: [string, string, string][] = [
    ['loss (both ways)', pct(d.loss), pct(s.loss)],
    ['round trip p50', msText(d.latencyMs.p50), msText(s.latencyMs.p50)],
    ['round trip p99', msText(d.latencyMs.p99), msText(s.latencyMs.p99)],
    ['jitter', msText(d.jitterMs), msText(s.jitterMs)],
    ['longest gap', msText(d.longestGapMs), msText(s.longestGapMs)],
    ['relay switches', '', String(s.switches)],
    ['FEC overhead', '', pct(s.fecOverhead)],
  ];
  return `<table id="summary"><thead><tr><th></th><th>direct</th><th>Slipstream</th></tr></thead><tbody>${rows.map((r) => `<tr><th>${escapeHtml(r[0])}</th><td>${escapeHtml(r[1])}</td><td>${escapeHtml(r[2])}</td></tr>`).join('')}</tbody></table>`;
}

function eventList(marks: readonly TimelineMark[]): string {
  if (marks.length === 0) return '<p id="events">No scripted events.</p>';
  return `<ol id="events">${marks.map((m) => `<li data-kind="${m.kind}"><span class="swatch" style="background:${MARK_COLOUR[m.kind]}"></span>${escapeHtml(`${secondsText(m.atMs)} — ${m.kind}: ${m.label}`)}</li>`).join('')}</ol>`;
}

const CSS = `
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#18181b;margin:24px auto;max-width:1000px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#52525b;margin:0 0 16px}
#verdict{background:#f4f4f5;border-left:4px solid ${SLIP_COLOUR};padding:10px 14px}
#verdict ul{margin:6px 0 0;padding-left:20px}#verdict p{margin:6px 0 0}
.better{color:#15803d}.worse{color:#b91c1c}.same{color:#52525b}
table{border-collapse:collapse}th,td{padding:3px 12px;text-align:right}thead th{border-bottom:1px solid #a1a1aa}tbody th{text-align:left;font-weight:normal}
figure{margin:16px 0}figcaption{font-weight:600;margin-bottom:4px}
svg.plot{display:block;max-width:100%;height:auto;font-size:11px;background:#fff}
.axis{stroke:#3f3f46}.tick{stroke:#3f3f46}.grid{stroke:#e4e4e7}.tick-label{fill:#3f3f46}.axis-label{fill:#3f3f46;font-weight:600}
.legend-box{fill:#fff;fill-opacity:0.85;stroke:#e4e4e7}.legend-item text{fill:#18181b}
.event-label{font-size:11px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
`;

/**
 * The HTML report of `report` (see the module comment).
 * @param marks the scenario's scripted events ({@link timelineMarks})
 * @param options `title`: the page's title and heading [default `Slipstream scenario report: <scenario>`]
 */
export function renderHtmlReport(report: QoeReport, marks: readonly TimelineMark[], options: { readonly title?: string } = {}): string {
  const agg = aggregateSeries(report);
  const v = verdict(report, marks);
  const durationMs = Math.max(report.durationMs, agg.count * agg.intervalMs);
  const longest = Math.max(0, ...report.clients.slice(0, RELAY_BAND_PLAYERS_MAX).map((c) => shortName(c.name).length));
  const left = Math.max(LEFT_MIN, Math.ceil(12 + longest * CHAR_PX));
  const f = frame(left, durationMs, agg.intervalMs, PLOT_HEIGHT);
  const rtt = linePlot(
    'plot-rtt',
    'Round trip over time (each player’s median per second)',
    'ms',
    [
      { name: 'direct, median player', key: 'direct-p50', colour: DIRECT_COLOUR, dashed: false, values: agg.direct.latencyP50Ms },
      { name: 'Slipstream, median player', key: 'slipstream-p50', colour: SLIP_COLOUR, dashed: false, values: agg.slipstream.latencyP50Ms },
      { name: 'direct, p99 player', key: 'direct-p99', colour: DIRECT_COLOUR, dashed: true, values: agg.direct.latencyP99Ms },
      { name: 'Slipstream, p99 player', key: 'slipstream-p99', colour: SLIP_COLOUR, dashed: true, values: agg.slipstream.latencyP99Ms },
    ],
    f,
    marks,
  );
  const loss = linePlot(
    'plot-loss',
    'Loss over time (both ways, mean over players)',
    '%',
    [
      { name: 'direct', key: 'direct-loss', colour: DIRECT_COLOUR, dashed: false, values: agg.direct.loss },
      { name: 'Slipstream', key: 'slipstream-loss', colour: SLIP_COLOUR, dashed: false, values: agg.slipstream.loss },
    ],
    f,
    marks,
    100,
  );
  const points = v.points.map((p) => `<li class="${p.change}" data-aspect="${p.aspect}" data-change="${p.change}">${escapeHtml(`${p.change}: ${p.text}`)}</li>`).join('');
  const title = options.title ?? `Slipstream scenario report: ${report.scenario}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${CSS}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="sub">${escapeHtml(`seed ${report.seed} · ${report.players} player${report.players === 1 ? '' : 's'} · ${secondsText(report.durationMs)} simulated`)}</p>
<section id="verdict"><strong>What players would feel through Slipstream, against the direct route:</strong><ul>${points}</ul>${v.notes.map((n) => `<p>${escapeHtml(n)}</p>`).join('')}</section>
<h2>Figures</h2>${summaryTable(report)}
<h2>Over time</h2>${rtt}${loss}${relayPlot(report, left, durationMs, agg.intervalMs, marks)}
<h2>Scripted events</h2>${eventList(marks)}
</body></html>
`;
}
