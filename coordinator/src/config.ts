/**
 * Coordinator settings: embedded defaults, overridden by the YAML config file
 * (`--config`), overridden by flags. Every key, its default and its range are listed
 * in coordinator/README.md; errors name file, line, key and the accepted range.
 */
import { ROUTE_CACHE_MS_DEFAULT, ROUTE_CACHE_MS_MAX } from './route-cache.js';
import { randomBytes } from 'node:crypto';
import { ConfigReader } from '../../kit/config.js';
import { readCorsOrigins } from '../../kit/cors.js';
import { LOG_LEVELS, type LogLevel } from '../../kit/log.js';
import { ConfigError } from '../../proto/src/errors.js';
import { SEAL_KEY_BYTES } from '../../proto/src/ticket.js';
import {
  CLIENT_PREFIX_REPORTS_BURST,
  CLIENT_PREFIX_REPORTS_PER_SECOND,
  CLIENT_REPORT_STEP_LOSS_FRACTION_DEFAULT,
  CLIENT_REPORT_STEP_RTT_FRACTION_DEFAULT,
  CLIENT_REPORT_STEP_RTT_MS_DEFAULT,
  CLIENT_REPORTERS_MIN_DEFAULT,
  CLIENT_REPORTS_BURST,
  CLIENT_REPORTS_PER_SECOND,
  HISTORY_INTERVAL_MS_DEFAULT,
  HOP_PENALTY_MS_DEFAULT,
  JITTER_WEIGHT_DEFAULT,
  LEASE_MS_DEFAULT,
  LEASE_MS_MAX,
  LEASE_MS_MIN,
  LISTEN_DEFAULT,
  LOAD_KNEE_FRACTION_DEFAULT,
  LOAD_PENALTY_MS_AT_FULL_DEFAULT,
  LOSS_PENALTY_MS_PER_PERCENT_DEFAULT,
  MEASUREMENT_HALF_LIFE_MS_DEFAULT,
  MEASUREMENT_SMOOTHING_SAMPLES_DEFAULT,
  MEASUREMENT_STALE_MS_DEFAULT,
  REDIS_KEY_PREFIX_DEFAULT,
  RELAY_RETENTION_MS_DEFAULT,
  SESSION_BYTES_PER_SECOND_DEFAULT,
  SESSION_BYTES_PER_SECOND_MIN,
  SESSION_PACKETS_PER_SECOND_DEFAULT,
  SESSION_TTL_S_DEFAULT,
  SESSION_TTL_S_MAX,
  TWO_HOP_GAIN_MS_MIN_DEFAULT,
  JOIN_TOKEN_TTL_MS_DEFAULT,
  JOIN_TOKEN_TTL_MS_MIN,
  JOIN_TOKEN_TTL_MS_MAX,
} from './constants.js';
import type { OriginInfo } from './core/coordinator-core.js';
import type { RankingWeights } from './core/ranking.js';

/** Secrets and keys. Absent ones are generated at start (development only) and printed. */
export interface CoordinatorKeys {
  /** Ed25519 seed (32 bytes) that signs tickets. */
  readonly ticketSigningSeed: Uint8Array;
  /** AES-256 fleet seal key (32 bytes) that seals session keys inside tickets; relays hold the same. */
  readonly sealKey: Uint8Array;
  /** Bearer token relays present (base64 text as configured): the current one, which relays should hold. */
  readonly fleetSecret: string;
  /**
   * Earlier fleet secrets still accepted during a rotation (`keys.fleetSecretsPrevious`,
   * default none). Relays authenticating with one are reported in `/health`
   * (`fleetSecrets.relaysOnPrevious`), a metric and the log, so the operator knows when
   * the old secret can go.
   */
  readonly fleetSecretsPrevious: readonly string[];
  /** Bearer tokens game backends present to issue and revoke sessions. */
  readonly apiKeys: readonly string[];
  /**
   * Bearer tokens operators present to mint relay join tokens and list or revoke relay
   * identities (`keys.adminKeys`, default none: those routes answer 403 until one is set).
   */
  readonly adminKeys: readonly string[];
  /** Which of the above were generated rather than configured. */
  readonly generated: readonly ('ticketSigningSeed' | 'sealKey' | 'fleetSecret' | 'apiKeys')[];
}

