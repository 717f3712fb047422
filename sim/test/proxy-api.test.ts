/**
 * The proxy's API and its validation (in process, through `ProxyApi.handle`), bad
 * input on the command line and in `--config` (the built CLI), and fast-check
 * properties: arbitrary bodies never throw and always get a typed answer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { runCli } from '../../test/support/run-cli.js';
import { ProxyApi } from '../src/proxy/api.js';
import { checkProxyDefinition, checkTcpImpairment, checkUdpImpairment } from '../src/proxy/definition.js';
import { ProxyManager } from '../src/proxy/manager.js';
import { callApi, startProxyProcess } from './proxy-harness.js';

const scratch = mkdtempSync(join(tmpdir(), 'slipstream-proxy-api-'));
const manager = new ProxyManager({ seed: 1, logger: pino({ level: 'silent' }), clock: () => performance.now() });
const api = new ProxyApi(manager, scratch);

after(async () => {
  await manager.close();
  rmSync(scratch, { recursive: true, force: true });
});

const udp = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ name: 'p', protocol: 'udp', listen: '127.0.0.1:0', upstream: '127.0.0.1:9', ...extra });

// Answers are whatever JSON the API sent; tests read fields from them directly.
/* eslint-disable @typescript-eslint/no-explicit-any */
async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await api.handle(method, path, body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
  return { status: response.status, body: response.body as any };
}
/* eslint-enable @typescript-eslint/no-explicit-any */

