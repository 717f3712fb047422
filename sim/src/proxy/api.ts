/**
 * The proxy's HTTP API (JSON over `node:http`, versioned under `/v1`):
 *
 * | method and path | body | answer |
 * |---|---|---|
 * | `GET /v1/health` | — | 200 `{status: "ok", proxies: N}` |
 * | `GET /v1/proxies` | — | 200 `[proxy…]` |
 * | `POST /v1/proxies` | a proxy definition | 201 proxy; 400 bad field; 409 name or address taken |
 * | `GET /v1/proxies/NAME` | — | 200 proxy; 404 |
 * | `DELETE /v1/proxies/NAME` | — | 204; 404 |
 * | `PUT /v1/proxies/NAME/impairments` | `{uplink?, downlink?}` or `{both}` | 200 proxy; 400; 404 |
 * | `DELETE /v1/proxies/NAME/impairments` | — | 200 proxy (both directions cleared) |
 * | `POST /v1/proxies/NAME/stall` | `{durationMs, direction?}` (tcp) | 200 proxy |
 * | `POST /v1/proxies/NAME/reset` | — (tcp) | 200 `{connectionsReset}` |
 * | `GET /v1/links` | — | 200 `[link…]` |
 * | `POST /v1/links` | a shared-link definition | 201 link; 400; 409 name taken |
 * | `GET /v1/links/NAME` | — | 200 link; 404 |
 * | `DELETE /v1/links/NAME` | — | 204; 404; 409 while proxies cross it |
 * | `PUT /v1/links/NAME/impairments` | `{uplink?, downlink?}` or `{both}` | 200 link (every member proxy crosses the new model); 400; 404 |
 * | `DELETE /v1/links/NAME/impairments` | — | 200 link (both directions cleared) |
 *
 * A UDP proxy whose definition names a shared link (`link: NAME`) crosses that link's
 * two directions instead of its own (see `shared-link.ts`); its own impairments
 * cannot be set (409 pointing at the link).
 *
 * Errors are `{error: {message, field, reason}}` (plus `code: SLIP_ERR_SIM_INVALID` on
 * 400), where `field` is the path of the offending key (`uplink.loss.p`).
 *
 * {@link ProxyApi.handle} is the whole API as a function of (method, path, body), so
 * it is tested without sockets; {@link startApiServer} binds it to `node:http`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ErrorCode } from '../../../proto/src/errors.js';
import { PROXY_API_BODY_BYTES_MAX, PROXY_API_PREFIX } from './constants.js';
import { checkImpairmentUpdate, checkLinkDefinition, checkProxyDefinition, checkStallRequest, formatFieldPath, formatHostPort, type FieldPath, type HostPort } from './definition.js';
import type { ProxyManager, ProxyResult } from './manager.js';

/** An API answer before serialization. */
export interface ApiResponse {
  readonly status: number;
  /** JSON body; undefined for 204. */
  readonly body?: unknown;
}

function errorResponse(status: number, path: FieldPath | undefined, reason: string): ApiResponse {
  const field = path === undefined ? undefined : formatFieldPath(path);
  const message = field === undefined ? reason : `${field}: ${reason}`;
  return { status, body: { error: { ...(status === 400 ? { code: ErrorCode.SimInvalid } : {}), message, field, reason } } };
}

function fromResult<T>(result: ProxyResult<T>): ApiResponse {
  if (!result.ok) return errorResponse(result.status, result.path, result.reason);
  return result.status === 204 ? { status: 204 } : { status: result.status, body: result.value };
}

function parseJson(body: string | undefined): { ok: true; value: unknown } | { ok: false; response: ApiResponse } {
  if (body === undefined || body.trim() === '') return { ok: false, response: errorResponse(400, [], 'empty body; expected a JSON object') };
  try {
    return { ok: true, value: JSON.parse(body) as unknown };
  } catch (error) {
    return { ok: false, response: errorResponse(400, [], `not valid JSON: ${(error as Error).message}`) };
  }
}

/** The API over a {@link ProxyManager}. */
export class ProxyApi {
  /**
   * @param manager the proxies
   * @param baseDir folder that relative trace file paths in requests are read from (the process's working directory)
   */
  constructor(
    private readonly manager: ProxyManager,
    private readonly baseDir: string,
  ) {}

