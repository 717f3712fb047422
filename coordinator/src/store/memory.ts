/**
 * {@link MemoryStore}: the default store, state in this process. Several handles may
 * share one {@link MemoryBackend} (as replicas share one Redis), which is how the
 * compliance suite checks change notifications without Redis.
 *
 * Relay identities are the one thing a restart must not lose (every relay would need a
 * new join token): with `identitiesFile` they are written there (JSON, through a
 * temporary file and a rename, mode 0600) on each change and read back at start.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { MeasurementRecord } from '../core/measurements.js';
import type { RelayRecord } from '../core/registry.js';
import type { Revocation } from '../core/revocations.js';
import type { JoinTokenRecord, RelayIdentity } from '../core/relay-identities.js';
import type { Store, StoreChange, StoreListener, StoreStatus } from './store.js';

interface Entry<T> {
  value: T;
  expiresAtMs: number;
}

/** The state several {@link MemoryStore} handles share. */
export class MemoryBackend {
  /** @internal */ readonly relays = new Map<string, Entry<RelayRecord>>();
  /** @internal */ readonly measurements = new Map<string, Entry<MeasurementRecord>>();
  /** @internal */ readonly revocations = new Map<string, Entry<Revocation>>();
  /** @internal */ readonly identities = new Map<string, RelayIdentity>();
  /** @internal */ readonly joinTokens = new Map<string, Entry<JoinTokenRecord>>();
  /** @internal */ readonly handles = new Set<MemoryStore>();
}

function live<T>(map: Map<string, Entry<T>>, nowMs: number): T[] {
  const out: T[] = [];
  for (const entry of map.values()) if (entry.expiresAtMs > nowMs) out.push(entry.value);
  return out;
}

/** A {@link Store} in memory. */
export class MemoryStore implements Store {
  /** Always `memory`. */
  readonly kind = 'memory' as const;
  private readonly listeners = new Set<StoreListener>();
  private closed = false;

  private readonly identitiesFile: string | undefined;

  /**
   * @param backend state to share with other handles; default a fresh one.
   * @param options.identitiesFile where identities persist (see the module comment); read
   *   now when it exists; a file that is not this store's JSON throws.
   */
  constructor(private readonly backend: MemoryBackend = new MemoryBackend(), options: { identitiesFile?: string } = {}) {
    backend.handles.add(this);
    this.identitiesFile = options.identitiesFile;
    if (this.identitiesFile !== undefined) for (const identity of readIdentities(this.identitiesFile)) backend.identities.set(identity.relayId, identity);
  }

  async putRelay(record: RelayRecord, expiresAtMs: number): Promise<void> {
    this.backend.relays.set(record.relayId, { value: record, expiresAtMs });
    this.publish({ kind: 'relay', record });
  }

  async listRelays(nowMs: number): Promise<RelayRecord[]> {
    return live(this.backend.relays, nowMs);
  }

  async putMeasurement(record: MeasurementRecord, expiresAtMs: number): Promise<void> {
    this.backend.measurements.set(`${record.from}>${record.to}`, { value: record, expiresAtMs });
    this.publish({ kind: 'measurement', record });
  }

  async listMeasurements(nowMs: number): Promise<MeasurementRecord[]> {
    return live(this.backend.measurements, nowMs);
  }

  async putRevocation(revocation: Revocation): Promise<void> {
    this.backend.revocations.set(revocation.sessionId, { value: revocation, expiresAtMs: revocation.expiresAtMs });
    this.publish({ kind: 'revocation', revocation });
  }

  async listRevocations(nowMs: number): Promise<Revocation[]> {
    return live(this.backend.revocations, nowMs);
  }

  async putIdentity(identity: RelayIdentity): Promise<void> {
    this.backend.identities.set(identity.relayId, identity);
    if (this.identitiesFile !== undefined) {
      const tmp = `${this.identitiesFile}.tmp`;
      writeFileSync(tmp, `${JSON.stringify({ identities: [...this.backend.identities.values()] })}\n`, { mode: 0o600 });
      renameSync(tmp, this.identitiesFile);
    }
    this.publish({ kind: 'identity', identity });
  }

  async listIdentities(): Promise<RelayIdentity[]> {
    return [...this.backend.identities.values()];
  }

  async putJoinToken(token: JoinTokenRecord): Promise<void> {
    this.backend.joinTokens.set(token.tokenHash, { value: token, expiresAtMs: token.expiresAtMs });
  }

  async takeJoinToken(tokenHash: string, nowMs: number): Promise<JoinTokenRecord | undefined> {
    const entry = this.backend.joinTokens.get(tokenHash);
    this.backend.joinTokens.delete(tokenHash);
    return entry !== undefined && entry.expiresAtMs > nowMs ? entry.value : undefined;
  }

  async prune(nowMs: number): Promise<number> {
    let dropped = 0;
    for (const map of [this.backend.relays, this.backend.measurements, this.backend.revocations, this.backend.joinTokens] as Map<string, Entry<unknown>>[]) {
      for (const [key, entry] of map) {
        if (entry.expiresAtMs <= nowMs) {
          map.delete(key);
          dropped++;
        }
      }
    }
    return dropped;
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): StoreStatus {
    return { kind: 'memory', ok: true, detail: 'in-process memory', pendingWrites: 0, droppedWrites: 0 };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.backend.handles.delete(this);
  }

  /** Delivers to the other handles' listeners asynchronously, as a network backend would. */
  private publish(change: StoreChange): void {
    for (const handle of this.backend.handles) {
      if (handle === this) continue;
      queueMicrotask(() => handle.deliver(change));
    }
  }

  private deliver(change: StoreChange): void {
    for (const listener of this.listeners) listener(change);
  }
}

/** The identities in `file` ([] when it does not exist); throws naming the file when it is not `{ identities: [...] }`. */
function readIdentities(file: string): RelayIdentity[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const parsed = JSON.parse(text) as { identities?: unknown };
  const list = parsed.identities;
  const ok = (i: unknown): i is RelayIdentity =>
    typeof i === 'object' && i !== null && typeof (i as RelayIdentity).relayId === 'string' && typeof (i as RelayIdentity).publicKey === 'string' && typeof (i as RelayIdentity).enrolledAtMs === 'number';
  if (!Array.isArray(list) || !list.every(ok)) throw new Error(`${file}: not a relay identities file ({"identities":[{relayId, publicKey, enrolledAtMs, revokedAtMs?}]})`);
  return list;
}
