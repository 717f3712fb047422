/**
 * `slipstream sim run SCENARIO [--seed S] [--json] [--check] [--html FILE]`: runs a
 * scenario file on the virtual network with the real coordinator, relay and SDK cores
 * and prints what players would feel, direct and through Slipstream, side by side, then
 * the verdict (what got better, what got worse, and why) and the scripted events.
 * `--html FILE` also writes the same as one self-contained page with plots
 * (sim/src/report/html.ts); a path that cannot be written exits 1 with one line,
 * checked before the run.
 *
 * `--json` prints one line, one object ({@link QoeReport}), a pure function of the
 * file and the seed; how long the run took (wall time, speed-up over real time) is
 * machine-dependent, so it goes to stderr with `--json` and into the table without.
 * A bad file exits 2 with one line `file:line: key: reason`.
 */
import { accessSync, constants, existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { flagCommand, type Command, type CommandIo } from '../../../kit/command.js';
import { bool, num, str, type FlagSpec } from '../../../kit/flags.js';
import { CliUsageError } from '../../../proto/src/errors.js';
import { loadScenario } from '../scenario/load.js';
import { runScenario, type QoeReport } from '../scenario/run.js';
import type { PathQoe } from '../scenario/qoe.js';
import { renderHtmlReport } from '../report/html.js';
import { secondsText, timelineMarks, type TimelineMark } from '../report/timeline.js';
import { verdict } from '../report/verdict.js';

const FLAGS: Record<string, FlagSpec> = {
  seed: { type: 'integer', min: 0, max: 0xffff_ffff, description: "Seed of every link, key and ticket [default: the file's seed, else 1]" },
  json: { type: 'boolean', description: 'Print one JSON object (the report) instead of the table' },
  check: { type: 'boolean', description: 'Only validate the file: exit 0 when valid, 2 when not' },
  clients: { type: 'integer', min: 0, max: 100_000, default: 20, description: 'Players listed one by one in the table (the JSON always has all)' },
  html: { type: 'string', valueName: 'FILE', description: 'Also write the report as one self-contained HTML page with plots (RTT, loss, relay in use, scripted events) to FILE' },
};

const SUMMARY = 'Run a scenario file (real relay, coordinator and SDK cores on the virtual network): what players feel, direct vs through Slipstream.';

const pct = (f: number): string => `${(f * 100).toFixed(3)} %`;
const msText = (v: number | null): string => (v === null ? '—' : `${v.toFixed(1)} ms`);

function row(label: string, direct: string, slip: string): string {
  return `  ${label.padEnd(22)}${direct.padStart(16)}${slip.padStart(16)}`;
}

/** The verdict paragraph wrapped at about 88 columns, and the scripted events with their times. */
function verdictLines(report: QoeReport, marks: readonly TimelineMark[]): string[] {
  const words = verdict(report, marks).paragraph.split(' ');
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line !== '' && line.length + 1 + w.length > 86) {
      lines.push(`  ${line}`);
      line = w;
    } else line = line === '' ? w : `${line} ${w}`;
  }
  if (line !== '') lines.push(`  ${line}`);
  const events = marks.length === 0 ? ['  (none)'] : marks.map((m) => `  ${secondsText(m.atMs).padStart(8)}  ${m.kind.padEnd(9)}${m.label}`);
  return ['what players would feel through Slipstream:', ...lines, '', 'scripted events:', ...events];
}

function table(report: QoeReport, marks: readonly TimelineMark[], wallMs: number, events: number, listed: number): string {
  const d: PathQoe = report.direct;
  const s = report.slipstream;
  const lines = [
    `scenario ${report.scenario} (seed ${report.seed}): ${report.players} players, ${report.durationMs / 1000} simulated s`,
    '',
    row('', 'direct', 'slipstream'),
    row('loss (both ways)', pct(d.loss), pct(s.loss)),
    row('round trip p50', msText(d.latencyMs.p50), msText(s.latencyMs.p50)),
    row('round trip p99', msText(d.latencyMs.p99), msText(s.latencyMs.p99)),
    row('jitter', msText(d.jitterMs), msText(s.jitterMs)),
    row('longest gap', msText(d.longestGapMs), msText(s.longestGapMs)),
    row('relay switches', '', String(s.switches)),
    row('FEC overhead', '', pct(s.fecOverhead)),
    '',
    `  ${'player'.padEnd(20)}${'loss direct'.padStart(14)}${'slipstream'.padStart(12)}${'rtt p50'.padStart(10)}${'slip p50'.padStart(10)}${'gap'.padStart(10)}${'slip gap'.padStart(10)}  relay`,
    ...report.clients.slice(0, listed).map(
      (c) =>
        `  ${c.name.padEnd(20)}${pct(c.direct.loss).padStart(14)}${pct(c.slipstream.loss).padStart(12)}${msText(c.direct.latencyMs.p50).padStart(10)}${msText(c.slipstream.latencyMs.p50).padStart(10)}${msText(c.direct.longestGapMs).padStart(10)}${msText(c.slipstream.longestGapMs).padStart(10)}  ${c.slipstream.relay ?? '—'}`,
    ),
    ...(report.clients.length > listed ? [`  … ${report.clients.length - listed} more (--clients N, or --json)`] : []),
    '',
    ...verdictLines(report, marks),
    '',
    speedLine(report, wallMs, events),
    '',
  ];
  return lines.join('\n');
}

