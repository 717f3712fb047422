import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ConfigReader } from '../../kit/config.js';
import { ConfigError } from '../../proto/src/errors.js';
import { parseRelayConfig } from '../src/config.js';

const EXAMPLE = fileURLToPath(new URL('../../../deploy/examples/relay.yaml', import.meta.url));

function parse(text: string) {
  return parseRelayConfig(new ConfigReader('relay.yaml', text));
}

function failure(text: string): string {
  try {
    parse(text);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.message;
  }
  assert.fail('expected a ConfigError');
}

test('the example in deploy/examples/relay.yaml is valid and documents every section', () => {
  const text = readFileSync(EXAMPLE, 'utf8').replace(/sealKeyFile: .*/, `sealKey: '${Buffer.alloc(32, 1).toString('base64')}'`);
  const config = parse(text);
  assert.deepEqual(config.core.rules.map((r) => [r.name, r.protocol, r.listenPort, r.listenPortEnd, r.proxyProtocol]), [
    ['game-udp', 'udp', 27015, 27015, 'spp'],
    ['voice', 'udp', 28000, 28009, 'none'],
    ['lobby', 'tcp', 7000, 7000, 'v2'],
  ]);
  assert.equal(config.core.tunnel?.origins.get('eu-game')?.port, 27015);
  assert.equal(config.revocationFile, '/etc/slipstream/revoked.txt');
  assert.deepEqual(config.core.tcp, { connectionsPerSourceMax: 128, silentPerSourceMax: 16, firstByteTimeoutMs: 10_000 });
  assert.equal(config.workers, 2);
});

test("workers: default 1; 'auto' is the core count; 0, a fraction, more than 64 or another word is refused by name", () => {
  const rules = 'rules:\n  - { name: u, protocol: udp, listen: 0.0.0.0:7000, origins: [10.0.0.5:7000] }';
  assert.equal(parse(rules).workers, 1);
  assert.equal(parse(`workers: 8\n${rules}`).workers, 8);
  assert.equal(parse(`workers: auto\n${rules}`).workers, Math.min(64, availableParallelism()));
  for (const bad of ['workers: 0', 'workers: 1.5', 'workers: 65', 'workers: all']) assert.match(failure(`${bad}\n${rules}`), /workers/);
});

test('tcp: per-source caps default when absent; a first-byte timeout under a second is refused by name', () => {
  const rules = 'rules:\n  - { name: t, protocol: tcp, listen: 0.0.0.0:7000, origins: [10.0.0.5:7000] }';
  assert.deepEqual(parse(rules).core.tcp, { connectionsPerSourceMax: 128, silentPerSourceMax: 16, firstByteTimeoutMs: 10_000 });
  assert.equal(parse(`tcp: { firstByteTimeoutMs: 0 }\n${rules}`).core.tcp?.firstByteTimeoutMs, 0);
  assert.match(failure(`tcp: { firstByteTimeoutMs: 500 }\n${rules}`), /tcp\.firstByteTimeoutMs: 500 is too short; expected 0 \(never\) or 1000–600000 ms/);
  assert.match(failure(`tcp: { silentPerSourceMax: 0 }\n${rules}`), /tcp\.silentPerSourceMax: 0 is out of range/);
  assert.match(failure(`tcp: { idleMs: 5 }\n${rules}`), /tcp\.idleMs: unknown key/);
});

test('errors name the file, the line, the key and what is accepted', () => {
  const rule = (extra: string) => `rules:\n  - name: g\n    protocol: udp\n    listen: 0.0.0.0:27015\n    origins: [10.0.0.5:27015]\n${extra}`;
  assert.equal(failure(rule('    idleTimeoutMs: 10')), 'relay.yaml:6: rules[0].idleTimeoutMs: 10 is out of range; expected an integer from 30000 to 3600000 ms');
  assert.match(failure(rule('    proxyProtocol: v3')), /^relay\.yaml:6: rules\[0\]\.proxyProtocol: 'v3' is not accepted; expected one of none, v2, spp$/);
  assert.match(failure(rule('    idleTimoutMs: 40000')), /rules\[0\]\.idleTimoutMs: unknown key \(did you mean 'idleTimeoutMs'\?\); expected one of/);
  assert.match(failure(rule('    allow: [10.0.0.0/33]')), /rules\[0\]\.allow\[0\]: '10\.0\.0\.0\/33' is not a CIDR block/);
  assert.match(failure('rules:\n  - { name: g, protocol: udp, listen: 0.0.0.0:27015-27016, origins: [10.0.0.5:1-3] }'), /rules\[0\]\.listen: listen range spans 2 ports but origin 10\.0\.0\.5:1-3 spans 3/);
  assert.match(failure('rules:\n  - { name: g, protocol: udp, listen: example.com:1, origins: [10.0.0.5:1] }'), /rules\[0\]\.listen: 'example\.com' is not an IP address/);
  assert.match(failure('limits: { sessionsMax: 0 }\nrules: []'), /limits\.sessionsMax: 0 is out of range; expected an integer from 1 to 10000000/);
  assert.match(failure('tunnel:\n  listen: 0.0.0.0:4433\n  ticketPublicKey: abc\n  sealKey: abc'), /tunnel\.ticketPublicKey: expected 32 bytes in base64/);
  assert.match(failure('{}'), /rules: nothing to do/);
});

