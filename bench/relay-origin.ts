/**
 * The origin of `slipstream bench relay`, in its own process (so that neither the bench
 * parent, which reads /proc and runs the rounds, nor the load generator shares its event
 * loop). Benchmark-only code.
 *
 * - UDP (127.0.0.1, port 0, 8 MiB receive buffer): counts datagrams, echoes them when
 *   echo is on (latency rows), answers the relay's health check (`HC`, not counted).
 *   With the udp-batch addon (`batched`) it reads with `recvmmsg` (64 a call) and
 *   answers with one `sendmmsg` per batch: ~0.3 µs of its CPU per datagram instead of
 *   `dgram`'s ~3 µs, so the origin is never what limits a forwarder's packets/s.
 *   Without the addon (or with `dgram` asked) it runs on `dgram` as before.
 * - TCP sink (127.0.0.1, port 0): counts bytes read, and the times of the first and
 *   last byte since the last `tcpReset` (its throughput is measured where it lands).
 *
 * Usage: node dist/bench/relay-origin.js <auto|batched|dgram>; prints
 * `ready {"udpPort","tcpPort","udp":"batched"|"dgram","reason"}` once bound, then
 * answers each stdin line `<seq> <command>` with a stdout line `<seq> <json>`:
 * `echo on` / `echo off` → `{}`; `tcpReset` → `{}`; `counts` → {@link OriginCounts}.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { loadUdpBatch, UdpBatch } from '../kit/udp-batch.js';

/** What the relay's UDP health checks send; the origin answers it and does not count it. */
export const HEALTH_PAYLOAD = Buffer.from('HC');
/** The origin's UDP receive buffer, bytes: a stall of a few ms at line rate must not overflow it. */
const RECEIVE_BUFFER_BYTES = 8 << 20;

/** The origin's counters (`counts`): datagrams, TCP bytes and their first/last arrival since `tcpReset` (ms, this process's clock), its own CPU so far (µs). */
export interface OriginCounts {
  readonly received: number;
  readonly tcpBytes: number;
  readonly tcpFirstMs: number;
  readonly tcpLastMs: number;
  readonly cpuUs: number;
}

/** What the origin runs its UDP on, and why. */
export interface OriginReady {
  readonly udpPort: number;
  readonly tcpPort: number;
  readonly udp: 'batched' | 'dgram';
  readonly reason: string;
}

/** This file, for spawning it (bench/ is compiled only through imports). */
export const ORIGIN_SCRIPT = fileURLToPath(import.meta.url);

function isHealthCheck(bytes: Uint8Array): boolean {
  return bytes.length === 2 && bytes[0] === HEALTH_PAYLOAD[0] && bytes[1] === HEALTH_PAYLOAD[1];
}

async function main(mode: string): Promise<void> {
  let received = 0;
  let echo = false;
  let tcpBytes = 0;
  let tcpFirstMs = 0;
  let tcpLastMs = 0;
  let udpPort: number;
  let tool: OriginReady['udp'];
  let reason: string;
  const loaded = mode === 'dgram' ? { error: 'dgram asked for' } : loadUdpBatch();
  if ('addon' in loaded) {
    const batch: UdpBatch = new UdpBatch(
      loaded.addon,
      (socketId, from, bytes) => {
        if (isHealthCheck(bytes)) return void batch.queue(socketId, from.address, from.port, undefined, bytes);
        received++;
        if (echo) batch.queue(socketId, from.address, from.port, undefined, bytes);
      },
      () => batch.commit(),
    );
    udpPort = batch.open('127.0.0.1', 0, { receiveBufferBytes: RECEIVE_BUFFER_BYTES, sendBufferBytes: RECEIVE_BUFFER_BYTES }).port;
    tool = 'batched';
    reason = 'udp-batch addon (recvmmsg/sendmmsg)';
  } else {
    if (mode === 'batched') throw new Error(`the udp-batch addon cannot load: ${loaded.error}`);
    const udp = dgram.createSocket({ type: 'udp4', recvBufferSize: RECEIVE_BUFFER_BYTES });
    udp.on('message', (message, from) => {
      if (isHealthCheck(message)) return void udp.send(message, from.port, from.address);
      received++;
      if (echo) udp.send(message, from.port, from.address);
    });
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    udpPort = udp.address().port;
    tool = 'dgram';
    reason = loaded.error;
  }
  const tcp = net.createServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      const now = performance.now();
      if (tcpBytes === 0) tcpFirstMs = now;
      tcpLastMs = now;
      tcpBytes += chunk.length;
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  const ready: OriginReady = { udpPort, tcpPort: (tcp.address() as net.AddressInfo).port, udp: tool, reason };
  process.stdout.write(`ready ${JSON.stringify(ready)}\n`);
  // The parent's pipe closing (it stopped or died) ends this process.
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const [seq, command] = line.split(' ', 2);
    let answer: object = {};
    if (command === 'echo') echo = line.endsWith(' on');
    else if (command === 'tcpReset') tcpBytes = tcpFirstMs = tcpLastMs = 0;
    else if (command === 'counts') {
      const cpu = process.cpuUsage();
      answer = { received, tcpBytes, tcpFirstMs, tcpLastMs, cpuUs: cpu.user + cpu.system } satisfies OriginCounts;
    } else answer = { error: `unknown command ${command}` };
    process.stdout.write(`${seq} ${JSON.stringify(answer)}\n`);
  });
  lines.on('close', () => process.exit(0));
}

if (process.argv[1] === ORIGIN_SCRIPT) {
  main(process.argv[2] ?? 'auto').catch((error: Error) => {
    process.stdout.write(`error ${error.message}\n`);
    process.exitCode = 1;
  });
}
