/**
 * The packet log of one player's path (direct or through Slipstream), as the QoE
 * figures read it (sim/src/scenario/qoe.ts). A leaf: {@link SimDeployment} and
 * {@link SdkScenario} both fill it.
 */

/** Everything one side saw of one player's traffic on one path. Indexes are sequence numbers. */
export class PathLog {
  /** Player send time of each upstream packet, ms. */
  readonly sentAtMs: number[] = [];
  /** Payload bytes of each upstream packet. */
  readonly sizeBytes: number[] = [];
  /**
   * First arrival at the origin of each upstream packet, ms (NaN: never). NaN rather
   * than undefined keeps the array of unboxed doubles (a million packets per run).
   */
  readonly originAtMs: number[] = [];
  /** Relays (bit i = relay i) that delivered each upstream packet to the origin. */
  readonly originVia: number[] = [];
  /** Origin send time of each downstream packet, ms. */
  readonly echoSentAtMs: number[] = [];
  /** The upstream sequence number each downstream packet answers. */
  readonly echoOf: number[] = [];
  /** First arrival at the player of each downstream packet, ms (NaN: never). */
  readonly clientAtMs: number[] = [];
  /** Upstream copies the origin got again through a relay that had delivered it already (a relay bug). */
  sameRelayDuplicates = 0;
  /** Upstream copies the origin got again through another relay (the swarm counts each a violation: the SDK sends every datagram through one relay). */
  crossRelayDuplicates = 0;
  /** Upstream copies the origin got again on the direct path (the link duplicated them). */
  directDuplicates = 0;
  /** Downstream packets handed to the player more than once. */
  clientDuplicates = 0;
  /** Payload bytes sent each way by the player / the origin. */
  bytesUp = 0;
  bytesDown = 0;
}
