/**
 * CORS on a real coordinator process (`http.corsOrigins`): a listed page origin gets a
 * preflight answer and `Access-Control-Allow-Origin` on the browser-facing endpoints
 * the browser SDK calls; an origin not listed gets no CORS header; relay, admin and
 * operator endpoints never answer with CORS headers. Real Chromium shows what a page
 * can read. The config's errors and the `*`
 * list are checked on the parser and the decision function.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigReader } from '../../kit/config.js';
import { ConfigError } from '../../proto/src/errors.js';
import { loadSettings } from '../src/config.js';
import { corsDecision } from '../src/cors.js';
import { launchChromium, type LaunchedBrowser } from '../scripts/browser.js';
import { freePort, startCoordinatorProcess, testKeys, writeConfig, type CoordinatorProcess } from './support.js';

const PAGE = 'http://127.0.0.1:5173';
const OTHER_PAGE = 'https://evil.example';

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One HTTP request with the headers given (an `Origin` among them, which `fetch` would not let a page choose). */
function call(url: string, method: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}) }, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

const PREFLIGHT = (origin: string, method = 'GET'): Record<string, string> => ({ origin, 'access-control-request-method': method, 'access-control-request-headers': 'content-type' });

describe('coordinator CORS (http.corsOrigins) on a real process', () => {
  const keys = testKeys();
  let config: { path: string; cleanup: () => void };
  let coordinator: CoordinatorProcess;
  /** Serves an empty page: the origin a browser test's page runs on (listed as http://127.0.0.1:port; reached as http://localhost:port it is another origin). */
  let pages: Server;
  let pagePort = 0;
  let launched: LaunchedBrowser | undefined;
  before(async () => {
    pages = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>game</title>'));
    await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve));
    pagePort = (pages.address() as AddressInfo).port;
    config = writeConfig(keys, ['origins:', '  - { name: eu-game, address: 127.0.0.1:27015 }', 'http:', `  corsOrigins: ['${PAGE}', 'http://127.0.0.1:${pagePort}']`].join('\n'));
    coordinator = await startCoordinatorProcess(['--config', config.path, '--listen', `127.0.0.1:${await freePort()}`]);
  });
  after(async () => {
    await launched?.close();
    await coordinator?.stop();
    pages?.close();
    config?.cleanup();
  });

  test('a listed origin: the preflight is answered 204 with the methods and headers, and the real GET /v1/route carries Access-Control-Allow-Origin', async () => {
    const pre = await call(`${coordinator.url}/v1/route?origin=eu-game`, 'OPTIONS', PREFLIGHT(PAGE));
    assert.equal(pre.status, 204, pre.body);
    assert.equal(pre.headers['access-control-allow-origin'], PAGE);
    assert.match(String(pre.headers['access-control-allow-methods']), /\bGET\b/);
    assert.match(String(pre.headers['access-control-allow-headers']), /content-type/);
    assert.equal(pre.headers.vary, 'origin');
    const get = await call(`${coordinator.url}/v1/route?origin=eu-game`, 'GET', { origin: PAGE });
    assert.equal(get.status, 200, get.body);
    assert.equal(get.headers['access-control-allow-origin'], PAGE);
    assert.ok(Array.isArray((JSON.parse(get.body) as { candidates: unknown }).candidates));
  });

  test('a listed origin: POST /v1/reports (preflighted for its JSON body) and an error answer (unknown origin) carry it too, so the page can read the error', async () => {
    const pre = await call(`${coordinator.url}/v1/reports`, 'OPTIONS', PREFLIGHT(PAGE, 'POST'));
    assert.equal(pre.status, 204, pre.body);
    assert.match(String(pre.headers['access-control-allow-methods']), /\bPOST\b/);
    const post = await call(`${coordinator.url}/v1/reports`, 'POST', { origin: PAGE }, JSON.stringify({ reports: [] }));
    assert.equal(post.headers['access-control-allow-origin'], PAGE, `${post.status} ${post.body}`);
    const unknown = await call(`${coordinator.url}/v1/route?origin=nowhere`, 'GET', { origin: PAGE });
    assert.equal(unknown.status, 404, unknown.body);
    assert.equal(unknown.headers['access-control-allow-origin'], PAGE);
    const session = await call(`${coordinator.url}/v1/session`, 'OPTIONS', PREFLIGHT(PAGE, 'POST'));
    assert.equal(session.status, 204);
    assert.match(String(session.headers['access-control-allow-headers']), /authorization/);
  });

  test('an origin not listed gets no Access-Control-Allow-Origin: its preflight is refused 403 naming the origin, its GET answers without CORS headers', async () => {
    const pre = await call(`${coordinator.url}/v1/route?origin=eu-game`, 'OPTIONS', PREFLIGHT(OTHER_PAGE));
    assert.equal(pre.status, 403);
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    assert.equal(pre.headers['access-control-allow-methods'], undefined);
    assert.match(pre.body, /evil\.example.*http\.corsOrigins/);
    const get = await call(`${coordinator.url}/v1/route?origin=eu-game`, 'GET', { origin: OTHER_PAGE });
    assert.equal(get.status, 200);
    assert.equal(get.headers['access-control-allow-origin'], undefined);
    const none = await call(`${coordinator.url}/v1/route?origin=eu-game`, 'GET', {});
    assert.equal(none.headers['access-control-allow-origin'], undefined);
  });

  test('in Chromium: a page from a listed origin reads GET /v1/route and POSTs /v1/reports (preflighted); the browser blocks /v1/fleet, and every call from an origin not listed', async () => {
    launched = await launchChromium();
    const page = await launched.context.newPage();
    /** What the page's fetch calls gave: the status, or the error the browser raised (a CORS refusal is a TypeError). */
    const calls = async (): Promise<string[]> =>
      page.evaluate(`(async () => {
        const base = ${JSON.stringify(coordinator.url)};
        const tryIt = (path, init) => fetch(base + path, init).then((r) => String(r.status), (e) => e.name);
        return [
          await tryIt('/v1/route?origin=eu-game'),
          await tryIt('/v1/reports', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reports: [] }) }),
          await tryIt('/v1/fleet'),
        ];
      })()`);
    await page.goto(`http://127.0.0.1:${pagePort}/`);
    assert.deepEqual(await calls(), ['200', '200', 'TypeError'], 'listed origin: the browser-facing endpoints answer, /v1/fleet is blocked');
    await page.goto(`http://localhost:${pagePort}/`);
    assert.deepEqual(await calls(), ['TypeError', 'TypeError', 'TypeError'], 'an origin not listed: every call blocked');
  });

  test('relay, admin and operator endpoints never answer with CORS headers, even to a listed origin', async () => {
    const fleet = { authorization: `Bearer ${keys.fleetSecret}`, origin: PAGE };
    const heartbeat = await call(`${coordinator.url}/v1/relays/heartbeat`, 'POST', fleet, JSON.stringify({ relayId: 'r1', sessions: 0, packetsPerSecond: 0, cpuFraction: 0, draining: false }));
    assert.equal(heartbeat.status, 404, heartbeat.body); // unknown_relay: the request got through to the handler
    for (const [method, path] of [
      ['POST', '/v1/relays/heartbeat'],
      ['POST', '/v1/relays/register'],
      ['GET', '/v1/revocations?sinceMs=0&waitMs=0'],
      ['POST', '/v1/admin/join-tokens'],
      ['GET', '/health'],
      ['GET', '/v1/fleet'],
      ['GET', '/metrics'],
    ] as const) {
      const pre = await call(`${coordinator.url}${path}`, 'OPTIONS', PREFLIGHT(PAGE, method));
      assert.equal(pre.headers['access-control-allow-origin'], undefined, `OPTIONS ${path}`);
      assert.equal(pre.status, 405, `OPTIONS ${path}: ${pre.body}`);
      const real = await call(`${coordinator.url}${path}`, method, fleet, method === 'POST' ? '{}' : undefined);
      assert.equal(real.headers['access-control-allow-origin'], undefined, `${method} ${path}`);
    }
    assert.equal(heartbeat.headers['access-control-allow-origin'], undefined);
  });
});

