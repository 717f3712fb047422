/**
 * `slipstream sim link` as a user runs it: the compiled CLI in a child process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { main } from '../cli/main.js';
import { CLI_PATH } from './support/run-cli.js';


function slipstream(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI_PATH, 'sim', 'link', ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const MODEL = ['--packets', '50000', '--pps', '5000', '--delay-ms', '20', '--jitter-ms', '5', '--jitter-dist', 'normal', '--ge', '0.02,0.3,0.9,0.001', '--dup', '0.01', '--reorder', '0.01', '--rate-kbps', '9000', '--queue-packets', '50', '--json'];

describe('slipstream sim link', () => {
  it('prints one JSON object with the contract fields', () => {
    const run = slipstream('--seed', '3', '--packets', '20000', '--pps', '1000', '--loss', '0.05', '--delay-ms', '20', '--jitter-ms', '5', '--json');
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'exactly one line of JSON');
    const report = JSON.parse(lines[0]!) as Record<string, unknown> & { latencyMs: Record<string, number> };
    for (const key of ['seed', 'sent', 'delivered', 'lossRate', 'meanBurstLength', 'latencyMs', 'reordered', 'duplicated']) assert.ok(key in report, `missing ${key}`);
    for (const key of ['p50', 'p99', 'max']) assert.equal(typeof report.latencyMs[key], 'number');
    assert.equal(report.sent, 20_000);
    assert.equal(report.seed, 3);
    assert.match(run.stderr, /packets per CPU-second/, 'timing goes to stderr, not into the JSON');
  });

  it('the same seed twice gives byte-identical JSON; different seeds differ', () => {
    const first = slipstream('--seed', '11', ...MODEL);
    const second = slipstream('--seed', '11', ...MODEL);
    const other = slipstream('--seed', '12', ...MODEL);
    assert.equal(first.status, 0, first.stderr);
    assert.equal(first.stdout, second.stdout, 'seed 11 twice');
    assert.notEqual(first.stdout.replace('"seed":11', ''), other.stdout.replace('"seed":12', ''), 'seeds 11 and 12');
  });

  it('prints a readable table without --json', () => {
    const run = slipstream('--packets', '1000', '--loss', '0.1', '--keep-order', '--jitter-ms', '3', '--delay-ms', '10');
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /model: delay 10 ms, jitter 3 ms uniform, keep order, loss 0\.1/);
    assert.match(run.stdout, /reordered\s+0\n/);
    assert.match(run.stdout, /latency ms\s+min/);
  });

  const badInputs: [string[], string, RegExp][] = [
    [['--loss', '1.5'], '--loss', /from 0 to 1/],
    [['--loss', '-0.1'], '--loss', /from 0 to 1/],
    [['--loss', '0.1', '--ge', '0.1,0.3,1,0'], '--ge', /only one of/],
    [['--ge', '0.1,0.3,1'], '--ge', /4 comma-separated/],
    [['--ge', '0.1,0.3,1,2'], '--ge', /from 0 to 1/],
    [['--loss-4state', '0.6,0.1,0.1,0.1,0.5'], '--loss-4state', /at most 1/],
    [['--packets', '0'], '--packets', /from 1 to/],
    [['--packets', '1.5'], '--packets', /integer/],
    [['--pps', 'fast'], '--pps', /not a number/],
    [['--delay-ms', '-5'], '--delay-ms', /from 0 to 3600000/],
    [['--jitter-dist', 'gamma'], '--jitter-dist', /uniform, normal, pareto/],
    [['--dup', '2'], '--dup', /from 0 to 1/],
    [['--queue-packets', '10'], '--queue-packets', /--rate-kbps/],
    [['--rate-kbps', '0'], '--rate-kbps', /from 1 to/],
    [['--mtu', '0'], '--mtu', /from 1 to 65535/],
    [['--blackout-ms', '10,5'], '--blackout-ms', /greater than START/],
    [['--lose', '0.1'], '--lose', /unknown flag/],
  ];
  for (const [args, flag, range] of badInputs) {
    it(`exits 2 naming ${flag} for ${args.join(' ')}`, async () => {
      // In-process (same code path as the binary, minus a process start per case).
      let stderr = '';
      let stdout = '';
      const code = await main(['sim', 'link', ...args, '--json'], { out: (t) => (stdout += t), err: (t) => (stderr += t) });
      assert.equal(code, 2, stderr);
      assert.equal(stdout, '');
      assert.equal(stderr.trim().split('\n').length, 1, 'one line');
      assert.ok(stderr.includes(flag), `message names ${flag}: ${stderr}`);
      assert.match(stderr, range);
    });
  }

  it('the binary itself exits 2 for --loss 1.5 with the flag and range on stderr', () => {
    const run = slipstream('--loss', '1.5', '--json');
    assert.equal(run.status, 2);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^slipstream: --loss: 1\.5 is out of range; expected a number from 0 to 1\n$/);
  });

  it('--help lists the flags and exits 0', () => {
    const run = slipstream('--help');
    assert.equal(run.status, 0);
    for (const flag of ['--seed', '--packets', '--pps', '--ge', '--keep-order', '--rate-kbps', '--queue-packets', '--json']) assert.ok(run.stdout.includes(flag), flag);
  });
});
