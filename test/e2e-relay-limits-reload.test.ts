/**
 * End-to-end, real `slipstream relay` processes on 127.0.0.1: TCP byte-rate limits
 * (per connection, per rule, changed by SIGHUP on a live connection), the warning a
 * reload logs for keys that need a restart, and a reload that narrows
 * `tunnel.origins` ending the sessions it no longer allows with a typed, authenticated
 * Close. Timing assertions are lower bounds with wide margins (a limited transfer
 * cannot finish early; how late it finishes on a busy machine is not judged).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeControl } from '../proto/src/control.js';
import { ErrorCode } from '../proto/src/errors.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader, sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { buildControlPacket, buildPacket, openRelayClose } from '../proto/src/wire.js';
import { CLI_PATH } from './support/run-cli.js';
import { collectJsonLines } from './support/json-lines.js';
import { until } from './support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-relay-limits-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
/** Sockets and servers to close at the end, whatever happened. */
const cleanups: (() => void)[] = [];
after(() => {
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // already closed
    }
  }
});

type Log = Record<string, unknown>;

/** A relay process we started, with its JSON log lines. */
class RelayProcess {
  readonly lines: Log[] = [];
  readonly exited: Promise<number | null>;
  addresses: { rules: Record<string, { port: number }[]>; tunnel?: { port: number }; metrics?: { port: number } } = { rules: {} };
  private constructor(
    readonly child: ChildProcess,
    readonly configPath: string,
  ) {
    collectJsonLines(child.stdout!, this.lines);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }
  static async start(yaml: string, name: string): Promise<RelayProcess> {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(path, yaml);
    const child = spawn(process.execPath, [CLI_PATH, 'relay', '--config', path], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    const relay = new RelayProcess(child, path);
    const started = await relay.waitLog((l) => l.msg === 'relay started', 15_000);
    relay.addresses = started.addresses as RelayProcess['addresses'];
    return relay;
  }
  async waitLog(match: (line: Log) => boolean, timeoutMs: number, after = 0): Promise<Log> {
    for (let waited = 0; waited < timeoutMs; waited += 20) {
      const found = this.lines.slice(after).find(match);
      if (found) return found;
      if (this.child.exitCode !== null) throw new Error(`relay exited with ${this.child.exitCode}`);
      await sleep(20);
    }
    throw new Error(`no log line matched within ${timeoutMs} ms; last: ${JSON.stringify(this.lines.slice(-3))}`);
  }
  /** Rewrites the file, sends SIGHUP and waits for the reload's log line; returns the index of the first line it wrote. */
  async reload(yaml: string): Promise<number> {
    const mark = this.lines.length;
    writeFileSync(this.configPath, yaml);
    this.child.kill('SIGHUP');
    await this.waitLog((l) => l.event === 'reloaded' || l.event === 'reload_failed', 5000, mark);
    const failed = this.lines.slice(mark).find((l) => l.event === 'reload_failed');
    assert.equal(failed, undefined, `reload failed: ${JSON.stringify(failed)}`);
    return mark;
  }
  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    assert.equal(await this.exited, 0);
  }
}

/**
 * A TCP origin: counts what each connection sends it, by the label its first 4 bytes
 * carry; a connection whose first bytes are `GET <n>\n` is sent n bytes back instead.
 */
