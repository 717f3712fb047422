/**
 * The relay's fleet membership as a sans-IO state machine: it registers with the
 * coordinator, heartbeats its load every heartbeat interval, re-reads the fleet list to
 * know the mesh, runs the {@link PathProber} over that mesh (and the relay's origins)
 * and sends its path reports. It never touches a socket, a timer or a clock: the driver
 * carries its requests to the coordinator (HTTP in production, `relay/src/fleet.ts`;
 * the simulated network in `sim/src/drivers/fleet-driver.ts`) and feeds the answers back.
 *
 * Inputs: the commands {@link FleetAgentCore.start}, {@link FleetAgentCore.setDraining},
 * {@link FleetAgentCore.awaitAcceptance}, {@link FleetAgentCore.stop};
 * {@link FleetAgentCore.handleResponse} (the answer to a request, by its id),
 * {@link FleetAgentCore.handleTimeout}; and for the prober
 * {@link FleetAgentCore.handleDatagram} and {@link FleetAgentCore.handleConnectResult}.
 * Outputs, drained after every input in this order (the str0m rule):
 * {@link FleetAgentCore.pollEvent}, {@link FleetAgentCore.pollRequest},
 * {@link FleetAgentCore.pollTransmit} (UDP probes), then one timer at
 * {@link FleetAgentCore.pollTimeout}.
 *
 * Failures of the coordinator are conditions, not crashes: registration retries with
 * backoff (250 ms doubling to 5 s), a heartbeat answered `unknown_relay` (the
 * coordinator restarted, or the lease ran out) registers again (a re-join with the same
 * relay id), and every failing kind of request is reported once per streak (`failed`,
 * then `recovered`).
 */
import { relayInfoOf, type RegisterAnswer, type RelayInfo, type RelayLoad, type RelayPathReport, type RelayStatus } from '../../../proto/src/api/contract.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import { splitHostPort } from './addr.js';
import { PathProber, type ProbeTarget, type ProbeTransmit } from './path-prober.js';

/** First retry delay after a failed registration, ms (doubles up to {@link REGISTER_BACKOFF_MS_MAX}). */
export const REGISTER_BACKOFF_MS_MIN = 250;
/** Longest retry delay after failed registrations, ms. */
export const REGISTER_BACKOFF_MS_MAX = 5_000;

/**
 * What the agent is told about the relay it serves (the `fleet` section, resolved): the
 * {@link RelayInfo} it registers with (public addresses resolved by the driver from the
 * config or the bound tunnel), and its own periods.
 */
export interface FleetAgentSpec extends RelayInfo {
  /** Heartbeat period, ms (the coordinator's own interval caps it). */
  readonly heartbeatIntervalMs: number;
  /** How often the fleet list (the mesh to probe) is re-read, ms. */
  readonly meshRefreshMs: number;
  /** Probe period per target, ms. */
  readonly probeIntervalMs: number;
  /** A probe unanswered this long is lost, ms. */
  readonly probeTimeoutMs: number;
  /** Period of path reports to the coordinator, ms. */
  readonly reportIntervalMs: number;
  /** How origins are probed: TCP connect time (`connect` events), or not at all. */
  readonly originProbe: 'tcp' | 'none';
}

/** What the agent may read of the relay it serves (a narrow context, built once by the driver). */
export interface FleetAgentContext {
  /** The relay's load now, for a heartbeat (`draining` is the agent's own). */
  load(nowMs: number): Omit<RelayLoad, 'draining'>;
  /** Origins the relay serves: name → address (read at every new fleet list). */
  origins(): ReadonlyMap<string, { readonly address: string; readonly port: number }>;
  /**
   * The relay's players and L4 rules for a heartbeat's `status` (called once per
   * heartbeat, only while the coordinator accepts it: {@link RegisterAnswer.heartbeatStatus}).
   * Optional: without it heartbeats carry no status.
   */
  status?(): RelayStatus;
}

/** The part of a `GET /v1/fleet` answer the agent reads. */
export interface FleetListAnswer {
  readonly relays: readonly { readonly relayId: string; readonly probeAddress: string; readonly health: string }[];
}

