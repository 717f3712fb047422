/**
 * Turning the operating system's errors (`EADDRINUSE`, `ECONNREFUSED`, …) into words a
 * person can act on. Node reports them as `Error`s with an errno `code`, a `syscall` and,
 * for sockets, the `address` and `port`; `fetch` (undici) hides them one level down as
 * `error.cause`, under a bare "fetch failed". Both the CLI's last-resort handler and the
 * coordinator client read them through here, so a port in use or a refused connection is
 * one line that names the address and the cause, never a stack trace.
 */

/** What Node attaches to a system error (all optional: not every error has each). */
interface ErrnoLike {
  code?: unknown;
  syscall?: unknown;
  address?: unknown;
  port?: unknown;
  hostname?: unknown;
  message?: unknown;
}

/** Readable causes of the errno codes people meet when listening or connecting. */
const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this machine',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'name not found',
  EAI_AGAIN: 'name lookup failed for now (DNS unreachable)',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed by the other side',
  UND_ERR_CONNECT_TIMEOUT: 'connect timeout',
  UND_ERR_HEADERS_TIMEOUT: 'timed out waiting for the response headers',
  UND_ERR_BODY_TIMEOUT: 'timed out waiting for the response body',
  UND_ERR_SOCKET: 'connection closed by the other side',
  ERR_INVALID_URL: 'not a valid URL',
};

/** The readable cause of an errno `code` (`ECONNREFUSED` → `connection refused`); the code itself when unknown. */
export function reasonOfCode(code: string): string {
  return REASONS[code] ?? code;
}

function isErrno(value: unknown): value is ErrnoLike & Error {
  return value instanceof Error && typeof (value as ErrnoLike).code === 'string';
}

/**
 * The innermost system error under `error`, following `cause` (fetch wraps its socket
 * error one or two levels down; an `AggregateError` from happy-eyeballs carries several,
 * the first is taken). Undefined when there is none.
 */
export function systemErrorOf(error: unknown): (ErrnoLike & Error) | undefined {
  let current: unknown = error;
  let found: (ErrnoLike & Error) | undefined;
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    if (isErrno(current)) found = current;
    const errors = (current as { errors?: unknown }).errors;
    current = Array.isArray(errors) && errors.length > 0 ? errors[0] : (current as { cause?: unknown }).cause;
  }
  return found;
}

/**
 * Why a request failed, in a few words with the code: `connection refused
 * (ECONNREFUSED)`, `name not found (ENOTFOUND)`, `timed out (…)`. Falls back on the
 * error's own message when no system error is inside.
 */
export function describeNetworkError(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return `timed out (${error.name})`;
  const sys = systemErrorOf(error);
  if (sys !== undefined) return `${reasonOfCode(String(sys.code))} (${String(sys.code)})`;
  // fetch refuses some requests itself (`bad port` for 1, 25, 6000…): its reason is the
  // innermost cause, under the bare "fetch failed".
  let inner: unknown = error;
  for (let depth = 0; depth < 5 && inner instanceof Error && inner.cause instanceof Error; depth++) inner = inner.cause;
  return inner instanceof Error ? inner.message : String(inner);
}

/**
 * One line for a socket that could not listen or bind (`listen` and `bind` syscalls),
 * naming the address: `cannot listen on 127.0.0.1:7400: address already in use
 * (EADDRINUSE); …`. Undefined for any other error, so callers fall through to their
 * own handling.
 */
export function describeListenError(error: unknown): string | undefined {
  const sys = systemErrorOf(error);
  if (sys === undefined || (sys.syscall !== 'listen' && sys.syscall !== 'bind')) return undefined;
  const code = String(sys.code);
  const host = typeof sys.address === 'string' ? sys.address : undefined;
  const where = host === undefined ? 'the address asked for' : `${host.includes(':') ? `[${host}]` : host}${typeof sys.port === 'number' ? `:${sys.port}` : ''}`;
  const hint =
    code === 'EADDRINUSE'
      ? '; another process holds it: stop that process or choose another address'
      : code === 'EADDRNOTAVAIL'
        ? '; use an address of this machine (or 0.0.0.0)'
        : code === 'EACCES'
          ? '; ports below 1024 need privileges: choose a port ≥ 1024'
          : '';
  return `cannot ${sys.syscall === 'bind' ? 'bind' : 'listen on'} ${where}: ${reasonOfCode(code)} (${code})${hint}`;
}
