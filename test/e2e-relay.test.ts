/**
 * End-to-end: the real `slipstream relay` process on 127.0.0.1 with small Node UDP/TCP
 * origins in this process. Clients use distinct loopback source addresses
 * (127.0.0.2, 127.0.0.3, …) so that the consistent hash spreads them over origins.
 * Python helpers play what Node cannot: a TCP origin that never completes a handshake,
 * and (as root) a sender from source port 0; those tests are skipped without them.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeControl } from '../proto/src/control.js';
import { ErrorCode } from '../proto/src/errors.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader, sessionIdToHex } from '../proto/src/header.js';
import { parseProxyHeader, parseProxyV2 } from '../proto/src/proxy-protocol.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { hashString, rendezvousScore } from '../relay/src/core/addr.js';
import { buildControlPacket, buildPacket, buildPathResponse, buildProbe, openRelayClose } from '../proto/src/wire.js';
import { CLI_PATH, runCli } from './support/run-cli.js';
import { collectJsonLines } from './support/json-lines.js';
import { until } from './support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-relay-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

/** Kills a child this file started, by its pid, if it is still running. */
function stopChild(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

interface Started {
  addresses: { rules: Record<string, { address: string; port: number }[]>; tunnel?: { port: number }; metrics?: { port: number } };
}

/** A relay process we started, with its log lines. */
class RelayProcess {
  readonly lines: Record<string, unknown>[] = [];
  readonly exited: Promise<number | null>;
  private constructor(readonly child: ChildProcess) {
    collectJsonLines(child.stdout!, this.lines);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }
  static async start(yaml: string, name: string): Promise<RelayProcess & Started> {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(path, yaml);
    const child = spawn(process.execPath, [CLI_PATH, 'relay', '--config', path], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    const relay = new RelayProcess(child);
    const started = await relay.waitLog((l) => l.msg === 'relay started', 15_000);
    return Object.assign(relay, { addresses: started.addresses as Started['addresses'], configPath: path });
  }
  async waitLog(match: (line: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
    for (let waited = 0; waited < timeoutMs; waited += 20) {
      const found = this.lines.find(match);
      if (found) return found;
      if (this.child.exitCode !== null) throw new Error(`relay exited with ${this.child.exitCode}`);
      await sleep(20);
    }
    throw new Error(`no log line matched within ${timeoutMs} ms; last: ${JSON.stringify(this.lines.slice(-3))}`);
  }
  signal(name: NodeJS.Signals): void {
    this.child.kill(name);
  }
  stop(): void {
    stopChild(this.child);
  }
}

/** A UDP origin that echoes `name|payload` and records the PROXY/SPP sources it saw. */
async function udpOrigin(name: string): Promise<{ socket: dgram.Socket; port: number; received: number; sources: Set<string>; proxied: string[] }> {
  const socket = dgram.createSocket('udp4');
  const state = { socket, port: 0, received: 0, sources: new Set<string>(), proxied: [] as string[] };
  socket.on('message', (message, from) => {
    state.received++;
    state.sources.add(`${from.address}:${from.port}`);
    const parsed = parseProxyHeader(message);
    let payload = message;
    if (parsed.ok && parsed.header.source) {
      state.proxied.push(`${parsed.header.format} ${parsed.header.source.address}:${parsed.header.source.port}`);
      payload = message.subarray(parsed.header.headerBytes);
    }
    socket.send(Buffer.concat([Buffer.from(`${name}|`), payload]), from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  state.port = socket.address().port;
  return state;
}

/** A UDP client bound to a loopback address of its own. */
async function udpClient(address: string): Promise<{ socket: dgram.Socket; replies: { at: number; text: string; bytes: Buffer }[] }> {
  const socket = dgram.createSocket('udp4');
  const replies: { at: number; text: string; bytes: Buffer }[] = [];
  socket.on('message', (message) => replies.push({ at: performance.now(), text: message.toString('latin1'), bytes: message }));
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return { socket, replies };
}

/**
 * Client source addresses (127.0.0.2 upward), `perOrigin` of them for each origin, chosen
 * with the relay's own rendezvous hash (client IP × origin `host:port`). The origins listen
 * on ephemeral ports, so a fixed list of clients would all land on one origin in some runs.
 */
function clientsSpreadOver(originLabels: string[], perOrigin: number): { address: string; origin: number }[] {
  const chosen: { address: string; origin: number }[] = [];
  const taken = originLabels.map(() => 0);
  for (let i = 2; i < 255 && chosen.length < perOrigin * originLabels.length; i++) {
    const address = `127.0.0.${i}`;
    const scores = originLabels.map((label) => rendezvousScore(hashString(address), hashString(label)));
    const origin = scores.indexOf(Math.max(...scores));
    if (taken[origin]! < perOrigin) {
      taken[origin]!++;
      chosen.push({ address, origin });
    }
  }
  return chosen;
}

/** Sends a probe to the tunnel port and resolves with whether a reply came within `timeoutMs`. */
async function probeAnswered(port: number, timeoutMs = 3000): Promise<boolean> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  try {
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      socket.on('message', (m) => {
        if (m[2] === PacketType.ProbeReply) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      socket.send(buildProbe(1, 2, 3, 0), port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

/**
 * A TCP origin that never completes a handshake: a Python listener with backlog 0
 * whose queue is filled by connections it never accepts, so Linux drops further SYNs
 * (the same as a blackholed address, on loopback).
 */
async function blackholeOrigin(): Promise<{ port: number; stop: () => void }> {
  const script = [
    'import socket,sys',
    "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0)",
    'port=s.getsockname()[1]',
    'fill=[]',
    'for i in range(3):',
    '    c=socket.socket(); c.setblocking(False)',
    '    try: c.connect((\'127.0.0.1\',port))',
    '    except BlockingIOError: pass',
    '    fill.append(c)',
    'print(port,flush=True)',
    'sys.stdin.read()',
  ].join('\n');
  const child = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').once('data', (d: string) => resolve(Number(d.trim())));
    child.once('exit', (code) => reject(new Error(`blackhole helper exited ${code}`)));
  });
  // Check that it really blackholes: a connect neither completes nor fails at once.
  const probe = net.connect(port, '127.0.0.1');
  const outcome = await Promise.race([new Promise<string>((r) => probe.once('connect', () => r('connected'))), new Promise<string>((r) => probe.once('error', () => r('error'))), sleep(500).then(() => 'pending')]);
  probe.destroy();
  assert.equal(outcome, 'pending', 'the helper must blackhole SYNs on this kernel');
  return {
    port,
    stop: () => stopChild(child),
  };
}

const KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
const hasPython = spawnSync('python3', ['-c', 'import socket'], { stdio: 'ignore' }).status === 0;
const canRaw = process.getuid?.() === 0 && hasPython;

describe('slipstream relay end to end', () => {
  test('UDP L4: affinity over 1,000 datagrams per flow; a killed origin’s flows move within the health-check interval', async () => {
    const a = await udpOrigin('A');
    const b = await udpOrigin('B');
    const relay = await RelayProcess.start(
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: 127.0.0.1:0 }',
        'drain: { timeoutMs: 300 }',
        'originGroups:',
        '  game:',
        `    origins: [127.0.0.1:${a.port}, 127.0.0.1:${b.port}]`,
        '    healthCheck: { mode: udp, intervalMs: 500, timeoutMs: 200, failuresToDown: 1, successesToUp: 2 }',
        'rules:',
        '  - { name: game, protocol: udp, listen: 127.0.0.1:0, group: game }',
      ].join('\n'),
      'udp',
    );
    const port = relay.addresses.rules.game![0]!.port;
    const spread = clientsSpreadOver([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], 4);
    const clients = await Promise.all(spread.map(({ address }) => udpClient(address)));
    // 1,000 datagrams per flow, in steps of 10 per flow so that no socket buffer overflows.
    for (let i = 0; i < 1000; i += 10) {
      for (const c of clients) for (let j = i; j < i + 10; j++) c.socket.send(Buffer.from(`p${j}`), port, '127.0.0.1');
      await until(() => clients.every((c) => c.replies.length >= i + 10), 5000, 'echoes');
    }
    const originOf = clients.map((c) => {
      const names = new Set(c.replies.map((r) => r.text.split('|')[0]));
      assert.equal(names.size, 1, 'one origin per flow');
      assert.equal(c.replies.length, 1000);
      return [...names][0]!;
    });
    assert.deepEqual(originOf, spread.map(({ origin }) => ['A', 'B'][origin]), 'each flow lands on the origin its address hashes to');
    // Each flow reached its origin from one relay socket.
    assert.equal(a.sources.size + b.sources.size - 2, 8, 'eight upstream sockets (plus one health-check socket per origin)');
    // Kill A; keep every flow sending every 20 ms; flows that were on A must be answered by B within interval + timeout.
    const killedAt = performance.now();
    a.socket.close();
    const onA = clients.filter((_, i) => originOf[i] === 'A');
    const firstB = new Map<number, number>();
    const ticker = setInterval(() => clients.forEach((c) => c.socket.send('tick', port, '127.0.0.1')), 20);
    try {
      await until(() => onA.every((c) => c.replies.some((r) => r.at > killedAt && r.text.startsWith('B|'))), 10_000, 'flows to move to B');
    } finally {
      clearInterval(ticker);
    }
    for (const [i, c] of onA.entries()) firstB.set(i, c.replies.find((r) => r.at > killedAt && r.text.startsWith('B|'))!.at - killedAt);
    const worstMs = Math.max(...firstB.values());
    process.stdout.write(`# udp failover: flows on the killed origin answered by the other after ${worstMs.toFixed(0)} ms (health interval 500 ms + timeout 200 ms)\n`);
    // Behaviour, not timing: the flows moved (above). The bound only rules out moving by
    // some other, much slower path (e.g. idle expiry); the tight figure is printed.
    assert.ok(worstMs <= 5 * (500 + 200), `moved after ${worstMs.toFixed(0)} ms; expected within 5 × (health interval 500 ms + timeout 200 ms)`);
    await relay.waitLog((l) => l.event === 'origin_health' && l.healthy === false, 5000);
    // Log lines come through a pipe, after the datagrams that caused them: wait for it.
    await relay.waitLog((l) => l.event === 'session_moved', 5000);
    // Metrics and health.
    const metrics = await (await fetch(`http://127.0.0.1:${relay.addresses.metrics!.port}/metrics`)).text();
    assert.match(metrics, /slipstream_relay_packets_total\{rule="game",protocol="udp",direction="upstream"\} \d{4,}/);
    assert.match(metrics, /slipstream_relay_origin_healthy\{group="game",origin="127\.0\.0\.1:\d+"\} 0/);
    const health = await fetch(`http://127.0.0.1:${relay.addresses.metrics!.port}/health`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { udpFlows: number }).udpFlows, 8);
    // SIGTERM drains and exits 0.
    relay.signal('SIGTERM');
    for (const c of clients) c.socket.close();
    b.socket.close();
    assert.equal(await relay.exited, 0);
  });

  test('UDP PROXY v2 and SPP, TCP PROXY v2: the origin helper reads the real client address', async () => {
    const v2 = await udpOrigin('V2');
    const spp = await udpOrigin('SPP');
    const tcpSeen: string[] = [];
    const tcpOrigin = net.createServer((socket) => {
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        const parsed = parseProxyV2(buffered);
        // The header may arrive on its own: answer once the payload follows it.
        if (parsed.ok && buffered.length > parsed.header.headerBytes) {
          tcpSeen.push(`${parsed.header.source!.address}:${parsed.header.source!.port}`);
          socket.end(buffered.subarray(parsed.header.headerBytes));
        }
      });
    });
    await new Promise<void>((resolve) => tcpOrigin.listen(0, '127.0.0.1', resolve));
    const tcpPort = (tcpOrigin.address() as net.AddressInfo).port;
    const relay = await RelayProcess.start(
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: "off" }',
        'drain: { timeoutMs: 300 }',
        'rules:',
        `  - { name: v2, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:${v2.port}], proxyProtocol: v2 }`,
        `  - { name: spp, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:${spp.port}], proxyProtocol: spp }`,
        `  - { name: tcp, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${tcpPort}], proxyProtocol: v2 }`,
      ].join('\n'),
      'proxy',
    );
    const client = await udpClient('127.0.0.7');
    const clientPort = client.socket.address().port;
    client.socket.send('hello', relay.addresses.rules.v2![0]!.port, '127.0.0.1');
    client.socket.send('hello', relay.addresses.rules.spp![0]!.port, '127.0.0.1');
    await until(() => client.replies.length === 2, 3000, 'two echoes');
    assert.deepEqual(v2.proxied, [`proxy-v2 127.0.0.7:${clientPort}`]);
    assert.deepEqual(spp.proxied, [`spp 127.0.0.7:${clientPort}`]);
    assert.deepEqual(client.replies.map((r) => r.text).sort(), ['SPP|hello', 'V2|hello']);
    const socket = net.connect({ port: relay.addresses.rules.tcp![0]!.port, host: '127.0.0.1', localAddress: '127.0.0.8' });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const localPort = socket.localPort;
    const echoed = await new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('end', () => resolve(text));
      socket.write('over tcp');
    });
    assert.equal(echoed, 'over tcp');
    assert.deepEqual(tcpSeen, [`127.0.0.8:${localPort}`]);
    relay.signal('SIGTERM');
    assert.equal(await relay.exited, 0);
    client.socket.close();
    v2.socket.close();
    spp.socket.close();
    tcpOrigin.close();
  });

  test('TCP L4: a returning client keeps its origin; with that origin killed, its next connection moves', async (t) => {
    const servers = await Promise.all(
      ['A', 'B'].map(async (name) => {
        const sockets = new Set<net.Socket>();
        const server = net.createServer((socket) => {
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
          socket.on('data', (chunk: Buffer) => socket.write(Buffer.concat([Buffer.from(`${name}:`), chunk])));
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        return { name, server, sockets, port: (server.address() as net.AddressInfo).port };
      }),
    );
    t.after(() => {
      for (const { server, sockets } of servers) {
        server.close();
        for (const socket of sockets) socket.destroy();
      }
    });
    const relay = await RelayProcess.start(
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: "off" }',
        'drain: { timeoutMs: 300 }',
        'originGroups:',
        `  g: { origins: [127.0.0.1:${servers[0]!.port}, 127.0.0.1:${servers[1]!.port}], healthCheck: { mode: tcp, intervalMs: 500, timeoutMs: 200 } }`,
        'rules:',
        '  - { name: t, protocol: tcp, listen: 127.0.0.1:0, group: g }',
      ].join('\n'),
      'tcp',
    );
    const port = relay.addresses.rules.t![0]!.port;
    const ask = async (local: string, messages: number): Promise<string[]> => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: local });
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      for (let i = 0; i < messages; i++) socket.write(`m${i};`);
      await until(() => (text.match(/;/g) ?? []).length >= messages, 5000, 'tcp echoes');
      socket.destroy();
      return [...new Set([...text.matchAll(/([AB]):/g)].map((m) => m[1]!))];
    };
    const spread = clientsSpreadOver(servers.map((server) => `127.0.0.1:${server.port}`), 4);
    const origins = new Map<string, string>();
    for (const [i, { address, origin }] of spread.entries()) {
      const first = await ask(address, i < 8 ? 1000 : 10);
      assert.deepEqual(first, [servers[origin]!.name], `${address} lands on the origin its address hashes to`);
      assert.deepEqual(await ask(address, 10), first, 'a returning client lands on the same origin');
      origins.set(address, first[0]!);
    }
    assert.equal(new Set(origins.values()).size, 2, 'the clients spread over both origins');
    const victim = servers[0]!;
    victim.server.close();
    for (const s of victim.sockets) s.destroy();
    for (const [local, origin] of origins) if (origin === victim.name) assert.deepEqual(await ask(local, 5), ['B']);
    relay.signal('SIGTERM');
    assert.equal(await relay.exited, 0);
    servers[1]!.server.close();
  });

  test('a TCP origin that never answers the handshake times out and the connection fails over', { skip: hasPython ? false : 'needs python3 for a listener that never accepts' }, async () => {
    const hole = await blackholeOrigin();
    const good = net.createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => good.listen(0, '127.0.0.1', resolve));
    const goodPort = (good.address() as net.AddressInfo).port;
    const relay = await RelayProcess.start(
      ['metrics: { listen: "off" }', 'rules:', `  - { name: only-hole, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${hole.port}], connectTimeoutMs: 200 }`, `  - { name: both, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${hole.port}, 127.0.0.1:${goodPort}], connectTimeoutMs: 200 }`, `  - { name: slow, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${hole.port}], connectTimeoutMs: 60000 }`].join('\n'),
      'tcp-timeout',
    );
    try {
      // Only a blackholed origin: the client is reset after the connect timeout, not held.
      const lone = net.connect(relay.addresses.rules['only-hole']![0]!.port, '127.0.0.1');
      lone.on('error', () => undefined);
      await new Promise<void>((resolve) => lone.once('close', () => resolve()));
      await relay.waitLog((l) => l.event === 'session_end' && l.rule === 'only-hole' && l.reason === 'no origin reachable', 10_000);
      // A blackholed origin and a good one: whichever the hash tries first, the bytes reach the good one.
      for (let i = 0; i < 3; i++) {
        const client = net.connect({ port: relay.addresses.rules.both![0]!.port, host: '127.0.0.1', localAddress: `127.0.0.${2 + i}` });
        client.on('error', () => undefined);
        const echoed = await new Promise<string>((resolve) => {
          client.once('connect', () => client.write('hello'));
          client.once('data', (d) => resolve(String(d)));
        });
        assert.equal(echoed, 'hello');
        client.destroy();
      }
      // A client that leaves while the origin is still connecting frees its slot at once (60 s timeout: not the timer).
      const leaver = net.connect(relay.addresses.rules.slow![0]!.port, '127.0.0.1');
      leaver.on('error', () => undefined);
      await new Promise<void>((resolve) => leaver.once('connect', () => resolve()));
      await relay.waitLog((l) => l.event === 'session_start' && l.rule === 'slow', 10_000);
      leaver.destroy();
      const end = await relay.waitLog((l) => l.event === 'session_end' && l.rule === 'slow', 10_000);
      assert.equal(end.reason, 'client closed');
    } finally {
      relay.stop();
      hole.stop();
      good.close();
    }
  });

  test('one UDP datagram from source port 0 does not crash the relay (listener and tunnel port)', { skip: canRaw ? false : 'needs root and python3 for a raw socket' }, async () => {
    const origin = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => origin.bind(0, '127.0.0.1', resolve));
    origin.on('message', (m, r) => origin.send(m, r.port, r.address));
    const yaml = ['metrics: { listen: "off" }', 'rules:', `  - { name: g, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:${origin.address().port}] }`, 'tunnel:', '  listen: 127.0.0.1:0', `  ticketPublicKey: '${KEY}'`, `  sealKey: '${KEY}'`].join('\n');
    const relay = await RelayProcess.start(yaml, 'port0');
    try {
      const probe = Buffer.from(buildProbe(1, 2, 0, 0)).toString('base64');
      for (const [port, payload] of [[relay.addresses.rules.g![0]!.port, 'aGVsbG8='], [relay.addresses.tunnel!.port, probe]] as const) {
        const sent = spawnSync('python3', ['-c', `import socket,struct,base64\np=base64.b64decode('${payload}')\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_UDP)\ns.sendto(struct.pack('!HHHH',0,${port},8+len(p),0)+p,('127.0.0.1',${port}))`]);
        assert.equal(sent.status, 0, String(sent.stderr));
      }
      await sleep(300);
      assert.equal(relay.child.exitCode, null, 'the relay is alive');
      assert.ok(await probeAnswered(relay.addresses.tunnel!.port));
    } finally {
      relay.stop();
      origin.close();
    }
  });
});

