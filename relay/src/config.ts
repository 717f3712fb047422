/**
 * `relay.yaml` → the validated {@link RelayConfig}. Every key is declared here with its
 * default and range (relay/README.md documents the same table); any problem throws a
 * ConfigError naming the file, the line, the key and what is accepted, which the CLI
 * turns into exit code 2.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { accessSync, constants as fsConstants, readFileSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { ConfigReader, type ConfigPath } from '../../kit/config.js';
import { LOG_LEVELS, type LogLevel } from '../../kit/log.js';
import { ticketVerifyKeyFromRaw, SEAL_KEY_BYTES, TICKET_CLOCK_SKEW_MS } from '../../proto/src/ticket.js';
import { JOIN_TOKEN } from '../../proto/src/api/relay-identity.js';
import {
  FEC_COPIES_MAX,
  FEC_HOLD_MS_DEFAULT,
  FEC_HOLD_MS_MAX,
  FEC_SPACING_MS_MAX,
  SLIDING_WINDOW_PACKETS_MAX,
  SLIDING_WINDOW_MS_MAX,
  SLIDING_WINDOW_PARAMETERS_DEFAULT,
  SLIDING_WINDOW_REPAIR_SPACING_MS_MAX,
  SLIDING_WINDOW_REPAIRS_PER_SOURCE_MAX,
  type SlidingWindowParameters,
} from '../../proto/src/fec/index.js';
import { parseCidr, splitHostPort, type Cidr } from './core/addr.js';
import type { HealthCheckSpec, LimitsSpec, OriginGroupSpec, RelayCoreConfig, RevocationFeedSpec, RuleSpec, TcpLimitsSpec, TunnelFecSpec, TunnelSpec } from './core/config-types.js';
import * as C from './core/constants.js';
import { webrtcSpec, type WebRtcSpec } from './webrtc-config.js';
import { UDP_IO_MODES, type UdpIoMode } from '../../kit/udp-batch.js';

/** Everything `slipstream relay` runs with. */
export interface RelayConfig {
  /** What the sans-IO core needs. */
  readonly core: RelayCoreConfig;
  /** pino level. Default `info`. */
  readonly logLevel: LogLevel;
  /**
   * Refusals, drops and flows that never got an answer are logged as at most one line
   * per reason per this interval, with the count and a sample (relay/src/log-aggregator.ts),
   * ms. Default {@link C.LOG_AGGREGATE_INTERVAL_MS_DEFAULT} (10 000), accepted 100–3 600 000.
   */
  readonly logAggregateIntervalMs: number;
  /** Where `/metrics` and `/health` listen, or undefined (key `metrics.listen: off`). */
  readonly metricsListen: { readonly host: string; readonly port: number } | undefined;
  /** SIGTERM drain deadline, ms. */
  readonly drainTimeoutMs: number;
  /** File of revoked session ids (one 16-hex id per line), or undefined. */
  readonly revocationFile: string | undefined;
  /** How often the revocation file is checked, ms. */
  readonly revocationPollMs: number;
  /**
   * Where the coordinator feed's revocation list is kept across restarts
   * (`tunnel.revocationStateFile`), or undefined (not kept: a restarted relay holds no list
   * until its feed answers). See revocation-state.ts.
   */
  readonly revocationStateFile: string | undefined;
  /** Coordinator base URL whose revocation feed to follow, or undefined. */
  readonly coordinatorUrl: string | undefined;
  /** The fleet secret the feed is read with (and fleet requests, for a relay without {@link coordinatorIdentity}). */
  readonly coordinatorFleetSecret: string | undefined;
  /**
   * The relay's own key (`tunnel.coordinatorIdentityKeyFile`): fleet requests and the
   * revocation feed are signed with it instead of carrying the fleet secret. Undefined
   * without one. Internal: holds the private key, never log it.
   */
  readonly coordinatorIdentity: CoordinatorIdentitySpec | undefined;
  /**
   * Kernel receive buffer (SO_RCVBUF) for listen and tunnel sockets, bytes (0 = OS
   * default). Default {@link C.SOCKET_RECEIVE_BUFFER_BYTES_DEFAULT} (4 MiB), accepted
   * 0–2^30; capped by `net.core.rmem_max` (warned at start). Read at start only.
   */
  readonly socketReceiveBufferBytes: number;
  /**
   * Kernel receive buffer (SO_RCVBUF) for each origin-facing socket (one per UDP flow
   * and tunnel session), bytes (0 = OS default, `net.core.rmem_default`). Default 0,
   * accepted 0–2^30. A reload applies it to sockets opened afterwards.
   */
  readonly upstreamReceiveBufferBytes: number;
  /**
   * UDP I/O: `auto` (default: batched `recvmmsg`/`sendmmsg` through the udp-batch addon
   * when it loads, else `dgram`), `batched` (the addon, or the relay does not start),
   * `dgram`. The environment variable `SLIPSTREAM_UDP_IO` overrides it. Read at start only.
   */
  readonly udpIo: UdpIoMode;
  /**
   * Relay workers: threads that each run the relay on the same ports (SO_REUSEPORT;
   * relay/src/workers.ts), so a relay uses that many cores. Default 1 (one thread, as
   * before), accepted 1–{@link WORKERS_MAX} or `auto` (the core count). Read at start only.
   */
  readonly workers: number;
  /** Fleet membership (register, heartbeat, probe the mesh and origins), or undefined. */
  readonly fleet: FleetSpec | undefined;
  /** The browser entry (`tunnel.webrtc`: signaling, ICE UDP mux, peer-connection limits), or undefined. Read at start only. */
  readonly webrtc: WebRtcSpec | undefined;
}

/** A relay's own coordinator identity (relay/README.md, "Relay identity"). */
export interface CoordinatorIdentitySpec {
  /** The relay id the key speaks for: `tunnel.relayId`, else `fleet.relayId`. */
  readonly relayId: string;
  /** The Ed25519 private key, PKCS#8 PEM, as read from (or generated into) the key file. */
  readonly privateKeyPem: string;
  /** The one-time join token that enrolls the key when the coordinator does not know it yet (`coordinatorJoinToken[File]`). */
  readonly joinToken: string | undefined;
}

