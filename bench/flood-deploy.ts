/**
 * The deployment of `slipstream bench flood`, as real processes on 127.0.0.x: a
 * coordinator, one relay on 127.0.0.2 (an L4 UDP rule, an L4 TCP rule and the tunnel,
 * joining the coordinator's fleet on its own) and `slipstream connect` holding a tunnel
 * session; in this process a UDP echo origin that ignores flood junk (as a game server
 * does, so a flood's flows stay unreplied) and a TCP echo origin. Also the probes each
 * window runs: is a NEW L4 UDP player, a NEW L4 TCP player and a NEW tunnel session
 * (a second `slipstream connect`) admitted now, and how long did it take.
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { freePort } from '../kit/free-port.js';
import { rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import type { BenchChild, ChildRegistry } from './qoe-processes.js';
import { startEchoOrigin, type EchoOrigin } from './qoe-traffic.js';

/** The relay's address (its rules, tunnel, metrics and origin-facing sockets). */
export const RELAY_HOST = '127.0.0.2';
/**
 * `limits.sessionsMax` of the relay: split evenly by default among its three kinds (UDP
 * rule, TCP rule, tunnel), 400 each, so a flood from {@link FLOOD_SOURCES} addresses
 * overfills the UDP budget as a long flood overfills the default 100,000.
 */
export const RELAY_SESSIONS_MAX = 1200;
/** Source addresses of the UDP floods: more than the relay's UDP budget. */
export const FLOOD_SOURCES = 1000;
/** Byte 0 of flood junk at the L4 rule; the echo origin ignores such datagrams. */
export const JUNK_BYTE = 0x6a;
/** SO_RCVBUF of the relay's listen sockets (the kernel caps it at net.core.rmem_max). */
const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;
/** How long the relay may take to join the fleet (healthy, with origin figures), ms. */
const FLEET_READY_TIMEOUT_MS = 30_000;

/** The running deployment. */
export interface FloodDeployment {
  readonly origin: EchoOrigin;
  readonly tcpOriginPort: number;
  readonly coordinatorUrl: string;
  readonly apiKey: string;
  /** Keys a forger does not have: the seal key is the fleet's, the signing key is not handed out. */
  readonly sealKey: Buffer;
  readonly relay: BenchChild;
  readonly udpRulePort: number;
  readonly tcpRulePort: number;
  readonly tunnelPort: number;
  readonly metricsPort: number;
  /** The long-lived `slipstream connect` and the UDP port the game sends to. */
  readonly connect: BenchChild;
  readonly connectPort: number;
  close(): Promise<void>;
}

/** Did a new player get in, and how long it took, ms (from the first attempt to the first echo; for a tunnel session it includes starting `slipstream connect`). */
export interface Admission {
  readonly admitted: boolean;
  readonly ms: number;
}

async function tcpEchoOrigin(): Promise<Server> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return server;
}

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Starts `slipstream connect` to the coordinator with a UDP listener on 127.0.0.1 (a free port); resolves once it has a path. */
async function startConnect(children: ChildRegistry, coordinatorUrl: string, apiKey: string, timeoutMs: number): Promise<{ child: BenchChild; port: number }> {
  const port = await freePort('udp');
  const child = children.start(['connect', '--coordinator', coordinatorUrl, '--origin', 'game', '--listen', `udp:127.0.0.1:${port}`, '--api-key', apiKey, '--bind', '127.0.0.1', '--status-interval-ms', '1000']);
  await child.waitFor(/path: \S+/, 'stdout', timeoutMs);
  return { child, port };
}

