/**
 * The shape of a `slipstream` command. Each part contributes its commands through
 * `cli/commands.ts`; a command gets its own argv (after its name) and returns an
 * exit code. Usage errors are thrown as `CliUsageError` and turned into exit 2.
 */
import { closestMatch } from './closest.js';
import { formatHelp, parseFlags, type FlagSpec, type ParsedArgs } from './flags.js';

/** Where a command writes. Tests pass buffers; the CLI passes process streams. */
export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

/** A runnable command. */
export interface Command {
  /** Name as typed, e.g. `sim`. */
  readonly name: string;
  /** One line for the top-level `--help`. */
  readonly summary: string;
  /** Runs the command; resolves to the process exit code. */
  run(argv: readonly string[], io: CommandIo): Promise<number>;
}

/** What a {@link flagCommand} is made of. */
export interface FlagCommandSpec {
  /** The whole command as typed after `slipstream`, e.g. `bench proxy`: names it in usage errors; its last word is the command's {@link Command.name}. */
  readonly path: string;
  /** One line for the top-level `--help`. */
  readonly summary: string;
  /** The usage line `--help` prints. Default `slipstream <path> [flags]`, e.g. `slipstream bench proxy [flags]`. */
  readonly usage?: string;
  /** What `--help` prints under the usage line. Default {@link summary}. */
  readonly helpText?: string;
  /** The flags, as {@link parseFlags} takes them; `--help` among them. */
  readonly flags: Readonly<Record<string, FlagSpec>>;
  /** Positional arguments accepted at most. Default 0. */
  readonly maxPositionals?: number;
  /** Runs with the parsed flags (not called for `--help`); `argv` as given, for flags whose presence matters. */
  run(parsed: ParsedArgs, io: CommandIo, argv: readonly string[]): Promise<number>;
}

/**
 * A command that parses its flags and answers `--help` the same way as every other:
 * bad flags throw `CliUsageError` (exit 2), `--help` prints the usage, the help text
 * and the flags and exits 0, anything else runs `spec.run`.
 */
export function flagCommand(spec: FlagCommandSpec): Command {
  const usage = spec.usage ?? `slipstream ${spec.path} [flags]`;
  return {
    name: spec.path.slice(spec.path.lastIndexOf(' ') + 1),
    summary: spec.summary,
    async run(argv, io) {
      const parsed = parseFlags(spec.path, argv, spec.flags, spec.maxPositionals ?? 0);
      if (parsed.values.help === true) {
        io.out(formatHelp(usage, spec.helpText ?? spec.summary, spec.flags));
        return 0;
      }
      return spec.run(parsed, io, argv);
    },
  };
}

/**
 * A command made of subcommands (`slipstream sim link`, `slipstream bench fec`).
 * Unknown subcommands throw a usage error naming the accepted ones.
 */
export function commandGroup(name: string, summary: string, subcommands: Readonly<Record<string, () => Promise<Command>>>): Command {
  return {
    name,
    summary,
    async run(argv, io) {
      const [sub, ...rest] = argv;
      if (sub === undefined || sub === '--help' || sub === '-h') {
        const loaded = await Promise.all(Object.values(subcommands).map((load) => load()));
        const width = Math.max(...loaded.map((c) => c.name.length)) + 2;
        io.out(`Usage: slipstream ${name} <subcommand> [flags]\n\n${summary}\n\nSubcommands:\n${loaded.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}\n`);
        return sub === undefined ? 2 : 0;
      }
      const load = Object.prototype.hasOwnProperty.call(subcommands, sub) ? subcommands[sub] : undefined;
      if (!load) {
        const { CliUsageError } = await import('../proto/src/errors.js');
        const near = closestMatch(sub, Object.keys(subcommands));
        throw new CliUsageError(sub, `'${sub}': unknown subcommand of 'slipstream ${name}'${near === undefined ? '' : ` (did you mean '${near}'?)`}; expected one of ${Object.keys(subcommands).join(', ')}`);
      }
      return (await load()).run(rest, io);
    },
  };
}
