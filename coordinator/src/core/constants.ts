/**
 * The defaults and limits the sans-IO coordinator core reads (leases, measurements,
 * the client report budget, ranking, geography, tickets, revocations, history), in one
 * place below the driver: the core imports only this, its siblings and proto/.
 * coordinator/src/constants.ts re-exports all of it, so config keys and flags
 * (coordinator/README.md) still default to these; units are in the names.
 */

/** A relay without a heartbeat for this long is unhealthy and never handed to clients, ms. */
export const LEASE_MS_DEFAULT = 5_000;
/** An unhealthy relay is forgotten (dropped from the dashboard and the store) after this long without a heartbeat, ms. */
export const RELAY_RETENTION_MS_DEFAULT = 600_000;

/** A measurement not refreshed for this long is dropped, ms. */
export const MEASUREMENT_STALE_MS_DEFAULT = 60_000;
/**
 * Smoothing: a report of n probe samples moves the smoothed figure by the weight
 * n / (n + this), so a report of 20 samples counts half.
 */
export const MEASUREMENT_SMOOTHING_SAMPLES_DEFAULT = 20;
/** Smoothing: an old figure also decays with age, halving its weight every this many ms. */
export const MEASUREMENT_HALF_LIFE_MS_DEFAULT = 15_000;
/** A figure built from this many probe samples has full sample confidence. */
export const MEASUREMENT_CONFIDENT_SAMPLES = 50;
/** Longest sample count accumulated per figure (caps the confidence arithmetic). */
export const MEASUREMENT_SAMPLES_MAX = 1_000_000;
/**
 * Samples one SDK report (`POST /v1/reports`, unauthenticated) counts for at most, per
 * path: larger counts are clamped, so one client report moves a prefix's figure by at
 * most 100 / (100 + smoothing) (5/6 with the default smoothing) and never outweighs a
 * history for long. Relay reports (fleet secret) are not clamped.
 */
export const CLIENT_REPORT_SAMPLES_MAX = 100;
/** Client prefixes (/24, /48) with figures held; beyond it the prefix reported least recently is dropped whole. */
export const CLIENT_PREFIXES_MAX = 100_000;
/** `POST /v1/reports` rate limit per source address (the address the report is filed under): sustained requests per second… */
export const CLIENT_REPORTS_PER_SECOND = 1;
/** …and the burst a source may spend at once before it is answered 429. */
export const CLIENT_REPORTS_BURST = 20;
/** Source addresses the report rate limiter remembers; beyond it the least recently seen is forgotten. */
export const CLIENT_REPORT_SOURCES_MAX = 50_000;
/** `POST /v1/reports` rate limit per client prefix (/24, /48), whoever in it reports: sustained requests per second… */
export const CLIENT_PREFIX_REPORTS_PER_SECOND = 5;
/** …and the burst a prefix may spend at once before its reports are answered 429. */
export const CLIENT_PREFIX_REPORTS_BURST = 100;
/**
 * Distinct reporters (IPv4 addresses, IPv6 /64s) with a fresh report a prefix's figure
 * toward a relay needs before it is published to ranking: below it one reporter (or
 * two) moves nothing anyone else is routed by. The service's default; the core's own
 * default is 1 (the simulator's one client per prefix).
 */
export const CLIENT_REPORTERS_MIN_DEFAULT = 3;
/** Reporters remembered per (prefix, relay) path; beyond it the least recently reporting one is forgotten. */
export const CLIENT_REPORTERS_PER_PATH_MAX = 32;
/** (path, reporter) entries remembered in all; beyond it the least recently reported path is forgotten whole. */
export const CLIENT_REPORT_ENTRIES_MAX = 200_000;
/**
 * Step bound: one accepted client report moves a prefix's published RTT (and jitter)
 * by at most the larger of this many ms…
 */
export const CLIENT_REPORT_STEP_RTT_MS_DEFAULT = 25;
/** …and this fraction of the published figure… */
export const CLIENT_REPORT_STEP_RTT_FRACTION_DEFAULT = 0.25;
/** …and its loss by at most this much (a fraction: 0.05 is 5 percentage points). */
export const CLIENT_REPORT_STEP_LOSS_FRACTION_DEFAULT = 0.05;