describe('sim proxy API', () => {
  it('creates, lists, changes and deletes proxies', async () => {
    assert.deepEqual((await call('GET', '/v1/health')).body, { status: 'ok', proxies: 0 });
    const created = await call('POST', '/v1/proxies', udp({ name: 'a', uplink: { delayMs: 5, blackouts: [{ startMs: 0, endMs: 100 }] } }));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(created.body.listen, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(created.body.listen, '127.0.0.1:0', 'the real port is reported');
    assert.deepEqual(created.body.uplink, { delayMs: 5, blackouts: [{ startMs: 0, endMs: 100 }] }, 'impairments shown as given');
    assert.equal((await call('POST', '/v1/proxies', udp({ name: 'a' }))).status, 409, 'a name is unique');
    const tcp = await call('POST', '/v1/proxies', { name: 't', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'localhost:9', both: { rateKbps: 100 } });
    assert.equal(tcp.status, 201, JSON.stringify(tcp.body));
    assert.equal((await call('GET', '/v1/proxies')).body.length, 2);
    const changed = await call('PUT', '/v1/proxies/a/impairments', { downlink: { loss: { model: 'gilbert-elliott', p: 0.01, r: 0.3, lossBad: 1, lossGood: 0 } } });
    assert.equal(changed.status, 200);
    assert.deepEqual(changed.body.uplink, { delayMs: 5, blackouts: [{ startMs: 0, endMs: 100 }] }, 'the other direction is kept');
    assert.equal(changed.body.downlink.loss.model, 'gilbert-elliott');
    const trace = await call('PUT', '/v1/proxies/a/impairments', { both: { trace: { text: '{"format":"slipstream-trace","version":1}\n{"tMs":0,"rttMs":20,"lossFraction":0.1,"jitterMs":1}\n' } } });
    assert.equal(trace.status, 200, JSON.stringify(trace.body));
    assert.match(trace.body.uplink.trace.text, /^<\d+ characters>$/, 'inline traces are not echoed back');
    assert.equal((await call('DELETE', '/v1/proxies/a/impairments')).body.uplink.delayMs, undefined);
    assert.equal((await call('POST', '/v1/proxies/t/stall', { durationMs: 10 })).status, 200);
    assert.deepEqual((await call('POST', '/v1/proxies/t/reset')).body, { connectionsReset: 0 });
    assert.equal((await call('POST', '/v1/proxies/a/reset')).status, 400, 'resets are for tcp proxies');
    assert.equal((await call('DELETE', '/v1/proxies/a')).status, 204);
    assert.equal((await call('DELETE', '/v1/proxies/t')).status, 204);
    assert.equal((await call('GET', '/v1/proxies/a')).status, 404);
    assert.equal((await call('PATCH', '/v1/proxies')).status, 405);
    assert.equal((await call('GET', '/v2/proxies')).status, 404);
    assert.equal((await call('GET', '/v1/proxies/a/nope')).status, 404);
  });

  const badDefinitions: [string, unknown, string][] = [
    ['not JSON', '{"name":', '<body>'],
    ['not an object', [1, 2], '<body>'],
    ['missing name', { protocol: 'udp', listen: '127.0.0.1:0', upstream: '127.0.0.1:9' }, 'name'],
    ['bad name', udp({ name: '../x' }), 'name'],
    ['unknown key', udp({ upsteam: 'x' }), 'upsteam'],
    ['bad protocol', udp({ protocol: 'sctp' }), 'protocol'],
    ['listen without port', udp({ listen: '127.0.0.1' }), 'listen'],
    ['upstream port 0', udp({ upstream: '127.0.0.1:0' }), 'upstream'],
    ['port too large', udp({ listen: '127.0.0.1:70000' }), 'listen'],
    ['bad IPv6', udp({ upstream: '[::g]:9' }), 'upstream'],
    ['loss > 1', udp({ uplink: { loss: { model: 'bernoulli', p: 1.5 } } }), 'uplink.loss.p'],
    ['negative delay', udp({ downlink: { delayMs: -1 } }), 'downlink.delayMs'],
    ['unknown model key', udp({ uplink: { dealyMs: 3 } }), 'uplink.dealyMs'],
    ['bad blackout', udp({ uplink: { blackouts: [{ startMs: 10, endMs: 5 }] } }), 'uplink.blackouts[0].endMs'],
    ['4-state exits > 1', udp({ uplink: { loss: { model: '4-state', p13: 0.6, p31: 0.5, p32: 0.1, p23: 0.1, p14: 0.5 } } }), 'uplink.loss.p14'],
    ['both and uplink', udp({ both: {}, uplink: {} }), 'both'],
    ['trace without source', udp({ uplink: { trace: { format: 'mahimahi' } } }), 'uplink.trace'],
    ['missing trace file', udp({ uplink: { trace: { file: 'missing.jsonl' } } }), 'uplink.trace.file'],
    ['bad inline trace', udp({ uplink: { trace: { text: '1\n0\n', format: 'mahimahi' } } }), 'uplink.trace.text'],
    ['trace with loss', udp({ uplink: { loss: { model: 'bernoulli', p: 0.1 }, trace: { text: 'tMs,rttMs,lossFraction,jitterMs\n0,1,0,0\n' } } }), 'uplink.trace'],
    ['queuePackets on a Slipstream trace', udp({ uplink: { trace: { text: 'tMs,rttMs,lossFraction,jitterMs\n0,1,0,0\n', queuePackets: 5 } } }), 'uplink.trace.queuePackets'],
    ['idle timeout on tcp', { name: 't', protocol: 'tcp', listen: '127.0.0.1:0', upstream: '127.0.0.1:9', idleTimeoutMs: 5000 }, 'idleTimeoutMs'],
    ['tcp rate 0', { name: 't', protocol: 'tcp', listen: '127.0.0.1:0', upstream: '127.0.0.1:9', uplink: { rateKbps: 0 } }, 'uplink.rateKbps'],
    ['tcp slice delay without slices', { name: 't', protocol: 'tcp', listen: '127.0.0.1:0', upstream: '127.0.0.1:9', uplink: { sliceDelayMs: 5 } }, 'uplink.sliceDelayMs'],
    ['tcp udp-only key', { name: 't', protocol: 'tcp', listen: '127.0.0.1:0', upstream: '127.0.0.1:9', uplink: { loss: 0.1 } }, 'uplink.loss'],
  ];
  for (const [what, body, field] of badDefinitions) {
    it(`400 naming the field: ${what}`, async () => {
      const response = await call('POST', '/v1/proxies', body);
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.error.field, field, JSON.stringify(response.body));
      assert.equal(response.body.error.code, 'SLIP_ERR_SIM_INVALID');
      assert.ok(response.body.error.reason.length > 10, 'a reason that says what is accepted');
    });
  }

  it('409 when the listen address is taken', async () => {
    const first = await call('POST', '/v1/proxies', udp({ name: 'x1' }));
    const port = first.body.listen.split(':')[1];
    const second = await call('POST', '/v1/proxies', udp({ name: 'x2', listen: `127.0.0.1:${port}` }));
    assert.equal(second.status, 409);
    assert.equal(second.body.error.field, 'listen');
    await call('DELETE', '/v1/proxies/x1');
  });

  it('fast-check: arbitrary bodies on every route never throw and get 2xx, 400, 404, 405 or 409', async () => {
    const created = await call('POST', '/v1/proxies', udp({ name: 'fc' }));
    assert.equal(created.status, 201);
    const value = fc.oneof(fc.jsonValue(), fc.string({ maxLength: 50 }));
    const near = fc.record(
      {
        name: fc.oneof(fc.constant('fc2'), fc.string({ maxLength: 8 }), value),
        protocol: fc.oneof(fc.constantFrom('udp', 'tcp'), value),
        listen: fc.oneof(fc.constant('127.0.0.1:0'), fc.string({ maxLength: 20 }), value),
        upstream: fc.oneof(fc.constant('127.0.0.1:9'), value),
        uplink: fc.oneof(fc.dictionary(fc.constantFrom('delayMs', 'jitterMs', 'loss', 'rateKbps', 'blackouts', 'trace', 'sliceBytes', 'stalled', 'mtuBytes', 'toString', '__proto__'), value), value),
        both: value,
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(near, value).map((v) => JSON.stringify(v) ?? 'null');
    const route = fc.constantFrom('/v1/proxies', '/v1/proxies/fc/impairments', '/v1/proxies/fc/stall', '/v1/proxies/fc/reset', '/v1/proxies/fc', '/v1/proxies/%E0%A4%A', '/v1/health');
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'), route, body, async (method, path, text) => {
        if (method === 'DELETE' && path === '/v1/proxies/fc') return;
        const response = await api.handle(method, path, text);
        assert.ok([200, 201, 204, 400, 404, 405, 409].includes(response.status), `${method} ${path} ${text} → ${response.status}`);
        if (response.status >= 400) {
          const error = (response.body as { error: { message: string } }).error;
          assert.ok(typeof error.message === 'string' && error.message.length > 0);
        }
        if (response.status === 201) await api.handle('DELETE', `/v1/proxies/${encodeURIComponent((response.body as { name: string }).name)}`, undefined);
      }),
      { interruptAfterTimeLimit: 4000, numRuns: 3000 },
    );
    await call('DELETE', '/v1/proxies/fc');
  });

  it('fast-check: the validators return a value or a field error for any JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue()), (anything, object) => {
        for (const input of [anything, object]) {
          for (const checked of [checkProxyDefinition(input), checkUdpImpairment(input, ['uplink']), checkTcpImpairment(input, ['uplink'])]) {
            if (!checked.ok) {
              assert.ok(Array.isArray(checked.error.path));
              assert.ok(checked.error.reason.length > 0);
            }
          }
        }
      }),
      { interruptAfterTimeLimit: 3000 },
    );
  });
});

