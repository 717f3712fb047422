/**
 * The simulator core: virtual clock and event queue, link models, the virtual network
 * with its UDP sockets, packet fates, and the single-link experiment behind
 * `slipstream sim link`. Sans-IO: nothing here reads a clock, a timer or a socket.
 */
export { EventQueue, SimTimer, type SimEventDescription, type SimEventHandler } from './event-queue.js';
export {
  DropReason,
  dropReasonName,
  LinkDirection,
  validateLinkModel,
  LINK_DELAY_MS_MAX,
  LINK_MTU_BYTES_MAX,
  LINK_QUEUE_PACKETS_DEFAULT,
  LINK_QUEUE_PACKETS_MAX,
  LINK_RATE_KBPS_MAX,
  PARETO_SHAPE,
  type BlackoutWindow,
  type DropReasonValue,
  type JitterDistribution,
  type LinkModelSpec,
  type LossSpec,
} from './link.js';
export { FateLog, Hop, hopName, PacketFate, type FateEntry, type FateSink, type HopValue } from './fate.js';
export { SimHost, SimNetwork, SimUdpSocket, EPHEMERAL_PORT_MAX, EPHEMERAL_PORT_MIN, type AccessDirection, type SimNetworkInit, type SimPartition } from './network.js';
export {
  runLinkExperiment,
  EXPERIMENT_RECEIVER,
  EXPERIMENT_SENDER,
  EXPERIMENT_SIZE_BYTES_DEFAULT,
  type LatencySummary,
  type LinkExperimentInit,
  type LinkReport,
} from './link-experiment.js';
export { runUntilBounded, SimLivelockError, SIM_EVENTS_PER_SECOND_MAX_DEFAULT, SIM_LIVELOCK_SAMPLE_EVENTS, type SimLivelockDetails } from './event-budget.js';
