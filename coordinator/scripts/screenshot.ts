/**
 * Produces a screenshot of the dashboard with a demo fleet:
 * `node dist/coordinator/scripts/screenshot.js OUT.png`.
 *
 * Starts a coordinator in this process on a free port (memory store, 1.5 s lease,
 * 250 ms graph interval), feeds the demo fleet through the HTTP API for a few seconds
 * (one relay dies half-way, one drains, one is lossy), opens the dashboard in headless
 * Chromium and saves a full-page PNG. Needs Debian's `chromium`.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { ConfigReader } from '../../kit/config.js';
import { loadSettings } from '../src/config.js';
import { startCoordinator } from '../src/http.js';
import { launchChromium } from './browser.js';
import { DEMO_ORIGIN, DemoFleet } from './demo-fleet.js';

/** Rounds of demo traffic before the shot (250 ms apart). */
const ROUNDS = 24;

async function main(out: string): Promise<void> {
  const fleetSecret = randomBytes(24).toString('base64');
  const yaml = `leaseMs: 1500\nhistoryIntervalMs: 250\nkeys:\n  fleetSecret: ${fleetSecret}\norigins:\n  - name: ${DEMO_ORIGIN.name}\n    latitude: ${DEMO_ORIGIN.latitude}\n    longitude: ${DEMO_ORIGIN.longitude}\n`;
  const settings = loadSettings(new ConfigReader('<screenshot>', yaml), { listen: '127.0.0.1:0' });
  const coordinator = await startCoordinator({ settings, logger: pino({ level: 'silent' }) });
  let launched: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    launched = await launchChromium({ width: 1500, height: 1000 });
    const fleet = new DemoFleet(coordinator.url, fleetSecret);
    await fleet.register();
    for (let i = 0; i < ROUNDS; i++) {
      if (i === ROUNDS / 2) fleet.kill('syd-1');
      await fleet.round();
      await sleep(250);
    }
    const page = await launched.context.newPage();
    await page.goto(coordinator.url);
    await page.waitForSelector('#relay-table tr[data-relay-id]', { timeout: 10_000 });
    await page.waitForSelector('#relay-table tr[data-relay-id="syd-1"][data-health="unhealthy"]', { timeout: 10_000 });
    await page.screenshot({ path: out, fullPage: true });
    process.stdout.write(`screenshot: wrote ${out}\n`);
  } finally {
    await launched?.close();
    await coordinator.close();
  }
}

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: node dist/coordinator/scripts/screenshot.js OUT.png\n');
  process.exitCode = 2;
} else {
  main(out).catch((error: unknown) => {
    process.stderr.write(`screenshot: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  });
}
