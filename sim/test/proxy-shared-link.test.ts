/**
 * Shared links of `slipstream sim proxy` (one last mile in front of several upstreams):
 * the API and its validation in process, `--config` through the built CLI, and, on a
 * real `sim proxy` process over UDP on 127.0.0.1, that two proxies crossing one shared
 * link lose packets in common bursts — one Gilbert-Elliott process across both — while
 * two proxies with the same model each on their own lose independently.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import { runCli } from '../../test/support/run-cli.js';
import { ProxyApi } from '../src/proxy/api.js';
import { ProxyManager } from '../src/proxy/manager.js';
import { callApi, createProxy, sleep, startProxyProcess, type ProxyProcess } from './proxy-harness.js';

const scratch = mkdtempSync(join(tmpdir(), 'slipstream-proxy-link-'));

after(() => rmSync(scratch, { recursive: true, force: true }));

// Answers are whatever JSON the API sent; tests read fields from them directly.
/* eslint-disable @typescript-eslint/no-explicit-any */
describe('sim proxy shared links: API', () => {
  const manager = new ProxyManager({ seed: 1, logger: pino({ level: 'silent' }), clock: () => performance.now() });
  const api = new ProxyApi(manager, scratch);
  after(() => manager.close());
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const response = await api.handle(method, path, body === undefined ? undefined : JSON.stringify(body));
    return { status: response.status, body: response.body as any };
  };
  const member = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ name, protocol: 'udp', listen: '127.0.0.1:0', upstream: '127.0.0.1:9', link: 'wifi', ...extra });

  it('creates a link, proxies join it, a change to the link shows on every member, and it is deleted once unused', async () => {
    const created = await call('POST', '/v1/links', { name: 'wifi', both: { delayMs: 10 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.members, []);
    assert.equal((await call('POST', '/v1/links', { name: 'wifi' })).status, 409, 'a link name is unique');
    assert.equal((await call('POST', '/v1/proxies', member('r1'))).status, 201);
    assert.equal((await call('POST', '/v1/proxies', member('r2'))).status, 201);
    const link = await call('GET', '/v1/links/wifi');
    assert.deepEqual(link.body.members, ['r1', 'r2']);
    assert.deepEqual(Object.keys(link.body.stats), ['uplink', 'downlink']);
    const changed = await call('PUT', '/v1/links/wifi/impairments', { uplink: { loss: { model: 'bernoulli', p: 0.2 } } });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.deepEqual(changed.body.downlink, { delayMs: 10 }, 'the other direction is kept');
    for (const name of ['r1', 'r2']) {
      const proxy = (await call('GET', `/v1/proxies/${name}`)).body;
      assert.equal(proxy.link, 'wifi');
      assert.deepEqual(proxy.uplink, { loss: { model: 'bernoulli', p: 0.2 } }, `${name} shows the link's impairment`);
    }
    const own = await call('PUT', '/v1/proxies/r1/impairments', { both: { delayMs: 1 } });
    assert.equal(own.status, 409);
    assert.match(own.body.error.message, /crosses the shared link 'wifi'.*PUT \/v1\/links\/wifi\/impairments/);
    const busy = await call('DELETE', '/v1/links/wifi');
    assert.equal(busy.status, 409);
    assert.match(busy.body.error.message, /r1, r2/);
    assert.equal((await call('DELETE', '/v1/proxies/r1')).status, 204);
    assert.deepEqual((await call('GET', '/v1/links/wifi')).body.members, ['r2']);
    assert.equal((await call('DELETE', '/v1/proxies/r2')).status, 204);
    assert.equal((await call('DELETE', '/v1/links/wifi/impairments')).body.uplink.loss, undefined);
    assert.equal((await call('DELETE', '/v1/links/wifi')).status, 204);
    assert.equal((await call('GET', '/v1/links/wifi')).status, 404);
    assert.deepEqual((await call('GET', '/v1/links')).body, []);
    assert.equal((await call('PATCH', '/v1/links')).status, 405);
    assert.equal((await call('GET', '/v1/links/wifi/nope')).status, 404);
  });

  const bad: [string, string, unknown, string, RegExp][] = [
    ['a link with a bad loss', '/v1/links', { name: 'l', uplink: { loss: { model: 'bernoulli', p: 2 } } }, 'uplink.loss.p', /out of range/],
    ['a link with an unknown key', '/v1/links', { name: 'l', uplnk: {} }, 'uplnk', /unknown key/],
    ['a link without a name', '/v1/links', { both: {} }, 'name', /missing/],
    ['a proxy naming a link that does not exist', '/v1/proxies', member('p', { link: 'nope' }), 'link', /no shared link named 'nope'; create it first/],
    ['a proxy with a link and its own impairment', '/v1/proxies', member('p', { uplink: { delayMs: 3 } }), 'uplink', /crosses the shared link 'wifi'.*drop uplink/],
    ['a tcp proxy naming a link', '/v1/proxies', { name: 't', protocol: 'tcp', listen: '127.0.0.1:0', upstream: '127.0.0.1:9', link: 'wifi' }, 'link', /udp proxies only/],
    ['a bad link name', '/v1/proxies', member('p', { link: '../x' }), 'link', /not a link name/],
  ];
  for (const [what, path, body, field, reason] of bad) {
    it(`400 naming the field: ${what}`, async () => {
      const response = await call('POST', path, body);
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.error.field, field, JSON.stringify(response.body));
      assert.match(response.body.error.reason, reason);
    });
  }

  it('--config: links: before proxies:, and a proxy naming an unknown link is an error naming file, line and key', async () => {
    const good = join(scratch, 'good.yaml');
    writeFileSync(good, ['links:', '  - { name: wifi, both: { delayMs: 10 } }', 'proxies:', '  - { name: r1, protocol: udp, listen: 127.0.0.1:0, upstream: 127.0.0.1:9, link: wifi }'].join('\n'));
    const ok = await runCli(['sim', 'proxy', '--config', good, '--check'], 20_000);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /valid \(1 proxies, 1 shared links\)/);
    const wrong = join(scratch, 'wrong.yaml');
    writeFileSync(wrong, ['links:', '  - { name: wifi }', 'proxies:', '  - { name: r1, protocol: udp, listen: 127.0.0.1:0, upstream: 127.0.0.1:9, link: wfi }'].join('\n'));
    const failed = await runCli(['sim', 'proxy', '--config', wrong, '--check'], 20_000);
    assert.equal(failed.code, 2, failed.stderr);
    assert.match(failed.stderr, /wrong\.yaml:4: proxies\[0\]\.link: no shared link named 'wfi'/);
  });
});
/* eslint-enable @typescript-eslint/no-explicit-any */

