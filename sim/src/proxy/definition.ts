/**
 * Proxy definitions and impairments: checking what arrives as JSON (the HTTP API) or
 * YAML (`--config`) into typed values. One set of checks serves both, and every
 * problem comes back as a {@link FieldError} value (a key path and a reason), never an
 * exception, so the API answers 400 naming the field and the config loader names the
 * file, line and key.
 */
import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { SimConfigError } from '../../../proto/src/errors.js';
import { LINK_DELAY_MS_MAX, LINK_RATE_KBPS_MAX, validateLinkModel, type LinkModelSpec } from '../core/link.js';
import { formatTraceParseError } from '../../../proto/src/trace/format.js';
import { loadTraceFile, TRACE_FILE_BYTES_MAX, traceSpecFromText, type TraceFileFormat } from '../trace/load.js';
import { PROXY_NAME_PATTERN, TCP_DELAY_MS_MAX, TCP_SLICE_BYTES_MAX, UDP_IDLE_TIMEOUT_MS_DEFAULT, UDP_IDLE_TIMEOUT_MS_MAX, UDP_IDLE_TIMEOUT_MS_MIN } from './constants.js';

/** A key path: map keys and list indexes (`uplink.loss.p` is `['uplink', 'loss', 'p']`). */
export type FieldPath = readonly (string | number)[];

/** What was wrong with one field. */
export interface FieldError {
  readonly path: FieldPath;
  readonly reason: string;
}

/** A checked value or the first problem found. */
export type Checked<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: FieldError };

/** Renders a path as `uplink.blackouts[0].startMs` (`<body>` for the whole document). */
export function formatFieldPath(path: FieldPath): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out === '' ? '<body>' : out;
}

/** Transport a proxy forwards. */
export type ProxyProtocol = 'udp' | 'tcp';

/** A host and port; `host` is an IP literal or a host name, without brackets. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Renders `host:port`, bracketing IPv6 literals. */
export function formatHostPort(address: HostPort): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** Where a proxy direction's trace comes from, and how to replay it (see `sim/src/trace/load.ts`). */
export interface TraceRef {
  /** Path of a trace file, read by the proxy process (relative to the config file's folder, or to the proxy's working directory over the API). */
  readonly file?: string;
  /** The trace itself, inline. Exactly one of `file` and `text`. */
  readonly text?: string;
  /** `slipstream` or `mahimahi`. Default: told from the content. */
  readonly format?: TraceFileFormat;
  readonly share?: 'split' | 'whole';
  readonly loop?: boolean;
  readonly lossPattern?: 'spread' | 'bernoulli';
  readonly queuePackets?: number;
}

/** A UDP direction's impairment: a link model (every field of `LinkModelSpec`), with the trace given by reference. */
export type UdpImpairment = Omit<LinkModelSpec, 'trace'> & { trace?: TraceRef };

/**
 * A TCP direction's impairment (toxiproxy's set). Applies per connection; every field
 * is optional and an empty object forwards untouched.
 */
export interface TcpImpairment {
  /** Added to every chunk, ms, 0–3,600,000. Default 0. */
  delayMs?: number;
  /** Uniform ±J added to `delayMs`, ms, 0–3,600,000; byte order is always kept. Default 0. */
  jitterMs?: number;
  /** Bandwidth, kbit/s (1000 bit/s), > 0 to 1e9. Default unlimited. */
  rateKbps?: number;
  /** Split every chunk into pieces of at most this many bytes, 1–1,048,576. Default: no slicing. */
  sliceBytes?: number;
  /** With `sliceBytes`: pause between consecutive pieces, ms, 0–3,600,000. Default 0. */
  sliceDelayMs?: number;
  /** Forward nothing until this is set back to false; data waits in the proxy and the sender feels backpressure. Default false. */
  stalled?: boolean;
  /** Reset (TCP RST) the connection, both sides, once this many bytes went through in this direction, 0–2^53. Default: never. */
  resetAfterBytes?: number;
}

/** The impairment of one direction, by protocol. */
export type Impairment = UdpImpairment | TcpImpairment;

