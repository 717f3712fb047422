/**
 * End-to-end, issue #14 row 2: the real `slipstream relay` process under 10,000 forged
 * session opens a second, from 250 source addresses over 127.0.0.0/8 that never echo
 * a cookie (as spoofed sources cannot: they never see one). Every open used to cost an
 * Ed25519 verification, and a live 60 packets/s session lost 23–37 %. Now, with a
 * budget of 250 verifications/s, asserted on behaviour (counts, not timing):
 * - the relay's ticket verifications (its metric) stay within the budget,
 * - a live session loses < 1 % (beyond what the same rate of unknown-session junk,
 *   flooded first in the same run as a baseline, costs it: nothing on a quiet host),
 * - a new client is asked for a cookie, echoes it, and opens, during the flood.
 * Each flood is bounded in count (40,000) and time (4 s, at most 12 s).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeControl, type ControlMessage } from '../proto/src/control.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader, sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { buildControlPacket, buildPacket } from '../proto/src/wire.js';
import { TICKET_VERIFICATIONS_BURST_MS } from '../relay/src/core/constants.js';
import { CliProcess } from './support/cli-process.js';
import { udpEchoOrigin, udpSocket } from './support/sockets.js';
import { until } from './support/wait.js';

const FLOOD_PER_SECOND = 10_000;
const FLOOD_MS = 4_000;
const FLOOD_SOURCES = 250;
const LIVE_PER_SECOND = 60;
const BUDGET_PER_SECOND = 250;

const signingKey = ticketSigningKeyFromSeed(randomBytes(32));
const sealKey = randomBytes(32);
let nextLow = 1;

function mint(key = signingKey): { high: number; low: number; ticket: Uint8Array } {
  const high = 0x7f000000;
  const low = nextLow++;
  const now = Date.now();
  const ticket = issueTicket(
    { sessionId: sessionIdToHex(high, low), origin: 'game', issuedAtMs: now, expiresAtMs: now + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: randomBytes(32), sealNonce: randomBytes(12) },
    key,
    sealKey,
  );
  return { high, low, ticket };
}

async function bound(address: string): Promise<dgram.Socket> {
  const socket = udpSocket();
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return socket;
}

/**
 * A flood source bound to `address`. Its receive buffer is the kernel's least, so the
 * cookies the relay sends back are mostly dropped unread: a spoofer never sees them,
 * and reading 10,000 a second would starve this process's live client.
 */
async function floodSource(address: string): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 });
  socket.on('message', () => {});
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return socket;
}

function control(bytes: Buffer): ControlMessage | undefined {
  const header = new PacketHeader();
  if (parseHeader(bytes, header) !== 0 || header.type !== PacketType.Control) return undefined;
  const decoded = decodeControl(bytes.subarray(HEADER_BYTES));
  return decoded.ok ? decoded.message : undefined;
}

async function counter(metricsPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line !== undefined, `metric ${name} is exported`);
  return Number(line.split(' ')[1]);
}