async function tcpOrigin(): Promise<{ port: number; received: Map<string, number> }> {
  const received = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let label = '';
    let first = true;
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      if (first) {
        first = false;
        const ask = /^GET (\d+)\n/.exec(chunk.toString('latin1', 0, Math.min(chunk.length, 32)));
        if (ask) {
          socket.end(Buffer.alloc(Number(ask[1]), 0x61));
          return;
        }
        label = chunk.toString('latin1', 0, 4);
      }
      received.set(label, (received.get(label) ?? 0) + chunk.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, received };
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  cleanups.push(() => socket.destroy());
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

/** Sends `bytes` labelled `label` (its first 4 bytes) and resolves with the ms until the origin has counted that label's `total`. */
async function upload(origin: { received: Map<string, number> }, socket: net.Socket, label: string, bytes: number, total = bytes): Promise<number> {
  const start = performance.now();
  const data = Buffer.alloc(bytes, 0x62);
  data.write(label, 'latin1');
  socket.write(data);
  await until(() => (origin.received.get(label) ?? 0) >= total, 30_000, `${total} bytes labelled ${label} at the origin`);
  assert.equal(origin.received.get(label), total, 'no byte lost or added');
  return performance.now() - start;
}

describe('relay TCP byte-rate limits (real process)', () => {
  test('connectionBytesPerSecond and bytesPerSecond slow transfers both ways; a SIGHUP applies a new limit to a live connection', async () => {
    const origin = await tcpOrigin();
    const LIMIT = 200_000;
    const yaml = (liveLimit: number): string =>
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: 127.0.0.1:0 }',
        'drain: { timeoutMs: 200 }',
        // A short burst, so that the limit shows soon (the bucket still holds at least 64 KiB).
        'limits: { burstMs: 100 }',
        'rules:',
        `  - { name: perconn, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${origin.port}], connectionBytesPerSecond: ${LIMIT} }`,
        `  - { name: perrule, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${origin.port}], bytesPerSecond: ${LIMIT} }`,
        `  - { name: live, protocol: tcp, listen: 127.0.0.1:0, origins: [127.0.0.1:${origin.port}], connectionBytesPerSecond: ${liveLimit} }`,
      ].join('\n');
    const relay = await RelayProcess.start(yaml(0), 'tcp-limits');
    const port = (rule: string): number => relay.addresses.rules[rule]![0]!.port;
    const BYTES = 600_000;
    // At 200 kB/s after a 64 KiB burst, 600 kB take ≥ 2.7 s; asserted: ≥ 1.5 s.
    const MIN_MS = 1500;

    // A live connection on the unlimited rule first moves a little, to exist before the reload.
    const live = await connect(port('live'));
    await upload(origin, live, 'LIVE', 10_000);

    // Up, per connection; down, per connection; up, two connections sharing the rule's limit — all at once.
    const up = await connect(port('perconn'));
    const down = await connect(port('perconn'));
    const shared = [await connect(port('perrule')), await connect(port('perrule'))];
    const results = await Promise.all([
      (async () => {
        const start = performance.now();
        let got = 0;
        down.on('data', (chunk: Buffer) => (got += chunk.length));
        down.write(`GET ${BYTES}\n`);
        await until(() => got >= BYTES, 30_000, 'the download');
        assert.equal(got, BYTES, 'every byte arrives');
        return performance.now() - start;
      })(),
      upload(origin, up, 'CONN', BYTES),
      // Two connections of 300 kB each through the rule's one 200 kB/s: the pair takes as long as 600 kB on one.
      Promise.all([upload(origin, shared[0]!, 'RUL1', BYTES / 2), upload(origin, shared[1]!, 'RUL2', BYTES / 2)]).then((both) => Math.max(...both)),
    ]);
    process.stdout.write(`# 600 kB through 200 kB/s limits: download per connection ${results[0]!.toFixed(0)} ms, upload per connection ${results[1]!.toFixed(0)} ms, 2 × 300 kB per rule ${results[2]!.toFixed(0)} ms\n`);
    assert.ok(results[0]! >= MIN_MS, `the download was limited (${results[0]!.toFixed(0)} ms)`);
    assert.ok(results[1]! >= MIN_MS, `the upload was limited (${results[1]!.toFixed(0)} ms)`);
    assert.ok(results[2]! >= MIN_MS, `the rule's connections shared one limit (${results[2]!.toFixed(0)} ms)`);
    const metrics = await (await fetch(`http://127.0.0.1:${relay.addresses.metrics!.port}/metrics`)).text();
    const throttled = Number(/slipstream_relay_tcp_throttled_total (\d+)/.exec(metrics)?.[1] ?? 0);
    assert.ok(throttled > 0, 'the throttle counter moved');

    // SIGHUP: the live rule gets the limit; the connection opened before it is slowed too.
    await relay.reload(yaml(LIMIT));
    const liveMs = await upload(origin, live, 'LIVE', BYTES, 10_000 + BYTES);
    process.stdout.write(`# 600 kB on a connection opened before the SIGHUP that set 200 kB/s: ${liveMs.toFixed(0)} ms\n`);
    assert.ok(liveMs >= MIN_MS, `the reloaded limit applies to the live connection (${liveMs.toFixed(0)} ms)`);
    for (const socket of [live, up, down, ...shared]) socket.destroy();
    await relay.stop();
  });

  test('a TCP byte limit on a UDP rule is refused with the file and key', async () => {
    const path = join(dir, 'udp-limit.yaml');
    writeFileSync(path, ['rules:', '  - { name: game, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:9], bytesPerSecond: 1000 }'].join('\n'));
    const child = spawn(process.execPath, [CLI_PATH, 'relay', '--config', path, '--check'], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 2);
    assert.match(stderr, /udp-limit\.yaml.*rules\[0\]\.bytesPerSecond: .*tcp rules only/s);
  });
});

