/**
 * The dashboard in a real headless Chromium (Debian's `chromium` via playwright-core)
 * against a real `slipstream coordinator` process: it loads with no console errors,
 * shows every registered relay on the map and in the table with no two map labels
 * overlapping (fra-1, lon-1 and the eu-game origin are close together), links to
 * `/metrics`, and — without a reload — shows a relay that stops heartbeating as
 * unhealthy and stale (greyed, with the age of its last heartbeat), with its `relayDown`
 * in the recent events list and marked on its graphs, its players greyed and left out
 * of the players view's total. A screenshot of the end state is
 * written to the temporary directory (its path is printed). A relay whose region is
 * markup shows it as text and never runs it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorClient } from '../../kit/coordinator-client.js';
import { launchChromium, type LaunchedBrowser } from '../scripts/browser.js';
import { DEMO_ORIGIN, DEMO_RELAYS, DemoFleet } from '../scripts/demo-fleet.js';
import { freePort, startCoordinatorProcess, testKeys, writeConfig, type CoordinatorProcess } from './support.js';

const HOSTILE = '<img src=x onerror="globalThis.pwned=1">';

describe('dashboard in headless Chromium', () => {
  const keys = testKeys();
  let config: { path: string; cleanup: () => void };
  let coordinator: CoordinatorProcess;
  let launched: LaunchedBrowser;
  let feeding = true;
  let feeder: Promise<void>;

  before(async () => {
    config = writeConfig(keys, `historyIntervalMs: 250\norigins:\n  - name: ${DEMO_ORIGIN.name}\n    latitude: ${DEMO_ORIGIN.latitude}\n    longitude: ${DEMO_ORIGIN.longitude}\n`);
    coordinator = await startCoordinatorProcess(['--config', config.path, '--listen', `127.0.0.1:${await freePort()}`, '--lease-ms', '1500', '--log-level', 'warn']);
    launched = await launchChromium();
  });
  after(async () => {
    feeding = false;
    await feeder;
    await launched?.close();
    await coordinator?.stop();
    config?.cleanup();
  });

  test('loads without console errors, shows every relay, updates when one dies', async () => {
    const fleet = new DemoFleet(coordinator.url, keys.fleetSecret);
    await fleet.register();
    // One more relay whose region is markup: the page must show it as text, never run it.
    const odd = new CoordinatorClient({ baseUrl: coordinator.url, fleetSecret: keys.fleetSecret });
    await odd.register({ relayId: 'odd-1', region: HOSTILE, latitude: -55, longitude: -140, tunnelAddress: '198.51.100.99:4433', probeAddress: '198.51.100.99:4434', capacitySessions: 10 });
    // Its status names are markup too (an origin, a rule, an origin address): the players view and L4 rules must escape them.
    const oddStatus = { origins: [{ origin: HOSTILE, players: 1, backups: 0, fecRecovered: 0, lossBeforeFec: 0, lossAfterFec: 0 }], otherPlayers: 0, otherBackups: 0, rules: [{ rule: HOSTILE, protocol: 'udp' as const, listen: HOSTILE, group: HOSTILE, sessions: 1, origins: [{ origin: HOSTILE, healthy: true }] }] };
    const oddLoad = { sessions: 1, packetsPerSecond: 10, cpuFraction: 0.01, draining: false, status: oddStatus };
    await fleet.round();
    // Heartbeats every 300 ms until the test ends (bounded: at most 200 rounds).
    feeder = (async () => {
      for (let i = 0; feeding && i < 200; i++) {
        await fleet.round();
        await odd.heartbeat('odd-1', oddLoad);
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    const page = await launched.context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    const external: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(coordinator.url) && !r.url().startsWith('data:')) external.push(r.url());
    });
    await page.goto(coordinator.url);
    for (const r of DEMO_RELAYS) {
      await page.waitForSelector(`#relay-table tr[data-relay-id="${r.relayId}"]`, { timeout: 10_000 });
      assert.equal(await page.locator(`#relays g[data-relay-id="${r.relayId}"]`).count(), 1, `${r.relayId} on the map`);
      assert.equal(await page.locator(`#graphs [data-relay-id="${r.relayId}"]`).count(), 1, `${r.relayId} has graphs`);
    }
    assert.equal(await page.locator('#relay-table tr[data-relay-id="gru-1"]').getAttribute('data-health'), 'draining');
    assert.equal(await page.locator('#relay-table tr[data-relay-id="iad-1"]').getAttribute('data-health'), 'healthy');
    assert.equal(await page.locator('#matrix tr').count(), DEMO_RELAYS.length + 2, 'RTT matrix has a row per relay (and a header)');
    await page.waitForSelector('#relay-table tr[data-relay-id="odd-1"]', { timeout: 5000 });
    assert.equal(await page.locator('#relay-table tr[data-relay-id="odd-1"] td').nth(1).textContent(), HOSTILE, 'markup from the API is shown as text');
    await page.waitForSelector('#l4-rules tr[data-relay-id="odd-1"]', { timeout: 5000 });
    assert.equal(await page.locator('#l4-rules tr[data-relay-id="odd-1"] td').nth(1).textContent(), HOSTILE, 'a rule name from a heartbeat is shown as text');
    assert.equal(await page.locator('#players tr.origin-total td').filter({ hasText: HOSTILE }).count(), 1, 'an origin name from a heartbeat is shown as text');
    assert.equal(await page.locator('img').count(), 0);
    assert.equal(await page.evaluate<unknown>('globalThis.pwned'), undefined, 'markup from the API never runs');
    assert.match((await page.locator('#relay-table tr[data-relay-id="fra-1"]').textContent()) ?? '', /eu-game: \d+\.\d ms/);
    assert.equal(await page.locator('#relay-table tr[data-relay-id="iad-1"]').getAttribute('data-stale'), 'false', 'a heartbeating relay is live');
    for (const r of DEMO_RELAYS) await page.waitForSelector(`#events tr[data-event-type="relayUp"][data-relay-id="${r.relayId}"]`, { timeout: 5000 });

    // Map labels: none overlaps another (boxes as the browser laid them out).
    // (a string: this package compiles without the DOM library)
    const boxes = await page.evaluate<{ text: string; x0: number; y0: number; x1: number; y1: number }[]>(
      `[...document.querySelectorAll('#map text')].map((t) => { const b = t.getBBox(); return { text: t.textContent, x0: b.x, y0: b.y, x1: b.x + b.width, y1: b.y + b.height }; })`,
    );
    assert.equal(boxes.length, DEMO_RELAYS.length + 2, 'a label per relay and origin');
    for (const [i, a] of boxes.entries()) {
      for (const b of boxes.slice(i + 1)) assert.ok(a.x1 <= b.x0 || b.x1 <= a.x0 || a.y1 <= b.y0 || b.y1 <= a.y0, `map labels ${a.text} and ${b.text} overlap: ${JSON.stringify([a, b])}`);
    }

    const metricsHref = await page.locator('header a[href="/metrics"]').getAttribute('href');
    const metrics = await fetch(new URL(metricsHref ?? '', coordinator.url));
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /slipstream_coordinator_relay_events_total\{type="relayUp"\} 9/);
    await page.evaluate(() => ((globalThis as unknown as { notReloaded: boolean }).notReloaded = true));

    fleet.kill('syd-1');
    await page.waitForSelector('#relay-table tr[data-relay-id="syd-1"][data-health="unhealthy"]', { timeout: 10_000 });
    await page.waitForSelector('#relays g.unhealthy[data-relay-id="syd-1"][data-stale="true"]', { timeout: 5000 });
    const row = page.locator('#relay-table tr[data-relay-id="syd-1"]');
    assert.equal(await row.getAttribute('data-stale'), 'true', 'a dead relay is stale');
    assert.match((await row.locator('.stale-age').textContent()) ?? '', /^stale · \d+(\.\d)? s old$/, 'stale with its age');
    const opacity = await page.evaluate<string>(`getComputedStyle(document.querySelector('#relay-table tr[data-relay-id="syd-1"] .stale-fig')).opacity`);
    assert.ok(Number(opacity) < 1, `its figures are greyed (opacity ${opacity})`);
    await page.waitForSelector('#graphs .graph.stale[data-relay-id="syd-1"] line.mark[data-event-type="relayDown"]', { state: 'attached', timeout: 5000 });
    await page.waitForSelector('#events tr[data-event-type="relayDown"][data-relay-id="syd-1"]', { timeout: 5000 });
    // Samples taken after its lease lapsed (the coordinator still holds its last figures) are drawn as held, not live.
    await page.waitForSelector('#graphs [data-relay-id="syd-1"] polyline.rtt.held', { state: 'attached', timeout: 5000 });
    assert.equal(await page.locator('#graphs [data-relay-id="iad-1"] polyline.held').count(), 0, 'a live relay has no held samples');
    assert.equal(await page.locator('#relay-table tr[data-stale="true"]').count(), 1, 'only the dead relay is stale');
    // The players view: the dead relay's players are greyed and left out of the total (120 + 40, not + 5).
    await page.waitForSelector('#players tr[data-relay-id="syd-1"][data-stale="true"]', { timeout: 5000 });
    const total = page.locator('#players tr.origin-total[data-origin="eu-game"]');
    assert.deepEqual([await total.getAttribute('data-players'), await total.getAttribute('data-backups')], ['160', '140']);
    // Loss both ways, upstream next to downstream (fra-1 sends both; syd-1 sends no downstream figures: "–").
    assert.equal(await page.locator('#players tr[data-relay-id="fra-1"] td.loss').textContent(), '1.2 % → 0.04 %');
    assert.equal(await page.locator('#players tr[data-relay-id="fra-1"] td.loss-down').textContent(), '2.1 % → 0.09 %');
    assert.equal(await page.locator('#players tr[data-relay-id="syd-1"] td.loss-down').textContent(), '–');
    assert.equal(await page.locator('#l4-rules tr[data-relay-id="fra-1"] [data-healthy="false"]').count(), 1, 'the down origin of the L4 rule');
    assert.match((await page.locator('#graphs [data-relay-id="syd-1"] .axis').textContent()) ?? '', /now/, 'graphs have a time axis');
    const shot = join(tmpdir(), `slipstream-dashboard-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    process.stdout.write(`# dashboard screenshot: ${shot}\n`);
    assert.equal(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded), true, 'the page updated without reloading');
    assert.equal(await page.locator('#count-unhealthy').textContent(), '1');
    assert.deepEqual(problems, [], 'console errors or warnings');
    assert.deepEqual(external, [], 'the page must not fetch anything from elsewhere');
  });
});
