/**
 * End-to-end, real processes on loopback (a coordinator and a relay that joins its
 * fleet): the relay under a spoofed flood. Spoofed sources are many UDP sockets bound
 * to distinct 127.x.y.z addresses (Linux routes all of 127.0.0.0/8 to loopback; no raw
 * sockets needed). Every flood is bounded in packets and in time.
 *
 * - A flood of 10,000 packets/s from 600 source addresses at an L4 UDP rule, more than
 *   the relay's whole session cap: a live 60 packets/s player loses < 1 %, a new L4
 *   player and a new tunnel session are both admitted while it lasts, the coordinator
 *   keeps the relay healthy and not full, and the flood's flows write no log line each.
 * - Forged session opens from many sources: each refusal reason logs at most one line
 *   per `logAggregateIntervalMs`, and the lines' counts add up to the metric.
 *
 * What is asserted is behaviour (who is admitted, what was lost, how many lines), with
 * generous bounded waits; the flood keeps going until the checks made during it are
 * done, up to a bound.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { PacketHeader, PacketType, parseHeader, sessionIdToHex, HEADER_BYTES } from '../proto/src/header.js';
import { issueTicket, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { buildControlPacket, buildPacket } from '../proto/src/wire.js';
import { decodeControl } from '../proto/src/control.js';
import { startFlood as startSharedFlood, type Flood, type FloodOptions } from '../bench/flooder.js';
import { CliProcess } from './support/cli-process.js';
import { collectJsonLines } from './support/json-lines.js';
import { fleetKeys, startCoordinator, type FleetKeys } from './support/local-fleet.js';
import { eventually, until } from './support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-flood-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const cleanups: (() => void)[] = [];
after(() => {
  for (const cleanup of cleanups.splice(0)) {
    try {
      cleanup();
    } catch {
      // already closed
    }
  }
});

/** What players send: the origin answers only these (a game server ignores junk). */
const PLAY = Buffer.from('PLAY');
/** Flood datagrams: 64 bytes, never answered. */
const JUNK = Buffer.alloc(64, 0x6a);
const FLOOD_PACKETS_PER_SECOND = 10_000;
/** The relay's overall cap in these tests: the flood's 600 sources are more than all of it. */
const SESSIONS_MAX = 400;
const FLOOD_SOURCES = 600;
/** Receive buffers of the relay's listen sockets, the origin and the players (the kernel caps it at net.core.rmem_max). */
const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

type Log = Record<string, unknown>;

/**
 * A UDP origin that echoes what players send and ignores everything else; `junk`
 * counts the rest, `heard` the players' sequences it got by player id (to tell loss on
 * the way in from loss on the way back). Its receive buffer is raised (up to
 * `net.core.rmem_max`): it gets the whole flood, forwarded, in the test's own process.
 */
