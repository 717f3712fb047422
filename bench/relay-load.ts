/**
 * Load generator child of `slipstream bench relay` (its own process, so the relay,
 * the generator and the origin do not share an event loop). Benchmark-only code.
 *
 * Usage: node dist/bench/relay-load.js '<json LoadJob>'; prints one JSON line with the result.
 * - `blast`: every flow sends `sizeBytes` datagrams as fast as the socket takes them,
 *   for `durationMs` (at most `inflightMax` sends queued at a time).
 * - `latency`: one flow sends at `rateHz` (paced on a busy clock) for `count` packets,
 *   each stamped; the origin echoes; round trips give p50/p99 in µs.
 * With `tunnel`, each flow first opens its session with its ticket and speaks the
 * Slipstream header (24 bytes, counted inside `sizeBytes`).
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { HEADER_BYTES, PacketType } from '../proto/src/header.js';
import { buildControlPacket, buildPacket } from '../relay/src/core/wire.js';

/** A tunnel session the generator uses for one flow. */
export interface LoadTicket {
  readonly ticketBase64: string;
  readonly idHigh: number;
  readonly idLow: number;
}

/** What the parent asks for. */
export interface LoadJob {
  readonly mode: 'blast' | 'latency';
  readonly port: number;
  readonly flows: number;
  readonly sizeBytes: number;
  readonly durationMs: number;
  readonly rateHz: number;
  readonly count: number;
  readonly tunnel: readonly LoadTicket[] | undefined;
}

/** What the generator reports. */
export interface LoadResult {
  readonly sent: number;
  readonly received: number;
  readonly rttUs: { readonly p50: number; readonly p99: number } | undefined;
  readonly error?: string;
}

const INFLIGHT_MAX = 512;

async function openFlows(job: LoadJob): Promise<dgram.Socket[]> {
  const sockets: dgram.Socket[] = [];
  for (let i = 0; i < job.flows; i++) {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    sockets.push(socket);
  }
  if (job.tunnel) {
    await Promise.all(
      sockets.map(
        (socket, i) =>
          new Promise<void>((resolve, reject) => {
            const t = job.tunnel![i]!;
            const open = buildControlPacket(t.idHigh, t.idLow, { type: 'sessionOpen', ticket: new Uint8Array(Buffer.from(t.ticketBase64, 'base64')), fecModes: ['off'] });
            const timer = setInterval(() => socket.send(open, job.port, '127.0.0.1'), 200);
            const deadline = setTimeout(() => {
              clearInterval(timer);
              reject(new Error('tunnel session did not open within 5 s'));
            }, 5000);
            socket.once('message', () => {
              clearInterval(timer);
              clearTimeout(deadline);
              resolve();
            });
            socket.send(open, job.port, '127.0.0.1');
          }),
      ),
    );
  }
  return sockets;
}

function payloadFor(job: LoadJob, flow: number): Buffer {
  if (!job.tunnel) return Buffer.alloc(job.sizeBytes, 0x42);
  const t = job.tunnel[flow]!;
  return Buffer.from(buildPacket(PacketType.Data, t.idHigh, t.idLow, 1, new Uint8Array(Math.max(0, job.sizeBytes - HEADER_BYTES)).fill(0x42)));
}

async function blast(job: LoadJob): Promise<LoadResult> {
  const sockets = await openFlows(job);
  const payloads = sockets.map((_, i) => payloadFor(job, i));
  let sent = 0;
  let inflight = 0;
  const onSent = (): void => {
    inflight--;
  };
  const endMs = performance.now() + job.durationMs;
  await new Promise<void>((resolve) => {
    const loop = (): void => {
      if (performance.now() >= endMs) return resolve();
      for (let burst = 0; burst < 64 && inflight < INFLIGHT_MAX; burst++) {
        const flow = sent % sockets.length;
        inflight++;
        sent++;
        sockets[flow]!.send(payloads[flow]!, job.port, '127.0.0.1', onSent);
      }
      setImmediate(loop);
    };
    loop();
  });
  for (const socket of sockets) socket.close();
  return { sent, received: 0, rttUs: undefined };
}

async function latency(job: LoadJob): Promise<LoadResult> {
  const [socket] = await openFlows({ ...job, flows: 1 });
  const template = payloadFor(job, 0);
  const offset = job.tunnel ? HEADER_BYTES : 0;
  const rtts: number[] = [];
  socket!.on('message', (message) => {
    if (message.length < offset + 8) return;
    const sentMs = message.readDoubleBE(offset);
    rtts.push((performance.now() - sentMs) * 1000);
  });
  const intervalMs = 1000 / job.rateHz;
  let sent = 0;
  const startMs = performance.now();
  // Paced by a 1 ms timer rather than a busy loop: a spinning generator would take a
  // core from the forwarder on a small machine and measure the scheduler, not the path.
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      while (sent < job.count && startMs + sent * intervalMs <= now) {
        const packet = Buffer.from(template);
        packet.writeDoubleBE(performance.now(), offset);
        socket!.send(packet, job.port, '127.0.0.1');
        sent++;
      }
      if (sent >= job.count) {
        clearInterval(timer);
        setTimeout(resolve, 200);
      }
    }, 1);
  });
  socket!.close();
  // The first packets of a flow pay for socket creation at the relay: skip a warm-up tenth.
  const steady = rtts.slice(Math.floor(rtts.length / 10)).sort((a, b) => a - b);
  const pick = (q: number): number => steady[Math.min(steady.length - 1, Math.floor(q * steady.length))] ?? Number.NaN;
  return { sent, received: rtts.length, rttUs: { p50: pick(0.5), p99: pick(0.99) } };
}

/** This file, for spawning it (bench/ is compiled only through imports). */
export const LOAD_SCRIPT = fileURLToPath(import.meta.url);

if (process.argv[1] === LOAD_SCRIPT) {
  const job = JSON.parse(process.argv[2] ?? '{}') as LoadJob;
  (job.mode === 'blast' ? blast(job) : latency(job)).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (error: Error) => {
      process.stdout.write(`${JSON.stringify({ sent: 0, received: 0, rttUs: undefined, error: error.message })}\n`);
      process.exitCode = 1;
    },
  );
}
