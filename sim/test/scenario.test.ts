/**
 * Issue 7: scenario files and `slipstream sim run`. Every shipped scenario validates
 * and runs; the acceptance figures (lossy Wi-Fi: Slipstream's delivered loss ≤ 1/10 of
 * the direct path's; relay crash: every player's longest gap < 1 s); the same scenario
 * and seed give byte-identical JSON in two processes; bad input gives one line naming
 * file, line and key, and exit 2. Failures name the seed
 * (`slipstream sim run sim/scenarios/NAME.yaml --seed S --json` replays them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../proto/src/errors.js';
import { loadScenario, parseScenario } from '../src/scenario/load.js';
import { runScenario, type QoeReport } from '../src/scenario/run.js';
import { runCli } from '../../test/support/run-cli.js';

/** Scenarios ship as sources: dist/sim/test → sim/scenarios. */
const SCENARIOS = fileURLToPath(new URL('../../../sim/scenarios/', import.meta.url));
const scenarioPath = (name: string): string => join(SCENARIOS, `${name}.yaml`);
const replay = (name: string, seed: number): string => `slipstream sim run sim/scenarios/${name}.yaml --seed ${seed} --json`;

const SHIPPED = ['lossy-wifi', 'mobile-handover', 'congested-evening', 'relay-crash', 'coordinator-outage', 'three-continents'];

function checkShape(report: QoeReport, where: string): void {
  for (const part of [report.direct, report.slipstream, ...report.clients.flatMap((c) => [c.direct, c.slipstream])]) {
    assert.ok(part.loss >= 0 && part.loss <= 1, `${where}: loss ${part.loss}`);
    assert.ok(typeof part.jitterMs === 'number' && typeof part.longestGapMs === 'number', where);
    assert.ok('p50' in part.latencyMs && 'p99' in part.latencyMs, where);
  }
  assert.equal(typeof report.slipstream.switches, 'number');
  assert.equal(typeof report.slipstream.fecOverhead, 'number');
  assert.equal(report.clients.length, report.players);
  for (const c of report.clients) {
    const buckets = Math.ceil(report.durationMs / c.series.intervalMs);
    assert.equal(c.series.direct.loss.length, buckets, `${where}: ${c.name} series`);
    assert.equal(c.series.slipstream.relay.length, buckets, `${where}: ${c.name} relay series`);
  }
}

test('the scenario library: every file is kebab-case, starts with a comment, validates and runs', (t) => {
  const files = readdirSync(SCENARIOS).filter((f) => f.endsWith('.yaml'));
  assert.deepEqual([...files].sort(), SHIPPED.map((n) => `${n}.yaml`).sort());
  for (const name of SHIPPED) {
    assert.match(name, /^[a-z0-9]+(-[a-z0-9]+)*$/);
    const scenario = loadScenario(scenarioPath(name));
    assert.equal(scenario.name, name);
    assert.ok(scenario.description.length > 20, `${name}: description`);
    const { report } = runScenario(scenario);
    checkShape(report, replay(name, scenario.seed));
    t.diagnostic(
      `${name}: ${report.players} players; loss direct ${(report.direct.loss * 100).toFixed(3)} % vs slipstream ${(report.slipstream.loss * 100).toFixed(3)} %; ` +
        `rtt p50 ${report.direct.latencyMs.p50} vs ${report.slipstream.latencyMs.p50} ms, p99 ${report.direct.latencyMs.p99} vs ${report.slipstream.latencyMs.p99} ms; ` +
        `longest gap ${report.direct.longestGapMs} vs ${report.slipstream.longestGapMs} ms; switches ${report.slipstream.switches}; FEC overhead ${(report.slipstream.fecOverhead * 100).toFixed(0)} %`,
    );
    if (name === 'lossy-wifi') {
      assert.ok(report.direct.loss > 0.05, `${replay(name, scenario.seed)}: the Wi-Fi should lose ~8 % direct (${report.direct.loss})`);
      assert.ok(report.slipstream.loss <= report.direct.loss / 10, `${replay(name, scenario.seed)}: slipstream ${report.slipstream.loss} vs direct ${report.direct.loss}`);
      for (const c of report.clients) assert.ok(c.slipstream.loss <= c.direct.loss / 10, `${replay(name, scenario.seed)}: ${c.name}`);
    }
    if (name === 'relay-crash' || name === 'coordinator-outage') {
      for (const c of report.clients) assert.ok(c.slipstream.longestGapMs < 1000, `${replay(name, scenario.seed)}: ${c.name} longest gap ${c.slipstream.longestGapMs} ms`);
      assert.ok(report.slipstream.switches >= report.players, `${replay(name, scenario.seed)}: every player should have failed over`);
    }
  }
});

test('relay crash: the gap stays under 1 s for every player over 3 more seeds', (t) => {
  const scenario = loadScenario(scenarioPath('relay-crash'));
  for (let seed = 11; seed <= 13; seed++) {
    const { report } = runScenario(scenario, seed);
    const worst = Math.max(...report.clients.map((c) => c.slipstream.longestGapMs));
    t.diagnostic(`seed ${seed}: worst player gap ${worst} ms (direct path ${report.direct.longestGapMs} ms)`);
    assert.ok(worst < 1000, `${replay('relay-crash', seed)}: worst gap ${worst} ms`);
  }
});

