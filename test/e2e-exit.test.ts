/**
 * Exit relays end to end on loopback with real processes: `slipstream coordinator`,
 * two entry relays (127.0.0.2, 127.0.0.3) and one exit relay (127.0.0.4), a UDP echo
 * origin in this process that records every source address:port it sees, and
 * `slipstream connect --exit-relay exit`. The coordinator signs the exit into the
 * ticket; the entries forward the session to the exit, which holds the one
 * origin-facing socket. Killing the entry in use moves the player to the other entry,
 * and the origin keeps seeing the same source address:port. As in e2e-connect, this
 * test registers the relays with the coordinator itself (fleet secret). Only processes
 * started here are stopped, by PID.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { CliProcess } from './support/cli-process.js';
import { announcedRelayYaml, announceRelay, crashRelay, fleetKeys, startCoordinator, startTunnelRelay } from './support/local-fleet.js';
import { freePort, udpEchoOrigin, type UdpEchoOrigin } from './support/sockets.js';
import { failoverGapMs, startUdpGame } from './support/udp-game.js';
import { until } from './support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-exit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const keys = fleetKeys();
const { fleetSecret, apiKey } = keys;

describe('exit relay end to end', () => {
  let coordinatorUrl = '';
  let origin: UdpEchoOrigin;
  const relays = new Map<string, { proc: CliProcess; beat: NodeJS.Timeout }>();
  const fleet = (): CoordinatorClient => new CoordinatorClient({ baseUrl: coordinatorUrl, fleetSecret });

  before(async () => {
    // Echoes, and counts datagrams by source address:port (origin.sources).
    origin = await udpEchoOrigin();
    const originPort = origin.port;
    coordinatorUrl = (await startCoordinator(dir, keys, originPort)).url;

    // The exit is full for new clients (so the player enters through an entry, which is
    // what this test kills) but healthy, so the coordinator can name it as the exit.
    for (const [id, address, originRttMs, capacity] of [
      ['entry-a', '127.0.0.2', 1, 100],
      ['entry-b', '127.0.0.3', 30, 100],
      ['exit', '127.0.0.4', 1, 1],
    ] as const) {
      const config = join(dir, `${id}.yaml`);
      writeFileSync(config, announcedRelayYaml(keys, { address, originPort, tunnelKeys: [`relayId: ${id}`, 'peerCidrs: [127.0.0.0/8]'] }));
      const { proc, tunnelPort } = await startTunnelRelay(config);
      const beat = await announceRelay(fleet(), { relayId: id, tunnelAddress: `${address}:${tunnelPort}`, originRttMs, capacitySessions: capacity, sessions: id === 'exit' ? 1 : 0, heartbeatNow: true });
      relays.set(id, { proc, beat });
    }
  });

  after(() => {
    for (const r of relays.values()) clearInterval(r.beat);
    origin?.socket.close();
  });

  test('the entry relay in use is killed: traffic resumes through the other entry and the origin sees the same source address:port', async (t) => {
    const udpPort = await freePort('udp');
    const proxy = CliProcess.start(['connect', '--coordinator', coordinatorUrl, '--origin', 'game', '--listen', `udp:127.0.0.1:${udpPort}`, '--api-key', apiKey, '--exit-relay', 'exit', '--bind', '127.0.0.1', '--cache', join(dir, 'cache.json'), '--status-interval-ms', '1000']);
    await proxy.waitFor(/listening: /, 'stdout', 15_000);
    const first = (await proxy.waitFor(/path: (entry-[ab]) \(initial\)/, 'stdout', 5000))[1]!;
    const other = first === 'entry-a' ? 'entry-b' : 'entry-a';

    const game = await startUdpGame(udpPort);
    try {
      await until(() => game.arrivals.length >= 25, 10_000, `UDP echoes through ${first}`);
      assert.equal(origin.sources.size, 1, `origin sources: ${[...origin.sources.keys()].join(', ')}`);
      const originSide = [...origin.sources.keys()][0]!;
      assert.match(originSide, /^127\.0\.0\.4:\d+$/, 'the origin sees the exit relay');
      // The entry logged the session as forwarded to the exit.
      await relays.get(first)!.proc.waitFor(/"event":"session_start"[^\n]*"exit":"exit"/, 'stdout', 3000);
      // The backup entry joins the exit warm before anything fails.
      await until(() => /"event":"session_start"[^\n]*"exit":"exit"/.test(relays.get(other)!.proc.stdout), 5000, `${other} opening the session through the exit`);

      const gapMs = await failoverGapMs(game, () => crashRelay(relays.get(first)!));
      await proxy.waitFor(new RegExp(`path: ${other} \\(failover, was ${first}\\)`), 'stdout', 3000);
      t.diagnostic(`entry ${first} killed: traffic through ${other} after a ${gapMs.toFixed(0)} ms gap; origin saw ${[...origin.sources.entries()].map(([k, n]) => `${k} (${n} datagrams)`).join(', ')}; duplicates at the game ${game.duplicates}`);
      assert.deepEqual([...origin.sources.keys()], [originSide], 'the origin saw one source address:port for the whole session');
      assert.equal(game.duplicates, 0, 'no echo reached the game twice');
      // Behaviour, not timing: the < 1 s target is checked in the simulator; here only a generous bound.
      assert.ok(gapMs < 10_000, `traffic resumed only after ${gapMs.toFixed(0)} ms`);
      assert.equal(proxy.child.exitCode, null, 'the proxy is still running');
      assert.doesNotMatch(relays.get(other)!.proc.stdout, /"what":"origin"/, `${other} did not fall back to its own origin socket`);
    } finally {
      game.stop();
      proxy.kill('SIGTERM');
      await proxy.exited;
    }
  });
});
