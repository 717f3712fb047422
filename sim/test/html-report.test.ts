/**
 * Issue 16 item 3: `slipstream sim run --html FILE`. The real CLI runs relay-crash.yaml
 * and writes the page; Debian's Chromium (playwright-core) opens it from disk and the
 * test checks what a reader would look at: the RTT and loss plots with a line per path
 * carrying points, the relay band per player, the crash and restart marked on every
 * plot, the legends, the verdict naming the crash and the failover, no console error
 * and nothing fetched from anywhere. The screenshot's path is printed as a diagnostic.
 * The text report of the same run names the crash, the failover and the events; a path
 * that cannot be written exits 1 with one line before any simulating, a bare `--html`
 * exits 2. `slipstream demo --html` writes the same page for the demo's run (direct
 * route and Slipstream, the relay band across the kill, the verdict).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { launchChromium, type LaunchedBrowser } from '../../coordinator/scripts/browser.js';
import { runCli, type CliResult } from '../../test/support/run-cli.js';

/** Scenarios ship as sources: dist/sim/test → sim/scenarios. */
const RELAY_CRASH = fileURLToPath(new URL('../../../sim/scenarios/relay-crash.yaml', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'slipstream-html-report-'));
const htmlPath = join(dir, 'relay-crash.html');
let run: CliResult;
let launched: LaunchedBrowser | undefined;

before(async () => {
  run = await runCli(['sim', 'run', RELAY_CRASH, '--html', htmlPath], 60_000);
});
after(async () => {
  await launched?.close();
});

test('sim run --html: the text report names the crash, the failover and the scripted events', () => {
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /what players would feel through Slipstream:/);
  // The paragraph is wrapped for the terminal: compare it as one line.
  const flat = run.stdout.replace(/\s+/g, ' ');
  assert.match(flat, /Worse: longest gap [\d.]+ ms → [\d.]+ ms \(the failover after relay-fra crashed at 25 s/);
  assert.match(flat, /Better: loss [\d.]+ % → [\d.]+ % \(FEC rebuilt what the last mile dropped/);
  // The relays by their share of the run, not only the one in use at the end.
  assert.match(flat, /through relay-fra for \d+ % of the run, then relay-ams for \d+ % after relay-fra crashed at 25 s/);
  assert.match(run.stdout, /scripted events:\n\s+25 s {2}crash\s+relay-fra crashes\n\s+40 s {2}restart\s+relay-fra restarts/);
  assert.match(run.stderr, /wrote the HTML report to /);
  assert.ok(existsSync(htmlPath));
});

test('sim run --html: Chromium renders the plots with data, event marks and legends (screenshot)', async (t) => {
  assert.equal(run.code, 0, run.stderr);
  const html = readFileSync(htmlPath, 'utf8');
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'self-contained: no script, no external reference');
  launched = await launchChromium({ width: 1100, height: 900 });
  const page = await launched.context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  const external: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith('file:')) external.push(r.url());
  });
  await page.goto(pathToFileURL(htmlPath).href, { timeout: 15_000 });

  for (const [plot, keys] of [['#plot-rtt', ['direct-p50', 'slipstream-p50', 'direct-p99', 'slipstream-p99']], ['#plot-loss', ['direct-loss', 'slipstream-loss']]] as const) {
    for (const key of keys) {
      const path = page.locator(`${plot} path.series[data-series="${key}"]`);
      assert.equal(await path.count(), 1, `${plot} ${key}`);
      // 60 s of series, players measured from 3 s: most seconds carry a point.
      assert.ok(Number(await path.getAttribute('data-points')) >= 50, `${plot} ${key}: points`);
      assert.ok(((await path.getAttribute('d')) ?? '').split('L').length >= 50, `${plot} ${key}: path data`);
      const box = await path.boundingBox();
      assert.ok(box !== null && box.width > 600, `${plot} ${key} is drawn across the plot: ${JSON.stringify(box)}`);
    }
    for (const kind of ['crash', 'restart']) assert.equal(await page.locator(`${plot} g.event-mark[data-kind="${kind}"]`).count(), 1, `${plot}: ${kind} mark`);
    assert.ok((await page.locator(`${plot} .tick-label`).count()) >= 8, `${plot}: axis ticks`);
  }
  const rttLegend = await page.locator('#plot-rtt .legend-item').allTextContents();
  assert.deepEqual(rttLegend, ['direct, median player', 'Slipstream, median player', 'direct, p99 player', 'Slipstream, p99 player']);
  assert.deepEqual(await page.locator('#plot-loss .legend-item').allTextContents(), ['direct', 'Slipstream']);
  assert.match((await page.locator('#plot-rtt g.event-mark[data-kind="crash"]').textContent()) ?? '', /25 s relay-fra crashes/);

  assert.equal(await page.locator('#plot-relay g.relay-row').count(), 12, 'a band per player');
  const relays = await page.locator('#plot-relay rect.relay-cell').evaluateAll((cells) => [...new Set(cells.map((c) => c.getAttribute('data-relay')))]);
  assert.ok(relays.includes('relay-fra') && relays.includes('relay-ams'), `the band shows the crash's failover: ${relays.join(', ')}`);
  assert.match((await page.locator('#plot-relay').textContent()) ?? '', /relay-ams.*relay-fra.*no relay/s);

  assert.match((await page.locator('#verdict').textContent()) ?? '', /the failover after relay-fra crashed at 25 s/);
  assert.equal(await page.locator('#verdict li[data-change="worse"][data-aspect="longestGap"]').count(), 1);
  assert.equal(await page.locator('#events li').count(), 2);

  const shot = join(dir, 'relay-crash.png');
  await page.screenshot({ path: shot, fullPage: true, timeout: 15_000 });
  t.diagnostic(`HTML report: ${htmlPath}; screenshot: ${shot}`);
  assert.deepEqual(problems, [], 'console errors or warnings');
  assert.deepEqual(external, [], 'the page must not fetch anything');
});

