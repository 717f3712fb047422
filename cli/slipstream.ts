#!/usr/bin/env node
/** The `slipstream` executable: runs {@link main} on the process's arguments and streams. */
import type { CommandIo } from '../kit/command.js';
import { main } from './main.js';

const io: CommandIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

main(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`slipstream: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
