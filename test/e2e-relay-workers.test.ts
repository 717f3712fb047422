/**
 * End-to-end: a real `slipstream relay` with `workers: 2` (relay/src/workers.ts), on both
 * UDP I/Os. Both workers carry traffic (tunnel sessions owned by each, per the session
 * id; L4 flows spread by the kernel), a tunnel session whose client moves to new ports
 * keeps flowing, and /metrics and /health answer for the whole relay, SIGHUP and SIGTERM
 * reach every worker. On `dgram` a session's datagrams reach its owner by hand-offs
 * between workers; batched, the kernel's steering program (SO_ATTACH_REUSEPORT_CBPF)
 * delivers them to the owner directly, so no datagram is handed off. With a fleet
 * section the heartbeat carries every worker's sessions. Counters, not timing.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeControl } from '../proto/src/control.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader, sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { buildClientClose, buildControlPacket, buildPacket, buildPathResponse } from '../proto/src/wire.js';
import { signalIfRunning } from '../kit/child-signal.js';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { loadUdpBatch, udpIoModeFromEnv } from '../kit/udp-batch.js';
import { sessionOwner } from '../relay/src/worker-steering.js';
import { CliProcess } from './support/cli-process.js';
import { JsonLogProcess } from './support/json-lines.js';
import { fleetRelayYaml } from './support/local-fleet.js';
import { freePort } from './support/sockets.js';
import { CLI_PATH } from './support/run-cli.js';
import { eventually, until } from './support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-relay-workers-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const children = new Set<JsonLogProcess>();
after(() => {
  for (const p of children) signalIfRunning(p.child, 'SIGKILL');
});

/** A UDP socket on 127.0.0.14 that keeps what it receives. */
async function clientSocket(): Promise<{ socket: dgram.Socket; received: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (m) => received.push(m));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.14', resolve));
  return { socket, received };
}

/** `name{labels} value` lines of a Prometheus text, summed per label set. */
function metricValues(text: string, name: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'))) values.set(m[1]!, Number(m[2]));
  return values;
}

/** Why the batched runs are skipped here, or false. */
const batchedSkip = process.platform !== 'linux' ? 'Linux only' : udpIoModeFromEnv() === 'dgram' ? 'SLIPSTREAM_UDP_IO=dgram' : 'error' in loadUdpBatch() ? 'the udp-batch addon is not built' : false;

