/**
 * The relay's own path measurements, as a sans-IO state machine: it probes the other
 * relays of the fleet (a full mesh, through their probe responders) and the origins it
 * serves, and turns the answers into the coordinator's path reports (RTT, jitter, loss
 * per target and window). It never touches a socket, a timer or a clock; the driver
 * (`relay/src/fleet.ts`) feeds it and drains it.
 *
 * Inputs: {@link PathProber.setTargets} (from the coordinator's fleet list and the
 * relay's config), {@link PathProber.handleTimeout}, {@link PathProber.handleDatagram}
 * (ProbeReply packets on the prober's socket), {@link PathProber.handleConnectResult}
 * (TCP origin probes). Outputs, drained after every input (the str0m rule):
 * {@link PathProber.pollEvent} (TCP probes to run, reports to send), then
 * {@link PathProber.pollTransmit} (UDP probes), then one timer at
 * {@link PathProber.pollTimeout}.
 *
 * How targets are measured:
 * - **Relays**: a 48-byte Probe to the relay's probe address (its tunnel port); the
 *   reply carries the far relay's receive and send times, so the time it held the probe
 *   is not counted. Unanswered within `probeTimeoutMs` = lost.
 * - **Origins** (`originProbe: tcp`): a TCP connect to the origin's address. A refused
 *   connection (RST) is as good an answer as an accepted one — both come from the host
 *   one round trip later — so any origin measures, whatever it listens on. A firewall
 *   that silently drops the SYN makes the origin unmeasurable, not lossy: an origin is
 *   reported only once it has answered at least once.
 *
 * Each report window gives, per target: `rttMs` = median of the window's RTTs (robust to
 * one slow sample), `jitterMs` = mean absolute difference of consecutive RTTs (the
 * RFC 3550 §6.4.1 measure, unsmoothed: the coordinator smooths), `lossFraction` = lost /
 * judged, `samples` = judged (answered or timed out). Probes still outstanding at the
 * end of a window count in the next one.
 *
 * Probe times are spread over the interval (each target starts at an offset from a hash
 * of its key), so a relay of a large fleet does not send its whole mesh at once.
 */
import type { RelayPathReport } from '../../../proto/src/api/contract.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader, quickCheck } from '../../../proto/src/header.js';
import type { Endpoint } from '../../../proto/src/transport.js';
import { hashString } from './addr.js';
import { buildProbe, parseProbeReplyBody } from '../../../proto/src/wire.js';

/** Session id high word of fleet probes ("SLPR"); only the prober reads it back. */
const PROBE_ID_HIGH = 0x534c5052;
/** Most RTT samples kept per target and window (a window at 4 probes/s for 5 s holds 20). */
const WINDOW_SAMPLES_MAX = 256;
/** Most path reports per coordinator call (its API limit). */
export const PATH_REPORTS_PER_CALL_MAX = 1024;

/** One thing to measure. */
export interface ProbeTarget {
  /** `relay` (probe responder over UDP) or `origin` (TCP connect). */
  readonly kind: 'relay' | 'origin';
  /** The relay id, or the origin's name as the coordinator knows it. */
  readonly id: string;
  readonly address: string;
  readonly port: number;
}

/** One window's figures for a target: the coordinator API's relay report (`POST /v1/relays/reports`). */
export type PathReport = RelayPathReport;

/** What the prober asks of its driver. */
export type PathProberEvent =
  /** Connect over TCP to `address:port`; report with {@link PathProber.handleConnectResult} (answered: connected or refused). */
  | { readonly type: 'connect'; readonly probeId: number; readonly address: string; readonly port: number; readonly timeoutMs: number }
  /** Send these to the coordinator (`reportRelayPaths`). */
  | { readonly type: 'report'; readonly reports: PathReport[] };

/** A UDP probe to send (from the prober's own socket). */
export interface ProbeTransmit {
  readonly address: string;
  readonly port: number;
  readonly bytes: Uint8Array;
}