/** The `fleet` section: how the relay joins the coordinator's registry and measures paths. */
export interface FleetSpec {
  readonly relayId: string;
  readonly region: string;
  /** Degrees. */
  readonly latitude: number;
  readonly longitude: number;
  /** Public `host:port` clients tunnel to; undefined = the tunnel's bound address (refused at start when that is unspecified, e.g. 0.0.0.0). */
  readonly tunnelAddress: string | undefined;
  /** Public `host:port` that answers probes; undefined = `tunnelAddress`. */
  readonly probeAddress: string | undefined;
  /**
   * Tunnel sessions the coordinator may send here. Default the tunnel's budget
   * (`limits.tunnelSessionsMax`): the heartbeat's session count is measured against it
   * (see `RelayCore.fleetLoadSessionCount`).
   */
  readonly capacitySessions: number;
  /** Heartbeat period, ms (the coordinator's own interval caps it). */
  readonly heartbeatIntervalMs: number;
  /** Probe period per target, ms. */
  readonly probeIntervalMs: number;
  /** A probe unanswered this long is lost, ms. */
  readonly probeTimeoutMs: number;
  /** Period of path reports to the coordinator, ms. */
  readonly reportIntervalMs: number;
  /** How often the fleet list (the mesh to probe) is re-read, ms. */
  readonly meshRefreshMs: number;
  /** How origins (`tunnel.origins`) are probed: TCP connect time, or not at all. */
  readonly originProbe: 'tcp' | 'none';
}

/** Most relay workers `workers:` accepts (threads; more than the cores only adds hand-offs). */
export const WORKERS_MAX = 64;

/**
 * `workers:` as a count: a number 1–{@link WORKERS_MAX}, or `auto` for the cores this
 * process may run on (`os.availableParallelism()`, which follows the CPU affinity and
 * cgroup-restricted sets Node sees), capped at {@link WORKERS_MAX}. Default 1.
 */
function workersCount(reader: ConfigReader): number {
  if (reader.get(['workers']) === 'auto') return Math.min(WORKERS_MAX, Math.max(1, availableParallelism()));
  return reader.number(['workers'], { min: 1, max: WORKERS_MAX, integer: true, unit: "relay workers (threads on the same ports), or 'auto' for the core count", default: 1 });
}

const TOP_KEYS = ['logLevel', 'logAggregateIntervalMs', 'upstreamBindAddress', 'metrics', 'drain', 'limits', 'tcp', 'originGroups', 'rules', 'tunnel', 'socketReceiveBufferBytes', 'upstreamReceiveBufferBytes', 'udpIo', 'fleet', 'workers'];
const FLEET_KEYS = ['relayId', 'region', 'latitude', 'longitude', 'tunnelAddress', 'probeAddress', 'capacitySessions', 'heartbeatIntervalMs', 'probeIntervalMs', 'probeTimeoutMs', 'reportIntervalMs', 'meshRefreshMs', 'originProbe'];
const RULE_KEYS = ['name', 'protocol', 'listen', 'group', 'origins', 'healthCheck', 'idleTimeoutMs', 'sessionsMax', 'connectTimeoutMs', 'proxyProtocol', 'hashKey', 'allow', 'deny', 'connectionBytesPerSecond', 'bytesPerSecond'];
const HEALTH_KEYS = ['mode', 'intervalMs', 'timeoutMs', 'failuresToDown', 'successesToUp', 'udpPayloadHex'];
const LIMIT_KEYS = ['sessionsMax', 'udpFlowsMax', 'tcpConnectionsMax', 'tunnelSessionsMax', 'unrepliedIdleTimeoutMs', 'sessionsPerSourceMax', 'newSessionsPerSourcePerSecond', 'sourcePacketsPerSecond', 'sourceBytesPerSecond', 'sessionPacketsPerSecond', 'sessionBytesPerSecond', 'unauthenticatedPacketsPerSecond', 'ticketVerificationsPerSecond', 'ticketVerificationsPerSourcePerSecond', 'burstMs'];
/** A `tunnel.origins` entry in its long form. */
const TUNNEL_ORIGIN_KEYS = ['address', 'proxyProtocol'];
/** Values of `tunnel.proxyProtocol` (and of an origin's own). */
const PROXY_PROTOCOLS = ['none', 'v2', 'spp'];
const TUNNEL_KEYS = ['listen', 'ticketPublicKey', 'additionalTicketPublicKeys', 'sealKey', 'sealKeyFile', 'additionalSealKeys', 'origins', 'allowOriginCidrs', 'idleTimeoutMs', 'clockSkewMs', 'allow', 'deny', 'revocationFile', 'revocationPollMs', 'revocationStateFile', 'revocationMaxAgeMs', 'revocationStalePolicy', 'coordinatorUrl', 'coordinatorFleetSecret', 'coordinatorFleetSecretFile', 'coordinatorIdentityKeyFile', 'coordinatorJoinToken', 'coordinatorJoinTokenFile', 'fec', 'relayId', 'peerCidrs', 'exitDeadAfterMs', 'webrtc', 'proxyProtocol'];
const FEC_KEYS = ['modes', 'k', 'r', 'holdMs', 'copies', 'spacingMs', 'adaptive', 'overheadMax', 'latencyBudgetMs', 'sw'];
const FEC_SW_KEYS = ['repairsPerSource', 'repairSpacingMs', 'windowPackets', 'windowMs'];
const RATE_MAX = 1e10;

/** Reads and validates a config file. Throws ConfigError. */
export function loadRelayConfig(path: string): RelayConfig {
  return parseRelayConfig(ConfigReader.fromFile(path));
}

function ipLiteral(reader: ConfigReader, path: ConfigPath, text: string): string {
  if (isIP(text) === 0) reader.fail(path, `'${text}' is not an IP address; expected an IPv4 or IPv6 literal (hostnames are not resolved)`);
  return text;
}

function hostPort(reader: ConfigReader, path: ConfigPath, allowRange: boolean, given?: string): { host: string; port: number; portEnd: number } {
  const text = given ?? reader.string(path, { patternText: allowRange ? 'host:port or host:first-last, e.g. 0.0.0.0:27015 or 10.0.0.5:27015-27020' : 'host:port, e.g. 10.0.0.5:27015' });
  const parsed = splitHostPort(text);
  if (!parsed || (!allowRange && parsed.portEnd !== parsed.port)) reader.fail(path, `'${text}' is not accepted; expected ${allowRange ? 'IP:port or IP:first-last' : 'IP:port'} with ports 0–65535`);
  ipLiteral(reader, path, parsed.host);
  if (parsed.portEnd - parsed.port + 1 > C.PORT_RANGE_PORTS_MAX) reader.fail(path, `range of ${parsed.portEnd - parsed.port + 1} ports; expected at most ${C.PORT_RANGE_PORTS_MAX}`);
  return parsed;
}

