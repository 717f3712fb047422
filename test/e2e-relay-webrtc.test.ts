/**
 * End-to-end, issue #15 item 1: the real `slipstream relay` process with
 * `tunnel.webrtc`, and node-datachannel peers on 127.0.0.1 standing in for browsers
 * (test/support/webrtc-client.ts): a valid ticket gets an SDP answer, the SDK's
 * TunnelClient opens a tunnel session over the unreliable DataChannel and its messages
 * echo through a UDP origin; a forged ticket is refused before any peer connection
 * exists (the relay's counter of created peer connections does not move); the cap
 * refuses with 503; a closed peer connection is reaped; a revoked ticket ends the
 * peer connection; a flood of signaling requests from one source is rate-limited
 * (429) within the per-source verification budget.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { CliProcess } from './support/cli-process.js';
import { freePort, udpEchoOrigin, type UdpEchoOrigin } from './support/sockets.js';
import { eventually, until } from './support/wait.js';
import { offerer, postOffer, releaseWebRtc, WebRtcTunnel } from './support/webrtc-client.js';

const PEER_CONNECTIONS_MAX = 2;
/** `tunnel.webrtc.connectTimeoutMs` here: loopback connects take milliseconds, a loaded host a second or two. */
const CONNECT_TIMEOUT_MS = 4000;
const MESSAGES = 40;
/** `limits.ticketVerificationsPerSourcePerSecond` (its default). */
const PER_SOURCE_PER_SECOND = 50;
const FLOOD_REQUESTS = 400;
const FLOOD_BATCH = 20;
const FLOOD_MS_MAX = 10_000;

const signingKey = ticketSigningKeyFromSeed(randomBytes(32));
const sealKey = randomBytes(32);
let nextLow = 1;

function mint(key = signingKey): { sessionId: string; ticket: Uint8Array; sessionKey: Uint8Array } {
  const sessionId = sessionIdToHex(0x5eb0c000, nextLow++);
  const sessionKey = randomBytes(32);
  const now = Date.now();
  const ticket = issueTicket({ sessionId, origin: 'game', issuedAtMs: now, expiresAtMs: now + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey, sealNonce: randomBytes(12) }, key, sealKey);
  return { sessionId, ticket, sessionKey };
}

let dir: string;
let origin: UdpEchoOrigin;
let relay: CliProcess;
let signalingUrl: string;
let metricsPort: number;
let revocationFile: string;
const tunnels: WebRtcTunnel[] = [];

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slipstream-webrtc-'));
  origin = await udpEchoOrigin();
  revocationFile = join(dir, 'revoked.txt');
  writeFileSync(revocationFile, '# revoked session ids\n');
  const configPath = join(dir, 'relay.yaml');
  writeFileSync(
    configPath,
    [
      'upstreamBindAddress: 127.0.0.1',
      'metrics: { listen: 127.0.0.1:0 }',
      'drain: { timeoutMs: 2000 }',
      'tunnel:',
      '  listen: 127.0.0.1:0',
      `  ticketPublicKey: ${Buffer.from(rawPublicKey(signingKey)).toString('base64')}`,
      `  sealKey: ${sealKey.toString('base64')}`,
      `  origins: { game: 127.0.0.1:${origin.port} }`,
      `  revocationFile: ${revocationFile}`,
      '  revocationPollMs: 100',
      '  webrtc:',
      '    listen: 127.0.0.1:0',
      `    udpMuxPort: ${await freePort('udp')}`,
      `    peerConnectionsMax: ${PEER_CONNECTIONS_MAX}`,
      '    idleTimeoutMs: 5000',
      `    connectTimeoutMs: ${CONNECT_TIMEOUT_MS}`,
      "    allowOrigins: ['https://game.example.com']",
    ].join('\n'),
  );
  relay = CliProcess.start(['relay', '--config', configPath]);
  const started = JSON.parse((await relay.waitFor(/^.*"relay started".*$/m, 'stdout', 15_000))[0]) as { addresses: { webrtc: { port: number }; metrics: { port: number } } };
  signalingUrl = `http://127.0.0.1:${started.addresses.webrtc.port}/webrtc`;
  metricsPort = started.addresses.metrics.port;
});