/** Packets sent in the burst test (alternately through the two proxies). */
const PACKETS = 3000;
/** Uplink loss: Gilbert-Elliott, 10 % on average in bursts of mean 4 packets (P[lost | previous lost] = 1 − r = 0.75). */
const LOSS_RATE = 0.1;
const MEAN_BURST = 4;
const BURSTY = { model: 'gilbert-elliott', p: (LOSS_RATE / MEAN_BURST) / (1 - LOSS_RATE), r: 1 / MEAN_BURST, lossBad: 1, lossGood: 0 };

/** A UDP sink on 127.0.0.1 that records which sequence numbers (u32 at byte 0) arrived. */
async function sink(): Promise<{ port: number; arrived: Set<number>; close(): Promise<void> }> {
  const socket = createSocket('udp4');
  const arrived = new Set<number>();
  socket.on('message', (bytes) => arrived.add(bytes.readUInt32BE(0)));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, arrived, close: () => new Promise((resolve) => socket.close(() => resolve())) };
}

/**
 * Sends `PACKETS` datagrams numbered 0…, even ones to `portA`, odd ones to `portB`, one
 * per timer tick (≈ 1 ms) so that the proxy sees them in send order, then waits for
 * stragglers. Returns, by send order, whether each was lost.
 */
async function sendAlternately(client: Socket, portA: number, portB: number, arrived: Set<number>, from: number, count: number): Promise<boolean[]> {
  const packet = Buffer.alloc(32);
  for (let i = 0; i < count; i++) {
    packet.writeUInt32BE(from + i, 0);
    client.send(packet, i % 2 === 0 ? portA : portB, '127.0.0.1');
    await sleep(0);
  }
  await sleep(300);
  return Array.from({ length: count }, (_, i) => !arrived.has(from + i));
}