/** Everything the coordinator runs with. */
export interface CoordinatorSettings {
  /** `host:port`; port 0 picks a free one. Default {@link LISTEN_DEFAULT}. */
  readonly listen: { readonly host: string; readonly port: number };
  /** `memory` or a `redis://` URL. Default `memory`. */
  readonly store: string;
  /** Prefix of Redis keys and channels. Default {@link REDIS_KEY_PREFIX_DEFAULT}. */
  readonly redisKeyPrefix: string;
  /** Default `info`. */
  readonly logLevel: LogLevel;
  /** Default {@link LEASE_MS_DEFAULT}. */
  readonly leaseMs: number;
  /** Default {@link RELAY_RETENTION_MS_DEFAULT}. */
  readonly relayRetentionMs: number;
  /** Default {@link MEASUREMENT_STALE_MS_DEFAULT}. */
  readonly measurementStaleMs: number;
  /** Default {@link MEASUREMENT_SMOOTHING_SAMPLES_DEFAULT}. */
  readonly measurementSmoothingSamples: number;
  /** Default {@link MEASUREMENT_HALF_LIFE_MS_DEFAULT}. */
  readonly measurementHalfLifeMs: number;
  /** Default {@link HISTORY_INTERVAL_MS_DEFAULT}. */
  readonly historyIntervalMs: number;
  /** How long a `GET /v1/route` answer is reused for the same client prefix and query, ms; 0 turns the cache off (route-cache.ts). Default {@link ROUTE_CACHE_MS_DEFAULT}. */
  readonly routeCacheMs: number;
  /**
   * Take the client address from `X-Forwarded-For` (behind a trusted proxy only): the
   * right-most entry that is not in {@link trustedProxies} (entries further left are
   * written by the client and can be anything). Default false.
   */
  readonly trustForwardedFor: boolean;
  /** Addresses of your own proxies (IP literals), skipped from the right of `X-Forwarded-For`. Default none: the right-most entry is the client. */
  readonly trustedProxies: readonly string[];
  /** When non-empty, only these relay ids may register. Default: any relay holding the fleet secret. */
  readonly allowedRelayIds: readonly string[];
  /** `POST /v1/reports`: budgets and the robust aggregate (coordinator/README.md "Client reports"). */
  readonly clientReports: ClientReportSettings;
  /** Ticket defaults and limits. */
  readonly sessions: { readonly ttlSDefault: number; readonly ttlSMax: number; readonly packetsPerSecond: number; readonly bytesPerSecond: number };
  readonly ranking: RankingWeights;
  readonly origins: readonly Omit<OriginInfo, 'source'>[];
  readonly keys: CoordinatorKeys;
  /** Relay identities (`fleet` section; deploy/README.md, "Relay identities"). */
  readonly fleet: {
    /**
     * Refuse the fleet secret on relay routes: every relay must sign with its own
     * enrolled key. Default false for this release, so existing relays keep working while
     * they are enrolled; a relay id that has an identity is refused the fleet secret either way.
     */
    readonly requireRelayIdentity: boolean;
    /** Lifetime of a join token when the admin does not give one, ms. Default {@link JOIN_TOKEN_TTL_MS_DEFAULT}. */
    readonly joinTokenTtlMs: number;
    /** `store: memory` only: the file relay identities persist in across restarts. Default none (a restart forgets them). */
    readonly identitiesFile: string | undefined;
  };
  /** The HTTP listener's browser-facing side (`http` section). */
  readonly http: {
    /**
     * Page origins (`https://game.example.com`, or `*` for any) allowed to call the
     * browser-facing endpoints from another origin (CORS: `/v1/route`, `/v1/reports`,
     * `/v1/session`, `/v1/keys`, `/v1/origins`); relay, admin and operator endpoints
     * never answer with CORS headers. Default none: same-origin pages only.
     */
    readonly corsOrigins: readonly string[];
  };
}

