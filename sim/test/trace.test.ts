/**
 * Traces: the Slipstream trace format (JSON lines and CSV), TraceRecorder, mahimahi
 * delivery traces, and trace replay in the link core, all in virtual time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SimConfigError } from '../../proto/src/errors.js';
import { Rng } from '../../proto/src/rng.js';
import { LinkDirection, validateLinkModel, type LinkModelSpec } from '../src/core/link.js';
import { SimNetwork } from '../src/core/network.js';
import { formatTraceHeader, formatTraceInterval, formatTraceParseError, parseSlipTrace, parseSlipTraceCsv, parseSlipTraceJsonl, type SlipTraceEncoding, type TraceInterval } from '../../proto/src/trace/format.js';
import { compareTraceIntervals, probeIntervals, TRACE_SPREAD_LOSS_SLACK_PACKETS } from '../src/trace/compare.js';
import { detectTraceFormat, traceSpecFromText } from '../src/trace/load.js';
import { DeliverySchedule, MAHIMAHI_PACKET_BYTES, parseMahimahiTrace } from '../src/core/trace-mahimahi.js';
import { TraceRecorder } from '../../proto/src/trace/recorder.js';

const FC_TIME_MS = 4000;

const intervalArb = fc.record({
  rttMs: fc.option(fc.double({ min: 0, max: 60_000, noNaN: true }), { nil: null }),
  lossFraction: fc.double({ min: 0, max: 1, noNaN: true }),
  jitterMs: fc.option(fc.double({ min: 0, max: 60_000, noNaN: true }), { nil: null }),
  probes: fc.option(fc.nat(1_000_000), { nil: undefined }),
  gapMs: fc.integer({ min: 1, max: 100_000 }),
});

function encode(encoding: SlipTraceEncoding, intervals: TraceInterval[], intervalMs = 1000): string {
  return [formatTraceHeader(encoding, intervalMs), ...intervals.map((i) => formatTraceInterval(encoding, i))].join('\n') + '\n';
}

describe('Slipstream trace format', () => {
  it('round-trips intervals through both encodings (to the written precision)', () => {
    fc.assert(
      fc.property(fc.array(intervalArb, { minLength: 1, maxLength: 30 }), fc.constantFrom<SlipTraceEncoding>('jsonl', 'csv'), (raw, encoding) => {
        let t = 0;
        const intervals: TraceInterval[] = raw.map((r) => {
          const interval = { tMs: t, rttMs: r.rttMs, lossFraction: r.lossFraction, jitterMs: r.jitterMs, ...(r.probes === undefined ? {} : { probes: r.probes }) };
          t += r.gapMs;
          return interval;
        });
        const parsed = parseSlipTrace(encode(encoding, intervals));
        assert.ok(parsed.ok, JSON.stringify(!parsed.ok && parsed.error));
        assert.equal(parsed.trace.intervals.length, intervals.length);
        parsed.trace.intervals.forEach((got, k) => {
          const want = intervals[k]!;
          assert.equal(got.tMs, want.tMs);
          assert.equal(got.rttMs === null, want.rttMs === null);
          if (want.rttMs !== null) assert.ok(Math.abs(got.rttMs! - want.rttMs) <= 0.0005 + 1e-9);
          assert.ok(Math.abs(got.lossFraction - want.lossFraction) <= 5e-7 + 1e-12);
          assert.equal(got.probes, want.probes);
        });
      }),
      { interruptAfterTimeLimit: FC_TIME_MS },
    );
  });

  it('arbitrary text never throws: every parser returns a value or a typed error with its line', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 400 }),
      fc.array(fc.oneof(fc.constant('{"format":"slipstream-trace","version":1}'), fc.constant('tMs,rttMs,lossFraction,jitterMs'), fc.json(), fc.string({ maxLength: 40 }), fc.stringMatching(/^[0-9,.\-e ]{0,30}$/)), { maxLength: 12 }).map((lines) => lines.join('\n')),
    );
    fc.assert(
      fc.property(text, (input) => {
        for (const result of [parseSlipTrace(input), parseSlipTraceJsonl(input), parseSlipTraceCsv(input), parseMahimahiTrace(input), traceSpecFromText(input, undefined)]) {
          if (!result.ok) {
            assert.ok(Number.isInteger(result.error.line) && result.error.line >= 0);
            assert.ok(result.error.reason.length > 0);
            assert.equal(typeof formatTraceParseError(result.error), 'string');
          }
        }
        assert.ok(['slipstream', 'mahimahi'].includes(detectTraceFormat(input)));
      }),
      { interruptAfterTimeLimit: FC_TIME_MS },
    );
  });

  it('names the line and field of a bad value', () => {
    const bad = parseSlipTrace('{"format":"slipstream-trace","version":1}\n{"tMs":0,"rttMs":20,"lossFraction":0,"jitterMs":1}\n\n{"tMs":1000,"rttMs":20,"lossFraction":1.5,"jitterMs":1}\n');
    assert.ok(!bad.ok);
    assert.deepEqual(bad.error, { line: 4, field: 'lossFraction', reason: '1.5 is out of range; expected a number from 0 to 1' });
    const order = parseSlipTraceCsv('tMs,rttMs,lossFraction,jitterMs\n0,20,0,1\n0,20,0,1\n');
    assert.ok(!order.ok && order.error.line === 3 && order.error.field === 'tMs');
    const version = parseSlipTraceJsonl('{"format":"slipstream-trace","version":2}\n');
    assert.ok(!version.ok && version.error.field === 'version');
    const empty = parseSlipTraceCsv('tMs,rttMs,lossFraction,jitterMs\n,20,0,1\n');
    assert.ok(!empty.ok && empty.error.field === 'tMs' && /missing/.test(empty.error.reason));
    const csv = parseSlipTraceCsv('# a comment\ntMs,rttMs,lossFraction,jitterMs,probes\n0,,1,,40\n500,31.5,0.1,2,40\n');
    assert.ok(csv.ok);
    assert.deepEqual(csv.trace.intervals[0], { tMs: 0, rttMs: null, lossFraction: 1, jitterMs: null, probes: 40 });
    assert.equal(csv.trace.lastIntervalMs, 500, 'the last interval lasts as long as the one before');
  });
});

describe('TraceRecorder', () => {
  it('files samples under their send interval, writes each interval after it settles, skips empty ones', () => {
    const recorder = new TraceRecorder({ startMs: 10_000, intervalMs: 1000, settleMs: 500 });
    assert.equal(recorder.pollLine(), formatTraceHeader('jsonl', 1000));
    assert.equal(recorder.pollTimeout(), undefined);
    recorder.recordReply(10_100, 40);
    recorder.recordReply(10_200, 44);
    recorder.recordLoss(10_300);
    recorder.recordReply(10_900, 42);
    recorder.recordLoss(12_100); // interval 2; interval 1 has no probe
    recorder.recordLoss(12_200);
    assert.equal(recorder.pollTimeout(), 11_500);
    recorder.handleTimeout(11_499);
    assert.equal(recorder.pollLine(), undefined, 'not settled yet');
    recorder.handleTimeout(11_500);
    const line = JSON.parse(recorder.pollLine()!) as TraceInterval;
    assert.deepEqual(line, { tMs: 0, rttMs: 42, lossFraction: 0.25, jitterMs: 3, probes: 4 });
    recorder.recordReply(10_950, 40);
    assert.equal(recorder.lateSamples, 1, 'a sample for a written interval is counted as late');
    recorder.handleTimeout(13_500);
    assert.deepEqual(JSON.parse(recorder.pollLine()!), { tMs: 2000, rttMs: null, lossFraction: 1, jitterMs: null, probes: 2 });
    assert.equal(recorder.pollLine(), undefined);
    assert.equal(recorder.pollTimeout(), undefined);
  });
});

/** Round trips through two link directions (split trace), recorded like a prober would. */
function roundTripRecording(model: LinkModelSpec, seed: number, probes: number, pps: number, intervalMs: number): TraceInterval[] {
  const rng = new Rng(seed);
  const up = new LinkDirection(model, rng.fork());
  const down = new LinkDirection(model, rng.fork());
  const recorder = new TraceRecorder({ startMs: 0, intervalMs, settleMs: 10_000 });
  // Replies reach the down direction in arrival order, so offer them sorted by time.
  const replies: [number, number][] = [];
  for (let i = 0; i < probes; i++) {
    const sentMs = (i * 1000) / pps;
    if (up.offer(sentMs, 100) === 0) recorder.recordLoss(sentMs);
    else replies.push([up.deliverAtMs[0]!, sentMs]);
  }
  replies.sort((a, b) => a[0] - b[0]);
  for (const [atMs, sentMs] of replies) {
    if (down.offer(atMs, 100) === 0) recorder.recordLoss(sentMs);
    else recorder.recordReply(sentMs, down.deliverAtMs[0]! - sentMs);
  }
  recorder.finish();
  recorder.pollLine();
  const out: TraceInterval[] = [];
  for (let line = recorder.pollLine(); line !== undefined; line = recorder.pollLine()) out.push(JSON.parse(line) as TraceInterval);
  return out;
}

