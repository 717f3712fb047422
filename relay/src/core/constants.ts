/**
 * Every default and bound of the relay in one place. Config keys, the README table
 * and the validation messages all read from here. Units are in the names.
 */

/** Default idle timeout of an L4 UDP flow: 60 s, as the issue asks. */
export const UDP_IDLE_TIMEOUT_MS_DEFAULT = 60_000;
/** Default idle timeout of an L4 TCP connection (no bytes either way): 10 min. */
export const TCP_IDLE_TIMEOUT_MS_DEFAULT = 600_000;
/** Client bytes a TCP connection holds while its origin connects; beyond it the client is not read (until the connect). */
export const TCP_EARLY_BYTES_MAX = 65_536;
/** Default idle timeout of a tunnel session. */
export const TUNNEL_IDLE_TIMEOUT_MS_DEFAULT = 60_000;
/** Default TCP origin connect timeout (rules[i].connectTimeoutMs): a blackholed origin must not hold a client's slot. */
export const TCP_CONNECT_TIMEOUT_MS_DEFAULT = 3_000;
/** Shortest TCP connect timeout accepted, ms. */
export const TCP_CONNECT_TIMEOUT_MS_MIN = 100;
/** Longest TCP connect timeout accepted, ms. */
export const TCP_CONNECT_TIMEOUT_MS_MAX = 60_000;
/** Shortest idle timeout accepted: 30 s (NATs keep UDP mappings about that long). */
export const IDLE_TIMEOUT_MS_MIN = 30_000;
/** Longest idle timeout accepted: 1 h. */
export const IDLE_TIMEOUT_MS_MAX = 3_600_000;

/** Most sessions (L4 flows, TCP connections and tunnel sessions together). */
export const SESSIONS_MAX_DEFAULT = 100_000;
/**
 * Idle timeout of an L4 UDP flow whose origin has not answered yet, ms. conntrack
 * gives an unreplied UDP entry 30 s against 120 s once it has seen both ways; a game
 * server answers within a round trip, so 5 s is generous and a spoofed flood's flows
 * (one datagram each, never answered) leave quickly even when nothing needs their room.
 */
export const UNREPLIED_IDLE_TIMEOUT_MS_DEFAULT = 5_000;
/** Shortest accepted `limits.unrepliedIdleTimeoutMs`, ms. */
export const UNREPLIED_IDLE_TIMEOUT_MS_MIN = 1_000;
/** Most sessions one source IP may hold (CGNAT puts many players behind one address). */
export const SESSIONS_PER_SOURCE_MAX_DEFAULT = 256;
/** New sessions (and ticket verifications) one source IP may start per second. */
export const NEW_SESSIONS_PER_SOURCE_PER_SECOND_DEFAULT = 50;
/** Packets per second one source IP may send through the relay. */
export const SOURCE_PACKETS_PER_SECOND_DEFAULT = 100_000;
/** Bytes per second one source IP may send through the relay (≈ 800 Mbit/s). */
export const SOURCE_BYTES_PER_SECOND_DEFAULT = 100_000_000;
/** Packets per second per session, each way (tickets may lower it). */
export const SESSION_PACKETS_PER_SECOND_DEFAULT = 20_000;
/** Bytes per second per session, each way (≈ 160 Mbit/s; tickets may lower it). */
export const SESSION_BYTES_PER_SECOND_DEFAULT = 20_000_000;
/** Unauthenticated packets (probes, session opens, path changes) one source may send per second. */
export const UNAUTHENTICATED_PACKETS_PER_SECOND_DEFAULT = 200;
/** Token bucket depth, as the time at full rate it holds: bursts up to this many ms worth pass. */
export const BURST_MS_DEFAULT = 500;

/** Default health-check period per origin. */
export const HEALTH_INTERVAL_MS_DEFAULT = 2_000;
/** Default wait for a health-check answer; must be below the interval. */
export const HEALTH_TIMEOUT_MS_DEFAULT = 1_000;
/** Consecutive failed checks that take an origin out. */
export const HEALTH_FAILURES_TO_DOWN_DEFAULT = 1;
/** Consecutive good checks that bring it back. */
export const HEALTH_SUCCESSES_TO_UP_DEFAULT = 2;

