/**
 * `slipstream dev`: the real fleet on one machine, in one command. Real processes on
 * 127.0.0.x — a coordinator, N relays that join the fleet on their own, a `sim proxy`
 * whose shared last-mile link sits in front of every relay (the player's Wi-Fi: delay
 * and loss each way), `slipstream connect` as the player's local proxy — and an echo
 * game server in this process. Keys come from deploy/scripts/generate-keys.mjs, written
 * with every config into a directory it names and keeps. It prints the dashboard URL and
 * the local game port, then a status line every second from connect's own status output
 * (and the echoes of its built-in test traffic), until `--seconds` or Ctrl-C/SIGTERM;
 * then it stops every process by PID and exits 0. A process that dies on its own is
 * named, and the command exits 1. This is `bench qoe`'s deployment (bench/qoe-fleet.ts).
 */
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { flagCommand, type Command, type CommandIo } from '../kit/command.js';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { freePort } from '../kit/free-port.js';
import { bool, num, str, type FlagSpec, type FlagValues } from '../kit/flags.js';
import { CliUsageError } from '../proto/src/errors.js';
import { startQoeFleet, type FleetKeys, type QoeFleet } from '../bench/qoe-fleet.js';
import { ChildRegistry } from '../bench/qoe-processes.js';
import { startEchoOrigin, type EchoOrigin } from '../bench/qoe-traffic.js';

const GENERATE_KEYS = fileURLToPath(new URL('../../deploy/scripts/generate-keys.mjs', import.meta.url));
/** Status line period, ms (connect prints its own status at the same period). */
const STATUS_INTERVAL_MS = 1000;
/** Output kept per child process, characters: the tail, enough for the latest status line and an error. */
const CHILD_OUTPUT_KEEP_CHARS = 64 * 1024;
/**
 * How long after a child's exit it counts as a death, ms. Ctrl-C in a terminal signals
 * the whole process group, so the children may exit on their own SIGINT a moment before
 * this process has handled its own; an exit while stopping is not a death.
 */
const DEATH_GRACE_MS = 500;
/** Bytes of each built-in test datagram (sequence number in the first 4). */
const TEST_DATAGRAM_BYTES = 64;
/** Echoes count only for the last this many datagrams sent (at 20/s: 50 s, far beyond any RTT). */
const TEST_ECHO_WINDOW = 1000;

const FLAGS: Record<string, FlagSpec> = {
  dir: { type: 'string', valueName: 'DIR', description: 'Directory for the keys (keys.yaml), the configs and connect\'s cache; created if missing, kept after exit [default: a new directory under the system temp dir, printed at start]' },
  relays: { type: 'integer', valueName: 'N', min: 1, max: 8, default: 3, description: 'Relays in the fleet (127.0.0.2 …)' },
  loss: { type: 'number', valueName: 'PERCENT', min: 0, max: 50, default: 0, description: "Random loss of the player's last mile, each way, percent" },
  'delay-ms': { type: 'integer', valueName: 'MS', min: 0, max: 1000, default: 10, description: "Delay of the player's last mile, each way, ms" },
  'game-port': { type: 'integer', valueName: 'PORT', min: 0, max: 65535, default: 0, description: 'Local UDP port on 127.0.0.1 that connect listens on: point the game here (0 = any free port, printed)' },
  traffic: { type: 'integer', valueName: 'PPS', min: 0, max: 1000, default: 20, description: 'Built-in test datagrams per second through the game port, echoed back and counted (0 when your own game uses the port: connect answers the latest local sender)' },
  seconds: { type: 'integer', valueName: 'S', min: 1, max: 86_400, description: 'Stop after S seconds of the fleet being ready [default: run until Ctrl-C]' },
  json: { type: 'boolean', description: 'With --seconds: print one JSON summary on stdout instead of status lines' },
};

const SUMMARY = 'Run a real fleet on this machine: coordinator, relays behind an impaired last mile, an echo game server and connect, until Ctrl-C.';

/** What connect's latest `status:` line says (sdk/src/command.ts). */
export interface ConnectStatus {
  relay: string;
  /** Smoothed RTT to the relay in use, ms; undefined before the first measurement. */
  rttMs: number | undefined;
  /** Loss fractions of the tunnel's data (both directions), on the wire and what the game saw. */
  lossBeforeFec: number;
  lossAfterFec: number;
  upstreamFec: string;
  downstreamFec: string;
  packetsSent: number;
  packetsReceived: number;
  switches: number;
}