describe('relay workers', () => {
  for (const udpIo of ['dgram', 'batched'] as const) {
    const how = udpIo === 'dgram' ? 'by hand-offs between workers' : 'steered by the kernel to their owner, no hand-off';
    test(`workers: 2, udp i/o ${udpIo} — sessions owned by each worker flow, a session whose client moves to new ports keeps flowing (${how}), L4 flows spread, metrics and health cover both`, { skip: udpIo === 'batched' ? batchedSkip : false }, () => twoWorkers(udpIo));
  }

  test("with a fleet section, the heartbeat carries the load and players of every worker: a session owned by the worker thread counts at the coordinator, in the load and as a player in the status; SIGTERM drains the whole relay: the primary answers /health 503 and stays draining until the thread's session ends, then exits 0", async () => {
    const seed = randomBytes(32);
    const sealKey = randomBytes(32);
    const fleetSecret = randomBytes(24).toString('base64');
    const origin = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const originPort = (origin.address() as net.AddressInfo).port;
    const coordinatorPath = join(dir, 'coordinator.yaml');
    writeFileSync(
      coordinatorPath,
      ['listen: 127.0.0.1:0', 'store: memory', 'logLevel: warn', 'origins:', `  - { name: game, address: 127.0.0.1:${originPort} }`, 'keys:', `  ticketSigningSeed: ${seed.toString('base64')}`, `  sealKey: ${sealKey.toString('base64')}`, `  fleetSecret: ${fleetSecret}`].join('\n'),
    );
    const coordinator = CliProcess.start(['coordinator', '--config', coordinatorPath]);
    const path = join(dir, 'fleet-relay.yaml');
    const fleetKeys = ['capacitySessions: 500', 'heartbeatIntervalMs: 300'];
    let relay: CliProcess | undefined;
    const client = dgram.createSocket('udp4');
    try {
      const url = await eventually(() => /listening on (http:\/\/\S+)/.exec(coordinator.output)?.[1], 15_000, 'the coordinator to listen');
      const metricsPort = await freePort('tcp');
      // A long drain: the thread's live session must keep the whole relay draining.
      const yaml = fleetRelayYaml({ relayId: 'fra-w', latitude: 50.1, longitude: 8.7, seed, sealKeyBase64: sealKey.toString('base64'), originPort, coordinatorUrl: url, fleetSecret: { inline: fleetSecret }, fleetKeys, metricsPort }).replace('drain: { timeoutMs: 200 }', 'drain: { timeoutMs: 60000 }');
      writeFileSync(path, `${yaml}\nworkers: 2\n`);
      relay = CliProcess.start(['relay', '--config', path]);
      const started = JSON.parse((await relay.waitFor(/^.*"relay started".*$/m, 'stdout', 20_000))[0]) as { workers: number; addresses: { tunnel: { port: number } } };
      assert.equal(started.workers, 2);
      const fleet = new CoordinatorClient({ baseUrl: url });
      await eventually(async () => ((await fleet.fleet()).relays.some((r) => r.relayId === 'fra-w') ? true : undefined), 15_000, 'the relay registered');
      // Session low id 43: owned by worker 1, the thread (the primary owns even ids).
      const high = 0x7e000003;
      const low = 43;
      const signingKey = ticketSigningKeyFromSeed(seed);
      const sessionKey = randomBytes(32);
      const ticket = issueTicket(
        { sessionId: sessionIdToHex(high, low), origin: 'game', issuedAtMs: Date.now(), expiresAtMs: Date.now() + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey, sealNonce: randomBytes(12) },
        signingKey,
        sealKey,
      );
      const replies: Buffer[] = [];
      client.on('message', (m) => replies.push(m));
      await new Promise<void>((resolve) => client.bind(0, '127.0.0.15', resolve));
      client.send(buildControlPacket(high, low, { type: 'sessionOpen', ticket, fecModes: ['off'] }), started.addresses.tunnel.port, '127.0.0.1');
      await until(() => replies.length > 0, 5000, 'an answer to sessionOpen');
      const accept = decodeControl(replies[0]!.subarray(HEADER_BYTES));
      assert.ok(accept.ok && accept.message.type === 'sessionAccept', 'the session is open');
      // Game data up the session, so the worker's tally counts a player (a session without data is a warm backup).
      let seq = 1;
      const data = setInterval(() => client.send(buildPacket(PacketType.Data, high, low, seq++, Buffer.from('game')), started.addresses.tunnel.port, '127.0.0.1'), 50);
      try {
        const load = await eventually(
          async () => {
            const r = (await fleet.fleet()).relays.find((x) => x.relayId === 'fra-w');
            return r !== undefined && r.load.sessions === 1 && r.load.status?.origins.some((o) => o.origin === 'game' && o.players === 1) ? r.load : undefined;
          },
          10_000,
          "the coordinator to see the worker thread's session in the relay's heartbeat, as a player of game in its status",
        );
        assert.equal(load.sessions, 1);
        assert.deepEqual(
          load.status!.origins.map((o) => [o.origin, o.players, o.backups]),
          [['game', 1, 0]],
          "the status counts the thread's player once",
        );
      } finally {
        clearInterval(data);
      }

      // SIGTERM with the only session on the worker thread: the relay drains as a whole.
      // The primary, though it has no session, keeps answering /health (503, draining)
      // and tells the coordinator it drains until the thread's session ends; then the
      // relay exits 0 with no session cut.
      relay.kill('SIGTERM');
      await relay.waitFor(/"event":"draining"/, 'stdout', 10_000);
      await eventually(async () => ((await fleet.fleet()).relays.find((x) => x.relayId === 'fra-w')?.health === 'draining' ? true : undefined), 10_000, 'the coordinator to list the relay as draining');
      // Past the primary's own (empty) drain: it must still be there.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const health = await fetch(`http://127.0.0.1:${metricsPort}/health`);
      assert.equal(health.status, 503, 'the relay still answers /health, draining, while the thread serves its session');
      assert.equal(((await health.json()) as { tunnelSessions: number }).tunnelSessions, 1);
      client.send(buildClientClose(sessionKey, high, low), started.addresses.tunnel.port, '127.0.0.1');
      assert.equal(await relay.exited, 0, 'the relay exits 0 once the last session ended');
      assert.match(relay.stdout, /"event":"stopped"[^\n]*"sessionsCut":0/);
    } finally {
      client.close();
      await relay?.stop();
      await coordinator.stop();
      origin.close();
    }
  });
});

/**
 * The two-worker run on `udpIo` (SLIPSTREAM_UDP_IO for the relay): owners, migration over
 * 12 new ports, L4 flows, metrics and health, reload and drain; on `batched` the kernel
 * steering program is attached and no tunnel datagram is handed off, on `dgram` some are.
 */
