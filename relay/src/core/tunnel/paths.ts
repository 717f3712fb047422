/**
 * The addresses a tunnel session may be reached on, and how a new one is validated:
 * a packet from an unknown address is answered with a path challenge (never larger
 * than the packet that caused it), and the address is taken only after a response
 * MACed with the session key (as QUIC does). One mechanism for both uses:
 * - a session without an exit in its ticket has one client address: a validated new
 *   address replaces it (client migration; the per-source accounting moves with it);
 * - an exit's session keeps up to {@link EXIT_PATHS_MAX} validated paths (entry relays,
 *   or the client itself); downstream goes to the path that carried the latest
 *   upstream data, and a path's Close drops only that path.
 */
import { HEADER_BYTES, PacketType } from '../../../../proto/src/header.js';
import type { Endpoint } from '../../../../proto/src/transport.js';
import { PATH_MAC_BYTES, PATH_NONCE_BYTES, verifyPathResponseMac } from '../../../../proto/src/wire.js';
import { EXIT_PATHS_MAX, PATH_CHALLENGE_TIMEOUT_MS, PATH_CHALLENGES_PENDING_MAX } from '../constants.js';
import { TUNNEL_SOCKET_ID, type RelayContext } from '../context.js';
import { DropReason } from '../output.js';
import { endpointText } from '../session-base.js';
import type { SourceTable } from '../sources.js';
import type { TunnelPackets } from './packets.js';
import type { TunnelSession } from './session.js';

/** A path challenge sent to a new address of a session, waiting for its response. */
export interface PendingChallenge {
  address: string;
  port: number;
  nonce: Uint8Array;
  sentMs: number;
}

/** Exit side: one validated path of a session (an entry relay, or the client itself). */
export interface SessionPath {
  address: string;
  port: number;
  /** Last packet from it, ms (the least recent is evicted when the set is full). */
  lastRxMs: number;
}

/** The validated path of `paths` at `from`, or undefined. */
export function findPath(paths: SessionPath[], from: Endpoint): SessionPath | undefined {
  for (const p of paths) if (p.port === from.port && p.address === from.address) return p;
  return undefined;
}

/** See the module comment. */
export class TunnelPaths {
  constructor(
    private readonly ctx: RelayContext,
    private readonly sources: SourceTable,
    private readonly packets: TunnelPackets,
  ) {}

  /**
   * A packet of `session` from an address other than its current client address (and
   * not its exit). True when the address is a validated path and the packet goes on to
   * the session; false when it was handled here (a challenge sent, a response checked).
   */
  fromOtherAddress(nowMs: number, session: TunnelSession, from: Endpoint, bytes: Uint8Array, type: number): boolean {
    const path = session.paths === undefined ? undefined : findPath(session.paths, from);
    if (path === undefined) {
      this.ctx.out.unauthenticatedBytesIn += bytes.length;
      if (type === PacketType.PathResponse) this.onPathResponse(nowMs, session, from, bytes);
      else this.onPathChange(nowMs, session, from, bytes);
      return false;
    }
    // Exit role: another validated entry. Downstream follows the entry that carried
    // the latest upstream data: while the SDK duplicates to its backup both are live,
    // and when its current entry dies only the backup's copies still arrive.
    path.lastRxMs = nowMs;
    if (type === PacketType.Data || type === PacketType.Parity) {
      session.clientAddress = path.address;
      session.clientPort = path.port;
    }
    return true;
  }

  /** A packet of `session` from its current client address: an exit's path is heard from. */
  fromCurrentAddress(nowMs: number, session: TunnelSession, from: Endpoint): void {
    if (session.paths === undefined) return;
    const path = findPath(session.paths, from);
    if (path !== undefined) path.lastRxMs = nowMs;
  }

  private onPathChange(nowMs: number, session: TunnelSession, from: Endpoint, bytes: Uint8Array): void {
    this.ctx.out.drops[DropReason.PathUnverified]++;
    if (!this.sources.takeUnauthenticated(nowMs, from.address) && !this.sources.isPeer(from.address)) return;
    let pending = session.challenges?.find((c) => c.address === from.address && c.port === from.port);
    if (pending === undefined) {
      pending = { address: from.address, port: from.port, nonce: new Uint8Array(PATH_NONCE_BYTES), sentMs: nowMs };
      this.ctx.components.randomFill(pending.nonce);
      session.challenges ??= [];
      session.challenges.push(pending);
      if (session.challenges.length > PATH_CHALLENGES_PENDING_MAX) session.challenges.shift();
    } else {
      pending.sentMs = nowMs;
    }
    // The challenge (40 bytes) goes out only if the packet that caused it was at least as large.
    this.ctx.out.sendUnauthenticated(TUNNEL_SOCKET_ID, from, bytes.length, this.packets.controlPacket(PacketType.PathChallenge, session.idHigh, session.idLow, pending.nonce));
  }

