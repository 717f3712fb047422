/**
 * The entry role (see relay-core.ts, "Exit relays"): a session whose ticket names
 * another relay as its exit is forwarded there. Everything from the client goes to the
 * exit verbatim and everything from the exit to the client, so FEC and sequence
 * numbering run end to end between the SDK and the exit. The exit's path challenge is
 * answered with the session key; an exit that refuses, never accepts, or falls silent
 * is left, and this relay serves the session itself. The link record ({@link ExitLink})
 * is in state.ts.
 */
import { decodeControl } from '../../../../proto/src/control.js';
import { HEADER_BYTES, PacketType } from '../../../../proto/src/header.js';
import { buildControlPacket, buildPathResponse, openRelayClose, PATH_NONCE_BYTES } from '../../../../proto/src/wire.js';
import { EXIT_CHECK_INTERVAL_MS, EXIT_DEAD_AFTER_MS_DEFAULT, EXIT_KEEPALIVE_MS, EXIT_OPEN_TIMEOUT_MS } from '../constants.js';
import { TUNNEL_SOCKET_ID, type RelayContext } from '../context.js';
import { DropReason } from '../output.js';
import { admitDown, endpointText } from '../session-base.js';
import { Timer } from '../timers.js';
import type { TunnelPackets } from './packets.js';
import type { TunnelSessions } from './session.js';
import { ExitLink, type TunnelSession } from './state.js';

/** See the module comment. */
export class ExitLinks {
  constructor(
    private readonly ctx: RelayContext,
    private readonly sessions: TunnelSessions,
    private readonly packets: TunnelPackets,
  ) {}

  /**
   * Entry role: the exit (named by the coordinator's signature, so never an open
   * relay) holds the origin-facing socket. The client's open goes to it as it came;
   * the exit's accept comes back through us. No socket or FEC here unless the exit
   * fails (see {@link handleTimeout}).
   */
  forward(nowMs: number, session: TunnelSession, relayId: string, address: string, port: number, open: Uint8Array): void {
    session.exit = new ExitLink(relayId, address, port, open.slice(), nowMs);
    this.sessions.forwarded.add(session);
    if (this.ctx.timers.get(Timer.ExitCheck) === Number.POSITIVE_INFINITY) this.ctx.timers.set(Timer.ExitCheck, nowMs + EXIT_CHECK_INTERVAL_MS);
    this.ctx.out.push(TUNNEL_SOCKET_ID, address, port, undefined, session.exit.open);
  }

