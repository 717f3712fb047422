/**
 * The HTTP driver: serves {@link CoordinatorService.handle} on `node:http` with
 * keep-alive, a body size limit and JSON answers, and owns the store it opened.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { BODY_BYTES_MAX } from './constants.js';
import type { CoordinatorSettings } from './config.js';
import { corsDecision } from './cors.js';
import { CoordinatorService, type ApiResponse } from './service.js';
import { openStore } from './store/index.js';
import type { Store } from './store/store.js';

/** A coordinator that is listening. */
export interface RunningCoordinator {
  /** `http://host:port` it listens on (IPv6 in brackets). */
  readonly url: string;
  /** The bound port. */
  readonly port: number;
  readonly service: CoordinatorService;
  readonly store: Store;
  /** Stops listening, ends long polls, closes the store; idempotent. */
  close(): Promise<void>;
}

/** Options of {@link startCoordinator}. */
export interface StartCoordinatorInit {
  readonly settings: CoordinatorSettings;
  readonly logger: Logger;
  /** A store to use instead of opening `settings.store` (tests). The coordinator closes it on close. */
  readonly store?: Store;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

function send(res: ServerResponse, response: ApiResponse, extraHeaders?: Readonly<Record<string, string>>): void {
  if (res.destroyed) return;
  // With a Content-Length, Node writes the head and the body in one piece (no chunked
  // framing): one write per answer, which matters at thousands of routes per second.
  if (response.text !== undefined) {
    res.writeHead(response.status, { 'content-type': response.contentType ?? 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(response.text), ...extraHeaders });
    res.end(response.text);
    return;
  }
  const body = response.jsonBody ?? JSON.stringify(response.json ?? null);
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  // The common case (no CORS headers) without building a header object per answer.
  if (extraHeaders === undefined) res.writeHead(response.status, ['content-type', JSON_HEADERS['content-type'], 'cache-control', JSON_HEADERS['cache-control'], 'content-length', String(length)]);
  else res.writeHead(response.status, { ...JSON_HEADERS, 'content-length': length, ...extraHeaders });
  res.end(body);
}

/** The body of a request that declares none (no Content-Length, no Transfer-Encoding): GETs, nearly always. */
const NO_BODY = new Uint8Array(0);

/**
 * A request target in the plain form `/seg/seg…?query` (non-empty segments of ASCII
 * letters, digits, `_`, `-` in the path; printable ASCII but `#` in the query): its path and query are taken
 * without a WHATWG URL parse, which costs more than the rest of a cached route answer.
 * Anything else (dot segments, percent-escapes in the path, absolute-form) goes through
 * `new URL`, which normalizes it.
 */
const PLAIN_TARGET = /^\/(?:[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*\/?)?(?:\?[\x21\x22\x24-\x7e]*)?$/;

/** Path and query of a request target (`req.url`), as `new URL(target, base)` gives them; undefined when it is not a valid URL. */
export function parseTarget(target: string): { path: string; query: URLSearchParams } | undefined {
  if (PLAIN_TARGET.test(target)) {
    const q = target.indexOf('?');
    // The '?' is passed along: URLSearchParams drops one leading '?', and a query may start with another ('/x??a').
    return q === -1 ? { path: target, query: new URLSearchParams() } : { path: target.slice(0, q), query: new URLSearchParams(target.slice(q)) };
  }
  try {
    const url = new URL(target, 'http://coordinator');
    return { path: url.pathname, query: url.searchParams };
  } catch {
    return undefined;
  }
}

/** Paths whose handler waits on the request's abort signal (the revocation long poll); only these get an AbortController. */
const ABORTABLE_PATHS: ReadonlySet<string> = new Set(['/v1/revocations']);

/**
 * Reads the body; resolves undefined as soon as it passes {@link BODY_BYTES_MAX} (the
 * caller answers 413 and closes the connection, so nothing more of it is read).
 */
function readBody(req: IncomingMessage): Promise<Uint8Array | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > BODY_BYTES_MAX) {
        req.off('data', onData);
        req.pause();
        chunks.length = 0;
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** After a 413, at most this much more of the body is read and discarded (so the client can still read the answer) before the connection is cut, bytes. */
const LINGER_BYTES_MAX = 1024 * 1024;
/** …and for at most this long, ms. */
const LINGER_MS = 1_000;

/**
 * Answers 413 and closes the connection: the rest of an oversized body is not waited
 * for. A short, bounded linger ({@link LINGER_BYTES_MAX}, {@link LINGER_MS}) discards
 * what is already in flight so that the client's TCP stack is not reset before it
 * reads the answer; then the socket is destroyed.
 */
function refuseTooLarge(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket;
  const cut = (): void => {
    socket.destroy();
  };
  const timer = setTimeout(cut, LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  let discarded = 0;
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_BYTES_MAX) cut();
  });
  req.resume();
  if (res.destroyed) {
    cut();
    return;
  }
  const json = JSON.stringify({ error: { code: 'body_too_large', field: '<body>', reason: `more than ${BODY_BYTES_MAX} bytes`, message: `<body>: more than ${BODY_BYTES_MAX} bytes` } });
  res.shouldKeepAlive = false;
  res.writeHead(413, { ...JSON_HEADERS, connection: 'close' });
  res.end(json);
}

