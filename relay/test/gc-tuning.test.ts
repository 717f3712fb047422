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
import net from 'node:net';
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
    assert.deepEqual(tuned.set, ['--no-parallel-scavenge', '--semi-space-growth-factor=1', '--scavenger-max-new-space-capacity-mb=4', '--heap-growing-percent=300']);
    assert.equal(tuned.after, tuned.before, `with the settings it stays at ${tuned.before} bytes`);
  });

  test("an operator's V8 flags win: a semi-space flag in NODE_OPTIONS leaves the growth setting alone; flags on node's command line too", () => {
    const r = allocate(true, { nodeOptions: '--max-semi-space-size=2' });
    assert.deepEqual(r.set, ['--no-parallel-scavenge', '--heap-growing-percent=300']);
    assert.deepEqual(r.leftToOperator, ['--semi-space-growth-factor=1', '--scavenger-max-new-space-capacity-mb=4']);
    assert.ok(r.after <= 2 << 20, `the operator's 2 MiB cap holds (${r.after} bytes)`);
    const both = allocate(true, { argv: ['--parallel-scavenge', '--semi-space-growth-factor=2'] });
    assert.deepEqual(both.set, ['--scavenger-max-new-space-capacity-mb=4', '--heap-growing-percent=300']);
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
      assert.deepEqual(line.gc.set, ['--no-parallel-scavenge', '--semi-space-growth-factor=1', '--scavenger-max-new-space-capacity-mb=4', '--heap-growing-percent=300']);
      assert.deepEqual(line.gc.leftToOperator, []);
      assert.ok(line.gc.youngGenerationBytes >= 1 << 20, String(line.gc.youngGenerationBytes));
      const metrics = await (await fetch(`http://127.0.0.1:${line.addresses.metrics.port}/metrics`)).text();
      assert.match(metrics, new RegExp(`^slipstream_relay_young_generation_bytes ${line.gc.youngGenerationBytes}$`, 'm'));
      await relay.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bulk TCP through a real relay runs (almost) no mark-compact; with V8\'s default backing-store trigger the same transfer runs several', async () => {
    // Node reads each chunk into a fresh 64 KiB ArrayBuffer; with V8's default trigger a
    // full mark-compact frees them every ~50 MiB (see gc-tuning.ts). Counts, not timing.
    const movedBytes = 384 << 20;
    const tuned = await majorCollectionsDuringTransfer([], movedBytes);
    assert.ok(tuned.set.includes('--scavenger-max-new-space-capacity-mb=4'), JSON.stringify(tuned.set));
    const untuned = await majorCollectionsDuringTransfer(['--scavenger-max-new-space-capacity-mb=32'], movedBytes);
    assert.ok(untuned.leftToOperator.includes('--scavenger-max-new-space-capacity-mb=4'), JSON.stringify(untuned.leftToOperator));
    assert.ok(untuned.major >= 3, `with V8's default trigger ${movedBytes >> 20} MiB cost ${untuned.major} mark-compacts (expected several: otherwise this test shows nothing)`);
    assert.ok(tuned.major <= 2, `with the relay's settings ${movedBytes >> 20} MiB cost ${tuned.major} mark-compacts (expected at most 2; ${untuned.major} with V8's default)`);
  });
});

/** The `slipstream_relay_gc_total{kind}` counts on a relay's /metrics. */
async function gcCounts(metricsPort: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^slipstream_relay_gc_total\{kind="(\w+)"\} (\d+)$/gm)) counts[m[1]!] = Number(m[2]);
  return counts;
}

/**
 * Starts a real relay (node flags `nodeArgs`) with one L4 TCP rule to a sink in this
 * process, writes `bytes` through it in 64 KiB chunks on one connection, waits until the
 * sink has them all, and returns the mark-compacts the relay counted meanwhile.
 */
async function majorCollectionsDuringTransfer(nodeArgs: string[], bytes: number): Promise<{ major: number; set: string[]; leftToOperator: string[] }> {
  let received = 0;
  let onReceived = (): void => undefined;
  const sink = net.createServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      onReceived();
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-gc-tcp-'));
  const client = new net.Socket();
  try {
    const config = join(dir, 'relay.yaml');
    writeFileSync(config, ['metrics: { listen: 127.0.0.1:0 }', 'drain: { timeoutMs: 100 }', 'rules:', `  - { name: bulk, protocol: tcp, listen: 127.0.0.1:0, origins: ['127.0.0.1:${(sink.address() as net.AddressInfo).port}'] }`].join('\n'));
    const { NODE_OPTIONS: _ignored, ...env } = process.env;
    const relay = CliProcess.start(['relay', '--config', config], env, nodeArgs);
    const line = JSON.parse((await relay.waitFor(/^.*"relay started".*$/m, 'stdout', 15_000))[0]) as { gc: { set: string[]; leftToOperator: string[] }; addresses: { metrics: { port: number }; rules: Record<string, { port: number }[]> } };
    const metricsPort = line.addresses.metrics.port;
    await new Promise<void>((resolve, reject) => client.connect(line.addresses.rules.bulk![0]!.port, '127.0.0.1', resolve).once('error', reject));
    const before = await gcCounts(metricsPort);
    assert.ok(before.major !== undefined, 'the relay reports slipstream_relay_gc_total{kind="major"}');
    const chunk = Buffer.alloc(64 * 1024, 0x42);
    const all = new Promise<void>((resolve) => (onReceived = () => received >= bytes && resolve()));
    for (let sent = 0; sent < bytes; sent += chunk.length) if (!client.write(chunk)) await new Promise((resolve) => client.once('drain', resolve));
    await all;
    const after = await gcCounts(metricsPort);
    client.destroy();
    await relay.stop();
    return { major: after.major! - before.major!, set: line.gc.set, leftToOperator: line.gc.leftToOperator };
  } finally {
    client.destroy();
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