function cidrs(reader: ConfigReader, path: ConfigPath): Cidr[] {
  const n = reader.sequenceLength(path, { optional: true, maxItems: 4096 });
  const out: Cidr[] = [];
  for (let i = 0; i < n; i++) {
    const text = reader.string([...path, i], { patternText: 'a CIDR block such as 10.0.0.0/8 or 2001:db8::/32' });
    const cidr = parseCidr(text);
    if (!cidr) reader.fail([...path, i], `'${text}' is not a CIDR block; expected e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32`);
    out.push(cidr);
  }
  return out;
}

function healthCheck(reader: ConfigReader, path: ConfigPath): HealthCheckSpec {
  reader.rejectUnknownKeys(path, HEALTH_KEYS);
  const mode = reader.string([...path, 'mode'], { choices: ['none', 'udp', 'tcp'], default: 'none' }) as HealthCheckSpec['mode'];
  const intervalMs = reader.number([...path, 'intervalMs'], { min: 100, max: 600_000, integer: true, unit: 'ms', default: C.HEALTH_INTERVAL_MS_DEFAULT });
  const timeoutMs = reader.number([...path, 'timeoutMs'], { min: 10, max: intervalMs, integer: true, unit: 'ms (at most intervalMs)', default: Math.min(C.HEALTH_TIMEOUT_MS_DEFAULT, intervalMs) });
  const failuresToDown = reader.number([...path, 'failuresToDown'], { min: 1, max: 100, integer: true, default: C.HEALTH_FAILURES_TO_DOWN_DEFAULT });
  const successesToUp = reader.number([...path, 'successesToUp'], { min: 1, max: 100, integer: true, default: C.HEALTH_SUCCESSES_TO_UP_DEFAULT });
  const hex = reader.string([...path, 'udpPayloadHex'], { pattern: /^(?:[0-9a-fA-F]{2}){1,1024}$/, patternText: 'an even number of hex digits (1–1024 bytes)', default: '00' });
  return { mode, intervalMs, timeoutMs, failuresToDown, successesToUp, udpPayload: new Uint8Array(Buffer.from(hex, 'hex')) };
}

function originList(reader: ConfigReader, path: ConfigPath): OriginGroupSpec['origins'] {
  const n = reader.sequenceLength(path, { minItems: 1, maxItems: 256 });
  const out: { address: string; port: number; portEnd: number }[] = [];
  for (let i = 0; i < n; i++) {
    const o = hostPort(reader, [...path, i], true);
    if (o.port === 0) reader.fail([...path, i], 'port 0 is not an origin port; expected 1–65535');
    out.push({ address: o.host, port: o.port, portEnd: o.portEnd });
  }
  return out;
}

function limits(reader: ConfigReader): LimitsSpec {
  const p: ConfigPath = ['limits'];
  reader.rejectUnknownKeys(p, LIMIT_KEYS);
  const rate = (key: string, def: number): number => reader.number([...p, key], { min: 0, max: RATE_MAX, unit: '(0 = unlimited)', default: def });
  return {
    sessionsMax: reader.number([...p, 'sessionsMax'], { min: 1, max: 10_000_000, integer: true, default: C.SESSIONS_MAX_DEFAULT }),
    sessionsPerSourceMax: reader.number([...p, 'sessionsPerSourceMax'], { min: 1, max: 10_000_000, integer: true, default: C.SESSIONS_PER_SOURCE_MAX_DEFAULT }),
    newSessionsPerSourcePerSecond: rate('newSessionsPerSourcePerSecond', C.NEW_SESSIONS_PER_SOURCE_PER_SECOND_DEFAULT),
    sourcePacketsPerSecond: rate('sourcePacketsPerSecond', C.SOURCE_PACKETS_PER_SECOND_DEFAULT),
    sourceBytesPerSecond: rate('sourceBytesPerSecond', C.SOURCE_BYTES_PER_SECOND_DEFAULT),
    sessionPacketsPerSecond: rate('sessionPacketsPerSecond', C.SESSION_PACKETS_PER_SECOND_DEFAULT),
    sessionBytesPerSecond: rate('sessionBytesPerSecond', C.SESSION_BYTES_PER_SECOND_DEFAULT),
    unauthenticatedPacketsPerSecond: rate('unauthenticatedPacketsPerSecond', C.UNAUTHENTICATED_PACKETS_PER_SECOND_DEFAULT),
    ticketVerificationsPerSecond: rate('ticketVerificationsPerSecond', C.TICKET_VERIFICATIONS_PER_SECOND_DEFAULT),
    ticketVerificationsPerSourcePerSecond: rate('ticketVerificationsPerSourcePerSecond', C.TICKET_VERIFICATIONS_PER_SOURCE_PER_SECOND_DEFAULT),
    burstMs: reader.number([...p, 'burstMs'], { min: 1, max: 60_000, integer: true, unit: 'ms', default: C.BURST_MS_DEFAULT }),
    unrepliedIdleTimeoutMs: reader.number([...p, 'unrepliedIdleTimeoutMs'], { min: C.UNREPLIED_IDLE_TIMEOUT_MS_MIN, max: C.IDLE_TIMEOUT_MS_MAX, integer: true, unit: 'ms', default: C.UNREPLIED_IDLE_TIMEOUT_MS_DEFAULT }),
  };
}

