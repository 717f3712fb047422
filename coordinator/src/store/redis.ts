/**
 * {@link RedisStore}: several coordinator replicas on one Redis share relay records,
 * measurements and revocations.
 *
 * Layout (every name starts with `keyPrefix`, default `slip:`):
 * - hashes `relays`, `measurements`, `revocations`, `identities`, `jointokens`: field →
 *   JSON `{ e: expiresAtMs, v: record }`. Readers skip expired entries; `prune` deletes
 *   them (HSCAN, in batches). Identities never expire (`e` is the latest epoch ms);
 *   join tokens are keyed by their hash and taken with HGET + HDEL in one MULTI.
 * - channel `changes`: `handleId|JSON change` for every write (published right after
 *   its HSET, on the same connection), so replicas apply each other's changes at once; a
 *   handle ignores its own messages.
 *
 * Outages: commands fail fast while disconnected (no offline queue); writes go to a
 * bounded outbox coalesced per key, and ioredis reconnects every ≤ 1 s. When the
 * connection is ready again the outbox is replayed and subscribers get `resync`.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { REDIS_KEY_PREFIX_DEFAULT, STORE_OUTBOX_MAX } from '../constants.js';
import type { MeasurementRecord } from '../core/measurements.js';
import type { RelayRecord } from '../core/registry.js';
import type { Revocation } from '../core/revocations.js';
import type { JoinTokenRecord, RelayIdentity } from '../core/relay-identities.js';
import type { Store, StoreChange, StoreListener, StoreStatus } from './store.js';

/** Options of {@link RedisStore.open}. */
export interface RedisStoreInit {
  /** `redis://[:password@]host:port[/db]`. */
  readonly url: string;
  /** Prefix of every key and channel. Default {@link REDIS_KEY_PREFIX_DEFAULT}. */
  readonly keyPrefix?: string;
  /** Where to log connection changes. Default: nowhere. */
  readonly logger?: Logger;
  /** How long `open` waits for the first connection before starting degraded, ms. Default 3000. */
  readonly connectWaitMs?: number;
}

/** Longest wait between reconnection attempts, ms. */
const RECONNECT_DELAY_MS_MAX = 1000;
/** Fields per HSCAN batch when pruning. */
const PRUNE_BATCH = 500;

type Op = () => Promise<unknown>;

/** The `e` of an identity: the latest epoch ms a Date holds (identities do not expire; revoking one replaces it). */
const IDENTITY_EXPIRES_AT_MS = 8.64e15;

function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

/** A {@link Store} on Redis. Create with {@link RedisStore.open}. */
export class RedisStore implements Store {
  /** Always `redis`. */
  readonly kind = 'redis' as const;
  private readonly handleId = randomUUID();
  private readonly listeners = new Set<StoreListener>();
  private readonly outbox = new Map<string, Op>();
  private droppedWrites = 0;
  private ok = false;
  private everReady = false;
  private downSinceMs: number | undefined;
  private detail: string;
  private closed = false;
  private flushing: Promise<void> | undefined;
  private readonly keys: { relays: string; measurements: string; revocations: string; identities: string; joinTokens: string; channel: string };

  private constructor(
    private readonly redis: Redis,
    private readonly sub: Redis,
    private readonly url: string,
    keyPrefix: string,
    private readonly logger: Logger | undefined,
  ) {
    this.keys = { relays: `${keyPrefix}relays`, measurements: `${keyPrefix}measurements`, revocations: `${keyPrefix}revocations`, identities: `${keyPrefix}identities`, joinTokens: `${keyPrefix}jointokens`, channel: `${keyPrefix}changes` };
    this.detail = `connecting to ${redactUrl(url)}`;
    this.downSinceMs = Date.now();
    redis.on('ready', () => this.onReady());
    redis.on('error', (error: Error) => this.onDown(error.message));
    redis.on('close', () => this.onDown('connection closed'));
    sub.on('error', () => undefined); // the main connection reports; this one just reconnects
    sub.on('message', (_channel: string, message: string) => this.onMessage(message));
    sub.on('ready', () => {
      // Once subscribed, resync if the main connection is already up: a write another
      // replica published while this subscriber was reconnecting (after this replica's own
      // resync had listed the store) would otherwise never reach it. Listing after
      // subscribing leaves no gap: earlier writes are in the list, later ones arrive here.
      sub
        .subscribe(this.keys.channel)
        .then(() => {
          if (this.ok && !this.closed) for (const listener of this.listeners) listener({ kind: 'resync' });
        })
        .catch(() => undefined);
    });
  }