describe('relay SIGHUP: restart-only keys and narrowed tunnel origins (real process)', () => {
  const signingKey = ticketSigningKeyFromSeed(randomBytes(32));
  const sealKey = randomBytes(32);
  let idCounter = 1;
  const mint = (origin: string) => {
    const high = 0x7d000000;
    const low = idCounter++;
    const hex = sessionIdToHex(high, low);
    const key = randomBytes(32);
    const ticket = issueTicket({ sessionId: hex, origin, issuedAtMs: Date.now(), expiresAtMs: Date.now() + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: key, sealNonce: randomBytes(12) }, signingKey, sealKey);
    return { high, low, hex, key, ticket };
  };
  const tunnelYaml = (options: { listen: string; metrics: string; receiveBuffer: number; origins: Record<string, number> }): string =>
    [
      'upstreamBindAddress: 127.0.0.1',
      `metrics: { listen: '${options.metrics}' }`,
      `socketReceiveBufferBytes: ${options.receiveBuffer}`,
      'drain: { timeoutMs: 200 }',
      'tunnel:',
      `  listen: ${options.listen}`,
      `  ticketPublicKey: ${Buffer.from(rawPublicKey(signingKey)).toString('base64')}`,
      `  sealKey: ${sealKey.toString('base64')}`,
      `  origins: { ${Object.entries(options.origins).map(([name, port]) => `${name}: 127.0.0.1:${port}`).join(', ')} }`,
      '  fec: { modes: [off] }',
    ].join('\n');

  async function echoOrigin(): Promise<number> {
    const socket = dgram.createSocket('udp4');
    socket.on('message', (message, from) => socket.send(message, from.port, from.address));
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    cleanups.push(() => socket.close());
    return socket.address().port;
  }

  async function tunnelClient(): Promise<{ socket: dgram.Socket; replies: Buffer[] }> {
    const socket = dgram.createSocket('udp4');
    const replies: Buffer[] = [];
    socket.on('message', (message) => replies.push(message));
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    cleanups.push(() => socket.close());
    return { socket, replies };
  }

  test('a reload names every changed key that needs a restart, keeps serving on the running sockets, and says so again until restarted', async () => {
    const origin = await echoOrigin();
    const start = { listen: '127.0.0.1:0', metrics: '127.0.0.1:0', receiveBuffer: 0, origins: { game: origin } };
    const relay = await RelayProcess.start(tunnelYaml(start), 'restart-keys');
    const metricsPort = relay.addresses.metrics!.port;
    // A reload that changes nothing restart-only warns about nothing.
    let mark = await relay.reload(tunnelYaml(start));
    assert.equal(relay.lines.slice(mark).find((l) => l.event === 'reload_needs_restart'), undefined);
    assert.deepEqual(relay.lines.slice(mark).find((l) => l.event === 'reloaded')!.needsRestart, []);
    // Move the tunnel and the metrics endpoint, and change the socket buffers.
    const moved = { ...start, listen: '127.0.0.2:0', metrics: '127.0.0.2:0', receiveBuffer: 1_048_576 };
    mark = await relay.reload(tunnelYaml(moved));
    const warning = await relay.waitLog((l) => l.event === 'reload_needs_restart', 2000, mark);
    assert.equal(warning.level, 40, 'logged as a warning');
    assert.deepEqual([...(warning.keys as string[])].sort(), ['metrics.listen', 'socketReceiveBufferBytes', 'tunnel.listen']);
    assert.match(String(warning.msg), /tunnel\.listen \(running 127\.0\.0\.1:0, file 127\.0\.0\.2:0\)/);
    assert.match(String(warning.msg), /restart the relay/);
    // Still served where it was bound.
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/health`)).status, 200);
    const s = mint('game');
    const client = await tunnelClient();
    client.socket.send(buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'] }), relay.addresses.tunnel!.port, '127.0.0.1');
    await until(() => client.replies.length > 0, 3000, 'sessionAccept on the running tunnel port');
    // The next reload of the same file warns again: the running values still differ from the file.
    mark = await relay.reload(tunnelYaml(moved));
    const again = await relay.waitLog((l) => l.event === 'reload_needs_restart', 2000, mark);
    assert.equal((again.keys as string[]).length, 3);
    await relay.stop();
  });

  test('a reload that narrows tunnel.origins ends the sessions it no longer allows with SLIP_ERR_TICKET_WRONG_ORIGIN; others keep forwarding', async () => {
    const a = await echoOrigin();
    const b = await echoOrigin();
    const options = { listen: '127.0.0.1:0', metrics: 'off', receiveBuffer: 0 };
    const relay = await RelayProcess.start(tunnelYaml({ ...options, origins: { alpha: a, beta: b } }), 'narrow');
    const tunnelPort = relay.addresses.tunnel!.port;
    const header = new PacketHeader();
    const sessions = [mint('alpha'), mint('beta')];
    const clients = [await tunnelClient(), await tunnelClient()];
    const dataReplies = (i: number): number => clients[i]!.replies.filter((r) => parseHeader(r, header) === 0 && header.type === PacketType.Data).length;
    const ping = (i: number, seq: number): void => {
      const s = sessions[i]!;
      clients[i]!.socket.send(buildPacket(PacketType.Data, s.high, s.low, seq, Buffer.from(`ping ${seq}`.padEnd(40, '.'))), tunnelPort, '127.0.0.1');
    };
    for (let i = 0; i < 2; i++) {
      const s = sessions[i]!;
      clients[i]!.socket.send(buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'] }), tunnelPort, '127.0.0.1');
      await until(() => clients[i]!.replies.length > 0, 3000, `session ${i} accepted`);
      ping(i, 1);
      await until(() => dataReplies(i) === 1, 3000, `echo on session ${i}`);
    }
    // alpha leaves the list: its session ends now, with the reason, authenticated with its key.
    const mark = await relay.reload(tunnelYaml({ ...options, origins: { beta: b } }));
    const isClose = (r: Buffer): boolean => parseHeader(r, header) === 0 && header.type === PacketType.Close;
    await until(() => clients[0]!.replies.some(isClose), 3000, 'a Close for the session whose origin was removed');
    const close = clients[0]!.replies.find(isClose)!;
    const body = openRelayClose(sessions[0]!.key, sessions[0]!.high, sessions[0]!.low, close.subarray(HEADER_BYTES));
    assert.ok(body !== undefined, 'the Close is MACed with the session key');
    const decoded = decodeControl(body);
    assert.ok(decoded.ok && decoded.message.type === 'sessionReject');
    assert.equal(decoded.message.reason, ErrorCode.TicketWrongOrigin);
    const ended = await relay.waitLog((l) => l.event === 'session_end' && l.session === sessions[0]!.hex, 2000, mark);
    assert.match(String(ended.reason), /no longer served/);
    // beta's session is untouched and still forwards; alpha's data is now for an unknown session.
    assert.equal(clients[1]!.replies.some(isClose), false);
    ping(1, 2);
    await until(() => dataReplies(1) === 2, 3000, 'echo on the session that is still allowed');
    // beta now points elsewhere: a session to the old address is no longer what the config allows.
    const c = await echoOrigin();
    await relay.reload(tunnelYaml({ ...options, origins: { beta: c } }));
    await until(() => clients[1]!.replies.some(isClose), 3000, 'a Close for the session whose origin moved');
    await relay.stop();
  });
});
