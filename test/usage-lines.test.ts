import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commands } from '../cli/commands.js';

/** Runs `slipstream <path…> --help` in this process and returns what it printed. */
async function help(path: readonly string[]): Promise<string> {
  const [top, ...rest] = path;
  const load = commands[top!];
  assert.ok(load, `no command ${top}`);
  const command = await load();
  let printed = '';
  const code = await command.run([...rest, '--help'], { out: (text) => (printed += text), err: (text) => (printed += text) });
  assert.equal(code, 0, `slipstream ${path.join(' ')} --help: exit ${code}\n${printed}`);
  return printed;
}

/** The subcommands a help text names: a group's "Subcommands:" list and the "Also: 'slipstream X Y …'" mentions. */
function subcommandsOf(path: readonly string[], text: string): string[][] {
  const found: string[][] = [];
  const section = /^Subcommands:\n((?: {2}\S.*\n?)+)/m.exec(text);
  for (const line of section?.[1]?.split('\n') ?? []) {
    const name = /^ {2}(\S+)/.exec(line)?.[1];
    if (name !== undefined) found.push([...path, name]);
  }
  const prefix = `slipstream ${path.join(' ')} `;
  for (const m of text.matchAll(/'slipstream ([a-z][a-z ]*?)(?= --|')/g)) {
    const mentioned = `slipstream ${m[1]!} `;
    if (mentioned.startsWith(prefix) && mentioned !== prefix) found.push(m[1]!.trim().split(' '));
  }
  return found;
}

test('every usage line names every flag of its command, or says [flags]', async () => {
  const queue: string[][] = Object.keys(commands).map((name) => [name]);
  const seen = new Set<string>();
  let checked = 0;
  while (queue.length > 0) {
    const path = queue.shift()!;
    if (seen.has(path.join(' '))) continue;
    seen.add(path.join(' '));
    const text = await help(path);
    queue.push(...subcommandsOf(path, text));
    const usage = /^Usage: (.*)$/m.exec(text)?.[1];
    assert.ok(usage !== undefined, `slipstream ${path.join(' ')} --help prints no usage line:\n${text}`);
    if (usage.includes('[flags]')) continue;
    const flags = [...(/^Flags:\n((?: {2}.*\n?)+)/m.exec(text)?.[1] ?? '').matchAll(/^ {2}(--[a-z0-9-]+)/gm)].map((m) => m[1]!);
    assert.ok(flags.length > 0, `slipstream ${path.join(' ')} --help lists no flags:\n${text}`);
    const missing = flags.filter((flag) => flag !== '--help' && !new RegExp(`${flag}(?![a-z0-9-])`).test(usage));
    assert.deepEqual(missing, [], `slipstream ${path.join(' ')}: the usage line '${usage}' misses ${missing.join(', ')}`);
    checked++;
  }
  // sim link, sim proxy, sim run and sim swarm spell their flags out.
  assert.ok(checked >= 4, `only ${checked} usage lines spell their flags out`);
  assert.ok(seen.has('coordinator token') && seen.has('sim swarm'), [...seen].join(', '));
});
