/**
 * Test support for the relay core: config builders, ticket minting, and a harness that
 * drives a {@link RelayCore} directly (the str0m polling order) and records what it
 * sends. Deterministic: time is whatever the test passes, randomness is seeded.
 */
import { decodeControl, type ControlMessage } from '../../proto/src/control.js';
import { HEADER_BYTES, PacketHeader, parseHeader, sessionIdToHex, writeHeader } from '../../proto/src/header.js';
import { setShardHeader, type FecSender } from '../../proto/src/fec/index.js';
import { Rng } from '../../proto/src/rng.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed, ticketVerifyKeyFromRaw } from '../../proto/src/ticket.js';
import type { Endpoint } from '../../proto/src/transport.js';
import { buildControlPacket } from '../../proto/src/wire.js';
import { parseCidr } from '../src/core/addr.js';
import type { HealthCheckSpec, LimitsSpec, RelayCoreConfig, RuleSpec, TunnelSpec } from '../src/core/config-types.js';
import { RelayCore, type RelayEvent } from '../src/core/relay-core.js';

const keyRng = new Rng(4);
/** The coordinator's signing key in tests. */
export const signingKey = ticketSigningKeyFromSeed(keyRng.fillBytes(new Uint8Array(32)));
/** Another key, for forged tickets. */
export const forgerKey = ticketSigningKeyFromSeed(keyRng.fillBytes(new Uint8Array(32)));
/** The fleet seal key in tests. */
export const sealKey = keyRng.fillBytes(new Uint8Array(32));
/** Wall time the tests' relays believe it is at monotonic 0, Unix ms. */
export const WALL_EPOCH_MS = 1_795_000_000_000;

/** Generous limits, so that tests about something else never trip them. */
export const openLimits: LimitsSpec = {
  sessionsMax: 1_000_000,
  sessionsPerSourceMax: 1_000_000,
  newSessionsPerSourcePerSecond: 0,
  sourcePacketsPerSecond: 0,
  sourceBytesPerSecond: 0,
  sessionPacketsPerSecond: 0,
  sessionBytesPerSecond: 0,
  unauthenticatedPacketsPerSecond: 0,
  ticketVerificationsPerSecond: 0,
  ticketVerificationsPerSourcePerSecond: 0,
  burstMs: 500,
};

/** No health checks. */
export const noHealth: HealthCheckSpec = { mode: 'none', intervalMs: 1000, timeoutMs: 500, failuresToDown: 1, successesToUp: 1, udpPayload: Uint8Array.of(0) };

/** A UDP rule on `listenPort` to the group `group`. */
export function udpRule(overrides: Partial<RuleSpec> = {}): RuleSpec {
  return { name: 'game', protocol: 'udp', listenAddress: '10.0.0.1', listenPort: 27015, listenPortEnd: 27015, group: 'g', idleTimeoutMs: 60_000, proxyProtocol: 'none', hashKey: 'ip', allow: [], deny: [], ...overrides };
}

/** The tunnel section: origin `game` → 10.0.0.9:7777. */
export function tunnelSpec(overrides: Partial<TunnelSpec> = {}): TunnelSpec {
  return {
    listenAddress: '10.0.0.1',
    listenPort: 4433,
    ticketPublicKey: ticketVerifyKeyFromRaw(rawPublicKey(signingKey)),
    sealKey,
    origins: new Map([['game', { address: '10.0.0.9', port: 7777 }]]),
    allowOriginCidrs: [parseCidr('192.0.2.0/24')!],
    idleTimeoutMs: 60_000,
    clockSkewMs: 30_000,
    allow: [],
    deny: [],
    fec: { modes: ['rs', 'dup', 'off'], k: 4, r: 2, holdMs: 8, copies: 1, spacingMs: 2 },
    ...overrides,
  };
}

/** A config with one UDP rule over origins a/b (10.0.0.8/9:7000) and a tunnel. */
export function baseConfig(overrides: Partial<RelayCoreConfig> = {}): RelayCoreConfig {
  return {
    rules: [udpRule()],
    groups: [{ name: 'g', origins: [{ address: '10.0.0.8', port: 7000, portEnd: 7000 }, { address: '10.0.0.9', port: 7000, portEnd: 7000 }], healthCheck: noHealth }],
    limits: openLimits,
    tunnel: tunnelSpec(),
    upstreamBindAddress: '10.0.0.1',
    ...overrides,
  };
}

/** A session's identity and key, as a client holds them. */
export interface ClientSession {
  readonly high: number;
  readonly low: number;
  readonly hex: string;
  readonly key: Uint8Array;
  readonly ticket: Uint8Array;
}

