/**
 * String keys of endpoints, for the map that finds a relay by a datagram's source.
 *
 * The last few endpoints keyed, and their keys: a datagram's source is looked up by its
 * key, and drivers that reuse endpoint objects (the simulator's sockets) would otherwise
 * build and hash a fresh string per datagram. Checked by identity and by content.
 *
 * One cache per client (it used to be module-global, shared by every simulated client
 * of a swarm, so that one client's lookups evicted another's).
 */
import type { Endpoint } from '../../../../proto/src/transport.js';

/** Endpoints remembered with their keys. */
const KEY_CACHE_SIZE = 4;

/** A small ring of endpoints and their keys; see the module comment. */
export class EndpointKeys {
  private readonly endpoints: (Endpoint | undefined)[] = new Array<Endpoint | undefined>(KEY_CACHE_SIZE).fill(undefined);
  private readonly addresses: string[] = new Array<string>(KEY_CACHE_SIZE).fill('');
  private readonly ports: number[] = new Array<number>(KEY_CACHE_SIZE).fill(-1);
  private readonly keys: string[] = new Array<string>(KEY_CACHE_SIZE).fill('');
  private next = 0;

  /** `address|port` of `e`; allocates only for an endpoint not among the last {@link KEY_CACHE_SIZE} keyed. */
  keyOf(e: Endpoint): string {
    for (let i = 0; i < KEY_CACHE_SIZE; i++) {
      if (this.endpoints[i] === e && this.addresses[i] === e.address && this.ports[i] === e.port) return this.keys[i]!;
    }
    const key = `${e.address}|${e.port}`;
    const i = this.next;
    this.next = (i + 1) % KEY_CACHE_SIZE;
    this.endpoints[i] = e;
    this.addresses[i] = e.address;
    this.ports[i] = e.port;
    this.keys[i] = key;
    return key;
  }
}