/** Directions of a proxy: `uplink` client → upstream, `downlink` upstream → client. */
export type Direction = 'uplink' | 'downlink';

/** A checked proxy definition (impairments still by reference). */
export interface ProxyDefinition {
  readonly name: string;
  readonly protocol: ProxyProtocol;
  /** Where clients connect; port 0 picks a free port. */
  readonly listen: HostPort;
  /** Where the proxy forwards. */
  readonly upstream: HostPort;
  /** UDP only: idle timeout of a client flow, ms. */
  readonly idleTimeoutMs: number;
  /** UDP only: the shared link this proxy crosses instead of impairments of its own (then `uplink` and `downlink` are empty). */
  readonly link?: string;
  readonly uplink: Impairment;
  readonly downlink: Impairment;
}

/** A checked shared-link definition: one UDP impairment per direction, crossed by every member proxy. */
export interface LinkDefinition {
  readonly name: string;
  /** Client → upstream of every member. */
  readonly uplink: UdpImpairment;
  /** Upstream → client of every member. */
  readonly downlink: UdpImpairment;
}

/** A checked impairment change: the directions given are replaced, the others kept. */
export interface ImpairmentUpdate {
  readonly uplink?: Impairment;
  readonly downlink?: Impairment;
}

/** A checked stall request (TCP). */
export interface StallRequest {
  readonly directions: readonly Direction[];
  readonly durationMs: number;
}

function ok<T>(value: T): Checked<T> {
  return { ok: true, value };
}

function fail<T>(path: FieldPath, reason: string): Checked<T> {
  return { ok: false, error: { path, reason } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function has(object: Record<string, unknown>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key) && object[key] !== undefined && object[key] !== null;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value.length > 60 ? `${value.slice(0, 60)}…` : value}'`;
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value)?.slice(0, 60) ?? String(value);
}

function unknownKey(object: Record<string, unknown>, allowed: readonly string[], path: FieldPath): Checked<never> | undefined {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) return fail([...path, key], `unknown key; expected one of ${allowed.join(', ')}`);
  }
  return undefined;
}

function checkNumber(object: Record<string, unknown>, key: string, path: FieldPath, min: number, max: number, options: { integer?: boolean; minExclusive?: boolean; unit?: string } = {}): Checked<number | undefined> {
  if (!has(object, key)) return ok(undefined);
  const value = object[key];
  const kind = options.integer ? 'an integer' : 'a number';
  const what = `${kind} ${options.minExclusive ? `greater than ${min} and at most` : `from ${min} to`} ${max}${options.unit ? ` ${options.unit}` : ''}`;
  if (typeof value !== 'number' || !Number.isFinite(value) || (options.integer && !Number.isInteger(value))) return fail([...path, key], `${describe(value)} is not ${kind}; expected ${what}`);
  if (value < min || value > max || (options.minExclusive && value === min)) return fail([...path, key], `${value} is out of range; expected ${what}`);
  return ok(value);
}

function checkChoice<T extends string>(object: Record<string, unknown>, key: string, path: FieldPath, choices: readonly T[]): Checked<T | undefined> {
  if (!has(object, key)) return ok(undefined);
  const value = object[key];
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) return fail([...path, key], `${describe(value)} is not one of ${choices.join(', ')}`);
  return ok(value as T);
}

/**
 * Parses `host:port` (`[v6]:port` for IPv6). `host` is an IP literal or a DNS name.
 * @param minPort 0 for listen addresses (0 = any free port), 1 for upstreams
 */
export function parseHostPort(text: unknown, path: FieldPath, minPort: number): Checked<HostPort> {
  const example = minPort === 0 ? "'127.0.0.1:27016' (port 0 picks a free one)" : "'127.0.0.1:27015' or '[::1]:27015'";
  if (typeof text !== 'string') return fail(path, `${describe(text)} is not an address; expected HOST:PORT such as ${example}`);
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  if (!match) return fail(path, `${describe(text)} is not HOST:PORT; expected e.g. ${example}`);
  const host = match[1] ?? match[2]!;
  if (match[1] !== undefined && isIP(host) !== 6) return fail(path, `'${host}' in brackets is not an IPv6 address`);
  if (match[2] !== undefined && isIP(host) === 0 && !/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host)) {
    return fail(path, `'${host}' is neither an IP address nor a host name`);
  }
  const port = Number(match[3]);
  if (port < minPort || port > 65_535) return fail(path, `port ${port} is out of range; expected ${minPort} to 65535`);
  return ok({ host, port });
}

