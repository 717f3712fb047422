/**
 * Load generator child of `slipstream bench relay` (its own process, so the relay,
 * the generator and the origin do not share an event loop). Benchmark-only code.
 *
 * Usage: node dist/bench/relay-load.js '<json LoadJob>'; prints one JSON line with the result.
 * - `blast`: every flow sends `sizeBytes` datagrams as fast as the socket takes them,
 *   for `durationMs`. With the udp-batch addon (`udp`: `auto` or `batched`) it sends
 *   with `sendmmsg`, {@link BLAST_BATCH} datagrams a call on one flow's connected
 *   socket, the flows taking turns: ~1 µs of its CPU per 100 B datagram (mostly the
 *   kernel's loopback delivery), against ~5–7 µs on `dgram` (a send request per
 *   datagram, at most `inflightMax` queued), so it offers more than any forwarder
 *   measured here forwards and the forwarder is the bottleneck.
 * - `latency`: one flow sends at `rateHz` (paced on a 1 ms timer) for `count` packets,
 *   each stamped; the origin echoes; round trips give p50/p99 in µs (`dgram`: 10,000
 *   packets/s cost it little, and one code path keeps the timing comparable).
 * - `tcp`: `flows` connections each write 64 KiB chunks as fast as they drain for
 *   `durationMs`, then close; the origin's sink measures the throughput where it lands.
 * With `tunnel`, each flow first opens its session with its ticket and speaks the
 * Slipstream header (24 bytes, counted inside `sizeBytes`). The result carries this
 * process's CPU time over the sending window (`cpuUs`) and which UDP tools it used.
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadUdpBatch, UdpBatch, type UdpBatchAddon } from '../kit/udp-batch.js';
import { HEADER_BYTES, PacketType } from '../proto/src/header.js';
import { buildClientClose, buildControlPacket, buildPacket } from '../proto/src/wire.js';

/** A tunnel session the generator uses for one flow. */
export interface LoadTicket {
  readonly ticketBase64: string;
  readonly idHigh: number;
  readonly idLow: number;
  /** The session key (base64), for the authenticated Close a finished flow sends, as the SDK does. */
  readonly sessionKeyBase64?: string;
}

/** What the parent asks for. */
export interface LoadJob {
  readonly mode: 'blast' | 'latency' | 'tcp';
  /** UDP tools for `blast`: the addon (`batched`; `auto` falls back to dgram when it cannot load) or `dgram`. Default `auto`. */
  readonly udp?: 'auto' | 'batched' | 'dgram';
  readonly port: number;
  readonly flows: number;
  readonly sizeBytes: number;
  readonly durationMs: number;
  readonly rateHz: number;
  readonly count: number;
  readonly tunnel: readonly LoadTicket[] | undefined;
  /**
   * Latency mode, several paths measured together: each gets `rateHz` packets per
   * second, interleaved packet by packet, so that a busy moment of the machine hits
   * every path alike (`port`, `sizeBytes`, `tunnel` of the job are then unused).
   */
  readonly paths?: readonly { readonly port: number; readonly sizeBytes: number; readonly tunnel?: LoadTicket; /** Send on every n-th tick only (default 1: at `rateHz`). */ readonly every?: number }[];
}

/** What the generator reports. */
export interface LoadResult {
  readonly sent: number;
  readonly received: number;
  readonly rttUs: { readonly p50: number; readonly p99: number } | undefined;
  /** With `paths`: per path, in order. */
  readonly rttUsByPath?: { readonly p50: number; readonly p99: number; readonly received: number }[];
  /** This process's CPU time (user + system) over the sending window, µs, and that window, ms. */
  readonly cpuUs?: number;
  readonly windowMs?: number;
  /** `blast`: the UDP tools it sent with. `tcp`: bytes written. */
  readonly udp?: 'batched' | 'dgram';
  readonly tcpBytes?: number;
  readonly error?: string;
}

const INFLIGHT_MAX = 512;

