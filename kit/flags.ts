/**
 * Command-line flag parsing shared by every `slipstream` command.
 *
 * Each command declares its flags once (name, type, range, default, help text); the
 * same declaration drives parsing, range checks and `--help`. Any problem throws a
 * {@link CliUsageError} whose one-line message names the flag and what it accepts;
 * the CLI prints it and exits 2.
 */
import { CliUsageError } from '../proto/src/errors.js';
import { closestMatch } from './closest.js';

/** Declaration of one flag. */
export interface FlagSpec {
  /** `number` (float), `integer`, `string`, `boolean` (no value), `numberList` (comma-separated floats). */
  readonly type: 'number' | 'integer' | 'string' | 'boolean' | 'numberList';
  /** One-line help text. Say the unit. */
  readonly description: string;
  /** Placeholder shown in help, e.g. `MS`. */
  readonly valueName?: string;
  /** Inclusive lower bound for numbers (each element for lists). */
  readonly min?: number;
  /** Inclusive upper bound for numbers (each element for lists). */
  readonly max?: number;
  /** Exact element count for `numberList`. */
  readonly count?: number;
  /** Accepted values for strings. */
  readonly choices?: readonly string[];
  /** Value when the flag is absent. */
  readonly default?: number | string | boolean | readonly number[];
}

/** The parsed values, keyed by flag name without dashes (`delay-ms`). */
export type FlagValues = Record<string, number | string | boolean | number[] | undefined>;

/** Result of {@link parseFlags}. */
export interface ParsedArgs {
  readonly values: FlagValues;
  readonly positionals: string[];
}

function rangeText(spec: FlagSpec): string {
  if (spec.min !== undefined && spec.max !== undefined) return `from ${spec.min} to ${spec.max}`;
  if (spec.min !== undefined) return `≥ ${spec.min}`;
  if (spec.max !== undefined) return `≤ ${spec.max}`;
  return 'any number';
}

function parseNumber(flag: string, raw: string, spec: FlagSpec, integer: boolean): number {
  const kind = integer ? 'an integer' : 'a number';
  const value = raw.trim() === '' ? Number.NaN : Number(raw);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new CliUsageError(flag, `${flag}: '${raw}' is not ${kind}; expected ${kind} ${rangeText(spec)}`);
  }
  if ((spec.min !== undefined && value < spec.min) || (spec.max !== undefined && value > spec.max)) {
    throw new CliUsageError(flag, `${flag}: ${raw} is out of range; expected ${kind} ${rangeText(spec)}`);
  }
  return value;
}

function parseValue(flag: string, raw: string, spec: FlagSpec): number | string | number[] {
  switch (spec.type) {
    case 'number':
      return parseNumber(flag, raw, spec, false);
    case 'integer':
      return parseNumber(flag, raw, spec, true);
    case 'numberList': {
      const parts = raw.split(',');
      if (spec.count !== undefined && parts.length !== spec.count) {
        throw new CliUsageError(flag, `${flag}: expected ${spec.count} comma-separated numbers ${rangeText(spec)}, got '${raw}'`);
      }
      return parts.map((part) => parseNumber(flag, part, spec, false));
    }
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new CliUsageError(flag, `${flag}: '${raw}' is not one of ${spec.choices.join(', ')}`);
      }
      return raw;
    case 'boolean':
      throw new CliUsageError(flag, `${flag} takes no value`);
  }
}

/**
 * Parses `argv` against `specs`. Accepts `--flag value` and `--flag=value`.
 * `--help`/`-h` is always accepted and reported as `values.help === true`.
 * @param command the command's name for error messages, e.g. `sim link`
 * @param maxPositionals how many non-flag arguments the command takes (default 0)
 */