/** Ranking: each 1 % of whole-path loss costs this many ms of estimated delay. */
export const LOSS_PENALTY_MS_PER_PERCENT_DEFAULT = 20;
/** Ranking: weight of whole-path jitter (ms per ms). */
export const JITTER_WEIGHT_DEFAULT = 1;
/** Ranking: load (max of sessions/capacity and CPU) above this fraction starts to cost. */
export const LOAD_KNEE_FRACTION_DEFAULT = 0.7;
/** Ranking: the load penalty at full load, ms (linear from the knee). */
export const LOAD_PENALTY_MS_AT_FULL_DEFAULT = 50;
/** Ranking: an extra relay hop costs this much on top of its measured RTT (processing, queueing), ms. */
export const HOP_PENALTY_MS_DEFAULT = 1;
/** Ranking: a two-hop route is offered only if it beats the same entry's direct route by this much, ms. */
export const TWO_HOP_GAIN_MS_MIN_DEFAULT = 5;
/** Ranking: entries and exits considered for two-hop routes (the best few of each), so a route costs O(N + K²). */
export const TWO_HOP_CANDIDATES = 8;
/** Candidates returned by `GET /v1/route` when `limit` is not given. */
export const ROUTE_LIMIT_DEFAULT = 8;
/** Most candidates `GET /v1/route` returns. */
export const ROUTE_LIMIT_MAX = 64;

/** Geography: one-way speed of light in fibre, km per ms. */
export const GEO_FIBRE_KM_PER_MS = 200;
/** Geography: real routes are longer than the great circle by about this factor. */
export const GEO_PATH_STRETCH = 1.5;
/** Geography: fixed RTT added to every geographic estimate (last mile, switching), ms. */
export const GEO_BASE_RTT_MS = 4;
/** Region fallback: estimated RTT between a client and a relay in its hinted region, ms. */
export const REGION_SAME_RTT_MS = 25;
/** Region fallback: estimated RTT to a relay in another region, ms. */
export const REGION_OTHER_RTT_MS = 120;
/** Nothing known at all: the RTT assumed for a path, ms (every relay gets the same, so load and the other leg decide). */
export const UNKNOWN_RTT_MS = 150;
/** Confidence given to a geographic estimate (0..1). */
export const GEO_CONFIDENCE = 0.3;
/** Confidence given to a region estimate (0..1). */
export const REGION_CONFIDENCE = 0.1;

/** Ticket lifetime when `POST /v1/session` does not ask for one, s. */
export const SESSION_TTL_S_DEFAULT = 600;
/** Longest ticket lifetime a caller may ask for, s. */
export const SESSION_TTL_S_MAX = 86_400;
/** Default per-session packet rate limit each way, packets/s. */
export const SESSION_PACKETS_PER_SECOND_DEFAULT = 2_000;
/** Default per-session byte rate limit each way, bytes/s. */
export const SESSION_BYTES_PER_SECOND_DEFAULT = 2_000_000;
/** Lowest per-session byte rate limit a caller may ask for (`POST /v1/session` `limits.bytesPerSecond`) or configure, bytes/s. */
export const SESSION_BYTES_PER_SECOND_MIN = 1_000;
/** Sessions whose expiry this replica remembers (for precise revocation lifetimes); beyond it the longest TTL is assumed. */
export const SESSION_MEMORY_MAX = 200_000;


/** Points kept per relay for the dashboard's time-series graphs. */
export const HISTORY_POINTS = 150;
/** Interval between time-series points, ms (150 points × 2 s = the last 5 minutes). */
export const HISTORY_INTERVAL_MS_DEFAULT = 2_000;

/** Interval of the store's sweep of expired entries, ms. */
export const STORE_PRUNE_INTERVAL_MS = 10_000;

/** Refusals of the fleet secret logged at most once per this long per source address and claimed relay id, ms. */
export const FLEET_REFUSAL_LOG_INTERVAL_MS = 60_000;
/** (address, relay id) pairs the refusal log throttle remembers. */
export const FLEET_REFUSAL_SOURCES_MAX = 10_000;

// The API contract's limits are proto's (declared once with the contract); re-exported for the core's modules.
export { REVOCATION_CURSOR_OVERLAP_MS } from '../../../proto/src/api/contract.js';

/** A join token works for this long when the admin does not say, ms (1 hour). */
export const JOIN_TOKEN_TTL_MS_DEFAULT = 3_600_000;
/** Shortest join token lifetime an admin may ask for, ms. */
export const JOIN_TOKEN_TTL_MS_MIN = 60_000;
/** Longest join token lifetime an admin may ask for, ms (7 days). */
export const JOIN_TOKEN_TTL_MS_MAX = 604_800_000;
/**
 * Nonces of signed relay requests remembered per relay (each for the signature window,
 * 2 × 60 s): beyond it the relay's requests are refused 429 until old ones age out.
 * A relay sends a few requests a second at most; this is ample.
 */
export const RELAY_NONCES_PER_RELAY_MAX = 4_096;