describe('slipstream relay tunnel mode end to end', () => {
  const seed = randomBytes(32);
  const signingKey = ticketSigningKeyFromSeed(seed);
  const sealKey = randomBytes(32);
  let idCounter = 1;
  const mint = (options: { origin?: string; expiresInMs?: number; key?: typeof signingKey } = {}) => {
    const high = 0x7e000000;
    const low = idCounter++;
    const hex = sessionIdToHex(high, low);
    const key = randomBytes(32);
    const ticket = issueTicket(
      { sessionId: hex, origin: options.origin ?? 'game', issuedAtMs: Date.now(), expiresAtMs: Date.now() + (options.expiresInMs ?? 600_000), limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: key, sealNonce: randomBytes(12) },
      options.key ?? signingKey,
      sealKey,
    );
    return { high, low, hex, key, ticket };
  };
  const header = new PacketHeader();

  test('valid tickets forward both ways; expired, forged, wrong-origin and revoked ones are refused; revocation ends live sessions; a port change keeps the session', async () => {
    const origin = await udpOrigin('O');
    const revocationFile = join(dir, 'revoked.txt');
    writeFileSync(revocationFile, '# revoked session ids\n');
    const relay = await RelayProcess.start(
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: "off" }',
        'drain: { timeoutMs: 300 }',
        'tunnel:',
        '  listen: 127.0.0.1:0',
        `  ticketPublicKey: ${Buffer.from(rawPublicKey(signingKey)).toString('base64')}`,
        `  sealKey: ${sealKey.toString('base64')}`,
        `  origins: { game: 127.0.0.1:${origin.port} }`,
        `  revocationFile: ${revocationFile}`,
        '  revocationPollMs: 200',
      ].join('\n'),
      'tunnel',
    );
    const tunnelPort = relay.addresses.tunnel!.port;
    const client = await udpClient('127.0.0.11');
    const openSession = async (s: ReturnType<typeof mint>, c = client) => {
      const before = c.replies.length;
      c.socket.send(buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'] }), tunnelPort, '127.0.0.1');
      await until(() => c.replies.length > before, 3000, 'an answer to sessionOpen');
      const reply = c.replies.at(-1)!.bytes;
      const decoded = decodeControl(reply.subarray(HEADER_BYTES));
      assert.ok(decoded.ok);
      return decoded.message;
    };
    // Refusals, each with its typed reason.
    assert.equal(((await openSession(mint({ expiresInMs: -120_000 }))) as { reason: string }).reason, ErrorCode.TicketExpired);
    assert.equal(((await openSession(mint({ key: ticketSigningKeyFromSeed(randomBytes(32)) }))) as { reason: string }).reason, ErrorCode.TicketForged);
    assert.equal(((await openSession(mint({ origin: 'elsewhere' }))) as { reason: string }).reason, ErrorCode.TicketWrongOrigin);
    assert.equal(((await openSession(mint({ origin: '127.0.0.1:22' }))) as { reason: string }).reason, ErrorCode.TicketWrongOrigin, 'loopback only when configured');
    // A valid session forwards both ways.
    const s = mint();
    assert.deepEqual(await openSession(s), { type: 'sessionAccept', sessionId: s.hex, fecMode: 'off' });
    const send = (c: typeof client, seq: number, text: string) => c.socket.send(buildPacket(PacketType.Data, s.high, s.low, seq, Buffer.from(text.padEnd(40, '.'))), tunnelPort, '127.0.0.1');
    send(client, 1, 'ping');
    await until(() => client.replies.some((r) => parseHeader(r.bytes, header) === 0 && header.type === PacketType.Data), 3000, 'tunnel echo');
    const echo = client.replies.find((r) => parseHeader(r.bytes, header) === 0 && header.type === PacketType.Data)!;
    assert.match(echo.bytes.subarray(HEADER_BYTES).toString(), /^O\|ping/);
    // A spoofer that knows the session id but not the key cannot move the session.
    const spoofer = await udpClient('127.0.0.12');
    send(spoofer, 2, 'spoof');
    await until(() => spoofer.replies.length > 0, 3000, 'a challenge to the spoofer');
    spoofer.socket.send(buildPathResponse(randomBytes(32), s.high, s.low, spoofer.replies[0]!.bytes.subarray(HEADER_BYTES)), tunnelPort, '127.0.0.1');
    await sleep(100);
    const echoes = (c: typeof client) => c.replies.filter((r) => parseHeader(r.bytes, header) === 0 && header.type === PacketType.Data).length;
    const before = echoes(client);
    send(client, 3, 'still me');
    await until(() => echoes(client) > before, 3000, 'the real client is still served');
    assert.equal(echoes(spoofer), 0);
    // The real client moves to a new port: challenged, answers with the key, keeps its session.
    const moved = await udpClient('127.0.0.11');
    moved.socket.on('message', (m) => {
      if (parseHeader(m, header) === 0 && header.type === PacketType.PathChallenge) moved.socket.send(buildPathResponse(s.key, s.high, s.low, m.subarray(HEADER_BYTES)), tunnelPort, '127.0.0.1');
    });
    send(moved, 4, 'moved');
    await sleep(100);
    send(moved, 5, 'moved again');
    await until(() => echoes(moved) > 0, 3000, 'echo at the new port');
    assert.equal(origin.sources.size, 1, 'the origin saw one relay socket throughout');
    await relay.waitLog((l) => l.event === 'session_moved' && l.what === 'client', 1000);
    // Revocation through the file ends the live session within seconds, with the reason.
    const revokedAt = performance.now();
    writeFileSync(revocationFile, `${s.hex}\n`);
    await until(() => moved.replies.some((r) => parseHeader(r.bytes, header) === 0 && header.type === PacketType.Close), 5000, 'a Close after revocation');
    const closeMs = performance.now() - revokedAt;
    const close = moved.replies.find((r) => parseHeader(r.bytes, header) === 0 && header.type === PacketType.Close)!;
    // The relay's Close for a held session is MACed with the session key (reason ‖ 16-byte MAC).
    const closeReason = openRelayClose(s.key, s.high, s.low, close.bytes.subarray(HEADER_BYTES));
    assert.ok(closeReason !== undefined, 'the Close is authenticated with the session key');
    const closeBody = decodeControl(closeReason);
    assert.ok(closeBody.ok && closeBody.message.type === 'sessionReject' && closeBody.message.reason === ErrorCode.TicketRevoked);
    process.stdout.write(`# revocation via file ended the live session after ${closeMs.toFixed(0)} ms (poll 200 ms)\n`);
    assert.equal(((await openSession(s, moved)) as { reason: string }).reason, ErrorCode.TicketRevoked);
    relay.signal('SIGTERM');
    assert.equal(await relay.exited, 0);
    for (const c of [client, spoofer, moved]) c.socket.close();
    origin.socket.close();
  });
});

