/**
 * Scenario files (YAML, version 1) → a checked {@link Scenario}. Every problem throws a
 * `ConfigError` naming the file, the line and the key (`relay-crash.yaml:31:
 * events[2].crash: 'relay-x' is not a relay; expected one of relay-fra, relay-ams`),
 * through `kit/config.ts`'s {@link ConfigReader}; the CLI prints it and exits 2.
 * Besides shapes and ranges it checks what only the whole file can tell: names are
 * unique, every name an event or link uses exists, an event changes only access links
 * that exist, a relay is crashed only while up
 * and restarted only while down, and every link model that the timeline produces
 * (entries merged in order, then events applied in time order) is valid — so a run
 * never fails on input halfway through.
 */
import { ConfigReader, type ConfigPath } from '../../../kit/config.js';
import { SimConfigError } from '../../../proto/src/errors.js';
import { FEC_COPIES_MAX, FEC_HOLD_MS_MAX, FEC_SPACING_MS_MAX } from '../../../proto/src/fec/index.js';
import type { TunnelFecSpec } from '../../../relay/src/core/config-types.js';
import { defaultRelayLimits } from '../deployment/fleet.js';
import { GAME_HEADER_BYTES, type TrafficSpec } from '../deployment/deployment.js';
import { validateLinkModel, type LinkModelSpec } from '../core/link.js';
import { checkUdpImpairment, configBaseDir, resolveUdpImpairment, type FieldPath } from '../proxy/definition.js';
import {
  SCENARIO_BITRATE_KBPS_MAX,
  SCENARIO_CLIENT_START_MS_DEFAULT,
  SCENARIO_CLIENTS_MAX,
  SCENARIO_DEFAULT_LINK,
  SCENARIO_DURATION_MS_MAX,
  SCENARIO_EVENTS_MAX,
  SCENARIO_ORIGINS_MAX,
  SCENARIO_PACKET_BYTES_MAX,
  SCENARIO_PPS_MAX,
  SCENARIO_RELAY_FEC_DEFAULT,
  SCENARIO_RELAYS_MAX,
  SCENARIO_VERSION,
  SCENARIO_WARMUP_MS_DEFAULT,
  type AccessHop,
  type DirectedPair,
  type Scenario,
  type ScenarioAccessEntry,
  type ScenarioClientGroup,
  type ScenarioEvent,
  type ScenarioHost,
  type ScenarioLinkEntry,
  type ScenarioRelaySpec,
} from './schema.js';

/** Names: a letter or digit, then letters, digits, `.`, `_`, `-`; at most 64. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const NAME_TEXT = "a name of 1–64 letters, digits, '.', '_' or '-' starting with a letter or digit";
const TOP_KEYS = ['version', 'name', 'description', 'duration', 'warmup', 'seed', 'defaultLink', 'regions', 'coordinator', 'origins', 'relays', 'clients', 'links', 'events'];
const DURATION_TEXT = "a duration such as 30s, 500ms, 1.5s or 2m (a bare number is seconds)";
const ALL = '*';

/**
 * Parses a duration: `500ms`, `30s`, `1.5s`, `2m`, or a bare number of seconds.
 * Returns ms, or undefined when the text is not a duration.
 */
