/**
 * The HTTP driver: serves {@link CoordinatorService.handle} on `node:http` with
 * keep-alive, a body size limit and JSON answers, and owns the store it opened.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { BODY_BYTES_MAX } from './constants.js';
import type { CoordinatorSettings } from './config.js';
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

function send(res: ServerResponse, response: ApiResponse): void {
  if (res.destroyed) return;
  if (response.text !== undefined) {
    res.writeHead(response.status, { 'content-type': response.contentType ?? 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(response.text);
    return;
  }
  res.writeHead(response.status, JSON_HEADERS);
  res.end(JSON.stringify(response.json ?? null));
}

function readBody(req: IncomingMessage): Promise<Uint8Array | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > BODY_BYTES_MAX) {
        resolve(undefined);
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Opens the store, loads it, and listens. Resolves once listening. */
export async function startCoordinator(init: StartCoordinatorInit): Promise<RunningCoordinator> {
  const { settings, logger } = init;
  const store = init.store ?? (await openStore(settings.store, { keyPrefix: settings.redisKeyPrefix, logger }));
  const service = new CoordinatorService({ settings, store, logger });
  await service.loadFromStore();
  const server: Server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 120_000 }, (req, res) => {
    void (async () => {
      const controller = new AbortController();
      // Only a client that leaves before its answer needs the abort (it ends a long poll); aborting creates a DOMException, so not for every request.
      res.on('close', () => {
        if (!res.writableFinished) controller.abort();
      });
      let body: Uint8Array | undefined;
      try {
        body = await readBody(req);
      } catch {
        res.destroy();
        return;
      }
      if (body === undefined) {
        send(res, { status: 413, json: { error: { code: 'body_too_large', field: '<body>', reason: `more than ${BODY_BYTES_MAX} bytes`, message: `<body>: more than ${BODY_BYTES_MAX} bytes` } } });
        return;
      }
      const url = new URL(req.url ?? '/', 'http://coordinator');
      const response = await service.handle({
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        authorization: req.headers.authorization,
        forwardedFor: typeof req.headers['x-forwarded-for'] === 'string' ? req.headers['x-forwarded-for'] : undefined,
        body,
        remoteAddress: req.socket.remoteAddress ?? '',
        signal: controller.signal,
      });
      send(res, response);
    })();
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
