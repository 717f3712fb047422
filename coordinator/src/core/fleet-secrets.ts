/**
 * Fleet-secret rotation: which fleet secrets this replica accepts (keys.fleetSecret,
 * the current one, and keys.fleetSecretsPrevious, kept while relays move over), which
 * relays are on which, and when a relay moved. A rotation is: add the new secret as
 * current with the old one in previous, give every relay the new one, watch
 * `relaysOnPrevious` empty, remove the old one.
 *
 * Secrets appear here only as their fingerprints (`fleetSecretId` in service.ts, what
 * relay records carry and the store shares), so replicas that hold different secret
 * lists still agree on which secret a relay holds. Comparing a request's bearer token
 * with the secrets is authentication and stays in the service; it hands the index of
 * the secret that matched to {@link FleetSecretRotation.accepted}.
 *
 * Also the throttle of the refusal log: a relay holding a retired or wrong secret
 * retries every few seconds, and one warning a minute per source says enough.
 *
 * Sans-IO: every method that needs the time takes `nowMs` from the caller.
 */
import { FLEET_REFUSAL_LOG_INTERVAL_MS, FLEET_REFUSAL_SOURCES_MAX } from './constants.js';
import type { Registry } from './registry.js';
import type { FleetSecretRole, FleetSecretsReport } from '../../../proto/src/api/contract.js';
export type { FleetSecretRole, FleetSecretsReport };

/** The `fleetSecretId` a relay record carries when the relay authenticated with its own key (no fleet secret fingerprint is this short). */
export const IDENTITY_SECRET_ID = 'identity';

/** One fleet secret this replica accepts. */
export interface AcceptedFleetSecret {
  /** Fingerprint of the secret (`fleetSecretId`). */
  readonly id: string;
  readonly role: 'current' | 'previous';
  /** 0 for keys.fleetSecret; i + 1 for keys.fleetSecretsPrevious[i]. */
  readonly index: number;
}

/**
 * A relay's move between secrets, to log: onto a previous one (`onPrevious`, with its
 * {@link AcceptedFleetSecret.index}) or off one onto the current secret (`onCurrent`).
 */
export type FleetSecretMove = { readonly kind: 'onPrevious'; readonly previousIndex: number } | { readonly kind: 'onCurrent' };

/** Limits of the refusal log throttle; every field defaults to the constant it names. */
export interface FleetSecretRotationInit {
  /** A refusal is logged at most once per this long per source, ms. Default {@link FLEET_REFUSAL_LOG_INTERVAL_MS}. */
  readonly refusalLogIntervalMs?: number;
  /** Sources the throttle remembers; beyond it the oldest is forgotten. Default {@link FLEET_REFUSAL_SOURCES_MAX}. */
  readonly refusalSourcesMax?: number;
}

/** See the module comment. */
export class FleetSecretRotation {
  /** The accepted secrets: the current one first, then the previous ones in configured order. */
  readonly accepted: readonly AcceptedFleetSecret[];
  private readonly refusalLogIntervalMs: number;
  private readonly refusalSourcesMax: number;
  /** Refusals last logged (ms), by source, oldest first (bounded by `refusalSourcesMax`). */
  private readonly refusalsLogged = new Map<string, number>();

  /** `secretIds`: fingerprints of keys.fleetSecret followed by those of keys.fleetSecretsPrevious. */
  constructor(secretIds: readonly string[], init: FleetSecretRotationInit = {}) {
    this.accepted = secretIds.map((id, index) => ({ id, role: index === 0 ? 'current' : 'previous', index }));
    this.refusalLogIntervalMs = init.refusalLogIntervalMs ?? FLEET_REFUSAL_LOG_INTERVAL_MS;
    this.refusalSourcesMax = init.refusalSourcesMax ?? FLEET_REFUSAL_SOURCES_MAX;
  }

  /** Previous secrets accepted besides the current one. */
  get previousCount(): number {
    return this.accepted.length - 1;
  }

  /**
   * How a relay's recorded fleet secret fingerprint relates to the secrets this replica
   * accepts (`index` -1 when unknown); {@link IDENTITY_SECRET_ID} is a relay that signs
   * with its own enrolled key.
   */
  role(id: string | undefined): { role: FleetSecretRole; index: number } {
    if (id === IDENTITY_SECRET_ID) return { role: 'identity', index: -1 };
    const entry = id === undefined ? undefined : this.accepted.find((e) => e.id === id);
    return entry ? { role: entry.role, index: entry.index } : { role: 'unknown', index: -1 };
  }

  /**
   * What changed when a relay that last used the secret `beforeId` (undefined: none
   * recorded) authenticated with `secret`: undefined when nothing worth a log line did.
   */
  move(beforeId: string | undefined, secret: AcceptedFleetSecret): FleetSecretMove | undefined {
    if (beforeId === secret.id) return undefined;
    if (secret.role === 'previous') return { kind: 'onPrevious', previousIndex: secret.index };
    return beforeId !== undefined ? { kind: 'onCurrent' } : undefined;
  }

  /** `/health`'s `fleetSecrets` and the `…_relays_by_fleet_secret` gauge, from the relays `registry` holds at `nowMs`. */
  report(nowMs: number, registry: Registry): FleetSecretsReport {
    const relays: Record<FleetSecretRole, number> = { current: 0, previous: 0, unknown: 0, identity: 0 };
    const relaysOnPrevious: { relayId: string; health: string; previousIndex: number }[] = [];
    const relaysOnUnknown: { relayId: string; health: string }[] = [];
    for (const r of registry.list()) {
      const { role, index } = this.role(r.fleetSecretId);
      relays[role]++;
      const health = registry.health(nowMs, r);
      if (role === 'previous') relaysOnPrevious.push({ relayId: r.relayId, health, previousIndex: index });
      else if (role === 'unknown') relaysOnUnknown.push({ relayId: r.relayId, health });
    }
    return { accepted: this.accepted.length, relays, relaysOnPrevious: relaysOnPrevious.sort(byRelayId), relaysOnUnknown: relaysOnUnknown.sort(byRelayId) };
  }

  /**
   * Whether a refusal from `source` (the service uses the address and the claimed relay
   * id) at `nowMs` should be logged: true at most once per refusal log interval per source.
   */
  shouldLogRefusal(nowMs: number, source: string): boolean {
    const last = this.refusalsLogged.get(source);
    if (last !== undefined && nowMs - last < this.refusalLogIntervalMs) return false;
    this.refusalsLogged.delete(source);
    while (this.refusalsLogged.size >= this.refusalSourcesMax) this.refusalsLogged.delete(this.refusalsLogged.keys().next().value as string);
    this.refusalsLogged.set(source, nowMs);
    return true;
  }
}

function byRelayId(a: { relayId: string }, b: { relayId: string }): number {
  return a.relayId < b.relayId ? -1 : a.relayId > b.relayId ? 1 : 0;
}
