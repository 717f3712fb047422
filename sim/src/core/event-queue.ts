/**
 * The simulator's virtual clock and event queue.
 *
 * Events are ordered by `(timeMs, sequence)`: the sequence is a counter stamped at
 * scheduling, so events due at the same virtual instant run in the order they were
 * scheduled and a run is a pure function of its inputs (FoundationDB and TigerBeetle's
 * VOPR order their simulations the same way).
 *
 * The queue is a 4-ary min-heap of `(time, sequence, slot)` entries over
 * struct-of-arrays storage. An event is `(handler, kind, payload)`: the handler is a
 * long-lived object (the network, a timer) and `kind` says what to do, so scheduling a
 * packet delivery allocates no closure and no event object — the hot path of a
 * million-packet run.
 */
import type { Clock } from '../../../proto/src/clock.js';

/** Receives the events it scheduled. Implemented by long-lived components, not per event. */
export interface SimEventHandler {
  /**
   * Runs one due event. `nowMs` is the virtual time (equal to the event's time);
   * the handler may schedule more events, including at `nowMs`.
   */
  handleEvent(kind: number, payload: unknown, nowMs: number): void;
  /**
   * What an event of this handler is, for diagnostics (the livelock guard names the
   * event that repeats). Optional; called only off the hot path.
   */
  describeEvent?(kind: number, payload: unknown): SimEventDescription;
}

/** What an event is, for diagnostics: e.g. `{what: 'relay core timer', host: '10.1.0.2'}`. */
export interface SimEventDescription {
  readonly what: string;
  /** Address of the host it runs on, when known. */
  readonly host?: string;
}

/** Initial slot capacity; the queue doubles it when full. */
const INITIAL_CAPACITY = 1024;

/**
 * Virtual clock plus `(time, sequence)`-ordered event queue. Time starts at 0 ms and
 * only moves forward: when an event runs, and in {@link runUntil}.
 */
export class EventQueue implements Clock {
  private nowMsValue = 0;
  private nextSequence = 0;
  private count = 0;
  private capacity = INITIAL_CAPACITY;
  /**
   * The heap, as three parallel arrays: each entry's due time (ms), scheduling
   * sequence and slot number; entry 0 is the earliest event. The keys live in the
   * heap itself, so sifting compares adjacent memory instead of chasing slots.
   */
  private heapTimeMs = new Float64Array(INITIAL_CAPACITY);
  private heapSequence = new Float64Array(INITIAL_CAPACITY);
  private heapSlot = new Int32Array(INITIAL_CAPACITY);
  /** Per slot: what to run. */
  private kind = new Int32Array(INITIAL_CAPACITY);
  private handler: (SimEventHandler | undefined)[] = new Array<SimEventHandler | undefined>(INITIAL_CAPACITY).fill(undefined);
  private payload: unknown[] = new Array<unknown>(INITIAL_CAPACITY).fill(undefined);
  /** Stack of free slot numbers; `freeCount` of them are valid. */
  private free = new Int32Array(INITIAL_CAPACITY);
  private freeCount = 0;
  /** Events run so far (for statistics and runaway guards). */
  private dispatched = 0;

  constructor() {
    for (let slot = INITIAL_CAPACITY - 1; slot >= 0; slot--) this.free[this.freeCount++] = slot;
  }

  /** Current virtual time in milliseconds (fractional). Starts at 0. */
  now(): number {
    return this.nowMsValue;
  }

  /** Current virtual time in milliseconds; same as {@link now}. */
  get nowMs(): number {
    return this.nowMsValue;
  }

  /** Number of events waiting. */
  get size(): number {
    return this.count;
  }

  /** Number of events run since construction. */
  get dispatchedCount(): number {
    return this.dispatched;
  }

  /** What the earliest waiting event is (diagnostics; see {@link SimEventHandler.describeEvent}), or undefined when none waits. */
  describeNext(): SimEventDescription | undefined {
    if (this.count === 0) return undefined;
    const slot = this.heapSlot[0]!;
    const handler = this.handler[slot]!;
    return handler.describeEvent?.(this.kind[slot]!, this.payload[slot]) ?? { what: `${handler.constructor.name} event ${this.kind[slot]!}` };
  }