/** Starts the whole deployment in `dir`; `progress` gets one line per step. */
export async function startFloodDeployment(opts: { dir: string; children: ChildRegistry; progress: (line: string) => void }): Promise<FloodDeployment> {
  const { dir, children, progress } = opts;
  const origin = await startEchoOrigin('every', (bytes) => bytes[0] === JUNK_BYTE);
  const tcpOrigin = await tcpEchoOrigin();
  const tcpOriginPort = (tcpOrigin.address() as { port: number }).port;
  progress(`echo origins: udp 127.0.0.1:${origin.port} (ignores flood junk), tcp 127.0.0.1:${tcpOriginPort}`);

  const signingSeed = randomBytes(32);
  const sealKey = randomBytes(32);
  const fleetSecret = randomBytes(24).toString('base64');
  const apiKey = randomBytes(24).toString('base64');
  const publicKey = Buffer.from(rawPublicKey(ticketSigningKeyFromSeed(signingSeed))).toString('base64');
  const coordinatorConfig = join(dir, 'coordinator.yaml');
  writeFileSync(
    coordinatorConfig,
    ['listen: 127.0.0.1:0', 'leaseMs: 1500', 'logLevel: warn', 'origins:', `  - { name: game, address: 127.0.0.1:${origin.port} }`, 'keys:', `  ticketSigningSeed: ${signingSeed.toString('base64')}`, `  sealKey: ${sealKey.toString('base64')}`, `  fleetSecret: ${fleetSecret}`, `  apiKeys: [${apiKey}]`].join('\n'),
  );
  const coordinator = children.start(['coordinator', '--config', coordinatorConfig]);
  const coordinatorUrl = (await coordinator.waitFor(/listening on (http:\/\/[0-9.:]+)/, 'stderr', 15_000))[1]!;
  progress(`coordinator: ${coordinatorUrl}`);

  const relayConfig = join(dir, 'relay.yaml');
  writeFileSync(
    relayConfig,
    [
      `upstreamBindAddress: ${RELAY_HOST}`,
      `metrics: { listen: "${RELAY_HOST}:0" }`,
      'drain: { timeoutMs: 200 }',
      `socketReceiveBufferBytes: ${RECEIVE_BUFFER_BYTES}`,
      `limits: { sessionsMax: ${RELAY_SESSIONS_MAX} }`,
      'rules:',
      `  - { name: game-udp, protocol: udp, listen: "${RELAY_HOST}:0", origins: [127.0.0.1:${origin.port}], healthCheck: { mode: none } }`,
      `  - { name: game-tcp, protocol: tcp, listen: "${RELAY_HOST}:0", origins: [127.0.0.1:${tcpOriginPort}] }`,
      'tunnel:',
      `  listen: ${RELAY_HOST}:0`,
      `  ticketPublicKey: ${publicKey}`,
      `  sealKey: ${sealKey.toString('base64')}`,
      `  origins: { game: 127.0.0.1:${origin.port} }`,
      `  coordinatorUrl: ${coordinatorUrl}`,
      `  coordinatorFleetSecret: ${fleetSecret}`,
      'fleet:',
      '  relayId: flood-1',
      '  region: eu-central',
      '  latitude: 50.1',
      '  longitude: 8.7',
      '  heartbeatIntervalMs: 300',
      '  reportIntervalMs: 500',
    ].join('\n'),
  );
  const relay = children.start(['relay', '--config', relayConfig]);
  const startedLine = (await relay.waitFor(/^\{.*"msg":"relay started".*$/m, 'stdout', 15_000))[0];
  const addresses = (JSON.parse(startedLine) as { addresses: { rules: Record<string, { port: number }[]>; tunnel: { port: number }; metrics: { port: number } } }).addresses;
  const udpRulePort = addresses.rules['game-udp']![0]!.port;
  const tcpRulePort = addresses.rules['game-tcp']![0]!.port;
  progress(`relay (pid ${relay.child.pid}): udp rule ${RELAY_HOST}:${udpRulePort}, tcp rule ${RELAY_HOST}:${tcpRulePort}, tunnel ${RELAY_HOST}:${addresses.tunnel.port}, metrics ${RELAY_HOST}:${addresses.metrics.port}; sessionsMax ${RELAY_SESSIONS_MAX}`);

  const fleet = new CoordinatorClient({ baseUrl: coordinatorUrl });
  await until(
    async () => ((await fleet.fleet()).relays.some((r) => r.health === 'healthy' && r.origins.some((o) => o.origin === 'game')) ? true : undefined),
    FLEET_READY_TIMEOUT_MS,
    'the relay healthy with origin figures in /v1/fleet',
  );
  const connect = await startConnect(children, coordinatorUrl, apiKey, 20_000);
  progress(`connect (pid ${connect.child.child.pid}): udp 127.0.0.1:${connect.port}, tunnel session open`);
  return {
    origin,
    tcpOriginPort,
    coordinatorUrl,
    apiKey,
    sealKey,
    relay,
    udpRulePort,
    tcpRulePort,
    tunnelPort: addresses.tunnel.port,
    metricsPort: addresses.metrics.port,
    connect: connect.child,
    connectPort: connect.port,
    close: async () => {
      await origin.close();
      await new Promise<void>((resolve) => tcpOrigin.close(() => resolve()));
    },
  };
}

/**
 * A new UDP player at `host:port` from 127.0.0.1: one 100-byte datagram (byte 0 = 2, so
 * the origin answers) every 50 ms until the first echo, for at most `timeoutMs`.
 */
export async function newUdpPlayer(host: string, port: number, timeoutMs: number): Promise<Admission> {
  const socket = createSocket('udp4');
  const start = performance.now();
  try {
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const packet = Buffer.alloc(100);
    packet[0] = 2;
    const send = (): void => socket.send(packet, port, host);
    let sender: NodeJS.Timeout | undefined;
    let deadline: NodeJS.Timeout | undefined;
    const admitted = await new Promise<boolean>((resolve) => {
      socket.once('message', () => resolve(true));
      deadline = setTimeout(() => resolve(false), timeoutMs);
      send();
      sender = setInterval(send, 50);
    });
    clearInterval(sender);
    clearTimeout(deadline);
    return { admitted, ms: Math.round(performance.now() - start) };
  } finally {
    socket.close();
  }
}

/**
 * A new TCP player at `host:port` from 127.0.0.1: connects, writes 16 bytes and waits for
 * their echo; a connection refused or reset is retried every 200 ms, for at most `timeoutMs`.
 */
export async function newTcpPlayer(host: string, port: number, timeoutMs: number): Promise<Admission> {
  const start = performance.now();
  const deadline = start + timeoutMs;
  while (performance.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect({ host, port, localAddress: '127.0.0.1' });
      const hello = Buffer.from('slipstream-hello');
      let got = 0;
      const done = (result: boolean): void => {
        clearTimeout(timer);
        s.destroy();
        resolve(result);
      };
      const timer = setTimeout(() => done(false), Math.max(1, deadline - performance.now()));
      s.on('connect', () => s.write(hello));
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= hello.length) done(true);
      });
      s.on('error', () => done(false));
      s.on('close', () => done(false));
    });
    if (ok) return { admitted: true, ms: Math.round(performance.now() - start) };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { admitted: false, ms: Math.round(performance.now() - start) };
}