async function twoWorkers(udpIo: 'dgram' | 'batched'): Promise<void> {
  const seed = randomBytes(32);
  const signingKey = ticketSigningKeyFromSeed(seed);
  const sealKey = randomBytes(32);
  const origin = dgram.createSocket('udp4');
  origin.on('message', (m, from) => origin.send(m, from.port, from.address));
  await new Promise<void>((resolve) => origin.bind(0, '127.0.0.1', resolve));
  const path = join(dir, `relay-${udpIo}.yaml`);
  writeFileSync(
    path,
    [
      'workers: 2',
      'upstreamBindAddress: 127.0.0.1',
      'metrics: { listen: 127.0.0.1:0 }',
      'drain: { timeoutMs: 200 }',
      'limits: { newSessionsPerSourcePerSecond: 1000 }',
      'rules:',
      `  - { name: game, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:${origin.address().port}] }`,
      'tunnel:',
      '  listen: 127.0.0.1:0',
      `  ticketPublicKey: ${Buffer.from(rawPublicKey(signingKey)).toString('base64')}`,
      `  sealKey: ${sealKey.toString('base64')}`,
      `  origins: { game: 127.0.0.1:${origin.address().port} }`,
    ].join('\n'),
  );
  const env = { ...process.env, SLIPSTREAM_UDP_IO: udpIo };
  const relay = new JsonLogProcess(spawn(process.execPath, [CLI_PATH, 'relay', '--config', path], { stdio: ['ignore', 'pipe', 'pipe'], env }));
  children.add(relay);
  const sockets: dgram.Socket[] = [];
  try {
    const started = await relay.waitLog((l) => l.msg === 'relay started', 20_000, 'relay started');
    assert.equal(started.workers, 2);
    await until(() => relay.lines.filter((l) => l.event === 'udp_io' && l.mode === udpIo).length === 2, 5000, `both workers on udp i/o ${udpIo}`);
    const steering = relay.lines.find((l) => l.event === 'worker_steering');
    assert.equal(steering?.kernel, udpIo === 'batched', `the steering program is attached on batched sockets only: ${JSON.stringify(steering)}`);
    const addresses = started.addresses as { tunnel: { port: number }; metrics: { port: number }; rules: Record<string, { port: number }[]> };
    const tunnelPort = addresses.tunnel.port;
    const header = new PacketHeader();
    const isType = (m: Buffer, type: number, low: number): boolean => parseHeader(m, header) === 0 && header.type === type && header.sessionIdLow === low;
    const high = 0x7e000002;
    // Low ids 42 and 43: owned by workers 0 and 1 (the id's low 32 bits modulo 2).
    const sessions = [42, 43].map((low) => ({ low, key: randomBytes(32) }));
    assert.deepEqual(
      sessions.map((s) => sessionOwner(buildPacket(PacketType.Data, high, s.low, 1, Buffer.alloc(8)), 2)),
      [0, 1],
    );
    const first = await clientSocket();
    sockets.push(first.socket);
    for (const s of sessions) {
      const ticket = issueTicket(
        { sessionId: sessionIdToHex(high, s.low), origin: 'game', issuedAtMs: Date.now(), expiresAtMs: Date.now() + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: s.key, sealNonce: randomBytes(12) },
        signingKey,
        sealKey,
      );
      first.socket.send(buildControlPacket(high, s.low, { type: 'sessionOpen', ticket, fecModes: ['off'] }), tunnelPort, '127.0.0.1');
      await until(() => first.received.some((m) => isType(m, PacketType.Control, s.low)), 5000, `an answer to session ${s.low}'s open`);
      const accept = decodeControl(first.received.find((m) => isType(m, PacketType.Control, s.low))!.subarray(HEADER_BYTES));
      assert.ok(accept.ok && accept.message.type === 'sessionAccept', `session ${s.low} is open`);
      first.socket.send(buildPacket(PacketType.Data, high, s.low, 1, Buffer.from('first'.padEnd(48, '.'))), tunnelPort, '127.0.0.1');
      await until(() => first.received.some((m) => isType(m, PacketType.Data, s.low)), 5000, `session ${s.low}'s echo`);
    }
    // The client moves, six times per session: each new port is hashed by the kernel to
    // either worker; the session's packets reach its owner, which validates the new
    // path and echoes there.
    let seq = 2;
    for (const s of sessions) {
      for (let move = 0; move < 6; move++) {
        const next = await clientSocket();
        sockets.push(next.socket);
        next.socket.send(buildPacket(PacketType.Data, high, s.low, seq++, Buffer.from(`moved ${move}`.padEnd(48, '.'))), tunnelPort, '127.0.0.1');
        await until(() => next.received.some((m) => isType(m, PacketType.PathChallenge, s.low)), 5000, `a path challenge for session ${s.low} at its new port (move ${move})`);
        const challenge = next.received.find((m) => isType(m, PacketType.PathChallenge, s.low))!;
        next.socket.send(buildPathResponse(s.key, high, s.low, challenge.subarray(HEADER_BYTES)), tunnelPort, '127.0.0.1');
        await until(() => relay.lines.some((l) => l.event === 'session_moved' && l.session === sessionIdToHex(high, s.low) && String(l.to).endsWith(`:${next.socket.address().port}`)), 5000, `session ${s.low} moved (move ${move})`);
        next.socket.send(buildPacket(PacketType.Data, high, s.low, seq++, Buffer.from(`after ${move}`.padEnd(48, '.'))), tunnelPort, '127.0.0.1');
        await until(() => next.received.some((m) => isType(m, PacketType.Data, s.low)), 5000, `session ${s.low}'s echo at its new port (move ${move})`);
      }
    }
    // Each session started on its owner (the thread's log lines carry `worker`).
    const startedOn = (low: number): unknown => relay.lines.find((l) => l.event === 'session_start' && l.session === sessionIdToHex(high, low))?.worker;
    assert.deepEqual([startedOn(42), startedOn(43)], [undefined, 1], 'session 42 on the primary, 43 on worker 1');
    const metricsUrl = `http://127.0.0.1:${addresses.metrics.port}/metrics`;
    const beforeL4 = metricValues(await (await fetch(metricsUrl)).text(), 'slipstream_relay_worker_packets_total');
    // L4 flows from 16 client ports: the kernel's hash spreads them over both workers.
    const gamePort = addresses.rules.game![0]!.port;
    for (let i = 0; i < 16; i++) {
      const c = await clientSocket();
      sockets.push(c.socket);
      c.socket.send(Buffer.from(`flow ${i}`), gamePort, '127.0.0.1');
      await until(() => c.received.length > 0, 5000, `L4 flow ${i}'s echo`);
    }
    const metrics = await (await fetch(metricsUrl)).text();
    const packets = metricValues(metrics, 'slipstream_relay_worker_packets_total');
    assert.ok((beforeL4.get('worker="0"') ?? 0) > 0 && (beforeL4.get('worker="1"') ?? 0) > 0, `both workers handled tunnel datagrams: ${JSON.stringify([...beforeL4])}`);
    for (const w of ['worker="0"', 'worker="1"']) assert.ok((packets.get(w) ?? 0) > (beforeL4.get(w) ?? 0), `L4 flows reached ${w}: ${JSON.stringify([...beforeL4])} → ${JSON.stringify([...packets])}`);
    assert.deepEqual([...metricValues(metrics, 'slipstream_relay_udp_io')].sort(), [['mode="batched"', udpIo === 'batched' ? 1 : 0], ['mode="dgram"', udpIo === 'dgram' ? 1 : 0]], 'the relay says which udp i/o it runs, once over both workers');
    const handoffs = metricValues(metrics, 'slipstream_relay_worker_handoffs_total');
    const out = (handoffs.get('worker="0",direction="out"') ?? 0) + (handoffs.get('worker="1",direction="out"') ?? 0);
    const handedIn = (handoffs.get('worker="0",direction="in"') ?? 0) + (handoffs.get('worker="1",direction="in"') ?? 0);
    // 26 tunnel datagrams from 13 client ports: by the 4-tuple hash alone, all reaching their owner would be a 1 in 8192 chance.
    if (udpIo === 'batched') assert.equal(out, 0, `the kernel delivered every tunnel datagram to its session's worker: ${JSON.stringify([...handoffs])}`);
    else assert.ok(out > 0, `some datagrams reached the worker that does not own their session and were handed over: ${JSON.stringify([...handoffs])}`);
    assert.equal(handedIn, out, 'every hand-off arrived');
    const tunnelSessions = metricValues(metrics, 'slipstream_relay_sessions').get('rule="tunnel",protocol="tunnel"');
    assert.equal(tunnelSessions, 2, 'the two tunnel sessions, one per worker, summed');
    const health = (await (await fetch(`http://127.0.0.1:${addresses.metrics.port}/health`)).json()) as { tunnelSessions: number; udpFlows: number };
    assert.equal(health.tunnelSessions, 2);
    assert.equal(health.udpFlows, 16);
    // SIGHUP reaches every worker: origin `game` leaves tunnel.origins, so both tunnel
    // sessions end, the one on the worker thread too.
    writeFileSync(path, readFileSync(path, 'utf8').replace(/origins: \{ game: [^}]*\}/, 'origins: { other: 127.0.0.1:9 }'));
    relay.child.kill('SIGHUP');
    await until(() => sessions.every((s) => relay.lines.some((l) => l.event === 'session_end' && l.kind === 'tunnel' && l.session === sessionIdToHex(high, s.low))), 10_000, 'both tunnel sessions ended by the reload');
    relay.child.kill('SIGTERM');
    assert.deepEqual(await relay.exited, { code: 0, signal: null });
    const stopped = relay.lines.find((l) => l.event === 'stopped');
    assert.equal(stopped?.sessionsCut, 16, "the drain counts both workers' L4 flows");
  } finally {
    signalIfRunning(relay.child, 'SIGKILL');
    for (const s of sockets) s.close();
    origin.close();
  }
}