  /** Due time (ms) of the earliest waiting event, or `Infinity` when none waits. */
  peekTimeMs(): number {
    return this.count === 0 ? Number.POSITIVE_INFINITY : this.heapTimeMs[0]!;
  }

  /**
   * Schedules `handler.handleEvent(kind, payload, t)` at virtual time `atMs`. A time in
   * the past is treated as now (the clock never goes backwards), like a zero timeout.
   */
  schedule(atMs: number, handler: SimEventHandler, kind: number, payload: unknown): void {
    if (!(atMs >= this.nowMsValue)) {
      // NaN lands here too: a NaN time would break the heap order for every later event.
      if (Number.isNaN(atMs)) throw new RangeError('EventQueue.schedule: atMs is NaN');
      atMs = this.nowMsValue;
    }
    if (this.freeCount === 0) this.grow();
    const slot = this.free[--this.freeCount]!;
    this.kind[slot] = kind;
    this.handler[slot] = handler;
    this.payload[slot] = payload;
    this.siftUp(this.count++, atMs, this.nextSequence++, slot);
  }

  /**
   * Runs the earliest event, first moving the clock to its time.
   * @returns false when the queue was empty.
   */
  dispatchNext(): boolean {
    if (this.count === 0) return false;
    const slot = this.heapSlot[0]!;
    this.nowMsValue = this.heapTimeMs[0]!;
    const last = --this.count;
    if (last > 0) this.siftDown(0, this.heapTimeMs[last]!, this.heapSequence[last]!, this.heapSlot[last]!);
    const handler = this.handler[slot]!;
    const payload = this.payload[slot];
    const kind = this.kind[slot]!;
    // Release the slot before running the handler so that it can be reused at once,
    // and drop references so delivered packets can be collected or pooled.
    this.handler[slot] = undefined;
    this.payload[slot] = undefined;
    this.free[this.freeCount++] = slot;
    this.dispatched++;
    handler.handleEvent(kind, payload, this.nowMsValue);
    return true;
  }

  /**
   * Runs every event due at or before `untilMs`, then sets the clock to `untilMs`
   * (if it is later than now).
   * @returns the number of events run.
   */
  runUntil(untilMs: number): number {
    let ran = 0;
    while (this.count > 0 && this.heapTimeMs[0]! <= untilMs) {
      this.dispatchNext();
      ran++;
    }
    if (untilMs > this.nowMsValue) this.nowMsValue = untilMs;
    return ran;
  }

  /**
   * Runs events until none is left, or `maxEvents` have run (a guard against
   * components that reschedule themselves forever).
   * @returns the number of events run.
   */
  runUntilIdle(maxEvents = Number.POSITIVE_INFINITY): number {
    let ran = 0;
    while (ran < maxEvents && this.dispatchNext()) ran++;
    return ran;
  }

  /** Places the entry `(t, seq, slot)` at heap position `index` or above (the hole is at `index`). */
  private siftUp(index: number, t: number, seq: number, slot: number): void {
    const timeMs = this.heapTimeMs;
    const sequence = this.heapSequence;
    const slots = this.heapSlot;
    while (index > 0) {
      const parent = (index - 1) >> 2;
      const tp = timeMs[parent]!;
      if (tp < t || (tp === t && sequence[parent]! < seq)) break;
      timeMs[index] = tp;
      sequence[index] = sequence[parent]!;
      slots[index] = slots[parent]!;
      index = parent;
    }
    timeMs[index] = t;
    sequence[index] = seq;
    slots[index] = slot;
  }