/** Mints a ticket (valid by default) with a fresh session id and key from `rng`. */
export function mintTicket(rng: Rng, options: { origin?: string; expiresInMs?: number; key?: typeof signingKey; sealWith?: Uint8Array; sessionIdHex?: string; pps?: number; bps?: number; playerId?: string; exit?: { relayId: string; address: string } } = {}): ClientSession {
  const high = rng.nextUint32();
  const low = rng.nextUint32();
  const hex = sessionIdToHex(high, low);
  const key = rng.fillBytes(new Uint8Array(32));
  const ticket = issueTicket(
    {
      sessionId: options.sessionIdHex ?? hex,
      origin: options.origin ?? 'game',
      issuedAtMs: WALL_EPOCH_MS,
      expiresAtMs: WALL_EPOCH_MS + (options.expiresInMs ?? 600_000),
      limits: { packetsPerSecond: options.pps ?? 0, bytesPerSecond: options.bps ?? 0 },
      sessionKey: key,
      sealNonce: rng.fillBytes(new Uint8Array(12)),
      ...(options.playerId !== undefined ? { playerId: options.playerId } : {}),
      ...(options.exit !== undefined ? { exit: options.exit } : {}),
    },
    options.key ?? signingKey,
    options.sealWith ?? sealKey,
  );
  return { high, low, hex, key, ticket };
}

/** A session open for `session`'s ticket, as a client sends it to the tunnel port (FEC off only). */
export function openPacket(session: Pick<ClientSession, 'high' | 'low' | 'ticket'>): Uint8Array {
  return buildControlPacket(session.high, session.low, { type: 'sessionOpen', ticket: session.ticket, fecModes: ['off'] });
}

/** One datagram the core sent, copied out. */
export interface Sent {
  readonly socketId: number;
  readonly to: Endpoint;
  readonly bytes: Uint8Array;
}

/** Drives a core directly and records its output. */
export class Harness {
  readonly core: RelayCore;
  readonly sent: Sent[] = [];
  readonly events: RelayEvent[] = [];
  /** Socket ids by kind/port from openSocket events. */
  readonly listenerIds = new Map<number, number>();
  tunnelId = -1;
  healthId = -1;
  nowMs = 0;

  constructor(config: RelayCoreConfig = baseConfig(), seed = 1) {
    const rng = new Rng(seed);
    this.core = new RelayCore(config, { wallClockMs: () => WALL_EPOCH_MS + this.nowMs, randomFill: (out) => void rng.fillBytes(out) });
    this.core.start(0);
    this.drain();
  }

  /** Drains events then transmits (the documented order). Returns what was sent by this call. */
  drain(): Sent[] {
    const start = this.sent.length;
    for (let e = this.core.pollEvent(); e; e = this.core.pollEvent()) {
      this.events.push(e);
      if (e.type === 'openSocket' && e.kind === 'listener') this.listenerIds.set(e.port, e.socketId);
      if (e.type === 'openSocket' && e.kind === 'tunnel') this.tunnelId = e.socketId;
      if (e.type === 'openSocket' && e.kind === 'health') this.healthId = e.socketId;
    }
    for (let tx = this.core.pollTransmit(); tx; tx = this.core.pollTransmit()) {
      const bytes = new Uint8Array((tx.prefix?.length ?? 0) + tx.bytes.length);
      if (tx.prefix) bytes.set(tx.prefix);
      bytes.set(tx.bytes, tx.prefix?.length ?? 0);
      this.sent.push({ socketId: tx.socketId, to: { address: tx.address, port: tx.port }, bytes });
    }
    return this.sent.slice(start);
  }

  /** Delivers a datagram at the current time and returns what the core sent in answer. */
  deliver(socketId: number, from: Endpoint, bytes: Uint8Array): Sent[] {
    this.core.handleDatagram(this.nowMs, socketId, from, bytes);
    return this.drain();
  }

  /** Advances time, running every deadline on the way. */
  advance(toMs: number): Sent[] {
    const start = this.sent.length;
    for (let guard = 0; guard < 1_000_000; guard++) {
      const deadline = this.core.pollTimeout();
      if (deadline === undefined || deadline > toMs) break;
      this.nowMs = Math.max(this.nowMs, deadline);
      this.core.handleTimeout(this.nowMs);
      this.drain();
    }
    this.nowMs = toMs;
    return this.sent.slice(start);
  }

  /** Events of one type. */
  eventsOf<T extends RelayEvent['type']>(type: T): Extract<RelayEvent, { type: T }>[] {
    return this.events.filter((e): e is Extract<RelayEvent, { type: T }> => e.type === type);
  }
}

/** Decodes the control body of a tunnel packet the relay sent. */
export function controlOf(bytes: Uint8Array): ControlMessage | undefined {
  const decoded = decodeControl(bytes.subarray(HEADER_BYTES));
  return decoded.ok ? decoded.message : undefined;
}

/** The packet type of a tunnel packet, or -1 when it does not parse. */
export function typeOf(bytes: Uint8Array): number {
  const header = new PacketHeader();
  return parseHeader(bytes, header) === 0 ? header.type : -1;
}

/** Everything `sender` sends for `payload` pushed at `nowMs` (data and parity shards), as tunnel packets of session `s`. */
export function upstreamShards(s: ClientSession, sender: FecSender, nowMs: number, payload: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const buffer = new Uint8Array(1402);
  sender.push(nowMs, payload);
  for (let tx = sender.pollTransmit(buffer); tx; tx = sender.pollTransmit(buffer)) {
    const hh = new PacketHeader();
    setShardHeader(hh, tx, s.high, s.low);
    const packet = new Uint8Array(HEADER_BYTES + tx.length);
    writeHeader(hh, packet);
    packet.set(buffer.subarray(0, tx.length), HEADER_BYTES);
    out.push(packet);
  }
  return out;
}
