/**
 * {@link ProxyManager}: the set of running proxies (and the shared links some of them
 * cross) of one `slipstream sim proxy` process, behind both the HTTP API and
 * `--config`. Every operation returns a {@link ProxyResult} (an HTTP status and either
 * a value or a field error) rather than throwing, so the API maps it straight to a
 * response.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { Rng } from '../../../proto/src/rng.js';
import type { LinkModelSpec } from '../core/link.js';
import { PROXIES_MAX } from './constants.js';
import { formatHostPort, resolveUdpImpairment, type Direction, type FieldPath, type HostPort, type Impairment, type ImpairmentUpdate, type LinkDefinition, type ProxyDefinition, type StallRequest, type TcpImpairment, type UdpImpairment } from './definition.js';
import { SharedLink } from './shared-link.js';
import { TcpProxy } from './tcp-proxy.js';
import { UdpDirectionStats, UdpProxy } from './udp-proxy.js';

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
  /** The shared link the proxy crosses (its impairments are the link's), if any. */
  readonly link?: string;
  /** Impairments as last given (traces by reference; blackouts relative to when they were applied). */
  readonly uplink: Impairment;
  readonly downlink: Impairment;
  readonly stats: Record<string, unknown>;
}

/** A shared link as the API shows it. */
export interface LinkView {
  readonly name: string;
  /** Impairments as last given (traces by reference; blackouts relative to when they were applied). */
  readonly uplink: Impairment;
  readonly downlink: Impairment;
  /** Names of the proxies crossing it. */
  readonly members: readonly string[];
  /** Per direction, the sums of the members' counters (members deleted since no longer count). */
  readonly stats: Record<string, unknown>;
}

interface Entry {
  readonly definition: ProxyDefinition;
  readonly proxy: UdpProxy | TcpProxy;
  uplink: Impairment;
  downlink: Impairment;
}

interface LinkEntry {
  readonly link: SharedLink;
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
  private readonly links = new Map<string, LinkEntry>();
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
    const shared = definition.link === undefined ? undefined : this.links.get(definition.link);
    if (definition.link !== undefined && shared === undefined) return failResult(400, ['link'], `no shared link named '${definition.link}'; create it first (POST /v1/links, or links: in --config)${this.links.size > 0 ? `; links: ${[...this.links.keys()].join(', ')}` : ''}`);
    if (definition.protocol === 'udp' && shared === undefined) {
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
      const rng = this.rngFor(definition.name);
      const logger = this.logger;
      let proxy: UdpProxy | TcpProxy;
      try {
        proxy =
          definition.protocol === 'udp'
            ? await UdpProxy.start({ name: definition.name, listen: definition.listen, upstream, idleTimeoutMs: definition.idleTimeoutMs, impairment: shared === undefined ? { uplink: uplinkModel!, downlink: downlinkModel! } : { shared: shared.link }, rng, clock: this.clock, logger })
            : await TcpProxy.start({ name: definition.name, listen: definition.listen, upstream, uplink: definition.uplink as TcpImpairment, downlink: definition.downlink as TcpImpairment, rng, clock: this.clock, logger });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const status = code === 'EADDRINUSE' ? 409 : 400;
        return failResult(status, ['listen'], `cannot listen on ${formatHostPort(definition.listen)}: ${code ?? (error as Error).message}${code === 'EADDRINUSE' ? ' (the address is in use)' : ''}`);
      }
      // The link may have been deleted while the proxy was starting (it had no members yet).
      if (shared !== undefined && this.links.get(shared.link.name) !== shared) {
        await proxy.close();
        return failResult(409, ['link'], `the shared link '${shared.link.name}' was deleted while the proxy was starting; create it again`);
      }
      const entry: Entry = { definition, proxy, uplink: definition.uplink, downlink: definition.downlink };
      this.entries.set(definition.name, entry);
      shared?.link.members.add(definition.name);
      this.logger.info({ event: 'proxy_created', proxy: definition.name, protocol: definition.protocol, listen: formatHostPort(proxy.listen), upstream: formatHostPort(definition.upstream), link: definition.link }, 'proxy created');
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
    if (entry.definition.link !== undefined) this.links.get(entry.definition.link)?.link.members.delete(name);
    await entry.proxy.close();
    this.logger.info({ event: 'proxy_deleted', proxy: name }, 'proxy deleted');
    return okResult(204, undefined);
  }