/** The `tcp:` section: L4 TCP caps per source address (see {@link TcpLimitsSpec}). */
function tcpLimits(reader: ConfigReader): TcpLimitsSpec {
  const p: ConfigPath = ['tcp'];
  reader.rejectUnknownKeys(p, ['connectionsPerSourceMax', 'silentPerSourceMax', 'firstByteTimeoutMs']);
  const firstByteTimeoutMs = reader.number([...p, 'firstByteTimeoutMs'], { min: 0, max: 600_000, integer: true, unit: 'ms (0 = never)', default: C.TCP_FIRST_BYTE_TIMEOUT_MS_DEFAULT });
  // The core's sweep runs every second: a shorter timeout would only read as precise.
  if (firstByteTimeoutMs > 0 && firstByteTimeoutMs < 1000) reader.fail([...p, 'firstByteTimeoutMs'], `${firstByteTimeoutMs} is too short; expected 0 (never) or 1000–600000 ms`);
  return {
    connectionsPerSourceMax: reader.number([...p, 'connectionsPerSourceMax'], { min: 1, max: 10_000_000, integer: true, default: C.TCP_CONNECTIONS_PER_SOURCE_MAX_DEFAULT }),
    silentPerSourceMax: reader.number([...p, 'silentPerSourceMax'], { min: 1, max: 10_000_000, integer: true, default: C.TCP_SILENT_PER_SOURCE_MAX_DEFAULT }),
    firstByteTimeoutMs,
  };
}

/**
 * The per-kind and per-rule session budgets (core/budgets.ts), once the rules and the
 * tunnel are known. By default `limits.sessionsMax` is split evenly among the kinds
 * configured (UDP rules, TCP rules, the tunnel), and each kind's budget evenly among
 * its rules, so that by default the budgets never add up to more than the ceiling and
 * no door can fill another's room. Explicit budgets may add up to more (the ceiling
 * then still holds, and unreplied UDP flows are shed first), but none may exceed the
 * budget it is part of.
 */
function budgets(reader: ConfigReader, base: LimitsSpec, rules: RuleSpec[], hasTunnel: boolean): { limits: LimitsSpec; rules: RuleSpec[] } {
  const p: ConfigPath = ['limits'];
  const udpRules = rules.filter((r) => r.protocol === 'udp').length;
  const tcpRules = rules.length - udpRules;
  const kinds = (udpRules > 0 ? 1 : 0) + (tcpRules > 0 ? 1 : 0) + (hasTunnel ? 1 : 0);
  const share = Math.max(1, Math.floor(base.sessionsMax / Math.max(1, kinds)));
  const budget = (key: string): number =>
    reader.number([...p, key], { min: 1, max: base.sessionsMax, integer: true, unit: `(a share of limits.sessionsMax, ${base.sessionsMax})`, default: share });
  const limits: LimitsSpec = { ...base, udpFlowsMax: budget('udpFlowsMax'), tcpConnectionsMax: budget('tcpConnectionsMax'), tunnelSessionsMax: budget('tunnelSessionsMax') };
  const withBudgets = rules.map((rule, i) => {
    const kindMax = rule.protocol === 'udp' ? limits.udpFlowsMax! : limits.tcpConnectionsMax!;
    const kindKey = rule.protocol === 'udp' ? 'limits.udpFlowsMax' : 'limits.tcpConnectionsMax';
    const sessionsMax = reader.number(['rules', i, 'sessionsMax'], {
      min: 1,
      max: kindMax,
      integer: true,
      unit: `(a share of ${kindKey}, ${kindMax})`,
      default: Math.max(1, Math.floor(kindMax / (rule.protocol === 'udp' ? udpRules : tcpRules))),
    });
    return { ...rule, sessionsMax };
  });
  return { limits, rules: withBudgets };
}

function base64Key(reader: ConfigReader, path: ConfigPath, bytes: number, text: string): Uint8Array {
  const raw = Buffer.from(text.trim(), 'base64');
  if (raw.length !== bytes || !/^[A-Za-z0-9+/=_-]+$/.test(text.trim())) reader.fail(path, `expected ${bytes} bytes in base64 (${Math.ceil(bytes / 3) * 4} characters), got ${raw.length} bytes`);
  return new Uint8Array(raw);
}

/** At most this many extra ticket public keys or seal keys: a rotation needs one or two. */
const ADDITIONAL_KEYS_MAX = 4;

/** A list of base64 keys (default empty), each `bytes` long, none repeating `inUse` or another. */
function base64KeyList(reader: ConfigReader, path: ConfigPath, bytes: number, inUse: Uint8Array[]): Uint8Array[] {
  const count = reader.sequenceLength(path, { optional: true, maxItems: ADDITIONAL_KEYS_MAX });
  const keys: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const key = base64Key(reader, [...path, i], bytes, reader.string([...path, i]));
    if ([...inUse, ...keys].some((k) => Buffer.compare(k, key) === 0)) reader.fail([...path, i], 'repeats a key already configured; list only the other key of the rotation');
    keys.push(key);
  }
  return keys;
}

const RELAY_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** `tunnel.relayId`, else `fleet.relayId` (checked again with the rest of `fleet`), as the spread for {@link TunnelSpec.relayId}. */
function exitRelayId(reader: ConfigReader): { relayId?: string } {
  if (reader.has(['tunnel', 'relayId'])) return { relayId: reader.string(['tunnel', 'relayId'], { pattern: RELAY_ID, patternText: '1–64 letters, digits, dots, dashes or underscores (the id tickets name this relay by as an exit)' }) };
  if (reader.has(['fleet', 'relayId'])) return { relayId: reader.string(['fleet', 'relayId'], { pattern: RELAY_ID, patternText: '1–64 letters, digits, dots, dashes or underscores (unique in the fleet)' }) };
  return {};
}

/**
 * `tunnel.coordinatorIdentityKeyFile` (with the join token, if any): the key is read from
 * the file, or generated into it (mode 0600) when the file does not exist yet, so that a
 * new relay needs only a path and a token.
 */