describe('trace replay in the link core', () => {
  it('an interval trace on both directions reproduces each interval’s loss and RTT within 10 % (virtual time, seeded)', () => {
    const intervals: TraceInterval[] = [
      { tMs: 0, rttMs: 40, lossFraction: 0.05, jitterMs: 2 },
      { tMs: 2000, rttMs: 120, lossFraction: 0.2, jitterMs: 8 },
      { tMs: 4000, rttMs: 60, lossFraction: 0.1, jitterMs: 4 },
      { tMs: 6000, rttMs: 30, lossFraction: 0.02, jitterMs: 1 },
    ];
    const model: LinkModelSpec = { trace: { kind: 'intervals', intervals, lastIntervalMs: 2000 } };
    const got = roundTripRecording(model, 42, 8000, 1000, 2000);
    assert.equal(got.length, intervals.length);
    got.forEach((g, i) => {
      const want = intervals[i]!;
      assert.ok(Math.abs(g.rttMs! - want.rttMs!) <= 0.1 * want.rttMs!, `seed 42 interval ${i}: RTT ${g.rttMs} vs ${want.rttMs}`);
      assert.ok(Math.abs(g.lossFraction - want.lossFraction) <= 0.1 * want.lossFraction, `seed 42 interval ${i}: loss ${g.lossFraction} vs ${want.lossFraction}`);
      assert.ok(Math.abs(g.jitterMs! - want.jitterMs!) <= 0.15 * want.jitterMs!, `seed 42 interval ${i}: jitter ${g.jitterMs} vs ${want.jitterMs}`);
    });
  });

  it('bernoulli loss pattern, whole share, looping, and trace start at the first packet', () => {
    const intervals: TraceInterval[] = [
      { tMs: 0, rttMs: 10, lossFraction: 0, jitterMs: 0 },
      { tMs: 100, rttMs: 50, lossFraction: 0.3, jitterMs: 0 },
    ];
    const link = new LinkDirection({ delayMs: 5, trace: { kind: 'intervals', intervals, lastIntervalMs: 100, share: 'whole', loop: true, lossPattern: 'bernoulli' } }, new Rng(1));
    assert.equal(link.offer(1000, 100), 1);
    assert.equal(link.deliverAtMs[0], 1015, 'trace time 0 is the first offer; delay adds to the spec delayMs');
    let lost = 0;
    for (let t = 1100; t < 1200; t += 0.01) if (link.offer(t, 100) === 0) lost++;
    assert.ok(Math.abs(lost / 10_000 - 0.3) < 0.02, `bernoulli loss ${lost / 10_000}`);
    assert.equal(link.offer(1210, 100), 1, 'the trace loops: back to the first interval (no loss)');
    assert.equal(link.deliverAtMs[0], 1225);
  });

  it('works in SimNetwork links', () => {
    const net = new SimNetwork({ seed: 1 });
    const a = net.addHost('10.0.0.1').bind();
    const b = net.addHost('10.0.0.2').bind(9);
    net.setLink('10.0.0.1', '10.0.0.2', { trace: { kind: 'intervals', intervals: [{ tMs: 0, rttMs: 80, lossFraction: 0, jitterMs: 0 }] } });
    let arrivedAt = -1;
    b.onReceive(() => (arrivedAt = net.now()));
    a.send(Uint8Array.of(1), b.localAddress());
    net.runUntilIdle();
    assert.equal(arrivedAt, 40, 'half the RTT each way (split)');
  });

  it('rejects a trace together with the fields it drives', () => {
    const intervals = [{ tMs: 0, rttMs: 10, lossFraction: 0, jitterMs: 0 }];
    assert.throws(() => validateLinkModel({ loss: { model: 'bernoulli', p: 0.1 }, trace: { kind: 'intervals', intervals } }), (e: SimConfigError) => e.parameter === 'link.trace');
    assert.throws(() => validateLinkModel({ rateKbps: 100, trace: { kind: 'mahimahi', deliveryMs: [1, 2] } }), (e: SimConfigError) => e.parameter === 'link.trace');
    assert.throws(() => validateLinkModel({ trace: { kind: 'mahimahi', deliveryMs: [3, 2] } }), (e: SimConfigError) => e.parameter === 'link.trace.deliveryMs[1]');
    assert.throws(() => validateLinkModel({ trace: { kind: 'intervals', intervals: [{ tMs: 0, rttMs: -1, lossFraction: 0, jitterMs: 0 }] } }), (e: SimConfigError) => e.parameter === 'link.trace.intervals[0].rttMs');
    assert.throws(() => validateLinkModel({ loss: { model: 'toString' } as never }), (e: SimConfigError) => e.parameter === 'link.loss.model', 'a prototype name is not a loss model');
  });
});