test('session budgets: sessionsMax is split among the kinds configured and each kind among its rules; explicit budgets are checked against what they are part of', () => {
  const tunnel = `tunnel:\n  listen: 127.0.0.1:0\n  ticketPublicKey: ${Buffer.alloc(32, 3).toString('base64')}\n  sealKey: ${Buffer.alloc(32, 1).toString('base64')}\n  origins: { game: 127.0.0.1:1 }`;
  const rules = 'rules:\n  - { name: a, protocol: udp, listen: 127.0.0.1:1, origins: [127.0.0.1:2] }\n  - { name: b, protocol: udp, listen: 127.0.0.1:3, origins: [127.0.0.1:4] }\n  - { name: c, protocol: tcp, listen: 127.0.0.1:5, origins: [127.0.0.1:6] }';
  const split = parse(`limits: { sessionsMax: 900 }\n${rules}\n${tunnel}`).core;
  assert.deepEqual([split.limits.udpFlowsMax, split.limits.tcpConnectionsMax, split.limits.tunnelSessionsMax], [300, 300, 300]);
  assert.deepEqual(split.rules.map((r) => r.sessionsMax), [150, 150, 300]);
  assert.equal(split.limits.unrepliedIdleTimeoutMs, 5000);
  // A tunnel-only relay keeps the whole cap for the tunnel (nothing to share it with).
  const alone = parse(tunnel);
  assert.equal(alone.core.limits.tunnelSessionsMax, 100_000);
  assert.equal(parse(`${tunnel}\n  coordinatorUrl: http://127.0.0.1:1\n  coordinatorFleetSecret: 0123456789abcdef0123\nfleet: { relayId: r, region: eu, latitude: 1, longitude: 1, tunnelAddress: '127.0.0.1:9' }\nlimits: { sessionsMax: 1000, udpFlowsMax: 900, tunnelSessionsMax: 100 }\n${rules}`).fleet?.capacitySessions, 100, 'the coordinator is told the tunnel budget');
  assert.match(failure(`limits: { sessionsMax: 1000, udpFlowsMax: 2000 }\n${rules}`), /limits\.udpFlowsMax: 2000 is out of range; expected an integer from 1 to 1000 \(a share of limits\.sessionsMax, 1000\)/);
  assert.match(failure(`limits: { sessionsMax: 1000, udpFlowsMax: 100 }\n${rules.replace('origins: [127.0.0.1:2] }', 'origins: [127.0.0.1:2], sessionsMax: 101 }')}`), /rules\[0\]\.sessionsMax: 101 is out of range; expected an integer from 1 to 100 \(a share of limits\.udpFlowsMax, 100\)/);
  assert.match(failure(`limits: { unrepliedIdleTimeoutMs: 10 }\n${rules}`), /limits\.unrepliedIdleTimeoutMs: 10 is out of range; expected an integer from 1000 to 3600000 ms/);
  assert.match(failure(`logAggregateIntervalMs: 0\n${rules}`), /logAggregateIntervalMs: 0 is out of range; expected an integer from 100 to 3600000 ms/);
});