async function gameOrigin(): Promise<{ port: number; junk: () => number; heard: Map<number, Set<number>> }> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: RECEIVE_BUFFER_BYTES });
  let junk = 0;
  const heard = new Map<number, Set<number>>();
  socket.on('message', (message, from) => {
    if (!message.subarray(0, 4).equals(PLAY)) {
      junk++;
      return;
    }
    const id = message[8]!;
    if (!heard.has(id)) heard.set(id, new Set());
    heard.get(id)!.add(message.readUInt32BE(4));
    socket.send(message, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  cleanups.push(() => socket.close());
  return { port: socket.address().port, junk: () => junk, heard };
}

/** Starts the flooder (bench/flooder.ts), SIGKILLed after the file at the latest. */
function startFlood(options: FloodOptions): Flood {
  const flood = startSharedFlood(options);
  cleanups.push(() => flood.kill());
  return flood;
}

/** A player sending `PLAY <seq>` at 60 packets/s and counting the echoes by sequence. */
class Player {
  readonly socket = dgram.createSocket({ type: 'udp4', recvBufferSize: RECEIVE_BUFFER_BYTES });
  readonly echoed = new Set<number>();
  sent = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly send: (socket: dgram.Socket, seq: number) => void, onMessage: (message: Buffer) => number | undefined) {
    this.socket.on('message', (message) => {
      const seq = onMessage(message);
      if (seq !== undefined) this.echoed.add(seq);
    });
    cleanups.push(() => this.stop());
    cleanups.push(() => this.socket.close());
  }
  async bind(address = '127.0.0.1'): Promise<void> {
    await new Promise<void>((resolve) => this.socket.bind(0, address, resolve));
  }
  start(): void {
    this.timer = setInterval(() => this.send(this.socket, this.sent++), 1000 / 60);
  }
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
  /** Sequences in [from, to) not echoed. */
  lost(from: number, to: number): number {
    let lost = 0;
    for (let seq = from; seq < to; seq++) if (!this.echoed.has(seq)) lost++;
    return lost;
  }
}

/** `PLAY`, the sequence (4 bytes), the player's id (1 byte), padding: 48 bytes. */
function playPayload(seq: number, id: number): Buffer {
  const payload = Buffer.alloc(48, 0x2e);
  PLAY.copy(payload);
  payload.writeUInt32BE(seq, 4);
  payload[8] = id;
  return payload;
}

function l4Player(port: number, id: number): Player {
  return new Player(
    (socket, seq) => socket.send(playPayload(seq, id), port, '127.0.0.1'),
    (message) => (message.subarray(0, 4).equals(PLAY) ? message.readUInt32BE(4) : undefined),
  );
}

/** CPU time (user + system) process `pid` has used, ms; NaN where /proc is not there. */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, in clock ticks (USER_HZ = 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

/** A relay process with its JSON log lines. */
async function startRelay(name: string, yaml: string): Promise<{ proc: CliProcess; lines: Log[]; addresses: { rules: Record<string, { port: number }[]>; tunnel?: { port: number }; metrics?: { port: number } } }> {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, yaml);
  const proc = CliProcess.start(['relay', '--config', path]);
  const lines: Log[] = [];
  collectJsonLines(proc.child.stdout!, lines);
  const started = await eventually(() => lines.find((l) => l.msg === 'relay started'), 15_000, `relay ${name} to start`);
  return { proc, lines, addresses: started.addresses as never };
}

function tunnelYaml(keys: FleetKeys, originPort: number): string[] {
  return [
    'tunnel:',
    '  listen: 127.0.0.1:0',
    `  ticketPublicKey: ${keys.publicKey}`,
    `  sealKey: ${keys.sealKey.toString('base64')}`,
    `  origins: { game: 127.0.0.1:${originPort} }`,
    '  fec: { modes: [off] }',
  ];
}

function mint(keys: FleetKeys, signWith = ticketSigningKeyFromSeed(keys.seed)): { high: number; low: number; ticket: Uint8Array } {
  const high = randomBytes(4).readUInt32BE(0);
  const low = randomBytes(4).readUInt32BE(0);
  const ticket = issueTicket(
    { sessionId: sessionIdToHex(high, low), origin: 'game', issuedAtMs: Date.now(), expiresAtMs: Date.now() + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: randomBytes(32), sealNonce: randomBytes(12) },
    signWith,
    keys.sealKey,
  );
  return { high, low, ticket };
}

describe('a relay under a spoofed flood (real processes)', () => {
  test('10,000 packets/s from 600 sources at an L4 rule: a live player loses < 1 %, a new L4 player and a new tunnel session are admitted, the coordinator keeps the relay', async () => {
    const keys = fleetKeys();
    const origin = await gameOrigin();
    const coordinator = await startCoordinator(dir, keys, origin.port);
    const fleet = new CoordinatorClient({ baseUrl: coordinator.url });
    const relay = await startRelay(
      'flooded',
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: 127.0.0.1:0 }',
        'drain: { timeoutMs: 200 }',
        // Room for the flood's packets while the relay catches up (capped by net.core.rmem_max).
        `socketReceiveBufferBytes: ${RECEIVE_BUFFER_BYTES}`,
        // The default split: one UDP rule and the tunnel share the cap, half each.
        `limits: { sessionsMax: ${SESSIONS_MAX} }`,
        'rules:',
        `  - { name: game, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:${origin.port}], healthCheck: { mode: none } }`,
        ...tunnelYaml(keys, origin.port),
        `  coordinatorUrl: ${coordinator.url}`,
        `  coordinatorFleetSecret: ${keys.fleetSecret}`,
        'fleet:',
        '  relayId: flooded-1',
        '  region: eu-central',
        '  latitude: 50.1',
        '  longitude: 8.7',
        '  heartbeatIntervalMs: 300',
        '  originProbe: none',
      ].join('\n'),
    );
    const rulePort = relay.addresses.rules.game![0]!.port;
    const tunnelPort = relay.addresses.tunnel!.port;
    const metricsPort = relay.addresses.metrics!.port;
    const registered = await eventually(
      async () => (await fleet.fleet()).relays.find((r) => r.relayId === 'flooded-1' && r.health === 'healthy'),
      10_000,
      'the relay registered and healthy',
    );
    assert.equal(registered.capacitySessions, SESSIONS_MAX / 2, 'capacity defaults to the tunnel budget');

    // The live player, established before the flood.
    const live = l4Player(rulePort, 1);
    await live.bind();
    live.start();
    await until(() => live.echoed.size >= 10, 5000, 'the live player echoed before the flood');

    // The flood starts once its sockets are bound; it lasts until the checks below are done (at least 3 s, at most 12 s).
    const flooder = startFlood({ port: rulePort, perSecond: FLOOD_PACKETS_PER_SECOND, minMs: 3000, maxMs: 12_000, sources: FLOOD_SOURCES, octet: 21, packets: [JUNK] });
    await flooder.started;
    const cpuBefore = cpuMs(relay.proc.child.pid!);
    const linesBefore = relay.lines.length;
    const liveFrom = live.sent;
    let newPlayer: Player | undefined;
    let tunnelAccepted = false;
    let tunnelEchoes = 0;
    const coordinatorViews: { health: string; sessions: number; capacity: number }[] = [];
    const healthViews: string[] = [];

    // Checks made while the flood runs.
    const during = (async () => {
      await sleep(1000);
      newPlayer = l4Player(rulePort, 2);
      await newPlayer.bind('127.0.0.1');
      newPlayer.start();
      const tunnel = dgram.createSocket('udp4');
      cleanups.push(() => tunnel.close());
      await new Promise<void>((resolve) => tunnel.bind(0, '127.0.0.1', resolve));
      const s = mint(keys);
      const header = new PacketHeader();
      tunnel.on('message', (message) => {
        if (parseHeader(message, header) !== 0) return;
        if (header.type === PacketType.Control) {
          const decoded = decodeControl(message.subarray(HEADER_BYTES));
          if (decoded.ok && decoded.message.type === 'sessionAccept') tunnelAccepted = true;
        }
        if (header.type === PacketType.Data) tunnelEchoes++;
      });
      const open = buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'] });
      await eventually(
        async () => {
          if (!tunnelAccepted) tunnel.send(open, tunnelPort, '127.0.0.1');
          else tunnel.send(buildPacket(PacketType.Data, s.high, s.low, tunnelEchoes + 1, playPayload(tunnelEchoes, 3)), tunnelPort, '127.0.0.1');
          return tunnelEchoes >= 3 ? true : undefined;
        },
        8000,
        'a new tunnel session opened and echoed during the flood',
      );
      await until(() => newPlayer!.echoed.size >= 10, 8000, 'the new L4 player echoed during the flood');
      for (let i = 0; i < 4; i++) {
        const view = (await fleet.fleet()).relays.find((r) => r.relayId === 'flooded-1');
        if (view !== undefined) coordinatorViews.push({ health: view.health, sessions: view.load.sessions, capacity: view.capacitySessions });
        const health = (await (await fetch(`http://127.0.0.1:${metricsPort}/health`)).json()) as { status: string };
        healthViews.push(health.status);
        await sleep(400);
      }
    })().then(
      () => undefined,
      (error: unknown) => error,
    );
    // Done or failed, the checks end the flood (a failure is thrown below).
    void during.then(() => flooder.stop());
    const result = await flooder.done;
    const floodCpuMs = cpuMs(relay.proc.child.pid!) - cpuBefore;
    const liveTo = live.sent;
    const failed = await during;
    if (failed !== undefined) throw failed;
    await sleep(1000);
    live.stop();
    newPlayer?.stop();

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const metric = (name: string): number => Number(new RegExp(`^${name.replace(/[{}.]/g, '\\$&')} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    const lost = live.lost(liveFrom, liveTo);
    let lostOnTheWayIn = 0;
    for (let seq = liveFrom; seq < liveTo; seq++) if (!origin.heard.get(1)?.has(seq)) lostOnTheWayIn++;
    const lossPercent = (100 * lost) / Math.max(1, liveTo - liveFrom);
    const floodLines = relay.lines.slice(linesBefore);
    const perEvent = (event: string): number => floodLines.filter((l) => l.event === event).length;
    process.stdout.write(
      `# flood: ${result.sent} packets in ${result.ms.toFixed(0)} ms (${((result.sent / result.ms) * 1000).toFixed(0)}/s) from ${FLOOD_SOURCES} sources; relay CPU ${floodCpuMs} ms (${((1000 * floodCpuMs) / result.sent).toFixed(1)} µs per flood packet); ` +
        `origin got ${origin.junk()} junk; flows shed ${metric('slipstream_relay_udp_flows_shed_total')}; ` +
        `live player lost ${lost} of ${liveTo - liveFrom} (${lossPercent.toFixed(2)} %; ${lostOnTheWayIn} before the origin); relay event-loop delay p99 ${metric('slipstream_relay_event_loop_delay_seconds{quantile="0.99"}')} s; new player echoed ${newPlayer?.echoed.size}; tunnel echoes ${tunnelEchoes}; ` +
        `coordinator saw ${JSON.stringify(coordinatorViews)}; log lines during the flood: ${floodLines.length} (session_start ${perEvent('session_start')}, session_end ${perEvent('session_end')}, udp_flow_unreplied ${perEvent('udp_flow_unreplied')})\n`,
    );
    assert.ok(result.sent >= 25_000, `the flood ran (${result.sent} packets)`);
    assert.ok(metric('slipstream_relay_udp_flows_shed_total') > SESSIONS_MAX, 'the flood filled the UDP budget again and again');
    assert.ok(lossPercent < 1, `the live player lost ${lossPercent.toFixed(2)} % (< 1 %)`);
    assert.ok(tunnelAccepted, 'the new tunnel session was admitted');
    assert.ok((newPlayer?.echoed.size ?? 0) >= 10, 'the new L4 player was admitted');
    assert.ok(coordinatorViews.length > 0 && coordinatorViews.every((v) => v.health === 'healthy' && v.sessions < v.capacity), `the coordinator kept the relay healthy and not full: ${JSON.stringify(coordinatorViews)}`);
    assert.ok(healthViews.every((s) => s === 'ok'), `/health said ok: ${healthViews.join(',')}`);
    // Flood flows write no line each: a few session lines (the new players) and aggregated lines.
    const seconds = Math.ceil((result.ms + 1000) / 1000);
    assert.ok(perEvent('session_start') + perEvent('session_end') <= 10, `session lines during the flood: ${perEvent('session_start') + perEvent('session_end')}`);
    assert.ok(perEvent('udp_flow_unreplied') <= 2 * (seconds / 10 + 1), `aggregated unreplied-flow lines: ${perEvent('udp_flow_unreplied')}`);
    relay.proc.kill('SIGTERM');
    assert.equal(await relay.proc.exited, 0);
    coordinator.proc.kill('SIGTERM');
    await coordinator.proc.exited;
  });

  test('forged session opens from many sources: refusal and drop logs stay under one line per second per reason', async () => {
    const keys = fleetKeys();
    const origin = await gameOrigin();
    const INTERVAL_MS = 1000;
    // Verification budgets out of the way (by default the relay answers most of this flood
    // with cookies and verifies few: test/e2e-relay-open-flood.test.ts), so that every
    // forged ticket is checked and refused: the per-datagram event whose log lines must not grow.
    const limits = 'limits: { ticketVerificationsPerSecond: 0, ticketVerificationsPerSourcePerSecond: 0 }'; // 0 = unlimited
    const relay = await startRelay('forged', ['upstreamBindAddress: 127.0.0.1', 'metrics: { listen: 127.0.0.1:0 }', 'drain: { timeoutMs: 200 }', `logAggregateIntervalMs: ${INTERVAL_MS}`, limits, ...tunnelYaml(keys, origin.port)].join('\n'));
    const tunnelPort = relay.addresses.tunnel!.port;
    const forger = ticketSigningKeyFromSeed(randomBytes(32));
    // A few forged opens reused: each costs the relay a signature check and a refusal all the same.
    const forged = Array.from({ length: 16 }, () => {
      const s = mint(keys, forger);
      return buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'] });
    });
    const linesBefore = relay.lines.length;
    const start = performance.now();
    const result = await startFlood({ port: tunnelPort, perSecond: 3000, minMs: 3000, maxMs: 3000, sources: 200, octet: 22, packets: forged }).done;
    // Every window closes within an interval of the last refusal: wait for the last summaries.
    await sleep(2 * INTERVAL_MS + 500);
    const elapsedMs = performance.now() - start;
    const metrics = await (await fetch(`http://127.0.0.1:${relay.addresses.metrics!.port}/metrics`)).text();
    const refusedMetric = Number(/^slipstream_relay_events_total\{event="session_refused",reason="SLIP_ERR_TICKET_FORGED"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    const lines = relay.lines.slice(linesBefore);
    const byReason = new Map<string, Log[]>();
    for (const line of lines) if (line.event === 'session_refused' || line.event === 'dropped') byReason.set(`${String(line.event)}/${String(line.reason)}`, [...(byReason.get(`${String(line.event)}/${String(line.reason)}`) ?? []), line]);
    const forgedLines = byReason.get('session_refused/SLIP_ERR_TICKET_FORGED') ?? [];
    const counted = forgedLines.reduce((sum, l) => sum + Number(l.count), 0);
    process.stdout.write(`# forged opens: ${result.sent} sent in ${result.ms.toFixed(0)} ms; refused ${refusedMetric}; log lines ${lines.length} in ${(elapsedMs / 1000).toFixed(1)} s: ${[...byReason].map(([k, v]) => `${k} ${v.length}`).join(', ')}\n`);
    assert.ok(refusedMetric >= 1000, `the relay refused many forged tickets (${refusedMetric})`);
    assert.equal(counted, refusedMetric, 'the aggregated lines account for every refusal');
    assert.ok(forgedLines.some((l) => typeof l.client === 'string' && typeof l.detail === 'string'), 'the lines carry a sample');
    for (const [key, reasonLines] of byReason) assert.ok(reasonLines.length <= Math.ceil(elapsedMs / 1000), `${key}: ${reasonLines.length} lines in ${(elapsedMs / 1000).toFixed(1)} s`);
    relay.proc.kill('SIGTERM');
    assert.equal(await relay.proc.exited, 0);
  });
});