/** Default SIGTERM drain deadline. */
export const DRAIN_TIMEOUT_MS_DEFAULT = 30_000;
/** How often idle sessions and stale per-source state are swept. */
export const SWEEP_INTERVAL_MS = 1_000;
/** Per-source state with no sessions is forgotten after this long without packets. */
export const SOURCE_IDLE_MS = 60_000;
/**
 * Default interval of aggregated refusal and drop log lines (`logAggregateIntervalMs`):
 * each reason logs at most one line per interval, with the count and a sample, so a
 * flood of refusable packets cannot inflate the log, ms.
 */
export const LOG_AGGREGATE_INTERVAL_MS_DEFAULT = 10_000;

/**
 * SO_RCVBUF of listen and tunnel sockets by default, bytes (`socketReceiveBufferBytes`):
 * a cold burst of 15,000 new flows/s (5,000 datagrams) into one listener lost 1,077–4,282
 * of them at the OS default (208 KiB), 0–87 at 1 MiB and none at 4 MiB, on dgram and
 * batched alike (loopback, 2 busy vCPUs). The kernel caps it at `net.core.rmem_max`; the
 * relay warns at start when it got less (relay/README.md says how to raise it).
 */
export const SOCKET_RECEIVE_BUFFER_BYTES_DEFAULT = 4 * 1024 * 1024;
/** How often the revocation file is checked for changes. */
export const REVOCATION_POLL_MS_DEFAULT = 1_000;
/**
 * Default `tunnel.revocationMaxAgeMs`: a relay whose coordinator feed has not answered for
 * this long (5 min) holds a stale revocation list, ms. Well above the feed's long-poll wait
 * (20 s) and its longest backoff (5 s), so a reachable coordinator never lets it go stale;
 * short enough that a relay cut off from revocations stops taking sessions soon.
 */
export const REVOCATION_MAX_AGE_MS_DEFAULT = 300_000;
/** Smallest `tunnel.revocationMaxAgeMs`, ms (the feed's long poll then waits a quarter of it). */
export const REVOCATION_MAX_AGE_MS_MIN = 1_000;

/** Pending path challenges kept per session (a spoofer cannot starve the real client's). */
export const PATH_CHALLENGES_PENDING_MAX = 4;
/** A path challenge is answered within this long or forgotten. */
export const PATH_CHALLENGE_TIMEOUT_MS = 5_000;

/** Most ports one rule's listen range may span. */
export const PORT_RANGE_PORTS_MAX = 1024;
/** Largest datagram forwarded, bytes (IPv4 UDP payload maximum). */
export const DATAGRAM_BYTES_MAX = 65_507;
/** Buckets of the stateless rate limiter for unauthenticated packets (a power of two; 32 KiB of state per 2048). */
export const UNAUTHENTICATED_BUCKETS = 4096;

/**
 * Ticket (Ed25519) verifications per second over every source before session opens
 * must carry a cookie (see tunnel/cookie.ts): one verification costs about 50–150 µs
 * of CPU, so 500 per second is at most ~7 % of a core, and a relay restart's
 * reconnecting players (each opens once) are re-admitted at that rate. (1,000/s cost a
 * live session 3–42 % of its packets in 3 of 7 flood runs on a busy 2-core host;
 * 500/s, none in 3.)
 */
export const TICKET_VERIFICATIONS_PER_SECOND_DEFAULT = 500;
/**
 * Depth of the verification budget, as the time at full rate it holds, ms: a burst of
 * opens (a reconnect wave) gets this many ms' worth verified at once, the rest a
 * cookie round trip. Short, so that a flood's first moment costs the live sessions a
 * few tens of ms of CPU at most (500/s × 100 ms = 50 verifications ≈ 3–8 ms).
 */
export const TICKET_VERIFICATIONS_BURST_MS = 100;
/** Ticket verifications per second one source IP may cause (the same as its new sessions per second). */
export const TICKET_VERIFICATIONS_PER_SOURCE_PER_SECOND_DEFAULT = 50;
/**
 * Session-open cookies: the secret is drawn afresh every this long and the previous
 * one is still accepted, so a cookie is good for 2–4 min (as WireGuard's), ms.
 */
