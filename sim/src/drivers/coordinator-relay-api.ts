/**
 * The coordinator's relay API answered by the real {@link CoordinatorCore} for the
 * simulator: what `coordinator/src/service.ts` answers over HTTP to
 * `POST /v1/relays/register`, `POST /v1/relays/heartbeat` (404 `unknown_relay` when the
 * core does not know the relay: it must register again), `GET /v1/fleet`,
 * `POST /v1/relays/reports` and `GET /v1/revocations` (the long poll's wait is the
 * driver's: {@link CoordinatorSimDriver} holds a call until something is new), without the HTTP, the fleet secret and the store. Calls
 * arrive as {@link SimApiCall}s (sim/src/drivers/relay-api-wire.ts) through
 * {@link CoordinatorSimDriver}.
 */
import type { SimApiAnswer, SimApiCall } from './relay-api-wire.js';
import type { RelayInfo, RelayLoad, RelayPathReport } from '../../../proto/src/api/contract.js';
import { HEARTBEAT_LEASE_FRACTION } from '../../../coordinator/src/constants.js';
import type { CoordinatorCore } from '../../../coordinator/src/core/coordinator-core.js';

/** The answer `core` gives to `call` at `nowMs`. */
export function answerSimApiCall(core: CoordinatorCore, nowMs: number, call: SimApiCall): SimApiAnswer {
  const id = call.id;
  const leaseMs = core.registry.leaseMs;
  const heartbeatIntervalMs = Math.max(100, Math.floor(leaseMs * HEARTBEAT_LEASE_FRACTION));
  const unknownRelay = (relayId: unknown): SimApiAnswer => ({ id, ok: false, status: 404, code: 'unknown_relay', message: `coordinator answered 404 unknown_relay: relayId: relay '${String(relayId)}' is not registered here; POST /v1/relays/register first` });
  switch (call.kind) {
    case 'register': {
      const info = call.body as unknown as RelayInfo;
      const record = core.register(nowMs, info);
      const relays = [...core.registry.list()].filter((r) => r.relayId !== record.relayId && core.registry.health(nowMs, r) !== 'unhealthy').map((r) => ({ relayId: r.relayId, probeAddress: r.probeAddress, region: r.region }));
      return { id, ok: true, body: { relayId: record.relayId, leaseMs, heartbeatIntervalMs, ticketPublicKey: '', relays } };
    }
    case 'heartbeat': {
      const { relayId, load } = call.body as { relayId: string; load: RelayLoad };
      const record = core.heartbeat(nowMs, relayId, load);
      return record === undefined ? unknownRelay(relayId) : { id, ok: true, body: { leaseMs, heartbeatIntervalMs } };
    }
    case 'fleet':
      // The fields of `GET /v1/fleet` a relay reads (the full view's matrix and series cost the simulation for nothing).
      return { id, ok: true, body: { relays: [...core.registry.list()].map((r) => ({ relayId: r.relayId, probeAddress: r.probeAddress, region: r.region, health: core.registry.health(nowMs, r) })) } };
    case 'revocations': {
      const { sinceMs } = call.body as { sinceMs: number };
      return { id, ok: true, body: revocationPage(core, nowMs, sinceMs) };
    }
    case 'reports': {
      const { relayId, reports } = call.body as { relayId: string; reports: RelayPathReport[] };
      if (core.registry.get(relayId) === undefined) return unknownRelay(relayId);
      let taken = 0;
      const skipped: { index: number; reason: string }[] = [];
      reports.forEach((r, index) => {
        const target = r.targetRelayId !== undefined ? { relayId: r.targetRelayId } : { origin: r.origin ?? '' };
        const result = core.relayReport(nowMs, relayId, target, { rttMs: r.rttMs, jitterMs: r.jitterMs, lossFraction: r.lossFraction, samples: r.samples });
        if (result.ok) taken++;
        else skipped.push({ index, reason: result.reason });
      });
      return { id, ok: true, body: { taken, skipped } };
    }
  }
}

/**
 * A page of the revocation feed after `sinceMs`, as `GET /v1/revocations` answers it: the
 * cursor is the last entry's receive time, or (nothing new) just before now.
 */
export function revocationPage(core: CoordinatorCore, nowMs: number, sinceMs: number): { cursorMs: number; revocations: { sessionId: string; revokedAtMs: number; expiresAtMs: number }[] } {
  const entries = core.revocations.since(nowMs, sinceMs);
  const cursorMs = entries.length > 0 ? entries[entries.length - 1]!.receivedAtMs : Math.max(sinceMs, nowMs - 1);
  return { cursorMs, revocations: entries.map((e) => ({ sessionId: e.sessionId, revokedAtMs: e.revokedAtMs, expiresAtMs: e.expiresAtMs })) };
}