after(async () => {
  for (const t of tunnels) t.close();
  releaseWebRtc();
  relay.kill('SIGKILL');
  await relay.exited;
  rmSync(dir, { recursive: true, force: true });
});

test('a valid ticket: SDP answer, a tunnel session over the DataChannel, every message echoed through the UDP origin', { timeout: 30_000 }, async () => {
  const createdBefore = await metric('slipstream_relay_webrtc_peer_connections_created_total');
  const t = await WebRtcTunnel.connect(signalingUrl, mint());
  tunnels.push(t);
  await until(() => t.isOpen, 10_000, 'the tunnel session open over the DataChannel');
  assert.equal(await metric('slipstream_relay_webrtc_peer_connections_created_total'), createdBefore + 1);
  assert.equal(await metric('slipstream_relay_webrtc_peer_connections'), 1);
  for (let i = 0; i < MESSAGES; i++) t.send(Buffer.from(`message ${i}`));
  await until(() => new Set(t.messages.map((m) => Buffer.from(m).toString())).size === MESSAGES, 10_000, `${MESSAGES} echoes`);
  // The origin saw the relay's upstream socket, not the DataChannel.
  assert.ok([...origin.sources.values()].reduce((a, b) => a + b, 0) >= MESSAGES);
  t.close();
  // The relay hears the close (SCTP/DTLS shutdown) or reaps it idle: the gauge returns to 0.
  await eventually(async () => ((await metric('slipstream_relay_webrtc_peer_connections')) === 0 ? true : undefined), 15_000, 'the closed peer connection reaped');
});

test('a forged ticket, or none, is refused before any peer connection exists', { timeout: 20_000 }, async () => {
  const createdBefore = await metric('slipstream_relay_webrtc_peer_connections_created_total');
  const { offer, close } = await offerer('forger');
  try {
    const forged = await postOffer(signalingUrl, mint(ticketSigningKeyFromSeed(randomBytes(32))).ticket, offer);
    assert.equal(forged.status, 403, forged.body);
    assert.equal((JSON.parse(forged.body) as { code: string }).code, 'SLIP_ERR_TICKET_FORGED');
    const none = await postOffer(signalingUrl, undefined, offer);
    assert.equal(none.status, 401, none.body);
    const junk = await postOffer(signalingUrl, randomBytes(40), offer);
    assert.equal(junk.status, 403, junk.body);
  } finally {
    close();
  }
  assert.equal(await metric('slipstream_relay_webrtc_peer_connections_created_total'), createdBefore, 'no peer connection created for a refused ticket');
  assert.ok((await metric('slipstream_relay_webrtc_signaling_refused_total', '{reason="ticket"}')) >= 2);
});

test('bad signaling requests get clear errors and never hurt the relay: a reset mid-body, junk, an oversized offer, an unknown path', { timeout: 20_000 }, async () => {
  const port = Number(new URL(signalingUrl).port);
  const bearer = `Bearer ${Buffer.from(mint().ticket).toString('base64url')}`;
  // A request that breaks off mid-body.
  await new Promise<void>((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`POST /webrtc HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer}\r\nContent-Type: application/sdp\r\nContent-Length: 5000\r\n\r\nv=0\r\n`);
      setTimeout(() => {
        socket.resetAndDestroy();
        resolve();
      }, 100);
    });
    socket.on('error', () => undefined);
  });
  const junk = await postOffer(signalingUrl, mint().ticket, 'hello');
  assert.equal(junk.status, 400, junk.body);
  const big = await postOffer(signalingUrl, mint().ticket, `v=0\r\n${'a=x\r\n'.repeat(10_000)}`);
  assert.equal(big.status, 413, big.body);
  assert.equal((await fetch(signalingUrl.replace('/webrtc', '/other'), { method: 'POST', body: 'v=0' })).status, 404);
  // Still serving.
  const { offer, close } = await offerer('after-junk');
  try {
    assert.equal((await postOffer(signalingUrl, mint(ticketSigningKeyFromSeed(randomBytes(32))).ticket, offer)).status, 403);
  } finally {
    close();
  }
  assert.equal(relay.child.exitCode, null, 'the relay is still running');
});

