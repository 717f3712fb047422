/**
 * A paced UDP ping against an echo on 127.0.0.1, for measuring what the impairment
 * proxy does to a flow (its tests and `slipstream bench proxy`): each probe carries its
 * sequence number in its first 4 bytes; RTT is measured with this process's monotonic
 * clock; a probe without a reply has RTT NaN.
 */
import { createSocket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** What a ping run saw: per probe, when it was sent and its RTT (NaN when no reply came), ms. */
export interface PingRun {
  readonly sentAtMs: Float64Array;
  readonly rttMs: Float64Array;
}

/** Options of {@link ping}. */
export interface PingOptions {
  /** Probe size, bytes (at least 4). Default 64. */
  readonly sizeBytes?: number;
  /** How long to wait for replies after the last probe, ms. Default 500. */
  readonly graceMs?: number;
  /** Period of the pacing timer, ms (probes due since the last tick go out together). Default 2. */
  readonly pacingTickMs?: number;
  /** Called as each probe is sent, with its sequence number and send time (ms, monotonic). */
  readonly onSent?: (seq: number, atMs: number) => void;
}

/**
 * Sends `count` UDP probes to 127.0.0.1:`port`, `ratePerSecond` of them per second
 * (paced from a timer, catching up when late), and collects replies until `graceMs`
 * after the last.
 */
export async function ping(port: number, count: number, ratePerSecond: number, options: PingOptions = {}): Promise<PingRun> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const sentAtMs = new Float64Array(count).fill(Number.NaN);
  const rttMs = new Float64Array(count).fill(Number.NaN);
  socket.on('message', (bytes) => {
    const now = performance.now();
    if (bytes.length < 4) return;
    const seq = bytes.readUInt32BE(0);
    if (seq < count && Number.isNaN(rttMs[seq]!)) rttMs[seq] = now - sentAtMs[seq]!;
  });
  const sizeBytes = Math.max(4, options.sizeBytes ?? 64);
  const startMs = performance.now();
  let next = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(count, Math.floor(((performance.now() - startMs) * ratePerSecond) / 1000) + 1);
      while (next < due) {
        // A fresh buffer per probe: dgram may still hold the previous one.
        const payload = Buffer.alloc(sizeBytes);
        payload.writeUInt32BE(next, 0);
        const at = performance.now();
        sentAtMs[next] = at;
        socket.send(payload, port, '127.0.0.1');
        options.onSent?.(next, at);
        next++;
      }
      if (next >= count) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, options.pacingTickMs ?? 2);
    tick();
  });
  await sleep(options.graceMs ?? 500);
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return { sentAtMs, rttMs };
}

/** The RTTs of the probes that were answered, ms, in send order. */
export function answeredRtts(run: PingRun): number[] {
  return [...run.rttMs].filter((rtt) => !Number.isNaN(rtt));
}
