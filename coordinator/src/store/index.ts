/** Store implementations and the factory the CLI uses for `--store memory|redis://…`. */
import type { Logger } from 'pino';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import type { Store } from './store.js';

export { MemoryBackend, MemoryStore } from './memory.js';
export { RedisStore, type RedisStoreInit } from './redis.js';
export type { Store, StoreChange, StoreListener, StoreStatus } from './store.js';

/**
 * Opens the store a `--store` value names: `memory` or `redis://…` (`rediss://` for TLS).
 * `identitiesFile` (memory only): where the memory store keeps relay identities across restarts.
 */
export async function openStore(spec: string, options: { keyPrefix?: string; logger?: Logger; identitiesFile?: string } = {}): Promise<Store> {
  const { identitiesFile, ...redisOptions } = options;
  if (spec === 'memory') return new MemoryStore(undefined, identitiesFile !== undefined ? { identitiesFile } : {});
  return RedisStore.open({ url: spec, ...redisOptions });
}