  private onPathResponse(nowMs: number, session: TunnelSession, from: Endpoint, bytes: Uint8Array): void {
    const challenges = session.challenges;
    const body = bytes.subarray(HEADER_BYTES);
    if (challenges === undefined || body.length < PATH_NONCE_BYTES + PATH_MAC_BYTES) {
      this.ctx.out.drops[DropReason.PathUnverified]++;
      return;
    }
    const index = challenges.findIndex((c) => c.address === from.address && c.port === from.port && nowMs - c.sentMs <= PATH_CHALLENGE_TIMEOUT_MS && equalBytes(c.nonce, body.subarray(0, PATH_NONCE_BYTES)));
    if (index === -1 || !verifyPathResponseMac(session.key, session.idHigh, session.idLow, challenges[index]!.nonce, body.subarray(PATH_NONCE_BYTES, PATH_NONCE_BYTES + PATH_MAC_BYTES))) {
      this.ctx.out.drops[DropReason.PathUnverified]++;
      return;
    }
    if (session.paths !== undefined) this.addPath(nowMs, session, from, index);
    else this.migrate(nowMs, session, from);
  }

  /** A session with one client address: the validated address replaces it (and takes the per-source accounting). */
  private migrate(nowMs: number, session: TunnelSession, from: Endpoint): void {
    const newSource = this.sources.sourceFor(nowMs, from.address);
    if (newSource === undefined) return;
    const fromText = endpointText(session.clientAddress, session.clientPort);
    session.source.sessions--;
    newSource.sessions++;
    session.source = newSource;
    session.clientAddress = from.address;
    session.clientPort = from.port;
    session.challenges = undefined;
    session.lastActiveMs = nowMs;
    this.ctx.out.event({ type: 'sessionMoved', kind: 'tunnel', id: session.idHex, rule: 'tunnel', what: 'client', from: fromText, to: endpointText(from.address, from.port) });
  }

  /**
   * Exit role: a new entry proved it holds the session key. It joins the session's
   * paths (the least recently heard is dropped past {@link EXIT_PATHS_MAX}); downstream
   * moves to it when upstream data arrives through it. It is sent an accept at once:
   * the client behind it may be waiting for one (its open arrived as the challenge's cause).
   */
  private addPath(nowMs: number, session: TunnelSession, from: Endpoint, challengeIndex: number): void {
    const paths = session.paths!;
    session.challenges!.splice(challengeIndex, 1);
    if (session.challenges!.length === 0) session.challenges = undefined;
    if (findPath(paths, from) === undefined) {
      if (paths.length >= EXIT_PATHS_MAX) {
        let oldest = -1;
        for (let i = 0; i < paths.length; i++) {
          const p = paths[i]!;
          if (p.address === session.clientAddress && p.port === session.clientPort) continue;
          if (oldest < 0 || p.lastRxMs < paths[oldest]!.lastRxMs) oldest = i;
        }
        paths.splice(oldest, 1);
      }
      paths.push({ address: from.address, port: from.port, lastRxMs: nowMs });
    }
    session.lastActiveMs = nowMs;
    this.ctx.out.event({ type: 'sessionMoved', kind: 'tunnel', id: session.idHex, rule: 'tunnel', what: 'client', from: endpointText(session.clientAddress, session.clientPort), to: `${endpointText(from.address, from.port)} (added path ${paths.length})` });
    this.ctx.out.push(TUNNEL_SOCKET_ID, from.address, from.port, undefined, this.packets.acceptPacket(session));
  }

  /** Forgets `session`'s challenges older than {@link PATH_CHALLENGE_TIMEOUT_MS} (their responses would be refused anyway). */
  expireChallenges(nowMs: number, session: TunnelSession): void {
    const challenges = session.challenges;
    if (challenges === undefined) return;
    session.challenges = challenges.filter((c) => nowMs - c.sentMs <= PATH_CHALLENGE_TIMEOUT_MS);
    if (session.challenges.length === 0) session.challenges = undefined;
  }

  /** Exit role: a validated path closed its part of the session (the session goes on through the others). */
  dropPath(session: TunnelSession, from: Endpoint): void {
    const paths = session.paths!;
    const index = paths.findIndex((p) => p.address === from.address && p.port === from.port);
    if (index < 0) return;
    paths.splice(index, 1);
    if (session.clientAddress === from.address && session.clientPort === from.port) {
      let latest = paths[0]!;
      for (const p of paths) if (p.lastRxMs > latest.lastRxMs) latest = p;
      session.clientAddress = latest.address;
      session.clientPort = latest.port;
    }
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