export function parseFlags(command: string, argv: readonly string[], specs: Readonly<Record<string, FlagSpec>>, maxPositionals = 0): ParsedArgs {
  const values: FlagValues = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      values.help = true;
      continue;
    }
    if (!arg.startsWith('--') || arg === '--') {
      if (arg.startsWith('-') && arg !== '-' && !/^-\d/.test(arg)) {
        throw new CliUsageError(arg, `${arg}: unknown flag for 'slipstream ${command}' (see 'slipstream ${command} --help')`);
      }
      if (positionals.length >= maxPositionals) {
        throw new CliUsageError(arg, `'${arg}': unexpected argument for 'slipstream ${command}' (see 'slipstream ${command} --help')`);
      }
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const flag = `--${name}`;
    const spec = Object.prototype.hasOwnProperty.call(specs, name) ? specs[name] : undefined;
    if (!spec) {
      const near = closestMatch(name, Object.keys(specs));
      throw new CliUsageError(flag, `${flag}: unknown flag for 'slipstream ${command}'${near === undefined ? '' : `; did you mean --${near}?`} (see 'slipstream ${command} --help')`);
    }
    if (values[name] !== undefined) throw new CliUsageError(flag, `${flag}: given more than once`);
    if (spec.type === 'boolean') {
      if (eq !== -1) {
        const raw = arg.slice(eq + 1);
        if (raw !== 'true' && raw !== 'false') throw new CliUsageError(flag, `${flag}: expected true or false, got '${raw}'`);
        values[name] = raw === 'true';
      } else {
        values[name] = true;
      }
      continue;
    }
    let raw: string;
    if (eq !== -1) {
      raw = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw new CliUsageError(flag, `${flag}: missing value; expected ${describeValue(spec)}`);
      }
      raw = next;
      i++;
    }
    values[name] = parseValue(flag, raw, spec);
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (values[name] === undefined && spec.default !== undefined) {
      values[name] = Array.isArray(spec.default) ? [...(spec.default as number[])] : (spec.default as number | string | boolean);
    }
  }
  return { values, positionals };
}

function describeValue(spec: FlagSpec): string {
  switch (spec.type) {
    case 'number':
      return `a number ${rangeText(spec)}`;
    case 'integer':
      return `an integer ${rangeText(spec)}`;
    case 'numberList':
      return `${spec.count ?? 'several'} comma-separated numbers ${rangeText(spec)}`;
    case 'string':
      return spec.choices ? `one of ${spec.choices.join(', ')}` : 'a value';
    case 'boolean':
      return 'no value';
  }
}

/** Renders `--help` text for a command from its flag declarations. */
export function formatHelp(usage: string, summary: string, specs: Readonly<Record<string, FlagSpec>>): string {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const left = spec.type === 'boolean' ? `--${name}` : `--${name} ${spec.valueName ?? (spec.type === 'string' ? 'VALUE' : 'N')}`;
    const range = spec.type === 'number' || spec.type === 'integer' || spec.type === 'numberList' ? ` (${rangeText(spec)})` : spec.choices ? ` (${spec.choices.join('|')})` : '';
    const def = spec.default !== undefined && spec.type !== 'boolean' ? ` [default ${Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default)}]` : '';
    return [left, `${spec.description}${range}${def}`] as const;
  });
  const width = Math.max(10, ...rows.map(([left]) => left.length)) + 2;
  const lines = rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`);
  return `Usage: ${usage}\n\n${summary}\n\nFlags:\n${lines.join('\n')}\n  ${'--help'.padEnd(width)}Show this help\n`;
}

/** Typed accessors, so command code reads `num(values, 'loss')` instead of casting. */
export function num(values: FlagValues, name: string): number | undefined {
  const v = values[name];
  return typeof v === 'number' ? v : undefined;
}
/** String flag value, or undefined when absent. */
export function str(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}
/** Boolean flag value (absent → false). */
export function bool(values: FlagValues, name: string): boolean {
  return values[name] === true;
}
/**
 * Whether `--name` was typed in `argv` (as `--name V` or `--name=V`): for a flag with a
 * default that another flag (such as `--quick`) replaces unless the flag was given.
 */
export function flagGiven(argv: readonly string[], name: string): boolean {
  const flag = `--${name}`;
  return argv.some((a) => a === flag || a.startsWith(`${flag}=`));
}
/** Number-list flag value, or undefined when absent. */
export function numList(values: FlagValues, name: string): number[] | undefined {
  const v = values[name];
  return Array.isArray(v) ? v : undefined;
}
