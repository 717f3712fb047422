/**
 * Prometheus metrics for a relay. Nothing here runs per packet: the core keeps plain
 * counters, and each metric reads them at scrape time (prom-client `collect`).
 */
import { constants as perfConstants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { Counter, Gauge, Registry } from 'prom-client';
import { dropReasonNames, type RelayCore, type RuleStats } from './core/relay-core.js';
import { semiSpaceBytes } from './gc-tuning.js';

/** A fleet member's standing, for the metrics (see {@link createRelayMetrics}). */
export interface FleetStatus {
  /** The coordinator accepted the running agent's latest registration or heartbeat. */
  readonly accepted: boolean;
  /** The running membership is the configuration file's (no reload's change pending or refused). */
  readonly settingsApplied: boolean;
}

/**
 * Builds a registry whose metrics read `core()` (a getter: the core survives reloads, but
 * tests may swap it) and `fleet()` (undefined, the default, when the relay is not a
 * fleet member and its file names no fleet), and `aggregated()`: the events logged as
 * aggregated lines, counted one by one, by `event/reason` (log-aggregator.ts).
 */
export function createRelayMetrics(core: () => RelayCore, fleet: () => FleetStatus | undefined = () => undefined, aggregated: () => ReadonlyMap<string, number> = () => new Map()): Registry {
  const registry = new Registry();
  // Per rule and direction: upstream = from clients, downstream = from origins.
  const directionCounters: [name: string, help: string, up: (s: RuleStats) => number, down: (s: RuleStats) => number][] = [
    ['slipstream_relay_packets_total', 'Datagrams received per rule; direction upstream = from clients, downstream = from origins.', (s) => s.packetsUp, (s) => s.packetsDown],
    ['slipstream_relay_bytes_total', 'Bytes received per rule; direction upstream = from clients, downstream = from origins.', (s) => s.bytesUp, (s) => s.bytesDown],
  ];
  for (const [name, help, up, down] of directionCounters) {
    new Counter({
      name,
      help,
      labelNames: ['rule', 'protocol', 'direction'],
      registers: [registry],
      collect() {
        this.reset();
        for (const s of core().ruleStats.values()) {
          this.inc({ rule: s.name, protocol: s.protocol, direction: 'upstream' }, up(s));
          this.inc({ rule: s.name, protocol: s.protocol, direction: 'downstream' }, down(s));
        }
      },
    });
  }
  new Gauge({
    name: 'slipstream_relay_sessions',
    help: 'Sessions open now per rule (L4 flows, TCP connections, tunnel sessions).',
    labelNames: ['rule', 'protocol'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of core().ruleStats.values()) this.set({ rule: s.name, protocol: s.protocol }, s.sessionsActive);
    },
  });
  new Counter({
    name: 'slipstream_relay_sessions_opened_total',
    help: 'Sessions opened since start per rule.',
    labelNames: ['rule', 'protocol'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of core().ruleStats.values()) this.inc({ rule: s.name, protocol: s.protocol }, s.sessionsOpened);
    },
  });
  new Counter({
    name: 'slipstream_relay_drops_total',
    help: 'Packets dropped, by reason (rate_limited_* are the rate-limit hits).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      const drops = core().drops;
      for (let i = 0; i < drops.length; i++) this.inc({ reason: dropReasonNames[i]! }, drops[i]!);
    },
  });
  new Counter({
    name: 'slipstream_relay_rate_limit_hits_total',
    help: 'Packets refused by a token bucket (per source, per session, new sessions per source).',
    registers: [registry],
    collect() {
      this.reset();
      const drops = core().drops;
      this.inc(drops[1]! + drops[2]! + drops[13]!);
    },
  });
  // Totals of the core since start, one number each.
  const coreTotals: [name: string, help: string, read: (c: RelayCore) => number][] = [
    ['slipstream_relay_tcp_throttled_total', 'TCP reads paused by a byte-rate limit (rules[].connectionBytesPerSecond or bytesPerSecond).', (c) => c.tcpThrottles],
    ['slipstream_relay_tcp_source_cap_refused_total', 'TCP connections refused by a per-source cap (tcp.connectionsPerSourceMax or tcp.silentPerSourceMax).', (c) => c.tcpSourceCapRefusals],
    ['slipstream_relay_tcp_first_byte_timeouts_total', 'TCP connections ended for moving no byte within tcp.firstByteTimeoutMs of their origin connect.', (c) => c.tcpFirstByteTimeouts],
    ['slipstream_relay_fec_recovered_total', 'Tunnel packets rebuilt from FEC parity or copies.', (c) => c.fecRecovered],
    ['slipstream_relay_fec_data_bytes_total', 'Downstream FEC payload bytes of the game itself (tunnel sessions terminated here).', (c) => c.fecSentBytes.data],
    ['slipstream_relay_fec_redundant_bytes_total', 'Downstream FEC payload bytes of redundancy: parity, sliding-window repairs and copies (their ratio to fec_data_bytes is the FEC overhead).', (c) => c.fecSentBytes.redundant],
    ['slipstream_relay_probes_answered_total', 'Probe packets answered with timestamps.', (c) => c.probesAnswered],
    ['slipstream_relay_udp_flows_shed_total', "L4 UDP flows without a reply from their origin ended to make room for another session (a full budget: limits.*Max, rules[].sessionsMax).", (c) => c.shedFlowCount],
    ['slipstream_relay_revocations_stale_refused_total', 'Tunnel session opens refused (SLIP_ERR_RELAY_REVOCATIONS_STALE) because the revocation list was older than tunnel.revocationMaxAgeMs.', (c) => c.revocationFeedState.staleRefused],
    ['slipstream_relay_revocations_stale_admitted_total', 'Tunnel session opens admitted while the revocation list was older than tunnel.revocationMaxAgeMs (tunnel.revocationStalePolicy: admit).', (c) => c.revocationFeedState.staleAdmitted],
    ['slipstream_relay_ticket_verifications_total', 'Ticket signature (Ed25519) verifications of session opens; bounded by limits.ticketVerificationsPerSecond.', (c) => c.openGate.verifications],
    ['slipstream_relay_open_cookie_replies_total', 'Session opens answered with a cookie (sessionRetry) instead of a signature check: over the verification budget without a valid cookie.', (c) => c.openGate.cookieReplies],
    ['slipstream_relay_open_cookies_invalid_total', 'Session opens whose cookie did not verify (forged, stale, or for another address).', (c) => c.openGate.cookiesInvalid],
    ['slipstream_relay_open_budget_drops_total', 'Session opens with a valid cookie dropped because the verification budget (global or per source) was spent.', (c) => c.openGate.budgetDrops],
  ];
  for (const [name, help, read] of coreTotals) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read(core()));
      },
    });
  }
  new Gauge({
    name: 'slipstream_relay_udp_flows_unreplied',
    help: 'L4 UDP flows open now whose origin has not answered yet (short idle timeout; the first shed when a budget is full).',
    registers: [registry],
    collect() {
      this.set(core().unrepliedFlowCount);
    },
  });
  new Counter({
    name: 'slipstream_relay_events_total',
    help: 'Events a sender can cause once per datagram, which the log shows as one aggregated line per reason per interval: session_refused by error code, udp_flow_unreplied and session_end (TCP connections that moved no byte) by end reason.',
    labelNames: ['event', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [key, n] of aggregated()) {
        const slash = key.indexOf('/');
        this.inc({ event: key.slice(0, slash), reason: key.slice(slash + 1) }, n);
      }
    },
  });
  new Gauge({
    name: 'slipstream_relay_origin_healthy',
    // With several workers (workers.ts) the primary aggregates every worker's value: the min.
    aggregator: 'min',
    help: '1 when the origin passes its health checks, else 0.',
    labelNames: ['group', 'origin'],
    registers: [registry],
    collect() {
      this.reset();
      for (const o of core().originHealth()) this.set({ group: o.group, origin: o.origin }, o.healthy ? 1 : 0);
    },
  });
  new Gauge({
    name: 'slipstream_relay_draining',
    // With several workers (workers.ts) the primary aggregates every worker's value: the max.
    aggregator: 'max',
    help: '1 while the relay drains after SIGTERM.',
    registers: [registry],
    collect() {
      this.set(core().isDraining ? 1 : 0);
    },
  });
  // Fleet standing, both absent without a fleet section.
  const fleetGauges: [name: string, help: string, pick: (status: FleetStatus) => boolean][] = [
    ['slipstream_relay_fleet_accepted', "1 while the coordinator accepts this relay's registration and heartbeats, 0 while it refuses them (a retired fleet secret, an id not allowed) or does not answer.", (status) => status.accepted],
    ['slipstream_relay_fleet_settings_applied', "1 when the running fleet membership uses the configuration file's fleet section, coordinator URL and secret; 0 while a reload's change is pending or was refused (fleet_change_failed in the log).", (status) => status.settingsApplied],
  ];
  for (const [name, help, pick] of fleetGauges) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        const status = fleet();
        if (status !== undefined) this.set(pick(status) ? 1 : 0);
      },
    });
  }
  // Event-loop delay since the previous scrape: a stalled loop delays every packet, so
  // this is the first thing to look at when added latency rises (`slipstream bench relay`
  // reports it per latency run). Sampled by libuv every 10 ms: negligible cost.
  const loopDelay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  loopDelay.enable();
  new Gauge({
    name: 'slipstream_relay_event_loop_delay_seconds',
    // With several workers (workers.ts) the primary aggregates every worker's value: the max.
    aggregator: 'max',
    help: 'Event-loop delay since the previous scrape (quantile 0.5, 0.99 and 1 = max), seconds.',
    labelNames: ['quantile'],
    registers: [registry],
    collect() {
      // The histogram holds whole sampling intervals: the delay is what exceeds the resolution.
      const delay = (ns: number): number => (loopDelay.count > 0 ? Math.max(0, ns / 1e9 - EVENT_LOOP_RESOLUTION_MS / 1000) : 0);
      this.set({ quantile: '0.5' }, delay(loopDelay.percentile(50)));
      this.set({ quantile: '0.99' }, delay(loopDelay.percentile(99)));
      this.set({ quantile: '1' }, delay(loopDelay.max));
      loopDelay.reset();
    },
  });
  new Gauge({
    name: 'slipstream_relay_revocations_stale',
    // With several workers (workers.ts) the primary aggregates every worker's value: the max.
    aggregator: 'max',
    help: 'Whether the revocation list is older than tunnel.revocationMaxAgeMs (1: new tunnel sessions are refused, or admitted under tunnel.revocationStalePolicy: admit); 0 when current or when no coordinator feed is followed.',
    registers: [registry],
    collect() {
      this.set(core().revocationFeedState.stale ? 1 : 0);
    },
  });
  new Gauge({
    name: 'slipstream_relay_revocations_age_seconds',
    // With several workers (workers.ts) the primary aggregates every worker's value: the max.
    aggregator: 'max',
    help: "Age of the revocation list: time since the coordinator's revocation feed last answered (or the persisted list's), seconds; +Inf before any list; 0 when no feed is followed.",
    registers: [registry],
    collect() {
      const c = core();
      this.set(c.revocationFeedState.followed ? c.revocationFeedState.ageMs / 1000 : 0);
    },
  });
  new Gauge({
    name: 'slipstream_relay_young_generation_bytes',
    // With several workers (workers.ts) the primary aggregates every worker's value: the max.
    aggregator: 'max',
    help: "V8's young-generation semi-space capacity, bytes; the relay keeps it at its start-up size (relay/src/gc-tuning.ts), so growth means an operator's V8 flags allowed it.",
    registers: [registry],
    collect() {
      this.set(semiSpaceBytes());
    },
  });
  watchGarbageCollections();
  new Counter({
    name: 'slipstream_relay_gc_total',
    help: "V8 garbage collections since start by kind: minor (scavenge), major (mark-compact of the whole heap: the one to watch; relay/src/gc-tuning.ts keeps bulk TCP from causing them), incremental, weakcb.",
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, n] of gcCounts) this.inc({ kind }, n);
    },
  });
  return registry;
}

/** Collections seen by the process's one 'gc' observer, by kind (see {@link watchGarbageCollections}). */
const gcCounts = new Map<string, number>([
  ['minor', 0],
  ['major', 0],
  ['incremental', 0],
  ['weakcb', 0],
]);
let gcObserver: PerformanceObserver | undefined;

/** Starts counting garbage collections (once per process: every relay's registry reads the same counts). */
function watchGarbageCollections(): void {
  if (gcObserver !== undefined) return;
  const names = new Map<number, string>([
    [perfConstants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
    [perfConstants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
    [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
    [perfConstants.NODE_PERFORMANCE_GC_WEAKCB, 'weakcb'],
  ]);
  gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = names.get((entry as { detail?: { kind?: number } }).detail?.kind ?? -1);
      if (kind !== undefined) gcCounts.set(kind, gcCounts.get(kind)! + 1);
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
}

/** Sampling period of the event-loop delay histogram, ms. */
const EVENT_LOOP_RESOLUTION_MS = 10;
