/** `tunnel.webrtc`: defaults, and the refusals that keep tickets off plain HTTP on the network. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigReader } from '../../kit/config.js';
import { ConfigError } from '../../proto/src/errors.js';
import { parseRelayConfig } from '../src/config.js';
import { WEBRTC_CONNECT_TIMEOUT_MS_DEFAULT, WEBRTC_IDLE_TIMEOUT_MS_DEFAULT, WEBRTC_PEER_CONNECTIONS_MAX_DEFAULT } from '../src/webrtc-config.js';

const KEY = Buffer.alloc(32, 3).toString('base64');

function yaml(webrtc: string[]): string {
  return ['tunnel:', '  listen: 127.0.0.1:4433', `  ticketPublicKey: '${KEY}'`, `  sealKey: '${KEY}'`, '  webrtc:', ...webrtc.map((l) => `    ${l}`)].join('\n');
}

function failure(text: string): string {
  try {
    parseRelayConfig(new ConfigReader('relay.yaml', text));
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  assert.fail('expected a ConfigError');
}

test('tunnel.webrtc on loopback over plain HTTP: defaults, the mux port defaults to the signaling port', () => {
  const webrtc = parseRelayConfig(new ConfigReader('relay.yaml', yaml(['listen: 127.0.0.1:8443']))).webrtc!;
  assert.equal(webrtc.listenAddress, '127.0.0.1');
  assert.equal(webrtc.listenPort, 8443);
  assert.equal(webrtc.udpMuxPort, 8443);
  assert.equal(webrtc.tls, undefined);
  assert.deepEqual(webrtc.allowOrigins, []);
  assert.equal(webrtc.peerConnectionsMax, WEBRTC_PEER_CONNECTIONS_MAX_DEFAULT);
  assert.equal(webrtc.idleTimeoutMs, WEBRTC_IDLE_TIMEOUT_MS_DEFAULT);
  assert.equal(webrtc.connectTimeoutMs, WEBRTC_CONNECT_TIMEOUT_MS_DEFAULT);
  assert.equal(parseRelayConfig(new ConfigReader('relay.yaml', yaml(['listen: 127.0.0.1:8443']).replace('  webrtc:\n    listen: 127.0.0.1:8443', ''))).webrtc, undefined);
});

test('plain HTTP signaling off loopback is refused; with both PEM files it is HTTPS', () => {
  assert.match(failure(yaml(['listen: 0.0.0.0:8443'])), /tunnel\.webrtc\.listen: plain HTTP signaling on 0\.0\.0\.0 is refused.*certFile and keyFile/);
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-webrtc-config-'));
  try {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    writeFileSync(cert, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    writeFileSync(key, '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n');
    const webrtc = parseRelayConfig(new ConfigReader('relay.yaml', yaml(['listen: 0.0.0.0:8443', `certFile: ${cert}`, `keyFile: ${key}`, 'udpMuxPort: 3478', "allowOrigins: ['https://game.example.com', '*']"]))).webrtc!;
    assert.ok(webrtc.tls !== undefined);
    assert.equal(webrtc.udpMuxPort, 3478);
    assert.deepEqual(webrtc.allowOrigins, ['https://game.example.com', '*']);
    assert.match(failure(yaml(['listen: 0.0.0.0:8443', `certFile: ${cert}`])), /tunnel\.webrtc\.keyFile: missing; HTTPS signaling needs both/);
    assert.match(failure(yaml(['listen: 0.0.0.0:8443', `certFile: ${join(dir, 'nope.pem')}`, `keyFile: ${key}`])), /tunnel\.webrtc\.certFile: cannot read .*ENOENT/);
    writeFileSync(join(dir, 'junk.pem'), 'not a certificate');
    assert.match(failure(yaml(['listen: 0.0.0.0:8443', `certFile: ${join(dir, 'junk.pem')}`, `keyFile: ${key}`])), /tunnel\.webrtc\.certFile: .* is not PEM/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tunnel.webrtc: bad values name the key and the accepted range', () => {
  assert.match(failure(yaml(['listen: game.example.com:8443'])), /tunnel\.webrtc\.listen: .*expected IP:port/);
  assert.match(failure(yaml(['listen: 127.0.0.1:0'])), /tunnel\.webrtc\.udpMuxPort/);
  assert.match(failure(yaml(['listen: 127.0.0.1:8443', 'peerConnectionsMax: 0'])), /tunnel\.webrtc\.peerConnectionsMax/);
  assert.match(failure(yaml(['listen: 127.0.0.1:8443', 'idleTimeoutMs: 10'])), /tunnel\.webrtc\.idleTimeoutMs/);
  assert.match(failure(yaml(['listen: 127.0.0.1:8443', "allowOrigins: ['https://game.example.com/play']"])), /tunnel\.webrtc\.allowOrigins\[0\]|tunnel\.webrtc\.allowOrigins\.0/);
  assert.match(failure(yaml(['listen: 127.0.0.1:8443', 'stunPort: 3478'])), /stunPort/);
});

test('tunnel.webrtc.publicIceAddress: IP:port read, none by default; a host name or a bad port is refused naming the key', () => {
  assert.equal(parseRelayConfig(new ConfigReader('relay.yaml', yaml(['listen: 127.0.0.1:8443']))).webrtc!.publicIceAddress, undefined);
  assert.deepEqual(parseRelayConfig(new ConfigReader('relay.yaml', yaml(['listen: 127.0.0.1:8443', 'publicIceAddress: 203.0.113.7:3478']))).webrtc!.publicIceAddress, { address: '203.0.113.7', port: 3478 });
  assert.deepEqual(parseRelayConfig(new ConfigReader('relay.yaml', yaml(['listen: 127.0.0.1:8443', "publicIceAddress: '[2001:db8::7]:3478'"]))).webrtc!.publicIceAddress, { address: '2001:db8::7', port: 3478 });
  assert.match(failure(yaml(['listen: 127.0.0.1:8443', 'publicIceAddress: relay.example.com:3478'])), /tunnel\.webrtc\.publicIceAddress: .*expected IP:port/);
  assert.match(failure(yaml(['listen: 127.0.0.1:8443', 'publicIceAddress: 203.0.113.7:0'])), /tunnel\.webrtc\.publicIceAddress: .*port 1–65535/);
});

test('withCandidateAddress: every ICE candidate of the answer and its connection line name publicIceAddress; other lines are kept', async () => {
  const { withCandidateAddress } = await import('../src/webrtc.js');
  const answer = ['v=0', 'm=application 40000 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 127.0.0.1', 'a=candidate:1 1 UDP 2122317823 127.0.0.1 40000 typ host', 'a=ice-ufrag:abcd', 'a=end-of-candidates', ''].join('\r\n');
  const out = withCandidateAddress(answer, { address: '203.0.113.7', port: 3478 }).split('\r\n');
  assert.deepEqual(out, ['v=0', 'm=application 40000 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 203.0.113.7', 'a=candidate:1 1 UDP 2122317823 203.0.113.7 3478 typ host', 'a=ice-ufrag:abcd', 'a=end-of-candidates', '']);
});