describe('slipstream relay with a coordinator', () => {
  test('a session issued by the coordinator opens on the relay; revoking it there ends it on the relay within seconds', async () => {
    const seed = randomBytes(32);
    const sealKey = randomBytes(32);
    const fleetSecret = randomBytes(24).toString('base64');
    const apiKey = randomBytes(24).toString('base64');
    const origin = await udpOrigin('O');
    const coordinatorPath = join(dir, 'coordinator.yaml');
    writeFileSync(
      coordinatorPath,
      ['listen: 127.0.0.1:0', 'store: memory', 'logLevel: warn', 'origins:', '  - { name: game }', 'keys:', `  ticketSigningSeed: ${seed.toString('base64')}`, `  sealKey: ${sealKey.toString('base64')}`, `  fleetSecret: ${fleetSecret}`, `  apiKeys: [${apiKey}]`].join('\n'),
    );
    const coordinator = spawn(process.execPath, [CLI_PATH, 'coordinator', '--config', coordinatorPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(coordinator);
    const url = await new Promise<string>((resolve, reject) => {
      let text = '';
      coordinator.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
        const m = /listening on (http:\/\/\S+)/.exec(text);
        if (m) resolve(m[1]!);
      });
      coordinator.once('exit', (code) => reject(new Error(`coordinator exited with ${code}: ${text}`)));
    });
    const relay = await RelayProcess.start(
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: "off" }',
        'drain: { timeoutMs: 300 }',
        'tunnel:',
        '  listen: 127.0.0.1:0',
        `  ticketPublicKey: ${Buffer.from(rawPublicKey(ticketSigningKeyFromSeed(seed))).toString('base64')}`,
        `  sealKey: ${sealKey.toString('base64')}`,
        `  origins: { game: 127.0.0.1:${origin.port} }`,
        `  coordinatorUrl: ${url}`,
        `  coordinatorFleetSecret: ${fleetSecret}`,
      ].join('\n'),
      'with-coordinator',
    );
    const backend = new CoordinatorClient({ baseUrl: url, apiKey });
    const issued = await backend.issueSession({ origin: 'game', ttlS: 600 });
    const [high, low] = [Number.parseInt(issued.sessionId.slice(0, 8), 16), Number.parseInt(issued.sessionId.slice(8), 16)];
    const client = await udpClient('127.0.0.31');
    const port = relay.addresses.tunnel!.port;
    client.socket.send(buildControlPacket(high, low, { type: 'sessionOpen', ticket: new Uint8Array(Buffer.from(issued.ticket, 'base64')), fecModes: ['off'] }), port, '127.0.0.1');
    await until(() => client.replies.length > 0, 3000, 'an answer to sessionOpen');
    const accept = decodeControl(client.replies[0]!.bytes.subarray(HEADER_BYTES));
    assert.ok(accept.ok && accept.message.type === 'sessionAccept', JSON.stringify(accept));
    const revokedAt = performance.now();
    await backend.revokeSession(issued.sessionId);
    await until(() => client.replies.some((r) => r.bytes[2] === PacketType.Close), 5000, 'a Close after the coordinator revoked the session');
    process.stdout.write(`# coordinator revocation ended the live session after ${(performance.now() - revokedAt).toFixed(0)} ms\n`);
    relay.signal('SIGTERM');
    assert.equal(await relay.exited, 0);
    coordinator.kill('SIGTERM');
    client.socket.close();
    origin.socket.close();
  });
});

