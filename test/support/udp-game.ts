/**
 * The player side of an end-to-end failover test: a "game" that sends numbered UDP
 * datagrams at a steady rate to a local port (a `slipstream connect` listener) and
 * records every echo that comes back, so a test can measure the gap a failover causes.
 * Its socket and timer are released in a root-level `after` hook of the test file if
 * the test has not stopped it.
 */
import { udpSocket } from './sockets.js';
import { fileScopedInterval } from './timers.js';
import { until } from './wait.js';

/** One echo the game received: when (performance.now()) and its sequence number. */
export interface Arrival {
  readonly atMs: number;
  readonly seq: number;
}

/** A running game (see `startUdpGame`). */
export interface UdpGame {
  /** Every echo received, in order. */
  readonly arrivals: Arrival[];
  /** Echoes whose sequence number had already arrived. */
  readonly duplicates: number;
  /** Stops sending and closes the socket. */
  stop(): void;
}

/**
 * Binds a UDP socket on 127.0.0.1 and sends a 64-byte datagram every 20 ms (50/s) to
 * 127.0.0.1:`port`, its first four bytes a sequence number (big-endian, from 0).
 */
export async function startUdpGame(port: number): Promise<UdpGame> {
  const socket = udpSocket();
  const arrivals: Arrival[] = [];
  const seen = new Set<number>();
  let duplicates = 0;
  socket.on('message', (m) => {
    const seq = m.readUInt32BE(0);
    if (seen.has(seq)) duplicates++;
    seen.add(seq);
    arrivals.push({ atMs: performance.now(), seq });
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  let seq = 0;
  const sender = fileScopedInterval(() => {
    const b = Buffer.alloc(64);
    b.writeUInt32BE(seq++, 0);
    socket.send(b, port, '127.0.0.1');
  }, 20);
  return {
    arrivals,
    get duplicates() {
      return duplicates;
    },
    stop() {
      clearInterval(sender);
      socket.close();
    },
  };
}

/**
 * The longest wait between consecutive arrivals after `sinceMs` (e.g. a kill), the
 * first measured from the last arrival at or before `sinceMs` (or from `sinceMs` when
 * there was none); 0 when nothing arrived after it.
 */
export function longestGapAfter(arrivals: readonly Arrival[], sinceMs: number): number {
  let gapMs = 0;
  let previous = arrivals.filter((x) => x.atMs <= sinceMs).at(-1)?.atMs ?? sinceMs;
  for (const x of arrivals) {
    if (x.atMs <= sinceMs) continue;
    gapMs = Math.max(gapMs, x.atMs - previous);
    previous = x.atMs;
  }
  return gapMs;
}

/**
 * Runs `fail` (e.g. a crash of the relay in use), waits until the game has had 50 more
 * echoes (15 s at most, else throws), and resolves to {@link longestGapAfter} the
 * moment `fail` began, ms.
 */
export async function failoverGapMs(game: UdpGame, fail: () => Promise<void>): Promise<number> {
  const sinceMs = performance.now();
  await fail();
  const before = game.arrivals.length;
  await until(() => game.arrivals.length >= before + 50, 15_000, 'UDP echoes after the kill');
  return longestGapAfter(game.arrivals, sinceMs);
}