test('10,000 forged opens/s from 250 sources: verifications stay within the budget, a live session loses < 1 %, a new client opens through the cookie', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-open-flood-'));
  const origin = await udpEchoOrigin();
  const configPath = join(dir, 'relay.yaml');
  writeFileSync(
    configPath,
    [
      'upstreamBindAddress: 127.0.0.1',
      'metrics: { listen: 127.0.0.1:0 }',
      // As an operator under attack would: room for the flood while the relay is descheduled.
      'socketReceiveBufferBytes: 4194304',
      // A budget sized for a shared 2-core CI host (the default, 1,000/s, is for a relay with a core of its own).
      `limits: { ticketVerificationsPerSecond: ${BUDGET_PER_SECOND} }`,
      'tunnel:',
      '  listen: 127.0.0.1:0',
      `  ticketPublicKey: ${Buffer.from(rawPublicKey(signingKey)).toString('base64')}`,
      `  sealKey: ${sealKey.toString('base64')}`,
      `  origins: { game: 127.0.0.1:${origin.port} }`,
    ].join('\n'),
  );
  const relay = CliProcess.start(['relay', '--config', configPath]);
  const timers: NodeJS.Timeout[] = [];
  const floodSockets: dgram.Socket[] = [];
  try {
    const started = JSON.parse((await relay.waitFor(/^.*"relay started".*$/m, 'stdout', 15_000))[0]) as { addresses: { tunnel: { port: number }; metrics: { port: number } } };
    const tunnelPort = started.addresses.tunnel.port;
    const metricsPort = started.addresses.metrics.port;

    // The live session: opened before the flood (within the budget: no cookie), then 60 packets/s.
    const live = mint();
    const liveSocket = await bound('127.0.0.2');
    const echoed = new Set<number>();
    let accepted = false;
    liveSocket.on('message', (m) => {
      if (control(m)?.type === 'sessionAccept') accepted = true;
      else if (m.length >= HEADER_BYTES + 4 && m[2] === PacketType.Data) echoed.add(m.readUInt32BE(HEADER_BYTES));
    });
    liveSocket.send(buildControlPacket(live.high, live.low, { type: 'sessionOpen', ticket: live.ticket, fecModes: ['off'] }), tunnelPort, '127.0.0.1');
    await until(() => accepted, 5_000, 'the live session accepted');
    let liveSeq = 0;
    const liveSent: { seq: number; atMs: number }[] = [];
    timers.push(
      setInterval(() => {
        const seq = liveSeq++;
        const payload = Buffer.alloc(64);
        payload.writeUInt32BE(seq, 0);
        liveSent.push({ seq, atMs: performance.now() });
        liveSocket.send(buildPacket(PacketType.Data, live.high, live.low, seq, payload), tunnelPort, '127.0.0.1');
      }, 1000 / LIVE_PER_SECOND),
    );
    await until(() => echoed.size >= 30, 5_000, 'the live session echoing');

    floodSockets.push(...(await Promise.all(Array.from({ length: FLOOD_SOURCES }, (_, i) => floodSource(`127.77.${i >> 8}.${(i & 255) + 1}`)))));
    const floodTotal = (FLOOD_PER_SECOND * FLOOD_MS) / 1000;
    /** Sends `packet` round robin from the flood sources at FLOOD_PER_SECOND until floodTotal (or 3 × FLOOD_MS); `during` runs meanwhile. */
    const flood = async (packet: Uint8Array, during: (startMs: number) => Promise<void>): Promise<{ sent: number; startMs: number; endMs: number; lost: number; live: number }> => {
      let sent = 0;
      const startMs = performance.now();
      const done = new Promise<void>((resolve) => {
        const tick = setInterval(() => {
          const elapsedMs = performance.now() - startMs;
          const due = Math.min(floodTotal, Math.floor((elapsedMs * FLOOD_PER_SECOND) / 1000));
          for (; sent < due; sent++) floodSockets[sent % FLOOD_SOURCES]!.send(packet, tunnelPort, '127.0.0.1');
          if (sent >= floodTotal || elapsedMs > FLOOD_MS * 3) {
            clearInterval(tick);
            resolve();
          }
        }, 5);
        timers.push(tick);
      });
      await during(startMs);
      await done;
      const endMs = performance.now();
      // Echoes of the last packets sent in the flood arrive within a round trip; wait generously.
      await sleep(500);
      const inFlood = liveSent.filter((p) => p.atMs >= startMs && p.atMs <= endMs);
      return { sent, startMs, endMs, lost: inFlood.filter((p) => !echoed.has(p.seq)).length, live: inFlood.length };
    };

    // Baseline of the same run: the same rate of data for a session the relay does not hold.
    const forged = buildControlPacket(0x0badf00d, 1, { type: 'sessionOpen', ticket: mint(ticketSigningKeyFromSeed(randomBytes(32))).ticket, fecModes: ['off'] });
    const junk = buildPacket(PacketType.Data, 0x0badf00d, 1, 1, new Uint8Array(forged.length - HEADER_BYTES));
    const baseline = await flood(junk, async () => {});

    // The attack: one forged open (a ticket signed by another key) from the same sources.
    const verificationsBefore = await counter(metricsPort, 'slipstream_relay_ticket_verifications_total');
    const answers: ControlMessage[] = [];
    let freshOpenedInFlood = false;
    const attack = await flood(forged, async (startMs) => {
      // A new client, one second into the flood: asked for a cookie, it echoes it and opens.
      await sleep(1_000);
      const fresh = mint();
      const freshSocket = await bound('127.0.0.3');
      freshSocket.on('message', (m) => {
        const c = control(m);
        if (c !== undefined) answers.push(c);
      });
      let cookie: Uint8Array | undefined;
      for (let attempt = 0; attempt < 16 && !answers.some((a) => a.type === 'sessionAccept'); attempt++) {
        freshSocket.send(buildControlPacket(fresh.high, fresh.low, { type: 'sessionOpen', ticket: fresh.ticket, fecModes: ['off'], ...(cookie !== undefined ? { cookie } : {}) }), tunnelPort, '127.0.0.1');
        await sleep(250);
        const retry = [...answers].reverse().find((a) => a.type === 'sessionRetry');
        if (retry?.type === 'sessionRetry') cookie = retry.cookie;
      }
      freshOpenedInFlood = performance.now() - startMs < FLOOD_MS;
    });
    const verifications = (await counter(metricsPort, 'slipstream_relay_ticket_verifications_total')) - verificationsBefore;
    const cookieReplies = await counter(metricsPort, 'slipstream_relay_open_cookie_replies_total');

    const floodSeconds = (attack.endMs - attack.startMs) / 1000;
    const budget = BUDGET_PER_SECOND * (floodSeconds + TICKET_VERIFICATIONS_BURST_MS / 1000);
    const attackLoss = attack.lost / attack.live;
    const baselineLoss = baseline.lost / baseline.live;
    const note = `forged opens: ${attack.sent} in ${floodSeconds.toFixed(1)} s, ${verifications} verifications (budget ${budget.toFixed(0)}), ${cookieReplies} cookie replies, live ${attack.lost}/${attack.live} lost; unknown-session junk (baseline): ${baseline.sent}, live ${baseline.lost}/${baseline.live} lost`;
    console.log(note);
    assert.equal(attack.sent, floodTotal, note);
    assert.equal(baseline.sent, floodTotal, note);
    assert.ok(verifications <= budget, `verifications over the budget: ${note}`);
    assert.ok(cookieReplies > floodTotal / 2, `the flood was answered with cookies: ${note}`);
    assert.ok(attack.live > 50 && baseline.live > 50, note);
    // < 1 % lost to the forged opens: on a quiet host the baseline loses nothing and this
    // is < 1 % outright; on a host so busy that the same rate of junk costs something,
    // the opens may cost that too, but no more than 1 % beyond it.
    assert.ok(attackLoss < 0.01 + baselineLoss, `live session loss ${(attackLoss * 100).toFixed(2)} % (baseline ${(baselineLoss * 100).toFixed(2)} %): ${note}`);
    assert.ok(answers.some((a) => a.type === 'sessionRetry'), `the new client was asked for a cookie: ${JSON.stringify(answers.map((a) => a.type))}`);
    assert.ok(answers.some((a) => a.type === 'sessionAccept'), `the new client opened with its cookie: ${JSON.stringify(answers.map((a) => a.type))}`);
    assert.ok(freshOpenedInFlood, 'the new client opened while the flood ran');
  } finally {
    for (const t of timers) clearInterval(t);
    for (const s of floodSockets) s.close();
    relay.kill('SIGKILL');
    await relay.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