describe('http.corsOrigins parsing and the decision', () => {
  const settings = (yaml: string): ReturnType<typeof loadSettings> => loadSettings(new ConfigReader('coordinator.yaml', yaml));

  test('default: no origin is allowed (same-origin pages only); a preflight is refused saying the list is empty', () => {
    assert.deepEqual(settings('{}').http.corsOrigins, []);
    const d = corsDecision([], 'OPTIONS', '/v1/route', PAGE);
    assert.equal(d.preflight?.response.status, 403);
    assert.match(JSON.stringify(d.preflight?.response.json), /http\.corsOrigins is empty/);
    assert.equal(corsDecision([], 'GET', '/v1/route', PAGE).headers, undefined);
  });

  test("'*' allows any page with Access-Control-Allow-Origin: * (no Vary), still only on browser paths", () => {
    assert.deepEqual(settings("http: { corsOrigins: ['*'] }").http.corsOrigins, ['*']);
    assert.deepEqual(corsDecision(['*'], 'GET', '/v1/route', OTHER_PAGE).headers, { 'access-control-allow-origin': '*' });
    assert.deepEqual(corsDecision(['*'], 'DELETE', '/v1/session/0123456789abcdef', OTHER_PAGE).headers, { 'access-control-allow-origin': '*' });
    assert.deepEqual(corsDecision(['*'], 'POST', '/v1/relays/heartbeat', OTHER_PAGE), {});
    assert.deepEqual(corsDecision(['*'], 'OPTIONS', '/v1/admin/join-tokens', OTHER_PAGE), {});
  });

  test('a value that is not an origin, and an unknown key under http, are config errors naming the key', () => {
    assert.throws(
      () => settings('http:\n  corsOrigins:\n    - https://game.example.com/play\n'),
      (error: unknown) => error instanceof ConfigError && /http\.corsOrigins\[0\]/.test(error.message) && /scheme:\/\/host\[:port\]/.test(error.message),
    );
    assert.throws(() => settings('http:\n  corsOrigin: ["*"]\n'), (error: unknown) => error instanceof ConfigError && /did you mean 'corsOrigins'/.test(error.message));
  });
});
