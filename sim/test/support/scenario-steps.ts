/**
 * Steps shared by the SDK simulator scenario tests (sdk-scenarios, exit-relay). A step
 * drives an `SdkScenario` through one fixed sequence and reports what it saw; the
 * assertions stay in the tests.
 */
import type { SdkScenario } from '../../src/deployment/scenario.js';

/** What `rebindMidSession` saw. */
export interface Rebind {
  /** The relay the client was using (and whose session it watched). */
  readonly current: string;
  /** The session's client `address:port` on that relay before the move. */
  readonly before: string | undefined;
  /** … and 3 s after it. */
  readonly after: string | undefined;
  /** Virtual time of the move. */
  readonly movedMs: number;
  /** Longest gap in delivered echoes from 500 ms before the move to 3 s after it. */
  readonly gap: number;
}

/**
 * NAT rebinding mid-session: 60 datagrams/s of traffic for 4 s, then the client's
 * socket moves to a new port (`client.rebind()`) and the scenario runs 3 s more.
 */
export function rebindMidSession(s: SdkScenario): Rebind {
  s.startTraffic(60);
  s.runUntil(s.nowMs + 4000);
  const current = s.client.core.current!;
  const relay = s.relays.get(current)!.relay.core;
  const before = relay.tunnelSessionClient(s.sessionId);
  s.client.rebind();
  const movedMs = s.nowMs;
  s.runUntil(movedMs + 3000);
  const after = relay.tunnelSessionClient(s.sessionId);
  const gap = s.longestGapMs(movedMs - 500, movedMs + 3000);
  return { current, before, after, movedMs, gap };
}

/** What `killAndWatch` saw. */
export interface KillWatch {
  /** Virtual time of the kill. */
  readonly killMs: number;
  /** Longest gap in delivered echoes from `gapLeadMs` before the kill to the end of the watch. */
  readonly gap: number;
  /** Delivered loss from 3 s after the kill to 500 ms before the end of the watch (the settled part). */
  readonly late: ReturnType<SdkScenario['deliveredLoss']>;
}

/** Kills relay `relayId` now and runs the scenario `watchMs` more. */
export function killAndWatch(s: SdkScenario, relayId: string, watchMs: number, gapLeadMs: number): KillWatch {
  const killMs = s.nowMs;
  s.killRelay(relayId);
  s.runUntil(killMs + watchMs);
  const gap = s.longestGapMs(killMs - gapLeadMs, killMs + watchMs);
  const late = s.deliveredLoss(killMs + 3000, killMs + watchMs - 500);
  return { killMs, gap, late };
}
