/**
 * The relay processes `slipstream bench relay` measures (bench/relay.ts): the same
 * config for each, started as real `slipstream relay` processes on 127.0.0.1 — the
 * relay as configured (`udpIo` from `--udp-io`, `auto` by default: batched when the
 * addon loads), a second one forced onto `dgram` (`SLIPSTREAM_UDP_IO=dgram`) so that the
 * batched path and the fallback are measured in the same rounds, and one with
 * `workers: N` for the workers row.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child, HEALTH_PAYLOAD, type Target } from './relay-measure.js';

const CLI = fileURLToPath(new URL('../cli/slipstream.js', import.meta.url));

/** The relay's UDP I/O settings the bench passes through (relay/README.md, `udpIo`). */
export type BenchUdpIo = 'auto' | 'batched' | 'dgram';
/** The environment variable the relay reads to override `udpIo` (relay/src/udp-batch-driver.ts). */
export const UDP_IO_ENV = 'SLIPSTREAM_UDP_IO';

/** What one relay config of the bench needs. */
export interface RelayConfigInput {
  originUdpPort: number;
  originTcpPort: number;
  ticketPublicKeyBase64: string;
  sealKeyBase64: string;
  udpIo: BenchUdpIo;
  /** Relay workers (threads on the same ports); 1: none. */
  workers: number;
  /** The browser entry's lines under `tunnel:` (only the main relay has one), or none. */
  webrtcLines: string[];
}

/** The relay config every relay of the bench runs: every feature on, limits above what the bench offers. */
export function relayConfigText(input: RelayConfigInput): string {
  return [
    'logLevel: warn',
    'upstreamBindAddress: 127.0.0.1',
    'socketReceiveBufferBytes: 8388608',
    // Origin-facing sockets too (the baseline's upstream sockets get the same): with
    // the OS default (~208 KiB) a stall of a few ms at 10,000 packets/s of 1200 B
    // overflows them, and echoes are lost in both forwarders.
    'upstreamReceiveBufferBytes: 8388608',
    `udpIo: ${input.udpIo}`,
    `workers: ${input.workers}`,
    'metrics:',
    '  listen: 127.0.0.1:0',
    'limits:',
    // Every limit on, set above what the bench offers so that it measures their cost, not their effect.
    '  sessionsMax: 100000',
    '  sessionsPerSourceMax: 1000',
    '  newSessionsPerSourcePerSecond: 1000',
    '  sourcePacketsPerSecond: 10000000',
    '  sourceBytesPerSecond: 10000000000',
    '  sessionPacketsPerSecond: 10000000',
    '  sessionBytesPerSecond: 10000000000',
    '  unauthenticatedPacketsPerSecond: 1000',
    '  ticketVerificationsPerSecond: 100000',
    '  ticketVerificationsPerSourcePerSecond: 100000',
    'originGroups:',
    '  bench:',
    `    origins: [127.0.0.1:${input.originUdpPort}]`,
    '    healthCheck:',
    '      mode: udp',
    '      intervalMs: 1000',
    '      timeoutMs: 500',
    `      udpPayloadHex: '${HEALTH_PAYLOAD.toString('hex')}'`,
    '  benchTcp:',
    `    origins: [127.0.0.1:${input.originTcpPort}]`,
    'rules:',
    '  - name: bench-udp',
    '    protocol: udp',
    '    listen: 127.0.0.1:0',
    '    group: bench',
    '  - name: bench-tcp',
    '    protocol: tcp',
    '    listen: 127.0.0.1:0',
    '    group: benchTcp',
    'tunnel:',
    '  listen: 127.0.0.1:0',
    `  ticketPublicKey: ${input.ticketPublicKeyBase64}`,
    `  sealKey: ${input.sealKeyBase64}`,
    '  origins:',
    `    bench: 127.0.0.1:${input.originUdpPort}`,
    '  fec:',
    '    modes: [off]',
    ...input.webrtcLines,
  ].join('\n');
}

/** A relay process the bench started, with what it said at start. */
export interface BenchRelay {
  child: Child;
  target: Target;
  tunnelPort: number;
  metricsPort: number | undefined;
  webrtcPort: number | undefined;
  /** The UDP I/O the relay runs and why (its `udp_io` log line). */
  udpIo: { mode: 'batched' | 'dgram'; reason: string };
}

/**
 * Starts `slipstream relay` on `config` (written to `dir/<name>.yaml`) and waits for
 * `relay started`; `env` is added to this process's environment (`SLIPSTREAM_UDP_IO`).
 * Pushes the child onto `children` at once, so that the caller stops it even when the
 * start fails.
 */
export async function startBenchRelay(name: Target['name'], dir: string, config: string, env: Record<string, string>, children: Child[]): Promise<BenchRelay> {
  const configPath = join(dir, `${name}.yaml`);
  writeFileSync(configPath, config);
  const child = new Child(spawn(process.execPath, [CLI, 'relay', '--config', configPath, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } }));
  children.push(child);
  const started = JSON.parse(await child.waitFor((l) => l.includes('"relay started"'), 20_000)) as { addresses: { rules: Record<string, { port: number }[]>; tunnel: { port: number }; metrics?: { port: number }; webrtc?: { port: number } } };
  const ioLine = child.lines.find((l) => l.includes('"udp_io"'));
  const io = ioLine ? (JSON.parse(ioLine) as { mode?: string; reason?: string }) : {};
  return {
    child,
    target: { name, pid: child.process.pid!, udpPort: started.addresses.rules['bench-udp']![0]!.port, tcpPort: started.addresses.rules['bench-tcp']![0]!.port },
    tunnelPort: started.addresses.tunnel.port,
    metricsPort: started.addresses.metrics?.port,
    webrtcPort: started.addresses.webrtc?.port,
    udpIo: { mode: io.mode === 'batched' ? 'batched' : 'dgram', reason: io.reason ?? 'the relay logged no udp_io line' },
  };
}