test('sim run --html: an unwritable path exits 1 with one line before the run; a bare --html exits 2', async () => {
  for (const [target, reason] of [
    [join(dir, 'missing', 'r.html'), /the directory .*missing does not exist/],
    [dir, /it is a directory/],
  ] as const) {
    const r = await runCli(['sim', 'run', RELAY_CRASH, '--html', target], 20_000);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^slipstream: --html .*: cannot write the report: /);
    assert.match(r.stderr, reason);
    assert.equal(r.stdout, '');
  }
  const bare = await runCli(['sim', 'run', RELAY_CRASH, '--html'], 20_000);
  assert.equal(bare.code, 2, bare.stderr);
  assert.equal(bare.stderr.trim().split('\n').length, 1, bare.stderr);
});

test('demo --html: the same report for the demo run — both paths over time, the relay band moving ams-1 → lon-1 at the kill, the verdict (screenshot)', async (t) => {
  const demoPath = join(dir, 'demo.html');
  const demo = await runCli(['demo', '--seconds', '12', '--html', demoPath], 60_000);
  assert.equal(demo.code, 0, demo.stderr);
  assert.match(demo.stderr, /wrote the HTML report to /);
  assert.match(demo.stdout, /What the player would feel: Better: loss/);
  assert.match(demo.stdout, /a faster whole path than the direct route: through ams-1 for \d+ s, then lon-1 for \d+ s after ams-1 crashed at 7\.2 s\)/);
  const html = readFileSync(demoPath, 'utf8');
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'self-contained: no script, no external reference');
  launched ??= await launchChromium({ width: 1100, height: 900 });
  const page = await launched.context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  await page.goto(pathToFileURL(demoPath).href, { timeout: 15_000 });
  assert.equal(await page.locator('h1').textContent(), 'Slipstream demo report');
  for (const [plot, key] of [['#plot-rtt', 'direct-p50'], ['#plot-rtt', 'slipstream-p50'], ['#plot-loss', 'direct-loss'], ['#plot-loss', 'slipstream-loss']] as const) {
    const path = page.locator(`${plot} path.series[data-series="${key}"]`);
    // 12 s of traffic: a point per second (the last second's answers may still be in flight).
    assert.ok(Number(await path.getAttribute('data-points')) >= 11, `${plot} ${key}: points`);
    const box = await path.boundingBox();
    assert.ok(box !== null && box.width > 600, `${plot} ${key} is drawn across the plot: ${JSON.stringify(box)}`);
    assert.equal(await page.locator(`${plot} g.event-mark[data-kind="crash"]`).count(), 1, `${plot}: the kill is marked`);
  }
  const relays = await page.locator('#plot-relay rect.relay-cell').evaluateAll((cells) => cells.map((c) => c.getAttribute('data-relay')));
  assert.deepEqual([...new Set(relays)], ['ams-1', 'lon-1'], 'the band shows the pick, then the failover');
  assert.match((await page.locator('#plot-rtt g.event-mark[data-kind="crash"]').textContent()) ?? '', /ams-1 killed/);
  assert.equal(await page.locator('#verdict li[data-aspect="loss"][data-change="better"]').count(), 1);
  assert.match((await page.locator('#verdict').textContent()) ?? '', /the failover after ams-1 crashed/);
  const shot = join(dir, 'demo.png');
  await page.screenshot({ path: shot, fullPage: true, timeout: 15_000 });
  t.diagnostic(`demo HTML report: ${demoPath}; screenshot: ${shot}`);
  assert.deepEqual(problems, [], 'console errors or warnings');
});