describe('replay vs recording (the 10 % rule)', () => {
  const at = (tMs: number, rttMs: number | null, lossFraction: number, probes: number): TraceInterval => ({ tMs, rttMs, lossFraction, jitterMs: null, probes });

  it('judges RTT and loss per interval, relative, with a loss floor in packets', () => {
    const recorded = [at(0, 100, 0.2, 10), at(1000, 50, 0, 10), at(2000, null, 1, 10), at(3000, 80, 0.1, 10)];
    const replayed = [at(0, 109, 0.181, 1000), at(1000, 56, 0.003, 1000), at(2000, null, 1, 1000), at(3000, 80, 0.111, 1000)];
    const rows = compareTraceIntervals(recorded, replayed, { lossFloorPackets: TRACE_SPREAD_LOSS_SLACK_PACKETS });
    assert.deepEqual(
      rows.map((r) => [r.rttOk, r.lossOk]),
      [
        [true, true], // 9 % and 0.019 of 0.02 allowed
        [false, true], // 12 % off; 3 packets of 1000 within the 4-packet floor
        [true, true], // no RTT recorded (all lost): judged by loss alone
        [true, false], // 0.011 > 10 % of 0.1
      ],
    );
    assert.equal(compareTraceIntervals(recorded, replayed.slice(0, 1))[1]!.ok, false, 'a missing replayed interval fails');
  });

  it('probeIntervals: loss and median RTT per interval by send time', () => {
    const sent = [0, 100, 200, 300, 1000, 1500, 1999, 2500];
    const rtt = [10, Number.NaN, 30, 20, 5, Number.NaN, Number.NaN, 7];
    const rows = probeIntervals(sent, rtt, 0, 1000, 2);
    assert.deepEqual(rows, [
      { tMs: 0, rttMs: 20, lossFraction: 0.25, jitterMs: null, probes: 4 },
      { tMs: 1000, rttMs: 5, lossFraction: 2 / 3, jitterMs: null, probes: 3 },
    ]);
  });
});

