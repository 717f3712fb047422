/**
 * V8 garbage-collector settings for the relay process, applied at start, because two
 * of V8's defaults add milliseconds to the packets in flight on a busy relay (measured
 * with `--trace-gc` during `slipstream bench relay`, 2 cores, load generator beside):
 *
 * - Parallel scavenging: a young-generation collection splits its work across helper
 *   threads and waits for them; when every core is busy moving packets the OS runs those
 *   helpers late. Scavenges measured 0.65 ms median (1.3 ms p90) with it and 0.21 ms
 *   median without, for the same young generation; the minimal forwarder's were 0.14 ms.
 * - Young-generation growth: V8 doubles a semi-space (up to 16 MiB) when much of what
 *   it collects survives, as bulk TCP data in flight does. It then starts a full
 *   mark-compact whenever the old generation's room under its limit is no larger than
 *   the semi-space; the relay's old generation is ~10 MiB with 16 MiB of room, so at
 *   16 MiB a mark-compact that frees nothing follows every scavenge (one per 0.6–0.9 s,
 *   3–8 ms each: tunnel 1200 B p99 18 ms against the minimal forwarder's 2.4 ms).
 *
 * - Bulk TCP (measured with `--trace-gc --trace-incremental-marking`, 64 KiB writes
 *   through an L4 TCP rule): Node reads each chunk into a new 64 KiB ArrayBuffer,
 *   memory outside the JS heap. V8 frees a young ArrayBuffer's memory at a scavenge, but
 *   it scavenges for them only once 2 × `--scavenger-max-new-space-capacity-mb`
 *   (2 × 32 MiB) of them are young, the same 64 MiB at which its external-memory limit
 *   starts a full mark-compact; and the relay's JS allocates too little per chunk to
 *   fill its 4–8 MiB young generation sooner. So every ~50 MiB moved cost a mark-compact
 *   of the relay's whole heap (~12 MiB live: 4–9 ms) that freed only those buffers, and
 *   no scavenge ran at all: ~20 mark-compacts per GB, one per ~55 ms at 7 Gbit/s.
 *   With the threshold at 2 × 4 MiB, a scavenge (well under a millisecond, nothing much
 *   survives) frees them first: ~0 mark-compacts per GB.
 * - Busy cores: V8 sizes the old generation's room until the next marking from measured
 *   GC and mutator speeds; with the cores contended that room fell to its minimum step
 *   (~16 MiB over ~12 MiB live), no larger than the young generation (2 × 8 MiB), and V8
 *   then starts a marking after every scavenge (`Start (allocation limit)`): a
 *   mark-compact per ~8 MiB moved. A fixed growing factor of 4× (V8's largest) keeps
 *   the room at ~36 MiB whatever the load (the cost: up to 4× the live old generation
 *   between full collections, within V8's heap limit).
 *
 * `--max-semi-space-size` works only when given at process start, but V8 reads
 * `--semi-space-growth-factor` and `--parallel-scavenge` at each collection, and
 * `--scavenger-max-new-space-capacity-mb` at each ArrayBuffer allocation (the young
 * generation's size was fixed at start) and `--heap-growing-percent` after each
 * mark-compact, so all four are set here: the young
 * generation keeps the size it reached while the relay started (1–8 MiB). A setting the
 * operator gave on the command line or in NODE_OPTIONS wins.
 */
import v8 from 'node:v8';

const MIB = 1 << 20;

/**
 * `--scavenger-max-new-space-capacity-mb` at runtime, MiB: V8 scavenges once twice this
 * much young ArrayBuffer memory (TCP read buffers) is held, before its 64 MiB external
 * limit starts a mark-compact (see the module comment). V8's default is 32.
 */
export const YOUNG_BACKING_STORE_TRIGGER_MIB = 4;

/**
 * `--heap-growing-percent` at runtime: after a mark-compact the old generation may grow
 * to (1 + this/100) × what survived before the next one (V8's own largest factor, 4×,
 * which it picks on an idle machine). V8's default derives the factor from measured GC
 * and mutator speeds, so on busy cores it falls to the minimum step (+16 MiB), no more
 * than the young generation, and every scavenge then starts a marking (see the module comment).
 */
export const OLD_GENERATION_GROWING_PERCENT = 300;

/**
 * One semi-space's capacity now, bytes: what it holds plus what it has room for,
 * rounded up to whole MiB (pages lose a little to headers; capacities are 1, 2, 4 …
 * MiB). Not `space_size`: that is the memory committed so far, which lags.
 */
export function semiSpaceBytes(): number {
  const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return space === undefined ? 0 : Math.ceil((space.space_used_size + space.space_available_size) / MIB) * MIB;
}

/** What {@link tuneGarbageCollector} set, for the `started` log line. */
export interface GcTuning {
  /** V8 flags set at runtime, e.g. `--no-parallel-scavenge`. */
  readonly set: readonly string[];
  /** Flags left alone because the operator gave a setting of their own. */
  readonly leftToOperator: readonly string[];
  /** The semi-space capacity when the settings were applied, bytes (see {@link semiSpaceBytes}). */
  readonly youngGenerationBytes: number;
}

/** The V8 flags this process was started with (argv and NODE_OPTIONS), normalised to dashes. */
function operatorFlags(): string[] {
  return [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].filter((a) => a.startsWith('--')).map((a) => a.split('=')[0]!.replace(/_/g, '-'));
}

/** Applies the settings described in the module comment; call once, early in `slipstream relay`. */
export function tuneGarbageCollector(): GcTuning {
  const given = new Set(operatorFlags());
  const set: string[] = [];
  const leftToOperator: string[] = [];
  const apply = (flag: string, ownedBy: string[]): void => {
    if (ownedBy.some((f) => given.has(f))) {
      leftToOperator.push(flag);
      return;
    }
    v8.setFlagsFromString(flag);
    set.push(flag);
  };
  apply('--no-parallel-scavenge', ['--parallel-scavenge', '--no-parallel-scavenge', '--single-threaded-gc', '--single-threaded']);
  apply('--semi-space-growth-factor=1', ['--semi-space-growth-factor', '--max-semi-space-size', '--min-semi-space-size']);
  apply(`--scavenger-max-new-space-capacity-mb=${YOUNG_BACKING_STORE_TRIGGER_MIB}`, ['--scavenger-max-new-space-capacity-mb', '--max-semi-space-size']);
  apply(`--heap-growing-percent=${OLD_GENERATION_GROWING_PERCENT}`, ['--heap-growing-percent', '--max-old-space-size', '--max-heap-size']);
  return { set, leftToOperator, youngGenerationBytes: semiSpaceBytes() };
}