/** Options of a {@link PathProber}. */
export interface PathProberInit {
  /** Period of probes to each target, ms. */
  readonly probeIntervalMs: number;
  /** A probe unanswered this long is lost, ms. */
  readonly probeTimeoutMs: number;
  /** Period of reports, ms. */
  readonly reportIntervalMs: number;
}

class TargetState {
  nextProbeMs: number;
  everAnswered = false;
  rtts: number[] = [];
  lost = 0;
  retired = false;
  constructor(
    readonly target: ProbeTarget,
    nowMs: number,
    offsetMs: number,
  ) {
    this.nextProbeMs = nowMs + offsetMs;
  }
}

interface Outstanding {
  readonly state: TargetState;
  readonly sentMs: number;
}

function keyOf(t: ProbeTarget): string {
  return `${t.kind}:${t.id}`;
}

/** See the module comment. */
export class PathProber {
  private readonly targets = new Map<string, TargetState>();
  private readonly outstanding = new Map<number, Outstanding>();
  private readonly events: PathProberEvent[] = [];
  private readonly transmits: ProbeTransmit[] = [];
  private readonly header = new PacketHeader();
  private nextSeq = 1;
  private nextReportMs: number | undefined;
  /** Probes sent and answers received over the prober's life (for tests and logs). */
  probesSent = 0;
  answers = 0;

  constructor(private readonly init: PathProberInit) {}

  /** Targets now; those no longer listed stop being probed (their outstanding probes are forgotten). */
  setTargets(nowMs: number, targets: readonly ProbeTarget[]): void {
    this.nextReportMs ??= nowMs + this.init.reportIntervalMs;
    const wanted = new Set<string>();
    for (const t of targets) {
      const key = keyOf(t);
      wanted.add(key);
      const existing = this.targets.get(key);
      if (existing !== undefined && existing.target.address === t.address && existing.target.port === t.port) continue;
      if (existing !== undefined) existing.retired = true;
      this.targets.set(key, new TargetState(t, nowMs, hashString(key) % Math.max(1, this.init.probeIntervalMs)));
    }
    for (const [key, state] of this.targets) {
      if (wanted.has(key)) continue;
      state.retired = true;
      this.targets.delete(key);
    }
    for (const [seq, o] of this.outstanding) if (o.state.retired) this.outstanding.delete(seq);
  }

  /** The targets being probed (for tests and logs). */
  get targetCount(): number {
    return this.targets.size;
  }

  /** Input: a deadline from {@link pollTimeout} passed. */
  handleTimeout(nowMs: number): void {
    for (const [seq, o] of this.outstanding) {
      if (nowMs - o.sentMs < this.init.probeTimeoutMs) continue;
      this.outstanding.delete(seq);
      o.state.lost++;
    }
    for (const state of this.targets.values()) {
      if (nowMs < state.nextProbeMs) continue;
      // Skip missed periods instead of bursting after a stall.
      state.nextProbeMs = Math.max(state.nextProbeMs + this.init.probeIntervalMs, nowMs + 1);
      this.sendProbe(nowMs, state);
    }
    if (this.nextReportMs !== undefined && nowMs >= this.nextReportMs) {
      this.nextReportMs = nowMs + this.init.reportIntervalMs;
      this.report();
    }
  }

  /** Input: a datagram on the prober's socket. Returns false for anything but a ProbeReply of ours. */
  handleDatagram(nowMs: number, _from: Endpoint, bytes: Uint8Array): boolean {
    if (quickCheck(bytes) !== 0 || parseHeader(bytes, this.header) !== 0) return false;
    const h = this.header;
    if (h.type !== PacketType.ProbeReply || h.sessionIdHigh !== PROBE_ID_HIGH) return false;
    const o = this.outstanding.get(h.sequence);
    if (o === undefined || o.state.target.kind !== 'relay') return false;
    const fields = parseProbeReplyBody(bytes.subarray(HEADER_BYTES));
    if (fields === undefined) return false;
    this.outstanding.delete(h.sequence);
    // Time the far relay held the probe is not path delay.
    const heldMs = Math.max(0, fields.relaySendMs - fields.relayReceiveMs);
    this.answered(o.state, Math.max(0, nowMs - o.sentMs - heldMs));
    return true;
  }

