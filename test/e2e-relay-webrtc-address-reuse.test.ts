/**
 * End-to-end: a client that vanished without a close (its process killed: a closed
 * tab, a lost network) leaves its peer connection on the relay until it is reaped, and
 * libdatachannel's ICE UDP mux routes every datagram from that client's address to the
 * dead peer's ICE agent. A new client that gets the same address:port (an ephemeral
 * port reused: the cause of one `slipstream bench relay` peer connection in 100–200
 * never opening its channel) must still connect: the relay closes the stale peer
 * connection (`address reused`) when an offer names that address as its own.
 * Real `slipstream relay` process; each client a node-datachannel peer connection in its
 * own process, bound to one chosen port; only processes started here are stopped, by PID.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { CliProcess } from './support/cli-process.js';
import { freePort } from './support/sockets.js';
import { writeWebrtcRelayConfig } from './support/webrtc-relay-config.js';

/** How long one client may take to open its tunnel channel, ms (loopback: milliseconds; a loaded host: a second or two). */
const OPEN_MS = 8000;

const signingKey = ticketSigningKeyFromSeed(randomBytes(32));
const sealKey = randomBytes(32);
let nextLow = 1;
let dir: string;
let relay: CliProcess;
let signalingUrl: string;
let metricsPort: number;

function mint(): string {
  const sessionId = sessionIdToHex(0x5eb0d000, nextLow++);
  const now = Date.now();
  const ticket = issueTicket({ sessionId, origin: 'game', issuedAtMs: now, expiresAtMs: now + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: randomBytes(32), sealNonce: randomBytes(12) }, signingKey, sealKey);
  return Buffer.from(ticket).toString('base64url');
}

/**
 * A client in its own process bound to 127.0.0.1:`port`: offers, signals, waits (bounded)
 * for its tunnel channel and prints `open` or `not open …`, then idles until killed
 * (SIGKILL: nothing more reaches the relay, as when a tab or a host dies).
 */
const CLIENT = `
import { PeerConnection } from 'node-datachannel';
const [url, ticket, port, openMs] = process.argv.slice(1);
const pc = new PeerConnection('c', { iceServers: [], bindAddress: '127.0.0.1', portRangeBegin: Number(port), portRangeEnd: Number(port) });
const tunnel = pc.createDataChannel('tunnel', { unordered: true, maxRetransmits: 0 });
const control = pc.createDataChannel('control');
await new Promise((r) => { pc.onGatheringStateChange((s) => s === 'complete' && r()); if (pc.gatheringState() === 'complete') r(); });
const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: 'Bearer ' + ticket }, body: pc.localDescription().sdp });
const answer = await res.text();
if (res.status !== 201) { console.log('refused ' + res.status + ' ' + answer); } else {
  pc.setRemoteDescription(answer, 'answer');
  const open = await new Promise((resolve) => { const t = setTimeout(() => resolve(false), Number(openMs)); tunnel.onOpen(() => { clearTimeout(t); resolve(true); }); if (tunnel.isOpen()) { clearTimeout(t); resolve(true); } });
  console.log(open ? 'open' : 'not open: ice ' + pc.iceState() + ', state ' + pc.state());
}
globalThis.held = [pc, tunnel, control];
setInterval(() => {}, 1000);
`;

/** Runs one client bound to `port`; resolves with its verdict once it is killed. */
function client(port: number): Promise<string> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CLIENT, signalingUrl, mint(), String(port), String(OPEN_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const limit = setTimeout(() => child.kill('SIGKILL'), OPEN_MS + 10_000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) child.kill('SIGKILL');
    });
    child.once('error', reject);
    child.once('exit', () => {
      clearTimeout(limit);
      resolve(out.trim() || 'no verdict');
    });
  });
}

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slipstream-webrtc-reuse-'));
  const configPath = join(dir, 'relay.yaml');
  // The origin is never reached: only the peer connections matter here.
  await writeWebrtcRelayConfig(configPath, { ticketPublicKey: rawPublicKey(signingKey), sealKey }, await freePort('udp'), { top: ['metrics: { listen: 127.0.0.1:0 }'] });
  relay = CliProcess.start(['relay', '--config', configPath]);
  const started = JSON.parse((await relay.waitFor(/^.*"relay started".*$/m, 'stdout', 15_000))[0]) as { addresses: { webrtc: { port: number }; metrics: { port: number } } };
  signalingUrl = `http://127.0.0.1:${started.addresses.webrtc.port}/webrtc`;
  metricsPort = started.addresses.metrics.port;
});

after(async () => {
  relay.kill('SIGKILL');
  await relay.exited;
  rmSync(dir, { recursive: true, force: true });
});

test('a client at the address of a vanished client (its peer connection still on the relay) opens its channel; the stale one is closed', { timeout: 60_000 }, async () => {
  const port = await freePort('udp');
  assert.equal(await client(port), 'open', 'the first client');
  // Killed: the relay heard no close, its peer connection (and ICE agent) for 127.0.0.1:port stays.
  assert.equal(await metric('slipstream_relay_webrtc_peer_connections'), 1);
  assert.equal(await client(port), 'open', 'a second client on the same address:port');
  assert.equal(await metric('slipstream_relay_webrtc_peer_connections_closed_total', '{reason="address reused"}'), 1);
  assert.equal(await metric('slipstream_relay_webrtc_peer_connections'), 1, 'only the new peer connection is left');
  // A client on another port displaces nothing.
  assert.equal(await client(await freePort('udp')), 'open', 'a client on another port');
  assert.equal(await metric('slipstream_relay_webrtc_peer_connections_closed_total', '{reason="address reused"}'), 1);
  assert.equal(relay.child.exitCode, null, 'the relay is still running');
});
