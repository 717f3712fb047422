/**
 * End-to-end, real processes on 127.0.0.x (issue 16 item 2): a relay started with only
 * `--join URL --token T` (no YAML) enrolls, registers with its own key at a coordinator
 * that requires relay identities, and forwards a tunnel session (`slipstream connect`,
 * a UDP echo through it); it restarts from its state directory without a token; the same
 * token cannot be replayed for another relay.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { CliProcess } from './support/cli-process.js';
import { runCli } from './support/run-cli.js';
import { freePort, udpEchoOrigin } from './support/sockets.js';
import { startUdpGame } from './support/udp-game.js';
import { eventually, until } from './support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-join-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('slipstream relay --join', () => {
  test('a relay with only --join and --token registers and forwards a tunnel session; restarts without the token; the token is not replayable', async () => {
    const origin = await udpEchoOrigin();
    after(() => origin.socket.close());
    const adminKey = randomBytes(24).toString('base64');
    const apiKey = randomBytes(24).toString('base64');
    const adminKeyFile = join(dir, 'admin.key');
    writeFileSync(adminKeyFile, adminKey, { mode: 0o600 });
    const coordinatorPath = join(dir, 'coordinator.yaml');
    writeFileSync(
      coordinatorPath,
      [
        'listen: 127.0.0.1:0',
        'leaseMs: 1500',
        'origins:',
        `  - { name: game, address: 127.0.0.1:${origin.port}, latitude: 50, longitude: 8 }`,
        'fleet: { requireRelayIdentity: true }',
        'keys:',
        `  ticketSigningSeed: ${randomBytes(32).toString('base64')}`,
        `  sealKey: ${randomBytes(32).toString('base64')}`,
        `  fleetSecret: ${randomBytes(24).toString('base64')}`,
        `  apiKeys: [${apiKey}]`,
        `  adminKeys: [${adminKey}]`,
      ].join('\n'),
    );
    const coordinator = CliProcess.start(['coordinator', '--config', coordinatorPath]);
    const url = await eventually(() => /listening on (http:\/\/\S+)/.exec(coordinator.output)?.[1], 15_000, 'the coordinator to listen');
    const fleet = new CoordinatorClient({ baseUrl: url });

    const minted = await runCli(['coordinator', 'token', '--relay-id', 'fra-join', '--region', 'eu-central', '--lat', '50.1', '--lon', '8.7', '--url', url, '--admin-key-file', adminKeyFile]);
    assert.equal(minted.code, 0, minted.stderr);
    const token = minted.stdout.trim();
    const stateDir = join(dir, 'state');
    const start = (extra: string[]): CliProcess => CliProcess.start(['relay', '--join', url, '--state-dir', stateDir, '--tunnel', '127.0.0.2:0', ...extra]);
    let relay = start(['--token', token]);
    await relay.waitFor(/enrolled as 'fra-join'/, 'stderr', 15_000);
    await eventually(
      async () => {
        const r = (await fleet.fleet()).relays.find((x) => x.relayId === 'fra-join');
        return r?.health === 'healthy' && r.fleetSecret === 'identity' && r.region === 'eu-central' && r.latitude === 50.1 ? r : undefined;
      },
      15_000,
      'the joined relay healthy, signing with its own key, where the token placed it',
    );
    assert.equal(statSync(join(stateDir, 'join.json')).mode & 0o777, 0o600);
    assert.equal(statSync(join(stateDir, 'relay.key')).mode & 0o777, 0o600);
    const written = JSON.parse(readFileSync(join(stateDir, 'relay.yaml'), 'utf8')) as { tunnel: Record<string, unknown> };
    assert.equal(written.tunnel.coordinatorFleetSecret, undefined, 'no fleet secret anywhere');
    assert.deepEqual(written.tunnel.origins, { game: `127.0.0.1:${origin.port}` });

    // A tunnel session through it: slipstream connect, a UDP game echoing off the origin.
    const gamePort = await freePort('udp');
    const connect = CliProcess.start(['connect', '--coordinator', url, '--origin', 'game', '--listen', `udp:127.0.0.1:${gamePort}`, '--api-key', apiKey, '--bind', '127.0.0.1', '--cache', join(dir, 'cache.json')]);
    try {
      await connect.waitFor(/path: fra-join/, 'stdout', 15_000);
      const game = await startUdpGame(gamePort);
      try {
        await until(() => game.arrivals.length >= 10, 10_000, 'UDP echoes through the joined relay');
      } finally {
        game.stop();
      }
      assert.match(relay.stdout, /"session":"[0-9a-f]{16}"/, 'the session went through the joined relay');
      assert.ok([...origin.sources.keys()].some((s) => s.startsWith('127.0.0.2:')), `the origin heard the relay's upstream address: ${[...origin.sources.keys()].join(', ')}`);
    } finally {
      connect.kill('SIGTERM');
      await connect.exited;
    }

    // A restart needs no token: the state directory holds the enrolled key.
    relay.kill('SIGTERM');
    assert.equal(await relay.exited, 0, relay.output);
    relay = start([]);
    await relay.waitFor(/joined as 'fra-join'/, 'stderr', 15_000);
    await relay.waitFor(/"event":"fleet_registered"/, 'stdout', 15_000);

    // The spent token enrolls nobody else.
    const replay = await runCli(['relay', '--join', url, '--token', token, '--state-dir', join(dir, 'other'), '--tunnel', '127.0.0.3:0'], 20_000);
    assert.equal(replay.code, 1, replay.stderr);
    assert.match(replay.stderr, /enrollment refused: coordinator answered 403 invalid_token/);
    assert.deepEqual((await fleet.fleet()).relays.map((r) => r.relayId), ['fra-join']);

    await relay.stop();
    await coordinator.stop();
  });
});