async function openFlows(job: LoadJob): Promise<dgram.Socket[]> {
  const sockets: dgram.Socket[] = [];
  for (let i = 0; i < job.flows; i++) {
    // A large receive buffer: the measuring tool itself must not drop echoes when the shared machine stalls it.
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
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

/** Ends each flow as a client would: tunnel sessions get the SDK's authenticated Close (L4 flows just stop and idle out). */
async function closeFlows(job: LoadJob, sockets: dgram.Socket[]): Promise<void> {
  if (job.tunnel) {
    await Promise.all(
      sockets.map((socket, i) => {
        const t = job.tunnel![i]!;
        if (t.sessionKeyBase64 === undefined) return Promise.resolve();
        const close = buildClientClose(new Uint8Array(Buffer.from(t.sessionKeyBase64, 'base64')), t.idHigh, t.idLow);
        return new Promise<void>((resolve) => socket.send(close, job.port, '127.0.0.1', () => resolve()));
      }),
    );
  }
  for (const socket of sockets) socket.close();
}

function payloadFor(job: LoadJob, flow: number): Buffer {
  if (!job.tunnel) return Buffer.alloc(job.sizeBytes, 0x42);
  const t = job.tunnel[flow]!;
  return Buffer.from(buildPacket(PacketType.Data, t.idHigh, t.idLow, 1, new Uint8Array(Math.max(0, job.sizeBytes - HEADER_BYTES)).fill(0x42)));
}

/** Datagrams per `sendmmsg` in a batched blast (one flow's socket per call, the flows taking turns). */
export const BLAST_BATCH = 32;

/** This process's CPU time so far, µs. */
function ownCpuUs(): number {
  const cpu = process.cpuUsage();
  return cpu.user + cpu.system;
}

/** `blast` on the udp-batch addon (see the module comment). */
async function blastBatched(job: LoadJob, addon: UdpBatchAddon): Promise<LoadResult> {
  const replied = new Set<number>();
  const batch: UdpBatch = new UdpBatch(addon, (socketId) => void replied.add(socketId), () => undefined);
  const sockets = Array.from({ length: job.flows }, () => batch.open('127.0.0.1', 0, { receiveBufferBytes: 4 << 20 }).id);
  const payloads = sockets.map((_, i) => payloadFor(job, i));
  if (job.tunnel) {
    // Each session opens with its ticket (resent every 200 ms until its flow hears back).
    const opens = job.tunnel.map((t) => buildControlPacket(t.idHigh, t.idLow, { type: 'sessionOpen', ticket: new Uint8Array(Buffer.from(t.ticketBase64, 'base64')), fecModes: ['off'] }));
    const deadline = performance.now() + 5000;
    while (replied.size < sockets.length) {
      if (performance.now() > deadline) throw new Error('tunnel session did not open within 5 s');
      for (let i = 0; i < sockets.length; i++) if (!replied.has(sockets[i]!)) batch.queue(sockets[i]!, '127.0.0.1', job.port, undefined, opens[i]!, true);
      batch.commit();
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  const errorsBefore = batch.stats().sendErrors;
  let attempted = 0;
  const cpuBefore = ownCpuUs();
  const startMs = performance.now();
  const endMs = startMs + job.durationMs;
  let flow = 0;
  await new Promise<void>((resolve) => {
    const loop = (): void => {
      // A few ms of sending between turns of the event loop (which has nothing else to do).
      for (let k = 0; k < 64; k++) {
        if (performance.now() >= endMs) return resolve();
        const socket = sockets[flow]!;
        const payload = payloads[flow]!;
        for (let i = 0; i < BLAST_BATCH; i++) batch.queue(socket, '127.0.0.1', job.port, undefined, payload, true);
        batch.commit();
        attempted += BLAST_BATCH;
        flow = (flow + 1) % sockets.length;
      }
      setImmediate(loop);
    };
    loop();
  });
  const windowMs = performance.now() - startMs;
  const cpuUs = ownCpuUs() - cpuBefore;
  const sent = attempted - (batch.stats().sendErrors - errorsBefore);
  if (job.tunnel) {
    for (let i = 0; i < sockets.length; i++) {
      const t = job.tunnel[i]!;
      if (t.sessionKeyBase64 !== undefined) batch.queue(sockets[i]!, '127.0.0.1', job.port, undefined, buildClientClose(new Uint8Array(Buffer.from(t.sessionKeyBase64, 'base64')), t.idHigh, t.idLow), true);
    }
    batch.commit();
  }
  for (const id of sockets) batch.close(id);
  return { sent, received: 0, rttUs: undefined, cpuUs, windowMs, udp: 'batched' };
}

/** `tcp`: `flows` connections write for `durationMs` (see the module comment). */
async function tcpBlast(job: LoadJob): Promise<LoadResult> {
  const chunk = Buffer.alloc(64 * 1024, 0x42);
  const sockets: net.Socket[] = [];
  for (let i = 0; i < job.flows; i++) {
    const socket = net.connect(job.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.on('error', () => undefined);
    sockets.push(socket);
  }
  let tcpBytes = 0;
  const cpuBefore = ownCpuUs();
  const startMs = performance.now();
  const endMs = startMs + job.durationMs;
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          const pump = (): void => {
            while (performance.now() < endMs) {
              tcpBytes += chunk.length;
              if (!socket.write(chunk)) return void socket.once('drain', pump);
            }
            resolve();
          };
          pump();
        }),
    ),
  );
  const windowMs = performance.now() - startMs;
  const cpuUs = ownCpuUs() - cpuBefore;
  // What is written is delivered before the FIN; the sink's last byte ends its window.
  await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.end(resolve))));
  for (const socket of sockets) socket.destroy();
  return { sent: 0, received: 0, rttUs: undefined, cpuUs, windowMs, tcpBytes };
}

async function blast(job: LoadJob): Promise<LoadResult> {
  if (job.udp !== 'dgram') {
    const loaded = loadUdpBatch();
    if ('addon' in loaded) return blastBatched(job, loaded.addon);
    if (job.udp === 'batched') throw new Error(`the udp-batch addon cannot load: ${loaded.error}`);
  }
  return blastDgram(job);
}

