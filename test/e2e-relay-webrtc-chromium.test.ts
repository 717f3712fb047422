/**
 * End-to-end, issue #15 item 1, with a real browser: headless Chromium (Debian's
 * `chromium` via playwright-core) opens an RTCPeerConnection to the real
 * `slipstream relay` process's browser entry — WHIP-shaped signaling with the ticket,
 * the relay's ICE UDP mux, DTLS, SCTP — and speaks the tunnel protocol over the
 * unreliable DataChannel: the session open is accepted and data packets echo through a
 * UDP origin. The packets are built here (the browser SDK is another item of the issue)
 * and sent by the page as they are.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from '../coordinator/scripts/browser.js';
import { HEADER_BYTES, PacketType, sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { buildControlPacket, buildPacket } from '../proto/src/wire.js';
import { CliProcess } from './support/cli-process.js';
import { udpEchoOrigin } from './support/sockets.js';
import { writeWebrtcRelayConfig } from './support/webrtc-relay-config.js';

const DATA_PACKETS = 30;
const dir = mkdtempSync(join(tmpdir(), 'slipstream-webrtc-chromium-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The page's side, plain JavaScript run in Chromium (this project's TypeScript has no DOM
 * types): signal with the ticket, open the channels, send the open and the data
 * packets (resending what has not echoed: the channel is unreliable), report.
 */
const PAGE_SCRIPT = `
  async ({ signalingUrl, bearer, open, data, headerBytes, dataType }) => {
    const t0 = Date.now();
    const marks = {};
    const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const pc = new RTCPeerConnection();
    const tunnel = pc.createDataChannel('tunnel', { ordered: false, maxRetransmits: 0 });
    tunnel.binaryType = 'arraybuffer';
    pc.createDataChannel('control');
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 3000);
    });
    marks.gathered = Date.now() - t0;
    const res = await fetch(signalingUrl, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: \`Bearer \${bearer}\` }, body: pc.localDescription.sdp });
    if (res.status !== 201) throw new Error(\`signaling answered \${res.status}: \${await res.text()}\`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    await new Promise((resolve, reject) => {
      tunnel.onopen = () => resolve();
      setTimeout(() => reject(new Error(\`the DataChannel did not open (peer connection \${pc.connectionState}, ICE \${pc.iceConnectionState})\`)), 10_000);
    });
    marks.open = Date.now() - t0;
    let firstReplyType = -1;
    const echoed = new Set();
    tunnel.onmessage = (event) => {
      const m = new Uint8Array(event.data);
      if (firstReplyType < 0) firstReplyType = m[2];
      if (m[2] === dataType && m.length >= headerBytes + 4) echoed.add(new DataView(m.buffer, m.byteOffset + headerBytes, 4).getUint32(0));
    };
    tunnel.send(bytes(open));
    const deadline = Date.now() + 10_000;
    while (firstReplyType < 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // Unreliable channel: resend whatever has not echoed yet, a few rounds at most.
    for (let round = 0; round < 5 && echoed.size < data.length; round++) {
      data.forEach((packet, seq) => echoed.has(seq) || tunnel.send(bytes(packet)));
      const until = Date.now() + 1000;
      while (echoed.size < data.length && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    }
    marks.done = Date.now() - t0;
    const state = pc.connectionState;
    pc.close();
    return { firstReplyType, echoedSequences: [...echoed].sort((a, b) => a - b), state, marks };
  }
`;

interface PageResult {
  readonly firstReplyType: number;
  readonly echoedSequences: number[];
  readonly state: string;
  readonly marks: Record<string, number>;
}

test('Chromium: RTCPeerConnection to the relay, the tunnel session opens and data echoes through the UDP origin', { timeout: 60_000 }, async () => {
  const signingKey = ticketSigningKeyFromSeed(randomBytes(32));
  const sealKey = randomBytes(32);
  const origin = await udpEchoOrigin();
  const configPath = join(dir, 'relay.yaml');
  // The page closes its peer connection without a Close: the session would hold a long drain.
  await writeWebrtcRelayConfig(configPath, { ticketPublicKey: rawPublicKey(signingKey), sealKey }, origin.port, { top: ['drain: { timeoutMs: 500 }'], webrtc: ["allowOrigins: ['*']"] });
  const relay = CliProcess.start(['relay', '--config', configPath]);
  // The page's own origin (loopback, like the relay: no private-network preflight).
  const pageServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>slipstream webrtc</title>'));
  await new Promise<void>((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
  const launched = await launchChromium();
  try {
    const started = JSON.parse((await relay.waitFor(/^.*"relay started".*$/m, 'stdout', 15_000))[0]) as { addresses: { webrtc: { port: number } } };
    const signalingUrl = `http://127.0.0.1:${started.addresses.webrtc.port}/webrtc`;
    const high = 0x5eb0c002;
    const low = 7;
    const now = Date.now();
    const ticket = issueTicket({ sessionId: sessionIdToHex(high, low), origin: 'game', issuedAtMs: now, expiresAtMs: now + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: randomBytes(32), sealNonce: randomBytes(12) }, signingKey, sealKey);
    const open = Buffer.from(buildControlPacket(high, low, { type: 'sessionOpen', ticket, fecModes: ['off'] })).toString('base64');
    const data = Array.from({ length: DATA_PACKETS }, (_, seq) => {
      const payload = Buffer.alloc(32);
      payload.writeUInt32BE(seq, 0);
      return Buffer.from(buildPacket(PacketType.Data, high, low, seq, payload)).toString('base64');
    });

    const page = await launched.context.newPage();
    await page.goto(`http://127.0.0.1:${(pageServer.address() as { port: number }).port}/`);
    const args = { signalingUrl, bearer: Buffer.from(ticket).toString('base64url'), open, data, headerBytes: HEADER_BYTES, dataType: PacketType.Data };
    const result = (await page.evaluate(`(${PAGE_SCRIPT})(${JSON.stringify(args)})`)) as PageResult;
    console.log(`chromium: ${JSON.stringify(result.marks)} (ms since the page started)`);
    assert.equal(result.state, 'connected');
    assert.equal(result.firstReplyType, PacketType.Control, 'the first reply is the relay’s control answer to the open (sessionAccept)');
    assert.deepEqual(result.echoedSequences, Array.from({ length: DATA_PACKETS }, (_, i) => i));
  } finally {
    await launched.close();
    pageServer.close();
    relay.kill('SIGTERM');
    await relay.exited;
    origin.socket.close();
  }
});