function speedLine(report: QoeReport, wallMs: number, events: number): string {
  const simulatedMs = report.durationMs;
  return `ran ${(simulatedMs / 1000).toFixed(0)} simulated s in ${(wallMs / 1000).toFixed(2)} s of wall time (${(simulatedMs / Math.max(1, wallMs)).toFixed(1)}× real time, ${events} events)`;
}

/** Why `path` cannot be created or overwritten, or undefined when it can (see {@link htmlTargetWritable}). */
function unwritable(path: string): string | undefined {
  const full = resolve(path);
  if (existsSync(full)) {
    if (statSync(full).isDirectory()) return 'it is a directory; expected a file name such as report.html';
    try {
      accessSync(full, constants.W_OK);
    } catch {
      return 'the file is not writable';
    }
    return undefined;
  }
  const dir = dirname(full);
  if (!existsSync(dir)) return `the directory ${dirname(path)} does not exist`;
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    return `the directory ${dirname(path)} is not writable`;
  }
  return undefined;
}

/** The one line printed when the `--html` report cannot be written. */
export const cannotWrite = (path: string, reason: string): string => `slipstream: --html ${path}: cannot write the report: ${reason}\n`;

/**
 * Checks `--html FILE` before a run, so a typo in the path costs no simulated minute:
 * false, with the {@link cannotWrite} line printed, when the file cannot be written;
 * true when it can or no report was asked for (also `slipstream demo --html`).
 */
export function htmlTargetWritable(html: string | undefined, io: Pick<CommandIo, 'err'>): boolean {
  const problem = html === undefined ? undefined : unwritable(html);
  if (problem === undefined) return true;
  io.err(cannotWrite(html!, problem));
  return false;
}

/** The `sim run` command. */
export const runCommand: Command = flagCommand({
  path: 'sim run',
  summary: SUMMARY,
  usage: 'slipstream sim run SCENARIO.yaml [--seed S] [--json] [--check] [--clients N] [--html FILE]',
  flags: FLAGS,
  maxPositionals: 1,
  async run({ values, positionals }, io) {
    const file = positionals[0];
    if (file === undefined) throw new CliUsageError('SCENARIO', "SCENARIO: missing; expected a scenario file, e.g. 'slipstream sim run sim/scenarios/lossy-wifi.yaml'");
    // A bad file throws ConfigError (file:line: key: reason), which the CLI turns into exit 2.
    const scenario = loadScenario(file);
    if (bool(values, 'check')) {
      io.out(`${file}: valid scenario '${scenario.name}': ${scenario.clients.reduce((n, g) => n + g.members.length, 0)} players, ${scenario.relays.length} relays, ${scenario.origins.length} origins, ${scenario.events.length} events, ${scenario.durationMs / 1000} s\n`);
      return 0;
    }
    const html = str(values, 'html');
    if (!htmlTargetWritable(html, io)) return 1;
    const seed = num(values, 'seed') ?? scenario.seed;
    const started = performance.now();
    const { report, events } = runScenario(scenario, seed);
    const wallMs = performance.now() - started;
    const marks = timelineMarks(scenario);
    if (html !== undefined) {
      try {
        writeFileSync(html, renderHtmlReport(report, marks));
      } catch (error) {
        io.err(cannotWrite(html, (error as Error).message));
        return 1;
      }
    }
    if (bool(values, 'json')) {
      io.out(`${JSON.stringify(report)}\n`);
      io.err(`${speedLine(report, wallMs, events)}\n`);
    } else io.out(table(report, marks, wallMs, events, num(values, 'clients')!));
    if (html !== undefined) io.err(`wrote the HTML report to ${html}\n`);
    return 0;
  },
});
