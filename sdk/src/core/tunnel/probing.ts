/**
 * The probing room of a `TunnelClient`: when each relay is probed (a quick
 * initial burst, then the current relay every `TunnelClientInit.probeCurrentIntervalMs`,
 * the backup and the others more slowly, dead relays sooner while they recover),
 * matching replies to probes, the RTT and loss samples that feed the
 * `RelaySelector`, and the path reports for the coordinator built from them.
 */
import { HEADER_BYTES } from '../../../../proto/src/header.js';
import type { Endpoint } from '../../../../proto/src/transport.js';
import { buildProbe, parseProbeReplyBody, PROBE_BODY_BYTES_WITH_STATUS } from '../../../../proto/src/wire-frames.js';
import * as C from '../constants.js';
import type { TunnelContext } from './context.js';
import type { Liveness } from './liveness.js';
import type { RelayLinks } from './relay-link.js';
import type { RelayLink } from './relay-link-state.js';
import { earlier } from './timer-table.js';
import type { PathReport } from './types.js';

interface OutstandingProbe {
  readonly relayId: string;
  readonly sentMs: number;
}

/** The probing room; see the module comment. */
export class Probing {
  /** Probes awaiting a reply, by sequence number, oldest first (insertion order). */
  private readonly outstanding = new Map<number, OutstandingProbe>();
  private probeSequence = 1;

  constructor(
    private readonly ctx: TunnelContext,
    private readonly links: RelayLinks,
    private readonly liveness: Liveness,
  ) {}

  /** The period `link` is probed at now, ms. */
  probeIntervalMs(link: RelayLink, nowMs: number): number {
    const ctx = this.ctx;
    if (link.initialProbesLeft > 0) return C.PROBE_INITIAL_SPACING_MS;
    if (link.id === ctx.currentId) return ctx.probeCurrentMs;
    // A dead relay, and every relay while none answers, is re-probed sooner (backoff from 250 ms).
    const recoveryMs = ctx.selector.recoveryProbeIntervalMs(nowMs, link.id) ?? Number.POSITIVE_INFINITY;
    return Math.min(recoveryMs, link.id === ctx.backupId ? ctx.probeBackupMs : ctx.probeOtherMs);
  }

  /** Moves `link`'s next probe no later than one period of its (new) rate from now. */
  hurry(nowMs: number, link: RelayLink): void {
    link.nextProbeMs = Math.min(link.nextProbeMs, nowMs + this.probeIntervalMs(link, nowMs));
  }

  /** Sends the probes that are due; when too many are outstanding, the oldest counts as lost. */
  sendProbes(nowMs: number): void {
    const ctx = this.ctx;
    for (const link of ctx.relays.values()) {
      if (nowMs < link.nextProbeMs) continue;
      const seq = this.probeSequence;
      this.probeSequence = (this.probeSequence + 1) >>> 0 || 1;
      if (this.outstanding.size >= C.PROBES_OUTSTANDING_MAX) {
        const oldest = this.outstanding.keys().next().value as number;
        const p = this.outstanding.get(oldest)!;
        this.outstanding.delete(oldest);
        ctx.selector.handleProbeResult(nowMs, p.relayId, undefined);
      }
      this.outstanding.set(seq, { relayId: link.id, sentMs: nowMs });
      ctx.transmits.push({ to: link.probe, bytes: buildProbe(ctx.sessionIdHigh, ctx.sessionIdLow, seq, nowMs, PROBE_BODY_BYTES_WITH_STATUS) });
      if (link.initialProbesLeft > 0) link.initialProbesLeft--;
      link.nextProbeMs = nowMs + this.probeIntervalMs(link, nowMs);
    }
  }

  /** Probes unanswered for {@link C.PROBE_TIMEOUT_MS} count as lost. */
  expireProbes(nowMs: number): void {
    for (const [seq, p] of this.outstanding) {
      if (nowMs - p.sentMs < C.PROBE_TIMEOUT_MS) break;
      this.outstanding.delete(seq);
      this.ctx.selector.handleProbeResult(nowMs, p.relayId, undefined);
    }
  }

  /** A ProbeReply from `from`; its header is the context's, `bytes` is the whole datagram. */
  onProbeReply(nowMs: number, from: Endpoint, bytes: Uint8Array): void {
    const seq = this.ctx.header.sequence;
    const p = this.outstanding.get(seq);
    if (p === undefined) return;
    const fields = parseProbeReplyBody(bytes.subarray(HEADER_BYTES));
    if (fields === undefined) return;
    this.outstanding.delete(seq);
    const link = this.ctx.relays.get(p.relayId);
    if (link === undefined) return;
    this.liveness.heardFrom(nowMs, link);
    // The relay holds no such session though it accepted ours before this probe left:
    // it restarted (or swept it) since. Only a probe sent after the accept counts (an
    // earlier one may have crossed the open on its way), and only a reply from the
    // address probed (as a Close must come from the relay's): probe sequence numbers are
    // easy to guess, and a forged reply must not make a healthy session reopen.
    if (fields.sessionUnknown && p.sentMs >= link.acceptedAtMs && from.port === link.probe.port && from.address === link.probe.address) this.links.reopenUnknownSession(nowMs, link);
    // Time the relay held the probe is not path delay.
    const rttMs = Math.max(0, nowMs - p.sentMs - Math.max(0, fields.relaySendMs - fields.relayReceiveMs));
    this.ctx.selector.handleProbeResult(nowMs, link.id, rttMs);
  }

  /** `at`, or `link`'s next probe when it is after `after` and earlier. */
  earliestDeadline(at: number, link: RelayLink, after: number): number {
    return earlier(at, link.nextProbeMs, after);
  }

  /** `at`, or the oldest outstanding probe's timeout after `after` when earlier. */
  earliestTimeout(at: number, after: number): number {
    for (const p of this.outstanding.values()) {
      at = earlier(at, p.sentMs + C.PROBE_TIMEOUT_MS, after);
      break; // insertion order: the oldest is first
    }
    return at;
  }

  /** A `report` event with each measured relay's path figures for the coordinator (none when nothing is measured). */
  emitReport(): void {
    const ctx = this.ctx;
    const reports: PathReport[] = [];
    for (const link of ctx.relays.values()) {
      const f = ctx.selector.figures(link.id);
      if (f === undefined || f.rttMs === undefined || f.samples === 0) continue;
      reports.push({ relayId: link.id, rttMs: Math.min(60_000, f.stableRttMs ?? f.rttMs), jitterMs: Math.min(60_000, f.stableJitterMs), lossFraction: f.loss, samples: f.samples });
    }
    if (reports.length > 0) ctx.events.push({ type: 'report', reports });
  }
}