function identity(reader: ConfigReader): CoordinatorIdentitySpec | undefined {
  const p: ConfigPath = ['tunnel', 'coordinatorIdentityKeyFile'];
  const hasToken = reader.has(['tunnel', 'coordinatorJoinToken']) || reader.has(['tunnel', 'coordinatorJoinTokenFile']);
  if (!reader.has(p)) {
    if (hasToken) reader.fail(['tunnel', reader.has(['tunnel', 'coordinatorJoinToken']) ? 'coordinatorJoinToken' : 'coordinatorJoinTokenFile'], 'given without tunnel.coordinatorIdentityKeyFile; the token enrolls that key');
    return undefined;
  }
  // The id it registers under (fleet.relayId) first: the key speaks for the relay's fleet membership.
  const id = reader.has(['fleet', 'relayId']) ? reader.string(['fleet', 'relayId'], { pattern: RELAY_ID, patternText: '1–64 letters, digits, dots, dashes or underscores (unique in the fleet)' }) : exitRelayId(reader).relayId;
  if (id === undefined) reader.fail(p, 'needs a relay id for the key to speak for: set fleet.relayId (or tunnel.relayId)');
  const file = reader.string(p);
  let privateKeyPem: string;
  try {
    privateKeyPem = readIdentityKey(file);
  } catch (error) {
    reader.fail(p, `cannot read or create '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; expected an Ed25519 private key in PKCS#8 PEM (created when the file does not exist)`);
  }
  let joinToken: string | undefined;
  if (reader.has(['tunnel', 'coordinatorJoinTokenFile'])) {
    const tokenFile = reader.string(['tunnel', 'coordinatorJoinTokenFile']);
    try {
      joinToken = readFileSync(tokenFile, 'utf8').trim();
    } catch (error) {
      reader.fail(['tunnel', 'coordinatorJoinTokenFile'], `cannot read '${tokenFile}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    if (!JOIN_TOKEN.test(joinToken)) reader.fail(['tunnel', 'coordinatorJoinTokenFile'], `'${tokenFile}' does not hold a join token; expected 'sjt_' and 43 base64url characters (slipstream coordinator token)`);
  } else if (reader.has(['tunnel', 'coordinatorJoinToken'])) {
    joinToken = reader.string(['tunnel', 'coordinatorJoinToken'], { pattern: JOIN_TOKEN, patternText: "a join token: 'sjt_' and 43 base64url characters (slipstream coordinator token)" });
  }
  return { relayId: id, privateKeyPem, joinToken };
}

/** The PEM in `file`, checked to be an Ed25519 private key; a new key is written there (0600) when the file does not exist. Throws what went wrong. */
export function readIdentityKey(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    // 'wx': never overwrite a key another process wrote meanwhile.
    writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
  }
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`holds a ${key.asymmetricKeyType ?? 'non-asymmetric'} key, not Ed25519`);
  return pem;
}

function tunnel(reader: ConfigReader): TunnelSpec | undefined {
  const p: ConfigPath = ['tunnel'];
  if (!reader.has(p)) return undefined;
  reader.rejectUnknownKeys(p, TUNNEL_KEYS);
  const listen = hostPort(reader, [...p, 'listen'], false);
  const publicKey = base64Key(reader, [...p, 'ticketPublicKey'], 32, reader.string([...p, 'ticketPublicKey'], { patternText: "the coordinator's Ed25519 public key, 32 bytes in base64" }));
  let sealKey: Uint8Array;
  if (reader.has([...p, 'sealKeyFile'])) {
    const file = reader.string([...p, 'sealKeyFile']);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      reader.fail([...p, 'sealKeyFile'], `cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    sealKey = base64Key(reader, [...p, 'sealKeyFile'], SEAL_KEY_BYTES, text);
  } else {
    sealKey = base64Key(reader, [...p, 'sealKey'], SEAL_KEY_BYTES, reader.string([...p, 'sealKey'], { patternText: 'the fleet seal key, 32 bytes in base64 (or give sealKeyFile)' }));
  }
  // Key rotation: further keys accepted besides the one in use, at most a few.
  const additionalTicketPublicKeys = base64KeyList(reader, [...p, 'additionalTicketPublicKeys'], 32, [publicKey]);
  const additionalSealKeys = base64KeyList(reader, [...p, 'additionalSealKeys'], SEAL_KEY_BYTES, [sealKey]);
  const origins = new Map<string, { address: string; port: number; proxyProtocol?: NonNullable<TunnelSpec['proxyProtocol']> }>();
  for (const name of reader.mapKeys([...p, 'origins'], { optional: true })) {
    // `name: IP:port`, or `name: { address: IP:port, proxyProtocol: … }` for an origin with its own header.
    const op: ConfigPath = [...p, 'origins', name];
    const entry = reader.get(op);
    const long = entry !== null && typeof entry === 'object' && !Array.isArray(entry);
    if (long) reader.rejectUnknownKeys(op, TUNNEL_ORIGIN_KEYS);
    const ap: ConfigPath = long ? [...op, 'address'] : op;
    const o = hostPort(reader, ap, false);
    if (o.port === 0) reader.fail(ap, 'port 0 is not an origin port; expected 1–65535');
    const own = long && reader.has([...op, 'proxyProtocol']) ? { proxyProtocol: reader.string([...op, 'proxyProtocol'], { choices: PROXY_PROTOCOLS }) as NonNullable<TunnelSpec['proxyProtocol']> } : {};
    origins.set(name, { address: o.host, port: o.port, ...own });
  }
  const fp: ConfigPath = [...p, 'fec'];
  reader.rejectUnknownKeys(fp, FEC_KEYS);
  const modeCount = reader.sequenceLength([...fp, 'modes'], { optional: true, maxItems: 4 });
  const modes: TunnelFecSpec['modes'][number][] = [];
  for (let i = 0; i < modeCount; i++) modes.push(reader.string([...fp, 'modes', i], { choices: ['rs', 'dup', 'off', 'sw'] }) as TunnelFecSpec['modes'][number]);
  const k = reader.number([...fp, 'k'], { min: 1, max: 64, integer: true, default: 4 });
  const fec: TunnelFecSpec = {
    modes: modeCount === 0 ? ['sw', 'rs', 'dup', 'off'] : modes,
    k,
    r: reader.number([...fp, 'r'], { min: 1, max: 255 - k, integer: true, default: 2 }),
    holdMs: reader.number([...fp, 'holdMs'], { min: 0, max: FEC_HOLD_MS_MAX, unit: 'ms', default: FEC_HOLD_MS_DEFAULT }),
    copies: reader.number([...fp, 'copies'], { min: 1, max: FEC_COPIES_MAX, integer: true, default: 1 }),
    spacingMs: reader.number([...fp, 'spacingMs'], { min: 0, max: FEC_SPACING_MS_MAX, unit: 'ms', default: 2 }),
    adaptive: reader.boolean([...fp, 'adaptive'], { default: true }),
    overheadMax: reader.number([...fp, 'overheadMax'], { min: 0, max: 4, unit: '(fraction of the data: 1 = 100 % extra)', default: C.FEC_OVERHEAD_MAX_DEFAULT }),
    ...(reader.has([...fp, 'latencyBudgetMs']) ? { latencyBudgetMs: reader.number([...fp, 'latencyBudgetMs'], { min: 0, max: 1000, unit: 'ms' }) } : {}),
    // Fixed sliding-window settings: they appear only when asked for.
    ...(reader.has([...fp, 'sw']) ? { sw: slidingWindowSettings(reader, [...fp, 'sw']) } : {}),
  };
  return {
    listenAddress: listen.host,
    listenPort: listen.port,
    ticketPublicKey: ticketVerifyKeyFromRaw(publicKey),
    sealKey,
    ...(additionalTicketPublicKeys.length > 0 ? { additionalTicketPublicKeys: additionalTicketPublicKeys.map((raw) => ticketVerifyKeyFromRaw(raw)) } : {}),
    ...(additionalSealKeys.length > 0 ? { additionalSealKeys } : {}),
    origins,
    allowOriginCidrs: cidrs(reader, [...p, 'allowOriginCidrs']),
    idleTimeoutMs: reader.number([...p, 'idleTimeoutMs'], { min: C.IDLE_TIMEOUT_MS_MIN, max: C.IDLE_TIMEOUT_MS_MAX, integer: true, unit: 'ms', default: C.TUNNEL_IDLE_TIMEOUT_MS_DEFAULT }),
    clockSkewMs: reader.number([...p, 'clockSkewMs'], { min: 0, max: 600_000, integer: true, unit: 'ms', default: TICKET_CLOCK_SKEW_MS }),
    allow: cidrs(reader, [...p, 'allow']),
    deny: cidrs(reader, [...p, 'deny']),
    fec,
    // Exit relays (see relay/README.md): the id tickets name this relay by, else its fleet id.
    ...exitRelayId(reader),
    peerCidrs: cidrs(reader, [...p, 'peerCidrs']),
    exitDeadAfterMs: reader.number([...p, 'exitDeadAfterMs'], { min: 200, max: 60_000, integer: true, unit: 'ms', default: C.EXIT_DEAD_AFTER_MS_DEFAULT }),
    proxyProtocol: reader.string([...p, 'proxyProtocol'], { choices: PROXY_PROTOCOLS, default: 'none' }) as NonNullable<TunnelSpec['proxyProtocol']>,
  };
}

/** `tunnel.fec.sw`: the sliding-window settings (every key optional). */
function slidingWindowSettings(reader: ConfigReader, path: ConfigPath): SlidingWindowParameters {
  reader.rejectUnknownKeys(path, FEC_SW_KEYS);
  const d = SLIDING_WINDOW_PARAMETERS_DEFAULT;
  return {
    repairsPerSource: reader.number([...path, 'repairsPerSource'], { min: 0, max: SLIDING_WINDOW_REPAIRS_PER_SOURCE_MAX, unit: '(repairs per source packet)', default: d.repairsPerSource }),
    repairSpacingMs: reader.number([...path, 'repairSpacingMs'], { min: 0, max: SLIDING_WINDOW_REPAIR_SPACING_MS_MAX, unit: 'ms', default: d.repairSpacingMs }),
    windowPackets: reader.number([...path, 'windowPackets'], { min: 1, max: SLIDING_WINDOW_PACKETS_MAX, integer: true, default: d.windowPackets }),
    windowMs: reader.number([...path, 'windowMs'], { min: 0, max: SLIDING_WINDOW_MS_MAX, unit: 'ms', default: d.windowMs }),
  };
}

/**
 * The revocation file must be a readable regular file when it exists (a directory or
 * an unreadable file is a mistake to report at --check and reload, not at 3 a.m.). A
 * missing file is accepted: it may be written later, and until then the list is empty.
 */
function checkRevocationFile(reader: ConfigReader, file: string): void {
  const key: ConfigPath = ['tunnel', 'revocationFile'];
  let info;
  try {
    info = statSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    reader.fail(key, `cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? String(error)}; expected a readable file of revoked session ids`);
  }
  if (!info.isFile()) reader.fail(key, `'${file}' is not a regular file; expected a readable file of revoked session ids (one 16-hex id per line)`);
  try {
    accessSync(file, fsConstants.R_OK);
  } catch (error) {
    reader.fail(key, `cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? String(error)}; expected a readable file of revoked session ids`);
  }
}

function fleet(reader: ConfigReader, hasCoordinator: boolean, tunnelSessionsMax: number, tunnelListen: string | undefined): FleetSpec | undefined {
  const p: ConfigPath = ['fleet'];
  if (!reader.has(p)) return undefined;
  reader.rejectUnknownKeys(p, FLEET_KEYS);
  if (!hasCoordinator) reader.fail(p, 'fleet membership needs the coordinator: set tunnel.coordinatorUrl and its fleet secret');
  const address = (key: string): string | undefined => {
    if (!reader.has([...p, key])) return undefined;
    const text = reader.string([...p, key], { patternText: 'public host:port, e.g. 203.0.113.7:4433' });
    const parsed = splitHostPort(text);
    if (!parsed || parsed.port === 0 || parsed.portEnd !== parsed.port || isIP(parsed.host) === 0) reader.fail([...p, key], `'${text}' is not accepted; expected the public IP:port (an IP literal, port 1–65535)`);
    return text;
  };
  if (!reader.has([...p, 'tunnelAddress']) && (tunnelListen === undefined || tunnelListen === '0.0.0.0' || tunnelListen === '::')) {
    reader.fail([...p, 'tunnelAddress'], tunnelListen === undefined ? 'missing; without a tunnel section give the public IP:port clients should use' : `missing; the tunnel listens on ${tunnelListen}, so give the public IP:port clients reach it at`);
  }
  const probeIntervalMs = reader.number([...p, 'probeIntervalMs'], { min: C.FLEET_PROBE_INTERVAL_MS_MIN, max: 60_000, integer: true, unit: 'ms', default: C.FLEET_PROBE_INTERVAL_MS_DEFAULT });
  return {
    relayId: reader.string([...p, 'relayId'], { pattern: /^[A-Za-z0-9._-]{1,64}$/, patternText: '1–64 letters, digits, dots, dashes or underscores (unique in the fleet)' }),
    region: reader.string([...p, 'region'], { pattern: /^.{1,64}$/, patternText: 'a region name of 1–64 characters, e.g. eu-central' }),
    latitude: reader.number([...p, 'latitude'], { min: -90, max: 90, unit: 'degrees' }),
    longitude: reader.number([...p, 'longitude'], { min: -180, max: 180, unit: 'degrees' }),
    tunnelAddress: address('tunnelAddress'),
    probeAddress: address('probeAddress'),
    capacitySessions: reader.number([...p, 'capacitySessions'], { min: 1, max: 10_000_000, integer: true, default: tunnelSessionsMax }),
    heartbeatIntervalMs: reader.number([...p, 'heartbeatIntervalMs'], { min: 100, max: 60_000, integer: true, unit: 'ms', default: C.FLEET_HEARTBEAT_INTERVAL_MS_DEFAULT }),
    probeIntervalMs,
    probeTimeoutMs: reader.number([...p, 'probeTimeoutMs'], { min: 10, max: 10_000, integer: true, unit: 'ms', default: C.FLEET_PROBE_TIMEOUT_MS_DEFAULT }),
    reportIntervalMs: reader.number([...p, 'reportIntervalMs'], { min: Math.max(500, probeIntervalMs), max: 600_000, integer: true, unit: 'ms (at least probeIntervalMs)', default: Math.max(C.FLEET_REPORT_INTERVAL_MS_DEFAULT, probeIntervalMs) }),
    meshRefreshMs: reader.number([...p, 'meshRefreshMs'], { min: 500, max: 600_000, integer: true, unit: 'ms', default: C.FLEET_MESH_REFRESH_MS_DEFAULT }),
    originProbe: reader.string([...p, 'originProbe'], { choices: ['tcp', 'none'], default: 'tcp' }) as 'tcp' | 'none',
  };
}

/** Validates a parsed document (exported for tests that build configs in memory). */
export function parseRelayConfig(reader: ConfigReader): RelayConfig {
  reader.rejectUnknownKeys([], TOP_KEYS);
  const logLevel = reader.string(['logLevel'], { choices: LOG_LEVELS, default: 'info' }) as LogLevel;
  const upstreamBindAddress = ipLiteral(reader, ['upstreamBindAddress'], reader.string(['upstreamBindAddress'], { default: '0.0.0.0' }));
  reader.rejectUnknownKeys(['metrics'], ['listen']);
  const metricsText = reader.string(['metrics', 'listen'], { default: '127.0.0.1:9464', patternText: "IP:port, or 'off'" });
  const metricsListen = metricsText === 'off' ? undefined : (() => {
    const m = hostPort(reader, ['metrics', 'listen'], false, metricsText);
    return { host: m.host, port: m.port };
  })();
  reader.rejectUnknownKeys(['drain'], ['timeoutMs']);
  const drainTimeoutMs = reader.number(['drain', 'timeoutMs'], { min: 0, max: 3_600_000, integer: true, unit: 'ms', default: C.DRAIN_TIMEOUT_MS_DEFAULT });

  const limitSpec = limits(reader);
  const groups: OriginGroupSpec[] = [];
  for (const name of reader.mapKeys(['originGroups'], { optional: true })) {
    const gp: ConfigPath = ['originGroups', name];
    reader.rejectUnknownKeys(gp, ['origins', 'healthCheck']);
    groups.push({ name, origins: originList(reader, [...gp, 'origins']), healthCheck: healthCheck(reader, [...gp, 'healthCheck']) });
  }

  const rules: RuleSpec[] = [];
  const ruleCount = reader.sequenceLength(['rules'], { optional: true, maxItems: 1024 });
  const listenKeys = new Set<string>();
  for (let i = 0; i < ruleCount; i++) {
    const rp: ConfigPath = ['rules', i];
    reader.rejectUnknownKeys(rp, RULE_KEYS);
    const name = reader.string([...rp, 'name'], { pattern: /^[A-Za-z0-9._-]{1,64}$/, patternText: '1–64 letters, digits, dots, dashes or underscores' });
    if (name === 'tunnel' || rules.some((r) => r.name === name)) reader.fail([...rp, 'name'], `'${name}' is ${name === 'tunnel' ? 'reserved for tunnel mode' : 'used by another rule'}; expected a unique name`);
    const protocol = reader.string([...rp, 'protocol'], { choices: ['udp', 'tcp'] }) as 'udp' | 'tcp';
    const listen = hostPort(reader, [...rp, 'listen'], true);
    if (listen.port === 0 && listen.portEnd !== 0) reader.fail([...rp, 'listen'], 'port 0 (any free port) cannot start a range');
    // Port 0 asks the OS for a free port: never a clash.
    for (let port = listen.port; port <= listen.portEnd && listen.port !== 0; port++) {
      const key = `${protocol}/${listen.host}/${port}`;
      if (listenKeys.has(key)) reader.fail([...rp, 'listen'], `${protocol} ${listen.host}:${port} is already used by another rule`);
      listenKeys.add(key);
    }
    let group: string;
    if (reader.has([...rp, 'group'])) {
      group = reader.string([...rp, 'group']);
      if (!groups.some((g) => g.name === group)) reader.fail([...rp, 'group'], `no origin group '${group}'; expected one of ${groups.map((g) => g.name).join(', ') || '(none defined under originGroups)'}`);
      if (reader.has([...rp, 'origins'])) reader.fail([...rp, 'origins'], 'give either group or origins, not both');
    } else {
      if (!reader.has([...rp, 'origins'])) reader.fail([...rp, 'origins'], 'missing; expected a list of IP:port origins (or a group name under group)');
      group = `rule:${name}`;
      groups.push({ name: group, origins: originList(reader, [...rp, 'origins']), healthCheck: healthCheck(reader, [...rp, 'healthCheck']) });
    }
    const span = listen.portEnd - listen.port;
    for (const origin of groups.find((g) => g.name === group)!.origins) {
      if (origin.portEnd !== origin.port && origin.portEnd - origin.port !== span) reader.fail([...rp, 'listen'], `listen range spans ${span + 1} ports but origin ${origin.address}:${origin.port}-${origin.portEnd} spans ${origin.portEnd - origin.port + 1}; expected equal spans or a single origin port`);
    }
    // TCP byte limits: UDP flows have the per-session and per-source buckets of `limits`.
    const tcpRate = (key: string): number => {
      if (protocol !== 'tcp') {
        if (reader.has([...rp, key])) reader.fail([...rp, key], 'applies to tcp rules only; UDP flows are limited by limits.sessionBytesPerSecond and limits.sourceBytesPerSecond');
        return 0;
      }
      return reader.number([...rp, key], { min: 0, max: RATE_MAX, unit: 'bytes per second (0 = unlimited)', default: 0 });
    };
    const connectionBytesPerSecond = tcpRate('connectionBytesPerSecond');
    const bytesPerSecond = tcpRate('bytesPerSecond');
    const proxyProtocol = reader.string([...rp, 'proxyProtocol'], { choices: protocol === 'udp' ? ['none', 'v2', 'spp'] : ['none', 'v2'], default: 'none' }) as RuleSpec['proxyProtocol'];
    rules.push({
      name,
      protocol,
      listenAddress: listen.host,
      listenPort: listen.port,
      listenPortEnd: listen.portEnd,
      group,
      idleTimeoutMs: reader.number([...rp, 'idleTimeoutMs'], { min: C.IDLE_TIMEOUT_MS_MIN, max: C.IDLE_TIMEOUT_MS_MAX, integer: true, unit: 'ms', default: protocol === 'udp' ? C.UDP_IDLE_TIMEOUT_MS_DEFAULT : C.TCP_IDLE_TIMEOUT_MS_DEFAULT }),
      connectTimeoutMs: reader.number([...rp, 'connectTimeoutMs'], { min: C.TCP_CONNECT_TIMEOUT_MS_MIN, max: C.TCP_CONNECT_TIMEOUT_MS_MAX, integer: true, unit: 'ms', default: C.TCP_CONNECT_TIMEOUT_MS_DEFAULT }),
      proxyProtocol,
      hashKey: reader.string([...rp, 'hashKey'], { choices: ['ip', 'ip-port'], default: 'ip' }) as RuleSpec['hashKey'],
      allow: cidrs(reader, [...rp, 'allow']),
      deny: cidrs(reader, [...rp, 'deny']),
      connectionBytesPerSecond,
      bytesPerSecond,
    });
  }
  const tunnelSpec = tunnel(reader);
  if (rules.length === 0 && tunnelSpec === undefined) reader.fail(['rules'], 'nothing to do; expected at least one rule or a tunnel section');
  const budgeted = budgets(reader, limitSpec, rules, tunnelSpec !== undefined);
  const revocationFile = reader.has(['tunnel', 'revocationFile']) ? reader.string(['tunnel', 'revocationFile']) : undefined;
  if (revocationFile !== undefined) checkRevocationFile(reader, revocationFile);
  const coordinatorUrl = reader.has(['tunnel', 'coordinatorUrl']) ? reader.string(['tunnel', 'coordinatorUrl'], { pattern: /^https?:\/\/\S+$/, patternText: 'an http(s):// URL' }) : undefined;
  let coordinatorFleetSecret: string | undefined;
  if (reader.has(['tunnel', 'coordinatorFleetSecretFile'])) {
    const file = reader.string(['tunnel', 'coordinatorFleetSecretFile']);
    try {
      coordinatorFleetSecret = readFileSync(file, 'utf8').trim();
    } catch (error) {
      reader.fail(['tunnel', 'coordinatorFleetSecretFile'], `cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  } else if (reader.has(['tunnel', 'coordinatorFleetSecret'])) {
    coordinatorFleetSecret = reader.string(['tunnel', 'coordinatorFleetSecret'], { pattern: /^\S{16,}$/, patternText: 'the fleet secret (at least 16 characters)' });
  }
  const coordinatorIdentity = identity(reader);
  if (coordinatorUrl !== undefined && coordinatorFleetSecret === undefined && coordinatorIdentity === undefined) {
    reader.fail(['tunnel', 'coordinatorFleetSecret'], 'missing; coordinatorUrl needs the relay identity (coordinatorIdentityKeyFile) or the fleet secret (coordinatorFleetSecret or coordinatorFleetSecretFile)');
  }
  const revocationFeed: RevocationFeedSpec = {
    maxAgeMs: reader.number(['tunnel', 'revocationMaxAgeMs'], { min: C.REVOCATION_MAX_AGE_MS_MIN, max: 604_800_000, integer: true, unit: 'ms', default: C.REVOCATION_MAX_AGE_MS_DEFAULT }),
    stalePolicy: reader.string(['tunnel', 'revocationStalePolicy'], { choices: ['refuse', 'admit'], default: 'refuse' }) as RevocationFeedSpec['stalePolicy'],
  };
  return {
    coordinatorFleetSecret,
    coordinatorIdentity,
    // The list can go stale only when there is a feed to follow.
    core: { rules: budgeted.rules, groups, limits: budgeted.limits, tunnel: tunnelSpec !== undefined && coordinatorUrl !== undefined ? { ...tunnelSpec, revocationFeed } : tunnelSpec, upstreamBindAddress, tcp: tcpLimits(reader) },
    logLevel,
    logAggregateIntervalMs: reader.number(['logAggregateIntervalMs'], { min: 100, max: 3_600_000, integer: true, unit: 'ms', default: C.LOG_AGGREGATE_INTERVAL_MS_DEFAULT }),
    metricsListen,
    drainTimeoutMs,
    revocationFile,
    revocationStateFile: reader.has(['tunnel', 'revocationStateFile']) ? reader.string(['tunnel', 'revocationStateFile'], { pattern: /^\S(.*\S)?$/, patternText: 'a file path' }) : undefined,
    revocationPollMs: reader.number(['tunnel', 'revocationPollMs'], { min: 50, max: 600_000, integer: true, unit: 'ms', default: C.REVOCATION_POLL_MS_DEFAULT }),
    coordinatorUrl,
    socketReceiveBufferBytes: reader.number(['socketReceiveBufferBytes'], { min: 0, max: 1 << 30, integer: true, unit: 'bytes (0 = OS default)', default: C.SOCKET_RECEIVE_BUFFER_BYTES_DEFAULT }),
    upstreamReceiveBufferBytes: reader.number(['upstreamReceiveBufferBytes'], { min: 0, max: 1 << 30, integer: true, unit: 'bytes (0 = OS default)', default: 0 }),
    udpIo: reader.string(['udpIo'], { choices: UDP_IO_MODES, default: 'auto' }) as UdpIoMode,
    workers: workersCount(reader),
    fleet: fleet(reader, coordinatorUrl !== undefined, budgeted.limits.tunnelSessionsMax!, tunnelSpec?.listenAddress),
    webrtc: webrtcSpec(reader),
  };
}
