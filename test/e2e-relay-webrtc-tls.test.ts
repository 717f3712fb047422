/**
 * End-to-end, issue #15 item 1: WebRTC signaling over HTTPS (`tunnel.webrtc.certFile`,
 * `keyFile`) on the real `slipstream relay` process, with a certificate made by openssl
 * for 127.0.0.1: a client that trusts it signals, opens a tunnel session over the
 * DataChannel and gets its echoes; one that does not trust it fails the TLS handshake,
 * and plain HTTP to the same port gets no answer.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { CliProcess } from './support/cli-process.js';
import { udpEchoOrigin } from './support/sockets.js';
import { until } from './support/wait.js';
import { offerer, releaseWebRtc, WebRtcTunnel } from './support/webrtc-client.js';
import { writeWebrtcRelayConfig } from './support/webrtc-relay-config.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-webrtc-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));
after(releaseWebRtc);

test('HTTPS signaling with the configured certificate: a trusting client connects and echoes, an untrusting one fails TLS', { timeout: 40_000 }, async () => {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const signingKey = ticketSigningKeyFromSeed(randomBytes(32));
  const sealKey = randomBytes(32);
  const origin = await udpEchoOrigin();
  const configPath = join(dir, 'relay.yaml');
  await writeWebrtcRelayConfig(configPath, { ticketPublicKey: rawPublicKey(signingKey), sealKey }, origin.port, { webrtc: [`certFile: ${cert}`, `keyFile: ${key}`] });
  const relay = CliProcess.start(['relay', '--config', configPath]);
  let tunnel: WebRtcTunnel | undefined;
  try {
    const started = JSON.parse((await relay.waitFor(/^.*"relay started".*$/m, 'stdout', 15_000))[0]) as { addresses: { webrtc: { port: number } } };
    const url = `https://127.0.0.1:${started.addresses.webrtc.port}/webrtc`;
    const sessionId = sessionIdToHex(0x5eb0c001, 1);
    const sessionKey = randomBytes(32);
    const now = Date.now();
    const ticket = issueTicket({ sessionId, origin: 'game', issuedAtMs: now, expiresAtMs: now + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey, sealNonce: randomBytes(12) }, signingKey, sealKey);

    // Not trusted (fetch checks against the system roots): the TLS handshake fails.
    const { offer, close } = await offerer('untrusting');
    close();
    await assert.rejects(fetch(url, { method: 'POST', headers: { authorization: `Bearer ${Buffer.from(ticket).toString('base64url')}` }, body: offer }));
    // Plain HTTP to the HTTPS port gets no signaling answer.
    await assert.rejects(async () => {
      const res = await fetch(url.replace('https:', 'http:'), { method: 'POST', body: offer });
      if (res.status === 201) return;
      throw new Error(`plain HTTP answered ${res.status}`);
    });

    tunnel = await WebRtcTunnel.connect(url, { sessionId, ticket, sessionKey }, { ca: readFileSync(cert) });
    await until(() => tunnel!.isOpen, 10_000, 'the tunnel session open');
    for (let i = 0; i < 10; i++) tunnel.send(Buffer.from(`tls ${i}`));
    await until(() => new Set(tunnel!.messages.map((m) => Buffer.from(m).toString())).size === 10, 10_000, '10 echoes');
  } finally {
    tunnel?.close();
    relay.kill('SIGTERM');
    assert.equal(await relay.exited, 0);
    origin.socket.close();
  }
});