test('determinism: same scenario and seed → byte-identical --json in two processes; another seed differs', async () => {
  const file = scenarioPath('lossy-wifi');
  const [first, second, other] = await Promise.all([runCli(['sim', 'run', file, '--seed', '5', '--json']), runCli(['sim', 'run', file, '--seed', '5', '--json']), runCli(['sim', 'run', file, '--seed', '6', '--json'])]);
  for (const r of [first, second, other]) assert.equal(r.code, 0, r.stderr);
  assert.equal(first.stdout, second.stdout, replay('lossy-wifi', 5));
  assert.notEqual(first.stdout, other.stdout);
  const report = JSON.parse(first.stdout) as QoeReport;
  assert.equal(report.seed, 5);
  assert.equal(first.stdout.split('\n').length, 2, 'one line, one object');
  assert.match(first.stderr, /simulated s in .* s of wall time \(.*× real time/);
  const table = await runCli(['sim', 'run', file, '--seed', '5']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /loss \(both ways\)/);
  assert.match(table.stdout, /× real time/);
});

const BASE = `version: 1
duration: 20s
regions: [eu]
origins:
  - { name: game, region: eu }
relays:
  - { name: relay-fra, region: eu }
clients:
  - { name: player, count: 2, traffic: { kind: game, packetsPerSecond: 30, bytes: 100 } }
`;

function expectError(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseScenario('bad.yaml', text),
    (e: unknown) => e instanceof ConfigError && pattern.test(e.message) && !e.message.includes('\n'),
    `expected ${pattern}`,
  );
}

test('validation: malformed files, unknown names, impossible parameters → file:line: key: reason', () => {
  expectError('version: 1\nduration: 20s\nduration: 30s\n', /^bad\.yaml:3: <syntax>: not valid YAML: Map keys must be unique/);
  expectError(BASE.replace('version: 1', 'version: 2'), /^bad\.yaml:1: version: 2 is not supported/);
  expectError(`${BASE}events:\n  - { at: 5s, link: "player→relay-x", set: { loss: 0.1 } }\n`, /^bad\.yaml:11: events\[0\]\.link: 'relay-x' is not a host, player group or region/);
  expectError(`${BASE}events:\n  - { at: 5s, crash: relay-ams }\n`, /^bad\.yaml:11: events\[0\]\.crash: "relay-ams" is not a relay; expected one of relay-fra/);
  expectError(`${BASE}events:\n  - { at: 5s, restart: relay-fra }\n`, /events\[0\]\.restart: relay 'relay-fra' is running at 5 s; restart follows a crash/);
  expectError(`${BASE}events:\n  - { at: 5s, link: "player↔relay-fra", set: { loss: 1.5 } }\n`, /^bad\.yaml:11: events\[0\]\.set\.loss\.p: 1\.5 is out of range; expected a number from 0 to 1/);
  expectError(`${BASE}events:\n  - { at: 50s, crash: relay-fra }\n`, /events\[0\]\.at: 50 s is out of range; expected 0 s to 20 s/);
  expectError(BASE.replace('packetsPerSecond: 30', 'packetsPerSecond: 0'), /^bad\.yaml:9: clients\[0\]\.traffic\.packetsPerSecond: 0 is out of range/);
  expectError(BASE.replace('duration: 20s', 'duration: soon'), /^bad\.yaml:2: duration: "soon" is not a duration/);
  expectError(BASE.replace('relay-fra, region: eu', 'relay-fra, region: mars'), /relays\[0\]\.region: "mars" is not a region listed under regions/);
  expectError(BASE.replace('{ name: relay-fra, region: eu }', '{ name: game, region: eu }'), /relays\[0\]\.name: 'game' is already used/);
  expectError(`${BASE}links:\n  - { between: [player, game], model: { delayMs: -3 } }\n`, /links\[0\]\.model\.delayMs: -3 is out of range/);
  expectError(`${BASE}links:\n  - { between: [player, game], model: { delayms: 3 } }\n`, /links\[0\]\.model\.delayms: unknown/);
  expectError(`${BASE}bogus: 1\n`, /^bad\.yaml:\d+: bogus: unknown key/);
  // A valid file parses, and names resolve: the group has two players.
  const ok = parseScenario('ok.yaml', `${BASE}events:\n  - { at: 5s, isolate: coordinator, for: 3s }\n  - { at: 6s, link: "player<->relay-fra", blackout: 500ms }\n`);
  assert.deepEqual(ok.clients[0]!.members, ['player-1', 'player-2']);
  assert.equal(ok.events.length, 2);
});

test('sim run: bad input → one clear line and exit 2 (bad file, missing file, bad flag, no scenario)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-scenario-'));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, `${BASE}events:\n  - { at: 5s, link: "player→nowhere", set: { loss: 0.1 } }\n`);
  for (const args of [['sim', 'run', bad], ['sim', 'run', join(dir, 'missing.yaml')], ['sim', 'run', scenarioPath('lossy-wifi'), '--seed', '-1'], ['sim', 'run']]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(r.stdout, '');
  }
  const r = await runCli(['sim', 'run', bad]);
  assert.match(r.stderr, /bad\.yaml:11: events\[0\]\.link: 'nowhere' is not a host/);
  const check = await runCli(['sim', 'run', scenarioPath('three-continents'), '--check']);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout, /valid scenario 'three-continents': 18 players, 3 relays/);
});
