/**
 * End-to-end: a relay embedded in a Node process (`Relay.start`) with `tunnel.webrtc` and
 * a live peer connection from a node-datachannel client releases it all on `close()`:
 * its process exits by itself, with nothing to call after (the CLI's process-wide
 * cleanup is not involved). A channel handler left registered would keep it alive.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { freePort } from './support/sockets.js';
import { until } from './support/wait.js';
import { releaseWebRtc, WebRtcTunnel } from './support/webrtc-client.js';
import { writeWebrtcRelayConfig } from './support/webrtc-relay-config.js';

/** How long the embedded relay's process may take to exit after close(), ms (it takes well under a second). */
const EXIT_MS = 10_000;

const dir = mkdtempSync(join(tmpdir(), 'slipstream-webrtc-embedded-'));
const tunnels: WebRtcTunnel[] = [];
after(() => {
  for (const t of tunnels) t.close();
  releaseWebRtc();
  rmSync(dir, { recursive: true, force: true });
});

test('an embedded relay with a live WebRTC peer connection lets its process exit after close()', { timeout: 40_000 }, async () => {
  const signingKey = ticketSigningKeyFromSeed(randomBytes(32));
  const sealKey = randomBytes(32);
  const config = join(dir, 'relay.yaml');
  // The origin is never reached: only the peer connection matters here. Metrics on a free
  // port (Relay.start, unlike the CLI, does not fall back from the default one).
  await writeWebrtcRelayConfig(config, { ticketPublicKey: rawPublicKey(signingKey), sealKey }, await freePort('udp'), { top: ['metrics: { listen: 127.0.0.1:0 }'] });
  const child = spawn(process.execPath, [join(import.meta.dirname, 'support', 'embedded-webrtc-relay.js'), config], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const lines = createInterface({ input: child.stdout });
    const iterator = lines[Symbol.asyncIterator]();
    const first = await iterator.next();
    assert.ok(!first.done, 'the embedded relay printed its signaling port');
    const { signalingPort } = JSON.parse(first.value as string) as { signalingPort: number };
    const sessionId = sessionIdToHex(0x5eb0e000, 1);
    const sessionKey = randomBytes(32);
    const now = Date.now();
    const ticket = issueTicket({ sessionId, origin: 'game', issuedAtMs: now, expiresAtMs: now + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey, sealNonce: randomBytes(12) }, signingKey, sealKey);
    const t = await WebRtcTunnel.connect(`http://127.0.0.1:${signalingPort}/webrtc`, { sessionId, ticket, sessionKey });
    tunnels.push(t);
    await until(() => t.isOpen, 10_000, 'the tunnel session open over the DataChannel');

    child.stdin.end('close\n');
    assert.equal((await iterator.next()).value, 'closed');
    const code = await Promise.race([exited, new Promise<'alive'>((resolve) => setTimeout(() => resolve('alive'), EXIT_MS).unref())]);
    assert.equal(code, 0, `the embedded relay's process ${code === 'alive' ? `was still alive ${EXIT_MS / 1000} s after relay.close()` : `exited with ${code}`}`);
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
});