describe('mahimahi traces', () => {
  it('parses timestamps and reports the line of a bad one', () => {
    const ok = parseMahimahiTrace('1\n1\n2\n\n10\n');
    assert.ok(ok.ok);
    assert.deepEqual([...ok.trace.deliveryMs], [1, 1, 2, 10]);
    assert.equal(ok.trace.periodMs, 10);
    const cases: [string, number][] = [
      ['1\n2\nx\n', 3],
      ['5\n4\n', 2],
      ['1.5\n', 1],
      ['0\n', 1],
      ['', 1],
    ];
    for (const [text, line] of cases) {
      const result = parseMahimahiTrace(text);
      assert.ok(!result.ok, JSON.stringify(text));
      assert.equal(result.error.line, line, JSON.stringify(text));
    }
  });

  it('throughput follows the trace: a step trace in a saturated link, per 100 ms, looping', () => {
    // Period 400 ms: 1 opportunity per ms for 200 ms (12 Mbit/s), then one per 4 ms (3 Mbit/s).
    const times: number[] = [];
    for (let t = 1; t <= 200; t++) times.push(t);
    for (let t = 204; t <= 400; t += 4) times.push(t);
    const link = new LinkDirection({ delayMs: 10, trace: { kind: 'mahimahi', deliveryMs: times, queuePackets: 100_000 } }, new Rng(5));
    const deliveredBytes = new Float64Array(12);
    // Offer 1000-byte packets at 2 per ms (16 Mbit/s): always more than the trace carries.
    for (let t = 0; t < 1200; t += 0.5) {
      if (link.offer(t, 1000) === 1) {
        const bin = Math.floor((link.deliverAtMs[0]! - 10) / 100);
        if (bin < 12) deliveredBytes[bin] += 1000;
      }
    }
    for (let bin = 0; bin < 12; bin++) {
      const highPhase = bin % 4 < 2;
      const expected = (highPhase ? 100 : 25) * MAHIMAHI_PACKET_BYTES;
      assert.ok(Math.abs(deliveredBytes[bin]! - expected) <= 0.02 * expected, `bin ${bin}: ${deliveredBytes[bin]} bytes, trace ${expected}`);
    }
  });

  it('an idle link wastes opportunities and the queue tail-drops', () => {
    const schedule = new DeliverySchedule(Float64Array.from([10, 20, 30, 40]), 2);
    assert.equal(schedule.admit(0, 1500), 10);
    assert.equal(schedule.admit(0, 1500), 20);
    assert.equal(schedule.admit(0, 1500), -1, 'queue of 2 is full');
    assert.equal(schedule.admit(35, 100), 40, 'after idling, service starts at the next opportunity');
    assert.equal(schedule.admit(35, 100), 40, 'small packets share an opportunity');
    assert.equal(schedule.admit(40, 1400), 50, 'the next one takes the 1300 bytes left at 40 and spills into the next period (period 40 ms: 40 + 10)');
  });
});