export function parseDurationMs(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value * 1000 : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

/** Reads and checks a scenario file; throws `ConfigError` (file:line: key: reason) on the first problem. */
export function loadScenario(path: string): Scenario {
  return new ScenarioLoader(ConfigReader.fromFile(path), configBaseDir(path)).load();
}

/** Checks scenario text as if it were the file `file` (relative trace paths resolve against `baseDir`). */
export function parseScenario(file: string, text: string, baseDir = '.'): Scenario {
  return new ScenarioLoader(new ConfigReader(file, text), baseDir).load();
}

class ScenarioLoader {
  private readonly hosts: ScenarioHost[] = [];
  private readonly hostNames = new Set<string>();
  private readonly regions = new Set<string>();
  private readonly groups = new Map<string, readonly string[]>();
  private readonly relayNames: string[] = [];
  private readonly originNames: string[] = [];
  private readonly accessEntries: ScenarioAccessEntry[] = [];

  constructor(
    private readonly reader: ConfigReader,
    private readonly baseDir: string,
  ) {}

  load(): Scenario {
    const r: ConfigReader = this.reader;
    if (r.get([]) === undefined || r.get([]) === null || typeof r.get([]) !== 'object' || Array.isArray(r.get([]))) r.fail([], 'expected a scenario: a map with version, duration, origins, relays, clients, …');
    r.rejectUnknownKeys([], TOP_KEYS);
    const version = r.number(['version'], { min: 1, max: 1000, integer: true });
    if (version !== SCENARIO_VERSION) r.fail(['version'], `${version} is not supported; this build reads scenario version ${SCENARIO_VERSION}`);
    const name = r.string(['name'], { default: r.file.replace(/^.*[\\/]/, '').replace(/\.ya?ml$/, '') });
    const description = r.string(['description'], { default: '' });
    const durationMs = this.duration(['duration'], { min: 1000, max: SCENARIO_DURATION_MS_MAX });
    const warmupMs = this.duration(['warmup'], { min: 0, max: SCENARIO_DURATION_MS_MAX, default: SCENARIO_WARMUP_MS_DEFAULT });
    const seed = r.number(['seed'], { min: 0, max: 0xffff_ffff, integer: true, default: 1 });
    const defaultLink = r.has(['defaultLink']) ? this.linkModel(['defaultLink']) : SCENARIO_DEFAULT_LINK;

    const regionCount = r.sequenceLength(['regions'], { optional: true, maxItems: 1000 });
    for (let i = 0; i < regionCount; i++) {
      const region = r.string(['regions', i], { pattern: NAME_PATTERN, patternText: NAME_TEXT });
      this.claim(['regions', i], region);
      this.regions.add(region);
    }

    r.rejectUnknownKeys(['coordinator'], ['region', 'access']);
    this.addHost(['coordinator'], 'coordinator', 'coordinator', this.region(['coordinator', 'region']));
    this.access(['coordinator', 'access'], ['coordinator']);

    const originCount = r.sequenceLength(['origins'], { minItems: 1, maxItems: SCENARIO_ORIGINS_MAX });
    const origins: { name: string; region: string | undefined }[] = [];
    for (let i = 0; i < originCount; i++) {
      r.rejectUnknownKeys(['origins', i], ['name', 'region', 'access']);
      const o = { name: this.name(['origins', i, 'name']), region: this.region(['origins', i, 'region']) };
      this.addHost(['origins', i, 'name'], o.name, 'origin', o.region);
      this.access(['origins', i, 'access'], [o.name]);
      this.originNames.push(o.name);
      origins.push(o);
    }

    const relayCount = r.sequenceLength(['relays'], { minItems: 1, maxItems: SCENARIO_RELAYS_MAX });
    const relays: ScenarioRelaySpec[] = [];
    for (let i = 0; i < relayCount; i++) {
      const at = ['relays', i];
      r.rejectUnknownKeys(at, ['name', 'region', 'sessionsMax', 'fec', 'access']);
      const relayName = this.name([...at, 'name']);
      const region = this.region([...at, 'region']);
      this.addHost([...at, 'name'], relayName, 'relay', region);
      this.access([...at, 'access'], [relayName]);
      this.relayNames.push(relayName);
      const sessionsMax = r.has([...at, 'sessionsMax']) ? r.number([...at, 'sessionsMax'], { min: 1, max: 1_000_000, integer: true, unit: 'sessions' }) : undefined;
      relays.push({ name: relayName, region, limits: sessionsMax === undefined ? undefined : { ...defaultRelayLimits(), sessionsMax }, fec: r.has([...at, 'fec']) ? this.fec([...at, 'fec']) : undefined });
    }

    const groupCount = r.sequenceLength(['clients'], { minItems: 1, maxItems: SCENARIO_CLIENTS_MAX });
    const clients: ScenarioClientGroup[] = [];
    let players = 0;
    for (let i = 0; i < groupCount; i++) {
      const at = ['clients', i];
      r.rejectUnknownKeys(at, ['name', 'region', 'count', 'origin', 'start', 'traffic', 'access']);
      const groupName = this.name([...at, 'name']);
      const region = this.region([...at, 'region']);
      const count = r.number([...at, 'count'], { min: 1, max: SCENARIO_CLIENTS_MAX, integer: true, default: 1, unit: 'players' });
      players += count;
      if (players > SCENARIO_CLIENTS_MAX) r.fail([...at, 'count'], `brings the players to ${players}; a scenario holds at most ${SCENARIO_CLIENTS_MAX}`);
      const origin = r.has([...at, 'origin']) ? this.oneOf([...at, 'origin'], this.originNames, 'an origin') : this.originNames.length === 1 ? this.originNames[0]! : r.fail([...at, 'origin'], `missing; with several origins say which one the players use: ${this.originNames.join(', ')}`);
      const startMs = this.duration([...at, 'start'], { min: 0, max: durationMs - 1, default: SCENARIO_CLIENT_START_MS_DEFAULT });
      if (startMs + warmupMs >= durationMs) r.fail(r.has([...at, 'start']) ? [...at, 'start'] : ['warmup'], `players starting at ${startMs / 1000} s with ${warmupMs / 1000} s of warm-up leave nothing to measure before the end (duration ${durationMs / 1000} s)`);
      const traffic = this.traffic([...at, 'traffic']);
      const members = count === 1 ? [groupName] : Array.from({ length: count }, (_, k) => `${groupName}-${k + 1}`);
      this.claim([...at, 'name'], groupName);
      for (const member of members) {
        if (member !== groupName) this.claim([...at, 'name'], member);
        this.hosts.push({ name: member, kind: 'client', region });
        this.hostNames.add(member);
      }
      this.groups.set(groupName, members);
      this.access([...at, 'access'], members);
      clients.push({ name: groupName, region, members, origin, startMs, traffic });
    }

    const links = this.links(defaultLink);
    const events = this.events(durationMs, defaultLink, links);
    return { file: r.file, name, description, durationMs, warmupMs, seed, defaultLink, regions: [...this.regions], hosts: this.hosts, origins, relays, clients, links, access: this.accessEntries, events };
  }

  // ------------------------------------------------------------------ names

  private claim(path: ConfigPath, name: string): void {
    if (name === ALL) this.reader.fail(path, `'${ALL}' is reserved (it means every host)`);
    if (this.regions.has(name) || this.hostNames.has(name) || this.groups.has(name)) this.reader.fail(path, `'${name}' is already used by another region, host or player; names must be unique`);
  }

  private addHost(path: ConfigPath, name: string, kind: ScenarioHost['kind'], region: string | undefined): void {
    this.claim(path, name);
    this.hosts.push({ name, kind, region });
    this.hostNames.add(name);
  }

  private name(path: ConfigPath): string {
    return this.reader.string(path, { pattern: NAME_PATTERN, patternText: NAME_TEXT });
  }

  private region(path: ConfigPath): string | undefined {
    if (!this.reader.has(path)) return undefined;
    return this.oneOf(path, [...this.regions], 'a region listed under regions');
  }

  private oneOf(path: ConfigPath, choices: readonly string[], what: string): string {
    const value = this.reader.get(path);
    if (typeof value !== 'string' || !choices.includes(value)) this.reader.fail(path, `${JSON.stringify(value)} is not ${what}; expected one of ${choices.join(', ') || '(none defined)'}`);
    return value;
  }

  /**
   * A host selector → host names: a host, a player group, a region (its hosts), `*`
   * (every host), or a list of those.
   */
  private select(path: ConfigPath, value: unknown = this.reader.get(path)): string[] {
    if (Array.isArray(value)) {
      const out = new Set<string>();
      value.forEach((item, i) => {
        for (const h of this.select([...path, i], item)) out.add(h);
      });
      if (out.size === 0) this.reader.fail(path, 'selects no host; expected host, player-group or region names, or *');
      return [...out];
    }
    if (typeof value !== 'string') this.reader.fail(path, `${JSON.stringify(value)} is not a host selector; expected a host, player-group or region name, *, or a list of them`);
    const name = value.trim();
    if (name === ALL) return this.hosts.map((h) => h.name);
    const group = this.groups.get(name);
    if (group !== undefined) return [...group];
    if (this.hostNames.has(name)) return [name];
    if (this.regions.has(name)) {
      const inRegion = this.hosts.filter((h) => h.region === name).map((h) => h.name);
      if (inRegion.length === 0) this.reader.fail(path, `region '${name}' has no hosts`);
      return inRegion;
    }
    const known = [...this.hosts.filter((h) => h.kind !== 'client').map((h) => h.name), ...this.groups.keys(), ...this.regions];
    return this.reader.fail(path, `'${name}' is not a host, player group or region; expected one of ${known.join(', ')} or *`);
  }

  /**
   * A host entry's `access: {uplink: MODEL, downlink: MODEL}` or `{both: MODEL}` (both
   * may be given with either: the direction's keys merge over `both`'s) → an access
   * link per direction given, for each of `hosts`. Absent: none.
   */
  private access(path: ConfigPath, hosts: readonly string[]): void {
    const r: ConfigReader = this.reader;
    if (!r.has(path)) return;
    r.rejectUnknownKeys(path, ['uplink', 'downlink', 'both']);
    const keys = r.mapKeys(path);
    if (keys.length === 0) r.fail(path, 'is empty; expected uplink: MODEL and/or downlink: MODEL, or both: MODEL');
    const both = r.has([...path, 'both']) ? this.linkModel([...path, 'both']) : undefined;
    for (const direction of ['uplink', 'downlink'] as const) {
      const own = r.has([...path, direction]) ? this.linkModel([...path, direction]) : undefined;
      if (own === undefined && both === undefined) continue;
      const model = mergeLinkModel(both ?? {}, own ?? {});
      try {
        validateLinkModel(model, 'model');
      } catch (error) {
        if (error instanceof SimConfigError) r.fail(path, `the ${direction} model is invalid: ${error.message.replace(/^model\.?/, '')}`);
        throw error;
      }
      for (const host of hosts) this.accessEntries.push({ hop: [host, direction], model });
    }
  }

  /**
   * An event's `access: SELECTOR` with `direction: uplink | downlink | both` (default
   * both) → the access hops it changes; every host selected must have that access link.
   */
  private accessHops(at: ConfigPath): AccessHop[] {
    const r: ConfigReader = this.reader;
    const direction = r.string([...at, 'direction'], { choices: ['uplink', 'downlink', 'both'], default: 'both' });
    const directions = direction === 'both' ? (['uplink', 'downlink'] as const) : ([direction] as const as readonly ('uplink' | 'downlink')[]);
    const out: AccessHop[] = [];
    for (const host of this.select([...at, 'access'])) {
      for (const d of directions) {
        if (!this.accessEntries.some((e) => e.hop[0] === host && e.hop[1] === d)) r.fail([...at, 'access'], `'${host}' has no ${d} access link; give its entry access: {${d}: MODEL} (or both:) first`);
        out.push([host, d]);
      }
    }
    return out;
  }

  /** `A→B` / `A->B` (one direction) or `A↔B` / `A<->B` (both) → directed pairs. */
  private arrow(path: ConfigPath): DirectedPair[] {
    const value = this.reader.get(path);
    const m = typeof value === 'string' ? /^(.+?)\s*(<->|↔|->|→)\s*(.+)$/.exec(value.trim()) : null;
    if (!m) this.reader.fail(path, `${JSON.stringify(value)} is not a link; expected 'FROM→TO' (or FROM->TO) for one direction, 'A↔B' (or A<->B) for both`);
    const both = m[2] === '<->' || m[2] === '↔';
    return pairs(this.select(path, m[1]), this.select(path, m[3]), both, this.reader, path);
  }

  // ------------------------------------------------------------------ values

  private duration(path: ConfigPath, options: { min: number; max: number; default?: number }): number {
    const r: ConfigReader = this.reader;
    if (!r.has(path)) {
      if (options.default !== undefined) return options.default;
      r.fail(path, `missing; expected ${DURATION_TEXT}`);
    }
    const ms = parseDurationMs(r.get(path));
    if (ms === undefined) r.fail(path, `${JSON.stringify(r.get(path))} is not ${DURATION_TEXT}`);
    if (ms < options.min || ms > options.max) r.fail(path, `${ms / 1000} s is out of range; expected ${options.min / 1000} s to ${options.max / 1000} s`);
    return ms;
  }

  /** A link model as in the proxy (every LinkModelSpec field, a trace by file), plus `loss: P` for Bernoulli loss. */
  private linkModel(path: ConfigPath, value: unknown = this.reader.get(path)): LinkModelSpec {
    const r: ConfigReader = this.reader;
    let model = value;
    if (typeof model === 'object' && model !== null && !Array.isArray(model) && typeof (model as { loss?: unknown }).loss === 'number') {
      model = { ...model, loss: { model: 'bernoulli', p: (model as { loss: number }).loss } };
    }
    const checked = checkUdpImpairment(model, path as FieldPath);
    if (!checked.ok) r.fail(checked.error.path as ConfigPath, checked.error.reason);
    const resolved = resolveUdpImpairment(checked.value, path as FieldPath, this.baseDir);
    if (!resolved.ok) r.fail(resolved.error.path as ConfigPath, resolved.error.reason);
    return resolved.value;
  }

  private fec(path: ConfigPath): TunnelFecSpec {
    const r: ConfigReader = this.reader;
    r.rejectUnknownKeys(path, ['modes', 'k', 'r', 'holdMs', 'copies', 'spacingMs', 'latencyBudgetMs']);
    const count = r.sequenceLength([...path, 'modes'], { optional: true, maxItems: 4 });
    const modes: TunnelFecSpec['modes'][number][] = [];
    for (let i = 0; i < count; i++) modes.push(r.string([...path, 'modes', i], { choices: ['sw', 'dup', 'rs', 'off'] }) as TunnelFecSpec['modes'][number]);
    const d = SCENARIO_RELAY_FEC_DEFAULT;
    // Ranges and defaults as `slipstream relay` reads its tunnel.fec (relay/src/config.ts).
    const k = r.number([...path, 'k'], { min: 1, max: 64, integer: true, default: d.k });
    const parity = r.number([...path, 'r'], { min: 1, max: 255 - k, integer: true, default: d.r });
    return {
      modes: count === 0 ? [...SCENARIO_RELAY_FEC_DEFAULT.modes] : modes,
      k,
      r: parity,
      holdMs: r.number([...path, 'holdMs'], { min: 0, max: FEC_HOLD_MS_MAX, default: d.holdMs, unit: 'ms' }),
      copies: r.number([...path, 'copies'], { min: 1, max: FEC_COPIES_MAX, integer: true, default: d.copies }),
      spacingMs: r.number([...path, 'spacingMs'], { min: 0, max: FEC_SPACING_MS_MAX, default: d.spacingMs, unit: 'ms' }),
      ...(r.has([...path, 'latencyBudgetMs']) ? { latencyBudgetMs: r.number([...path, 'latencyBudgetMs'], { min: 0, max: 1000, unit: 'ms' }) } : {}),
    };
  }

  private traffic(path: ConfigPath): TrafficSpec {
    const r: ConfigReader = this.reader;
    const kind = r.string([...path, 'kind'], { choices: ['game', 'media'] });
    if (kind === 'game') {
      r.rejectUnknownKeys(path, ['kind', 'packetsPerSecond', 'bytes']);
      return {
        kind,
        packetsPerSecond: r.number([...path, 'packetsPerSecond'], { min: 1, max: SCENARIO_PPS_MAX, unit: 'packets/s each way' }),
        payloadBytes: r.number([...path, 'bytes'], { min: GAME_HEADER_BYTES, max: SCENARIO_PACKET_BYTES_MAX, integer: true, default: 100, unit: 'bytes' }),
      };
    }
    r.rejectUnknownKeys(path, ['kind', 'bitrateKbps', 'framesPerSecond', 'keyframeEvery', 'keyframeScale', 'packetBytesMax']);
    const bitrateKbps = r.number([...path, 'bitrateKbps'], { min: 1, max: SCENARIO_BITRATE_KBPS_MAX, unit: 'kbit/s each way' });
    const framesPerSecond = r.number([...path, 'framesPerSecond'], { min: 1, max: 240, default: 30, unit: 'frames/s' });
    const packetBytesMax = r.number([...path, 'packetBytesMax'], { min: GAME_HEADER_BYTES, max: SCENARIO_PACKET_BYTES_MAX, integer: true, default: 1200, unit: 'bytes' });
    const traffic: TrafficSpec = {
      kind: 'media',
      bitrateKbps,
      framesPerSecond,
      keyframeIntervalFrames: r.number([...path, 'keyframeEvery'], { min: 1, max: 10_000, integer: true, default: 60, unit: 'frames' }),
      keyframeScale: r.number([...path, 'keyframeScale'], { min: 1, max: 100, default: 5 }),
      packetBytesMax,
    };
    const packetsPerSecond = ((bitrateKbps * 1000) / 8 / packetBytesMax) * 1.2 + framesPerSecond;
    if (packetsPerSecond > SCENARIO_PPS_MAX * 4) r.fail([...path, 'bitrateKbps'], `${bitrateKbps} kbit/s in packets of ${packetBytesMax} bytes is about ${Math.round(packetsPerSecond)} packets/s; at most ${SCENARIO_PPS_MAX * 4} per player (raise packetBytesMax or lower the bitrate)`);
    return traffic;
  }

  // ------------------------------------------------------------------ links and events

  private links(defaultLink: LinkModelSpec): ScenarioLinkEntry[] {
    const r: ConfigReader = this.reader;
    const count = r.sequenceLength(['links'], { optional: true, maxItems: 10_000 });
    const out: ScenarioLinkEntry[] = [];
    const state = new LinkTable(defaultLink);
    for (let i = 0; i < count; i++) {
      const at = ['links', i];
      r.rejectUnknownKeys(at, ['between', 'from', 'to', 'model']);
      const hasBetween = r.has([...at, 'between']);
      if (hasBetween === (r.has([...at, 'from']) || r.has([...at, 'to']))) r.fail(at, 'give either between: [A, B] (both directions) or from: A and to: B (one direction)');
      let entryPairs: DirectedPair[];
      if (hasBetween) {
        const between = r.get([...at, 'between']);
        if (!Array.isArray(between) || between.length !== 2) r.fail([...at, 'between'], 'expected two selectors [A, B] (hosts, player groups, regions or *)');
        entryPairs = pairs(this.select([...at, 'between', 0]), this.select([...at, 'between', 1]), true, r, [...at, 'between']);
      } else {
        if (!r.has([...at, 'from'])) r.fail([...at, 'from'], 'missing; expected the sending side (host, player group, region or *)');
        if (!r.has([...at, 'to'])) r.fail([...at, 'to'], 'missing; expected the receiving side (host, player group, region or *)');
        entryPairs = pairs(this.select([...at, 'from']), this.select([...at, 'to']), false, r, at);
      }
      if (!r.has([...at, 'model'])) r.fail([...at, 'model'], 'missing; expected a link model such as {delayMs: 20, loss: 0.01}');
      const model = this.linkModel([...at, 'model']);
      state.apply(entryPairs, model, r, [...at, 'model']);
      out.push({ pairs: entryPairs, model });
    }
    return out;
  }

  private events(durationMs: number, defaultLink: LinkModelSpec, links: readonly ScenarioLinkEntry[]): ScenarioEvent[] {
    const r: ConfigReader = this.reader;
    const count = r.sequenceLength(['events'], { optional: true, maxItems: SCENARIO_EVENTS_MAX });
    const parsed: { event: ScenarioEvent; path: ConfigPath }[] = [];
    for (let i = 0; i < count; i++) {
      const at = ['events', i];
      const keys = r.mapKeys(at);
      const atMs = this.duration([...at, 'at'], { min: 0, max: durationMs });
      const action = ['set', 'blackout', 'crash', 'restart', 'partition', 'isolate'].filter((k) => keys.includes(k));
      if (action.length !== 1) r.fail(at, `expected exactly one action: set (with link), blackout (with link), crash, restart, partition or isolate; got ${action.length === 0 ? 'none' : action.join(' and ')}`);
      const kind = action[0]!;
      const forMs = (): number | undefined => (r.has([...at, 'for']) ? this.duration([...at, 'for'], { min: 1, max: SCENARIO_DURATION_MS_MAX }) : undefined);
      if (kind === 'set' || kind === 'blackout') {
        r.rejectUnknownKeys(at, kind === 'set' ? ['at', 'link', 'access', 'direction', 'set', 'for'] : ['at', 'link', 'access', 'direction', 'blackout']);
        const onAccess = r.has([...at, 'access']);
        if (onAccess === r.has([...at, 'link'])) r.fail(at, `give either link: (a path, e.g. 'eu-player↔relay-fra') or access: (hosts whose access link to ${kind === 'set' ? 'change' : 'black out'}, e.g. eu-player)`);
        if (!onAccess && r.has([...at, 'direction'])) r.fail([...at, 'direction'], "applies to access: only; a link: names its directions with → or ↔");
        const pairsOf = onAccess ? [] : this.arrow([...at, 'link']);
        const access = onAccess ? this.accessHops(at) : [];
        if (kind === 'set') parsed.push({ event: { kind, atMs, pairs: pairsOf, access, set: this.linkModel([...at, 'set']), forMs: forMs() }, path: [...at, 'set'] });
        else parsed.push({ event: { kind, atMs, pairs: pairsOf, access, durationMs: this.duration([...at, 'blackout'], { min: 1, max: SCENARIO_DURATION_MS_MAX }) }, path: [...at, 'blackout'] });
      } else if (kind === 'crash' || kind === 'restart') {
        r.rejectUnknownKeys(at, ['at', kind]);
        parsed.push({ event: { kind, atMs, relay: this.oneOf([...at, kind], this.relayNames, 'a relay') }, path: [...at, kind] });
      } else if (kind === 'isolate') {
        r.rejectUnknownKeys(at, ['at', 'isolate', 'for']);
        const a = this.select([...at, 'isolate']);
        const b = this.hosts.map((h) => h.name).filter((h) => !a.includes(h));
        if (b.length === 0) r.fail([...at, 'isolate'], 'selects every host; there is nobody left to cut it off from');
        parsed.push({ event: { kind: 'partition', atMs, a, b, forMs: forMs() }, path: [...at, 'isolate'] });
      } else {
        r.rejectUnknownKeys(at, ['at', 'partition', 'for']);
        const sides = r.get([...at, 'partition']);
        if (!Array.isArray(sides) || sides.length !== 2) r.fail([...at, 'partition'], 'expected two sides [A, B], each a selector or a list of selectors');
        const a = this.select([...at, 'partition', 0]);
        const b = this.select([...at, 'partition', 1]).filter((h) => !a.includes(h));
        if (b.length === 0) r.fail([...at, 'partition', 1], 'has no host that is not on the other side');
        parsed.push({ event: { kind: 'partition', atMs, a, b, forMs: forMs() }, path: [...at, 'partition'] });
      }
    }
    // Stable: events at the same time keep file order.
    const ordered = parsed.map((p, i) => ({ ...p, i })).sort((x, y) => x.event.atMs - y.event.atMs || x.i - y.i);
    this.checkTimeline(ordered, defaultLink, links);
    return ordered.map((p) => p.event);
  }

  /** Replays the timeline on paper: relay up/down order, and every link model it produces. */
  private checkTimeline(ordered: readonly { event: ScenarioEvent; path: ConfigPath }[], defaultLink: LinkModelSpec, links: readonly ScenarioLinkEntry[]): void {
    const r: ConfigReader = this.reader;
    const up = new Map(this.relayNames.map((n) => [n, true]));
    const table = new LinkTable(defaultLink);
    for (const l of links) table.apply(l.pairs, l.model, r, ['links']);
    // Access links are keyed as a pair of the host and its direction (no host is named so).
    for (const a of this.accessEntries) table.put(a.hop, a.model);
    // Restores of `set … for` interleave with later events by time.
    const restores: { atMs: number; pairs: readonly (DirectedPair | AccessHop)[]; models: LinkModelSpec[]; path: ConfigPath }[] = [];
    const runRestores = (untilMs: number): void => {
      restores.sort((a, b) => a.atMs - b.atMs);
      while (restores.length > 0 && restores[0]!.atMs <= untilMs) {
        const x = restores.shift()!;
        x.pairs.forEach((p, k) => table.put(p, x.models[k]!));
      }
    };
    for (const { event, path } of ordered) {
      runRestores(event.atMs);
      if (event.kind === 'crash') {
        if (!up.get(event.relay)) r.fail(path, `relay '${event.relay}' is already down at ${event.atMs / 1000} s (crashed earlier and not restarted)`);
        up.set(event.relay, false);
      } else if (event.kind === 'restart') {
        if (up.get(event.relay)) r.fail(path, `relay '${event.relay}' is running at ${event.atMs / 1000} s; restart follows a crash`);
        up.set(event.relay, true);
      } else if (event.kind === 'set') {
        const changed = [...event.pairs, ...event.access];
        const before = changed.map((p) => table.get(p));
        table.apply(changed, event.set, r, path);
        if (event.forMs !== undefined) restores.push({ atMs: event.atMs + event.forMs, pairs: changed, models: before, path });
      }
    }
  }
}

/** Every direction from `a` to `b` (and back when `both`), without a host to itself. */
function pairs(a: readonly string[], b: readonly string[], both: boolean, reader: ConfigReader, path: ConfigPath): DirectedPair[] {
  const out = new Map<string, DirectedPair>();
  for (const x of a) {
    for (const y of b) {
      if (x === y) continue;
      out.set(`${x}\u0000${y}`, [x, y]);
      if (both) out.set(`${y}\u0000${x}`, [y, x]);
    }
  }
  if (out.size === 0) reader.fail(path, 'names no link between two different hosts');
  return [...out.values()];
}

/** Link models by direction as the timeline builds them (shallow merges over the default). */
class LinkTable {
  private readonly models = new Map<string, LinkModelSpec>();
  constructor(private readonly defaultLink: LinkModelSpec) {}
  get(pair: DirectedPair | AccessHop): LinkModelSpec {
    return this.models.get(`${pair[0]}\u0000${pair[1]}`) ?? this.defaultLink;
  }
  put(pair: DirectedPair | AccessHop, model: LinkModelSpec): void {
    this.models.set(`${pair[0]}\u0000${pair[1]}`, model);
  }
  /** Merges `patch` into each direction and checks the result (a trace excludes loss and jitter, …). */
  apply(directions: readonly (DirectedPair | AccessHop)[], patch: LinkModelSpec, reader: ConfigReader, path: ConfigPath): void {
    for (const pair of directions) {
      const merged = mergeLinkModel(this.get(pair), patch);
      try {
        validateLinkModel(merged, 'model');
      } catch (error) {
        if (error instanceof SimConfigError) reader.fail(path, `on ${pair[0]}→${pair[1]} the merged model is invalid: ${error.message.replace(/^model\.?/, '')}`);
        throw error;
      }
      this.put(pair, merged);
    }
  }
}

/**
 * A link model with `patch`'s keys set over `base`'s (a shallow merge: a patch's `loss`
 * replaces the whole loss model). A patch `trace` drops the base's `loss`, `jitterMs`
 * and `jitterDist`, which a recorded path replaces; a patch `loss`/`jitterMs` drops the
 * base's `trace` likewise.
 */
export function mergeLinkModel(base: LinkModelSpec, patch: LinkModelSpec): LinkModelSpec {
  const out: LinkModelSpec = { ...base, ...patch };
  if (patch.trace !== undefined && patch.trace.kind === 'intervals') {
    if (patch.loss === undefined) delete out.loss;
    if (patch.jitterMs === undefined) delete out.jitterMs;
    if (patch.jitterDist === undefined) delete out.jitterDist;
  }
  if (patch.trace === undefined && base.trace !== undefined && (patch.loss !== undefined || patch.jitterMs !== undefined) && base.trace.kind === 'intervals') delete out.trace;
  if (patch.trace?.kind === 'mahimahi' && patch.rateKbps === undefined) delete out.rateKbps;
  return out;
}