const TRACE_KEYS = ['file', 'text', 'format', 'share', 'loop', 'lossPattern', 'queuePackets'];

function checkTraceRef(value: unknown, path: FieldPath): Checked<TraceRef> {
  if (!isObject(value)) return fail(path, `expected {file: PATH} or {text: TRACE}, with optional format, share, loop, lossPattern, queuePackets`);
  const unknown = unknownKey(value, TRACE_KEYS, path);
  if (unknown) return unknown;
  const ref: { -readonly [K in keyof TraceRef]: TraceRef[K] } = {};
  if (has(value, 'file') === has(value, 'text')) return fail(path, 'give exactly one of file (a path) and text (the trace inline)');
  if (has(value, 'file')) {
    if (typeof value.file !== 'string' || value.file === '' || value.file.length > 4096) return fail([...path, 'file'], `${describe(value.file)} is not a file path`);
    ref.file = value.file;
  } else {
    if (typeof value.text !== 'string' || value.text.length > TRACE_FILE_BYTES_MAX) return fail([...path, 'text'], `expected the trace as a string of at most ${TRACE_FILE_BYTES_MAX} characters`);
    ref.text = value.text;
  }
  const format = checkChoice(value, 'format', path, ['slipstream', 'mahimahi'] as const);
  if (!format.ok) return format;
  if (format.value !== undefined) ref.format = format.value;
  const share = checkChoice(value, 'share', path, ['split', 'whole'] as const);
  if (!share.ok) return share;
  if (share.value !== undefined) ref.share = share.value;
  const pattern = checkChoice(value, 'lossPattern', path, ['spread', 'bernoulli'] as const);
  if (!pattern.ok) return pattern;
  if (pattern.value !== undefined) ref.lossPattern = pattern.value;
  if (has(value, 'loop')) {
    if (typeof value.loop !== 'boolean') return fail([...path, 'loop'], `${describe(value.loop)} is not true or false`);
    ref.loop = value.loop;
  }
  const queue = checkNumber(value, 'queuePackets', path, 1, 1_000_000, { integer: true, unit: 'packets' });
  if (!queue.ok) return queue;
  if (queue.value !== undefined) ref.queuePackets = queue.value;
  return ok(ref);
}