describe('slipstream relay configuration and lifecycle', () => {
  test('an invalid config exits 2 naming the file, the key and the accepted range', async () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, ['rules:', '  - name: game', '    protocol: udp', '    listen: 0.0.0.0:27015', '    origins: [10.0.0.5:27015]', '    idleTimeoutMs: 5000'].join('\n'));
    const result = await runCli(['relay', '--config', path]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr.trim().split('\n').length, 1);
    assert.match(result.stderr, new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:6: rules\\[0\\]\\.idleTimeoutMs: 5000 is out of range; expected an integer from 30000 to 3600000 ms`));
    writeFileSync(path, 'rules:\n  - { name: g, protocol: sctp, listen: 0.0.0.0:1, origins: [10.0.0.5:1] }\n');
    const second = await runCli(['relay', '--config', path]);
    assert.equal(second.code, 2);
    assert.match(second.stderr, /rules\[0\]\.protocol: 'sctp' is not accepted; expected one of udp, tcp/);
    const missing = await runCli(['relay']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--config: missing/);
  });

  test('a tunnel origin on port 0 is refused by --check', async () => {
    const path = join(dir, 'origin0.yaml');
    writeFileSync(path, ['metrics: { listen: "off" }', 'tunnel:', '  listen: 127.0.0.1:0', `  ticketPublicKey: '${KEY}'`, `  sealKey: '${KEY}'`, '  origins: { game: 127.0.0.1:0 }'].join('\n'));
    const checked = await runCli(['relay', '--config', path, '--check']);
    assert.equal(checked.code, 2);
    assert.match(checked.stderr, /tunnel\.origins\.game.*port 0 is not an origin port/);
  });

  test('a revocation file that becomes a directory keeps the previous list, warns, and the relay stays up; --check rejects a directory', async () => {
    const revocationFile = join(dir, 'revoked-later');
    const yaml = ['metrics: { listen: "off" }', 'tunnel:', '  listen: 127.0.0.1:0', `  ticketPublicKey: '${KEY}'`, `  sealKey: '${KEY}'`, `  revocationFile: ${revocationFile}`, '  revocationPollMs: 50'].join('\n');
    const relay = await RelayProcess.start(yaml, 'revdir');
    try {
      mkdirSync(revocationFile);
      const warned = await relay.waitLog((l) => l.event === 'revocations' && l.err === 'ENOTFILE', 10_000);
      assert.match(String(warned.msg), /keeping the previous list/);
      // Several more polls run against the directory; the relay still answers.
      await sleep(300);
      assert.equal(relay.child.exitCode, null, 'the relay is alive');
      assert.ok(await probeAnswered(relay.addresses.tunnel!.port), 'the relay still answers probes');
    } finally {
      relay.stop();
    }
    const checked = await runCli(['relay', '--config', join(dir, 'revdir.yaml'), '--check']);
    assert.equal(checked.code, 2);
    assert.match(checked.stderr, /tunnel\.revocationFile.*not a regular file/);
  });

  test('SIGHUP reloads mappings and limits without dropping a live flow; SIGTERM drains then exits 0', async () => {
    const a = await udpOrigin('A');
    const b = await udpOrigin('B');
    const yaml = (originPort: number, sessionsMax: number) =>
      ['upstreamBindAddress: 127.0.0.1', 'metrics: { listen: 127.0.0.1:0 }', 'drain: { timeoutMs: 1500 }', `limits: { sessionsMax: ${sessionsMax} }`, 'rules:', `  - { name: game, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:${originPort}] }`].join('\n');
    const relay = (await RelayProcess.start(yaml(a.port, 100), 'reload')) as RelayProcess & Started & { configPath: string };
    const port = relay.addresses.rules.game![0]!.port;
    const live = await udpClient('127.0.0.21');
    live.socket.send('one', port, '127.0.0.1');
    await until(() => live.replies.length === 1, 3000, 'first echo');
    // Reload: the mapping now points at B and only one session is allowed.
    writeFileSync(relay.configPath, yaml(b.port, 1));
    // The listen port is 0 in the file; the reload keeps the bound socket because the rule's listen key is unchanged.
    relay.signal('SIGHUP');
    await relay.waitLog((l) => l.event === 'reloaded', 3000);
    live.socket.send('two', port, '127.0.0.1');
    await until(() => live.replies.length === 2, 3000, 'echo after reload');
    assert.equal(live.replies[1]!.text, 'B|two', 'the live flow follows the new mapping on its own socket');
    assert.equal(b.sources.size, 1);
    const fresh = await udpClient('127.0.0.22');
    fresh.socket.send('new', port, '127.0.0.1');
    await sleep(200);
    assert.equal(fresh.replies.length, 0, 'the new sessionsMax of 1 applies at once');
    // A bad file on SIGHUP is logged and ignored.
    writeFileSync(relay.configPath, 'rules: [');
    relay.signal('SIGHUP');
    await relay.waitLog((l) => l.event === 'reload_failed', 3000);
    writeFileSync(relay.configPath, yaml(b.port, 1));
    // SIGTERM: the live flow is still served while draining; the health endpoint says so; exit 0.
    relay.signal('SIGTERM');
    await relay.waitLog((l) => l.event === 'draining', 3000);
    const health = await fetch(`http://127.0.0.1:${relay.addresses.metrics!.port}/health`);
    assert.equal(health.status, 503);
    live.socket.send('three', port, '127.0.0.1');
    await until(() => live.replies.length === 3, 3000, 'echo while draining');
    assert.equal(await relay.exited, 0);
    const stopped = await relay.waitLog((l) => l.event === 'stopped', 100);
    assert.equal(stopped.sessionsCut, 1, 'the live flow was served until the drain deadline');
    for (const s of [live.socket, fresh.socket, a.socket, b.socket]) s.close();
  });
});
