import type { Command } from './command.js';
/** Placeholder replaced below. */
export const demoCommand: Command = { name: 'demo', summary: 'Run a small simulated network and print what players would feel.', async run(_argv, io) { io.out('demo\n'); return 0; } };
