/**
 * End-to-end: the relay's UDP I/O modes (`udpIo`, `SLIPSTREAM_UDP_IO`) on real relay
 * processes. Each mode forwards the same traffic (IPv4 and IPv6 listeners, several
 * flows, an echo origin in this process; bursts mixing new and established flows come
 * back in order) and says once which I/O it runs (`udp_io` log
 * line, `slipstream_relay_udp_io` metric); a receive buffer the kernel caps is warned
 * about at start (`socket_buffer_capped`).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadUdpBatch, udpIoModeFromEnv } from '../kit/udp-batch.js';
import { CLI_PATH } from './support/run-cli.js';
import { JsonLogProcess } from './support/json-lines.js';
import { until } from './support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-udp-io-'));
const relays: JsonLogProcess[] = [];
const sockets: dgram.Socket[] = [];
after(() => {
  for (const r of relays) if (r.child.exitCode === null && r.child.pid !== undefined) process.kill(r.child.pid, 'SIGKILL');
  for (const s of sockets) s.close();
  rmSync(dir, { recursive: true, force: true });
});

const batchedSkip = process.platform !== 'linux' ? 'Linux only' : udpIoModeFromEnv() === 'dgram' ? 'SLIPSTREAM_UDP_IO=dgram' : 'error' in loadUdpBatch() ? 'the udp-batch addon is not built' : false;

function bound(type: 'udp4' | 'udp6', address: string, recvBufferSize?: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type, recvBufferSize });
  sockets.push(socket);
  return new Promise((resolve) => socket.bind(0, address, () => resolve(socket)));
}

/** An echo origin: answers every datagram with `echo:` and the bytes. */
async function echoOrigin(): Promise<number> {
  // Room for a burst (the kernel caps it at net.core.rmem_max).
  const origin = await bound('udp4', '127.0.0.1', 4 << 20);
  origin.on('message', (m, r) => origin.send([Buffer.from('echo:'), m], r.port, r.address));
  return origin.address().port;
}

async function startRelay(name: string, lines: string[], env: Record<string, string> = {}): Promise<{ relay: JsonLogProcess; ports: { v4: number; v6: number; metrics: number } }> {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, lines.join('\n'));
  const childEnv = { ...process.env, ...env };
  if (env.SLIPSTREAM_UDP_IO === undefined) delete childEnv.SLIPSTREAM_UDP_IO;
  const relay = new JsonLogProcess(spawn(process.execPath, [CLI_PATH, 'relay', '--config', path], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv }));
  relays.push(relay);
  const started = await relay.waitLog((l) => l.event === 'started', 15_000, 'relay started');
  const addresses = started.addresses as { rules: Record<string, { port: number }[]>; metrics: { port: number } };
  return { relay, ports: { v4: addresses.rules.v4![0]!.port, v6: addresses.rules.v6![0]!.port, metrics: addresses.metrics.port } };
}

function config(originPort: number, extra: string[]): string[] {
  return [
    'upstreamBindAddress: 127.0.0.1',
    'metrics: { listen: 127.0.0.1:0 }',
    ...extra,
    'rules:',
    `  - { name: v4, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:${originPort}] }`,
    `  - { name: v6, protocol: udp, listen: "[::1]:0", origins: [127.0.0.1:${originPort}] }`,
  ];
}

/** Three flows per listener, 50 datagrams each: every echo comes back to its own client, intact. */
async function forwardsTraffic(ports: { v4: number; v6: number }): Promise<void> {
  const clients = [...(await Promise.all([0, 1, 2].map(() => bound('udp4', '127.0.0.1')))).map((s) => ({ s, port: ports.v4, host: '127.0.0.1' })), ...(await Promise.all([0, 1, 2].map(() => bound('udp6', '::1')))).map((s) => ({ s, port: ports.v6, host: '::1' }))];
  const replies = clients.map(() => [] as string[]);
  clients.forEach((c, i) => c.s.on('message', (m) => replies[i]!.push(m.toString())));
  for (let round = 0; round < 5; round++) {
    clients.forEach((c, i) => {
      for (let j = 0; j < 10; j++) c.s.send(`c${i}-${round * 10 + j}`, c.port, c.host);
    });
    await until(() => replies.every((r) => r.length >= (round + 1) * 10), 5000, `echoes of round ${round}`);
  }
  replies.forEach((r, i) =>
    assert.deepEqual(
      [...r].sort(),
      Array.from({ length: 50 }, (_, j) => `echo:c${i}-${j}`).sort(),
    ),
  );
}

/**
 * Bursts on both listeners at once, new flows starting among established ones, sizes
 * mixed (runs of one size, shorter and longer ones between): every datagram comes back
 * to its own client intact and in the order it was sent (a batched relay reads a burst
 * as batches mixing flows and drains the core once per batch).
 */