describe('sim proxy command line', () => {
  it('bad flags exit 2 naming the flag', async () => {
    const listen = await runCli(['sim', 'proxy', '--listen', 'nowhere'], 10_000);
    assert.equal(listen.code, 2);
    assert.match(listen.stderr, /--listen: 'nowhere' is not HOST:PORT/);
    const check = await runCli(['sim', 'proxy', '--check'], 10_000);
    assert.equal(check.code, 2);
    assert.match(check.stderr, /--check: needs --config/);
    const help = await runCli(['sim', 'proxy', '--help'], 10_000);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--listen HOST:PORT.*\[default 127\.0\.0\.1:8474\]/);
  });

  it('a bad config exits 2 naming the file, the line and the key', async () => {
    const cases: [string, RegExp][] = [
      ['proxies:\n  - name: a\n    protocol: udp\n    listen: 127.0.0.1:0\n    upstream: 127.0.0.1:9\n    uplink:\n      loss: { model: bernoulli, p: 2 }\n', /bad\.yaml:7: proxies\[0\]\.uplink\.loss\.p: 2 is out of range/],
      ['proxies:\n  - name: a\n    protocol: udp\n    listen: 127.0.0.1\n    upstream: 127.0.0.1:9\n', /bad\.yaml:4: proxies\[0\]\.listen: '127\.0\.0\.1' is not HOST:PORT/],
      ['proxies:\n  - name: a\n    protocol: udp\n    listen: 127.0.0.1:0\n    upstream: 127.0.0.1:9\n  - name: a\n    protocol: tcp\n    listen: 127.0.0.1:0\n    upstream: 127.0.0.1:9\n', /bad\.yaml:6: proxies\[1\]\.name: 'a' is used by an earlier proxy/],
      ['proxies:\n  - name: a\n    protocol: udp\n    listen: 127.0.0.1:0\n    upstream: 127.0.0.1:9\n    both: { trace: { file: nope.jsonl } }\n', /bad\.yaml:6: proxies\[0\]\.both\.trace\.file: cannot read .*nope\.jsonl: ENOENT/],
      ['proxy: []\n', /bad\.yaml:1: proxy: unknown key; expected one of links, proxies/],
    ];
    for (const [yaml, expected] of cases) {
      const file = join(scratch, 'bad.yaml');
      writeFileSync(file, yaml);
      const run = await runCli(['sim', 'proxy', '--config', file, '--check'], 10_000);
      assert.equal(run.code, 2, `${yaml}\n${run.stderr}`);
      assert.match(run.stderr, expected);
    }
  });

  it('--config creates its proxies at start, trace files relative to the config file', async () => {
    writeFileSync(join(scratch, 'link.mahi'), '1\n2\n3\n4\n');
    const file = join(scratch, 'good.yaml');
    writeFileSync(file, 'proxies:\n  - name: game\n    protocol: udp\n    listen: 127.0.0.1:0\n    upstream: 127.0.0.1:9\n    uplink: { trace: { file: link.mahi } }\n    downlink: { delayMs: 30 }\n  - name: web\n    protocol: tcp\n    listen: 127.0.0.1:0\n    upstream: 127.0.0.1:9\n    both: { delayMs: 10, sliceBytes: 100, sliceDelayMs: 1 }\n');
    const check = await runCli(['sim', 'proxy', '--config', file, '--check'], 10_000);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /valid \(2 proxies\)/);
    const proxy = await startProxyProcess(['--config', file, '--seed', '1']);
    try {
      const list = (await callApi(proxy.api, 'GET', '/v1/proxies')).body as { name: string; downlink: unknown }[];
      assert.deepEqual(
        list.map((p) => p.name),
        ['game', 'web'],
      );
      assert.deepEqual(list[0]!.downlink, { delayMs: 30 });
    } finally {
      assert.equal(await proxy.stop(), 0);
    }
  });
});
