/**
 * What the rooms of a `TunnelClient` share, built once by the composer: the
 * session's identity, the settings, the relay table, the selection it applied, the
 * timer table, and the two output queues. Rooms read and write through it, so a
 * packet's trip through several rooms allocates nothing for the split.
 */
import { SLIDING_WINDOW_PARAMETERS_DEFAULT, validateSlidingWindowParameters, type SlidingWindowParameters } from '../../../../proto/src/fec/index.js';
import { PacketHeader } from '../../../../proto/src/header.js';
import * as C from '../constants.js';
import type { RelaySelector } from '../relay-selector.js';
import type { RelayLink } from './relay-link-state.js';
import type { TimerTable } from '../../../../proto/src/timer-table.js';
import { SessionMacs } from './session-macs.js';
import { clientTimerTable, type ClientTimerValue } from './timer-table.js';
import type { ClientTransmit, TunnelClientEvent, TunnelClientInit } from './types.js';

/** The shared state of one client; see the module comment. */
export class TunnelContext {
  /** The session id's high and low 32 bits (from the ticket's hex id). */
  readonly sessionIdHigh: number;
  readonly sessionIdLow: number;
  /** The 32-byte session key. */
  readonly sessionKey: Uint8Array;
  /** The ticket bytes (opaque to the client). */
  readonly ticket: Uint8Array;
  /** FEC modes offered, best first. Default {@link C.FEC_MODES_DEFAULT}. */
  readonly fecModes: readonly string[];
  /** Fixed upstream sliding-window settings for mode `sw`, or undefined for the adaptive controller (the default). */
  readonly slidingWindow: SlidingWindowParameters | undefined;
  /** The session's latency budget, ms, when the app set one (see `TunnelClientInit.latencyBudgetMs`). */
  readonly latencyBudgetMs: number | undefined;
  /** Probe periods of the current relay, the backup and the other candidates, ms. */
  readonly probeCurrentMs: number;
  readonly probeBackupMs: number;
  readonly probeOtherMs: number;
  /** Give up when no session opens within this long of the first candidates, ms. */
  readonly connectTimeoutMs: number;
  /** Path reports this often, ms. */
  readonly reportIntervalMs: number;
  /** Keep a warm backup session. */
  readonly warmBackup: boolean;
  /** Every relay the client knows, by id (candidates, and relays in use that the list dropped). */
  readonly relays = new Map<string, RelayLink>();
  /** The header of the datagram being handled (parsed once, read by the room it goes to). */
  readonly header = new PacketHeader();
  /** Output queues, drained by the driver through the composer. */
  readonly transmits: ClientTransmit[] = [];
  readonly events: TunnelClientEvent[] = [];
  readonly timers: TimerTable<ClientTimerValue> = clientTimerTable();
  /** The session MACs (client Close, path responses, relay Close checks), in place or queued for the driver. */
  readonly macs: SessionMacs;
  /** The relay carrying traffic and the warm backup, as the selector last chose them. */
  currentId: string | undefined = undefined;
  backupId: string | undefined = undefined;
  /** A session has opened (the `open` event went out). */
  opened = false;
  /** The connection failed (the `failed` event went out); every input is ignored from then on. */
  failed = false;

  constructor(
    init: TunnelClientInit,
    sessionIdHigh: number,
    sessionIdLow: number,
    readonly selector: RelaySelector,
  ) {
    this.sessionIdHigh = sessionIdHigh;
    this.sessionIdLow = sessionIdLow;
    this.sessionKey = init.sessionKey;
    this.ticket = init.ticket;
    this.macs = new SessionMacs(init.hmac, init.sessionKey, sessionIdHigh, sessionIdLow, this.transmits);
    this.fecModes = init.fecModes ?? C.FEC_MODES_DEFAULT;
    this.slidingWindow = init.slidingWindow === undefined ? undefined : { ...SLIDING_WINDOW_PARAMETERS_DEFAULT, ...init.slidingWindow };
    if (this.slidingWindow !== undefined) validateSlidingWindowParameters(this.slidingWindow);
    if (init.latencyBudgetMs !== undefined && !(init.latencyBudgetMs >= 0 && init.latencyBudgetMs <= 1000)) {
      throw new RangeError(`TunnelClient latencyBudgetMs: ${init.latencyBudgetMs} is out of range; expected 0 to 1000 ms`);
    }
    this.latencyBudgetMs = init.latencyBudgetMs;
    this.probeCurrentMs = init.probeCurrentIntervalMs ?? C.PROBE_CURRENT_INTERVAL_MS_DEFAULT;
    this.probeBackupMs = init.probeBackupIntervalMs ?? C.PROBE_BACKUP_INTERVAL_MS_DEFAULT;
    this.probeOtherMs = init.probeOtherIntervalMs ?? C.PROBE_OTHER_INTERVAL_MS_DEFAULT;
    this.connectTimeoutMs = init.connectTimeoutMs ?? C.CONNECT_TIMEOUT_MS_DEFAULT;
    this.reportIntervalMs = init.reportIntervalMs ?? C.REPORT_INTERVAL_MS_DEFAULT;
    this.warmBackup = init.warmBackup ?? true;
  }

  /** The current relay when its session is open (the one upstream data goes to), else undefined. */
  currentLink(): RelayLink | undefined {
    if (this.currentId === undefined) return undefined;
    const link = this.relays.get(this.currentId);
    return link?.sessionState === 'open' ? link : undefined;
  }
}
