/** relay.yaml's relay identity keys: the key file generated once and reused, the join token, and the errors that name the key. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigReader } from '../../kit/config.js';
import { ConfigError } from '../../proto/src/errors.js';
import { parseRelayConfig } from '../src/config.js';

const KEY = Buffer.alloc(32, 7).toString('base64');
const TOKEN = `sjt_${'A'.repeat(43)}`;
function doc(tunnelKeys: string[], relayId: string | null = 'fra-1'): string {
  return [
    'tunnel:',
    '  listen: 127.0.0.1:4433',
    `  ticketPublicKey: ${Buffer.alloc(32, 1).toString('base64')}`,
    `  sealKey: ${KEY}`,
    '  coordinatorUrl: http://127.0.0.1:7400',
    ...tunnelKeys.map((l) => `  ${l}`),
    ...(relayId !== null ? ['fleet:', `  relayId: ${relayId}`, '  region: eu-central', '  latitude: 50.1', '  longitude: 8.7'] : []),
  ].join('\n');
}
const parse = (text: string) => parseRelayConfig(new ConfigReader('relay.yaml', text));
function configError(text: string): string {
  try {
    parse(text);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  assert.fail('expected a ConfigError');
}

test('coordinatorIdentityKeyFile: generated (0600) when missing, then read back unchanged; no fleet secret needed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'slip-relay-ident-'));
  try {
    const file = join(dir, 'relay.key');
    const first = parse(doc([`coordinatorIdentityKeyFile: ${file}`, `coordinatorJoinToken: ${TOKEN}`]));
    assert.equal(first.coordinatorFleetSecret, undefined);
    assert.equal(first.coordinatorIdentity?.relayId, 'fra-1');
    assert.equal(first.coordinatorIdentity?.joinToken, TOKEN);
    assert.equal(createPrivateKey(first.coordinatorIdentity!.privateKeyPem).asymmetricKeyType, 'ed25519');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const again = parse(doc([`coordinatorIdentityKeyFile: ${file}`]));
    assert.equal(again.coordinatorIdentity?.privateKeyPem, readFileSync(file, 'utf8'));
    assert.equal(again.coordinatorIdentity?.privateKeyPem, first.coordinatorIdentity?.privateKeyPem, 'the key is not regenerated');
    assert.equal(again.coordinatorIdentity?.joinToken, undefined);
    // The token from a file.
    writeFileSync(join(dir, 'join.token'), `${TOKEN}\n`);
    assert.equal(parse(doc([`coordinatorIdentityKeyFile: ${file}`, `coordinatorJoinTokenFile: ${join(dir, 'join.token')}`])).coordinatorIdentity?.joinToken, TOKEN);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad identity settings are refused naming the key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'slip-relay-ident-'));
  try {
    const rsa = join(dir, 'rsa.pem');
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const garbage = join(dir, 'garbage.key');
    writeFileSync(garbage, 'not a key');
    const file = join(dir, 'ok.key');
    assert.match(configError(doc([`coordinatorIdentityKeyFile: ${rsa}`])), /^relay\.yaml:\d+: tunnel\.coordinatorIdentityKeyFile: cannot read or create '.*rsa\.pem': holds a rsa key, not Ed25519/);
    assert.match(configError(doc([`coordinatorIdentityKeyFile: ${garbage}`])), /tunnel\.coordinatorIdentityKeyFile: cannot read or create .*expected an Ed25519 private key in PKCS#8 PEM/);
    assert.match(configError(doc([`coordinatorIdentityKeyFile: ${file}`], null)), /tunnel\.coordinatorIdentityKeyFile: needs a relay id for the key to speak for: set fleet\.relayId/);
    assert.match(configError(doc([`coordinatorIdentityKeyFile: ${file}`, 'coordinatorJoinToken: hunter2'])), /tunnel\.coordinatorJoinToken: 'hunter2' is not accepted; expected a join token/);
    assert.match(configError(doc([`coordinatorJoinToken: ${TOKEN}`, 'coordinatorFleetSecret: abcdefghijklmnopqrstuvwx'])), /tunnel\.coordinatorJoinToken: given without tunnel\.coordinatorIdentityKeyFile/);
    assert.match(configError(doc([])), /tunnel\.coordinatorFleetSecret: missing; coordinatorUrl needs the relay identity \(coordinatorIdentityKeyFile\) or the fleet secret/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