/** Loss rate, and P[packet n+1 lost | packet n lost] over consecutive packets (each pair crosses the two proxies). */
function burstiness(lost: readonly boolean[]): { rate: number; afterLoss: number; losses: number } {
  let losses = 0;
  let pairs = 0;
  let both = 0;
  for (let i = 0; i < lost.length; i++) {
    if (lost[i]) losses++;
    if (i + 1 < lost.length && lost[i]) {
      pairs++;
      if (lost[i + 1]) both++;
    }
  }
  return { rate: losses / lost.length, afterLoss: pairs === 0 ? 0 : both / pairs, losses };
}

describe('sim proxy shared links: one loss process across proxies (real process, UDP on 127.0.0.1)', () => {
  let proxy: ProxyProcess;
  let target: Awaited<ReturnType<typeof sink>>;
  let client: Socket;
  const SEED = 20261207;

  before(async () => {
    proxy = await startProxyProcess(['--seed', String(SEED)]);
    target = await sink();
    client = createSocket('udp4');
    await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
  });
  after(async () => {
    await new Promise<void>((resolve) => client.close(() => resolve()));
    await target.close();
    await proxy.stop();
  });

  it('two proxies on one shared bursty link lose in common bursts; the same model on two separate proxies does not', async (t: TestContext) => {
    const created = await callApi(proxy.api, 'POST', '/v1/links', { name: 'wifi', uplink: { loss: BURSTY } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const a = await createProxy(proxy.api, { name: 'relay-a', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${target.port}`, link: 'wifi' });
    const b = await createProxy(proxy.api, { name: 'relay-b', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${target.port}`, link: 'wifi' });
    const shared = burstiness(await sendAlternately(client, a, b, target.arrived, 0, PACKETS));

    const c = await createProxy(proxy.api, { name: 'own-a', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${target.port}`, uplink: { loss: BURSTY } });
    const d = await createProxy(proxy.api, { name: 'own-b', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${target.port}`, uplink: { loss: BURSTY } });
    const separate = burstiness(await sendAlternately(client, c, d, target.arrived, PACKETS, PACKETS));

    t.diagnostic(`shared: ${JSON.stringify(shared)}; separate: ${JSON.stringify(separate)}`);
    const context = `seed ${SEED}, ${PACKETS} packets each; shared: ${JSON.stringify(shared)}; separate: ${JSON.stringify(separate)}; proxy output: ${proxy.output().slice(-400)}`;
    // Both runs lose about 10 % (±5 points: ~300 losses in bursts of 4), so the comparison is of the same loss.
    for (const run of [shared, separate]) assert.ok(run.rate > 0.05 && run.rate < 0.15, `loss rate near ${LOSS_RATE}: ${context}`);
    // One Gilbert-Elliott process: P[next lost | lost] = 1 − r = 0.75 (≈ 75 bursts: ±0.1 is > 2 standard deviations).
    assert.ok(shared.afterLoss > 0.55, `shared link: a loss through one proxy is followed by a loss through the other as in one burst: ${context}`);
    // Independent processes: the next packet crosses the other proxy's link, lost with its stationary 10 %.
    assert.ok(separate.afterLoss < 0.3, `separate links: losses on the two proxies independent: ${context}`);
  });

  it('a change to the shared link applies to every member proxy at once', async () => {
    const a = await createProxy(proxy.api, { name: 'cut-a', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${target.port}`, link: 'wifi' });
    const b = await createProxy(proxy.api, { name: 'cut-b', protocol: 'udp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${target.port}`, link: 'wifi' });
    assert.equal((await callApi(proxy.api, 'PUT', '/v1/links/wifi/impairments', { uplink: { loss: { model: 'bernoulli', p: 1 } } })).status, 200);
    const cut = await sendAlternately(client, a, b, target.arrived, 2 * PACKETS, 40);
    assert.equal(cut.filter((lost) => !lost).length, 0, 'with the link at 100 % loss nothing gets through either member');
    assert.equal((await callApi(proxy.api, 'DELETE', '/v1/links/wifi/impairments')).status, 200);
    const clear = await sendAlternately(client, a, b, target.arrived, 2 * PACKETS + 40, 40);
    assert.equal(clear.filter((lost) => lost).length, 0, 'cleared: everything gets through both members');
    const view = (await callApi(proxy.api, 'GET', '/v1/links/wifi')).body;
    assert.deepEqual(view.members, ['relay-a', 'relay-b', 'cut-a', 'cut-b']);
    assert.ok(view.stats.uplink.dropped.loss >= 40, `the link's view sums its members' drops: ${JSON.stringify(view.stats.uplink)}`);
  });
});