/** Answers 400 for a request target that is not a valid URL. */
const BAD_URL: ApiResponse = { status: 400, json: { error: { code: 'invalid_field', field: '<url>', reason: 'the request target is not a valid URL', message: '<url>: the request target is not a valid URL' } } };

/** Opens the store, loads it, and listens. Resolves once listening. */
export async function startCoordinator(init: StartCoordinatorInit): Promise<RunningCoordinator> {
  const { settings, logger } = init;
  const store = init.store ?? (await openStore(settings.store, { keyPrefix: settings.redisKeyPrefix, logger, ...(settings.fleet.identitiesFile !== undefined ? { identitiesFile: settings.fleet.identitiesFile } : {}) }));
  const service = new CoordinatorService({ settings, store, logger });
  await service.loadFromStore();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const declared = req.headers['content-length'];
    let body: Uint8Array | undefined;
    if (declared === undefined && req.headers['transfer-encoding'] === undefined) body = NO_BODY;
    else {
      try {
        body = Number(declared) > BODY_BYTES_MAX ? undefined : await readBody(req);
      } catch {
        res.destroy();
        return;
      }
    }
    if (body === undefined) {
      refuseTooLarge(req, res);
      return;
    }
    const target = parseTarget(req.url ?? '/');
    if (target === undefined) {
      send(res, BAD_URL);
      return;
    }
    // CORS (http.corsOrigins) on the browser-facing endpoints only; a preflight is answered here.
    const cors = corsDecision(settings.http.corsOrigins, req.method ?? 'GET', target.path, req.headers.origin);
    if (cors.preflight !== undefined) {
      send(res, cors.preflight.response, cors.preflight.headers);
      return;
    }
    let signal: AbortSignal | undefined;
    if (ABORTABLE_PATHS.has(target.path)) {
      const controller = new AbortController();
      signal = controller.signal;
      // Only a client that leaves before its answer needs the abort (it ends a long poll).
      res.on('close', () => {
        if (!res.writableFinished) controller.abort();
      });
    }
    const response = await service.handle({
      method: req.method ?? 'GET',
      path: target.path,
      query: target.query,
      authorization: req.headers.authorization,
      forwardedFor: typeof req.headers['x-forwarded-for'] === 'string' ? req.headers['x-forwarded-for'] : undefined,
      body,
      remoteAddress: req.socket.remoteAddress ?? '',
      ...(signal !== undefined ? { signal } : {}),
    });
    send(res, response, cors.headers);
  };
  const server: Server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 120_000 }, (req, res) => {
    // Nothing a request carries may take the process down: anything thrown ends that request only.
    handle(req, res).catch((error: unknown) => {
      logger.error({ event: 'requestFailed', err: error, url: req.url }, 'request handler failed');
      try {
        if (!res.headersSent) send(res, { status: 500, json: { error: { code: 'internal', reason: 'internal error', message: 'internal error' } } });
        else res.destroy();
      } catch {
        res.destroy();
      }
    });
  });
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.listen.port, settings.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' || address.address.includes(':') ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port: address.port,
    service,
    store,
    close() {
      closing ??= (async () => {
        service.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          // Long polls were just woken; anything still open after this is cut.
          setTimeout(() => server.closeAllConnections(), 500).unref();
        });
        await store.close();
      })();
      return closing;
    },
  };
}