/** A request to the coordinator's relay API; `id` names it in {@link FleetAgentCore.handleResponse}. */
export type FleetRequest =
  /** `POST /v1/relays/register`; answered with a {@link RegisterAnswer}. */
  | { readonly id: number; readonly kind: 'register'; readonly info: RelayInfo }
  /** `POST /v1/relays/heartbeat`; answered with anything (or `unknown_relay`). */
  | { readonly id: number; readonly kind: 'heartbeat'; readonly relayId: string; readonly load: RelayLoad }
  /** `GET /v1/fleet`; answered with a {@link FleetListAnswer}. */
  | { readonly id: number; readonly kind: 'fleet' }
  /** `POST /v1/relays/reports`; answered with anything. */
  | { readonly id: number; readonly kind: 'reports'; readonly relayId: string; readonly reports: readonly RelayPathReport[] };

/** Why a request failed: an API error answer (`status`, `code`) or no answer at all (both undefined). */
export interface FleetFailure {
  /** HTTP status of an error answer; undefined when none came (network, timeout). */
  readonly status: number | undefined;
  /** The API's stable error code (`unknown_relay`, `unauthorized`…), when answered. */
  readonly code: string | undefined;
  /** What went wrong, for logs and the acceptance outcome. */
  readonly message: string;
}

/** The answer to a {@link FleetRequest}: its body (typed by the request's kind), or a failure. */
export type FleetResponse = { readonly ok: true; readonly body: unknown } | { readonly ok: false; readonly failure: FleetFailure };

/** What the agent tells its driver. */
export type FleetAgentEvent =
  /** The coordinator accepted a registration (the first, or a re-join after `unknown_relay`). */
  | { readonly type: 'registered'; readonly leaseMs: number; readonly heartbeatIntervalMs: number; readonly mesh: number }
  /** A heartbeat was answered `unknown_relay`: the agent registers again with the same relay id. */
  | { readonly type: 'rejoining' }
  /** The outcome {@link FleetAgentCore.awaitAcceptance} waits for: accepted, refused (4xx, with its reason), silent until the deadline, or stopped. */
  | { readonly type: 'acceptance'; readonly ok: boolean; readonly reason: string }
  /** A new fleet list: the other relays' probe addresses (their sessions to us are exempt from per-source caps). */
  | { readonly type: 'peers'; readonly addresses: readonly string[] }
  /** Requests of kind `what` started failing (once per streak). */
  | { readonly type: 'failed'; readonly what: FleetRequestWhat; readonly reason: string }
  /** Requests of kind `what` work again. */
  | { readonly type: 'recovered'; readonly what: FleetRequestWhat }
  /** The prober asks for a TCP connect to an origin: answer with {@link FleetAgentCore.handleConnectResult}. */
  | { readonly type: 'connect'; readonly probeId: number; readonly address: string; readonly port: number; readonly timeoutMs: number };

/** The kinds of request whose failures are reported (`report` = path reports). */
export type FleetRequestWhat = 'register' | 'heartbeat' | 'fleet' | 'report';

/** The agent's deadlines, one table keyed by purpose (quinn-proto's `TimerTable`). */
const enum Timer {
  /** Next registration attempt after a failure. */
  RegisterRetry = 0,
  /** Next heartbeat. */
  Heartbeat = 1,
  /** Next fleet-list refresh. */
  Mesh = 2,
  /** End of the wait for an acceptance outcome. */
  Acceptance = 3,
}
const TIMER_COUNT = 4;

