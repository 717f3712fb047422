import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runCli } from './support/run-cli.js';
import { formatHelp, parseFlags, type FlagSpec } from '../kit/flags.js';
import { CliUsageError } from '../proto/src/errors.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

test('slipstream --version prints the package version', async () => {
  const result = await runCli(['--version']);
  assert.equal(result.code, 0);
  assert.equal(result.stdout.trim(), `slipstream ${pkg.version}`);
});

test('slipstream --help lists the commands and exits 0', async () => {
  const result = await runCli(['--help']);
  assert.equal(result.code, 0);
  for (const command of ['sim', 'bench', 'demo']) assert.match(result.stdout, new RegExp(`^  ${command} `, 'm'));
});

test('an unknown command or flag prints one line naming it and exits 2', async () => {
  for (const [args, named] of [
    [['frobnicate'], 'frobnicate'],
    [['--frobnicate'], '--frobnicate'],
    [['sim', 'nope'], 'nope'],
  ] as const) {
    const result = await runCli(args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.ok(result.stderr.includes(named), result.stderr);
    assert.equal(result.stdout, '');
  }
});

const specs: Record<string, FlagSpec> = {
  loss: { type: 'number', min: 0, max: 1, description: 'loss probability' },
  packets: { type: 'integer', min: 1, max: 1000, default: 10, description: 'packets' },
  dist: { type: 'string', choices: ['normal', 'uniform'], description: 'distribution' },
  ge: { type: 'numberList', count: 2, min: 0, max: 1, description: 'pair' },
  json: { type: 'boolean', description: 'json' },
};

function usageError(argv: string[]): CliUsageError {
  try {
    parseFlags('test', argv, specs);
  } catch (error) {
    assert.ok(error instanceof CliUsageError);
    return error;
  }
  assert.fail(`expected a usage error for ${argv.join(' ')}`);
}

test('parseFlags reads values in both spellings and applies defaults', () => {
  const { values } = parseFlags('test', ['--loss', '0.25', '--dist=uniform', '--ge', '0.1,0.2', '--json'], specs);
  assert.deepEqual(values, { loss: 0.25, dist: 'uniform', ge: [0.1, 0.2], json: true, packets: 10 });
});

test('parseFlags names the flag and its range in every error', () => {
  const cases: [string[], string, RegExp][] = [
    [['--loss', '1.5'], '--loss', /from 0 to 1/],
    [['--loss', 'abc'], '--loss', /not a number/],
    [['--loss'], '--loss', /missing value/],
    [['--packets', '2.5'], '--packets', /not an integer/],
    [['--packets', '0'], '--packets', /out of range/],
    [['--dist', 'pareto'], '--dist', /normal, uniform/],
    [['--ge', '0.1'], '--ge', /2 comma-separated/],
    [['--ge', '0.1,7'], '--ge', /out of range/],
    [['--nope'], '--nope', /unknown flag/],
    [['--loss', '0.1', '--loss', '0.2'], '--loss', /more than once/],
    [['stray'], 'stray', /unexpected argument/],
  ];
  for (const [argv, flag, message] of cases) {
    const error = usageError(argv);
    assert.equal(error.flag, flag, argv.join(' '));
    assert.match(error.message, message);
    assert.ok(error.message.includes(flag));
    assert.ok(!error.message.includes('\n'));
  }
});

test('formatHelp documents every flag with its range and default', () => {
  const help = formatHelp('slipstream test [flags]', 'A test.', specs);
  assert.match(help, /--loss N\s+loss probability \(from 0 to 1\)/);
  assert.match(help, /\[default 10\]/);
});