  /**
   * Places the entry `(t, seq, slot)` at heap position `index` or below (the hole is at
   * `index`). The heap is 4-ary: half the depth of a binary one, so a pop takes half
   * the moves, and a node's four children sit next to each other.
   */
  private siftDown(index: number, t: number, seq: number, slot: number): void {
    const timeMs = this.heapTimeMs;
    const sequence = this.heapSequence;
    const slots = this.heapSlot;
    const count = this.count;
    for (;;) {
      const first = 4 * index + 1;
      if (first >= count) break;
      // The earliest of up to four children.
      let best = first;
      let bestT = timeMs[first]!;
      let bestSeq = sequence[first]!;
      const end = first + 4 < count ? first + 4 : count;
      for (let c = first + 1; c < end; c++) {
        const tc = timeMs[c]!;
        if (tc < bestT || (tc === bestT && sequence[c]! < bestSeq)) {
          best = c;
          bestT = tc;
          bestSeq = sequence[c]!;
        }
      }
      if (t < bestT || (t === bestT && seq < bestSeq)) break;
      timeMs[index] = bestT;
      sequence[index] = bestSeq;
      slots[index] = slots[best]!;
      index = best;
    }
    timeMs[index] = t;
    sequence[index] = seq;
    slots[index] = slot;
  }

  private grow(): void {
    const old = this.capacity;
    const capacity = old * 2;
    const timeMs = new Float64Array(capacity);
    timeMs.set(this.heapTimeMs);
    this.heapTimeMs = timeMs;
    const sequence = new Float64Array(capacity);
    sequence.set(this.heapSequence);
    this.heapSequence = sequence;
    const slots = new Int32Array(capacity);
    slots.set(this.heapSlot);
    this.heapSlot = slots;
    const kind = new Int32Array(capacity);
    kind.set(this.kind);
    this.kind = kind;
    for (let i = old; i < capacity; i++) {
      this.handler.push(undefined);
      this.payload.push(undefined);
    }
    const free = new Int32Array(capacity);
    free.set(this.free.subarray(0, this.freeCount));
    for (let slot = capacity - 1; slot >= old; slot--) free[this.freeCount++] = slot;
    this.free = free;
    this.capacity = capacity;
  }
}

/** Event kind a {@link SimTimer} schedules (timers are their own handlers). */
const TIMER_FIRE = 1;

/**
 * A reusable one-deadline timer on an {@link EventQueue}: what a driver of a sans-IO
 * core uses for `pollTimeout()`. Re-arming does not allocate; a superseded deadline
 * stays in the queue and is ignored when it comes due (a generation number tells).
 */
export class SimTimer implements SimEventHandler {
  private generation = 0;
  private armedGeneration = -1;
  private deadline = Number.NaN;

  /**
   * @param queue the queue (clock) the timer runs on
   * @param callback called with the virtual time when the deadline passes
   * @param label what the timer is for and where it runs (diagnostics)
   */
  constructor(
    private readonly queue: EventQueue,
    private readonly callback: (nowMs: number) => void,
    readonly label?: SimEventDescription,
  ) {}

  /** Arms (or re-arms) the timer to fire once at virtual time `atMs` (ms; past = now). */
  set(atMs: number): void {
    this.generation++;
    this.armedGeneration = this.generation;
    this.deadline = Math.max(atMs, this.queue.nowMs);
    this.queue.schedule(this.deadline, this, TIMER_FIRE, this.generation);
  }

  /** Disarms the timer; idempotent. */
  clear(): void {
    this.armedGeneration = -1;
    this.deadline = Number.NaN;
  }

  /** Whether a deadline is pending. */
  get armed(): boolean {
    return this.armedGeneration !== -1;
  }

  /** The pending deadline in ms, or `undefined` when not armed. */
  get deadlineMs(): number | undefined {
    return this.armedGeneration === -1 ? undefined : this.deadline;
  }

  /** @internal Diagnostics: the timer's label. */
  describeEvent(): SimEventDescription {
    return this.label ?? { what: 'timer' };
  }

  /** @internal Called by the queue. */
  handleEvent(_kind: number, payload: unknown, nowMs: number): void {
    if (payload !== this.armedGeneration) return;
    this.armedGeneration = -1;
    this.deadline = Number.NaN;
    this.callback(nowMs);
  }
}
