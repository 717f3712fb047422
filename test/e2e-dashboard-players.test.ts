/**
 * The dashboard's players view and L4 rules table in a real headless Chromium, with
 * figures from real processes on 127.0.0.1: `slipstream coordinator`, two
 * `slipstream relay`s that join the fleet on their own (each with a tunnel and an L4
 * UDP rule whose origin group has a live echo origin and a dead one, health-checked),
 * `slipstream connect` with a game sending through it, and one L4 flow straight through
 * a relay's rule. The player's session is open on both relays (its current relay and
 * its warm backup): the coordinator must count one player, not two, and the page must
 * show the backup as a backup. The L4 rules show the echo origin up and the dead one
 * down. A screenshot is written to the temporary directory (its path is printed).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import type { FleetAnswer } from '../proto/src/api/contract.js';
import { launchChromium, type LaunchedBrowser } from '../coordinator/scripts/browser.js';
import { CliProcess } from './support/cli-process.js';
import { fleetKeys, fleetRelayYaml, startCoordinator } from './support/local-fleet.js';
import { freePort, udpClient, udpEchoOrigin } from './support/sockets.js';
import { startUdpGame } from './support/udp-game.js';
import { eventually } from './support/wait.js';

/** The player's address: the relays' own (every relay's fleet peer address), as `slipstream dev` runs them; it is still a player. */
const PLAYER_ADDRESS = '127.0.0.1';
const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-players-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Sum of players and backups of origin `game` over the relays that are not stale. */
function gameCounts(view: FleetAnswer): { players: number; backups: number; relays: string[] } {
  let players = 0;
  let backups = 0;
  const relays: string[] = [];
  for (const r of view.relays) {
    const o = r.load.status?.origins.find((x) => x.origin === 'game');
    if (r.stale || o === undefined) continue;
    players += o.players;
    backups += o.backups;
    relays.push(`${r.relayId}: ${o.players} player(s), ${o.backups} backup(s)`);
  }
  return { players, backups, relays };
}