/** The `clientReports` config section; every field defaults to the constant it names. */
export interface ClientReportSettings {
  /** Distinct reporters (IPv4 addresses, IPv6 /64s) a prefix's figure needs before it is published. Default {@link CLIENT_REPORTERS_MIN_DEFAULT}. */
  readonly reportersMin: number;
  /** Reports one reporter may send at once. Default {@link CLIENT_REPORTS_BURST}. */
  readonly reporterBurst: number;
  /** Sustained reports per second one reporter may send. Default {@link CLIENT_REPORTS_PER_SECOND}. */
  readonly reporterPerSecond: number;
  /** Reports one prefix (/24, /48) may send at once, all its reporters together. Default {@link CLIENT_PREFIX_REPORTS_BURST}. */
  readonly prefixBurst: number;
  /** Sustained reports per second one prefix may send. Default {@link CLIENT_PREFIX_REPORTS_PER_SECOND}. */
  readonly prefixPerSecond: number;
  /** Step bound: RTT and jitter move by at most max(this, stepRttFraction × current) per publication, ms. Default {@link CLIENT_REPORT_STEP_RTT_MS_DEFAULT}. */
  readonly stepRttMs: number;
  /** Step bound, fraction of the current figure. Default {@link CLIENT_REPORT_STEP_RTT_FRACTION_DEFAULT}. */
  readonly stepRttFraction: number;
  /** Step bound for loss per publication (0.05 = 5 points). Default {@link CLIENT_REPORT_STEP_LOSS_FRACTION_DEFAULT}. */
  readonly stepLossFraction: number;
}

/** Overrides from the command line. */
export interface CoordinatorFlagOverrides {
  listen?: string;
  store?: string;
  logLevel?: LogLevel;
  leaseMs?: number;
}

const TOP_KEYS = ['listen', 'store', 'redisKeyPrefix', 'logLevel', 'leaseMs', 'relayRetentionMs', 'measurementStaleMs', 'measurementSmoothingSamples', 'measurementHalfLifeMs', 'historyIntervalMs', 'routeCacheMs', 'trustForwardedFor', 'trustedProxies', 'allowedRelayIds', 'clientReports', 'sessions', 'ranking', 'origins', 'keys', 'fleet', 'http'];
const LISTEN_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const STORE_PATTERN = /^(memory|rediss?:\/\/\S+)$/;
const NAME_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const IP_LITERAL_PATTERN = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$/;
const RELAY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/]+={0,2}$/;
/** Shortest fleet secret or API key accepted, bytes (after base64 decoding). */
export const SECRET_BYTES_MIN = 16;
/** Most previous fleet secrets (`keys.fleetSecretsPrevious`) accepted at once. */
export const FLEET_SECRETS_PREVIOUS_MAX = 8;

/** Parses `host:port` (IPv6 in brackets); undefined when malformed. */
export function parseListen(text: string): { host: string; port: number } | undefined {
  const m = LISTEN_PATTERN.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port > 65535) return undefined;
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  return { host, port };
}

function base64Bytes(reader: ConfigReader, path: (string | number)[], bytes: number | { min: number }): Uint8Array {
  const text = reader.string(path, { pattern: BASE64_PATTERN, patternText: 'base64 text' });
  const decoded = new Uint8Array(Buffer.from(text, 'base64'));
  if (typeof bytes === 'number' && decoded.length !== bytes) reader.fail(path, `decodes to ${decoded.length} bytes; expected exactly ${bytes} bytes, base64-encoded (e.g. 'openssl rand -base64 ${bytes}')`);
  if (typeof bytes === 'object' && decoded.length < bytes.min) reader.fail(path, `decodes to ${decoded.length} bytes; expected at least ${bytes.min} bytes, base64-encoded (e.g. 'openssl rand -base64 32')`);
  return decoded;
}