test(`the peer-connection cap (${PEER_CONNECTIONS_MAX}) refuses the next with 503, before any peer connection`, { timeout: 30_000 }, async () => {
  await eventually(async () => ((await metric('slipstream_relay_webrtc_peer_connections')) === 0 ? true : undefined), 15_000, 'no peer connection left from earlier tests');
  const held: WebRtcTunnel[] = [];
  for (let i = 0; i < PEER_CONNECTIONS_MAX; i++) held.push(await WebRtcTunnel.connect(signalingUrl, mint()));
  tunnels.push(...held);
  const createdBefore = await metric('slipstream_relay_webrtc_peer_connections_created_total');
  const { offer, close } = await offerer('over-cap');
  try {
    const reply = await postOffer(signalingUrl, mint().ticket, offer);
    assert.equal(reply.status, 503, reply.body);
    assert.equal((JSON.parse(reply.body) as { error: string }).error, 'peer_connections_max');
  } finally {
    close();
  }
  assert.equal(await metric('slipstream_relay_webrtc_peer_connections_created_total'), createdBefore);
  for (const t of held) t.close();
  await eventually(async () => ((await metric('slipstream_relay_webrtc_peer_connections')) === 0 ? true : undefined), 15_000, 'the closed peer connections reaped');
});

test('a peer connection whose client never takes the answer is reaped after connectTimeoutMs', { timeout: 30_000 }, async () => {
  await eventually(async () => ((await metric('slipstream_relay_webrtc_peer_connections')) === 0 ? true : undefined), 15_000, 'no peer connection left from earlier tests');
  const reapedBefore = await metric('slipstream_relay_webrtc_peer_connections_closed_total', '{reason="connect timeout"}');
  const { offer, close } = await offerer('never-answers');
  try {
    const reply = await postOffer(signalingUrl, mint().ticket, offer);
    assert.equal(reply.status, 201, reply.body);
    // The answer is dropped: the relay waits for checks that never come.
    assert.equal(await metric('slipstream_relay_webrtc_peer_connections'), 1);
    await eventually(async () => ((await metric('slipstream_relay_webrtc_peer_connections')) === 0 ? true : undefined), CONNECT_TIMEOUT_MS + 10_000, 'the unconnected peer connection reaped');
    assert.equal(await metric('slipstream_relay_webrtc_peer_connections_closed_total', '{reason="connect timeout"}'), reapedBefore + 1);
  } finally {
    close();
  }
});

test('a revoked ticket ends the session and its peer connection', { timeout: 30_000 }, async () => {
  const ticket = mint();
  const t = await WebRtcTunnel.connect(signalingUrl, ticket);
  tunnels.push(t);
  await until(() => t.isOpen, 10_000, 'the tunnel session open');
  assert.equal(await metric('slipstream_relay_webrtc_peer_connections'), 1);
  appendFileSync(revocationFile, `${ticket.sessionId}\n`);
  await until(() => t.events.some((e) => e.type === 'failed' && e.code === 'SLIP_ERR_TICKET_REVOKED') || t.pc.state() === 'closed', 10_000, 'the client told, or its peer connection closed');
  await eventually(async () => ((await metric('slipstream_relay_webrtc_peer_connections')) === 0 ? true : undefined), 10_000, 'the revoked peer connection closed by the relay');
  const closedText = (await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).split('\n').filter((l) => l.startsWith('slipstream_relay_webrtc_peer_connections_closed_total'));
  assert.ok((await metric('slipstream_relay_webrtc_peer_connections_closed_total', '{reason="session ended"}')) >= 1, closedText.join('\n'));
  // And the revoked ticket cannot signal again.
  const { offer, close } = await offerer('revoked');
  try {
    const reply = await postOffer(signalingUrl, ticket.ticket, offer);
    assert.equal(reply.status, 403, reply.body);
    assert.equal((JSON.parse(reply.body) as { code: string }).code, 'SLIP_ERR_TICKET_REVOKED');
  } finally {
    close();
  }
});

