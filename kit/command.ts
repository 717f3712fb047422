/**
 * The shape of a `slipstream` command. Each part contributes its commands through
 * `cli/commands.ts`; a command gets its own argv (after its name) and returns an
 * exit code. Usage errors are thrown as `CliUsageError` and turned into exit 2.
 */

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
        throw new CliUsageError(sub, `'${sub}': unknown subcommand of 'slipstream ${name}'; expected one of ${Object.keys(subcommands).join(', ')}`);
      }
      return (await load()).run(rest, io);
    },
  };
}
