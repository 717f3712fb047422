/**
 * End-to-end, issue #15 item 2, in real Chromium: the page's last mile loses 10 % of its
 * datagrams both ways — a `slipstream sim proxy` process sits between the browser and the
 * relay's ICE UDP mux, which the relay advertises in its SDP answers
 * (`tunnel.webrtc.publicIceAddress`), so ICE, DTLS, SCTP and every tunnel frame cross
 * it — and the page's `connect()` (the esbuild bundle of `slipstream/browser`) sends 60
 * messages/s for 10 s to a UDP echo origin: FEC both ways (mode `sw`, the Node SDK's
 * codec and controller) holds the delivered round-trip loss under 0.5 %. The proxy's
 * counters prove the traffic crossed it and lost about 10 %.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openFleetPage, startBrowserFleet } from './support/browser-fleet.js';
import { CliProcess } from './support/cli-process.js';
import { freePort } from './support/sockets.js';
import { eventually } from './support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-browser-loss-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const RATE = 60;
const COUNT = RATE * 10;
const LOSS = 0.1;

interface ProxyView {
  stats: { uplink: { packets: number; dropped: { loss: number } }; downlink: { packets: number; dropped: { loss: number } } };
}

test('Chromium: 10 % loss both ways on the browser side, FEC holds delivered loss under 0.5 % at 60 messages/s', { timeout: 90_000 }, async () => {
  const muxPort = await freePort('udp');
  const proxyPort = await freePort('udp');
  const proxyConfig = join(dir, 'proxy.yaml');
  writeFileSync(proxyConfig, ['proxies:', '  - name: last-mile', '    protocol: udp', `    listen: 127.0.0.1:${proxyPort}`, `    upstream: 127.0.0.1:${muxPort}`, `    both: { loss: { model: bernoulli, p: ${LOSS} } }`].join('\n'));
  const proxy = CliProcess.start(['sim', 'proxy', '--config', proxyConfig, '--listen', '127.0.0.1:0', '--seed', '11']);
  after(async () => {
    proxy.kill('SIGTERM');
    await proxy.exited;
  });
  const api = (await proxy.waitFor(/"api":"(http:\/\/[0-9.:]+)/, 'stdout', 15_000))[1]!;
  const fleet = await startBrowserFleet(join(dir, 'fleet'), [{ id: 'web-1', muxPort, webrtc: [`publicIceAddress: 127.0.0.1:${proxyPort}`] }]);
  const { page, problems } = await openFleetPage(fleet);

  const opened = (await page.evaluate('window.start({})')) as { relayId: string; fecMode: string };
  assert.equal(opened.relayId, 'web-1');
  assert.equal(opened.fecMode, 'sw', 'the sliding-window FEC both ways, as the Node SDK');
  await page.evaluate(`window.burst(0, ${COUNT}, ${RATE})`);
  await eventually(async () => ((await page.evaluate(`window.echoed(0, ${COUNT})`)) === COUNT ? true : undefined), 3000, 'every echo').catch(() => undefined);
  const echoed = (await page.evaluate(`window.echoed(0, ${COUNT})`)) as number;
  const s = (await page.evaluate('window.summary()')) as { lossBeforeFec: number; lossAfterFec: number; recovered: number; upstreamScheme: string; closed: boolean };
  const view = (await (await fetch(`${api}/v1/proxies/last-mile`)).json()) as ProxyView;
  const up = view.stats.uplink;
  const down = view.stats.downlink;
  const delivered = 1 - echoed / COUNT;
  console.log(
    `browser FEC under ${LOSS * 100} % loss each way: ${echoed}/${COUNT} round trips delivered (loss ${(delivered * 100).toFixed(2)} %); proxy dropped ${up.dropped.loss}/${up.packets} up, ${down.dropped.loss}/${down.packets} down; downstream before FEC ${(s.lossBeforeFec * 100).toFixed(1)} %, after ${(s.lossAfterFec * 100).toFixed(2)} %, ${s.recovered} rebuilt; upstream ${s.upstreamScheme}`,
  );
  // The traffic crossed the proxy and lost there (else this test could not fail).
  assert.ok(up.packets >= COUNT && down.packets >= COUNT, 'the page’s datagrams crossed the proxy both ways');
  assert.ok(up.dropped.loss / up.packets > LOSS / 2 && down.dropped.loss / down.packets > LOSS / 2, 'the proxy lost about 10 % each way');
  assert.ok(delivered < 0.005, `delivered round-trip loss ${(delivered * 100).toFixed(2)} % is under 0.5 %`);
  assert.equal(s.closed, false);
  assert.deepEqual(problems, []);
});