test('revocation staleness: the feed rule is set only with tunnel.coordinatorUrl, with its defaults; a bad policy or age is refused by name', () => {
  const key = Buffer.alloc(32, 1).toString('base64');
  const tunnel = (extra: string[]) => ['tunnel:', '  listen: 0.0.0.0:4433', `  ticketPublicKey: '${key}'`, `  sealKey: '${key}'`, ...extra.map((l) => `  ${l}`)].join('\n');
  const feed = ['coordinatorUrl: http://127.0.0.1:7400', 'coordinatorFleetSecret: 0123456789abcdef0123'];
  assert.equal(parse(tunnel([])).core.tunnel?.revocationFeed, undefined, 'no feed: the list never goes stale');
  assert.deepEqual(parse(tunnel(feed)).core.tunnel?.revocationFeed, { maxAgeMs: 300_000, stalePolicy: 'refuse' });
  const set = parse(tunnel([...feed, 'revocationMaxAgeMs: 60000', 'revocationStalePolicy: admit', 'revocationStateFile: /var/lib/slipstream/relay-revocations.json']));
  assert.deepEqual(set.core.tunnel?.revocationFeed, { maxAgeMs: 60_000, stalePolicy: 'admit' });
  assert.equal(set.revocationStateFile, '/var/lib/slipstream/relay-revocations.json');
  assert.match(failure(tunnel([...feed, 'revocationStalePolicy: open'])), /tunnel\.revocationStalePolicy: 'open' is not accepted; expected one of refuse, admit/);
  assert.match(failure(tunnel([...feed, 'revocationMaxAgeMs: 10'])), /tunnel\.revocationMaxAgeMs: 10 is out of range/);
});

test('tunnel.proxyProtocol: none by default; v2 or spp; anything else is refused naming the key and the choices', () => {
  const tunnel = (extra: string) => `tunnel:\n  listen: 127.0.0.1:4433\n  ticketPublicKey: '${Buffer.alloc(32, 2).toString('base64')}'\n  sealKey: '${Buffer.alloc(32, 1).toString('base64')}'\n${extra}`;
  assert.equal(parse(tunnel('')).core.tunnel?.proxyProtocol, 'none');
  assert.equal(parse(tunnel('  proxyProtocol: v2\n')).core.tunnel?.proxyProtocol, 'v2');
  assert.equal(parse(tunnel('  proxyProtocol: spp\n')).core.tunnel?.proxyProtocol, 'spp');
  assert.equal(failure(tunnel('  proxyProtocol: proxy-v2\n')), "relay.yaml:5: tunnel.proxyProtocol: 'proxy-v2' is not accepted; expected one of none, v2, spp");
  assert.equal(failure(tunnel('  proxyProtocol: [v2]\n')).startsWith('relay.yaml:5: tunnel.proxyProtocol:'), true);
});

test('tunnel.origins: an entry is IP:port or { address, proxyProtocol } (its own header, else the tunnel’s); bad long forms are refused by key', () => {
  const tunnel = (origins: string) => `tunnel:\n  listen: 127.0.0.1:4433\n  ticketPublicKey: '${Buffer.alloc(32, 2).toString('base64')}'\n  sealKey: '${Buffer.alloc(32, 1).toString('base64')}'\n  proxyProtocol: spp\n  origins:\n${origins}`;
  const origins = parse(tunnel('    a: 10.0.0.5:7000\n    b: { address: 10.0.0.6:7001, proxyProtocol: v2 }\n    c: { address: 10.0.0.7:7002 }\n')).core.tunnel!.origins;
  assert.deepEqual([...origins], [
    ['a', { address: '10.0.0.5', port: 7000 }],
    ['b', { address: '10.0.0.6', port: 7001, proxyProtocol: 'v2' }],
    ['c', { address: '10.0.0.7', port: 7002 }],
  ]);
  assert.equal(failure(tunnel('    b: { address: 10.0.0.6:7001, proxyProtocol: v3 }\n')), "relay.yaml:7: tunnel.origins.b.proxyProtocol: 'v3' is not accepted; expected one of none, v2, spp");
  assert.match(failure(tunnel('    b: { adress: 10.0.0.6:7001 }\n')), /^relay\.yaml:7: tunnel\.origins\.b\.adress: unknown key \(did you mean 'address'\?\)/);
  assert.match(failure(tunnel('    b: { proxyProtocol: v2 }\n')), /^relay\.yaml:7: tunnel\.origins\.b\.address: /);
  assert.match(failure(tunnel('    b: { address: 10.0.0.6:0 }\n')), /tunnel\.origins\.b\.address: port 0 is not an origin port/);
});