const STATUS_LINE = /status: relay (\S+) rtt (?:\?|([\d.]+) ms) loss ([\d.]+) % before FEC → ([\d.]+) % after; up (\S+) down (\S+); sent (\d+) received (\d+); switches (\d+)/g;

/** Parses the last connect `status:` line in `stdout`; undefined when there is none yet. */
export function lastConnectStatus(stdout: string): ConnectStatus | undefined {
  let m: RegExpExecArray | undefined;
  for (const match of stdout.matchAll(STATUS_LINE)) m = match;
  if (m === undefined) return undefined;
  return {
    relay: m[1]!,
    rttMs: m[2] === undefined ? undefined : Number(m[2]),
    lossBeforeFec: Number(m[3]) / 100,
    lossAfterFec: Number(m[4]) / 100,
    upstreamFec: m[5]!,
    downstreamFec: m[6]!,
    packetsSent: Number(m[7]),
    packetsReceived: Number(m[8]),
    switches: Number(m[9]),
  };
}

/** What `slipstream dev --seconds S --json` prints. */
export interface DevSummary {
  dir: string;
  coordinatorUrl: string;
  dashboardUrl: string;
  /** Connect's UDP port on 127.0.0.1: the game's. */
  gamePort: number;
  /** A UDP port on 127.0.0.1 that reaches the echo server across the same kind of last mile, without Slipstream (for comparison). */
  directPort: number;
  relays: { id: string; tunnel: string; proxy: string }[];
  /** Relays the coordinator listed as healthy at the end. */
  relaysHealthy: number;
  status: ConnectStatus | undefined;
  /** The built-in test traffic: datagrams sent to the game port and distinct ones echoed back. */
  echoes: { sent: number; received: number };
  /** Every child process by name (`sim proxy`, `coordinator`, `relay-N`, `connect`) with its PID; all stopped when the command exits. */
  processes: { name: string; pid: number }[];
  seconds: number;
}

/** Runs deploy/scripts/generate-keys.mjs, keeps its output as DIR/keys.yaml and returns the keys. */
function generateKeys(dir: string): FleetKeys {
  const run = spawnSync(process.execPath, [GENERATE_KEYS], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${GENERATE_KEYS} failed (exit ${run.status}): ${run.stderr || run.error?.message}`);
  writeFileSync(join(dir, 'keys.yaml'), run.stdout);
  const v = parseYaml(run.stdout) as Record<string, unknown>;
  const apiKeys = v.vault_api_keys as string[];
  return { ticketSigningSeed: String(v.vault_ticket_signing_seed), ticketPublicKey: String(v.vault_ticket_public_key), sealKey: String(v.vault_seal_key), fleetSecret: String(v.vault_fleet_secret), apiKey: apiKeys[0]! };
}

/** The built-in game: `pps` datagrams a second to the game port, counting distinct echoes. Stops with {@link TestTraffic.stop}. */
class TestTraffic {
  sent = 0;
  /** Distinct datagrams echoed back. */
  received = 0;
  /** Sequence numbers echoed among the last {@link TEST_ECHO_WINDOW} sent (older echoes are not counted: memory stays bounded over hours). */
  private readonly echoed = new Set<number>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('message', (bytes) => {
      if (bytes.length !== TEST_DATAGRAM_BYTES) return;
      const seq = bytes.readUInt32BE(0);
      if (seq >= this.sent || seq < this.sent - TEST_ECHO_WINDOW || this.echoed.has(seq)) return;
      this.echoed.add(seq);
      this.received++;
    });
  }

  static async start(port: number, pps: number): Promise<TestTraffic> {
    const socket = createSocket('udp4');
    await new Promise<void>((done) => socket.bind(0, '127.0.0.1', done));
    const t = new TestTraffic(socket);
    if (pps > 0) {
      t.timer = setInterval(() => {
        const datagram = Buffer.alloc(TEST_DATAGRAM_BYTES);
        datagram.writeUInt32BE(t.sent++, 0);
        socket.send(datagram, port, '127.0.0.1');
        t.echoed.delete(t.sent - 1 - TEST_ECHO_WINDOW);
      }, 1000 / pps);
    }
    return t;
  }

  stop(): Promise<void> {
    clearInterval(this.timer);
    return new Promise((done) => this.socket.close(() => done()));
  }
}

/** Resolves to `port` when UDP 127.0.0.1:`port` can be bound now; throws naming it otherwise (before any process starts, not as connect's failure 5 s later). */
async function udpPortFree(port: number): Promise<number> {
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((done, fail) => {
      socket.once('error', fail);
      socket.bind(port, '127.0.0.1', done);
    });
    return port;
  } catch (error) {
    throw new Error(`--game-port ${port}: cannot bind udp 127.0.0.1:${port} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  } finally {
    socket.close();
  }
}

