/**
 * {@link MemoryStore}: the default store, state in this process. Several handles may
 * share one {@link MemoryBackend} (as replicas share one Redis), which is how the
 * compliance suite checks change notifications without Redis.
 */
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

  /** @param backend state to share with other handles; default a fresh one. */
  constructor(private readonly backend: MemoryBackend = new MemoryBackend()) {
    backend.handles.add(this);
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