async function blastDgram(job: LoadJob): Promise<LoadResult> {
  const sockets = await openFlows(job);
  const payloads = sockets.map((_, i) => payloadFor(job, i));
  let sent = 0;
  let inflight = 0;
  const onSent = (): void => {
    inflight--;
  };
  const cpuBefore = ownCpuUs();
  const startMs = performance.now();
  const endMs = startMs + job.durationMs;
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
  const windowMs = performance.now() - startMs;
  const cpuUs = ownCpuUs() - cpuBefore;
  await closeFlows(job, sockets);
  return { sent, received: 0, rttUs: undefined, cpuUs, windowMs, udp: 'dgram' };
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
  const sent = await paced(job.count, job.rateHz, () => {
    const packet = Buffer.from(template);
    packet.writeDoubleBE(performance.now(), offset);
    socket!.send(packet, job.port, '127.0.0.1');
  });
  await closeFlows(job, [socket!]);
  return { sent, received: rtts.length, rttUs: steadyRttUs(rtts) };
}

/** Latency over several paths at once (see {@link LoadJob.paths}). */
async function latencyPaths(job: LoadJob): Promise<LoadResult> {
  const paths = job.paths!;
  const flows: { socket: dgram.Socket; port: number; template: Buffer; offset: number; rtts: number[]; job: LoadJob; every: number }[] = [];
  for (const path of paths) {
    // Each path's own count: it sends on every `every`-th tick.
    const pathJob: LoadJob = { ...job, paths: undefined, port: path.port, sizeBytes: path.sizeBytes, flows: 1, tunnel: path.tunnel ? [path.tunnel] : undefined };
    const [socket] = await openFlows(pathJob);
    const offset = path.tunnel ? HEADER_BYTES : 0;
    const flow = { socket: socket!, port: path.port, template: payloadFor(pathJob, 0), offset, rtts: [] as number[], job: pathJob, every: Math.max(1, path.every ?? 1) };
    socket!.on('message', (message) => {
      if (message.length < offset + 8) return;
      flow.rtts.push((performance.now() - message.readDoubleBE(offset)) * 1000);
    });
    flows.push(flow);
  }
  const sent = await paced(job.count, job.rateHz, (tick) => {
    // Rotate which path goes first, so none always waits behind the others.
    for (let i = 0; i < flows.length; i++) {
      const flow = flows[(i + tick) % flows.length]!;
      if (tick % flow.every !== 0) continue;
      const packet = Buffer.from(flow.template);
      packet.writeDoubleBE(performance.now(), flow.offset);
      flow.socket.send(packet, flow.port, '127.0.0.1');
    }
  });
  for (const flow of flows) await closeFlows(flow.job, [flow.socket]);
  const rttUsByPath = flows.map((flow) => ({ ...steadyRttUs(flow.rtts), received: flow.rtts.length }));
  return { sent, received: Math.min(...rttUsByPath.map((r) => r.received)), rttUs: undefined, rttUsByPath };
}

/**
 * Calls `tick(i)` for i = 0 … count − 1, `rateHz` a second, and resolves to `count`
 * 200 ms after the last (for late replies). Paced by a 1 ms timer rather than a busy
 * loop: a spinning generator would take a core from the forwarder on a small machine
 * and measure the scheduler, not the path.
 */
async function paced(count: number, rateHz: number, tick: (i: number) => void): Promise<number> {
  const intervalMs = 1000 / rateHz;
  let sent = 0;
  const startMs = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      while (sent < count && startMs + sent * intervalMs <= now) tick(sent++);
      if (sent >= count) {
        clearInterval(timer);
        setTimeout(resolve, 200);
      }
    }, 1);
  });
  return sent;
}

/** Median and 99th percentile of `rttUs`, µs; the first packets of a flow pay for socket creation at the relay: a warm-up tenth is skipped. */
function steadyRttUs(rttUs: readonly number[]): { p50: number; p99: number } {
  const steady = rttUs.slice(Math.floor(rttUs.length / 10)).sort((a, b) => a - b);
  const pick = (q: number): number => steady[Math.min(steady.length - 1, Math.floor(q * steady.length))] ?? Number.NaN;
  return { p50: pick(0.5), p99: pick(0.99) };
}

/** This file, for spawning it (bench/ is compiled only through imports). */
export const LOAD_SCRIPT = fileURLToPath(import.meta.url);

if (process.argv[1] === LOAD_SCRIPT) {
  const job = JSON.parse(process.argv[2] ?? '{}') as LoadJob;
  (job.mode === 'blast' ? blast(job) : job.mode === 'tcp' ? tcpBlast(job) : job.paths ? latencyPaths(job) : latency(job)).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (error: Error) => {
      process.stdout.write(`${JSON.stringify({ sent: 0, received: 0, rttUs: undefined, error: error.message })}\n`);
      process.exitCode = 1;
    },
  );
}
