/**
 * Request validation that names the field and the reason, for 400 answers such as
 * `{"error":{"code":"invalid_field","field":"reports[3].rttMs","reason":"-1 is out of range; expected a number from 0 to 60000"}}`.
 * Where proto already declares a control message's fields (relay registration and
 * heartbeat), those schemas are the single source of truth; see {@link checkControl}.
 */
import { isIP } from 'node:net';
import { controlSchemas, invalidControlField, type ControlMessageType } from '../../proto/src/control.js';

/** A rule for one field. */
export type FieldRule =
  | { readonly type: 'string'; readonly maxChars: number; readonly pattern?: RegExp; readonly patternText?: string; readonly optional?: boolean }
  | { readonly type: 'number'; readonly min: number; readonly max: number; readonly integer?: boolean; readonly optional?: boolean }
  | { readonly type: 'boolean'; readonly optional?: boolean }
  | { readonly type: 'object'; readonly fields: Readonly<Record<string, FieldRule>>; readonly optional?: boolean }
  | { readonly type: 'array'; readonly items: FieldRule; readonly maxItems: number; readonly minItems?: number; readonly optional?: boolean };

/** Why a value was refused. */
export interface Invalid {
  /** Path of the field, e.g. `reports[3].rttMs`; `<body>` for the whole body. */
  readonly field: string;
  /** What was wrong and what is accepted. */
  readonly reason: string;
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/** Describes what a rule accepts, for messages. */
export function describeRule(rule: FieldRule): string {
  switch (rule.type) {
    case 'string':
      return rule.patternText ?? `a string of at most ${rule.maxChars} characters`;
    case 'number':
      return `${rule.integer ? 'an integer' : 'a number'} from ${rule.min} to ${rule.max}`;
    case 'boolean':
      return 'true or false';
    case 'object':
      return `an object with ${Object.keys(rule.fields).join(', ')}`;
    case 'array':
      return `a list of at most ${rule.maxItems} items`;
  }
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Checks `value` against `rule`; returns the first problem or undefined. */
export function check(value: unknown, rule: FieldRule, path: string): Invalid | undefined {
  const field = path === '' ? '<body>' : path;
  if (value === undefined) return rule.optional ? undefined : { field, reason: `missing; expected ${describeRule(rule)}` };
  switch (rule.type) {
    case 'string':
      if (typeof value !== 'string') return { field, reason: `${show(value)} is not a string; expected ${describeRule(rule)}` };
      if (value.length === 0 || value.length > rule.maxChars) return { field, reason: `has ${value.length} characters; expected 1 to ${rule.maxChars}` };
      if (rule.pattern && !rule.pattern.test(value)) return { field, reason: `${show(value)} is not accepted; expected ${describeRule(rule)}` };
      return undefined;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return { field, reason: `${show(value)} is not a number; expected ${describeRule(rule)}` };
      if (rule.integer && !Number.isInteger(value)) return { field, reason: `${value} is not an integer; expected ${describeRule(rule)}` };
      if (value < rule.min || value > rule.max) return { field, reason: `${value} is out of range; expected ${describeRule(rule)}` };
      return undefined;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : { field, reason: `${show(value)} is not true or false` };
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return { field, reason: `${show(value)} is not an object; expected ${describeRule(rule)}` };
      const record = value as Record<string, unknown>;
      for (const [key, inner] of Object.entries(rule.fields)) {
        const bad = check(Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined, inner, join(path, key));
        if (bad) return bad;
      }
      for (const key of Object.keys(record)) {
        if (!Object.prototype.hasOwnProperty.call(rule.fields, key)) return { field: join(path, key), reason: `unknown field; expected only ${Object.keys(rule.fields).join(', ')}` };
      }
      return undefined;
    }
    case 'array': {
      if (!Array.isArray(value)) return { field, reason: `${show(value)} is not a list; expected ${describeRule(rule)}` };
      if (value.length > rule.maxItems) return { field, reason: `has ${value.length} items; expected at most ${rule.maxItems}` };
      if (rule.minItems !== undefined && value.length < rule.minItems) return { field, reason: `has ${value.length} items; expected at least ${rule.minItems}` };
      for (let i = 0; i < value.length; i++) {
        const bad = check(value[i], rule.items, `${path}[${i}]`);
        if (bad) return bad;
      }
      return undefined;
    }
  }
}

/**
 * Checks a JSON body against a control message's schema from proto/src/control.ts
 * (the fields, no `type`), so that HTTP and UDP control share one definition.
 */
export function checkControl(body: Record<string, unknown>, type: ControlMessageType): Invalid | undefined {
  const bad = invalidControlField(body, type);
  if (bad === undefined) return undefined;
  const schema = controlSchemas[type] as Readonly<Record<string, { kind: string; min?: number; max?: number; integer?: boolean; maxChars?: number; pattern?: RegExp }>>;
  const spec = Object.prototype.hasOwnProperty.call(schema, bad) ? schema[bad] : undefined;
  if (!spec) return { field: bad, reason: `unknown field; expected only ${Object.keys(schema).join(', ')}` };
  const value = body[bad];
  if (value === undefined) return { field: bad, reason: `missing (a ${spec.kind})` };
  switch (spec.kind) {
    case 'number':
      return { field: bad, reason: `${show(value)} is not accepted; expected ${spec.integer ? 'an integer' : 'a number'} from ${spec.min} to ${spec.max}` };
    case 'string':
      return { field: bad, reason: `${show(value)} is not accepted; expected a string of at most ${spec.maxChars ?? 256} characters${spec.pattern ? ` matching ${spec.pattern.source}` : ''}` };
    case 'boolean':
      return { field: bad, reason: `${show(value)} is not true or false` };
    default:
      return { field: bad, reason: `${show(value)} is not accepted (expected ${spec.kind})` };
  }
}

/** What {@link checkEndpoint} accepts, for messages. */
export const ENDPOINT_TEXT = 'an IP literal and a port from 1 to 65535: "203.0.113.7:4433" or "[2001:db8::7]:4433"';

/**
 * Checks a relay's advertised endpoint (`tunnelAddress`, `probeAddress`): an IPv4
 * literal or a bracketed IPv6 literal, a colon, and a decimal port from 1 to 65535.
 * Clients dial it as given, so host names, zone ids and port 0 are refused here rather
 * than failing later in every SDK that receives the route. (proto's schema only bounds
 * the length: an IP-literal pattern is not something its property tests can generate.)
 */
export function checkEndpoint(value: unknown, field: string): Invalid | undefined {
  if (typeof value !== 'string') return { field, reason: `${show(value)} is not a string; expected ${ENDPOINT_TEXT}` };
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : 0;
  const ok = m !== null && (m[1] !== undefined ? isIP(m[1]) === 6 : isIP(m[2]!) === 4) && port >= 1 && port <= 65_535 && !/^0\d/.test(m[3]!);
  return ok ? undefined : { field, reason: `${show(value)} is not accepted; expected ${ENDPOINT_TEXT}` };
}