describe('dashboard players view with real relays and a real session', () => {
  let launched: LaunchedBrowser | undefined;
  after(async () => {
    await launched?.close();
  });

  test('one player with a warm backup counts once; the L4 rules show their origins up and down; Chromium shows both (screenshot)', async (t) => {
    const keys = fleetKeys();
    const origin = await udpEchoOrigin();
    after(() => origin.socket.close());
    // A port nobody answers on: the dead origin of each rule's group.
    const deadPort = await freePort('udp');
    const { proc: coordinator, url } = await startCoordinator(dir, keys, origin.port);
    after(() => coordinator.stop());

    const rulePorts = new Map<string, number>();
    const relays: CliProcess[] = [];
    for (const [id, lat, lon] of [
      ['fra-1', 50.1, 8.7],
      ['ams-1', 52.4, 4.9],
    ] as const) {
      const rulePort = await freePort('udp');
      rulePorts.set(id, rulePort);
      const path = join(dir, `${id}.yaml`);
      const fleetKeyLines = ['capacitySessions: 100', 'heartbeatIntervalMs: 300', 'probeIntervalMs: 100', 'reportIntervalMs: 500', 'meshRefreshMs: 500'];
      const rule = `  - { name: game-udp, protocol: udp, listen: "127.0.0.1:${rulePort}", origins: ["127.0.0.1:${origin.port}", "127.0.0.1:${deadPort}"], healthCheck: { mode: udp, intervalMs: 300, timeoutMs: 200 } }`;
      writeFileSync(path, `${fleetRelayYaml({ relayId: id, latitude: lat, longitude: lon, seed: keys.seed, sealKeyBase64: keys.sealKey.toString('base64'), originPort: origin.port, coordinatorUrl: url, fleetSecret: { inline: keys.fleetSecret }, fleetKeys: fleetKeyLines })}\nlogLevel: warn\nrules:\n${rule}\n`);
      const relay = CliProcess.start(['relay', '--config', path]);
      after(() => relay.stop());
      relays.push(relay);
    }
    const client = new CoordinatorClient({ baseUrl: url });
    // The coordinator's answer carries `stale` per relay (the client's type predates it).
    const fleet = { fleet: async (): Promise<FleetAnswer> => (await client.fleet()) as unknown as FleetAnswer };
    await eventually(
      async () => {
        const f = await fleet.fleet();
        return f.relays.length === 2 && f.relays.every((r) => r.health === 'healthy' && r.origins.some((o) => o.origin === 'game')) ? true : undefined;
      },
      20_000,
      'both relays healthy with figures to the origin',
    );

    // The player: connect with a game sending 50 datagrams/s through it.
    const gamePort = await freePort('udp');
    const connect = CliProcess.start(['connect', '--coordinator', url, '--origin', 'game', '--listen', `udp:127.0.0.1:${gamePort}`, '--api-key', keys.apiKey, '--bind', PLAYER_ADDRESS, '--cache', join(dir, 'cache.json'), '--status-interval-ms', '1000']);
    after(() => connect.stop());
    await connect.waitFor(/listening: /, 'stdout', 15_000);
    const game = await startUdpGame(gamePort);
    after(() => game.stop());
    // One L4 flow straight through fra-1's rule (the game server answers it).
    const l4 = await udpClient();
    after(() => l4.socket.close());
    const l4Sender = setInterval(() => l4.socket.send(Buffer.from('l4 ping'), rulePorts.get('fra-1')!, '127.0.0.1'), 100);
    after(() => clearInterval(l4Sender));

    // The coordinator hears one player (on the relay in use) and one backup session (the other relay).
    let last = '';
    const counts = await eventually(
      async () => {
        const f = await fleet.fleet();
        last = JSON.stringify(f.relays.map((r) => ({ id: r.relayId, stale: r.stale, status: r.load.status })));
        const c = gameCounts(f);
        return c.players === 1 && c.backups === 1 && c.relays.length === 2 && game.arrivals.length > 50 && l4.replies.length > 0 ? c : undefined;
      },
      20_000,
      'one player and one backup session of game in the relays\' heartbeats',
    ).catch((error: Error) => {
      throw new Error(`${error.message}; last fleet status: ${last}; echoes ${game.arrivals.length}, L4 replies ${l4.replies.length}`);
    });
    t.diagnostic(`players view from the heartbeats: ${counts.relays.join('; ')}`);
    const view = await fleet.fleet();
    for (const r of view.relays) {
      const rule = r.load.status!.rules.find((x) => x.rule === 'game-udp')!;
      assert.deepEqual(rule.origins.map((o) => [o.origin, o.healthy]), [[`127.0.0.1:${origin.port}`, true], [`127.0.0.1:${deadPort}`, false]], `${r.relayId}: the echo origin up, the dead one down`);
      assert.equal(rule.listen, `127.0.0.1:${rulePorts.get(r.relayId)!}`);
    }
    assert.equal(view.relays.find((r) => r.relayId === 'fra-1')!.load.status!.rules[0]!.sessions, 1, 'the L4 flow through fra-1');

    // The page.
    launched = await launchChromium();
    const page = await launched.context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await page.goto(url);
    const total = page.locator('#players tr.origin-total[data-origin="game"]');
    await total.waitFor({ timeout: 10_000 });
    await eventually(async () => ((await total.getAttribute('data-players')) === '1' && (await total.getAttribute('data-backups')) === '1' ? true : undefined), 10_000, 'the page to show 1 player and 1 backup of game');
    assert.equal(await total.locator('td.players').textContent(), '1', 'one player, not two');
    const perRelay = await page.locator('#players tr[data-origin="game"][data-relay-id]').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-relay-id'), r.getAttribute('data-players'), r.getAttribute('data-backups')]));
    assert.equal(perRelay.length, 2, JSON.stringify(perRelay));
    assert.deepEqual(perRelay.map((r) => `${r[1]}/${r[2]}`).sort(), ['0/1', '1/0'], `one relay carries the player, the other holds its backup: ${JSON.stringify(perRelay)}`);
    assert.match((await page.locator('#players tr[data-relay-id] td.loss').first().textContent()) ?? '', /→/);
    assert.match((await page.locator('#players tr[data-relay-id] td.loss-down').first().textContent()) ?? '', /→/, 'the relays send the downstream loss too');
    for (const id of ['fra-1', 'ams-1']) {
      const row = page.locator(`#l4-rules tr[data-relay-id="${id}"][data-rule="game-udp"]`);
      assert.equal(await row.count(), 1, `${id}: its L4 rule`);
      assert.equal(await row.locator(`[data-origin="127.0.0.1:${origin.port}"]`).getAttribute('data-healthy'), 'true');
      assert.equal(await row.locator(`[data-origin="127.0.0.1:${deadPort}"]`).getAttribute('data-healthy'), 'false');
    }
    await eventually(async () => ((await page.locator('#l4-rules tr[data-relay-id="fra-1"] td.sessions').textContent()) === '1' ? true : undefined), 10_000, 'the L4 flow shown on fra-1');
    const shot = join(tmpdir(), `slipstream-dashboard-players-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true, timeout: 15_000 });
    t.diagnostic(`dashboard screenshot: ${shot}`);
    assert.deepEqual(problems, [], 'console errors or warnings');
  });
});
