/**
 * The relay's garbage-collector settings (relay/src/gc-tuning.ts): with them V8 no
 * longer grows the young generation however much survives (the growth that, in
 * `bench relay`, put a mark-compact after every scavenge); an operator's own V8 flags
 * win; a real `slipstream relay` process reports what it set in its `started` line and
 * the young generation's size on /metrics.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliProcess } from '../../test/support/cli-process.js';

const GC_TUNING = fileURLToPath(new URL('../src/gc-tuning.js', import.meta.url));

/**
 * Runs a fresh Node process that (when `tune`) applies the settings, then allocates
 * 3 million small objects keeping the newest ~200,000 alive (a workload whose
 * survivors make V8 grow the young generation), and reports what it saw.
 */
function allocate(tune: boolean, v8Flags: { nodeOptions?: string; argv?: string[] } = {}): { before: number; after: number; set: string[]; leftToOperator: string[] } {
  const script = `
    const { semiSpaceBytes, tuneGarbageCollector } = await import(${JSON.stringify(GC_TUNING)});
    const tuning = ${tune} ? tuneGarbageCollector() : { set: [], leftToOperator: [] };
    const before = semiSpaceBytes();
    let keep = [];
    for (let i = 0; i < 3e6; i++) {
      keep.push({ a: i, b: [i, i + 1], c: 'x' + i });
      if (keep.length > 200000) keep = keep.slice(100000);
    }
    console.log(JSON.stringify({ before, after: semiSpaceBytes(), set: tuning.set, leftToOperator: tuning.leftToOperator }));
  `;
  const run = spawnSync(process.execPath, [...(v8Flags.argv ?? []), '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: v8Flags.nodeOptions ?? '' }, timeout: 60_000 });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as { before: number; after: number; set: string[]; leftToOperator: string[] };
}

describe('relay GC settings', () => {
  test('V8 grows the young generation under surviving allocations; with the settings it keeps its size', () => {
    const untuned = allocate(false);
    assert.ok(untuned.after > untuned.before, `without the settings the young generation grows (${untuned.before} → ${untuned.after} bytes); otherwise this test shows nothing`);
    const tuned = allocate(true);
    assert.deepEqual(tuned.set, ['--no-parallel-scavenge', '--semi-space-growth-factor=1']);
    assert.equal(tuned.after, tuned.before, `with the settings it stays at ${tuned.before} bytes`);
  });

  test("an operator's V8 flags win: a semi-space flag in NODE_OPTIONS leaves the growth setting alone; flags on node's command line too", () => {
    const r = allocate(true, { nodeOptions: '--max-semi-space-size=2' });
    assert.deepEqual(r.set, ['--no-parallel-scavenge']);
    assert.deepEqual(r.leftToOperator, ['--semi-space-growth-factor=1']);
    assert.ok(r.after <= 2 << 20, `the operator's 2 MiB cap holds (${r.after} bytes)`);
    const both = allocate(true, { argv: ['--parallel-scavenge', '--semi-space-growth-factor=2'] });
    assert.deepEqual(both.set, []);
    assert.deepEqual(both.leftToOperator, ['--no-parallel-scavenge', '--semi-space-growth-factor=1']);
  });

  test('a real relay process names its settings in the started line and reports the young generation on /metrics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'slipstream-gc-'));
    try {
      const config = join(dir, 'relay.yaml');
      writeFileSync(config, ['metrics: { listen: 127.0.0.1:0 }', 'drain: { timeoutMs: 100 }', 'rules:', '  - { name: game, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:9] }'].join('\n'));
      const { NODE_OPTIONS: _ignored, ...env } = process.env;
      const relay = CliProcess.start(['relay', '--config', config], env);
      const line = JSON.parse((await relay.waitFor(/^.*"relay started".*$/m, 'stdout', 15_000))[0]) as { gc: { set: string[]; leftToOperator: string[]; youngGenerationBytes: number }; addresses: { metrics: { port: number } } };
      assert.deepEqual(line.gc.set, ['--no-parallel-scavenge', '--semi-space-growth-factor=1']);
      assert.deepEqual(line.gc.leftToOperator, []);
      assert.ok(line.gc.youngGenerationBytes >= 1 << 20, String(line.gc.youngGenerationBytes));
      const metrics = await (await fetch(`http://127.0.0.1:${line.addresses.metrics.port}/metrics`)).text();
      assert.match(metrics, new RegExp(`^slipstream_relay_young_generation_bytes ${line.gc.youngGenerationBytes}$`, 'm'));
      await relay.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