export const COOKIE_KEY_ROTATE_MS = 120_000;
/** Once over the verification budget, cookies are asked for until opens without one have stayed within it this long, ms. */
export const COOKIE_LOAD_HOLD_MS = 2_000;
/** Bytes of a session-open cookie (a truncated HMAC-SHA256: 128 bits cannot be guessed). */
export const COOKIE_BYTES = 16;

/** Default heartbeat period to the coordinator (the issue asks for about one a second; the coordinator's interval caps it). */
export const FLEET_HEARTBEAT_INTERVAL_MS_DEFAULT = 1_000;
/** Default probe period per mesh/origin target: 4 probes/s, "a few times per second". */
export const FLEET_PROBE_INTERVAL_MS_DEFAULT = 250;
/** Shortest probe period accepted (a 100-relay mesh at 50 ms is 2,000 probes/s of 48 bytes). */
export const FLEET_PROBE_INTERVAL_MS_MIN = 50;
/** Default wait for a probe answer before counting it lost. */
export const FLEET_PROBE_TIMEOUT_MS_DEFAULT = 1_000;
/** Default period of path reports to the coordinator. */
export const FLEET_REPORT_INTERVAL_MS_DEFAULT = 2_000;
/** Default period of re-reading the fleet list (which relays to probe). */
export const FLEET_MESH_REFRESH_MS_DEFAULT = 5_000;
/**
 * Default cap on the adaptive controller's downstream FEC bandwidth, as a fraction of
 * the data (2 = two extra copies' worth): the same cap the SDK uses upstream, since
 * game traffic is small and 10 % last-mile loss needs about that to reach 0.1 %.
 */
export const FEC_OVERHEAD_MAX_DEFAULT = 2;

/**
 * Exit relays. An entry forwarding a session to its exit re-sends the session's open
 * (answered by a small accept) when it has carried upstream traffic but heard nothing
 * from the exit for this long, so a one-way flow still proves the exit alive, ms.
 */
export const EXIT_KEEPALIVE_MS = 250;
/**
 * Default silence (while there is traffic to carry) after which an entry judges its
 * exit dead and opens its own origin-facing socket, ms: long enough that one lost
 * keepalive and its answer do not trigger it (4 keepalive periods), short enough that
 * the player's blip stays around a second.
 */
export const EXIT_DEAD_AFTER_MS_DEFAULT = 1_000;
/** An exit that has not accepted a forwarded open within this long is judged dead and the entry serves the session itself, ms. */
export const EXIT_OPEN_TIMEOUT_MS = 600;
/** Entry paths an exit keeps validated per session (current and warm backup entries, a direct client, a spare). */
export const EXIT_PATHS_MAX = 4;
/** How often the entry checks its exits' liveness while it forwards sessions, ms. */
export const EXIT_CHECK_INTERVAL_MS = 50;

/**
 * L4 TCP per source address (YAML `tcp:`; see `TcpLimitsSpec`). Open TCP connections per
 * source: half of `limits.sessionsPerSourceMax`'s default, so one address (a CGNAT
 * included) has room while a few cannot hold the whole table.
 */
export const TCP_CONNECTIONS_PER_SOURCE_MAX_DEFAULT = 128;
/**
 * Connections per source that have not moved a byte yet (either way): what a slowloris
 * holds. A real player's client sends (or its origin answers) within a round trip.
 */
export const TCP_SILENT_PER_SOURCE_MAX_DEFAULT = 16;
/** A connected TCP connection with no byte either way this long after its origin connected is ended (`no first byte`), ms. */
export const TCP_FIRST_BYTE_TIMEOUT_MS_DEFAULT = 10_000;

/**
 * Endpoint ports at and above this are not UDP ports but driver-assigned transports
 * (a WebRTC peer connection: relay/src/webrtc.ts): the address is the peer's real IP,
 * so every per-source limit applies to it, and the port (above any real one) names
 * the peer connection. Such a source address is proven (ICE and DTLS, and the
 * signaling request's TCP handshake), so its opens need no cookie.
 */
export const TRANSPORT_PORT_BASE = 65_536;
