/**
 * The flooder of `slipstream bench flood` and test/e2e-relay-flood.test.ts: a process of
 * its own (as an attacker is: the measuring process keeps its event loop) that sends
 * datagrams from many UDP sockets bound to distinct loopback addresses. Linux routes
 * all of 127.0.0.0/8 to loopback, so "spoofed" sources need no raw sockets. Every flood
 * is bounded in packets and in time.
 *
 * Bench code cannot import test/ (scripts/lint/floors.mjs), so it lives here and the
 * test imports it from bench/, as test/sim-agreement.test.ts imports bench/qoe-fleet.ts.
 */
import { spawn } from 'node:child_process';
import { signalIfRunning } from '../kit/child-signal.js';

/**
 * The flooder's script (`node -e`): `count` sockets bound to distinct loopback addresses
 * 127.`octet`.x.y send the `packets` (base64, taken in turn) round-robin to
 * `host`:`port` at `perSecond`, for at least `minMs` and at most `maxMs`; after `minMs`
 * it stops at the first line on its stdin (or when stdin closes). It prints `started`
 * when its sockets are bound and it starts, and `{"sent":…,"ms":…}` once done.
 */
const FLOODER = `
const dgram = require('node:dgram');
const { performance } = require('node:perf_hooks');
const [port, perSecond, minMs, maxMs, count, octet] = process.argv.slice(1, 7).map(Number);
const packets = process.argv[7].split(',').map((b) => Buffer.from(b, 'base64'));
const host = process.argv[8];
let stopAsked = false;
process.stdin.on('data', () => (stopAsked = true)).on('end', () => (stopAsked = true));
const sockets = [];
let bound = 0;
for (let i = 0; i < count; i++) {
  const socket = dgram.createSocket('udp4');
  socket.on('error', () => undefined);
  socket.bind(0, '127.' + octet + '.' + (1 + Math.floor(i / 250)) + '.' + (1 + (i % 250)), () => { if (++bound === count) run(); });
  sockets.push(socket);
}
function run() {
  process.stdout.write('started\\n');
  const start = performance.now();
  let sent = 0;
  const limit = Math.ceil((maxMs / 1000) * perSecond);
  const step = () => {
    const elapsed = performance.now() - start;
    if (elapsed >= maxMs || (elapsed >= minMs && stopAsked) || sent >= limit) {
      process.stdout.write(JSON.stringify({ sent, ms: elapsed }) + '\\n');
      for (const socket of sockets) socket.close();
      process.exit(0);
    }
    const due = Math.min(limit, Math.floor((elapsed / 1000) * perSecond));
    // At most 50 ms worth per step: a stalled step does not turn into one huge burst.
    for (let n = Math.min(due - sent, perSecond / 20); n > 0; n--, sent++) sockets[sent % count].send(packets[sent % packets.length], port, host);
    setTimeout(step, 5);
  };
  step();
}
`;

/** Options of {@link startFlood}. */
export interface FloodOptions {
  /** Destination UDP port. */
  readonly port: number;
  /** Destination address. Default `127.0.0.1`. */
  readonly host?: string;
  /** Target send rate, datagrams/s. */
  readonly perSecond: number;
  /** The flood runs at least this long, ms, whatever `stop()` says. */
  readonly minMs: number;
  /** … and at most this long, ms (also a bound of `maxMs × perSecond` datagrams). */
  readonly maxMs: number;
  /** Source sockets, each on its own address (at most 250 × 255). */
  readonly sources: number;
  /** Second octet of the source addresses (127.`octet`.x.y), so floods in one run do not share sources. */
  readonly octet: number;
  /** The datagrams, sent in turn. */
  readonly packets: readonly Uint8Array[];
}

/** A running flooder. */
export interface Flood {
  /** Resolves once every socket is bound and sending has begun. */
  readonly started: Promise<void>;
  /** Asks it to stop (it does once `minMs` have passed). */
  stop(): void;
  /** SIGKILLs it by PID if still running (cleanup on error). */
  kill(): void;
  /** What it sent: datagrams, and over how long, ms. */
  readonly done: Promise<{ sent: number; ms: number }>;
}

/** Starts the flooder (see {@link FLOODER}) as a child process of this one. */
export function startFlood(options: FloodOptions): Flood {
  const args = [options.port, options.perSecond, options.minMs, options.maxMs, options.sources, options.octet].map(String);
  const packets = options.packets.map((p) => Buffer.from(p).toString('base64')).join(',');
  const child = spawn(process.execPath, ['-e', FLOODER, ...args, packets, options.host ?? '127.0.0.1'], { stdio: ['pipe', 'pipe', 'inherit'] });
  // A stop after it ended on its own writes to a closed pipe: nothing to report.
  child.stdin!.on('error', () => undefined);
  let out = '';
  let onStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (onStarted = resolve));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    if (out.startsWith('started\n')) onStarted();
  });
  const done = new Promise<{ sent: number; ms: number }>((resolve, reject) =>
    child.once('exit', (code) => {
      onStarted();
      try {
        resolve(JSON.parse(out.replace(/^started\n/, '')) as { sent: number; ms: number });
      } catch {
        reject(new Error(`the flooder exited with ${code} without a result: ${out}`));
      }
    }),
  );
  return { started, stop: () => child.stdin!.end('stop\n'), kill: () => signalIfRunning(child, 'SIGKILL'), done };
}
