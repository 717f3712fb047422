/**
 * The coordinator's HTTP surface under hostile input:
 * a request target that is not a URL must not take the process down, an oversized
 * body is cut off after the 413 instead of being read to the end, path reports from
 * clients cannot be filed under an address of the client's choosing nor outweigh a
 * history nor grow memory without bound, and relays cannot advertise endpoints that
 * SDKs cannot dial.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { pino } from 'pino';
import { ConfigReader } from '../../kit/config.js';
import { loadSettings } from '../src/config.js';
import { BODY_BYTES_MAX, CLIENT_REPORT_SAMPLES_MAX, CLIENT_REPORTS_BURST } from '../src/constants.js';
import { MeasurementTable, node } from '../src/core/measurements.js';
import { CoordinatorService, type ApiResponse } from '../src/service.js';
import { MemoryStore } from '../src/store/index.js';
import { checkEndpoint } from '../src/validate.js';
import { freePort, startCoordinatorProcess, testKeys, writeConfig, type CoordinatorProcess } from './support.js';

/** Sends raw bytes on a fresh connection; resolves with everything received until the server closes (or `timeoutMs`, then `closed` is false). */
function rawExchange(port: number, chunks: readonly (string | Buffer)[], timeoutMs: number): Promise<{ text: string; closed: boolean; error?: string }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (closed: boolean, error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed, ...(error !== undefined ? { error } : {}) });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('connect', () => {
      for (const c of chunks) socket.write(c);
    });
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('close', () => finish(true));
    socket.on('error', (e) => finish(true, e.message));
  });
}

describe('coordinator process survives hostile HTTP', () => {
  const keys = testKeys();
  let config: { path: string; cleanup: () => void };
  let coordinator: CoordinatorProcess;
  let port = 0;
  before(async () => {
    config = writeConfig(keys);
    port = await freePort();
    coordinator = await startCoordinatorProcess(['--config', config.path, '--listen', `127.0.0.1:${port}`]);
  });
  after(async () => {
    await coordinator?.stop();
    config?.cleanup();
  });

  test('a request target that is not a URL (GET http://[/) gets a 400 and the process still answers /health', async () => {
    for (const target of ['http://[/', 'http://[::1/x', 'http://a:99999/']) {
      const r = await rawExchange(port, [`GET ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`], 10_000);
      assert.match(r.text, /^HTTP\/1\.1 400 /, `${target}: ${r.text.slice(0, 200)}`);
      assert.match(r.text, /"field":"<url>"/, target);
    }
    const health = await fetch(`${coordinator.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, 'ok');
    assert.doesNotMatch(coordinator.stderr(), /Unhandled|TypeError: Invalid URL/);
  });

  test('an oversized body is answered 413 and the connection is closed without reading the rest', async (t) => {
    // Declares 50 MB but sends only a bit over the limit: before the fix the server kept
    // waiting for the rest until requestTimeout (120 s).
    const head = `POST /v1/reports HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${50 * 1024 * 1024}\r\n\r\n`;
    const started = performance.now();
    const r = await rawExchange(port, [head, Buffer.alloc(BODY_BYTES_MAX + 4096, 0x20)], 30_000);
    const tookMs = performance.now() - started;
    t.diagnostic(`413 and close after ${tookMs.toFixed(0)} ms`);
    assert.ok(r.closed, 'server closed the connection (it did not wait for the declared 50 MB)');
    assert.match(r.text, /^HTTP\/1\.1 413 /);
    // Without a content-length (chunked): the limit is found while reading.
    const chunked = `POST /v1/reports HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n`;
    const piece = Buffer.alloc(64 * 1024, 0x20);
    const chunk = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
    const r2 = await rawExchange(port, [chunked, ...new Array<Buffer>(6).fill(chunk)], 30_000);
    assert.ok(r2.closed, 'chunked: server closed the connection');
    assert.match(r2.text, /^HTTP\/1\.1 413 /);
    const big = await fetch(`${coordinator.url}/v1/reports`, { method: 'POST', body: 'x'.repeat(300 * 1024) });
    assert.equal(big.status, 413, 'an ordinary client still reads the 413');
    assert.equal((await fetch(`${coordinator.url}/health`)).status, 200);
  });

  test('relay registration refuses endpoints that are not IP:port (400 naming the field)', async () => {
    const info = { relayId: 'fra-1', region: 'eu', latitude: 50, longitude: 8, tunnelAddress: '127.0.0.1:4433', probeAddress: '[::1]:4434', capacitySessions: 10 };
    const post = (body: unknown): Promise<Response> => fetch(`${coordinator.url}/v1/relays/register`, { method: 'POST', headers: { authorization: `Bearer ${keys.fleetSecret}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await post(info)).status, 200);
    for (const [field, value] of [['tunnelAddress', 'relay.example:4433'], ['tunnelAddress', '127.0.0.1:0'], ['probeAddress', '127.0.0.1:65536'], ['probeAddress', '::1:4434'], ['tunnelAddress', '127.0.0.1'], ['probeAddress', '999.1.1.1:1']] as const) {
      const res = await post({ ...info, [field]: value });
      const json = (await res.json()) as { error: { code: string; field: string; reason: string } };
      assert.equal(res.status, 400, `${field}=${value}`);
      assert.equal(json.error.field, field);
      assert.match(json.error.reason, /IP literal/);
    }
  });
});

