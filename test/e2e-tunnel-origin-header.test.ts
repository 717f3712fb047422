/**
 * `tunnel.proxyProtocol: v2` end to end on loopback with real processes: `slipstream
 * coordinator` issues a ticket with a player id (`POST /v1/session` `playerId`), one
 * `slipstream relay` (127.0.0.2) carries the session, and `slipstream connect
 * --ticket-file` is the player. The origin in this process parses every datagram with
 * `slipstream/origin` (`parsePlayerDatagram`) and echoes the payload as it is: it must
 * see the player's real address (the connect process's socket, as the relay logged the
 * session's client), not the relay's, and the ticket's player id; the game gets its
 * echoes (the reply direction carries no header). A WebRTC player (node-datachannel, as
 * in e2e-relay-webrtc) shows up with its ICE address and port, never the relay's
 * internal peer-connection port. Through an exit relay (127.0.0.4, full, so the player
 * enters through the first relay), the exit writes the header with the address the
 * entry saw. Only processes started here are stopped, by PID.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorClient } from '../kit/coordinator-client.js';
// The module the package exports as `slipstream/origin`.
import { parsePlayerDatagram } from '../proto/src/origin.js';
import { CliProcess } from './support/cli-process.js';
import { announcedRelayYaml, announceRelay, fleetKeys, startCoordinator, startTunnelRelay } from './support/local-fleet.js';
import { freePort, udpSocket } from './support/sockets.js';
import { startUdpGame, type UdpGame } from './support/udp-game.js';
import { until } from './support/wait.js';
import { releaseWebRtc, WebRtcTunnel } from './support/webrtc-client.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-origin-header-'));
after(() => rmSync(dir, { recursive: true, force: true }));
after(releaseWebRtc);

const keys = fleetKeys();

describe('tunnel origin header end to end', () => {
  let coordinatorUrl = '';
  let relay: CliProcess;
  let signalingUrl = '';
  let beat: NodeJS.Timeout | undefined;
  let exitBeat: NodeJS.Timeout | undefined;
  let originPort = 0;
  /** What the origin saw: `address:port playerId` per datagram, and datagrams it could not parse. */
  const seen = new Map<string, number>();
  let unparsed = 0;
  /** The relay addresses each player id's datagrams came from. */
  const senders = new Map<string, Set<string>>();

  before(async () => {
    const origin = udpSocket();
    origin.on('message', (msg, from) => {
      const d = parsePlayerDatagram(msg);
      if (!d.ok) {
        unparsed++;
        return;
      }
      const key = `${d.address}:${d.port} ${d.playerId}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      const relays = senders.get(String(d.playerId)) ?? new Set<string>();
      senders.set(String(d.playerId), relays.add(from.address));
      origin.send(d.payload, from.port, from.address);
    });
    await new Promise<void>((resolve) => origin.bind(0, '127.0.0.1', resolve));
    originPort = origin.address().port;
    coordinatorUrl = (await startCoordinator(dir, keys, origin.address().port)).url;
    const config = join(dir, 'relay.yaml');
    writeFileSync(config, announcedRelayYaml(keys, { address: '127.0.0.2', originPort: origin.address().port, tunnelKeys: ['proxyProtocol: v2', 'webrtc:', '  listen: 127.0.0.2:0', `  udpMuxPort: ${await freePort('udp')}`] }));
    const started = await startTunnelRelay(config);
    relay = started.proc;
    signalingUrl = `http://127.0.0.2:${/"webrtc":\{"address":"[0-9.]+","port":(\d+)/.exec(relay.stdout)![1]}/webrtc`;
    beat = await announceRelay(new CoordinatorClient({ baseUrl: coordinatorUrl, fleetSecret: keys.fleetSecret }), { relayId: 'relay-a', tunnelAddress: `127.0.0.2:${started.tunnelPort}`, originRttMs: 1 });
  });

  after(() => {
    clearInterval(beat);
    clearInterval(exitBeat);
  });

  /**
   * A player through `slipstream connect`: a ticket from the game backend (with
   * `playerId`, and `exitRelay` when given) in a grant file, the connect process on a
   * free UDP port and a UDP game sending through it; `name` keeps the files apart.
   */
  async function connectPlayer(name: string, session: { readonly playerId: string; readonly exitRelay?: string }): Promise<{ proxy: CliProcess; game: UdpGame }> {
    const grant = await new CoordinatorClient({ baseUrl: coordinatorUrl, apiKey: keys.apiKey }).issueSession({ origin: 'game', ...session });
    const grantFile = join(dir, `grant-${name}.json`);
    writeFileSync(grantFile, JSON.stringify(grant));
    const udpPort = await freePort('udp');
    const proxy = CliProcess.start(['connect', '--coordinator', coordinatorUrl, '--origin', 'game', '--listen', `udp:127.0.0.1:${udpPort}`, '--ticket-file', grantFile, '--bind', '127.0.0.1', '--cache', join(dir, `cache-${name}.json`)]);
    const game = await startUdpGame(udpPort);
    return { proxy, game };
  }

  test("the origin sees the player's address and the ticket's player id on every datagram; echoes come back", async () => {
    const { proxy, game } = await connectPlayer('direct', { playerId: 'player-7' });
    try {
      await proxy.waitFor(/listening: /, 'stdout', 15_000);
      await until(() => game.arrivals.length >= 25, 10_000, 'echoes through the relay');
      const start = (await relay.waitFor(/"event":"session_start"[^\n]*/, 'stdout', 3000))[0];
      const client = /"client":"([0-9.]+:\d+)"/.exec(start)![1]!;
      assert.doesNotMatch(client, /^127\.0\.0\.2:/, 'the relay logged the player, not itself');
      assert.deepEqual([...seen.keys()], [`${client} player-7`], `the origin saw ${[...seen.keys()].join(', ')}`);
      assert.equal(unparsed, 0, 'every datagram at the origin had a valid header');
    } finally {
      game.stop();
      proxy.kill('SIGTERM');
      await proxy.exited;
    }
  });

  test('`connect --api-key --player-id`: the ticket connect asks for carries the player id to the origin; a bad id or one without --api-key is a usage error', async () => {
    const udpPort = await freePort('udp');
    const base = ['connect', '--coordinator', coordinatorUrl, '--origin', 'game', '--listen', `udp:127.0.0.1:${udpPort}`, '--bind', '127.0.0.1', '--cache', join(dir, 'cache-api.json')];
    for (const [extra, message] of [
      [['--api-key', keys.apiKey, '--player-id', 'has space'], /--player-id: expected 1–128 printable ASCII characters without spaces/],
      [['--ticket-file', join(dir, 'absent.json'), '--player-id', 'p-1'], /--player-id: needs --api-key/],
    ] as const) {
      const refused = CliProcess.start([...base, ...extra]);
      await refused.waitFor(message, 'stderr', 15_000);
      assert.equal(await refused.exited, 2, refused.stderr);
    }
    const proxy = CliProcess.start([...base, '--api-key', keys.apiKey, '--player-id', 'player-api']);
    const game = await startUdpGame(udpPort);
    try {
      await proxy.waitFor(/listening: /, 'stdout', 15_000);
      await until(() => game.arrivals.length >= 10, 10_000, 'echoes through the relay');
      assert.ok([...seen.keys()].some((key) => key.endsWith(' player-api')), `the origin saw ${[...seen.keys()].join(', ')}`);
      assert.equal(unparsed, 0);
    } finally {
      game.stop();
      proxy.kill('SIGTERM');
      await proxy.exited;
    }
  });

  test('a WebRTC player: the origin sees its ICE address and port and its player id', async () => {
    const grant = await new CoordinatorClient({ baseUrl: coordinatorUrl, apiKey: keys.apiKey }).issueSession({ origin: 'game', playerId: 'browser-1' });
    const t = await WebRtcTunnel.connect(signalingUrl, { sessionId: grant.sessionId, ticket: Buffer.from(grant.ticket, 'base64'), sessionKey: Buffer.from(grant.sessionKey, 'base64') });
    try {
      await until(() => t.isOpen, 10_000, 'the tunnel session open over the DataChannel');
      for (let i = 0; i < 10; i++) t.send(Buffer.from(`message ${i}`));
      await until(() => t.messages.length >= 10, 10_000, 'echoes over the DataChannel');
      const local = t.pc.getSelectedCandidatePair()!.local;
      assert.ok(seen.has(`${local.address}:${local.port} browser-1`), `the origin saw ${[...seen.keys()].join(', ')}; the peer is ${local.address}:${local.port}`);
      assert.equal(unparsed, 0);
    } finally {
      t.close();
    }
  });

  test('through an exit relay: the exit writes the header, with the address the entry saw and the player id', async () => {
    const config = join(dir, 'exit.yaml');
    writeFileSync(config, announcedRelayYaml(keys, { address: '127.0.0.4', originPort, tunnelKeys: ['proxyProtocol: v2', 'relayId: exit', 'peerCidrs: [127.0.0.2/32]'] }));
    const exit = await startTunnelRelay(config);
    const fleet = new CoordinatorClient({ baseUrl: coordinatorUrl, fleetSecret: keys.fleetSecret });
    exitBeat = await announceRelay(fleet, { relayId: 'exit', tunnelAddress: `127.0.0.4:${exit.tunnelPort}`, originRttMs: 1, capacitySessions: 1, sessions: 1, heartbeatNow: true });
    const { proxy, game } = await connectPlayer('exit', { playerId: 'player-9', exitRelay: 'exit' });
    try {
      await proxy.waitFor(/listening: /, 'stdout', 15_000);
      await until(() => game.arrivals.length >= 25, 10_000, 'echoes through the entry and the exit');
      const start = (await relay.waitFor(/"event":"session_start"[^\n]*"exit":"exit"[^\n]*/, 'stdout', 3000))[0];
      const client = /"client":"([0-9.]+:\d+)"/.exec(start)![1]!;
      assert.ok(seen.has(`${client} player-9`), `the origin saw ${[...seen.keys()].join(', ')}; the entry saw the player at ${client}`);
      assert.deepEqual([...(senders.get('player-9') ?? [])], ['127.0.0.4'], 'the exit, not the entry, sent to the origin');
      assert.equal(unparsed, 0);
    } finally {
      game.stop();
      proxy.kill('SIGTERM');
      await proxy.exited;
    }
  });
});