  /**
   * Entry role: a datagram from the session's exit (`type` from its header). Data,
   * parity and control go to the client as they are (the exit's numbering and FEC, end
   * to end); the exit's path challenge (it validates us like a client address change)
   * is answered here with the session key, which every fleet relay can unseal from the ticket.
   */
  onFromExit(nowMs: number, session: TunnelSession, exit: ExitLink, bytes: Uint8Array, type: number): void {
    const out = this.ctx.out;
    const stats = this.sessions.stats;
    exit.lastRxMs = nowMs;
    exit.waitingSinceMs = Number.POSITIVE_INFINITY;
    if (type === PacketType.Data || type === PacketType.Parity) {
      if (admitDown(out, nowMs, stats, session, bytes)) out.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, bytes);
      return;
    }
    // Control and path challenges from the exit count as tunnel traffic too (not charged to the session).
    stats.packetsDown++;
    stats.bytesDown += bytes.length;
    if (type === PacketType.PathChallenge) {
      // The answer (72 bytes) is larger than the challenge (40): only the exit the ticket
      // names is answered, and at most once per keepalive period, so a sender spoofing
      // the exit's address can make us send the real exit a few small packets, no more.
      if (bytes.length < HEADER_BYTES + PATH_NONCE_BYTES || nowMs - exit.lastResponseMs < EXIT_KEEPALIVE_MS) {
        out.drops[DropReason.BadControl]++;
        return;
      }
      exit.lastResponseMs = nowMs;
      out.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, buildPathResponse(session.key, session.idHigh, session.idLow, bytes.subarray(HEADER_BYTES)));
      return;
    }
    if (type === PacketType.Control) {
      const decoded = decodeControl(bytes.subarray(HEADER_BYTES));
      if (!decoded.ok) {
        out.drops[DropReason.BadControl]++;
        return;
      }
      const m = decoded.message;
      if (m.type === 'sessionReject') {
        // The exit will not take the session (draining, full, does not serve the origin): serve it here.
        if (exit.state === 'opening') this.fallBack(nowMs, session, `exit ${exit.relayId} refused: ${m.reason}`);
        return;
      }
      if (m.type === 'sessionRetry') {
        // The exit is over its verification budget and wants proof of our address: open
        // again with its cookie (kept for later re-opens), at most once per keepalive period.
        if (exit.state !== 'opening' || nowMs - exit.lastCookieOpenMs < EXIT_KEEPALIVE_MS) return;
        const open = decodeControl(exit.open.subarray(HEADER_BYTES));
        if (!open.ok || open.message.type !== 'sessionOpen') return;
        exit.open = buildControlPacket(session.idHigh, session.idLow, { ...open.message, cookie: m.cookie });
        exit.lastCookieOpenMs = nowMs;
        exit.lastOpenMs = nowMs;
        out.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, exit.open);
        return;
      }
      if (m.type === 'sessionAccept') exit.state = 'open';
      else if (m.type !== 'fecStats') {
        out.drops[DropReason.BadControl]++;
        return;
      }
      session.lastActiveMs = nowMs;
      out.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, bytes);
      return;
    }
    if (type === PacketType.Close) {
      if (openRelayClose(session.key, session.idHigh, session.idLow, bytes.subarray(HEADER_BYTES)) !== undefined) {
        // The exit ended the session (revoked, idle): the client hears it as from any relay.
        out.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, bytes);
        return;
      }
      // Unauthenticated: the exit has no such session (it restarted). Open it again there,
      // at most once per keepalive period however much data meets the refusal.
      if (nowMs - exit.lastOpenMs >= EXIT_KEEPALIVE_MS) {
        exit.lastOpenMs = nowMs;
        exit.sent(nowMs);
        out.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, exit.open);
      }
      return;
    }
    out.drops[DropReason.BadControl]++;
  }

  /**
   * Entry role, every {@link EXIT_CHECK_INTERVAL_MS} while any session is forwarded
   * ({@link Timer.ExitCheck}): an exit that has not accepted within
   * {@link EXIT_OPEN_TIMEOUT_MS}, or has not said anything for `exitDeadAfterMs` since a
   * packet went to it, is judged dead and the session falls back to this relay's own
   * origin-facing socket. A quiet exit with traffic pending gets the session's open
   * again every {@link EXIT_KEEPALIVE_MS} (answered by an accept), so a flow the origin
   * never answers still proves it alive.
   */
  handleTimeout(nowMs: number): void {
    const deadAfterMs = this.ctx.config.tunnel?.exitDeadAfterMs ?? EXIT_DEAD_AFTER_MS_DEFAULT;
    const forwarded = this.sessions.forwarded;
    // No copy of the set: falling back only deletes the session being visited, which a
    // Set's iteration allows (a copy would be garbage of one slot per session, 20 times a second).
    for (const session of forwarded) {
      const exit = session.exit!;
      if (exit.state === 'opening') {
        if (nowMs - exit.openedMs >= EXIT_OPEN_TIMEOUT_MS) this.fallBack(nowMs, session, `exit ${exit.relayId} did not accept within ${EXIT_OPEN_TIMEOUT_MS} ms`);
        continue;
      }
      if (exit.waitingSinceMs === Number.POSITIVE_INFINITY) continue; // nothing sent since the exit last spoke: no evidence either way
      const silentMs = nowMs - exit.waitingSinceMs;
      if (silentMs >= deadAfterMs) this.fallBack(nowMs, session, `exit ${exit.relayId} silent for ${Math.round(silentMs)} ms`);
      else if (silentMs >= EXIT_KEEPALIVE_MS && nowMs - exit.lastOpenMs >= EXIT_KEEPALIVE_MS) {
        exit.lastOpenMs = nowMs;
        this.ctx.out.push(TUNNEL_SOCKET_ID, exit.address, exit.port, undefined, exit.open);
      }
    }
    this.ctx.timers.set(Timer.ExitCheck, forwarded.size === 0 ? Number.POSITIVE_INFINITY : nowMs + EXIT_CHECK_INTERVAL_MS);
  }

  /**
   * The one case in which the origin sees a new source address: the exit is gone, so
   * this entry opens its own origin-facing socket and terminates the session (FEC
   * included). Its accept, without `exit`, tells the SDK that downstream numbering
   * starts afresh on this relay.
   */
  private fallBack(nowMs: number, session: TunnelSession, why: string): void {
    const exit = session.exit;
    const tunnel = this.ctx.config.tunnel;
    if (exit === undefined || tunnel === undefined) return;
    session.exit = undefined;
    this.sessions.forwarded.delete(session);
    this.sessions.openUpstream(session, tunnel);
    session.lastActiveMs = nowMs;
    this.ctx.out.event({ type: 'sessionMoved', kind: 'tunnel', id: session.idHex, rule: 'tunnel', what: 'origin', from: `exit ${exit.relayId} ${endpointText(exit.address, exit.port)} (${why})`, to: endpointText(session.originAddress, session.originPort) });
    this.ctx.out.push(TUNNEL_SOCKET_ID, session.clientAddress, session.clientPort, undefined, this.packets.acceptPacket(session));
  }
}
