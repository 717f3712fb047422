/**
 * Every default and bound of the SDK in one place; the README's tables read from here.
 * Units are in the names.
 */

/** Candidates the SDK probes at most (the coordinator's best first): a handful, not the fleet. */
export const PROBED_CANDIDATES_MAX = 5;
/** Probes sent to each candidate at start, spread {@link PROBE_INITIAL_SPACING_MS} apart (staggered per relay). */
export const PROBE_INITIAL_COUNT = 5;
/** Spacing of the first probes to one relay, ms. */
export const PROBE_INITIAL_SPACING_MS = 40;
/** Probe period of the current relay, ms. The replies double as its liveness signal, so this bounds failure detection. */
export const PROBE_CURRENT_INTERVAL_MS_DEFAULT = 100;
/** Probe period of the warm backup, ms. */
export const PROBE_BACKUP_INTERVAL_MS_DEFAULT = 250;
/** Probe period of the other candidates, ms: occasionally, so a better relay can still be noticed. */
export const PROBE_OTHER_INTERVAL_MS_DEFAULT = 5_000;
/** A probe not answered within this long counts as lost, ms. */
export const PROBE_TIMEOUT_MS = 1_000;
/** Probes outstanding at most (older ones are judged lost early). */
export const PROBES_OUTSTANDING_MAX = 256;

/** Silence from the current relay after which upstream moves to the backup (once the backup has answered since), at least, ms. */
export const SUSPECT_AFTER_MS_MIN = 150;
/** Silence after which the current relay is judged dead and the backup takes over, at least, ms. */
export const DEAD_AFTER_MS_MIN = 450;

/**
 * Backup probe periods of silence, at least, that judge the backup dead (its session
 * is then closed and another relay's opened). Only probe replies and keepalive answers
 * come from an idle backup, so its silence is counted in probes: on a lossy last mile
 * (10 % round-trip loss) three lost in a row happen about once in a thousand probes,
 * every few minutes at 4 probes/s, and each cost a session; six in a row, about once in
 * a million. A backup that is really dead costs nothing meanwhile: a failover goes to
 * a relay that answered since the current one fell silent.
 */
export const BACKUP_DEAD_AFTER_PROBES = 6;
/** A session open is retransmitted this often until answered, ms. */
export const OPEN_RETRY_MS = 250;
/** Least time between opens sent at once in answer to a relay's `sessionRetry` (cookie), ms; other opens keep {@link OPEN_RETRY_MS}. */
export const RETRY_ANSWER_MIN_MS = 50;
/** First wait before a relay that refused the session (draining, full) is asked again, ms; doubles per refusal. */
export const REFUSED_RETRY_MS_MIN = 1_000;
/** Longest wait between such retries, ms. */
export const REFUSED_RETRY_MS_MAX = 30_000;
/** Unanswered opens after which the relay counts as unreachable. */
export const OPEN_ATTEMPTS_MAX = 8;
/** `connect()` gives up when no session is open after this long, ms. */
export const CONNECT_TIMEOUT_MS_DEFAULT = 5_000;
/** A session that sent nothing for this long gets a keepalive (a repeated open, which the relay answers), ms: below the relay's 30 s minimum idle timeout. */
export const KEEPALIVE_MS = 10_000;
/** Sessions on relays that are neither current nor backup are closed after this long, so late downstream packets still arrive, ms. */
export const LINGER_MS = 2_000;
/** Path reports go to the coordinator this often, ms. */
export const REPORT_INTERVAL_MS_DEFAULT = 30_000;
/** Application datagrams queued at most while no session is open yet. */
export const QUEUE_BEFORE_OPEN_MAX = 64;
/**
 * FEC modes a client offers when the app names none, best first: the adaptive sliding
 * window (`sw`), then spaced copies for relays that predate it.
 */
export const FEC_MODES_DEFAULT: readonly string[] = ['sw', 'dup', 'rs', 'off'];
/** Largest application datagram the tunnel carries with FEC, bytes (the relay's shard limit minus the length prefix). */
export const TUNNEL_PAYLOAD_BYTES_MAX = 1400;
/** Largest FEC extra bandwidth upstream, as a fraction of the data: game traffic is small (60 × 100 B/s), so two extra copies cost little and reach 0.1 % residual at 10 % loss. */
export const UPSTREAM_FEC_OVERHEAD_MAX = 2;
/** `connect()` gives up on a ticket provider that has not answered after this long, ms. */
export const TICKET_PROVIDER_TIMEOUT_MS_DEFAULT = 10_000;
/** Candidate list refresh period while connected, ms. */
export const CANDIDATES_REFRESH_MS_DEFAULT = 60_000;
/** Coordinator request timeout of `connect()` (`coordinatorTimeoutMs`), ms. */
export const COORDINATOR_TIMEOUT_MS_DEFAULT = 3_000;

/** Shortest probe period of a relay judged dead (silent, or its session failed), ms: the first re-probes come this soon. */
export const RECOVERY_PROBE_INTERVAL_MS_MIN = 250;
/**
 * Longest probe period of a dead relay while no relay answers at all (the client's own
 * link is probably down, and whichever relay answers first ends the outage), ms.
 * Between {@link RECOVERY_PROBE_INTERVAL_MS_MIN} and this, the period is half the time
 * since the relay went silent: 250, 250, 375, 560, 840, 1000, 1000… ms.
 */
export const RECOVERY_PROBE_INTERVAL_MS_ALL_DARK_MAX = 1_000;
/** Longest probe period of a dead relay while another relay carries traffic, ms (the other candidates' period). */
export const RECOVERY_PROBE_INTERVAL_MS_MAX = PROBE_OTHER_INTERVAL_MS_DEFAULT;
/**
 * After a blackout of every relay, how long the silent current relay gets to answer
 * once another relay has, before the selector moves to that one, ms. The current
 * relay still holds the session and is probed every 100 ms, so it usually answers
 * first or within this; moving costs a switch and, when the other relay's session was
 * dropped during the outage, a handshake.
 */
export const RECOVERY_GRACE_MS = 300;
/**
 * After the current relay answers again following a silence that made it suspect (or
 * judged it dead), if its session has delivered nothing within `max(this, 3 × SRTT)`,
 * the relay probably restarted during the outage and lost the session (and with small
 * datagrams it cannot say so), so the session's open is re-sent and its accept gets a
 * fresh FEC receiver, ms. Harmless when wrong: nothing has come since the outage, so a
 * fresh receiver cannot deliver anything twice, and the session stays usable meanwhile.
 */
export const RECOVERY_SESSION_CHECK_MS = 300;
/** Opens a session check re-sends (one per check period) before reopening the session outright. */
export const SESSION_RECHECK_OPENS_MAX = 3;
