/** The `fleet` section of relay.yaml: defaults, ranges, and the errors that name the key. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigReader } from '../../kit/config.js';
import { ConfigError } from '../../proto/src/errors.js';
import { parseRelayConfig } from '../src/config.js';

const KEY = Buffer.alloc(32, 7).toString('base64');
function doc(tunnelListen: string, fleet: string[], coordinator = true): string {
  return [
    'tunnel:',
    `  listen: ${tunnelListen}`,
    `  ticketPublicKey: ${Buffer.alloc(32, 1).toString('base64')}`,
    `  sealKey: ${KEY}`,
    ...(coordinator ? ['  coordinatorUrl: http://127.0.0.1:7400', '  coordinatorFleetSecret: abcdefghijklmnopqrstuvwx'] : []),
    'fleet:',
    ...fleet.map((l) => `  ${l}`),
  ].join('\n');
}
const parse = (text: string) => parseRelayConfig(new ConfigReader('relay.yaml', text));
const required = ['relayId: fra-1', 'region: eu-central', 'latitude: 50.1', 'longitude: 8.7'];

test('fleet: defaults fill in; the tunnel address defaults to a specific tunnel listen address', () => {
  const config = parse(doc('127.0.0.1:4433', required));
  assert.deepEqual(config.fleet, {
    relayId: 'fra-1',
    region: 'eu-central',
    latitude: 50.1,
    longitude: 8.7,
    tunnelAddress: undefined,
    probeAddress: undefined,
    capacitySessions: 100_000,
    heartbeatIntervalMs: 1000,
    probeIntervalMs: 250,
    probeTimeoutMs: 1000,
    reportIntervalMs: 2000,
    meshRefreshMs: 5000,
    originProbe: 'tcp',
  });
});

test('fleet: errors name the key and what is accepted', () => {
  const fails = (text: string, pattern: RegExp): void => assert.throws(() => parse(text), (e: unknown) => e instanceof ConfigError && pattern.test(e.message));
  fails(doc('0.0.0.0:4433', required), /fleet\.tunnelAddress: missing; the tunnel listens on 0\.0\.0\.0/);
  fails(doc('127.0.0.1:4433', required, false), /fleet.*needs the coordinator/);
  fails(doc('127.0.0.1:4433', [...required, 'probeIntervalMs: 10']), /fleet\.probeIntervalMs/);
  fails(doc('127.0.0.1:4433', [...required, 'tunnelAddress: example.org:4433']), /fleet\.tunnelAddress: 'example\.org:4433' is not accepted/);
  fails(doc('127.0.0.1:4433', ['region: x', 'latitude: 1', 'longitude: 2']), /fleet\.relayId/);
  fails(doc('127.0.0.1:4433', ['relayId: fra-1', 'region: eu-central', 'latitude: 91', 'longitude: 8.7']), /fleet\.latitude/);
  fails(doc('127.0.0.1:4433', [...required, 'colour: blue']), /colour/);
  assert.equal(parse(doc('0.0.0.0:4433', [...required, 'tunnelAddress: 203.0.113.7:4433'])).fleet?.tunnelAddress, '203.0.113.7:4433');
});
