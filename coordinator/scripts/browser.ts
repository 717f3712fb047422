/**
 * Launches Debian's Chromium (`/usr/bin/chromium`, package `chromium`) headless through
 * playwright-core, with a fresh profile and no network chatter of its own. Used by the
 * dashboard test and the screenshot script. Fails when the binary is missing.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

/** Where Debian installs Chromium. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** A launched browser and its throwaway profile directory. */
export interface LaunchedBrowser {
  /** A persistent context on the fresh profile (`--user-data-dir`); open pages with `context.newPage()`. */
  readonly context: BrowserContext;
  /** Closes the browser and deletes the profile; idempotent. */
  close(): Promise<void>;
}

/**
 * Launches headless Chromium; throws naming the package when the binary is missing.
 * @param viewport page size in CSS pixels; default 1400×900
 */
export async function launchChromium(viewport = { width: 1400, height: 900 }): Promise<LaunchedBrowser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`${CHROMIUM_PATH} is missing: install Debian's 'chromium' package (.ci/run does)`);
  const profile = mkdtempSync(join(tmpdir(), 'slip-chromium-'));
  // playwright passes the profile as --user-data-dir itself (it refuses the flag in args).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    viewport,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  let closed = false;
  return {
    context,
    async close() {
      if (closed) return;
      closed = true;
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