  /** Answers one request. Never throws for any method, path or body. */
  async handle(method: string, rawPath: string, body: string | undefined): Promise<ApiResponse> {
    const path = rawPath.split('?', 1)[0]!;
    if (path !== PROXY_API_PREFIX && !path.startsWith(`${PROXY_API_PREFIX}/`)) return errorResponse(404, undefined, `no route ${path}; the API lives under ${PROXY_API_PREFIX}/ (see sim/README.md)`);
    let parts: string[];
    try {
      parts = path.slice(PROXY_API_PREFIX.length + 1).split('/').map(decodeURIComponent);
    } catch {
      return errorResponse(400, undefined, `bad percent-encoding in ${path}`);
    }
    if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
    const [first, name, action, ...rest] = parts;
    if (rest.length > 0) return errorResponse(404, undefined, `no route ${path}`);
    if (first === 'health' && name === undefined) {
      return method === 'GET' ? { status: 200, body: { status: 'ok', proxies: this.manager.names().length } } : methodNotAllowed(method, path, ['GET']);
    }
    if (first === 'links') return this.handleLinks(method, path, name, action, body);
    if (first !== 'proxies') return errorResponse(404, undefined, `no route ${path}; routes are ${PROXY_API_PREFIX}/health, ${PROXY_API_PREFIX}/proxies and ${PROXY_API_PREFIX}/links`);
    if (name === undefined) {
      if (method === 'GET') return { status: 200, body: this.manager.list() };
      if (method !== 'POST') return methodNotAllowed(method, path, ['GET', 'POST']);
      const json = parseJson(body);
      if (!json.ok) return json.response;
      const definition = checkProxyDefinition(json.value);
      if (!definition.ok) return errorResponse(400, definition.error.path, definition.error.reason);
      return fromResult(await this.manager.create(definition.value, this.baseDir));
    }
    if (action === undefined) {
      if (method === 'GET') return fromResult(this.manager.get(name));
      if (method === 'DELETE') return fromResult(await this.manager.delete(name));
      return methodNotAllowed(method, path, ['GET', 'DELETE']);
    }
    const protocol = this.manager.protocolOf(name);
    if (protocol === undefined) return errorResponse(404, undefined, `no proxy named '${name}'`);
    switch (action) {
      case 'impairments': {
        if (method === 'DELETE') return fromResult(this.manager.setImpairments(name, { uplink: {}, downlink: {} }, this.baseDir));
        if (method !== 'PUT') return methodNotAllowed(method, path, ['PUT', 'DELETE']);
        const json = parseJson(body);
        if (!json.ok) return json.response;
        const update = checkImpairmentUpdate(protocol, json.value);
        if (!update.ok) return errorResponse(400, update.error.path, update.error.reason);
        return fromResult(this.manager.setImpairments(name, update.value, this.baseDir));
      }
      case 'stall': {
        if (method !== 'POST') return methodNotAllowed(method, path, ['POST']);
        const json = parseJson(body);
        if (!json.ok) return json.response;
        const request = checkStallRequest(json.value);
        if (!request.ok) return errorResponse(400, request.error.path, request.error.reason);
        return fromResult(this.manager.stall(name, request.value));
      }
      case 'reset':
        return method === 'POST' ? fromResult(this.manager.reset(name)) : methodNotAllowed(method, path, ['POST']);
      default:
        return errorResponse(404, undefined, `no route ${path}; a proxy has /impairments, /stall and /reset`);
    }
  }

  /** `/v1/links[/NAME[/impairments]]`. */
  private handleLinks(method: string, path: string, name: string | undefined, action: string | undefined, body: string | undefined): ApiResponse {
    if (name === undefined) {
      if (method === 'GET') return { status: 200, body: this.manager.listLinks() };
      if (method !== 'POST') return methodNotAllowed(method, path, ['GET', 'POST']);
      const json = parseJson(body);
      if (!json.ok) return json.response;
      const definition = checkLinkDefinition(json.value);
      if (!definition.ok) return errorResponse(400, definition.error.path, definition.error.reason);
      return fromResult(this.manager.createLink(definition.value, this.baseDir));
    }
    if (action === undefined) {
      if (method === 'GET') return fromResult(this.manager.getLink(name));
      if (method === 'DELETE') return fromResult(this.manager.deleteLink(name));
      return methodNotAllowed(method, path, ['GET', 'DELETE']);
    }
    if (action !== 'impairments') return errorResponse(404, undefined, `no route ${path}; a shared link has /impairments`);
    if (method === 'DELETE') return fromResult(this.manager.setLinkImpairments(name, { uplink: {}, downlink: {} }, this.baseDir));
    if (method !== 'PUT') return methodNotAllowed(method, path, ['PUT', 'DELETE']);
    const json = parseJson(body);
    if (!json.ok) return json.response;
    const update = checkImpairmentUpdate('udp', json.value);
    if (!update.ok) return errorResponse(400, update.error.path, update.error.reason);
    return fromResult(this.manager.setLinkImpairments(name, update.value, this.baseDir));
  }
}

function methodNotAllowed(method: string, path: string, allowed: readonly string[]): ApiResponse {
  return errorResponse(405, undefined, `${method} is not allowed on ${path}; use ${allowed.join(' or ')}`);
}

/** A listening API server. */
export interface RunningApi {
  /** `http://host:port`. */
  readonly url: string;
  readonly address: HostPort;
  /** Stops listening and ends keep-alive connections; idempotent. */
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string | undefined | 'too-large'> {
  return new Promise((resolveBody, rejectBody) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > PROXY_API_BODY_BYTES_MAX) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => resolveBody(tooLarge ? 'too-large' : total === 0 ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', rejectBody);
  });
}

function send(res: ServerResponse, response: ApiResponse): void {
  if (res.destroyed) return;
  if (response.body === undefined) {
    res.writeHead(response.status, { 'cache-control': 'no-store' });
    res.end();
    return;
  }
  res.writeHead(response.status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(response.body)}\n`);
}

/** Serves `api` on `address` (port 0 picks a free port). Rejects when the address cannot be bound. */
export async function startApiServer(api: ProxyApi, address: HostPort, onError: (error: Error) => void): Promise<RunningApi> {
  const server: Server = createServer((req, res) => {
    readBody(req).then(
      async (body) => {
        if (body === 'too-large') return send(res, errorResponse(413, undefined, `the body is larger than ${PROXY_API_BODY_BYTES_MAX} bytes`));
        send(res, await api.handle(req.method ?? 'GET', req.url ?? '/', body));
      },
      (error: Error) => {
        onError(error);
        res.destroy();
      },
    ).catch((error: Error) => {
      onError(error);
      send(res, errorResponse(500, undefined, `internal error: ${error.message}`));
    });
  });
  await new Promise<void>((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(address.port, address.host, () => {
      server.off('error', rejectListen);
      resolveListen();
    });
  });
  const bound = server.address();
  const actual: HostPort = bound !== null && typeof bound !== 'string' ? { host: bound.address, port: bound.port } : address;
  let closed = false;
  return {
    url: `http://${formatHostPort(actual)}`,
    address: actual,
    close: async () => {
      if (closed) return;
      closed = true;
      server.closeAllConnections();
      await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
    },
  };
}
