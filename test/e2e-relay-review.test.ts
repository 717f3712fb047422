/**
 * End-to-end regressions for relay defects a code review found, each named after its
 * defect: the real `slipstream relay` process on 127.0.0.1.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PacketType } from '../proto/src/header.js';
import { buildProbe } from '../proto/src/wire.js';
import { CLI_PATH, runCli } from './support/run-cli.js';
import { collectJsonLines } from './support/json-lines.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-relay-review-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) stopChild(child);
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
const KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

class RelayProcess {
  readonly lines: Record<string, unknown>[] = [];
  addresses: { rules: Record<string, { port: number }[]>; tunnel?: { port: number } } = { rules: {} };
  constructor(readonly child: ChildProcess) {
    collectJsonLines(child.stdout!, this.lines);
  }
  static async start(yaml: string, name: string): Promise<RelayProcess> {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(path, yaml);
    const child = spawn(process.execPath, [CLI_PATH, 'relay', '--config', path], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    const relay = new RelayProcess(child);
    const started = await relay.waitLog((l) => l.msg === 'relay started', 15_000);
    relay.addresses = started.addresses as RelayProcess['addresses'];
    return relay;
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
  stop(): void {
    stopChild(this.child);
  }
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

test('defect 2: a revocation file that becomes a directory keeps the previous list, warns, and the relay stays up; --check rejects a directory', async () => {
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

test('defect 8: a tunnel origin on port 0 is refused by --check', async () => {
  const path = join(dir, 'origin0.yaml');
  writeFileSync(path, ['metrics: { listen: "off" }', 'tunnel:', '  listen: 127.0.0.1:0', `  ticketPublicKey: '${KEY}'`, `  sealKey: '${KEY}'`, '  origins: { game: 127.0.0.1:0 }'].join('\n'));
  const checked = await runCli(['relay', '--config', path, '--check']);
  assert.equal(checked.code, 2);
  assert.match(checked.stderr, /tunnel\.origins\.game.*port 0 is not an origin port/);
});

const hasPython = spawnSync('python3', ['-c', 'import socket'], { stdio: 'ignore' }).status === 0;
const canRaw = process.getuid?.() === 0 && hasPython;

test('defect 1: one UDP datagram from source port 0 does not crash the relay (listener and tunnel port)', { skip: canRaw ? false : 'needs root and python3 for a raw socket' }, async () => {
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

test('defect 7: a TCP origin that never answers the handshake times out and the connection fails over', { skip: hasPython ? false : 'needs python3 for a listener that never accepts' }, async () => {
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
