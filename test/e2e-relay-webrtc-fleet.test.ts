/**
 * End-to-end, issue #15 item 1: a relay with a browser entry advertises its WebRTC
 * signaling URL to the coordinator with its other addresses (`webrtcUrl` in its
 * registration), and the coordinator hands it out in `/v1/fleet` and in each route
 * candidate; a browser-stand-in signals to exactly that URL. A relay without one
 * advertises none. Real coordinator and relay processes on 127.0.0.1.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { CliProcess } from './support/cli-process.js';
import { fleetRelayYaml } from './support/local-fleet.js';
import { freePort } from './support/sockets.js';
import { eventually } from './support/wait.js';
import { offerer, postOffer, releaseWebRtc } from './support/webrtc-client.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-webrtc-fleet-'));
after(() => rmSync(dir, { recursive: true, force: true }));
after(releaseWebRtc);

test('the signaling URL reaches the coordinator with the relay addresses and comes back in route candidates', { timeout: 40_000 }, async () => {
  const seed = randomBytes(32);
  const sealKey = randomBytes(32);
  const fleetSecret = randomBytes(24).toString('base64');
  // The origin: a TCP listener (the relays' origin probe is a TCP connect).
  const origin = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  after(() => origin.close());
  const originPort = (origin.address() as net.AddressInfo).port;
  const coordinatorPath = join(dir, 'coordinator.yaml');
  writeFileSync(
    coordinatorPath,
    ['listen: 127.0.0.1:0', 'store: memory', 'logLevel: warn', 'origins:', `  - { name: game, address: 127.0.0.1:${originPort} }`, 'keys:', `  ticketSigningSeed: ${seed.toString('base64')}`, `  sealKey: ${sealKey.toString('base64')}`, `  fleetSecret: ${fleetSecret}`].join('\n'),
  );
  const coordinator = CliProcess.start(['coordinator', '--config', coordinatorPath]);
  const url = await eventually(() => /listening on (http:\/\/\S+)/.exec(coordinator.output)?.[1], 15_000, 'the coordinator to listen');
  const fleet = new CoordinatorClient({ baseUrl: url });
  const fleetKeys = ['heartbeatIntervalMs: 300', 'probeIntervalMs: 100', 'reportIntervalMs: 500', 'meshRefreshMs: 500'];
  const relays: CliProcess[] = [];
  try {
    const withEntry = join(dir, 'web-1.yaml');
    const muxPort = await freePort('udp');
    writeFileSync(withEntry, fleetRelayYaml({ relayId: 'web-1', latitude: 50.1, longitude: 8.7, seed, sealKeyBase64: sealKey.toString('base64'), originPort, coordinatorUrl: url, fleetSecret: { inline: fleetSecret }, fleetKeys }).replace('\nfleet:', `\n  webrtc:\n    listen: 127.0.0.1:0\n    udpMuxPort: ${muxPort}\nfleet:`));
    const plain = join(dir, 'udp-1.yaml');
    writeFileSync(plain, fleetRelayYaml({ relayId: 'udp-1', latitude: 52.4, longitude: 4.9, seed, sealKeyBase64: sealKey.toString('base64'), originPort, coordinatorUrl: url, fleetSecret: { inline: fleetSecret }, fleetKeys }));
    relays.push(CliProcess.start(['relay', '--config', withEntry]), CliProcess.start(['relay', '--config', plain]));
    const started = JSON.parse((await relays[0]!.waitFor(/^.*"relay started".*$/m, 'stdout', 15_000))[0]) as { addresses: { webrtc: { port: number } } };
    const signalingUrl = `http://127.0.0.1:${started.addresses.webrtc.port}/webrtc`;

    const view = await eventually(
      async () => {
        const f = await fleet.fleet();
        return f.relays.length === 2 && f.relays.every((r) => r.health === 'healthy') ? f : undefined;
      },
      15_000,
      'both relays healthy in /v1/fleet',
    );
    assert.equal(view.relays.find((r) => r.relayId === 'web-1')?.webrtcUrl, signalingUrl);
    assert.equal(view.relays.find((r) => r.relayId === 'udp-1')?.webrtcUrl, undefined);

    const route = await eventually(
      async () => {
        const r = await fleet.route({ origin: 'game', limit: 8, twoHop: false });
        return r.candidates.length === 2 ? r : undefined;
      },
      15_000,
      'both relays in the route',
    );
    assert.equal(route.candidates.find((c) => c.relayId === 'web-1')?.webrtcUrl, signalingUrl);
    assert.equal(route.candidates.find((c) => c.relayId === 'udp-1')?.webrtcUrl, undefined);

    // The advertised URL is the relay's signaling endpoint: a forged ticket gets its 403 there.
    const { offer, close } = await offerer('fleet-check');
    close();
    const reply = await postOffer(route.candidates.find((c) => c.relayId === 'web-1')!.webrtcUrl!, randomBytes(64), offer);
    assert.equal(reply.status, 403, reply.body);
  } finally {
    for (const r of relays) r.kill('SIGTERM');
    for (const r of relays) await r.exited;
    coordinator.kill('SIGTERM');
    await coordinator.exited;
  }
});
