import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EventQueue, SimTimer, type SimEventHandler } from '../src/core/event-queue.js';

/** Records `(time, payload)` of every event it runs. */
class Recorder implements SimEventHandler {
  readonly seen: { timeMs: number; kind: number; payload: unknown }[] = [];
  handleEvent(kind: number, payload: unknown, nowMs: number): void {
    this.seen.push({ timeMs: nowMs, kind, payload });
  }
}

describe('EventQueue', () => {
  it('runs events by time, and same-time events in scheduling order', () => {
    const queue = new EventQueue();
    const recorder = new Recorder();
    queue.schedule(5, recorder, 1, 'c');
    queue.schedule(1, recorder, 1, 'a');
    queue.schedule(5, recorder, 1, 'd');
    queue.schedule(3, recorder, 1, 'b');
    queue.schedule(5, recorder, 1, 'e');
    assert.equal(queue.size, 5);
    assert.equal(queue.peekTimeMs(), 1);
    queue.runUntilIdle();
    assert.deepEqual(
      recorder.seen.map((e) => e.payload),
      ['a', 'b', 'c', 'd', 'e'],
    );
    assert.equal(queue.nowMs, 5);
    assert.equal(queue.peekTimeMs(), Number.POSITIVE_INFINITY);
  });

  it('property: pops in (time, sequence) order for any schedule, also when handlers schedule more', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 3000 }), (items) => {
        const queue = new EventQueue();
        // Each event is [time, index]; some events schedule a child at time + delta
        // when they run, which must then slot into the same total order.
        const popped: { timeMs: number; seq: number }[] = [];
        let seq = 0;
        const handler: SimEventHandler = {
          handleEvent(kind, payload, nowMs) {
            popped.push({ timeMs: nowMs, seq: payload as number });
            if (kind > 0) queue.schedule(nowMs + kind - 1, handler, 0, seq++);
          },
        };
        for (const [time, kind] of items) queue.schedule(time, handler, kind, seq++);
        queue.runUntilIdle();
        assert.equal(popped.length, seq);
        for (let i = 1; i < popped.length; i++) {
          const a = popped[i - 1]!;
          const b = popped[i]!;
          assert.ok(a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.seq < b.seq), `event ${i}: (${a.timeMs}, ${a.seq}) ran before (${b.timeMs}, ${b.seq})`);
        }
      }),
      { numRuns: 200, interruptAfterTimeLimit: 10_000 },
    );
  });

  it('grows past its initial capacity without losing order', () => {
    const queue = new EventQueue();
    const recorder = new Recorder();
    const n = 10_000;
    for (let i = 0; i < n; i++) queue.schedule((i * 7919) % 1000, recorder, 0, i);
    queue.runUntilIdle();
    assert.equal(recorder.seen.length, n);
    for (let i = 1; i < n; i++) {
      const a = recorder.seen[i - 1]!;
      const b = recorder.seen[i]!;
      assert.ok(a.timeMs < b.timeMs || (a.timeMs === b.timeMs && (a.payload as number) < (b.payload as number)));
    }
  });

  it('runUntil runs due events only and leaves the clock at the bound', () => {
    const queue = new EventQueue();
    const recorder = new Recorder();
    queue.schedule(10, recorder, 0, 'early');
    queue.schedule(20, recorder, 0, 'at');
    queue.schedule(21, recorder, 0, 'late');
    assert.equal(queue.runUntil(20), 2);
    assert.equal(queue.nowMs, 20);
    assert.equal(queue.now(), 20);
    assert.equal(queue.size, 1);
    assert.equal(queue.runUntil(15), 0);
    assert.equal(queue.nowMs, 20, 'the clock never goes backwards');
  });

  it('treats a time in the past as now and rejects NaN', () => {
    const queue = new EventQueue();
    const recorder = new Recorder();
    queue.runUntil(100);
    queue.schedule(50, recorder, 0, 'past');
    queue.runUntilIdle();
    assert.equal(recorder.seen[0]!.timeMs, 100);
    assert.throws(() => queue.schedule(Number.NaN, recorder, 0, 'nan'), RangeError);
  });

  it('runUntilIdle stops after maxEvents', () => {
    const queue = new EventQueue();
    const forever: SimEventHandler = { handleEvent: (_k, _p, nowMs) => queue.schedule(nowMs + 1, forever, 0, undefined) };
    queue.schedule(0, forever, 0, undefined);
    assert.equal(queue.runUntilIdle(1000), 1000);
    assert.equal(queue.dispatchedCount, 1000);
  });
});

describe('SimTimer', () => {
  it('fires once at its deadline; re-arming supersedes, clearing cancels', () => {
    const queue = new EventQueue();
    const fired: number[] = [];
    const timer = new SimTimer(queue, (nowMs) => fired.push(nowMs));
    timer.set(10);
    timer.set(30); // supersedes 10
    assert.equal(timer.deadlineMs, 30);
    queue.runUntilIdle();
    assert.deepEqual(fired, [30]);
    assert.equal(timer.armed, false);
    timer.set(40);
    timer.clear();
    queue.runUntilIdle();
    assert.deepEqual(fired, [30]);
    timer.set(35); // in the past: fires now
    queue.runUntilIdle();
    assert.deepEqual(fired, [30, 40]);
  });
});
