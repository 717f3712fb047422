/**
 * WebRTC load generator child of `slipstream bench relay` (its own process, so the
 * peer connections, the relay and the origin do not share an event loop). Each session
 * is what a browser running `slipstream/browser` is at the transport level: a
 * node-datachannel peer connection (libdatachannel, which browsers interoperate with)
 * signaled to the relay's `tunnel.webrtc` endpoint with its ticket, an unreliable
 * unordered `tunnel` DataChannel and a reliable `control` one, the session opened with
 * the same Open frame as over UDP, then Slipstream Data frames. Benchmark-only code.
 *
 * Usage: node dist/bench/relay-webrtc-load.js < job.json (one WebRtcLoadJob). Prints
 * `{"phase":"window"}` when its measured window starts (the parent reads the relay's
 * CPU then), and one JSON {@link WebRtcLoadResult} line at the end.
 * - `blast`: every session sends `sizeBytes` frames as fast as its channel's buffer
 *   takes them (at most `bufferedMaxBytes` queued) for `durationMs`.
 * - `steady`: every session sends `rateHz` frames a second (a game's tick), stamped;
 *   the origin echoes; round trips give p50/p99 in ms.
 * Every phase is bounded in time; every loop in count.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { PeerConnection, type DataChannel } from 'node-datachannel';
import { HEADER_BYTES, PacketType } from '../proto/src/header.js';
import { buildControlPacket, buildPacket } from '../proto/src/wire.js';
import type { LoadTicket } from './relay-load.js';

/** What the parent asks for. */
export interface WebRtcLoadJob {
  readonly mode: 'blast' | 'steady';
  /** The relay's signaling URL (`http://127.0.0.1:PORT/webrtc`). */
  readonly signalingUrl: string;
  /** One ticket per session. */
  readonly sessions: readonly LoadTicket[];
  /** Frame size including the 24-byte Slipstream header. */
  readonly sizeBytes: number;
  readonly durationMs: number;
  /** `steady`: frames per second per session. */
  readonly rateHz: number;
  /** The whole connect phase may take at most this long; sessions not open by then are left out (counted). */
  readonly connectBudgetMs: number;
}

/** What the generator reports. */
export interface WebRtcLoadResult {
  /** Sessions whose tunnel opened (Open answered) within the connect budget. */
  readonly connected: number;
  /** Wall time of the connect phase, ms. */
  readonly connectMs: number;
  /** Frames sent in the measured window. */
  readonly sent: number;
  /** `steady`: echoes received for them. */
  readonly received: number;
  /** `steady`: round trips through relay and origin, ms. */
  readonly rttMs?: { readonly p50: number; readonly p99: number };
  /** Sessions that did not open, and the first reason. */
  readonly failed?: number;
  readonly firstFailure?: string;
  readonly error?: string;
}

/** Sessions signaled at once during the connect phase. */
const CONNECT_CONCURRENCY = 16;
/** `blast`: frames queued in a channel's buffer at most, bytes. */
const BUFFERED_MAX_BYTES = 256 * 1024;
/** One session may take at most this long to open (the relay's own connectTimeoutMs is 10 s); a stuck one does not hold up its batch. */
const SESSION_OPEN_MS = 10_000;
/** How often the Open frame is repeated until the relay answers, ms. */
const OPEN_RETRY_MS = 200;
/** `steady`: the pacing timer, ms. */
const TICK_MS = 5;
/** Echoes still arriving after the window are waited for this long, ms. */
const LINGER_MS = 300;
/** At the end, the relay's acknowledgements of the sessions' channel closes are waited for this long at most, ms. */
const CLOSE_WAIT_MS = 3000;

interface Session {
  readonly pc: PeerConnection;
  readonly tunnel: DataChannel;
  /** Held so node-datachannel does not close the peer connection when its wrapper is collected. */
  readonly control: DataChannel;
  readonly frame: Buffer;
  nextSendMs: number;
}

