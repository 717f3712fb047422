/**
 * {@link ProxyManager}: the set of running proxies of one `slipstream sim proxy`
 * process, behind both the HTTP API and `--config`. Every operation returns a
 * {@link ProxyResult} (an HTTP status and either a value or a field error) rather than
 * throwing, so the API maps it straight to a response.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { Rng } from '../../../proto/src/rng.js';
import type { LinkModelSpec } from '../core/link.js';
import { PROXIES_MAX } from './constants.js';
import { formatHostPort, resolveUdpImpairment, type Direction, type FieldPath, type HostPort, type Impairment, type ImpairmentUpdate, type ProxyDefinition, type StallRequest, type TcpImpairment, type UdpImpairment } from './definition.js';
import { TcpProxy } from './tcp-proxy.js';
import { UdpProxy } from './udp-proxy.js';

/** Outcome of a manager operation: an HTTP status plus a value, or a field error. */
export type ProxyResult<T> = { readonly ok: true; readonly status: number; readonly value: T } | { readonly ok: false; readonly status: number; readonly path: FieldPath; readonly reason: string };

/** A running proxy as the API shows it. */
export interface ProxyView {
  readonly name: string;
  readonly protocol: 'udp' | 'tcp';
  /** The bound address (the real port when 0 was asked for). */
  readonly listen: string;
  readonly upstream: string;
  /** UDP only. */
  readonly idleTimeoutMs?: number;
  /** Impairments as last given (traces by reference; blackouts relative to when they were applied). */
  readonly uplink: Impairment;
  readonly downlink: Impairment;
  readonly stats: Record<string, unknown>;
}

interface Entry {
  readonly definition: ProxyDefinition;
  readonly proxy: UdpProxy | TcpProxy;
  uplink: Impairment;
  downlink: Impairment;
}

/** Options of {@link ProxyManager}. */
export interface ProxyManagerInit {
  /** Seed of every random draw of every proxy (each proxy derives its stream from the seed and its name). */
  readonly seed: number;
  readonly logger: Logger;
  /** Monotonic ms. */
  readonly clock: () => number;
}

function okResult<T>(status: number, value: T): ProxyResult<T> {
  return { ok: true, status, value };
}

function failResult<T>(status: number, path: FieldPath, reason: string): ProxyResult<T> {
  return { ok: false, status, path, reason };
}

/** FNV-1a over a string: a stable 32-bit number per proxy name. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Owns the proxies of one process. */
export class ProxyManager {
  private readonly entries = new Map<string, Entry>();
  private readonly seed: number;
  private readonly logger: Logger;
  private readonly clock: () => number;
  /** Names being created, so two concurrent creates of one name cannot both succeed. */
  private readonly pending = new Set<string>();

  constructor(init: ProxyManagerInit) {
    this.seed = init.seed;
    this.logger = init.logger;
    this.clock = init.clock;
  }

  /** Names of the running proxies. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Starts a proxy. Trace files named by relative paths are read from `baseDir`.
   * 409 when the name or the listen address is taken, 400 for anything else wrong.
   */
  async create(definition: ProxyDefinition, baseDir: string): Promise<ProxyResult<ProxyView>> {
    if (this.entries.has(definition.name) || this.pending.has(definition.name)) return failResult(409, ['name'], `a proxy named '${definition.name}' exists; delete it first or pick another name`);
    if (this.entries.size + this.pending.size >= PROXIES_MAX) return failResult(409, [], `${PROXIES_MAX} proxies are running; delete one first`);
    let uplinkModel: LinkModelSpec | undefined;
    let downlinkModel: LinkModelSpec | undefined;
    if (definition.protocol === 'udp') {
      const up = resolveUdpImpairment(definition.uplink as UdpImpairment, ['uplink'], baseDir);
      if (!up.ok) return failResult(400, up.error.path, up.error.reason);
      const down = resolveUdpImpairment(definition.downlink as UdpImpairment, ['downlink'], baseDir);
      if (!down.ok) return failResult(400, down.error.path, down.error.reason);
      uplinkModel = up.value;
      downlinkModel = down.value;
    }
    this.pending.add(definition.name);
    try {
      const upstream = await resolveHost(definition.upstream);
      if (upstream === undefined) return failResult(400, ['upstream'], `cannot resolve '${definition.upstream.host}'; give an IP address or a resolvable host name`);
      const rng = new Rng(hash32(`${this.seed}/${definition.name}`) + Math.floor(this.seed / 4294967296) * 4294967296);
      const logger = this.logger;
      let proxy: UdpProxy | TcpProxy;
      try {
        proxy =
          definition.protocol === 'udp'
            ? await UdpProxy.start({ name: definition.name, listen: definition.listen, upstream, idleTimeoutMs: definition.idleTimeoutMs, uplink: uplinkModel!, downlink: downlinkModel!, rng, clock: this.clock, logger })
            : await TcpProxy.start({ name: definition.name, listen: definition.listen, upstream, uplink: definition.uplink as TcpImpairment, downlink: definition.downlink as TcpImpairment, rng, clock: this.clock, logger });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const status = code === 'EADDRINUSE' ? 409 : 400;
        return failResult(status, ['listen'], `cannot listen on ${formatHostPort(definition.listen)}: ${code ?? (error as Error).message}${code === 'EADDRINUSE' ? ' (the address is in use)' : ''}`);
      }
      const entry: Entry = { definition, proxy, uplink: definition.uplink, downlink: definition.downlink };
      this.entries.set(definition.name, entry);
      this.logger.info({ event: 'proxy_created', proxy: definition.name, protocol: definition.protocol, listen: formatHostPort(proxy.listen), upstream: formatHostPort(definition.upstream) }, 'proxy created');
      return okResult(201, this.view(entry));
    } finally {
      this.pending.delete(definition.name);
    }
  }