const pct = (fraction: number): string => `${(fraction * 100).toFixed(1)} %`;

function statusText(status: ConnectStatus | undefined, traffic: TestTraffic, pps: number): string {
  const echoes = pps > 0 ? ` · echoes ${traffic.received}/${traffic.sent}` : '';
  if (status === undefined) return `waiting for connect's first status${echoes}`;
  const rtt = status.rttMs === undefined ? '?' : `${status.rttMs.toFixed(1)} ms`;
  return `relay ${status.relay} · rtt ${rtt} · loss ${pct(status.lossBeforeFec)} on the wire → ${pct(status.lossAfterFec)} after FEC · FEC up ${status.upstreamFec} down ${status.downstreamFec} · switches ${status.switches}${echoes}`;
}

/** Resolves once a stop is asked for: SIGINT/SIGTERM, the `--seconds` timer, or a child's death (with its name). */
class StopSignal {
  stopping = false;
  reason: { kind: 'signal' | 'timer' } | { kind: 'death'; name: string; detail: string } | undefined;
  private resolveStop!: () => void;
  readonly asked = new Promise<void>((done) => (this.resolveStop = done));
  private readonly onSignal = (): void => this.stop({ kind: 'signal' });

  constructor() {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  stop(reason: NonNullable<StopSignal['reason']>): void {
    if (this.stopping) return;
    this.stopping = true;
    this.reason = reason;
    this.resolveStop();
  }

  dispose(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }
}

async function run(values: FlagValues, io: CommandIo): Promise<number> {
  const json = bool(values, 'json');
  const seconds = num(values, 'seconds');
  if (json && seconds === undefined) throw new CliUsageError('--json', '--json: needs --seconds S (the summary is printed when the fleet stops)');
  const givenDir = str(values, 'dir');
  const dir = givenDir === undefined ? mkdtempSync(join(tmpdir(), 'slipstream-dev-')) : resolve(givenDir);
  if (givenDir !== undefined) mkdirSync(dir, { recursive: true });
  const relayCount = num(values, 'relays')!;
  const pps = num(values, 'traffic')!;
  const progress = (line: string): void => io.err(`slipstream dev: ${line}\n`);
  const stop = new StopSignal();
  const children = new ChildRegistry(false);
  children.keepChars = CHILD_OUTPUT_KEEP_CHARS;
  let origin: EchoOrigin | undefined;
  let traffic: TestTraffic | undefined;
  let statusTimer: NodeJS.Timeout | undefined;
  const tty = !json && process.stdout.isTTY === true;
  try {
    progress(`keys and configs in ${dir} (kept after exit)`);
    const keys = generateKeys(dir);
    origin = await startEchoOrigin('every');
    progress(`echo game server: udp 127.0.0.1:${origin.port}`);
    const gamePort = num(values, 'game-port')! === 0 ? await freePort('udp') : await udpPortFree(num(values, 'game-port')!);
    const loss = num(values, 'loss')! / 100;
    const impairment = { delayMs: num(values, 'delay-ms')!, ...(loss > 0 ? { loss: { model: 'bernoulli', p: loss } } : {}) };
    const abort = new AbortController();
    const starting = startQoeFleet({ dir, children, originPort: origin.port, seed: Math.floor(Math.random() * 0xffff_ffff), progress, relayCount, impairment, keys, connectPort: gamePort, signal: abort.signal });
    const fleet: QoeFleet | undefined = await Promise.race([starting, stop.asked.then(() => undefined)]);
    if (fleet === undefined) {
      // Stopped while the fleet formed: stop what started (no process starts after that),
      // then let the start fail on the stopped processes before returning.
      abort.abort();
      const code = await finish(0);
      await starting.catch(() => undefined);
      return code;
    }
    // From here on, a child that exits without being asked to is a death.
    for (const child of children.all) {
      void child.exited.then(() =>
        setTimeout(() => stop.stop({ kind: 'death', name: child.name, detail: `exit ${child.child.exitCode ?? child.child.signalCode}; ${(child.stderr || child.stdout).trim().split('\n').slice(-3).join(' | ')}` }), DEATH_GRACE_MS).unref(),
      );
    }
    const dashboardUrl = `${fleet.coordinatorUrl}/`;
    const processes = (): DevSummary['processes'] => children.all.map((c) => ({ name: c.name, pid: c.child.pid! }));
    traffic = await TestTraffic.start(gamePort, pps);
    const lines = [
      `ready: ${relayCount} relay${relayCount === 1 ? '' : 's'}, last mile ${impairment.delayMs} ms and ${num(values, 'loss')!} % loss each way`,
      `  dashboard:  ${dashboardUrl}`,
      `  game port:  udp 127.0.0.1:${gamePort} (through Slipstream to the echo server)${pps > 0 ? `; ${pps} test datagrams/s already use it (--traffic 0 for your own game)` : ''}`,
      `  direct:     udp 127.0.0.1:${fleet.directPort} (same last mile, no relay: to compare)`,
      `  relays:     ${fleet.relays.map((r) => `${r.relayId} ${r.tunnel} (via ${r.proxy})`).join(', ')}`,
      `  processes:  ${processes().map((p) => `${p.name} ${p.pid}`).join(', ')}`,
      seconds === undefined ? '  Ctrl-C stops everything.' : `  stopping after ${seconds} s.`,
    ];
    if (!json) io.out(`${lines.join('\n')}\n`);
    else progress(lines.join('\n'));
    if (!json) {
      statusTimer = setInterval(() => {
        const text = statusText(lastConnectStatus(fleet.connect.stdout), traffic!, pps);
        io.out(tty ? `\r\x1b[K${text}` : `${text}\n`);
      }, STATUS_INTERVAL_MS);
    }
    const timer = seconds === undefined ? undefined : setTimeout(() => stop.stop({ kind: 'timer' }), seconds * 1000);
    await stop.asked;
    clearTimeout(timer);
    if (tty) io.out('\n');
    if (json && stop.reason?.kind === 'timer') {
      const view = await new CoordinatorClient({ baseUrl: fleet.coordinatorUrl, timeoutMs: 3000 }).fleet().catch(() => undefined);
      const summary: DevSummary = {
        dir,
        coordinatorUrl: fleet.coordinatorUrl,
        dashboardUrl,
        gamePort,
        directPort: fleet.directPort,
        relays: fleet.relays.map((r) => ({ id: r.relayId, tunnel: r.tunnel, proxy: r.proxy })),
        relaysHealthy: view?.relays.filter((r) => r.health === 'healthy').length ?? 0,
        status: lastConnectStatus(fleet.connect.stdout),
        echoes: { sent: traffic.sent, received: traffic.received },
        processes: processes(),
        seconds: seconds!,
      };
      io.out(`${JSON.stringify(summary)}\n`);
    }
    return await finish(stop.reason?.kind === 'death' ? 1 : 0);
  } catch (error) {
    if (error instanceof CliUsageError) throw error;
    progress(`cannot start the fleet: ${(error as Error).message}`);
    return await finish(1);
  }

  async function finish(code: number): Promise<number> {
    stop.stopping = true;
    clearInterval(statusTimer);
    if (stop.reason?.kind === 'death') progress(`${stop.reason.name} died unexpectedly (${stop.reason.detail}); stopping everything`);
    await traffic?.stop();
    await children.stopAll();
    await origin?.close();
    stop.dispose();
    progress(`stopped ${children.all.length} process${children.all.length === 1 ? '' : 'es'}; keys and configs kept in ${dir}`);
    return code;
  }
}

/** The `dev` command. */
export const devCommand: Command = flagCommand({
  path: 'dev',
  summary: SUMMARY,
  usage: 'slipstream dev [--relays N] [--loss PERCENT] [--dir DIR] [--seconds S --json] [flags]',
  flags: FLAGS,
  run: ({ values }, io) => run(values, io),
});