/** See the module comment. */
export class FleetAgentCore {
  /** The path prober (exposed for tests and logs). */
  readonly prober: PathProber;
  /** Heartbeats and report calls the coordinator accepted (for tests). */
  heartbeats = 0;
  reportsSent = 0;
  private readonly timers: number[] = new Array<number>(TIMER_COUNT).fill(Number.POSITIVE_INFINITY);
  private readonly requests: FleetRequest[] = [];
  private readonly events: FleetAgentEvent[] = [];
  /** Kinds of the requests in flight, by id (answers to unknown ids are ignored). */
  private readonly inFlight = new Map<number, FleetRequest['kind']>();
  private nextRequestId = 1;
  private started = false;
  private stopped = false;
  private registered = false;
  private registering = false;
  private lastExchangeAccepted = false;
  private draining = false;
  private heartbeatIntervalMs: number;
  /** Whether the coordinator said it accepts `status` in heartbeats (its latest registration answer). */
  private statusAccepted = false;
  private registerBackoffMs = REGISTER_BACKOFF_MS_MIN;
  private acceptanceWaitMs = 0;
  private readonly failing = new Set<FleetRequestWhat>();

  constructor(
    private readonly spec: FleetAgentSpec,
    private readonly context: FleetAgentContext,
  ) {
    this.prober = new PathProber({ probeIntervalMs: spec.probeIntervalMs, probeTimeoutMs: spec.probeTimeoutMs, reportIntervalMs: spec.reportIntervalMs });
    this.heartbeatIntervalMs = spec.heartbeatIntervalMs;
  }

  /** The relay id the agent registers. */
  get relayId(): string {
    return this.spec.relayId;
  }

  /**
   * Whether the coordinator accepted the latest registration or heartbeat: false before
   * the first, while they are refused (a retired fleet secret) or unanswered, and after
   * {@link stop}.
   */
  get accepted(): boolean {
    return this.lastExchangeAccepted && !this.stopped;
  }

  /** Whether a registration was accepted and no heartbeat was answered `unknown_relay` since. */
  get isRegistered(): boolean {
    return this.registered && !this.stopped;
  }

  /** Whether {@link stop} was called. */
  get isStopped(): boolean {
    return this.stopped;
  }

  // ---------------------------------------------------------------- commands

