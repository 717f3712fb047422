/**
 * The traffic of `slipstream bench qoe`: a UDP echo origin that counts, per path tag,
 * the source addresses it saw and how often each sequence number arrived, and a
 * game-like client that sends fixed-size datagrams at a fixed rate on two paths at
 * once (the direct baseline and through `slipstream connect`), stamping each with its
 * path tag, the case number, a sequence number and the send time.
 *
 * Datagram layout (`PACKET_BYTES`, rest zero): byte 0 path tag, bytes 2–3 case number
 * (u16 BE), bytes 4–7 sequence number (u32 BE), bytes 8–15 send time (f64 BE, ms on
 * this process's monotonic clock).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { performance } from 'node:perf_hooks';

/** UDP ports {@link startEchoOrigin} tries before giving up (each a fresh pick of the kernel's). */
const ECHO_ORIGIN_PORT_ATTEMPTS = 20;

/** Bytes of every game datagram. */
export const PACKET_BYTES = 100;
/** Path tags stamped in byte 0. */
export const PATH_DIRECT = 0;
export const PATH_SLIPSTREAM = 1;

/** What the origin saw of one path in one case. */
export interface OriginPathCounts {
  /** Distinct `address:port` sources. */
  readonly sources: Set<string>;
  /** Arrivals per sequence number. */
  readonly arrivals: Map<number, number>;
}

/** The UDP echo origin (and a TCP listener on the same port for the relays' origin probe). */
export interface EchoOrigin {
  readonly port: number;
  /** Counts for `(caseNumber, pathTag)`; empty when nothing arrived. */
  counts(caseNumber: number, pathTag: number): OriginPathCounts;
  close(): Promise<void>;
}

/**
 * Starts the echo origin on 127.0.0.1 (a free port, UDP and TCP).
 * @param answer `every` (default): echo every datagram, copies included; `first`: echo
 *   only the first copy of each (case, path, sequence number), as the simulator's game
 *   server does (`sim/src/deployment/deployment.ts`) and as a game server acts on an
 *   input once — copies through a backup relay then cannot stand in for a lost answer.
 * @param ignore datagrams it returns true for are neither counted nor answered, as a game
 *   server ignores junk (`bench flood`: flows of a flood then stay unreplied). Default none.
 */
