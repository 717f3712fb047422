/**
 * The browser example as a developer runs it: `node examples/local-fleet.mjs
 * --keep-running` (a coordinator and two relays with browser entries, the example game
 * server), then `node examples/browser/serve.mjs` with the coordinator URL and API key
 * the fleet prints, then the page in real Chromium: it `connect()`s with
 * `slipstream/browser` (ES modules from dist/, no bundler), plays 5 s at 60 datagrams/s
 * against the echo game server and shows its summary.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../coordinator/scripts/browser.js';
import { freePort } from './support/sockets.js';
import { eventually } from './support/wait.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Starts `node file args…` in the repository, collecting its output; SIGTERMed after the file. */
function startNode(file: string, args: readonly string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [join(REPO_ROOT, file), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
  after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((ok) => child.once('exit', ok));
    child.kill('SIGTERM');
    await exited;
  });
  return { child, output: () => output };
}

test('examples/browser: the page connect()s through the local fleet and its echoes come back', { timeout: 90_000 }, async () => {
  const fleet = startNode('examples/local-fleet.mjs', ['--seconds', '1', '--keep-running']);
  const [, url, apiKey] = await eventually(() => /browser: node examples\/browser\/serve\.mjs --coordinator (\S+) --api-key (\S+),/.exec(fleet.output()) ?? undefined, 60_000, `the fleet's browser line:\n${fleet.output()}`);
  const port = await freePort('tcp');
  const server = startNode('examples/browser/serve.mjs', ['--coordinator', url!, '--api-key', apiKey!, '--port', String(port)]);
  await eventually(() => (server.output().includes(`http://127.0.0.1:${port}/`) ? true : undefined), 10_000, 'the page server');
  const launched = await launchChromium();
  after(() => launched.close());
  const page = await launched.context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForFunction(() => (globalThis as { summary?: unknown }).summary !== undefined, undefined, { timeout: 30_000 });
  const summary = (await page.evaluate('window.summary')) as { sent?: number; echoed?: number; relay?: string; failed?: string };
  const text = (await page.evaluate('document.getElementById("out").textContent')) as string;
  console.log(text);
  assert.equal(summary.failed, undefined, text);
  assert.equal(summary.sent, 300);
  assert.ok(summary.echoed! >= 285, `echoes ${summary.echoed}/300`);
  assert.match(summary.relay!, /^(fra-1|ams-1)$/);
  assert.deepEqual(problems, []);
});
