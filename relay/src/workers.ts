/**
 * `workers: N` (N ≥ 2): N relay workers on the same ports, so one relay uses N cores.
 *
 * Worker 0 is the primary, the process's main thread: it is the relay the operator
 * sees — it logs `relay started`, takes the signals (SIGHUP reload, SIGTERM drain),
 * registers with the coordinator and heartbeats (fleet membership), serves /metrics and
 * /health summed over every worker, and runs the WebRTC entry. Workers 1…N-1 are
 * worker_threads (worker-main.ts) running the same relay on the same config file,
 * without those primary-only parts. Threads, not child processes: one process keeps
 * one PID for systemd and signals and one open-file limit, and a hand-off is a
 * MessagePort post of a transferred buffer instead of a serialised IPC message over a pipe.
 *
 * Every worker binds the rules' listen ports and the tunnel port with SO_REUSEPORT
 * (the primary first: ports asked as 0 are the primary's bound ones for the others).
 * The kernel spreads datagrams and TCP connections by their 4-tuple hash, so an L4 UDP
 * flow or TCP connection stays on one worker. A tunnel session must live on one worker
 * too though its client's address may change (migration) and the same session may come
 * from another relay (switching): its owner is derived from its session id
 * (worker-steering.ts), and a worker that receives a tunnel datagram for a session it
 * does not own hands it to the owner over a MessagePort; the owner answers from its
 * own socket on the same port. With batched UDP I/O (the udp-batch addon) the primary
 * attaches a kernel steering program (SO_ATTACH_REUSEPORT_CBPF, worker-steering.ts) to
 * the tunnel port's reuseport group, so the kernel delivers each session's datagrams to
 * its owner and hand-offs are rare; on `dgram` every misdelivered datagram is handed off.
 *
 * Limits (`limits.*`, `tcp.*`) apply per worker. The revocation file is read, and the
 * coordinator's revocation feed followed, by every worker. The fleet heartbeat carries
 * every worker's load and players (`status`; the threads' refreshed every second), and the fleet peers the
 * primary's agent learns are sent to every thread.
 */
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { AggregatorRegistry, Counter, type Registry } from 'prom-client';
import type { Endpoint } from '../../proto/src/transport.js';
import type { RelayConfig } from './config.js';
import type { Relay } from './relay.js';
import type { RelayHealth, RelayWorkerHooks } from './worker-hooks.js';
import { sessionOwner, steeringProgram } from './worker-steering.js';
import { mergeStatusTallies, type StatusTally } from './core/fleet-status.js';

/** How long the primary waits for a worker to start or answer a scrape, ms. */
const WORKER_START_TIMEOUT_MS = 20_000;
const WORKER_ANSWER_TIMEOUT_MS = 5_000;

/** What the primary hands each worker thread (`workerData`). */
export interface WorkerData {
  /** This worker's index, 1 to `count` - 1 (the primary is 0). */
  readonly index: number;
  /** Relay workers in all, the primary included (`workers:`). */
  readonly count: number;
  /** The relay's configuration file, read again by the worker (and on each reload). */
  readonly configPath: string;
  /** Ports bound by the primary where the file asks for 0: per rule name, and the tunnel's. */
  readonly ports: { readonly rules: Record<string, number[]>; readonly tunnel: number | undefined };
  /** The primary's log level, so the worker logs alike. */
  readonly logLevel: string;
  /** The primary's log format, or undefined for the default. */
  readonly logFormat: string | undefined;
  /** Hand-off ports to the other workers, by worker index (its own absent). */
  readonly peers: Record<number, MessagePort>;
}

/** A hand-off: a tunnel datagram for the receiving worker's session, and where it came from. */
type HandOff = [bytes: Uint8Array, address: string, port: number];

/** Counters of one worker, for `slipstream_relay_worker_*`. */
export class WorkerCounters {
  /** Tunnel datagrams this worker received for a session another worker owns and handed to it. */
  handedOut = 0;
  /** Tunnel datagrams other workers handed to this one (its sessions'). */
  handedIn = 0;
}

/**
 * The hooks that make a relay worker `index` of `count`: tunnel datagrams for sessions
 * owned elsewhere go to `peers[owner]`, and datagrams handed in are delivered to the
 * relay `relay()` returns (set once it started).
 */
