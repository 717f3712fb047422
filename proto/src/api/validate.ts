/**
 * Validation of the coordinator API's request bodies, declared once beside the
 * contract (`./contract.ts`): rules that name the field and the reason, for 400 answers
 * such as
 * `{"error":{"code":"invalid_field","field":"reports[3].rttMs","reason":"-1 is out of range; expected a number from 0 to 60000"}}`.
 * Where proto already declares a control message's fields (relay registration and
 * heartbeat), those schemas are the single source of truth; see {@link checkControl}.
 */
import { controlSchemas, invalidControlField, type ControlMessageType } from '../control.js';
import { CLIENT_REPORTS_PER_REQUEST_MAX, RELAY_STATUS_NAME_CHARS_MAX, RELAY_STATUS_ORIGINS_MAX, RELAY_STATUS_RULE_ORIGINS_MAX, RELAY_STATUS_RULES_MAX, REPORTS_PER_REQUEST_MAX } from './contract.js';

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

/** A short rendering of a refused value for messages (strings cut at 40 characters). */
export function describeValue(value: unknown): string {
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
      if (typeof value !== 'string') return { field, reason: `${describeValue(value)} is not a string; expected ${describeRule(rule)}` };
      if (value.length === 0 || value.length > rule.maxChars) return { field, reason: `has ${value.length} characters; expected 1 to ${rule.maxChars}` };
      if (rule.pattern && !rule.pattern.test(value)) return { field, reason: `${describeValue(value)} is not accepted; expected ${describeRule(rule)}` };
      return undefined;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return { field, reason: `${describeValue(value)} is not a number; expected ${describeRule(rule)}` };
      if (rule.integer && !Number.isInteger(value)) return { field, reason: `${value} is not an integer; expected ${describeRule(rule)}` };
      if (value < rule.min || value > rule.max) return { field, reason: `${value} is out of range; expected ${describeRule(rule)}` };
      return undefined;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : { field, reason: `${describeValue(value)} is not true or false` };
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return { field, reason: `${describeValue(value)} is not an object; expected ${describeRule(rule)}` };
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
      if (!Array.isArray(value)) return { field, reason: `${describeValue(value)} is not a list; expected ${describeRule(rule)}` };
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
      return { field: bad, reason: `${describeValue(value)} is not accepted; expected ${spec.integer ? 'an integer' : 'a number'} from ${spec.min} to ${spec.max}` };
    case 'string':
      return { field: bad, reason: `${describeValue(value)} is not accepted; expected a string of at most ${spec.maxChars ?? 256} characters${spec.pattern ? ` matching ${spec.pattern.source}` : ''}` };
    case 'boolean':
      return { field: bad, reason: `${describeValue(value)} is not true or false` };
    default:
      return { field: bad, reason: `${describeValue(value)} is not accepted (expected ${spec.kind})` };
  }
}

// ── The API's rules ─────────────────────────────────────────────────────────────

/** A relay id: 1–64 of `A-Za-z0-9._-`. */
export const RELAY_ID_RULE: FieldRule = { type: 'string', maxChars: 64, pattern: /^[A-Za-z0-9._-]+$/, patternText: 'a relay id: 1–64 of A-Z a-z 0-9 . _ -' };
/** An origin name: 1–128 of `A-Za-z0-9._:-`. */
export const ORIGIN_RULE: FieldRule = { type: 'string', maxChars: 128, pattern: /^[A-Za-z0-9._:-]+$/, patternText: 'an origin name: 1–128 of A-Z a-z 0-9 . _ : -' };
/** The four figures of a path report: RTT and jitter in ms (0..60000), loss fraction 0..1, probe samples 0..1e6. */
export const PATH_FIGURES_RULES = {
  rttMs: { type: 'number', min: 0, max: 60_000 },
  jitterMs: { type: 'number', min: 0, max: 60_000 },
  lossFraction: { type: 'number', min: 0, max: 1 },
  samples: { type: 'number', min: 0, max: 1_000_000, integer: true },
} as const satisfies Record<string, FieldRule>;
/** Body of `POST /v1/relays/reports`: `{ relayId, reports: RelayPathReport[] }` (at most {@link REPORTS_PER_REQUEST_MAX}). */
export const RELAY_REPORTS_RULE: FieldRule = {
  type: 'object',
  fields: {
    relayId: RELAY_ID_RULE,
    reports: {
      type: 'array',
      maxItems: REPORTS_PER_REQUEST_MAX,
      items: { type: 'object', fields: { targetRelayId: { ...RELAY_ID_RULE, optional: true }, origin: { ...ORIGIN_RULE, optional: true }, ...PATH_FIGURES_RULES } },
    },
  },
};
/** Body of `POST /v1/reports`: `{ reports: ClientPathReport[] }` (at most {@link CLIENT_REPORTS_PER_REQUEST_MAX}). */
export const CLIENT_REPORTS_RULE: FieldRule = {
  type: 'object',
  fields: { reports: { type: 'array', maxItems: CLIENT_REPORTS_PER_REQUEST_MAX, items: { type: 'object', fields: { relayId: RELAY_ID_RULE, ...PATH_FIGURES_RULES } } } },
};

const COUNT_MAX = 0xffff_ffff;
const count: FieldRule = { type: 'number', min: 0, max: COUNT_MAX, integer: true };
const fraction: FieldRule = { type: 'number', min: 0, max: 1 };
const statusName: FieldRule = { type: 'string', maxChars: RELAY_STATUS_NAME_CHARS_MAX };

/** A heartbeat's `status` ({@link RelayStatus} in contract.ts): bounded lists, counts, fractions 0..1. */
export const RELAY_STATUS_RULE: FieldRule = {
  type: 'object',
  optional: true,
  fields: {
    origins: {
      type: 'array',
      maxItems: RELAY_STATUS_ORIGINS_MAX,
      items: { type: 'object', fields: { origin: statusName, players: count, backups: count, fecRecovered: count, lossBeforeFec: fraction, lossAfterFec: fraction, downLossBeforeFec: { ...fraction, optional: true }, downLossAfterFec: { ...fraction, optional: true } } },
    },
    otherPlayers: count,
    otherBackups: count,
    rules: {
      type: 'array',
      maxItems: RELAY_STATUS_RULES_MAX,
      items: {
        type: 'object',
        fields: {
          rule: statusName,
          protocol: { type: 'string', maxChars: 8, pattern: /^(udp|tcp)$/, patternText: '"udp" or "tcp"' },
          listen: statusName,
          group: statusName,
          sessions: count,
          origins: { type: 'array', maxItems: RELAY_STATUS_RULE_ORIGINS_MAX, items: { type: 'object', fields: { origin: statusName, healthy: { type: 'boolean' } } } },
        },
      },
    },
  },
};