  /** Input: the TCP probe `probeId` ended; `answered` when it connected or was refused (either is the host's answer). */
  handleConnectResult(nowMs: number, probeId: number, answered: boolean): void {
    const o = this.outstanding.get(probeId);
    if (o === undefined) return;
    this.outstanding.delete(probeId);
    if (answered) this.answered(o.state, Math.max(0, nowMs - o.sentMs));
    else o.state.lost++;
  }

  /** Output: the next event, or undefined. */
  pollEvent(): PathProberEvent | undefined {
    return this.events.shift();
  }

  /** Output: the next UDP probe, or undefined. */
  pollTransmit(): ProbeTransmit | undefined {
    return this.transmits.shift();
  }

  /** Output: when to call {@link handleTimeout} next, or undefined before any target is set. */
  pollTimeout(): number | undefined {
    let deadline = this.nextReportMs;
    for (const state of this.targets.values()) if (deadline === undefined || state.nextProbeMs < deadline) deadline = state.nextProbeMs;
    for (const o of this.outstanding.values()) {
      const due = o.sentMs + this.init.probeTimeoutMs;
      if (deadline === undefined || due < deadline) deadline = due;
    }
    return deadline;
  }

  private sendProbe(nowMs: number, state: TargetState): void {
    const seq = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) >>> 0 || 1;
    this.outstanding.set(seq, { state, sentMs: nowMs });
    this.probesSent++;
    const t = state.target;
    if (t.kind === 'relay') this.transmits.push({ address: t.address, port: t.port, bytes: buildProbe(PROBE_ID_HIGH, 0, seq, nowMs) });
    else this.events.push({ type: 'connect', probeId: seq, address: t.address, port: t.port, timeoutMs: this.init.probeTimeoutMs });
  }

  private answered(state: TargetState, rttMs: number): void {
    this.answers++;
    state.everAnswered = true;
    if (state.rtts.length < WINDOW_SAMPLES_MAX) state.rtts.push(rttMs);
  }

  private report(): void {
    const reports: PathReport[] = [];
    for (const state of this.targets.values()) {
      const rtts = state.rtts;
      const judged = rtts.length + state.lost;
      if (judged === 0) continue;
      // An origin that never answered is unmeasurable (a firewall drops our SYNs), not lost.
      if (state.target.kind === 'origin' && !state.everAnswered) {
        state.lost = 0;
        continue;
      }
      let jitter = 0;
      for (let i = 1; i < rtts.length; i++) jitter += Math.abs(rtts[i]! - rtts[i - 1]!);
      const sorted = [...rtts].sort((a, b) => a - b);
      const mid = sorted.length >> 1;
      const median = sorted.length === 0 ? undefined : sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
      const figures = {
        // All lost: the RTT is unknown; the coordinator's bound (60 s) says "unreachable" with loss 1.
        rttMs: round3(Math.min(60_000, median ?? this.init.probeTimeoutMs)),
        jitterMs: round3(Math.min(60_000, rtts.length > 1 ? jitter / (rtts.length - 1) : 0)),
        lossFraction: round3(state.lost / judged),
        samples: judged,
      };
      reports.push(state.target.kind === 'relay' ? { targetRelayId: state.target.id, ...figures } : { origin: state.target.id, ...figures });
      state.rtts = [];
      state.lost = 0;
    }
    for (let i = 0; i < reports.length; i += PATH_REPORTS_PER_CALL_MAX) this.events.push({ type: 'report', reports: reports.slice(i, i + PATH_REPORTS_PER_CALL_MAX) });
  }
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
