/**
 * `slipstream relay --join` without the network: from a state directory that already
 * holds an enrollment (join.json), the generated relay.yaml is an ordinary config with
 * the flags' rules and `--config extra.yaml` merged over it; what is missing is named.
 * (test/e2e-relay-join.test.ts enrolls against a real coordinator.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliUsageError, ConfigError } from '../../proto/src/errors.js';
import { loadRelayConfig } from '../src/config.js';
import { mergeConfig, prepareJoin, type JoinOptions } from '../src/join.js';

function stateDir(placement: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'slip-join-'));
  const answer = {
    relayId: 'fra-9',
    enrolledAtMs: 1,
    ticketPublicKey: Buffer.alloc(32, 1).toString('base64'),
    sealKey: Buffer.alloc(32, 2).toString('base64'),
    origins: [{ name: 'game', address: '127.0.0.1:27015' }],
    ...(placement ? { placement: { region: 'eu-central', latitude: 50.1, longitude: 8.7 } } : {}),
  };
  writeFileSync(join(dir, 'join.json'), JSON.stringify(answer));
  return dir;
}

const options = (dir: string, more: Partial<JoinOptions> = {}): JoinOptions => ({
  url: 'http://127.0.0.1:7400',
  token: undefined,
  stateDir: dir,
  tunnelListen: '127.0.0.2:4433',
  publicAddress: undefined,
  udp: [],
  tcp: [],
  extraConfig: undefined,
  placement: {},
  ...more,
});

test('the generated relay.yaml: keys from the enrollment, rules from the flags, extra.yaml merged over it', async () => {
  const dir = stateDir(true);
  try {
    const extra = join(dir, 'extra.yaml');
    writeFileSync(extra, ['limits:', '  sessionsMax: 5000', 'fleet:', '  capacitySessions: 40', 'rules:', '  - { name: lobby, protocol: tcp, listen: 127.0.0.2:7000, origins: [127.0.0.1:7000] }'].join('\n'));
    const joined = await prepareJoin(options(dir, { udp: ['127.0.0.2:27015=127.0.0.1:27015'], tcp: ['127.0.0.2:7001=127.0.0.1:7001'], extraConfig: extra }));
    assert.deepEqual(joined, { configPath: join(dir, 'relay.yaml'), enrolled: false, relayId: 'fra-9' });
    const config = loadRelayConfig(joined.configPath);
    assert.equal(config.coordinatorUrl, 'http://127.0.0.1:7400');
    assert.equal(config.coordinatorFleetSecret, undefined);
    assert.equal(config.coordinatorIdentity?.relayId, 'fra-9');
    assert.equal(config.fleet?.relayId, 'fra-9');
    assert.equal(config.fleet?.region, 'eu-central');
    assert.equal(config.fleet?.capacitySessions, 40, 'extra.yaml merged into fleet');
    assert.equal(config.core.limits.sessionsMax, 5000);
    assert.equal(config.core.upstreamBindAddress, '127.0.0.2');
    assert.deepEqual(config.core.rules.map((r) => r.name), ['udp-1', 'tcp-1', 'lobby']);
    assert.deepEqual([...(config.core.tunnel?.origins.keys() ?? [])], ['game']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('what is missing or malformed is named: placement, a rule, a non-map extra file, the token on a first start', async () => {
  const noPlacement = stateDir(false);
  const empty = mkdtempSync(join(tmpdir(), 'slip-join-'));
  try {
    await assert.rejects(prepareJoin(options(noPlacement)), (e: unknown) => e instanceof CliUsageError && /--region, --lat and --lon: missing; the join token for 'fra-9' carried no placement/.test(e.message));
    const given = await prepareJoin(options(noPlacement, { placement: { region: 'ap-east', latitude: 22.3, longitude: 114.2 } }));
    assert.equal(loadRelayConfig(given.configPath).fleet?.region, 'ap-east');
    await assert.rejects(prepareJoin(options(noPlacement, { placement: { region: 'x', latitude: 1, longitude: 1 }, udp: ['127.0.0.2:27015'] })), (e: unknown) => e instanceof CliUsageError && /--udp: '127\.0\.0\.2:27015' is not LISTEN=ORIGIN/.test(e.message));
    const list = join(noPlacement, 'list.yaml');
    writeFileSync(list, '- a\n- b\n');
    await assert.rejects(prepareJoin(options(noPlacement, { placement: { region: 'x', latitude: 1, longitude: 1 }, extraConfig: list })), (e: unknown) => e instanceof ConfigError && /list\.yaml: <root>: expected a map/.test(e.message));
    await assert.rejects(prepareJoin(options(empty)), (e: unknown) => e instanceof CliUsageError && /--token: missing; the first start with --join enrolls with a join token/.test(e.message));
  } finally {
    rmSync(noPlacement, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  }
});

test('mergeConfig: maps merged key by key, rules appended, anything else replaced', () => {
  assert.deepEqual(mergeConfig({ a: { b: 1, c: 2 }, rules: [1], d: [1, 2], e: 'x' }, { a: { c: 3 }, rules: [2], d: [3], e: { f: 1 } }), { a: { b: 1, c: 3 }, rules: [1, 2], d: [3], e: { f: 1 } });
});