  /**
   * Connects (waiting up to `connectWaitMs` for the first connection) and returns the
   * store; if Redis is not reachable yet, the store starts degraded and keeps trying.
   */
  static async open(init: RedisStoreInit): Promise<RedisStore> {
    const options = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      enableAutoPipelining: true,
      retryStrategy: (times: number) => Math.min(times * 100, RECONNECT_DELAY_MS_MAX),
      // Subscriptions are restored by hand on 'ready' so that a failed first connection still subscribes later.
      autoResubscribe: false,
    };
    const redis = new Redis(init.url, options);
    const sub = new Redis(init.url, options);
    const store = new RedisStore(redis, sub, init.url, init.keyPrefix ?? REDIS_KEY_PREFIX_DEFAULT, init.logger);
    const waitMs = init.connectWaitMs ?? 3000;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, waitMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      if (redis.status === 'ready') done();
      else redis.once('ready', done);
    });
    return store;
  }

  putRelay(record: RelayRecord, expiresAtMs: number): Promise<void> {
    return this.write(`r:${record.relayId}`, this.keys.relays, record.relayId, { e: expiresAtMs, v: record }, { kind: 'relay', record });
  }

  listRelays(nowMs: number): Promise<RelayRecord[]> {
    return this.list<RelayRecord>(this.keys.relays, nowMs);
  }

  putMeasurement(record: MeasurementRecord, expiresAtMs: number): Promise<void> {
    const field = `${record.from}>${record.to}`;
    return this.write(`m:${field}`, this.keys.measurements, field, { e: expiresAtMs, v: record }, { kind: 'measurement', record });
  }

  listMeasurements(nowMs: number): Promise<MeasurementRecord[]> {
    return this.list<MeasurementRecord>(this.keys.measurements, nowMs);
  }

  putRevocation(revocation: Revocation): Promise<void> {
    return this.write(`v:${revocation.sessionId}`, this.keys.revocations, revocation.sessionId, { e: revocation.expiresAtMs, v: revocation }, { kind: 'revocation', revocation });
  }

  listRevocations(nowMs: number): Promise<Revocation[]> {
    return this.list<Revocation>(this.keys.revocations, nowMs);
  }

  putIdentity(identity: RelayIdentity): Promise<void> {
    return this.write(`i:${identity.relayId}`, this.keys.identities, identity.relayId, { e: IDENTITY_EXPIRES_AT_MS, v: identity }, { kind: 'identity', identity });
  }

  listIdentities(): Promise<RelayIdentity[]> {
    return this.list<RelayIdentity>(this.keys.identities, 0);
  }

  async putJoinToken(token: JoinTokenRecord): Promise<void> {
    if (!this.ok) throw new Error(`redis store unavailable: ${this.detail}`);
    await this.redis.hset(this.keys.joinTokens, token.tokenHash, JSON.stringify({ e: token.expiresAtMs, v: token }));
  }

  async takeJoinToken(tokenHash: string, nowMs: number): Promise<JoinTokenRecord | undefined> {
    if (!this.ok) throw new Error(`redis store unavailable: ${this.detail}`);
    const results = await this.redis.multi().hget(this.keys.joinTokens, tokenHash).hdel(this.keys.joinTokens, tokenHash).exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0];
    const [[, raw], [, deleted]] = results as [[null, string | null], [null, number]];
    // Only the MULTI that deleted the field took the token.
    if (raw === null || deleted !== 1) return undefined;
    const e = parseEnvelope(raw);
    return e !== undefined && e.e > nowMs ? (e.v as JoinTokenRecord) : undefined;
  }

  async prune(nowMs: number): Promise<number> {
    if (!this.ok) return 0;
    let dropped = 0;
    try {
      for (const key of [this.keys.relays, this.keys.measurements, this.keys.revocations, this.keys.joinTokens]) {
        let cursor = '0';
        // Bounded: HSCAN visits each field at least once and returns cursor 0 at the end.
        for (let round = 0; round < 1_000_000; round++) {
          const [next, flat] = await this.redis.hscan(key, cursor, 'COUNT', PRUNE_BATCH);
          const expired: string[] = [];
          for (let i = 0; i + 1 < flat.length; i += 2) {
            const e = parseEnvelope(flat[i + 1]!);
            if (!e || e.e <= nowMs) expired.push(flat[i]!);
          }
          if (expired.length > 0) dropped += await this.redis.hdel(key, ...expired);
          cursor = next;
          if (cursor === '0') break;
        }
      }
    } catch (error) {
      this.onDown((error as Error).message);
    }
    return dropped;
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): StoreStatus {
    return {
      kind: 'redis',
      ok: this.ok,
      detail: this.detail,
      pendingWrites: this.outbox.size,
      droppedWrites: this.droppedWrites,
      ...(this.ok || this.downSinceMs === undefined ? {} : { downSinceMs: this.downSinceMs }),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.outbox.clear();
    this.redis.disconnect();
    this.sub.disconnect();
  }

  private async write(outboxKey: string, hash: string, field: string, envelope: { e: number; v: unknown }, change: StoreChange): Promise<void> {
    // HSET then PUBLISH as two plain commands, not a MULTI: one connection runs them in
    // order (a replica hears of a change only after the hash holds it), a failure of either
    // replays both from the outbox, and plain commands join ioredis' auto-pipeline, so the
    // writes of every heartbeat answered in one event-loop turn leave in one socket write
    // (a MULTI per heartbeat was four commands and a socket write of its own: with 500
    // relays and 5,000 routes/s the store's code took 18 % of the coordinator's CPU time
    // in a V8 profile, 9 % this way; coordinator/README.md "Scale").
    const op: Op = () => Promise.all([this.redis.hset(hash, field, JSON.stringify(envelope)), this.redis.publish(this.keys.channel, `${this.handleId}|${JSON.stringify(change)}`)]);
    if (!this.ok || this.outbox.size > 0) {
      this.enqueue(outboxKey, op);
      return;
    }
    try {
      await op();
    } catch (error) {
      this.onDown((error as Error).message);
      this.enqueue(outboxKey, op);
    }
  }

  private enqueue(key: string, op: Op): void {
    if (this.closed) return;
    this.outbox.delete(key); // re-insert so the newest write of a key goes last
    if (this.outbox.size >= STORE_OUTBOX_MAX) {
      const oldest = this.outbox.keys().next();
      if (!oldest.done) {
        this.outbox.delete(oldest.value);
        this.droppedWrites++;
      }
    }
    this.outbox.set(key, op);
  }

  private async list<T>(hash: string, nowMs: number): Promise<T[]> {
    if (!this.ok) throw new Error(`redis store unavailable: ${this.detail}`);
    const all = await this.redis.hgetall(hash);
    const out: T[] = [];
    for (const raw of Object.values(all)) {
      const e = parseEnvelope(raw);
      if (e && e.e > nowMs) out.push(e.v as T);
    }
    return out;
  }

  private onMessage(message: string): void {
    // `handleId|json`: a replica skips its own messages without parsing them.
    const bar = message.indexOf('|');
    if (bar === -1 || message.startsWith(this.handleId)) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(message.slice(bar + 1));
    } catch {
      return;
    }
    if (parsed === null || typeof parsed !== 'object') return;
    const change = parsed as StoreChange;
    if (change.kind !== 'relay' && change.kind !== 'measurement' && change.kind !== 'revocation' && change.kind !== 'identity') return;
    for (const listener of this.listeners) listener(change);
  }

  private onDown(reason: string): void {
    if (this.closed) return;
    if (this.ok) {
      this.ok = false;
      this.downSinceMs = Date.now();
      this.logger?.warn({ event: 'storeDown', store: 'redis', url: redactUrl(this.url), reason }, 'redis unreachable: serving from local state, queueing writes');
    }
    this.detail = `redis ${redactUrl(this.url)} unreachable: ${reason}`;
  }

  private onReady(): void {
    if (this.closed || this.flushing) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
    });
  }

  /** Replays the outbox, then declares the store up and asks subscribers to resync. */
  private async flush(): Promise<void> {
    const queued = this.outbox.size;
    // Bounded by the outbox size at each pass; a failure leaves the rest queued for the next 'ready'.
    for (let pass = 0; pass < 3 && this.outbox.size > 0; pass++) {
      const batch = [...this.outbox.entries()];
      this.outbox.clear();
      for (let i = 0; i < batch.length; i++) {
        const op = batch[i]![1];
        try {
          await op();
        } catch (error) {
          for (const [k, o] of batch.slice(i)) if (!this.outbox.has(k)) this.outbox.set(k, o);
          this.onDown((error as Error).message);
          return;
        }
      }
    }
    if (this.redis.status !== 'ready') return;
    const wasDown = this.everReady;
    this.ok = true;
    this.everReady = true;
    this.downSinceMs = undefined;
    this.detail = `connected to ${redactUrl(this.url)}`;
    this.logger?.info({ event: wasDown ? 'storeUp' : 'storeConnected', store: 'redis', url: redactUrl(this.url), replayedWrites: queued }, wasDown ? 'redis is back: replayed queued writes, resyncing' : 'connected to redis');
    for (const listener of this.listeners) listener({ kind: 'resync' });
  }
}

function parseEnvelope(raw: string): { e: number; v: unknown } | undefined {
  try {
    const parsed = JSON.parse(raw) as { e?: unknown; v?: unknown };
    if (typeof parsed.e !== 'number' || parsed.v === null || typeof parsed.v !== 'object') return undefined;
    return { e: parsed.e, v: parsed.v };
  } catch {
    return undefined;
  }
}
