/**
 * `scripts/bundle-browser.mjs` (`npm run bundle:browser`) bundles `slipstream/browser`
 * with esbuild for the browser platform, with no Node polyfills: the bundle builds, holds
 * the browser `connect()` and its WebRTC driver, and nothing in it asks for Node (no
 * `require(`, no `node:` import). The same step fails on an entry that reaches a Node
 * module, so a Node-only import that slips into the browser graph fails this test.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** dist/test/browser-bundle.test.js → the repository root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const dir = mkdtempSync(join(tmpdir(), 'slipstream-bundle-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Bundle = (o: { entry?: string; outfile?: string }) => Promise<{ metafile: { inputs: Record<string, unknown> } }>;

async function bundler(): Promise<Bundle> {
  return ((await import(pathToFileURL(join(REPO_ROOT, 'scripts', 'bundle-browser.mjs')).href)) as { bundleBrowser: Bundle }).bundleBrowser;
}

test('slipstream/browser bundles for the browser platform with no Node module, and holds connect() and the WebRTC transport', async () => {
  const outfile = join(dir, 'browser.js');
  const result = await (await bundler())({ outfile });
  const text = readFileSync(outfile, 'utf8');
  assert.ok(Object.keys(result.metafile.inputs).some((f) => f.endsWith('sdk/src/browser/connect.js')), 'connect() is in the graph');
  assert.match(text, /RTCPeerConnection/);
  assert.match(text, /msgpackr|unpack/i, 'msgpackr is inlined');
  assert.doesNotMatch(text, /\brequire\(|from ["']node:/);
});

test('the same bundle step fails on an entry that imports a Node module (so the check above can fail)', async () => {
  await assert.rejects((await bundler())({ entry: './dist/sdk/src/udp-transport.js', outfile: join(dir, 'node.js') }), /Could not resolve "node:dgram"/);
});
