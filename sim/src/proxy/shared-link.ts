/**
 * A shared link of `slipstream sim proxy`: one impairment per direction that several
 * UDP proxies cross together, as every packet of a player crosses its one Wi-Fi or
 * cellular link whatever its destination (the simulator's access link,
 * `SimNetwork.setAccessLink`). Its two `LinkDirection`s are the only ones its member
 * proxies use: one loss process (Gilbert-Elliott state, Bernoulli draws), one delay and
 * jitter line (`keepOrder` holds across all members), one rate queue, one set of
 * blackouts per direction. `uplink` is client → upstream for every member, `downlink`
 * upstream → client.
 *
 * Members keep their own sockets, flows, event heaps and counters; only the link
 * directions are shared, and a direction decides a packet's fate and arrival time at
 * the instant the packet reaches it, whichever member carries it.
 */
import type { Rng } from '../../../proto/src/rng.js';
import { LinkDirection, type LinkModelSpec } from '../core/link.js';

/** One shared link's two directions. */
export class SharedLink {
  /** Client → upstream, for every member. */
  readonly uplink: LinkDirection;
  /** Upstream → client, for every member. */
  readonly downlink: LinkDirection;
  /** Names of the proxies crossing it, in the order they joined. */
  readonly members = new Set<string>();

  /**
   * @param name the link's name (unique among the process's links)
   * @param uplink the uplink's model (blackout windows relative to now)
   * @param downlink the downlink's model (blackout windows relative to now)
   * @param rng this link's random stream; each direction forks its own
   * @param clock monotonic ms, the same clock as the member proxies'
   */
  constructor(
    readonly name: string,
    uplink: LinkModelSpec,
    downlink: LinkModelSpec,
    rng: Rng,
    private readonly clock: () => number,
  ) {
    const now = clock();
    this.uplink = new LinkDirection(shiftBlackouts(uplink, now), rng.fork());
    this.downlink = new LinkDirection(shiftBlackouts(downlink, now), rng.fork());
  }

  /**
   * Replaces a direction's model for packets that reach it from now on, through any
   * member (packets in flight keep their times; the loss state and queue carry on).
   * Blackout windows in `spec` are relative to now.
   */
  setModel(direction: 'uplink' | 'downlink', spec: LinkModelSpec): void {
    (direction === 'uplink' ? this.uplink : this.downlink).setModel(shiftBlackouts(spec, this.clock()));
  }
}

/** Moves blackout windows given relative to "now" onto the proxy's clock. */
export function shiftBlackouts(spec: LinkModelSpec, nowMs: number): LinkModelSpec {
  if (spec.blackouts === undefined || spec.blackouts.length === 0) return spec;
  return { ...spec, blackouts: spec.blackouts.map((w) => ({ startMs: w.startMs + nowMs, endMs: w.endMs + nowMs })) };
}