export async function startEchoOrigin(answer: 'every' | 'first' = 'every', ignore?: (bytes: Buffer) => boolean): Promise<EchoOrigin> {
  const byKey = new Map<number, OriginPathCounts>();
  const countsOf = (key: number): OriginPathCounts => {
    let c = byKey.get(key);
    if (c === undefined) byKey.set(key, (c = { sources: new Set(), arrivals: new Map() }));
    return c;
  };
  const onMessage = (bytes: Buffer, from: RemoteInfo): void => {
    if (ignore?.(bytes) === true) return;
    if (bytes.length >= 16) {
      const c = countsOf(bytes.readUInt16BE(2) * 256 + bytes[0]!);
      c.sources.add(`${from.address}:${from.port}`);
      const seq = bytes.readUInt32BE(4);
      const seen = c.arrivals.get(seq) ?? 0;
      c.arrivals.set(seq, seen + 1);
      if (answer === 'first' && seen > 0) return;
    }
    udp.send(bytes, from.port, from.address);
  };
  let udp = createSocket('udp4');
  udp.on('message', onMessage);
  // The relays probe their origin with a TCP connect; it is answered on the same port
  // number. The UDP port is the kernel's pick, and its number may be taken on TCP (by
  // another process's connection or listener): then another UDP port is tried.
  const tcp: Server = createServer((s) => s.destroy());
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    port = udp.address().port;
    const listened = await new Promise<Error | undefined>((resolve) => {
      tcp.once('error', resolve);
      tcp.listen(port, '127.0.0.1', () => resolve(undefined));
    });
    if (listened === undefined) break;
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (attempt === ECHO_ORIGIN_PORT_ATTEMPTS) throw new Error(`echo origin: no port free on both UDP and TCP after ${attempt} tries (last: ${listened.message})`);
    udp = createSocket('udp4');
    udp.on('message', onMessage);
  }
  tcp.removeAllListeners('error');
  return {
    port,
    counts: (caseNumber, pathTag) => countsOf(caseNumber * 256 + pathTag),
    close: async () => {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

/** What the client measured on one path: per sequence number, the first echo's RTT and arrival time. */
export interface PathRecord {
  sent: number;
  /** RTT of the first echo of each sequence number, ms. */
  readonly rttMsBySeq: Map<number, number>;
  /** Arrival time (ms on the monotonic clock) of the first echo of each sequence number. */
  readonly arrivalMs: number[];
  /** Echoes beyond the first of a sequence number. */
  duplicateEchoes: number;
}

/** One run of the game client on both paths. */
export interface GameRun {
  readonly direct: PathRecord;
  readonly slipstream: PathRecord;
  readonly startMs: number;
  /** When the last datagram was sent, ms on the monotonic clock. */
  readonly sendEndMs: number;
}

function newRecord(): PathRecord {
  return { sent: 0, rttMsBySeq: new Map(), arrivalMs: [], duplicateEchoes: 0 };
}

function pathSocket(record: PathRecord, caseNumber: number): Promise<Socket> {
  const socket = createSocket('udp4');
  socket.on('message', (bytes) => {
    if (bytes.length < 16 || bytes.readUInt16BE(2) !== caseNumber) return;
    const now = performance.now();
    const seq = bytes.readUInt32BE(4);
    if (record.rttMsBySeq.has(seq)) {
      record.duplicateEchoes++;
      return;
    }
    record.rttMsBySeq.set(seq, now - bytes.readDoubleBE(8));
    record.arrivalMs.push(now);
  });
  return new Promise((resolve) => socket.bind(0, '127.0.0.1', () => resolve(socket)));
}

/**
 * Sends `packetsPerSecond` datagrams of {@link PACKET_BYTES} to both ports for
 * `seconds` (the same sequence numbers on both, paced on the monotonic clock so a late
 * timer does not lower the count), calls `midway` once at half time, then waits
 * `drainMs` for late echoes. Bounded: exactly `seconds × packetsPerSecond` per path.
 * The direct path goes to `directHost` (default 127.0.0.1), the other to 127.0.0.1.
 */
export async function runGame(opts: { directPort: number; directHost?: string; slipstreamPort: number; caseNumber: number; seconds: number; packetsPerSecond: number; drainMs: number; midway?: () => void }): Promise<GameRun> {
  const direct = newRecord();
  const slipstream = newRecord();
  const directSocket = await pathSocket(direct, opts.caseNumber);
  const slipSocket = await pathSocket(slipstream, opts.caseNumber);
  const total = Math.round(opts.seconds * opts.packetsPerSecond);
  const intervalMs = 1000 / opts.packetsPerSecond;
  // A fresh buffer per datagram: `dgram` sends after an asynchronous address lookup and
  // keeps a reference, not a copy, so rewriting one buffer for the second path (or the
  // next datagram of a catch-up burst) would change what the first send carries — once
  // every direct datagram left tagged as Slipstream's, and the origin counted it as a
  // duplicate from a second source.
  const stamp = (path: number, seq: number): Buffer => {
    const packet = Buffer.alloc(PACKET_BYTES);
    packet[0] = path;
    packet.writeUInt16BE(opts.caseNumber, 2);
    packet.writeUInt32BE(seq, 4);
    packet.writeDoubleBE(performance.now(), 8);
    return packet;
  };
  const startMs = performance.now();
  let midwayDone = opts.midway === undefined;
  let seq = 0;
  while (seq < total) {
    const now = performance.now();
    while (seq < total && startMs + seq * intervalMs <= now) {
      directSocket.send(stamp(PATH_DIRECT, seq), opts.directPort, opts.directHost ?? '127.0.0.1');
      direct.sent++;
      slipSocket.send(stamp(PATH_SLIPSTREAM, seq), opts.slipstreamPort, '127.0.0.1');
      slipstream.sent++;
      seq++;
    }
    if (!midwayDone && seq >= total / 2) {
      midwayDone = true;
      opts.midway!();
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(1, startMs + seq * intervalMs - performance.now())));
  }
  const sendEndMs = performance.now();
  await new Promise((resolve) => setTimeout(resolve, opts.drainMs));
  await Promise.all([directSocket, slipSocket].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return { direct, slipstream, startMs, sendEndMs };
}

/** The `q` quantile (0–1, nearest rank) of `values`; NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The longest time without an echo on a path, ms: from the start to the first echo, between echoes, and from the last echo to the end of sending. */
export function longestGapMs(record: PathRecord, startMs: number, sendEndMs: number): number {
  const times = [...record.arrivalMs].sort((a, b) => a - b);
  let longest = 0;
  let previous = startMs;
  for (const t of times) {
    longest = Math.max(longest, t - previous);
    previous = t;
  }
  return Math.max(longest, sendEndMs - previous);
}