/**
 * Builds settings from an optional config file and flag overrides. Missing keys are
 * generated (see {@link CoordinatorKeys.generated}). Throws {@link ConfigError}.
 */
export function loadSettings(reader: ConfigReader | undefined, flags: CoordinatorFlagOverrides = {}): CoordinatorSettings {
  const r = reader ?? new ConfigReader('<defaults>', '{}');
  if (r.get([]) !== undefined && (typeof r.get([]) !== 'object' || Array.isArray(r.get([])))) r.fail([], 'expected a map of keys');
  r.rejectUnknownKeys([], TOP_KEYS);
  const listenText = flags.listen ?? r.string(['listen'], { default: LISTEN_DEFAULT, pattern: LISTEN_PATTERN, patternText: 'host:port, e.g. 0.0.0.0:7400 or [::]:7400' });
  const listen = parseListen(listenText);
  if (!listen) throw new ConfigError(flags.listen !== undefined ? '<flags>' : r.file, 'listen', `'${listenText}' is not host:port with a port from 0 to 65535`);
  const store = flags.store ?? r.string(['store'], { default: 'memory', pattern: STORE_PATTERN, patternText: 'memory or a redis:// URL' });
  if (!STORE_PATTERN.test(store)) throw new ConfigError('<flags>', 'store', `'${store}' is not memory or a redis:// URL`);
  const leaseMs = flags.leaseMs ?? r.number(['leaseMs'], { default: LEASE_MS_DEFAULT, min: LEASE_MS_MIN, max: LEASE_MS_MAX, integer: true, unit: 'ms' });

  r.rejectUnknownKeys(['sessions'], ['ttlSDefault', 'ttlSMax', 'packetsPerSecond', 'bytesPerSecond']);
  const ttlSMax = r.number(['sessions', 'ttlSMax'], { default: SESSION_TTL_S_MAX, min: 1, max: 7 * SESSION_TTL_S_MAX, integer: true, unit: 's' });
  const sessions = {
    ttlSMax,
    ttlSDefault: r.number(['sessions', 'ttlSDefault'], { default: Math.min(SESSION_TTL_S_DEFAULT, ttlSMax), min: 1, max: ttlSMax, integer: true, unit: 's' }),
    packetsPerSecond: r.number(['sessions', 'packetsPerSecond'], { default: SESSION_PACKETS_PER_SECOND_DEFAULT, min: 1, max: 1e7, integer: true, unit: 'packets/s' }),
    bytesPerSecond: r.number(['sessions', 'bytesPerSecond'], { default: SESSION_BYTES_PER_SECOND_DEFAULT, min: SESSION_BYTES_PER_SECOND_MIN, max: 1e10, integer: true, unit: 'bytes/s' }),
  };

  r.rejectUnknownKeys(['clientReports'], ['reportersMin', 'reporterBurst', 'reporterPerSecond', 'prefixBurst', 'prefixPerSecond', 'stepRttMs', 'stepRttFraction', 'stepLossFraction']);
  const cr = (key: string, init: { default: number; min: number; max: number; integer?: boolean; unit?: string }): number => r.number(['clientReports', key], init);
  const clientReports: ClientReportSettings = {
    reportersMin: cr('reportersMin', { default: CLIENT_REPORTERS_MIN_DEFAULT, min: 1, max: 32, integer: true, unit: 'reporters' }),
    reporterBurst: cr('reporterBurst', { default: CLIENT_REPORTS_BURST, min: 1, max: 10_000, integer: true, unit: 'reports' }),
    reporterPerSecond: cr('reporterPerSecond', { default: CLIENT_REPORTS_PER_SECOND, min: 0.001, max: 10_000, unit: 'reports/s' }),
    prefixBurst: cr('prefixBurst', { default: CLIENT_PREFIX_REPORTS_BURST, min: 1, max: 1_000_000, integer: true, unit: 'reports' }),
    prefixPerSecond: cr('prefixPerSecond', { default: CLIENT_PREFIX_REPORTS_PER_SECOND, min: 0.001, max: 1_000_000, unit: 'reports/s' }),
    stepRttMs: cr('stepRttMs', { default: CLIENT_REPORT_STEP_RTT_MS_DEFAULT, min: 1, max: 60_000, unit: 'ms' }),
    stepRttFraction: cr('stepRttFraction', { default: CLIENT_REPORT_STEP_RTT_FRACTION_DEFAULT, min: 0, max: 100 }),
    stepLossFraction: cr('stepLossFraction', { default: CLIENT_REPORT_STEP_LOSS_FRACTION_DEFAULT, min: 0.001, max: 1 }),
  };

  r.rejectUnknownKeys(['ranking'], ['lossPenaltyMsPerPercent', 'jitterWeight', 'loadKneeFraction', 'loadPenaltyMsAtFull', 'hopPenaltyMs', 'twoHopGainMsMin']);
  const ranking: RankingWeights = {
    lossPenaltyMsPerPercent: r.number(['ranking', 'lossPenaltyMsPerPercent'], { default: LOSS_PENALTY_MS_PER_PERCENT_DEFAULT, min: 0, max: 1000, unit: 'ms per %' }),
    jitterWeight: r.number(['ranking', 'jitterWeight'], { default: JITTER_WEIGHT_DEFAULT, min: 0, max: 100 }),
    loadKneeFraction: r.number(['ranking', 'loadKneeFraction'], { default: LOAD_KNEE_FRACTION_DEFAULT, min: 0, max: 0.99 }),
    loadPenaltyMsAtFull: r.number(['ranking', 'loadPenaltyMsAtFull'], { default: LOAD_PENALTY_MS_AT_FULL_DEFAULT, min: 0, max: 10_000, unit: 'ms' }),
    hopPenaltyMs: r.number(['ranking', 'hopPenaltyMs'], { default: HOP_PENALTY_MS_DEFAULT, min: 0, max: 1000, unit: 'ms' }),
    twoHopGainMsMin: r.number(['ranking', 'twoHopGainMsMin'], { default: TWO_HOP_GAIN_MS_MIN_DEFAULT, min: 0, max: 1000, unit: 'ms' }),
  };

  const origins: Omit<OriginInfo, 'source'>[] = [];
  const originCount = r.sequenceLength(['origins'], { optional: true, maxItems: 10_000 });
  const seen = new Set<string>();
  for (let i = 0; i < originCount; i++) {
    r.rejectUnknownKeys(['origins', i], ['name', 'address', 'region', 'latitude', 'longitude']);
    const name = r.string(['origins', i, 'name'], { pattern: NAME_PATTERN, patternText: '1–128 of A-Z a-z 0-9 . _ : -' });
    if (seen.has(name)) r.fail(['origins', i, 'name'], `'${name}' is declared twice`);
    seen.add(name);
    const origin: { name: string; address?: string; region?: string; latitude?: number; longitude?: number } = { name };
    if (r.has(['origins', i, 'address'])) origin.address = r.string(['origins', i, 'address'], { pattern: LISTEN_PATTERN, patternText: 'host:port' });
    if (r.has(['origins', i, 'region'])) origin.region = r.string(['origins', i, 'region'], { pattern: /^.{1,64}$/, patternText: 'a region name of 1–64 characters' });
    const hasLat = r.has(['origins', i, 'latitude']);
    if (hasLat !== r.has(['origins', i, 'longitude'])) r.fail(['origins', i, hasLat ? 'longitude' : 'latitude'], 'missing; latitude and longitude go together');
    if (hasLat) {
      origin.latitude = r.number(['origins', i, 'latitude'], { min: -90, max: 90, unit: 'degrees' });
      origin.longitude = r.number(['origins', i, 'longitude'], { min: -180, max: 180, unit: 'degrees' });
    }
    origins.push(origin);
  }

  const trustedProxies: string[] = [];
  const proxyCount = r.sequenceLength(['trustedProxies'], { optional: true, maxItems: 1000 });
  for (let i = 0; i < proxyCount; i++) trustedProxies.push(r.string(['trustedProxies', i], { pattern: IP_LITERAL_PATTERN, patternText: 'an IP address such as 10.0.0.2 or 2001:db8::2' }).toLowerCase());

  const allowedRelayIds: string[] = [];
  const allowedCount = r.sequenceLength(['allowedRelayIds'], { optional: true, maxItems: 100_000 });
  for (let i = 0; i < allowedCount; i++) allowedRelayIds.push(r.string(['allowedRelayIds', i], { pattern: RELAY_ID_PATTERN, patternText: 'a relay id: 1–64 of A-Z a-z 0-9 . _ -' }));

  r.rejectUnknownKeys(['keys'], ['ticketSigningSeed', 'sealKey', 'fleetSecret', 'fleetSecretsPrevious', 'apiKeys', 'adminKeys']);
  r.rejectUnknownKeys(['fleet'], ['requireRelayIdentity', 'joinTokenTtlMs', 'identitiesFile']);
  const identitiesFile = r.has(['fleet', 'identitiesFile']) ? r.string(['fleet', 'identitiesFile']) : undefined;
  if (identitiesFile !== undefined && store !== 'memory') r.fail(['fleet', 'identitiesFile'], 'is for store: memory; Redis keeps relay identities itself (remove this key)');
  const fleet = {
    requireRelayIdentity: r.boolean(['fleet', 'requireRelayIdentity'], { default: false }),
    joinTokenTtlMs: r.number(['fleet', 'joinTokenTtlMs'], { default: JOIN_TOKEN_TTL_MS_DEFAULT, min: JOIN_TOKEN_TTL_MS_MIN, max: JOIN_TOKEN_TTL_MS_MAX, integer: true, unit: 'ms' }),
    identitiesFile,
  };
  r.rejectUnknownKeys(['http'], ['corsOrigins']);
  const http = { corsOrigins: readCorsOrigins(r, ['http', 'corsOrigins']) };
  const generated: CoordinatorKeys['generated'][number][] = [];
  const pick = (key: 'ticketSigningSeed' | 'sealKey'): Uint8Array => {
    if (r.has(['keys', key])) return base64Bytes(r, ['keys', key], 32);
    generated.push(key);
    return new Uint8Array(randomBytes(key === 'sealKey' ? SEAL_KEY_BYTES : 32));
  };
  const ticketSigningSeed = pick('ticketSigningSeed');
  const sealKey = pick('sealKey');
  let fleetSecret: string;
  if (r.has(['keys', 'fleetSecret'])) {
    base64Bytes(r, ['keys', 'fleetSecret'], { min: SECRET_BYTES_MIN });
    fleetSecret = r.string(['keys', 'fleetSecret']);
  } else {
    generated.push('fleetSecret');
    fleetSecret = randomBytes(24).toString('base64');
  }
  // Earlier secrets still accepted while relays move to keys.fleetSecret (deploy/README.md, "Key rotation").
  const fleetSecretsPrevious: string[] = [];
  const previousCount = r.sequenceLength(['keys', 'fleetSecretsPrevious'], { optional: true, maxItems: FLEET_SECRETS_PREVIOUS_MAX });
  if (previousCount > 0 && generated.includes('fleetSecret')) r.fail(['keys', 'fleetSecretsPrevious'], 'given without keys.fleetSecret; set keys.fleetSecret to the new secret relays move to, and list the old one(s) here');
  for (let i = 0; i < previousCount; i++) {
    base64Bytes(r, ['keys', 'fleetSecretsPrevious', i], { min: SECRET_BYTES_MIN });
    const previous = r.string(['keys', 'fleetSecretsPrevious', i]);
    if (previous === fleetSecret) r.fail(['keys', 'fleetSecretsPrevious', i], 'is keys.fleetSecret itself; list only earlier secrets here');
    if (fleetSecretsPrevious.includes(previous)) r.fail(['keys', 'fleetSecretsPrevious', i], 'is listed twice');
    fleetSecretsPrevious.push(previous);
  }
  const apiKeys: string[] = [];
  const apiKeyCount = r.sequenceLength(['keys', 'apiKeys'], { optional: true, maxItems: 1000 });
  for (let i = 0; i < apiKeyCount; i++) {
    base64Bytes(r, ['keys', 'apiKeys', i], { min: SECRET_BYTES_MIN });
    apiKeys.push(r.string(['keys', 'apiKeys', i]));
  }
  const adminKeys: string[] = [];
  const adminKeyCount = r.sequenceLength(['keys', 'adminKeys'], { optional: true, maxItems: 100 });
  for (let i = 0; i < adminKeyCount; i++) {
    base64Bytes(r, ['keys', 'adminKeys', i], { min: SECRET_BYTES_MIN });
    const adminKey = r.string(['keys', 'adminKeys', i]);
    if (apiKeys.includes(adminKey)) r.fail(['keys', 'adminKeys', i], 'is also in keys.apiKeys; an admin key must not be one that game backends hold');
    adminKeys.push(adminKey);
  }
  if (apiKeys.length === 0) {
    generated.push('apiKeys');
    apiKeys.push(randomBytes(24).toString('base64'));
  }

  return {
    listen,
    store,
    redisKeyPrefix: r.string(['redisKeyPrefix'], { default: REDIS_KEY_PREFIX_DEFAULT, pattern: /^[A-Za-z0-9:._-]{0,64}$/, patternText: 'up to 64 of A-Z a-z 0-9 : . _ -' }),
    logLevel: flags.logLevel ?? (r.string(['logLevel'], { default: 'info', choices: LOG_LEVELS }) as LogLevel),
    leaseMs,
    relayRetentionMs: r.number(['relayRetentionMs'], { default: Math.max(RELAY_RETENTION_MS_DEFAULT, leaseMs), min: leaseMs, max: 7 * 86_400_000, integer: true, unit: 'ms (at least leaseMs)' }),
    measurementStaleMs: r.number(['measurementStaleMs'], { default: MEASUREMENT_STALE_MS_DEFAULT, min: 1000, max: 3_600_000, integer: true, unit: 'ms' }),
    measurementSmoothingSamples: r.number(['measurementSmoothingSamples'], { default: MEASUREMENT_SMOOTHING_SAMPLES_DEFAULT, min: 0, max: 100_000, unit: 'samples' }),
    measurementHalfLifeMs: r.number(['measurementHalfLifeMs'], { default: MEASUREMENT_HALF_LIFE_MS_DEFAULT, min: 100, max: 3_600_000, integer: true, unit: 'ms' }),
    historyIntervalMs: r.number(['historyIntervalMs'], { default: HISTORY_INTERVAL_MS_DEFAULT, min: 100, max: 600_000, integer: true, unit: 'ms' }),
    routeCacheMs: r.number(['routeCacheMs'], { default: ROUTE_CACHE_MS_DEFAULT, min: 0, max: ROUTE_CACHE_MS_MAX, integer: true, unit: 'ms' }),
    trustForwardedFor: r.boolean(['trustForwardedFor'], { default: false }),
    trustedProxies,
    allowedRelayIds,
    clientReports,
    sessions,
    ranking,
    origins,
    keys: { ticketSigningSeed, sealKey, fleetSecret, fleetSecretsPrevious, apiKeys, adminKeys, generated },
    fleet,
    http,
  };
}