  /** Starts registering and the fleet-list refresh period. Idempotent. */
  start(nowMs: number): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.timers[Timer.Mesh] = nowMs + this.spec.meshRefreshMs;
    this.register();
  }

  /**
   * SIGTERM: tell the coordinator at once that no new clients should come. Returns the
   * id of the heartbeat that says so (the driver may wait for its answer), or undefined
   * when none is sent (not registered yet: the next heartbeat will say it).
   */
  setDraining(nowMs: number): number | undefined {
    this.draining = true;
    if (this.stopped || !this.registered) return undefined;
    return this.heartbeat(nowMs);
  }

  /**
   * Waits for the first registration's outcome: an `acceptance` event comes when the
   * coordinator accepts (ok), refuses it (an HTTP 4xx answer, with its reason; the agent
   * keeps retrying), when nothing came within `withinMs` (the coordinator unreachable),
   * or at {@link stop}. Already registered: the ok event comes at once.
   */
  awaitAcceptance(nowMs: number, withinMs: number): void {
    if (this.stopped || this.registered) {
      this.events.push(this.stopped ? { type: 'acceptance', ok: false, reason: 'the agent was closed' } : { type: 'acceptance', ok: true, reason: 'accepted' });
      return;
    }
    const deadline = nowMs + withinMs;
    if (deadline < this.timers[Timer.Acceptance]!) {
      this.timers[Timer.Acceptance] = deadline;
      this.acceptanceWaitMs = withinMs;
    }
  }

  /** Stops everything; idempotent. Answers still in flight are ignored; the coordinator marks the relay unhealthy when its lease runs out. */
  stop(): void {
    if (this.stopped) return;
    this.settleAcceptance(false, 'the agent was closed');
    this.stopped = true;
    this.timers.fill(Number.POSITIVE_INFINITY);
    this.requests.length = 0;
    this.inFlight.clear();
    this.prober.setTargets(0, []);
  }

  // ---------------------------------------------------------------- inputs

  /** Input: the answer to request `requestId` (ignored when unknown, or after {@link stop}). */
  handleResponse(nowMs: number, requestId: number, response: FleetResponse): void {
    const kind = this.inFlight.get(requestId);
    if (kind === undefined || this.stopped) return;
    this.inFlight.delete(requestId);
    switch (kind) {
      case 'register':
        this.registering = false;
        if (response.ok) this.onRegistered(nowMs, response.body as RegisterAnswer);
        else this.onRegisterFailed(nowMs, response.failure);
        break;
      case 'heartbeat':
        if (response.ok) {
          this.heartbeats++;
          this.lastExchangeAccepted = true;
          this.recovered('heartbeat');
        } else {
          this.lastExchangeAccepted = false;
          if (response.failure.code === 'unknown_relay') {
            this.registered = false;
            this.events.push({ type: 'rejoining' });
            this.register();
          } else this.failed('heartbeat', response.failure.message);
        }
        break;
      case 'fleet':
        if (response.ok) {
          this.setMesh(nowMs, (response.body as FleetListAnswer).relays.filter((r) => r.health !== 'unhealthy'));
          this.recovered('fleet');
        } else this.failed('fleet', response.failure.message);
        break;
      case 'reports':
        if (response.ok) {
          this.reportsSent++;
          this.recovered('report');
        } else this.failed('report', response.failure.message);
        break;
    }
    this.drainProber();
  }

  /** Input: a deadline from {@link pollTimeout} passed. */
  handleTimeout(nowMs: number): void {
    if (this.stopped) return;
    const t = this.timers;
    if (nowMs >= t[Timer.Acceptance]!) this.settleAcceptance(false, `no answer from the coordinator within ${this.acceptanceWaitMs} ms`);
    if (nowMs >= t[Timer.RegisterRetry]!) {
      t[Timer.RegisterRetry] = Number.POSITIVE_INFINITY;
      this.register();
    }
    if (nowMs >= t[Timer.Heartbeat]!) {
      // A period, as an interval timer: it keeps ticking while a re-join is under way.
      t[Timer.Heartbeat] = Math.max(t[Timer.Heartbeat]! + this.heartbeatIntervalMs, nowMs + 1);
      if (this.registered) this.heartbeat(nowMs);
    }
    if (nowMs >= t[Timer.Mesh]!) {
      t[Timer.Mesh] = Math.max(t[Timer.Mesh]! + this.spec.meshRefreshMs, nowMs + 1);
      if (this.registered) this.request({ id: this.nextRequestId++, kind: 'fleet' });
    }
    this.prober.handleTimeout(nowMs);
    this.drainProber();
  }

  /** Input: a datagram on the prober's socket. Returns false for anything but a probe reply of ours. */
  handleDatagram(nowMs: number, from: Endpoint, bytes: Uint8Array): boolean {
    if (this.stopped) return false;
    const taken = this.prober.handleDatagram(nowMs, from, bytes);
    this.drainProber();
    return taken;
  }

  /** Input: the TCP probe `probeId` ended; `answered` when it connected or was refused. */
  handleConnectResult(nowMs: number, probeId: number, answered: boolean): void {
    if (this.stopped) return;
    this.prober.handleConnectResult(nowMs, probeId, answered);
    this.drainProber();
  }

  // ---------------------------------------------------------------- outputs

  /** Output: the next event, or undefined. */
  pollEvent(): FleetAgentEvent | undefined {
    return this.events.shift();
  }

  /** Output: the next request to carry to the coordinator, or undefined. */
  pollRequest(): FleetRequest | undefined {
    return this.requests.shift();
  }

  /** Output: the next UDP probe to send from the prober's socket, or undefined. */
  pollTransmit(): ProbeTransmit | undefined {
    return this.stopped ? undefined : this.prober.pollTransmit();
  }

  /** Output: when to call {@link handleTimeout} next, ms; undefined when nothing is due (before start, after stop). */
  pollTimeout(): number | undefined {
    if (this.stopped) return undefined;
    let deadline = this.prober.pollTimeout() ?? Number.POSITIVE_INFINITY;
    for (const at of this.timers) if (at < deadline) deadline = at;
    return deadline === Number.POSITIVE_INFINITY ? undefined : deadline;
  }

  // ---------------------------------------------------------------- internals

  private request(request: FleetRequest): number {
    this.inFlight.set(request.id, request.kind);
    this.requests.push(request);
    return request.id;
  }

  private register(): void {
    if (this.registering || this.stopped) return;
    this.registering = true;
    this.request({ id: this.nextRequestId++, kind: 'register', info: relayInfoOf(this.spec) });
  }

  private heartbeat(nowMs: number): number {
    const status = this.statusAccepted ? this.context.status?.() : undefined;
    return this.request({ id: this.nextRequestId++, kind: 'heartbeat', relayId: this.spec.relayId, load: { ...this.context.load(nowMs), draining: this.draining, ...(status !== undefined ? { status } : {}) } });
  }

  private onRegistered(nowMs: number, answer: RegisterAnswer): void {
    this.registered = true;
    this.lastExchangeAccepted = true;
    this.registerBackoffMs = REGISTER_BACKOFF_MS_MIN;
    this.statusAccepted = answer.heartbeatStatus === true;
    this.settleAcceptance(true, 'accepted');
    this.recovered('register');
    this.heartbeatIntervalMs = Math.min(this.spec.heartbeatIntervalMs, answer.heartbeatIntervalMs);
    this.events.push({ type: 'registered', leaseMs: answer.leaseMs, heartbeatIntervalMs: this.heartbeatIntervalMs, mesh: answer.relays.length });
    this.timers[Timer.Heartbeat] = nowMs + this.heartbeatIntervalMs;
    this.heartbeat(nowMs);
    this.setMesh(nowMs, answer.relays);
    this.request({ id: this.nextRequestId++, kind: 'fleet' });
  }

  private onRegisterFailed(nowMs: number, failure: FleetFailure): void {
    this.lastExchangeAccepted = false;
    this.failed('register', failure.message);
    // A 4xx is the coordinator's answer to these settings (wrong secret, id not allowed,
    // bad address), not a passing outage: whoever waits for the outcome hears it now.
    if (failure.status !== undefined && failure.status >= 400 && failure.status < 500) this.settleAcceptance(false, failure.message);
    this.timers[Timer.RegisterRetry] = nowMs + this.registerBackoffMs;
    this.registerBackoffMs = Math.min(REGISTER_BACKOFF_MS_MAX, this.registerBackoffMs * 2);
  }

  private settleAcceptance(ok: boolean, reason: string): void {
    if (this.stopped || this.timers[Timer.Acceptance] === Number.POSITIVE_INFINITY) return;
    this.timers[Timer.Acceptance] = Number.POSITIVE_INFINITY;
    this.events.push({ type: 'acceptance', ok, reason });
  }

  private setMesh(nowMs: number, relays: readonly { readonly relayId: string; readonly probeAddress: string }[]): void {
    const targets: ProbeTarget[] = [];
    for (const r of relays) {
      if (r.relayId === this.spec.relayId) continue;
      const hp = splitHostPort(r.probeAddress);
      if (!hp || hp.port === 0) continue;
      targets.push({ kind: 'relay', id: r.relayId, address: hp.host, port: hp.port });
    }
    this.events.push({ type: 'peers', addresses: targets.map((t) => t.address) });
    if (this.spec.originProbe === 'tcp') for (const [name, o] of this.context.origins()) targets.push({ kind: 'origin', id: name, address: o.address, port: o.port });
    this.prober.setTargets(nowMs, targets);
  }

  /** Moves the prober's events out: TCP probes to the driver, reports to the coordinator (once registered). */
  private drainProber(): void {
    for (let e = this.prober.pollEvent(); e !== undefined; e = this.prober.pollEvent()) {
      if (e.type === 'connect') this.events.push(e);
      else if (this.registered && !this.stopped) this.request({ id: this.nextRequestId++, kind: 'reports', relayId: this.spec.relayId, reports: e.reports });
    }
  }

  private failed(what: FleetRequestWhat, reason: string): void {
    if (this.failing.has(what)) return;
    this.failing.add(what);
    this.events.push({ type: 'failed', what, reason });
  }

  private recovered(what: FleetRequestWhat): void {
    if (this.failing.delete(what)) this.events.push({ type: 'recovered', what });
  }
}