/** Turns a link-model error (`x.loss.p: … `) into a field error under `path`. */
function fromSimConfigError(error: SimConfigError, prefix: string, path: FieldPath): FieldError {
  const parameter = error.parameter.startsWith(`${prefix}.`) ? error.parameter.slice(prefix.length + 1) : error.parameter === prefix ? '' : error.parameter;
  const parts: (string | number)[] = [];
  for (const token of parameter.split('.')) {
    const match = /^([^[]*)((?:\[\d+\])*)$/.exec(token);
    if (!match) {
      parts.push(token);
      continue;
    }
    if (match[1] !== '') parts.push(match[1]!);
    for (const index of match[2]!.matchAll(/\[(\d+)\]/g)) parts.push(Number(index[1]));
  }
  const reason = error.message.startsWith(`${error.parameter}: `) ? error.message.slice(error.parameter.length + 2) : error.message;
  return { path: [...path, ...parts], reason };
}

/** Prefix given to `validateLinkModel`, stripped again from its parameter names. */
const MODEL_PREFIX = 'model';

/** Checks a UDP impairment: any `LinkModelSpec` field (ranges as in the simulator) plus a trace reference. */
export function checkUdpImpairment(value: unknown, path: FieldPath): Checked<UdpImpairment> {
  if (!isObject(value)) return fail(path, 'expected a link model object such as {"delayMs": 30, "loss": {"model": "bernoulli", "p": 0.05}}');
  const { trace, ...model } = value;
  let ref: TraceRef | undefined;
  if (trace !== undefined && trace !== null) {
    const checked = checkTraceRef(trace, [...path, 'trace']);
    if (!checked.ok) return checked;
    ref = checked.value;
  }
  try {
    validateLinkModel(model as LinkModelSpec, MODEL_PREFIX);
  } catch (error) {
    if (error instanceof SimConfigError) return { ok: false, error: fromSimConfigError(error, MODEL_PREFIX, path) };
    throw error;
  }
  const spec = structuredClone(model) as UdpImpairment;
  if (ref !== undefined) spec.trace = ref;
  return ok(spec);
}

const TCP_KEYS = ['delayMs', 'jitterMs', 'rateKbps', 'sliceBytes', 'sliceDelayMs', 'stalled', 'resetAfterBytes'];

/** Checks a TCP impairment (see {@link TcpImpairment} for keys and ranges). */
export function checkTcpImpairment(value: unknown, path: FieldPath): Checked<TcpImpairment> {
  if (!isObject(value)) return fail(path, 'expected an object such as {"delayMs": 30, "rateKbps": 2000}');
  const unknown = unknownKey(value, TCP_KEYS, path);
  if (unknown) return unknown;
  const out: TcpImpairment = {};
  const numbers: [keyof TcpImpairment, number, number, { integer?: boolean; minExclusive?: boolean; unit?: string }][] = [
    ['delayMs', 0, LINK_DELAY_MS_MAX, { unit: 'ms' }],
    ['jitterMs', 0, LINK_DELAY_MS_MAX, { unit: 'ms' }],
    ['rateKbps', 0, LINK_RATE_KBPS_MAX, { minExclusive: true, unit: 'kbit/s' }],
    ['sliceBytes', 1, TCP_SLICE_BYTES_MAX, { integer: true, unit: 'bytes' }],
    ['sliceDelayMs', 0, TCP_DELAY_MS_MAX, { unit: 'ms' }],
    ['resetAfterBytes', 0, Number.MAX_SAFE_INTEGER, { integer: true, unit: 'bytes' }],
  ];
  for (const [key, min, max, options] of numbers) {
    const checked = checkNumber(value, key, path, min, max, options);
    if (!checked.ok) return checked;
    if (checked.value !== undefined) (out as Record<string, number>)[key] = checked.value;
  }
  if (out.sliceDelayMs !== undefined && out.sliceBytes === undefined) return fail([...path, 'sliceDelayMs'], 'only means something with sliceBytes (the pause between pieces); add sliceBytes');
  if (has(value, 'stalled')) {
    if (typeof value.stalled !== 'boolean') return fail([...path, 'stalled'], `${describe(value.stalled)} is not true or false`);
    out.stalled = value.stalled;
  }
  return ok(out);
}

/** Checks one direction's impairment for `protocol`. */
export function checkImpairment(protocol: ProxyProtocol, value: unknown, path: FieldPath): Checked<Impairment> {
  return protocol === 'udp' ? checkUdpImpairment(value, path) : checkTcpImpairment(value, path);
}

/** Reads `uplink`, `downlink` and `both` of an object; `both` excludes the other two. */
function checkDirections(protocol: ProxyProtocol, object: Record<string, unknown>, path: FieldPath): Checked<ImpairmentUpdate> {
  if (has(object, 'both') && (has(object, 'uplink') || has(object, 'downlink'))) {
    return fail([...path, 'both'], `sets both directions; give either both or uplink/downlink, not ${has(object, 'uplink') ? 'uplink' : 'downlink'} as well`);
  }
  if (has(object, 'both')) {
    const both = checkImpairment(protocol, object.both, [...path, 'both']);
    if (!both.ok) return both;
    return ok({ uplink: both.value, downlink: structuredClone(both.value) });
  }
  const update: { uplink?: Impairment; downlink?: Impairment } = {};
  for (const direction of ['uplink', 'downlink'] as const) {
    if (!has(object, direction)) continue;
    const checked = checkImpairment(protocol, object[direction], [...path, direction]);
    if (!checked.ok) return checked;
    update[direction] = checked.value;
  }
  return ok(update);
}

const DEFINITION_KEYS = ['name', 'protocol', 'listen', 'upstream', 'idleTimeoutMs', 'link', 'uplink', 'downlink', 'both'];

function checkName(value: Record<string, unknown>, path: FieldPath): Checked<string> {
  if (!has(value, 'name')) return fail([...path, 'name'], `missing; expected a name matching ${PROXY_NAME_PATTERN.source}`);
  if (typeof value.name !== 'string' || !PROXY_NAME_PATTERN.test(value.name)) return fail([...path, 'name'], `${describe(value.name)} is not accepted; expected 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  return ok(value.name);
}

/**
 * Checks a proxy definition: `{name, protocol: udp|tcp, listen: HOST:PORT, upstream:
 * HOST:PORT, idleTimeoutMs?, link?, uplink?, downlink?, both?}`. `link` (UDP) names a
 * shared link and excludes impairments of the proxy's own.
 */
export function checkProxyDefinition(value: unknown, path: FieldPath = []): Checked<ProxyDefinition> {
  if (!isObject(value)) return fail(path, 'expected a proxy definition {name, protocol, listen, upstream, uplink?, downlink?, both?}');
  const unknown = unknownKey(value, DEFINITION_KEYS, path);
  if (unknown) return unknown;
  const name = checkName(value, path);
  if (!name.ok) return name;
  if (!has(value, 'protocol')) return fail([...path, 'protocol'], 'missing; expected udp or tcp');
  const protocol = checkChoice(value, 'protocol', path, ['udp', 'tcp'] as const);
  if (!protocol.ok) return protocol;
  if (!has(value, 'listen')) return fail([...path, 'listen'], 'missing; expected HOST:PORT where clients connect');
  const listen = parseHostPort(value.listen, [...path, 'listen'], 0);
  if (!listen.ok) return listen;
  if (!has(value, 'upstream')) return fail([...path, 'upstream'], 'missing; expected HOST:PORT of the server behind the proxy');
  const upstream = parseHostPort(value.upstream, [...path, 'upstream'], 1);
  if (!upstream.ok) return upstream;
  const idle = checkNumber(value, 'idleTimeoutMs', path, UDP_IDLE_TIMEOUT_MS_MIN, UDP_IDLE_TIMEOUT_MS_MAX, { unit: 'ms' });
  if (!idle.ok) return idle;
  if (idle.value !== undefined && protocol.value === 'tcp') return fail([...path, 'idleTimeoutMs'], 'applies to udp proxies only (a TCP connection ends when either side closes it)');
  let link: string | undefined;
  if (has(value, 'link')) {
    if (protocol.value === 'tcp') return fail([...path, 'link'], 'applies to udp proxies only (shared links are UDP link models)');
    if (typeof value.link !== 'string' || !PROXY_NAME_PATTERN.test(value.link)) return fail([...path, 'link'], `${describe(value.link)} is not a link name; expected 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
    const own = ['uplink', 'downlink', 'both'].find((key) => has(value, key));
    if (own !== undefined) return fail([...path, own], `the proxy crosses the shared link '${value.link}', which sets its impairments; drop ${own} here and change the link (PUT /v1/links/${value.link}/impairments)`);
    link = value.link;
  }
  const directions = checkDirections(protocol.value!, value, path);
  if (!directions.ok) return directions;
  return ok({
    name: name.value,
    protocol: protocol.value!,
    listen: listen.value,
    upstream: upstream.value,
    idleTimeoutMs: idle.value ?? UDP_IDLE_TIMEOUT_MS_DEFAULT,
    ...(link === undefined ? {} : { link }),
    uplink: directions.value.uplink ?? {},
    downlink: directions.value.downlink ?? {},
  });
}

const LINK_KEYS = ['name', 'uplink', 'downlink', 'both'];

/** Checks a shared-link definition: `{name, uplink?, downlink?, both?}` (UDP impairments; `both` excludes the other two). */
export function checkLinkDefinition(value: unknown, path: FieldPath = []): Checked<LinkDefinition> {
  if (!isObject(value)) return fail(path, 'expected a shared-link definition {name, uplink?, downlink?, both?}');
  const unknown = unknownKey(value, LINK_KEYS, path);
  if (unknown) return unknown;
  const name = checkName(value, path);
  if (!name.ok) return name;
  const directions = checkDirections('udp', value, path);
  if (!directions.ok) return directions;
  return ok({ name: name.value, uplink: (directions.value.uplink ?? {}) as UdpImpairment, downlink: (directions.value.downlink ?? {}) as UdpImpairment });
}

/** Checks the body of an impairment change: `{uplink?, downlink?}` or `{both}`; at least one. */
export function checkImpairmentUpdate(protocol: ProxyProtocol, value: unknown): Checked<ImpairmentUpdate> {
  if (!isObject(value)) return fail([], 'expected {uplink?, downlink?} or {both}');
  const unknown = unknownKey(value, ['uplink', 'downlink', 'both'], []);
  if (unknown) return unknown;
  if (!has(value, 'uplink') && !has(value, 'downlink') && !has(value, 'both')) return fail([], 'empty; give uplink, downlink or both (an empty object {} clears a direction)');
  return checkDirections(protocol, value, []);
}

/** Checks a stall request: `{durationMs, direction?: uplink|downlink|both}` (default both). */
export function checkStallRequest(value: unknown): Checked<StallRequest> {
  if (!isObject(value)) return fail([], 'expected {durationMs, direction?}');
  const unknown = unknownKey(value, ['durationMs', 'direction'], []);
  if (unknown) return unknown;
  if (!has(value, 'durationMs')) return fail(['durationMs'], `missing; expected a number from 1 to ${TCP_DELAY_MS_MAX} ms`);
  const duration = checkNumber(value, 'durationMs', [], 1, TCP_DELAY_MS_MAX, { unit: 'ms' });
  if (!duration.ok) return duration;
  const direction = checkChoice(value, 'direction', [], ['uplink', 'downlink', 'both'] as const);
  if (!direction.ok) return direction;
  const which = direction.value ?? 'both';
  return ok({ directions: which === 'both' ? ['uplink', 'downlink'] : [which], durationMs: duration.value! });
}

/**
 * Turns a checked UDP impairment into the link model a `LinkDirection` takes: reads
 * the trace (a file relative to `baseDir`), and checks the whole model again, because
 * a trace excludes some fields (`loss` with a recorded path, `rateKbps` with mahimahi).
 * Blackout windows stay relative (the proxy shifts them to the time they are applied).
 */
export function resolveUdpImpairment(impairment: UdpImpairment, path: FieldPath, baseDir: string): Checked<LinkModelSpec> {
  const { trace, ...model } = impairment;
  const spec: LinkModelSpec = model;
  if (trace !== undefined) {
    const options = { share: trace.share, loop: trace.loop, lossPattern: trace.lossPattern, queuePackets: trace.queuePackets };
    const loaded = trace.file !== undefined ? loadTraceFile(isAbsolute(trace.file) ? trace.file : resolve(baseDir, trace.file), trace.format, options) : traceSpecFromText(trace.text ?? '', trace.format, options);
    if (!loaded.ok) {
      const field = loaded.error.field !== undefined && TRACE_KEYS.includes(loaded.error.field) && loaded.error.line === 0 ? [loaded.error.field] : [trace.file !== undefined ? 'file' : 'text'];
      return fail([...path, 'trace', ...field], formatTraceParseError(loaded.error.line === 0 ? { ...loaded.error, field: undefined } : loaded.error));
    }
    spec.trace = loaded.trace;
  }
  try {
    validateLinkModel(spec, MODEL_PREFIX);
  } catch (error) {
    if (error instanceof SimConfigError) return { ok: false, error: fromSimConfigError(error, MODEL_PREFIX, path) };
    throw error;
  }
  return ok(spec);
}

/** The folder relative trace files of a config file are read from. */
export function configBaseDir(configPath: string): string {
  return dirname(resolve(configPath));
}
