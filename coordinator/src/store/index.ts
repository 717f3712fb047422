/** Store implementations and the factory the CLI uses for `--store memory|redis://…`. */
import type { Logger } from 'pino';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import type { Store } from './store.js';

export { MemoryBackend, MemoryStore } from './memory.js';
export { RedisStore, type RedisStoreInit } from './redis.js';
export type { Store, StoreChange, StoreListener, StoreStatus } from './store.js';

/** Opens the store a `--store` value names: `memory` or `redis://…` (`rediss://` for TLS). */
export async function openStore(spec: string, options: { keyPrefix?: string; logger?: Logger } = {}): Promise<Store> {
  if (spec === 'memory') return new MemoryStore();
  return RedisStore.open({ url: spec, ...options });
}