async function signal(url: string, ticketBase64: string, offer: string): Promise<string> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${Buffer.from(ticketBase64, 'base64').toString('base64url')}` }, body: offer });
  const body = await res.text();
  if (res.status !== 201) throw new Error(`signaling refused: ${res.status} ${body.slice(0, 200)}`);
  return body;
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
    promise.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e as Error)),
    );
  });
}

/** One session: offer (no trickle), signal, channel open, Open frame answered. */
async function openSession(job: WebRtcLoadJob, t: LoadTicket, index: number, deadlineMs: number): Promise<Session> {
  const pc = new PeerConnection(`bench-${index}`, { iceServers: [], bindAddress: '127.0.0.1' });
  try {
    const tunnel = pc.createDataChannel('tunnel', { unordered: true, maxRetransmits: 0 });
    const control = pc.createDataChannel('control');
    const left = (): number => Math.max(1, deadlineMs - performance.now());
    await within(
      new Promise<void>((resolve) => {
        pc.onGatheringStateChange((state) => state === 'complete' && resolve());
        if (pc.gatheringState() === 'complete') resolve();
      }),
      left(),
      'ICE gathering did not complete',
    );
    pc.setRemoteDescription(await within(signal(job.signalingUrl, t.ticketBase64, pc.localDescription()!.sdp), left(), 'no signaling answer'), 'answer');
    await within(
      new Promise<void>((resolve) => {
        tunnel.onOpen(resolve);
        if (tunnel.isOpen()) resolve();
      }),
      left(),
      'the tunnel DataChannel did not open',
    );
    const open = buildControlPacket(t.idHigh, t.idLow, { type: 'sessionOpen', ticket: new Uint8Array(Buffer.from(t.ticketBase64, 'base64')), fecModes: ['off'] });
    let timer: NodeJS.Timeout | undefined;
    await within(
      new Promise<void>((resolve) => {
        tunnel.onMessage(() => resolve());
        const send = (): void => void (tunnel.isOpen() && tunnel.sendMessageBinary(open));
        send();
        timer = setInterval(send, OPEN_RETRY_MS);
      }),
      left(),
      'the tunnel session did not open',
    ).finally(() => clearInterval(timer));
    const frame = Buffer.from(buildPacket(PacketType.Data, t.idHigh, t.idLow, 1, new Uint8Array(Math.max(8, job.sizeBytes - HEADER_BYTES)).fill(0x42)));
    return { pc, tunnel, control, frame, nextSendMs: 0 };
  } catch (error) {
    pc.close();
    throw error;
  }
}

async function connectAll(job: WebRtcLoadJob): Promise<{ sessions: Session[]; errors: string[] }> {
  const deadlineMs = performance.now() + job.connectBudgetMs;
  const sessions: Session[] = [];
  const errors: string[] = [];
  for (let i = 0; i < job.sessions.length && performance.now() < deadlineMs; i += CONNECT_CONCURRENCY) {
    const batch = job.sessions.slice(i, i + CONNECT_CONCURRENCY);
    const opened = await Promise.allSettled(batch.map((t, k) => openSession(job, t, i + k, Math.min(deadlineMs, performance.now() + SESSION_OPEN_MS))));
    for (const o of opened) {
      if (o.status === 'fulfilled') sessions.push(o.value);
      else errors.push((o.reason as Error).message);
    }
  }
  return { sessions, errors };
}

/**
 * Closes every session so that the relay hears it: each tunnel channel is closed (an
 * SCTP stream reset, which the relay answers by closing its peer connection) and its
 * close awaited, {@link CLOSE_WAIT_MS} at most for all, before the peer connections
 * close. A loaded generator that exits right after \`pc.close()\` leaves the relay
 * holding peer connections until they are reaped, and the next step's clients can get
 * their ports.
 */
async function closeAll(sessions: Session[]): Promise<void> {
  const closed = sessions.map(
    (s) =>
      new Promise<void>((resolve) => {
        s.tunnel.onClosed(resolve);
        if (!s.tunnel.isOpen()) return resolve();
        try {
          s.tunnel.close();
        } catch {
          resolve();
        }
      }),
  );
  await within(Promise.all(closed), CLOSE_WAIT_MS, 'channel closes').catch(() => undefined);
  for (const s of sessions) s.pc.close();
}

async function blast(sessions: Session[], durationMs: number): Promise<number> {
  let sent = 0;
  const endMs = performance.now() + durationMs;
  await new Promise<void>((resolve) => {
    const loop = (): void => {
      if (performance.now() >= endMs) return resolve();
      // Fill every channel's buffer up to the bound; a bounded number of frames per turn.
      for (const s of sessions) {
        for (let n = 0; n < 256 && s.tunnel.bufferedAmount() < BUFFERED_MAX_BYTES; n++) {
          if (!s.tunnel.sendMessageBinary(s.frame)) break;
          sent++;
        }
      }
      setImmediate(loop);
    };
    loop();
  });
  return sent;
}

async function steady(sessions: Session[], durationMs: number, rateHz: number): Promise<{ sent: number; received: number; rtts: number[] }> {
  const rtts: number[] = [];
  let received = 0;
  for (const s of sessions) {
    s.tunnel.onMessage((message) => {
      if (typeof message === 'string') return;
      const bytes = message instanceof ArrayBuffer ? Buffer.from(message) : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
      if (bytes.length < HEADER_BYTES + 8) return;
      received++;
      rtts.push(performance.now() - bytes.readDoubleBE(HEADER_BYTES));
    });
  }
  const intervalMs = 1000 / rateHz;
  const startMs = performance.now();
  // Spread the sessions' ticks over one interval, as independent players would be.
  sessions.forEach((s, i) => (s.nextSendMs = startMs + (i / sessions.length) * intervalMs));
  let sent = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      if (now - startMs >= durationMs) {
        clearInterval(timer);
        return resolve();
      }
      for (const s of sessions) {
        // At most a few catch-up frames per tick: a stalled generator does not burst.
        for (let n = 0; n < 4 && s.nextSendMs <= now; n++) {
          s.nextSendMs += intervalMs;
          s.frame.writeDoubleBE(performance.now(), HEADER_BYTES);
          if (s.tunnel.isOpen()) s.tunnel.sendMessageBinary(s.frame);
          sent++;
        }
        if (s.nextSendMs <= now) s.nextSendMs = now + intervalMs;
      }
    }, TICK_MS);
  });
  await new Promise((resolve) => setTimeout(resolve, LINGER_MS));
  return { sent, received, rtts };
}

async function run(job: WebRtcLoadJob): Promise<WebRtcLoadResult> {
  const connectStart = performance.now();
  const { sessions, errors } = await connectAll(job);
  const connectMs = Math.round(performance.now() - connectStart);
  if (sessions.length === 0) return { connected: 0, connectMs, sent: 0, received: 0, error: `no session opened: ${errors[0] ?? 'connect budget spent'}` };
  process.stdout.write(`${JSON.stringify({ phase: 'window', connected: sessions.length })}\n`);
  try {
    const failures = errors.length > 0 ? { failed: errors.length, firstFailure: errors[0]! } : {};
    if (job.mode === 'blast') return { connected: sessions.length, connectMs, sent: await blast(sessions, job.durationMs), received: 0, ...failures };
    const r = await steady(sessions, job.durationMs, job.rateHz);
    const sorted = r.rtts.sort((a, b) => a - b);
    const pick = (q: number): number => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN) * 1000) / 1000;
    return { connected: sessions.length, connectMs, sent: r.sent, received: r.received, rttMs: { p50: pick(0.5), p99: pick(0.99) }, ...failures };
  } finally {
    await closeAll(sessions);
  }
}

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    process.stdin.once('end', () => resolve(text));
    process.stdin.once('error', reject);
  });
}

/** This file, for spawning it (bench/ is compiled only through imports). */
export const WEBRTC_LOAD_SCRIPT = fileURLToPath(import.meta.url);

if (process.argv[1] === WEBRTC_LOAD_SCRIPT) {
  readStdin()
    .then((text) => run(JSON.parse(text) as WebRtcLoadJob))
    .then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      // node-datachannel's threads can hold the process open after the peers closed.
      setTimeout(() => process.exit(0), 200).unref();
    },
    (error: Error) => {
      process.stdout.write(`${JSON.stringify({ connected: 0, connectMs: 0, sent: 0, received: 0, error: error.message })}\n`);
      process.exit(1);
    },
  );
}
