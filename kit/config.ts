/**
 * Reading configuration files (YAML) with errors people can act on: every problem
 * names the file, the line, the key (as a path like `rules[2].idleTimeoutMs`) and
 * what is accepted. Relay, coordinator and the simulator's scenarios all read their
 * files through {@link ConfigReader}; each declares its keys with the typed getters,
 * and {@link ConfigReader.rejectUnknownKeys} catches typos.
 */
import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { ConfigError } from '../proto/src/errors.js';
import { closestMatch } from './closest.js';

/** A key path inside a document: map keys and sequence indexes. */
export type ConfigPath = readonly (string | number)[];

/** Renders a path the way errors print it: `rules[2].listen`. */
export function formatConfigPath(path: ConfigPath): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out === '' ? '<root>' : out;
}

/** A `unit` that is a duration: `ms` or `s`, alone or before a note such as `ms (0 = never)`. */
const DURATION_UNIT = /^(ms|s)(?:\s*\(.*\))?$/;

/**
 * Parses a duration string as scenario files write them: `500ms`, `30s`, `1.5s`, `2m`.
 * Returns milliseconds, or undefined when `text` is not one (a bare number is not: its
 * unit is the key's own).
 */
export function parseDurationText(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

/** Options shared by the typed getters. */
interface Common<T> {
  /** Value when the key is absent; without it the key is required. */
  readonly default?: T;
}

/** A parsed YAML document plus what is needed to point at a line in it. */
export class ConfigReader {
  private readonly doc: Document;
  private readonly lines = new LineCounter();

  /**
   * Parses `text` (YAML; JSON is YAML too). A syntax error throws {@link ConfigError}
   * with the line of the error.
   * @param file the name errors show (usually the path given on the command line)
   */
  constructor(
    readonly file: string,
    text: string,
  ) {
    this.doc = parseDocument(text, { lineCounter: this.lines, uniqueKeys: true, prettyErrors: false });
    const first = this.doc.errors[0];
    if (first) {
      // linePos is only filled with prettyErrors; the offset always is.
      const line = first.linePos?.[0]?.line ?? (first.pos?.[0] === undefined ? undefined : this.lines.linePos(first.pos[0]).line);
      throw new ConfigError(file, '<syntax>', `not valid YAML: ${first.message.split('\n')[0]}`, line);
    }
  }

  /** Reads and parses a file; an unreadable file throws {@link ConfigError} naming it. */
  static fromFile(path: string): ConfigReader {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new ConfigError(path, '<file>', `cannot read the file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    return new ConfigReader(path, text);
  }

  /** The plain JavaScript value at `path` (undefined when absent). */
  get(path: ConfigPath): unknown {
    if (path.length === 0) return this.doc.toJS();
    const node = this.doc.getIn(path, true);
    if (node === undefined || node === null) return undefined;
    return isScalar(node) ? node.value : (node as { toJSON(): unknown }).toJSON();
  }

  /** Whether `path` is present. */
  has(path: ConfigPath): boolean {
    return path.length === 0 || this.doc.hasIn(path);
  }

  /** The 1-based line of the value at `path` (or of its nearest present parent). */
  lineOf(path: ConfigPath): number | undefined {
    for (let depth = path.length; depth >= 0; depth--) {
      const node = depth === 0 ? this.doc.contents : this.doc.getIn(path.slice(0, depth), true);
      const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
      if (range) return this.lines.linePos(range[0]).line;
    }
    return undefined;
  }

  /** Throws a {@link ConfigError} for `path` with `message` (what is accepted). */
  fail(path: ConfigPath, message: string): never {
    throw new ConfigError(this.file, formatConfigPath(path), message, this.lineOf(path));
  }

  private required<T>(path: ConfigPath, options: Common<T>, what: string): T | undefined {
    const value = this.get(path);
    if (value === undefined || value === null) {
      if (options.default !== undefined) return options.default;
      this.fail(path, `missing; expected ${what}`);
    }
    return undefined;
  }

  /**
   * A number in [min, max] (integer if asked). When `unit` is a duration (`ms` or `s`,
   * optionally followed by a parenthesised note), a duration string such as `500ms`,
   * `60s` or `2m` is accepted too and converted to that unit, as scenario files do; a
   * bare number keeps the documented unit.
   */
  number(path: ConfigPath, options: Common<number> & { min: number; max: number; integer?: boolean; unit?: string }): number {
    const unit = options.unit ? ` ${options.unit}` : '';
    const durationUnit = options.unit === undefined ? undefined : DURATION_UNIT.exec(options.unit)?.[1];
    const what = `${options.integer ? 'an integer' : 'a number'} from ${options.min} to ${options.max}${unit}`;
    // The other spelling is named where the spelling was the problem, not in range errors.
    const whatSpelled = durationUnit !== undefined ? `${what}, or a duration such as 500ms, 60s or 2m` : what;
    const fallback = this.required(path, options, whatSpelled);
    if (fallback !== undefined) return fallback;
    let value = this.get(path);
    if (durationUnit !== undefined && typeof value === 'string') {
      const ms = parseDurationText(value);
      if (ms === undefined) this.fail(path, `'${value}' is not a duration; expected ${whatSpelled}`);
      value = durationUnit === 's' ? ms / 1000 : ms;
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || (options.integer && !Number.isInteger(value))) this.fail(path, `${JSON.stringify(value)} is not ${options.integer ? 'an integer' : 'a number'}; expected ${whatSpelled}`);
    if (value < options.min || value > options.max) this.fail(path, `${value} is out of range; expected ${what}`);
    return value;
  }

  /** A string, optionally one of `choices` or matching `pattern` (described by `patternText`). */
  string(path: ConfigPath, options: Common<string> & { choices?: readonly string[]; pattern?: RegExp; patternText?: string } = {}): string {
    const what = options.choices ? `one of ${options.choices.join(', ')}` : (options.patternText ?? 'a string');
    const fallback = this.required(path, options, what);
    if (fallback !== undefined) return fallback;
    const value = this.get(path);
    if (typeof value !== 'string') this.fail(path, `${JSON.stringify(value)} is not a string; expected ${what}`);
    if (options.choices && !options.choices.includes(value)) this.fail(path, `'${value}' is not accepted; expected ${what}`);
    if (options.pattern && !options.pattern.test(value)) this.fail(path, `'${value}' is not accepted; expected ${what}`);
    return value;
  }

  /** A boolean. */
  boolean(path: ConfigPath, options: Common<boolean> = {}): boolean {
    const fallback = this.required(path, options, 'true or false');
    if (fallback !== undefined) return fallback;
    const value = this.get(path);
    if (typeof value !== 'boolean') this.fail(path, `${JSON.stringify(value)} is not true or false`);
    return value;
  }

  /** The length of the sequence at `path` (0 when absent and `optional`). */
  sequenceLength(path: ConfigPath, options: { optional?: boolean; minItems?: number; maxItems?: number } = {}): number {
    const node = path.length === 0 ? this.doc.contents : this.doc.getIn(path, true);
    if (node === undefined || node === null) {
      if (options.optional) return 0;
      this.fail(path, 'missing; expected a list');
    }
    if (!isSeq(node)) this.fail(path, 'expected a list');
    const length = node.items.length;
    if (options.minItems !== undefined && length < options.minItems) this.fail(path, `has ${length} items; expected at least ${options.minItems}`);
    if (options.maxItems !== undefined && length > options.maxItems) this.fail(path, `has ${length} items; expected at most ${options.maxItems}`);
    return length;
  }

  /** The keys of the map at `path` ([] when absent and `optional`). */
  mapKeys(path: ConfigPath, options: { optional?: boolean } = {}): string[] {
    const node = path.length === 0 ? this.doc.contents : this.doc.getIn(path, true);
    if (node === undefined || node === null) {
      if (options.optional) return [];
      this.fail(path, 'missing; expected a map of keys');
    }
    if (!isMap(node)) this.fail(path, 'expected a map of keys');
    return node.items.map((pair) => String(isScalar(pair.key) ? pair.key.value : pair.key));
  }

  /** Fails on the first key of the map at `path` not in `allowed` (catches typos such as `idleTimoutMs`, and suggests the nearest allowed key). */
  rejectUnknownKeys(path: ConfigPath, allowed: readonly string[]): void {
    for (const key of this.mapKeys(path, { optional: true })) {
      if (allowed.includes(key)) continue;
      const near = closestMatch(key, allowed);
      this.fail([...path, key], `unknown key${near === undefined ? '' : ` (did you mean '${near}'?)`}; expected one of ${allowed.join(', ')}`);
    }
  }
}