test('a flood of signaling requests from one source is rate-limited: verifications stay within the per-source budget, no peer connection is created', { timeout: 30_000 }, async () => {
  const { offer, close } = await offerer('flooder');
  close();
  const forged = mint(ticketSigningKeyFromSeed(randomBytes(32))).ticket;
  const createdBefore = await metric('slipstream_relay_webrtc_peer_connections_created_total');
  const verificationsBefore = await metric('slipstream_relay_ticket_verifications_total');
  const statuses = new Map<number, number>();
  const startMs = performance.now();
  // Bounded: FLOOD_REQUESTS in batches, at most FLOOD_MS_MAX.
  for (let sent = 0; sent < FLOOD_REQUESTS && performance.now() - startMs < FLOOD_MS_MAX; sent += FLOOD_BATCH) {
    const replies = await Promise.all(Array.from({ length: FLOOD_BATCH }, () => postOffer(signalingUrl, forged, offer)));
    for (const r of replies) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
  }
  const elapsedS = (performance.now() - startMs) / 1000;
  const verifications = (await metric('slipstream_relay_ticket_verifications_total')) - verificationsBefore;
  // The per-source limiter holds one second at its rate (relay/src/core/bucket.ts).
  const budget = PER_SOURCE_PER_SECOND * (elapsedS + 1) + 2;
  const note = `statuses ${JSON.stringify([...statuses])}, ${verifications} verifications in ${elapsedS.toFixed(2)} s (per-source budget ${budget.toFixed(0)})`;
  console.log(note);
  assert.ok((statuses.get(429) ?? 0) > 0, note);
  assert.equal((statuses.get(429) ?? 0) + (statuses.get(403) ?? 0), [...statuses.values()].reduce((a, b) => a + b, 0), note);
  assert.ok(verifications <= budget, note);
  assert.equal(await metric('slipstream_relay_webrtc_peer_connections_created_total'), createdBefore, note);
});

test('CORS: a listed page origin gets its preflight answered and the header on the answer; another gets no CORS headers', { timeout: 10_000 }, async () => {
  const preflight = await fetch(signalingUrl, { method: 'OPTIONS', headers: { origin: 'https://game.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get('access-control-allow-origin'), 'https://game.example.com');
  assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /authorization/);
  const other = await fetch(signalingUrl, { method: 'OPTIONS', headers: { origin: 'https://evil.example.net', 'access-control-request-method': 'POST' } });
  assert.equal(other.headers.get('access-control-allow-origin'), null);
});

test('drain (SIGTERM): signaling answers 503 draining, the live browser session is told, the relay exits 0', { timeout: 30_000 }, async () => {
  // The flood above spent this source's verification budget: signal once it refilled (429 until then).
  const t = await eventually(
    async () => {
      try {
        return await WebRtcTunnel.connect(signalingUrl, mint());
      } catch (error) {
        if (/signaling refused: 429/.test((error as Error).message)) return undefined;
        throw error;
      }
    },
    5_000,
    'signaling admitted again after the flood',
  );
  tunnels.push(t);
  await until(() => t.isOpen, 10_000, 'the tunnel session open');
  relay.kill('SIGTERM');
  const { offer, close } = await offerer('while-draining');
  try {
    const reply = await eventually(async () => {
      const r = await postOffer(signalingUrl, mint().ticket, offer);
      return r.status === 503 ? r : undefined;
    }, 5_000, 'signaling refused while draining');
    assert.equal((JSON.parse(reply.body) as { error: string; code: string }).code, 'SLIP_ERR_RELAY_DRAINING');
  } finally {
    close();
  }
  // At the drain deadline the session ends with an authenticated Close on its DataChannel, or the peer connection closes.
  await until(() => t.events.some((e) => e.type === 'failed' || e.type === 'path') && (!t.isOpen || t.pc.state() !== 'connected'), 10_000, 'the browser session told of the drain');
  assert.equal(await relay.exited, 0);
});
