/**
 * `slipstream <command>`: the one CLI in front of every part (relay, coordinator,
 * connect, sim, bench, demo). Exit codes: 0 success, 1 failure at run time, 2 bad usage.
 */
import { readFileSync } from 'node:fs';
import { SlipError } from '../proto/src/errors.js';
import { commands } from './commands.js';
import type { CommandIo } from '../kit/command.js';
import { describeListenError } from '../kit/system-error.js';
import { closestMatch } from '../kit/closest.js';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function topLevelHelp(): Promise<string> {
  const loaded = await Promise.all(Object.values(commands).map((load) => load()));
  const width = Math.max(...loaded.map((c) => c.name.length)) + 2;
  return [
    'Usage: slipstream <command> [flags]',
    '',
    'Slipstream: an acceleration network for multiplayer games and realtime media.',
    '',
    'Commands:',
    ...loaded.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Flags:',
    '  --help       Show this help (every command takes --help too)',
    '  --version    Print the version',
    '',
  ].join('\n');
}

/** Runs the CLI with `argv` (without node and script) and resolves to the exit code. */
export async function main(argv: readonly string[], io: CommandIo): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined) {
      io.err(await topLevelHelp());
      return 2;
    }
    if (name === '--help' || name === '-h' || name === 'help') {
      io.out(await topLevelHelp());
      return 0;
    }
    if (name === '--version' || name === '-v') {
      io.out(`slipstream ${packageVersion()}\n`);
      return 0;
    }
    const load = Object.prototype.hasOwnProperty.call(commands, name) ? commands[name] : undefined;
    if (!load) {
      const what = name.startsWith('-') ? `${name}: unknown flag` : `'${name}': unknown command`;
      const near = name.startsWith('-') ? undefined : closestMatch(name, Object.keys(commands));
      io.err(`slipstream: ${what}${near === undefined ? '' : ` (did you mean '${near}'?)`}; expected one of ${Object.keys(commands).join(', ')} (see 'slipstream --help')\n`);
      return 2;
    }
    return await (await load()).run(rest, io);
  } catch (error) {
    if (error instanceof SlipError) {
      io.err(`slipstream: ${error.message}\n`);
      return error.code === 'SLIP_ERR_CLI_USAGE' || error.code === 'SLIP_ERR_CONFIG_INVALID' || error.code === 'SLIP_ERR_SIM_INVALID' ? 2 : 1;
    }
    // A port in use (or an address not on this machine) is an operator's mistake, not a
    // bug: one line naming the address, exit 1, no stack trace.
    const listen = describeListenError(error);
    if (listen !== undefined) {
      io.err(`slipstream ${name}: ${listen}\n`);
      return 1;
    }
    throw error;
  }
}