  /** Replaces the impairments of the directions given; traffic already in flight keeps its times. */
  setImpairments(name: string, update: ImpairmentUpdate, baseDir: string): ProxyResult<ProxyView> {
    const entry = this.entries.get(name);
    if (entry === undefined) return notFound(name);
    const proxy = entry.proxy;
    const link = entry.definition.link;
    if (link !== undefined) return failResult(409, [], `'${name}' crosses the shared link '${link}', which sets its impairments; change the link (PUT /v1/links/${link}/impairments): that applies to every proxy crossing it`);
    if (proxy instanceof UdpProxy) {
      const models = resolveUpdate(update, baseDir);
      if (!models.ok) return models;
      for (const [direction, model] of models.value) proxy.setModel(direction, model);
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

  // ---- shared links ----

  /** Names of the shared links. */
  linkNames(): string[] {
    return [...this.links.keys()];
  }

  /** Creates a shared link; proxies join it by naming it in their definition (`link`). 409 when the name is taken. */
  createLink(definition: LinkDefinition, baseDir: string): ProxyResult<LinkView> {
    if (this.links.has(definition.name)) return failResult(409, ['name'], `a shared link named '${definition.name}' exists; delete it first or pick another name`);
    if (this.links.size >= PROXIES_MAX) return failResult(409, [], `${PROXIES_MAX} shared links exist; delete one first`);
    const models = resolveUpdate(definition, baseDir);
    if (!models.ok) return models;
    const [[, uplink], [, downlink]] = models.value;
    // Its own stream, apart from any proxy's: `link/` keeps a link and a proxy of one name apart.
    const link = new SharedLink(definition.name, uplink!, downlink!, this.rngFor(`link/${definition.name}`), this.clock);
    const entry: LinkEntry = { link, uplink: definition.uplink, downlink: definition.downlink };
    this.links.set(definition.name, entry);
    this.logger.info({ event: 'link_created', link: definition.name, uplink: summarize(definition.uplink), downlink: summarize(definition.downlink) }, 'shared link created');
    return okResult(201, this.linkView(entry));
  }

  /** Every shared link, in creation order. */
  listLinks(): LinkView[] {
    return [...this.links.values()].map((entry) => this.linkView(entry));
  }

  /** One shared link; 404 when there is none of that name. */
  getLink(name: string): ProxyResult<LinkView> {
    const entry = this.links.get(name);
    return entry === undefined ? linkNotFound(name) : okResult(200, this.linkView(entry));
  }

  /** Removes a shared link; 409 while proxies cross it (delete them first). */
  deleteLink(name: string): ProxyResult<undefined> {
    const entry = this.links.get(name);
    if (entry === undefined) return linkNotFound(name);
    if (entry.link.members.size > 0) return failResult(409, [], `proxies cross the shared link '${name}' (${[...entry.link.members].join(', ')}); delete them first`);
    this.links.delete(name);
    this.logger.info({ event: 'link_deleted', link: name }, 'shared link deleted');
    return okResult(204, undefined);
  }

  /** Replaces a shared link's impairments in the directions given, for every proxy crossing it. */
  setLinkImpairments(name: string, update: ImpairmentUpdate, baseDir: string): ProxyResult<LinkView> {
    const entry = this.links.get(name);
    if (entry === undefined) return linkNotFound(name);
    const models = resolveUpdate(update, baseDir);
    if (!models.ok) return models;
    for (const [direction, model] of models.value) entry.link.setModel(direction, model);
    if (update.uplink !== undefined) entry.uplink = update.uplink;
    if (update.downlink !== undefined) entry.downlink = update.downlink;
    this.logger.info({ event: 'link_impairments_set', link: name, members: entry.link.members.size, uplink: update.uplink === undefined ? undefined : summarize(update.uplink), downlink: update.downlink === undefined ? undefined : summarize(update.downlink) }, 'shared link impairments changed');
    return okResult(200, this.linkView(entry));
  }

  /** Stops every proxy and forgets every link; idempotent. */
  async close(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    this.links.clear();
    await Promise.all(entries.map((entry) => entry.proxy.close()));
  }

  /** A stream per name: the seed and the name only, so the order of creation does not matter. */
  private rngFor(name: string): Rng {
    return new Rng(hash32(`${this.seed}/${name}`) + Math.floor(this.seed / 4294967296) * 4294967296);
  }

  private linkView(entry: LinkEntry): LinkView {
    const up = new UdpDirectionStats();
    const down = new UdpDirectionStats();
    for (const member of entry.link.members) {
      const proxy = this.entries.get(member)?.proxy;
      if (!(proxy instanceof UdpProxy)) continue;
      up.add(proxy.uplinkStats);
      down.add(proxy.downlinkStats);
    }
    return { name: entry.link.name, uplink: withoutTraceText(entry.uplink), downlink: withoutTraceText(entry.downlink), members: [...entry.link.members], stats: { uplink: up.toJSON(), downlink: down.toJSON() } };
  }

  private view(entry: Entry): ProxyView {
    const proxy = entry.proxy;
    const common = { name: entry.definition.name, protocol: entry.definition.protocol, listen: formatHostPort(proxy.listen), upstream: formatHostPort(entry.definition.upstream) };
    if (proxy instanceof UdpProxy) {
      const link = entry.definition.link === undefined ? undefined : this.links.get(entry.definition.link);
      return {
        ...common,
        idleTimeoutMs: proxy.idleTimeoutMs,
        ...(link === undefined ? {} : { link: link.link.name }),
        uplink: withoutTraceText(link?.uplink ?? entry.uplink),
        downlink: withoutTraceText(link?.downlink ?? entry.downlink),
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

function linkNotFound<T>(name: string): ProxyResult<T> {
  return failResult(404, [], `no shared link named '${name}'`);
}

/** Resolves the UDP directions of an update, both before either is applied, so a bad direction changes nothing. */
function resolveUpdate(update: ImpairmentUpdate, baseDir: string): ProxyResult<[Direction, LinkModelSpec][]> {
  const models: [Direction, LinkModelSpec][] = [];
  for (const direction of ['uplink', 'downlink'] as const) {
    const impairment = update[direction];
    if (impairment === undefined) continue;
    const resolved = resolveUdpImpairment(impairment as UdpImpairment, [direction], baseDir);
    if (!resolved.ok) return failResult(400, resolved.error.path, resolved.error.reason);
    models.push([direction, resolved.value]);
  }
  return okResult(200, models);
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
