/**
 * A demonstration fleet fed to a coordinator through the real HTTP API: relays in
 * several cities, a full mesh of RTTs from great-circle distances with some jitter
 * and loss, origin probes, and load. For the screenshot script and the dashboard test.
 */
import { CoordinatorClient, type RelayPathReport } from '../../kit/coordinator-client.js';
import { geoRttMs, greatCircleKm } from '../src/core/geo.js';
import { Rng } from '../../proto/src/rng.js';
import type { RelayStatus } from '../../proto/src/api/contract.js';

/** A demo relay: id, region, coordinates. */
export interface DemoRelay {
  readonly relayId: string;
  readonly region: string;
  readonly latitude: number;
  readonly longitude: number;
}

/** The demo relays. */
export const DEMO_RELAYS: readonly DemoRelay[] = [
  { relayId: 'fra-1', region: 'eu-central', latitude: 50.11, longitude: 8.68 },
  { relayId: 'lon-1', region: 'eu-west', latitude: 51.51, longitude: -0.13 },
  { relayId: 'iad-1', region: 'us-east', latitude: 38.95, longitude: -77.45 },
  { relayId: 'sfo-1', region: 'us-west', latitude: 37.62, longitude: -122.38 },
  { relayId: 'gru-1', region: 'sa-east', latitude: -23.43, longitude: -46.47 },
  { relayId: 'sin-1', region: 'ap-southeast', latitude: 1.36, longitude: 103.99 },
  { relayId: 'nrt-1', region: 'ap-northeast', latitude: 35.77, longitude: 140.39 },
  { relayId: 'syd-1', region: 'ap-southeast-2', latitude: -33.94, longitude: 151.18 },
];

/** The demo origin (a game server in Frankfurt). */
export const DEMO_ORIGIN = { name: 'eu-game', latitude: 50.0, longitude: 8.5 };

/**
 * The players view of the demo relays that carry players of {@link DEMO_ORIGIN} (the
 * heartbeat's `status`); fra-1 also has an L4 rule with one of its two origins down.
 */
export const DEMO_STATUS: Readonly<Record<string, RelayStatus>> = {
  'fra-1': {
    origins: [{ origin: DEMO_ORIGIN.name, players: 120, backups: 30, fecRecovered: 42, lossBeforeFec: 0.012, lossAfterFec: 0.0004, downLossBeforeFec: 0.021, downLossAfterFec: 0.0009 }],
    otherPlayers: 0,
    otherBackups: 0,
    rules: [{ rule: 'game-udp', protocol: 'udp', listen: '0.0.0.0:27015', group: 'eu-game', sessions: 37, origins: [{ origin: '10.0.1.10:27015', healthy: true }, { origin: '10.0.1.11:27015', healthy: false }] }],
  },
  'lon-1': { origins: [{ origin: DEMO_ORIGIN.name, players: 40, backups: 110, fecRecovered: 3, lossBeforeFec: 0.002, lossAfterFec: 0, downLossBeforeFec: 0.004, downLossAfterFec: 0 }], otherPlayers: 0, otherBackups: 0, rules: [] },
  'syd-1': { origins: [{ origin: DEMO_ORIGIN.name, players: 5, backups: 0, fecRecovered: 0, lossBeforeFec: 0, lossAfterFec: 0 }], otherPlayers: 0, otherBackups: 0, rules: [] },
};

/** Feeds the demo fleet: call `round()` repeatedly (each is one heartbeat and one report per relay). */
export class DemoFleet {
  private readonly client: CoordinatorClient;
  private readonly rng: Rng;
  private readonly silent = new Set<string>();
  private tick = 0;

  constructor(baseUrl: string, fleetSecret: string, seed = 1) {
    this.client = new CoordinatorClient({ baseUrl, fleetSecret });
    this.rng = new Rng(seed);
  }

  /** Registers every demo relay. */
  async register(): Promise<void> {
    for (const r of DEMO_RELAYS) await this.client.register({ ...r, tunnelAddress: `198.51.100.${DEMO_RELAYS.indexOf(r) + 1}:4433`, probeAddress: `198.51.100.${DEMO_RELAYS.indexOf(r) + 1}:4434`, capacitySessions: 2000 });
  }

  /** Stops heartbeats (and reports) from `relayId`, as if it died. */
  kill(relayId: string): void {
    this.silent.add(relayId);
  }

  /** One heartbeat and one round of mesh and origin reports per live relay. */
  async round(): Promise<void> {
    this.tick++;
    for (const [i, r] of DEMO_RELAYS.entries()) {
      if (this.silent.has(r.relayId)) continue;
      const sessions = Math.round(200 + 150 * Math.sin(this.tick / 5 + i) + 400 * (i % 3));
      await this.client.heartbeat(r.relayId, { sessions, packetsPerSecond: sessions * 60, cpuFraction: Math.min(1, sessions / 2500), draining: r.relayId === 'gru-1', ...(DEMO_STATUS[r.relayId] ? { status: DEMO_STATUS[r.relayId] } : {}) });
      const wobble = (): number => 1 + 0.05 * this.rng.nextNormal();
      const lossy = r.relayId === 'sin-1' ? 0.02 + 0.01 * Math.sin(this.tick / 3) : 0.001 * this.rng.nextFloat();
      const reports: RelayPathReport[] = DEMO_RELAYS.filter((p) => p.relayId !== r.relayId && !this.silent.has(p.relayId)).map((p) => ({
        targetRelayId: p.relayId,
        rttMs: geoRttMs(greatCircleKm(r.latitude, r.longitude, p.latitude, p.longitude)) * wobble(),
        jitterMs: 0.5 + 2 * this.rng.nextFloat(),
        lossFraction: lossy,
        samples: 20,
      }));
      reports.push({ origin: DEMO_ORIGIN.name, rttMs: geoRttMs(greatCircleKm(r.latitude, r.longitude, DEMO_ORIGIN.latitude, DEMO_ORIGIN.longitude)) * wobble(), jitterMs: 0.3 + (r.relayId === 'sin-1' ? 6 : 1) * this.rng.nextFloat(), lossFraction: lossy, samples: 20 });
      await this.client.reportRelayPaths(r.relayId, reports);
    }
  }
}