export function workerHooks(index: number, count: number, peers: ReadonlyMap<number, MessagePort>, relay: () => Relay | undefined, counters: WorkerCounters): RelayWorkerHooks {
  for (const port of peers.values()) {
    port.on('message', ([bytes, address, port2]: HandOff) => {
      counters.handedIn++;
      relay()?.deliverTunnel(bytes, { address, port: port2 });
    });
    port.unref();
  }
  return {
    reusePort: true,
    tunnelIntake(message: Uint8Array, from: Endpoint): boolean {
      const owner = sessionOwner(message, count);
      if (owner === undefined || owner === index) return false;
      const peer = peers.get(owner);
      if (peer === undefined) return false;
      // A copy: a received Buffer's memory may be shared (a batched arena is reused), and is transferred, not cloned.
      const bytes = new Uint8Array(message);
      counters.handedOut++;
      peer.postMessage([bytes, from.address, from.port] satisfies HandOff, [bytes.buffer]);
      return true;
    },
  };
}

/** Adds `slipstream_relay_worker_packets_total` and `…_worker_handoffs_total` for worker `index` to `registry`. */
export function registerWorkerMetrics(registry: Registry, index: number, relay: () => Relay | undefined, counters: WorkerCounters): void {
  const worker = String(index);
  new Counter({
    name: 'slipstream_relay_worker_packets_total',
    help: 'Datagrams each relay worker handled (every rule and the tunnel, both directions; hand-offs counted by the worker that owns the session).',
    labelNames: ['worker'],
    registers: [registry],
    collect() {
      let n = 0;
      for (const s of relay()?.core.ruleStats.values() ?? []) n += s.packetsUp + s.packetsDown;
      this.reset();
      this.inc({ worker }, n);
    },
  });
  new Counter({
    name: 'slipstream_relay_worker_handoffs_total',
    help: 'Tunnel datagrams a worker received for a session another worker owns (direction out) or was handed by another worker (in).',
    labelNames: ['worker', 'direction'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ worker, direction: 'out' }, counters.handedOut);
      this.inc({ worker, direction: 'in' }, counters.handedIn);
    },
  });
}