  /** Every proxy, in creation order. */
  list(): ProxyView[] {
    return [...this.entries.values()].map((entry) => this.view(entry));
  }

  /** One proxy; 404 when there is none of that name. */
  get(name: string): ProxyResult<ProxyView> {
    const entry = this.entries.get(name);
    return entry === undefined ? notFound(name) : okResult(200, this.view(entry));
  }

  /** Stops and removes a proxy. */
  async delete(name: string): Promise<ProxyResult<undefined>> {
    const entry = this.entries.get(name);
    if (entry === undefined) return notFound(name);
    this.entries.delete(name);
    await entry.proxy.close();
    this.logger.info({ event: 'proxy_deleted', proxy: name }, 'proxy deleted');
    return okResult(204, undefined);
  }

  /** Replaces the impairments of the directions given; traffic already in flight keeps its times. */
  setImpairments(name: string, update: ImpairmentUpdate, baseDir: string): ProxyResult<ProxyView> {
    const entry = this.entries.get(name);
    if (entry === undefined) return notFound(name);
    const proxy = entry.proxy;
    if (proxy instanceof UdpProxy) {
      // Resolve both before applying either, so a bad direction changes nothing.
      const models: [Direction, LinkModelSpec][] = [];
      for (const direction of ['uplink', 'downlink'] as const) {
        const impairment = update[direction];
        if (impairment === undefined) continue;
        const resolved = resolveUdpImpairment(impairment as UdpImpairment, [direction], baseDir);
        if (!resolved.ok) return failResult(400, resolved.error.path, resolved.error.reason);
        models.push([direction, resolved.value]);
      }
      for (const [direction, model] of models) proxy.setModel(direction, model);
    } else {
      for (const direction of ['uplink', 'downlink'] as const) {
        const impairment = update[direction];
        if (impairment !== undefined) proxy.setImpairment(direction, impairment as TcpImpairment);
      }
    }
    if (update.uplink !== undefined) entry.uplink = update.uplink;
    if (update.downlink !== undefined) entry.downlink = update.downlink;
    this.logger.info({ event: 'impairments_set', proxy: name, uplink: update.uplink === undefined ? undefined : summarize(update.uplink), downlink: update.downlink === undefined ? undefined : summarize(update.downlink) }, 'impairments changed');
    return okResult(200, this.view(entry));
  }

  /** TCP: resets every open connection now. */
  reset(name: string): ProxyResult<{ connectionsReset: number }> {
    const entry = this.entries.get(name);
    if (entry === undefined) return notFound(name);
    if (!(entry.proxy instanceof TcpProxy)) return failResult(400, [], `'${name}' is a udp proxy; resets apply to tcp proxies (for UDP, set a blackout or loss p 1)`);
    return okResult(200, { connectionsReset: entry.proxy.resetAll() });
  }

  /** TCP: stops forwarding in the given directions for a while. */
  stall(name: string, request: StallRequest): ProxyResult<ProxyView> {
    const entry = this.entries.get(name);
    if (entry === undefined) return notFound(name);
    if (!(entry.proxy instanceof TcpProxy)) return failResult(400, [], `'${name}' is a udp proxy; stalls apply to tcp proxies (for UDP, use blackouts)`);
    entry.proxy.stall(request.directions, request.durationMs);
    return okResult(200, this.view(entry));
  }

  /** The protocol of a proxy, or undefined. */
  protocolOf(name: string): 'udp' | 'tcp' | undefined {
    return this.entries.get(name)?.definition.protocol;
  }

  /** Stops every proxy; idempotent. */
  async close(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(entries.map((entry) => entry.proxy.close()));
  }

  private view(entry: Entry): ProxyView {
    const proxy = entry.proxy;
    const common = { name: entry.definition.name, protocol: entry.definition.protocol, listen: formatHostPort(proxy.listen), upstream: formatHostPort(entry.definition.upstream) };
    if (proxy instanceof UdpProxy) {
      return {
        ...common,
        idleTimeoutMs: proxy.idleTimeoutMs,
        uplink: withoutTraceText(entry.uplink),
        downlink: withoutTraceText(entry.downlink),
        stats: { flowsOpen: proxy.flowsOpen, flowsOpened: proxy.flowsOpened, flowsRefused: proxy.flowsRefused, badSourceDropped: proxy.badSourceDropped, sendErrors: proxy.sendErrors, uplink: proxy.uplinkStats.toJSON(), downlink: proxy.downlinkStats.toJSON() },
      };
    }
    return {
      ...common,
      uplink: entry.uplink,
      downlink: entry.downlink,
      stats: { connectionsOpen: proxy.connectionsOpen, connectionsTotal: proxy.connectionsTotal, uplink: proxy.uplinkStats.toJSON(), downlink: proxy.downlinkStats.toJSON() },
    };
  }
}

function notFound<T>(name: string): ProxyResult<T> {
  return failResult(404, [], `no proxy named '${name}'`);
}

/** An inline trace can be megabytes: show its size, not its text. */
function withoutTraceText(impairment: Impairment): Impairment {
  const trace = (impairment as UdpImpairment).trace;
  if (trace?.text === undefined) return impairment;
  const { text, ...rest } = trace;
  return { ...(impairment as UdpImpairment), trace: { ...rest, text: `<${text.length} characters>` } };
}

/** The keys set in an impairment, for the log line (never the values of a trace). */
function summarize(impairment: Impairment): string[] {
  return Object.keys(impairment);
}

async function resolveHost(address: HostPort): Promise<HostPort | undefined> {
  if (isIP(address.host) !== 0) return address;
  try {
    const found = await lookup(address.host);
    return { host: found.address, port: address.port };
  } catch {
    return undefined;
  }
}