describe('endpoint check', () => {
  test('accepts IPv4/IPv6 literals with ports 1–65535 only', () => {
    for (const ok of ['1.2.3.4:1', '203.0.113.7:65535', '[2001:db8::7]:4433', '[::1]:9', '[::ffff:1.2.3.4]:80']) assert.equal(checkEndpoint(ok, 'f'), undefined, ok);
    for (const bad of ['', 'x', 'host:80', '1.2.3.4:0', '1.2.3.4:65536', '1.2.3.4:080', '01.2.3.4:80', '1.2.3:80', '::1:80', '[::1]', '[fe80::1%eth0]:80', '[1.2.3.4]:80', ' 1.2.3.4:80', 5, null]) assert.notEqual(checkEndpoint(bad, 'f'), undefined, String(bad));
  });
});

describe('client path reports', () => {
  const keys = testKeys();
  function service(extra = '', now?: () => number): CoordinatorService {
    const settings = loadSettings(new ConfigReader('<test>', `keys:\n  fleetSecret: ${keys.fleetSecret}\n  apiKeys: [${keys.apiKey}]\n${extra}`), { listen: '127.0.0.1:0' });
    return new CoordinatorService({ settings, store: new MemoryStore(), logger: pino({ level: 'silent' }), ...(now ? { wallNowMs: now } : {}) });
  }
  const report = (svc: CoordinatorService, remoteAddress: string, forwardedFor?: string, samples = 30, rttMs = 20): Promise<ApiResponse> =>
    Promise.resolve(
      svc.handle({
        method: 'POST',
        path: '/v1/reports',
        query: new URLSearchParams(),
        body: Buffer.from(JSON.stringify({ reports: [{ relayId: 'fra-1', rttMs, jitterMs: 1, lossFraction: 0, samples }] })),
        remoteAddress,
        ...(forwardedFor !== undefined ? { forwardedFor } : {}),
      }),
    );
  const relay = { relayId: 'fra-1', region: 'eu', latitude: 50, longitude: 8, tunnelAddress: '127.0.0.1:4433', probeAddress: '127.0.0.1:4434', capacitySessions: 10 };

  test('with trustForwardedFor the client is the right-most X-Forwarded-For entry not in trustedProxies', async () => {
    const plain = service('trustForwardedFor: true\n');
    const behind = service('trustForwardedFor: true\ntrustedProxies: [10.0.0.2, 10.0.0.3]\n');
    const off = service();
    try {
      for (const s of [plain, behind, off]) s.core.register(Date.now(), relay);
      // The client forges a left-most entry; the proxy appends the address it saw.
      const forged = '198.51.100.7, 203.0.113.9';
      assert.equal(((await report(plain, '10.0.0.2', forged)).json as { clientPrefix: string }).clientPrefix, '203.0.113.0/24', 'the forged left-most entry is ignored');
      assert.equal(((await report(behind, '10.0.0.3', `${forged}, 10.0.0.2`)).json as { clientPrefix: string }).clientPrefix, '203.0.113.0/24', 'own proxies are skipped');
      assert.equal(((await report(behind, '10.0.0.3', '10.0.0.3, 10.0.0.2')).json as { clientPrefix: string }).clientPrefix, '10.0.0.0/24', 'all entries ours: the left-most');
      assert.equal(((await report(off, '192.0.2.5', forged)).json as { clientPrefix: string }).clientPrefix, '192.0.2.0/24', 'without trustForwardedFor the header is ignored');
    } finally {
      for (const s of [plain, behind, off]) s.close();
    }
  });

  test('a client report counts for at most CLIENT_REPORT_SAMPLES_MAX samples', async () => {
    const svc = service('clientReports:\n  reportersMin: 1\n');
    try {
      svc.core.register(Date.now(), relay);
      await report(svc, '203.0.113.9', undefined, 30, 20);
      await report(svc, '203.0.113.9', undefined, 1_000_000, 5_000);
      const fig = svc.core.measurements.get(Date.now(), node.client('203.0.113.0/24'), node.relay('fra-1'))!;
      assert.equal(fig.samples, 30 + CLIENT_REPORT_SAMPLES_MAX);
      // Weight 100/120 at most: the figure does not jump (almost) all the way to the forged 5000 ms.
      assert.ok(fig.rttMs < 20 + (5_000 - 20) * (CLIENT_REPORT_SAMPLES_MAX / (CLIENT_REPORT_SAMPLES_MAX + 20)) + 1, `rtt ${fig.rttMs}`);
    } finally {
      svc.close();
    }
  });

  test('reports are rate-limited per source address (token bucket), others unaffected', async () => {
    let now = 1_000_000;
    const svc = service('', () => now);
    try {
      svc.core.register(now, relay);
      const statuses: number[] = [];
      for (let i = 0; i < CLIENT_REPORTS_BURST + 5; i++) statuses.push((await report(svc, '203.0.113.9')).status);
      assert.deepEqual(statuses.slice(0, CLIENT_REPORTS_BURST), new Array<number>(CLIENT_REPORTS_BURST).fill(200));
      assert.deepEqual(statuses.slice(CLIENT_REPORTS_BURST), [429, 429, 429, 429, 429]);
      const limited = await report(svc, '203.0.113.9');
      assert.equal((limited.json as { error: { code: string } }).error.code, 'rate_limited');
      assert.equal((await report(svc, '198.51.100.1')).status, 200, 'another address has its own bucket');
      now += 5_000;
      assert.equal((await report(svc, '203.0.113.9')).status, 200, 'tokens come back with time');
    } finally {
      svc.close();
    }
  });

  test('client prefixes held are bounded: the least recently reported is dropped', () => {
    const table = new MeasurementTable({ clientPrefixesMax: 3 });
    const sample = { rttMs: 10, jitterMs: 1, lossFraction: 0, samples: 10 };
    for (let i = 0; i < 10; i++) table.report(i, node.client(`10.0.${i}.0/24`), node.relay('a'), sample);
    table.report(10, node.relay('a'), node.relay('b'), sample);
    assert.equal(table.clientPrefixes, 3);
    assert.equal(table.size, 4, 'relay figures are not evicted by client ones');
    table.report(11, node.client('10.0.7.0/24'), node.relay('a'), sample); // refreshes 7
    table.report(12, node.client('10.0.99.0/24'), node.relay('a'), sample); // evicts 8, the least recent
    assert.ok(table.get(12, node.client('10.0.7.0/24'), node.relay('a')));
    assert.equal(table.get(12, node.client('10.0.8.0/24'), node.relay('a')), undefined);
    assert.ok(table.get(12, node.client('10.0.9.0/24'), node.relay('a')));
    assert.equal(table.size, 4);
    table.expire(1e9);
    assert.equal(table.clientPrefixes, 0);
    assert.equal(table.size, 0);
  });
});
