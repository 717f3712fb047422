/** Defaults and limits of `slipstream sim proxy`, in one place. */

/** Where the HTTP API listens when `--listen` is not given (toxiproxy's port, on loopback only). */
export const PROXY_API_LISTEN_DEFAULT = '127.0.0.1:8474';
/** Version prefix of every API route. */
export const PROXY_API_PREFIX = '/v1';
/** Largest request body, bytes (room for an inline trace). */
export const PROXY_API_BODY_BYTES_MAX = 8 * 1024 * 1024;
/** Most proxies one process runs. */
export const PROXIES_MAX = 1000;
/** Proxy names: letters, digits, `.`, `_`, `-`, starting with a letter or digit, 1–64 characters. */
export const PROXY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** UDP: a client flow (and its upstream socket) closes after this long without traffic, ms. */
export const UDP_IDLE_TIMEOUT_MS_DEFAULT = 60_000;
/** UDP: bounds of `idleTimeoutMs`, ms. */
export const UDP_IDLE_TIMEOUT_MS_MIN = 1000;
/** Upper bound of `idleTimeoutMs`, ms (one hour). */
export const UDP_IDLE_TIMEOUT_MS_MAX = 3_600_000;
/** UDP: most client flows per proxy (each holds an upstream socket); datagrams of further clients are dropped. */
export const UDP_FLOWS_MAX = 10_000;
/** UDP: socket receive buffer asked of the kernel, bytes (the kernel may cap it at net.core.rmem_max). */
export const UDP_RECV_BUFFER_BYTES = 4 * 1024 * 1024;
/**
 * A packet due within this many ms is sent now rather than after one more timer tick:
 * Node's timers have 1 ms granularity, so waiting for a due time 0.3 ms away costs up
 * to a whole millisecond, while sending it 0.5 ms early at most is the smaller error.
 */
export const DELIVERY_SLACK_MS = 0.5;

/** TCP: queued bytes per direction and connection above which the proxy stops reading the sender. */
export const TCP_QUEUE_BYTES_HIGH = 1024 * 1024;
/** TCP: queued bytes below which reading resumes. */
export const TCP_QUEUE_BYTES_LOW = 256 * 1024;
/** TCP: largest `sliceBytes`. */
export const TCP_SLICE_BYTES_MAX = 1024 * 1024;
/** TCP: largest `sliceDelayMs` and stall duration, ms (one hour). */
export const TCP_DELAY_MS_MAX = 3_600_000;
/** TCP: most simultaneous connections per proxy; further ones are refused (reset). */
export const TCP_CONNECTIONS_MAX = 10_000;
