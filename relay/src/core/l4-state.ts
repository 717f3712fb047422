/**
 * The records of L4 port mapping that several sub-machines and the socket table point
 * at: an origin with its health and its group (run by origins.ts), a rule as running
 * and its listen sockets (l4-rules.ts), a UDP client flow (l4-udp.ts). Records only:
 * the logic that changes them stays in those sub-machines. A leaf below the context,
 * which names listeners and flows in its socket table: it imports no sub-machine and
 * not the context, so the import graph has no circle.
 */
import { hashString } from './addr.js';
import type { RateBucket } from './bucket.js';
import type { HealthCheckSpec, RuleSpec } from './config-types.js';
import { endpointText, SessionBase, type RuleStats, type SourceState } from './session-base.js';

/** One origin of a group, with its health. */
export class OriginState {
  healthy = true;
  failures = 0;
  successes = 0;
  lastReplyMs = Number.NEGATIVE_INFINITY;
  checkPending = false;
  checkSentMs = 0;
  checkId = 0;
  retired = false;
  readonly hash: number;
  readonly label: string;
  constructor(
    readonly address: string,
    readonly port: number,
    readonly portEnd: number,
  ) {
    this.label = endpointText(address, port);
    this.hash = hashString(this.label);
  }
  /** The port to use for a listener `offset` ports into its range. */
  portFor(offset: number): number {
    return this.portEnd > this.port ? this.port + offset : this.port;
  }
}

/** A named origin group and its check schedule. */
export class OriginGroup {
  nextCheckMs = 0;
  checkDeadlineMs = Number.POSITIVE_INFINITY;
  constructor(
    readonly name: string,
    public origins: OriginState[],
    public health: HealthCheckSpec,
  ) {}
}

/** One listen socket of a rule. */
export class Listener {
  /** Flows by client port; same port, other address → chained through {@link Flow.nextInChain}. */
  readonly flowsByPort = new Map<number, Flow>();
  constructor(
    readonly socketId: number,
    readonly key: string,
    public rule: RuleRuntime,
    public port: number,
    public portOffset: number,
  ) {}

  /** `udp` or `tcp`, from its rule. */
  get protocol(): 'udp' | 'tcp' {
    return this.rule.spec.protocol;
  }
}

/** A configured rule as running: its spec, counters (kept by name across reloads), group and listeners. */
export class RuleRuntime {
  readonly listeners: Listener[] = [];
  constructor(
    public spec: RuleSpec,
    readonly stats: RuleStats,
    public group: OriginGroup,
  ) {}
}

/** One client flow of a UDP listener. */
export class Flow extends SessionBase {
  /** The next flow with the same client port on this listener (another address). */
  nextInChain: Flow | undefined = undefined;
  originPort = 0;
  /**
   * Its origin has answered at least once (conntrack's "seen reply"). Until then the
   * flow has the short unreplied idle timeout and is the first shed when a budget is full.
   */
  replied = false;
  constructor(
    id: number,
    source: SourceState,
    clientAddress: string,
    clientPort: number,
    upBucket: RateBucket,
    downBucket: RateBucket,
    nowMs: number,
    public listener: Listener,
    public origin: OriginState,
    readonly prefix: Uint8Array | undefined,
    readonly clientHash: number,
    /** The counters of the rule it was opened on (its per-rule budget), kept even if a reload gives its listener to another rule. */
    readonly stats: RuleStats,
  ) {
    super(id, source, clientAddress, clientPort, upBucket, downBucket, nowMs);
  }
}
