/**
 * `slipstream bench qoe` end to end, CI-sized (`--quick --cases clean`: a few seconds of
 * traffic): it starts the coordinator, three relays, `connect`, the impairment proxy and
 * the echo origin as real processes, and its JSON keeps the contract of bench/qoe.ts.
 * Figures are not judged against the targets here (tests check behaviour, not
 * timing): only that each is a sane measured number.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './support/run-cli.js';
import { longestGapMs, PATH_DIRECT, PATH_SLIPSTREAM, quantile, runGame, startEchoOrigin } from '../bench/qoe-traffic.js';

/** About 16 s on a quiet machine; generous, for a machine running other test files beside it. */
const BENCH_TIMEOUT_MS = 90_000;

interface PathJson {
  loss: number;
  rttP50Ms: number;
  rttP99Ms: number;
}

describe('slipstream bench qoe', () => {
  test('quantile and longest gap', () => {
    assert.equal(quantile([5, 1, 3, 2, 4], 0.5), 3);
    assert.equal(quantile([1, 2, 3], 0.99), 3);
    assert.ok(Number.isNaN(quantile([], 0.5)));
    const record = { sent: 3, rttMsBySeq: new Map([[0, 1], [1, 1], [2, 1]]), arrivalMs: [110, 120, 300], duplicateEchoes: 0 };
    assert.equal(longestGapMs(record, 100, 320), 180);
    assert.equal(longestGapMs(record, 100, 700), 400, 'silence after the last echo counts');
  });

  test('every datagram reaches the origin tagged with its own path, once, from one source per path', async () => {
    // Regression: one buffer rewritten for the second path while dgram still held it sent
    // every direct datagram tagged as Slipstream's.
    const origin = await startEchoOrigin('first');
    try {
      const run = await runGame({ directPort: origin.port, slipstreamPort: origin.port, caseNumber: 3, seconds: 1, packetsPerSecond: 60, drainMs: 300 });
      for (const [tag, record] of [[PATH_DIRECT, run.direct], [PATH_SLIPSTREAM, run.slipstream]] as const) {
        const counts = origin.counts(3, tag);
        assert.equal(counts.arrivals.size, record.sent, `path ${tag}: every datagram arrived under its own tag`);
        assert.ok([...counts.arrivals.values()].every((n) => n === 1), `path ${tag}: none twice`);
        assert.equal(counts.sources.size, 1, `path ${tag}: one source`);
        assert.equal(record.rttMsBySeq.size, record.sent, `path ${tag}: every echo came back`);
      }
    } finally {
      await origin.close();
    }
  });

  test('--quick --cases clean --json: one case with direct and Slipstream figures in range', async () => {
    const r = await runCli(['bench', 'qoe', '--quick', '--cases', 'clean', '--json'], BENCH_TIMEOUT_MS);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /bench qoe: fleet ready/, 'progress lines on stderr');
    const result = JSON.parse(r.stdout) as { cases: { name: string; direct: PathJson; slipstream: PathJson & Record<string, number> }[] };
    assert.deepEqual(result.cases.map((c) => c.name), ['clean']);
    const [clean] = result.cases;
    for (const path of [clean!.direct, clean!.slipstream]) {
      assert.ok(path.loss >= 0 && path.loss <= 1, `loss ${path.loss}`);
      assert.ok(path.rttP50Ms > 0 && path.rttP99Ms >= path.rttP50Ms, `RTT p50 ${path.rttP50Ms} p99 ${path.rttP99Ms}`);
    }
    const slip = clean!.slipstream;
    assert.ok(slip.longestGapMs! > 0, `longestGapMs ${slip.longestGapMs}`);
    assert.ok(slip.overheadRatio! >= 1, `overheadRatio ${slip.overheadRatio}`);
    // The FEC overhead is measured (connect's status line and the relays' /metrics): a number, and on a clean path the controller sends few repairs.
    assert.ok(typeof slip.fecOverheadRatio === 'number' && slip.fecOverheadRatio >= 0 && slip.fecOverheadRatio <= 1.5, `fecOverheadRatio ${slip.fecOverheadRatio}`);
    // On a clean last mile the game server sees the player from one relay, each datagram
    // once (the direct path's datagrams, tagged apart, are not counted here).
    assert.equal(slip.originSources, 1, `originSources ${slip.originSources}`);
    assert.equal(slip.originDuplicates, 0, `originDuplicates ${slip.originDuplicates}`);
  });

  test('an unknown case is a usage error (exit 2) naming the flag', async () => {
    const r = await runCli(['bench', 'qoe', '--cases', 'clean,nope'], 30_000);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--cases: unknown case 'nope'/);
  });
});