/** Whether Node `version` (e.g. `24.1.0`) binds `net` and `dgram` sockets with `reusePort` (added in 22.12 and 23.1). */
export function reusePortSupported(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major >= 24 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** Messages a worker thread sends the primary. */
export type FromWorker = { type: 'started' } | { type: 'failed'; error: string } | { type: 'drained'; left: number } | { type: 'answer'; id: number; value: unknown } | { type: 'closed' };
/** Messages the primary sends a worker thread. */
export type ToWorker = { type: 'reload' } | { type: 'drain'; deadlineMs: number } | { type: 'close' } | { type: 'metrics'; id: number } | { type: 'health'; id: number } | { type: 'load'; id: number } | { type: 'peers'; addresses: string[] };

/** What a worker thread answers to `load`: its fleet-load sessions and datagrams since start. */
export interface WorkerLoad {
  /** Sessions open now, as the fleet heartbeat counts them. */
  readonly sessions: number;
  /** Packets its rules carried both ways since the worker started (its `ruleStats`, as the fleet load counts them). */
  readonly packets: number;
  /** Its players, FEC counters and L4 flows for the heartbeat's `status` (since its previous answer). */
  readonly status: StatusTally;
}

/** How often the primary refreshes the other workers' load for the fleet heartbeat, ms. */
const LOAD_REFRESH_MS = 1000;

/** The primary's side: the worker threads, and the primary relay's hooks. */
export class RelayWorkers {
  private readonly threads: Worker[] = [];
  private nextId = 0;
  private readonly pending = new Map<number, (value: unknown) => void>();
  private primary: Relay | undefined;
  /** The primary's own hand-off counters. */
  private readonly counters = new WorkerCounters();
  private readonly peers = new Map<number, MessagePort>();
  /** Hand-off ports for the threads, by worker index, then peer index. */
  private readonly threadPorts = new Map<number, Record<number, MessagePort>>();
  /** The threads' load summed, as of the last refresh. */
  private threadLoad: WorkerLoad = { sessions: 0, packets: 0, status: { origins: {}, ruleSessions: {} } };
  private loadTimer: NodeJS.Timeout | undefined;
  /** Set once drain or terminate began: threads exiting then are expected. */
  private stopping = false;

  /**
   * Prepares `count` workers (the primary and count-1 threads): every pair gets a
   * MessageChannel. When the primary's tunnel socket is the batched driver's, the
   * primary attaches {@link steeringProgram} to the tunnel port's reuseport group once
   * it is bound (before the threads bind theirs), and the kernel then delivers each
   * tunnel datagram to its session's owner (hand-offs remain for what it misses); the
   * `worker_steering` log line says which.
   */
  constructor(
    readonly count: number,
    private readonly logger: Logger,
  ) {
    for (let i = 1; i < count; i++) this.threadPorts.set(i, {});
    for (let a = 0; a < count; a++) {
      for (let b = a + 1; b < count; b++) {
        const { port1, port2 } = new MessageChannel();
        if (a === 0) this.peers.set(b, port1);
        else this.threadPorts.get(a)![b] = port1;
        this.threadPorts.get(b)![a] = port2;
      }
    }
  }

  /** The hooks for the primary's relay (worker 0). */
  primaryHooks(): RelayWorkerHooks {
    return {
      ...workerHooks(0, this.count, this.peers, () => this.primary, this.counters),
      onTunnelSocket: (attach) => {
        if (attach === undefined) {
          this.logger.info({ event: 'worker_steering', kernel: false, reason: 'dgram' }, 'tunnel datagrams reach their session\'s worker by hand-off (udp i/o dgram: no kernel steering program)');
          return;
        }
        try {
          attach(steeringProgram(this.count));
          this.logger.info({ event: 'worker_steering', kernel: true }, 'kernel steering of tunnel datagrams to their session\'s worker attached (SO_ATTACH_REUSEPORT_CBPF)');
        } catch (error) {
          this.logger.warn({ event: 'worker_steering', kernel: false, err: (error as Error).message }, 'kernel steering of tunnel datagrams not attached; workers hand them over');
        }
      },
      metricsText: () => this.metricsText(),
      health: (own) => this.health(own),
      otherWorkersLoad: () => this.threadLoad,
      onPeers: (addresses) => {
        for (const thread of this.threads) thread.postMessage({ type: 'peers', addresses: [...addresses] } satisfies ToWorker);
      },
    };
  }

  /**
   * Starts the worker threads, one after the other (the reuseport group's order is the
   * workers' order), once the primary `relay` has bound its ports. Rejects, having
   * stopped those started, when one fails to start.
   */
  async start(relay: Relay, configPath: string, logLevel: string, logFormat: string | undefined): Promise<void> {
    if (!reusePortSupported(process.versions.node)) throw new Error(`workers: ${this.count} needs SO_REUSEPORT from Node (22.12+, 23.1+ or 24+); this is Node ${process.versions.node}: upgrade Node or set workers: 1`);
    this.primary = relay;
    registerWorkerMetrics(relay.metrics, 0, () => this.primary, this.counters);
    const addresses = relay.addresses();
    const ports = { rules: Object.fromEntries(Object.entries(addresses.rules).map(([rule, eps]) => [rule, eps.map((e: Endpoint) => e.port)])), tunnel: addresses.tunnel?.port };
    try {
      for (let index = 1; index < this.count; index++) {
        const peers = this.threadPorts.get(index)!;
        const data: WorkerData = { index, count: this.count, configPath, ports, logLevel, logFormat, peers };
        const thread = new Worker(new URL('./worker-main.js', import.meta.url), { workerData: data, transferList: Object.values(peers) });
        this.threads.push(thread);
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`relay worker ${index} did not start within ${WORKER_START_TIMEOUT_MS} ms`)), WORKER_START_TIMEOUT_MS);
          thread.once('error', (error) => reject(new Error(`relay worker ${index} failed: ${error.message}`)));
          thread.on('message', (message: FromWorker) => {
            if (message.type === 'started') {
              clearTimeout(timer);
              resolve();
            } else if (message.type === 'failed') {
              clearTimeout(timer);
              reject(new Error(`relay worker ${index}: ${message.error}`));
            } else if (message.type === 'answer') {
              this.pending.get(message.id)?.(message.value);
              this.pending.delete(message.id);
            }
          });
        });
        // A worker that dies later (a bug) takes the relay down loudly rather than silently losing its sessions' traffic.
        thread.on('error', (error) => {
          this.logger.fatal({ event: 'worker_failed', worker: index, err: error.message }, 'relay worker failed; exiting');
          process.exit(1);
        });
        thread.on('exit', (code) => {
          if (this.stopping) return;
          this.logger.fatal({ event: 'worker_failed', worker: index, exitCode: code }, 'relay worker exited; exiting');
          process.exit(1);
        });
      }
    } catch (error) {
      await this.terminate();
      throw error;
    }
    this.loadTimer = setInterval(() => {
      void this.ask((id) => ({ type: 'load', id })).then((answers) => {
        const loads = answers as WorkerLoad[];
        this.threadLoad = {
          sessions: loads.reduce((n, l) => n + l.sessions, 0),
          packets: loads.reduce((n, l) => n + l.packets, 0),
          status: loads.reduce((sum, l) => mergeStatusTallies(sum, l.status), { origins: {}, ruleSessions: {} }),
        };
      });
    }, LOAD_REFRESH_MS);
    this.loadTimer.unref();
  }

  /** Asks every thread `message` and collects their answers (a thread that does not answer in time is left out). */
  private ask(make: (id: number) => ToWorker): Promise<unknown[]> {
    return Promise.all(
      this.threads.map(
        (thread) =>
          new Promise<unknown>((resolve) => {
            const id = this.nextId++;
            const timer = setTimeout(() => {
              this.pending.delete(id);
              resolve(undefined);
            }, WORKER_ANSWER_TIMEOUT_MS);
            this.pending.set(id, (value) => {
              clearTimeout(timer);
              resolve(value);
            });
            thread.postMessage(make(id));
          }),
      ),
    ).then((answers) => answers.filter((a) => a !== undefined));
  }

  /** `/metrics` over every worker: each worker's registry as JSON, summed by name and labels. */
  private async metricsText(): Promise<string> {
    const own = await this.primary!.metrics.getMetricsAsJSON();
    const others = (await this.ask((id) => ({ type: 'metrics', id }))) as (typeof own)[];
    return AggregatorRegistry.aggregate([own, ...others]).metrics();
  }

  /** `/health` over every worker: counts summed; draining when the primary is. */
  private async health(own: RelayHealth): Promise<RelayHealth> {
    const others = (await this.ask((id) => ({ type: 'health', id }))) as RelayHealth[];
    const sum = (pick: (h: RelayHealth) => number): number => others.reduce((n, h) => n + pick(h), pick(own));
    return { ...own, sessions: sum((h) => h.sessions), udpFlows: sum((h) => h.udpFlows), udpFlowsUnreplied: sum((h) => h.udpFlowsUnreplied), tcpConnections: sum((h) => h.tcpConnections), tunnelSessions: sum((h) => h.tunnelSessions) };
  }

  /** SIGHUP: every thread re-reads the config file (the primary reloads itself). */
  reload(): void {
    for (const thread of this.threads) thread.postMessage({ type: 'reload' } satisfies ToWorker);
  }

  /** Sessions open in the threads now (the primary's are its relay's). */
  async sessionCount(): Promise<number> {
    return ((await this.ask((id) => ({ type: 'health', id }))) as RelayHealth[]).reduce((n, h) => n + h.sessions, 0);
  }

  /** SIGTERM: every thread drains with `deadlineMs` and closes; resolves with the sessions they cut. */
  async drain(deadlineMs: number): Promise<number> {
    this.stopping = true;
    const lefts = await Promise.all(
      this.threads.map(
        (thread) =>
          new Promise<number>((resolve) => {
            const onMessage = (message: FromWorker): void => {
              if (message.type !== 'drained') return;
              thread.off('message', onMessage);
              resolve(message.left);
            };
            thread.on('message', onMessage);
            thread.once('exit', () => resolve(0));
            thread.postMessage({ type: 'drain', deadlineMs } satisfies ToWorker);
          }),
      ),
    );
    await this.terminate();
    return lefts.reduce((a, b) => a + b, 0);
  }

  /** Stops every thread now. */
  async terminate(): Promise<void> {
    this.stopping = true;
    clearInterval(this.loadTimer);
    for (const port of this.peers.values()) port.close();
    await Promise.all(this.threads.map((thread) => thread.terminate()));
    this.threads.length = 0;
  }
}

/**
 * A thread's config: the file's, less what only the primary runs (metrics endpoint,
 * fleet membership, WebRTC entry, the revocation state file), with the ports the
 * primary bound where the file asks for 0.
 */
export function workerConfig(config: RelayConfig, ports: WorkerData['ports']): RelayConfig {
  const core = config.core;
  const rules = core.rules.map((rule) => {
    const bound = ports.rules[rule.name];
    if (rule.listenPort !== 0 || bound === undefined || bound.length !== 1) return rule;
    return { ...rule, listenPort: bound[0]!, listenPortEnd: bound[0]! };
  });
  const tunnel = core.tunnel !== undefined && core.tunnel.listenPort === 0 && ports.tunnel !== undefined ? { ...core.tunnel, listenPort: ports.tunnel } : core.tunnel;
  return { ...config, core: { ...core, rules, tunnel }, metricsListen: undefined, fleet: undefined, webrtc: undefined, revocationStateFile: undefined };
}