/** A new tunnel session: a second `slipstream connect` (a real SDK session through the coordinator), admitted once a datagram sent through it is echoed. */
export async function newTunnelSession(d: FloodDeployment, children: ChildRegistry, timeoutMs: number): Promise<Admission> {
  const start = performance.now();
  let child: BenchChild | undefined;
  try {
    const c = await startConnect(children, d.coordinatorUrl, d.apiKey, timeoutMs);
    child = c.child;
    const through = await newUdpPlayer('127.0.0.1', c.port, Math.max(1, timeoutMs - (performance.now() - start)));
    return { admitted: through.admitted, ms: Math.round(performance.now() - start) };
  } catch {
    return { admitted: false, ms: Math.round(performance.now() - start) };
  } finally {
    await child?.stop();
  }
}

/** What a slowloris held: connections asked for, connected, closed by the other end before {@link IdleTcpHold.release} (refused or reset at accept, closed by the first-byte timeout, never connected) and still open now. */
export interface IdleTcpHold {
  readonly connections: number;
  readonly sources: number;
  connected: number;
  closedByRelay: number;
  /** Connections still open now. */
  open(): number;
  /** Destroys them all. */
  release(): void;
}

/**
 * A slowloris: `connections` TCP connections to `host:port` from `sources` addresses
 * 127.`octet`.0.1…, never sending a byte. Resolves once each has connected or closed,
 * or after `settleMs`.
 */
export async function holdIdleTcp(opts: { host: string; port: number; connections: number; sources: number; octet: number; settleMs: number }): Promise<IdleTcpHold> {
  const sockets = new Set<ReturnType<typeof tcpConnect>>();
  let settled = 0;
  let released = false;
  const hold: IdleTcpHold = {
    connections: opts.connections,
    sources: opts.sources,
    connected: 0,
    closedByRelay: 0,
    open: () => sockets.size,
    release: () => {
      released = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
  };
  let onAllSettled: () => void = () => undefined;
  const allSettled = new Promise<void>((resolve) => (onAllSettled = resolve));
  for (let i = 0; i < opts.connections; i++) {
    const s = tcpConnect({ host: opts.host, port: opts.port, localAddress: `127.${opts.octet}.0.${1 + (i % opts.sources)}` });
    sockets.add(s);
    let counted = false;
    const settle = (): void => {
      if (counted) return;
      counted = true;
      if (++settled === opts.connections) onAllSettled();
    };
    s.on('connect', () => {
      hold.connected++;
      settle();
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      if (!released) hold.closedByRelay++;
      sockets.delete(s);
      settle();
    });
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([allSettled, new Promise((resolve) => (timer = setTimeout(resolve, opts.settleMs)))]);
  clearTimeout(timer);
  return hold;
}