async function burstsInOrder(ports: { v4: number; v6: number }): Promise<void> {
  const client = async (v6: boolean): Promise<{ s: dgram.Socket; port: number; host: string; sent: string[]; got: string[] }> => {
    const s = await bound(v6 ? 'udp6' : 'udp4', v6 ? '::1' : '127.0.0.1');
    const c = { s, port: v6 ? ports.v6 : ports.v4, host: v6 ? '::1' : '127.0.0.1', sent: [] as string[], got: [] as string[] };
    s.on('message', (m) => c.got.push(m.toString()));
    return c;
  };
  const established = await Promise.all([false, false, false, true, true, true].map(client));
  const late = await Promise.all([false, false, true, true].map(client));
  for (const c of established) c.s.send('hello', c.port, c.host);
  await until(() => established.every((c) => c.got.length === 1), 5000, 'the established flows answered');
  for (const c of established) c.got.length = 0;
  const send = (c: (typeof established)[number], i: number, j: number): void => {
    const size = j % 7 === 6 ? 20 : j % 11 === 10 ? 1100 : 300;
    const text = `b${i}-${j}-`.padEnd(size, 'x');
    c.sent.push(`echo:${text}`);
    c.s.send(text, c.port, c.host);
  };
  for (let j = 0; j < 40; j++) {
    established.forEach((c, i) => send(c, i, j));
    if (j >= 10) late.forEach((c, i) => send(c, 100 + i, j));
  }
  const all = [...established, ...late];
  await until(() => all.every((c) => c.got.length >= c.sent.length), 10_000, 'every echo of the burst');
  for (const c of all) assert.deepEqual(c.got, c.sent);
}

async function udpIoMetric(port: number): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('slipstream_relay_udp_io{'))
    .sort()
    .join('\n');
}

describe('relay UDP I/O modes', () => {
  test('udpIo: dgram forwards IPv4 and IPv6 flows, bursts in order, and says once that it runs dgram', async () => {
    const { relay, ports } = await startRelay('dgram', config(await echoOrigin(), ['udpIo: dgram']));
    await forwardsTraffic(ports);
    await burstsInOrder(ports);
    const said = relay.lines.filter((l) => l.event === 'udp_io');
    assert.deepEqual(
      said.map((l) => [l.mode, l.reason]),
      [['dgram', 'udpIo: dgram']],
    );
    assert.equal(await udpIoMetric(ports.metrics), 'slipstream_relay_udp_io{mode="batched"} 0\nslipstream_relay_udp_io{mode="dgram"} 1');
  });

  test('udpIo: batched forwards the same traffic on the addon, bursts in order, and says so', { skip: batchedSkip }, async () => {
    const { relay, ports } = await startRelay('batched', config(await echoOrigin(), ['udpIo: batched']));
    await forwardsTraffic(ports);
    await burstsInOrder(ports);
    assert.deepEqual(
      relay.lines.filter((l) => l.event === 'udp_io').map((l) => l.mode),
      ['batched'],
    );
    assert.equal(await udpIoMetric(ports.metrics), 'slipstream_relay_udp_io{mode="batched"} 1\nslipstream_relay_udp_io{mode="dgram"} 0');
  });

  test('SLIPSTREAM_UDP_IO=dgram overrides the file; a value outside auto|batched|dgram stops the start with a clear error', async () => {
    const origin = await echoOrigin();
    const { relay, ports } = await startRelay('forced', config(origin, ['udpIo: batched']), { SLIPSTREAM_UDP_IO: 'dgram' });
    await forwardsTraffic(ports);
    assert.deepEqual(
      relay.lines.filter((l) => l.event === 'udp_io').map((l) => [l.mode, l.reason]),
      [['dgram', 'SLIPSTREAM_UDP_IO=dgram']],
    );
    const path = join(dir, 'bogus.yaml');
    writeFileSync(path, config(origin, []).join('\n'));
    const bogus = new JsonLogProcess(spawn(process.execPath, [CLI_PATH, 'relay', '--config', path], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SLIPSTREAM_UDP_IO: 'fast' } }));
    relays.push(bogus);
    assert.notEqual((await bogus.exited).code, 0);
    assert.match(bogus.stderr, /SLIPSTREAM_UDP_IO=fast: expected one of auto, batched, dgram/);
  });

  test('a receive buffer above net.core.rmem_max is warned about at start (dgram: the kernel caps SO_RCVBUF)', { skip: process.platform !== 'linux' ? 'Linux only' : false }, async () => {
    const rmemMax = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim());
    const asked = rmemMax * 2;
    const { relay } = await startRelay('capped', config(await echoOrigin(), ['udpIo: dgram', `socketReceiveBufferBytes: ${asked}`]));
    const warning = await relay.waitLog((l) => l.event === 'socket_buffer_capped', 5000, 'socket_buffer_capped');
    assert.equal(warning.kind, 'listener');
    assert.equal(warning.requestedBytes, asked);
    assert.ok((warning.grantedBytes as number) < asked);
    assert.equal(relay.lines.filter((l) => l.event === 'socket_buffer_capped' && l.kind === 'listener').length, 1, 'once per socket kind');
  });
});
